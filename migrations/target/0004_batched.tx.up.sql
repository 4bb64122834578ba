-- Batched execution (kinds with execution: batched): a request runs as many short
-- transactions instead of one, and these tables let it resume exactly where it stopped.
--
-- hidden_roots marks a root that is being deleted in batches and has no tombstone column of
-- its own: applications that must hide it at once read this table. The row goes in the final
-- transaction, with the root.
CREATE TABLE tombstone.hidden_roots (
    request_id   bigint      PRIMARY KEY,
    target       text        NOT NULL,
    table_schema text        NOT NULL,
    table_name   text        NOT NULL,
    root_key     text[]      NOT NULL,
    hidden_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hidden_roots_table_idx ON tombstone.hidden_roots (table_schema, table_name);

-- batch_runs is one row per batched request in this target, written in the transaction that
-- hides the root; collected_at is set once the key sets are collected. hidden says how the root
-- was hidden: 'tombstone' (the run set its tombstone column), 'already' (it was tombstoned
-- before) or 'marked' (a hidden_roots row).
CREATE TABLE tombstone.batch_runs (
    request_id   bigint      NOT NULL,
    target       text        NOT NULL,
    digest       text        NOT NULL,
    hidden       text        NOT NULL CHECK (hidden IN ('tombstone', 'already', 'marked')),
    hidden_at    timestamptz NOT NULL DEFAULT now(),
    collected_at timestamptz,
    PRIMARY KEY (request_id, target)
);

-- batch_steps are the collected key sets, in the order they are applied (detach and tombstone
-- first, then deletes children before parents). Each set's keys live in the work table
-- work_table (in this schema), numbered 1..planned by tomb_seq. whole marks a set that must be
-- applied in one transaction (tables in a cycle of foreign keys, or referring to themselves).
CREATE TABLE tombstone.batch_steps (
    request_id   bigint  NOT NULL,
    target       text    NOT NULL,
    step         int     NOT NULL CHECK (step >= 0),
    table_schema text    NOT NULL,
    table_name   text    NOT NULL,
    action       text    NOT NULL CHECK (action IN ('delete', 'soft', 'detach')),
    grp          int     NOT NULL,
    whole        boolean NOT NULL,
    work_table   text    NOT NULL,
    planned      bigint  NOT NULL CHECK (planned >= 0),
    PRIMARY KEY (request_id, target, step)
);

-- batch_checkpoints has one row per committed batch, written in the batch's own transaction:
-- the keys tomb_seq in (from_seq, to_seq] of the step are done. rows is what the batch changed,
-- missing the keys of that range that were already gone (deleted, or tombstoned, by someone
-- else meanwhile). took_ms is the batch transaction's duration up to its commit.
CREATE TABLE tombstone.batch_checkpoints (
    request_id bigint      NOT NULL,
    target     text        NOT NULL,
    batch      int         NOT NULL CHECK (batch > 0),
    step       int         NOT NULL,
    from_seq   bigint      NOT NULL,
    to_seq     bigint      NOT NULL CHECK (to_seq > from_seq),
    rows       bigint      NOT NULL CHECK (rows >= 0),
    missing    bigint      NOT NULL CHECK (missing >= 0),
    took_ms    bigint      NOT NULL CHECK (took_ms >= 0),
    -- arrived counts, per "target table action", the rows that appeared under the batch's rows
    -- since the collection and were applied with them.
    arrived    jsonb       NOT NULL DEFAULT '{}',
    done_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, target, batch),
    UNIQUE (request_id, target, step, to_seq)
);

-- The tombstone schema inside a target database: the execution ledger.
CREATE SCHEMA IF NOT EXISTS tombstone;

CREATE TABLE IF NOT EXISTS tombstone.ledger (
    request_id  bigint      NOT NULL,
    target      text        NOT NULL,
    digest      text        NOT NULL,
    counts      jsonb       NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, target)
);

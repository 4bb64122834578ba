-- Console database: the notification outbox.
--
-- A notification is written in the same transaction as the state change it announces, so a
-- committed change always has its message and a rolled-back one never does. A periodic job
-- delivers due rows (FOR UPDATE SKIP LOCKED, so replicas share the work without sending a row
-- twice), and records each failure with a backoff. Rows are kept after delivery or after the
-- last attempt, so the request page can show what was sent and what failed.
CREATE TABLE outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id      bigint      REFERENCES requests (id),
    -- event names the notice (awaiting, approved, rejected, done, failed, drifted).
    event           text        NOT NULL CHECK (event ~ '^[a-z][a-z_]*$'),
    channel         text        NOT NULL CHECK (channel IN ('email', 'slack')),
    -- recipient is an email address, or "webhook" for Slack.
    recipient       text        NOT NULL CHECK (recipient <> ''),
    subject         text        NOT NULL DEFAULT '',
    body_text       text        NOT NULL DEFAULT '',
    body_html       text        NOT NULL DEFAULT '',
    -- payload is the channel's own document (Slack: the JSON body that is posted).
    payload         jsonb,
    attempts        int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text        NOT NULL DEFAULT '',
    sent_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX outbox_request_idx ON outbox (request_id, id) WHERE request_id IS NOT NULL;

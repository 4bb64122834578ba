-- Archive of changed rows, kept for the kind's archive window so a request can be restored.
-- action delete: row holds the whole deleted row; soft and detach: the old values of the
-- columns the request changed.
CREATE TABLE tombstone.archive (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   bigint      NOT NULL,
    target       text        NOT NULL,
    table_schema text        NOT NULL,
    table_name   text        NOT NULL,
    action       text        NOT NULL CHECK (action IN ('delete', 'soft', 'detach')),
    key          jsonb       NOT NULL,
    row          jsonb       NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX archive_request_idx ON tombstone.archive (request_id);
CREATE INDEX archive_expires_idx ON tombstone.archive (expires_at);

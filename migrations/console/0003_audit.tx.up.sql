-- Audit log: append-only and hash-chained (see docs/audit.md).
--
-- seq is assigned by the writer as max(seq)+1 under an advisory transaction lock, not by a
-- sequence, so that a rolled-back event leaves no gap. hash = SHA-256(prev_hash || canonical
-- JSON of the row without hash), computed by the writer and re-computed by verifiers.
CREATE TABLE audit_events (
    seq         bigint      PRIMARY KEY CHECK (seq > 0),
    at          timestamptz NOT NULL,
    actor_id    bigint,
    actor_name  text        NOT NULL CHECK (actor_name <> ''),
    action      text        NOT NULL CHECK (action ~ '^[a-z][a-z_]*$'),
    request_id  bigint,
    kind        text        NOT NULL DEFAULT '',
    target      text        NOT NULL DEFAULT '',
    root_key    text        NOT NULL DEFAULT '',
    root_label  text        NOT NULL DEFAULT '',
    reason      text        NOT NULL DEFAULT '',
    plan_digest text        NOT NULL DEFAULT '',
    policy_hash text        NOT NULL DEFAULT '',
    details     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    client_ip   text        NOT NULL DEFAULT '',
    prev_hash   text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash        text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    -- One successor per event: a second writer with a stale head fails instead of forking.
    CONSTRAINT audit_events_prev_hash_key UNIQUE (prev_hash),
    CONSTRAINT audit_events_hash_key UNIQUE (hash)
);

-- The audit page filters and pages newest first by seq.
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_request_idx ON audit_events (request_id, seq) WHERE request_id IS NOT NULL;
CREATE INDEX audit_events_actor_idx ON audit_events (actor_name, seq);
CREATE INDEX audit_events_action_idx ON audit_events (action, seq);
CREATE INDEX audit_events_kind_idx ON audit_events (kind, seq) WHERE kind <> '';

-- Signed statements of the head: {seq, hash, at} signed with the Ed25519 key from
-- audit.signing_key.
CREATE TABLE audit_checkpoints (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq        bigint      NOT NULL CHECK (seq > 0),
    hash       text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    at         timestamptz NOT NULL,
    public_key text        NOT NULL,
    signature  text        NOT NULL
);
CREATE INDEX audit_checkpoints_seq_idx ON audit_checkpoints (seq);

-- Immutability is PostgreSQL's job, not the application's. The triggers are ENABLE ALWAYS, so
-- they also fire for the owner, for superusers and under session_replication_role = replica;
-- only ALTER TABLE … DISABLE TRIGGER (owner or superuser) removes them, and the runtime role
-- owns nothing here.
CREATE FUNCTION audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_update_delete;
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate;

CREATE TRIGGER audit_checkpoints_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_update_delete;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate;

-- Console database: deletion requests and their approvals (the two-person rule).
--
-- A request freezes the preview it was made from (preview jsonb: summary, tree with samples,
-- warnings, digest). Its state only moves along the edges that requests_check_transition
-- allows, and a request in a terminal state never changes state again. The application makes
-- every transition a conditional UPDATE (WHERE state = expected RETURNING …); the trigger is the
-- database's own guarantee that no other writer breaks the state machine.
--
-- The request timeline is not stored here: it is the audit events with this request_id.
CREATE TABLE requests (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- delete: a deletion; restore: undoing the deletion restores_request_id, within its archive window.
    kind_of_request     text        NOT NULL DEFAULT 'delete' CHECK (kind_of_request IN ('delete', 'restore')),
    restores_request_id bigint      REFERENCES requests (id),
    kind                text        NOT NULL CHECK (kind <> ''),
    target              text        NOT NULL CHECK (target <> ''),
    root_table          text        NOT NULL,
    -- root_key is the preview's display key (values joined by commas); root_keys are the exact
    -- primary-key values, in key column order, for looking the root up again.
    root_key            text        NOT NULL CHECK (root_key <> ''),
    root_keys           text[]      NOT NULL,
    root_label          text        NOT NULL DEFAULT '',
    digest              text        NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    policy_hash         text        NOT NULL DEFAULT '',
    schema_fingerprints jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(schema_fingerprints) = 'object'),
    preview             jsonb       NOT NULL CHECK (jsonb_typeof(preview) = 'object'),
    rows_total          bigint      NOT NULL CHECK (rows_total >= 0),
    tables_total        int         NOT NULL CHECK (tables_total >= 0),
    requester_id        bigint      NOT NULL REFERENCES users (id),
    reason              text        NOT NULL CHECK (length(btrim(reason)) >= 10),
    ticket_url          text        NOT NULL DEFAULT '',
    approvals_required  int         NOT NULL CHECK (approvals_required >= 1),
    state               text        NOT NULL DEFAULT 'pending' CHECK (state IN (
                            'pending', 'approved', 'running', 'done', 'failed', 'drifted',
                            'rejected', 'cancelled', 'expired', 'partial')),
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    -- decided_at: when the request left pending (approved, rejected, cancelled or expired).
    decided_at          timestamptz,
    -- decided_by: who rejected or cancelled it; the reason of a rejection is decision_reason.
    decided_by          bigint      REFERENCES users (id),
    decision_reason     text        NOT NULL DEFAULT '',
    -- error, result and target_status are the executor's: the failure shown on the page, the
    -- per-table counts or drift details, and per-target progress of a multi-target request.
    error               text        NOT NULL DEFAULT '',
    result              jsonb,
    target_status       jsonb,
    CHECK (expires_at > created_at),
    CHECK ((kind_of_request = 'restore') = (restores_request_id IS NOT NULL))
);

-- One open request per root: opening a second one is refused with a link to the first.
CREATE UNIQUE INDEX requests_open_root_key ON requests (kind, target, root_key)
    WHERE state IN ('pending', 'approved', 'running');

-- The requests page lists newest first, by tab (mine, awaiting me) and by state; the expiry
-- sweep looks for pending requests past expires_at.
CREATE INDEX requests_requester_idx ON requests (requester_id, id);
CREATE INDEX requests_state_idx ON requests (state, id);
CREATE INDEX requests_pending_expiry_idx ON requests (expires_at) WHERE state = 'pending';
CREATE INDEX requests_restores_idx ON requests (restores_request_id) WHERE restores_request_id IS NOT NULL;

CREATE FUNCTION requests_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
        (OLD.state = 'pending'  AND NEW.state IN ('approved', 'rejected', 'cancelled', 'expired')) OR
        (OLD.state = 'approved' AND NEW.state IN ('running', 'failed')) OR
        (OLD.state = 'running'  AND NEW.state IN ('done', 'failed', 'drifted', 'partial')) OR
        (OLD.state = 'partial'  AND NEW.state = 'running')
    ) THEN
        RAISE EXCEPTION 'request %: state % cannot become %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.id, NEW.kind_of_request, NEW.kind, NEW.target, NEW.root_key, NEW.root_keys, NEW.digest,
        NEW.preview, NEW.requester_id, NEW.reason, NEW.approvals_required, NEW.created_at)
        IS DISTINCT FROM
       (OLD.id, OLD.kind_of_request, OLD.kind, OLD.target, OLD.root_key, OLD.root_keys, OLD.digest,
        OLD.preview, OLD.requester_id, OLD.reason, OLD.approvals_required, OLD.created_at) THEN
        RAISE EXCEPTION 'request %: what was requested is frozen', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER requests_transition
    BEFORE UPDATE ON requests
    FOR EACH ROW EXECUTE FUNCTION requests_check_transition();
ALTER TABLE requests ENABLE ALWAYS TRIGGER requests_transition;

-- One approval per person per request (the primary key backs the rule). digest is the digest
-- the approver was shown and posted; it always equals the request's digest, because a stale
-- one is refused.
CREATE TABLE approvals (
    request_id  bigint      NOT NULL REFERENCES requests (id),
    approver_id bigint      NOT NULL REFERENCES users (id),
    digest      text        NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL,
    CONSTRAINT approvals_request_approver_key PRIMARY KEY (request_id, approver_id)
);
CREATE INDEX approvals_approver_idx ON approvals (approver_id, request_id);

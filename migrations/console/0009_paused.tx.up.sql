-- Batched execution can be paused: an admin pauses a running batched request (running →
-- paused; the executor stops after its current batch) and resumes it (paused → running). The
-- executor also pauses a batched run that cannot go on (a failure between batches), because
-- part of it has committed and it can only be finished, never undone by failing it. A paused
-- request still holds its root: its root is hidden and half of its cascade may be gone.
ALTER TABLE requests DROP CONSTRAINT requests_state_check;
ALTER TABLE requests ADD CONSTRAINT requests_state_check CHECK (state IN (
    'pending', 'approved', 'running', 'done', 'failed', 'drifted',
    'rejected', 'cancelled', 'expired', 'partial', 'paused'));

DROP INDEX requests_open_root_key;
CREATE UNIQUE INDEX requests_open_root_key ON requests (kind, target, root_key)
    WHERE state IN ('pending', 'approved', 'running', 'partial', 'paused');

CREATE OR REPLACE FUNCTION requests_check_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
        (OLD.state = 'pending'  AND NEW.state IN ('approved', 'rejected', 'cancelled', 'expired')) OR
        (OLD.state = 'approved' AND NEW.state IN ('running', 'failed')) OR
        (OLD.state = 'running'  AND NEW.state IN ('done', 'failed', 'drifted', 'partial', 'paused')) OR
        (OLD.state = 'partial'  AND NEW.state = 'running') OR
        (OLD.state = 'paused'   AND NEW.state = 'running')
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

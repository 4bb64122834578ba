-- Console database: what the executor needs to run one request across several targets.
--
-- execution_targets records, per target, the digest of that target's share of the cascade
-- (its summary lines with their key hashes) as verified when the request first ran, before
-- anything committed anywhere. A request that stopped part-way (partial) is resumed against
-- these: the approved digest covers every target, and the finished ones no longer match it.
CREATE TABLE execution_targets (
    request_id  bigint      NOT NULL REFERENCES requests (id),
    target      text        NOT NULL CHECK (target <> ''),
    digest      text        NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    verified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (request_id, target)
);

-- execution_decisions is the two-phase commit decision of a request whose targets were all
-- prepared (PREPARE TRANSACTION 'tombstone-<request>-<target>'). The row is written once and
-- never changed: the executor inserts 'commit' after every target prepared and before any
-- COMMIT PREPARED; the reconciler inserts 'rollback' before it rolls back prepared
-- transactions nobody is working on. Whichever insert comes first decides, so an executor that
-- lost its console session can never commit what the reconciler has begun to roll back.
CREATE TABLE execution_decisions (
    request_id bigint      PRIMARY KEY REFERENCES requests (id),
    decision   text        NOT NULL CHECK (decision IN ('commit', 'rollback')),
    targets    text[]      NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION execution_decisions_frozen() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the decision of request % is final', OLD.request_id
        USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER execution_decisions_frozen
    BEFORE UPDATE OR DELETE ON execution_decisions
    FOR EACH ROW EXECUTE FUNCTION execution_decisions_frozen();
ALTER TABLE execution_decisions ENABLE ALWAYS TRIGGER execution_decisions_frozen;

-- demo_pos keys, indexes and foreign keys, added after the data is loaded.
-- pos_sessions.tenant_id has no index on purpose: the slow per-tenant delete of case 3.

ALTER TABLE pos_configurations ADD PRIMARY KEY (id);
CREATE INDEX pos_configurations_tenant_id_idx ON pos_configurations (tenant_id);

ALTER TABLE pos_sessions ADD PRIMARY KEY (id);
CREATE INDEX pos_sessions_configuration_id_idx ON pos_sessions (configuration_id);

ALTER TABLE pos_transactions ADD PRIMARY KEY (id);
CREATE INDEX pos_transactions_session_id_idx ON pos_transactions (session_id);
CREATE INDEX pos_transactions_tenant_id_idx ON pos_transactions (tenant_id);
CREATE INDEX pos_transactions_refund_of_id_idx ON pos_transactions (refund_of_id);

ALTER TABLE pos_sessions
    ADD CONSTRAINT pos_sessions_configuration_id_fkey FOREIGN KEY (configuration_id)
        REFERENCES pos_configurations (id) ON DELETE CASCADE;

ALTER TABLE pos_transactions
    ADD CONSTRAINT pos_transactions_session_id_fkey FOREIGN KEY (session_id)
        REFERENCES pos_sessions (id) ON DELETE CASCADE,
    -- A refunded sale cannot be deleted on its own; a refund always sits in the sale's session,
    -- so deleting the session removes both at once.
    ADD CONSTRAINT pos_transactions_refund_of_id_fkey FOREIGN KEY (refund_of_id)
        REFERENCES pos_transactions (id) ON DELETE RESTRICT;

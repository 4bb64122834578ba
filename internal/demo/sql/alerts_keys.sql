-- demo_alerts keys, indexes and foreign keys, added after the data is loaded.
-- alert_history.tenant_id has no index on purpose: the slow per-tenant delete of case 3.

ALTER TABLE alert_rules ADD PRIMARY KEY (id);
CREATE INDEX alert_rules_tenant_id_idx ON alert_rules (tenant_id);

ALTER TABLE alerts ADD PRIMARY KEY (id);
CREATE INDEX alerts_rule_id_idx ON alerts (rule_id);
CREATE INDEX alerts_tenant_id_idx ON alerts (tenant_id);

ALTER TABLE alert_history ADD PRIMARY KEY (id);
CREATE INDEX alert_history_alert_id_idx ON alert_history (alert_id);

ALTER TABLE alert_notifications ADD PRIMARY KEY (id);
CREATE INDEX alert_notifications_rule_id_idx ON alert_notifications (rule_id);
CREATE INDEX alert_notifications_alert_id_idx ON alert_notifications (alert_id);
CREATE INDEX alert_notifications_tenant_id_idx ON alert_notifications (tenant_id);

ALTER TABLE alerts
    ADD CONSTRAINT alerts_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE;

ALTER TABLE alert_history
    ADD CONSTRAINT alert_history_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE CASCADE;

-- A notification is kept when its alert is purged, and goes with its rule (a diamond under
-- alert_rules: delete through one path, detach through the other).
ALTER TABLE alert_notifications
    ADD CONSTRAINT alert_notifications_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE,
    ADD CONSTRAINT alert_notifications_alert_id_fkey FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE SET NULL;

-- demo_alerts data. The tenants and their weights come from the same plan as demo_app's.

-- step: rules
WITH parent AS (
    SELECT p.tenant_id, c.n, sum(c.n) OVER (ORDER BY p.tenant_id) - c.n AS base
    FROM plan AS p
    CROSS JOIN LATERAL (SELECT CASE WHEN p.big THEN 12 ELSE 2 + pg_temp.fan(@seed, 400, p.tenant_id, 2) END AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO alert_rules (id, tenant_id, name, expression, severity, created_at)
SELECT id, tenant_id, r.name || CASE WHEN k > 6 THEN ' ' || k ELSE '' END, r.expression,
       (ARRAY['info', 'warning', 'warning', 'critical'])[1 + pg_temp.pick(@seed, 401, id, 4)],
       pg_temp.at(@seed, 402, id)
FROM child
JOIN (VALUES (0, 'High error rate', 'rate(errors[5m]) > 0.05'),
             (1, 'Slow checkout', 'p95(checkout_ms[10m]) > 2000'),
             (2, 'Disk almost full', 'disk_used_ratio > 0.9'),
             (3, 'Queue backlog', 'queue_depth > 1000'),
             (4, 'Certificate expiry', 'cert_days_left < 14'),
             (5, 'Webhook failures', 'rate(webhook_5xx[15m]) > 0.1')) AS r (i, name, expression)
    ON r.i = (child.k - 1) % 6;

-- step: alerts
WITH parent AS (
    SELECT r.id AS rule_id, r.tenant_id, c.n, sum(c.n) OVER (ORDER BY r.id) - c.n AS base
    FROM alert_rules AS r
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 410, r.id, 8 * p.w) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO alerts (id, rule_id, tenant_id, state, fired_at, resolved_at)
SELECT id, rule_id, tenant_id,
       CASE WHEN resolved THEN 'resolved' ELSE 'firing' END,
       fired_at,
       CASE WHEN resolved THEN fired_at + (60 + pg_temp.pick(@seed, 411, id, 86400)) * interval '1 second' END
FROM (SELECT child.*, pg_temp.at(@seed, 412, child.id) AS fired_at, pg_temp.rnd(@seed, 413, child.id) < 0.85 AS resolved
      FROM child) AS a;

-- step: history
WITH parent AS (
    SELECT a.id AS alert_id, a.tenant_id, a.fired_at, c.n, sum(c.n) OVER (ORDER BY a.id) - c.n AS base
    FROM alerts AS a
    CROSS JOIN LATERAL (SELECT 1 + pg_temp.fan(@seed, 420, a.id, 1.5) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO alert_history (id, alert_id, tenant_id, from_state, to_state, changed_at)
SELECT id, alert_id, tenant_id,
       (ARRAY[NULL, 'firing', 'acknowledged', 'firing'])[1 + least(k - 1, 3)],
       (ARRAY['firing', 'acknowledged', 'firing', 'resolved'])[1 + least(k - 1, 3)],
       fired_at + (k - 1) * interval '10 minutes'
FROM child;

-- step: notifications
-- Most notifications belong to an alert; a few (test sends) only to the rule.
WITH parent AS (
    SELECT a.id AS alert_id, a.rule_id, a.tenant_id, a.fired_at, c.n, sum(c.n) OVER (ORDER BY a.id) - c.n AS base
    FROM alerts AS a
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 430, a.id, 1.2) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO alert_notifications (id, rule_id, alert_id, tenant_id, channel, sent_at)
SELECT id, rule_id,
       CASE WHEN pg_temp.rnd(@seed, 431, id) < 0.05 THEN NULL ELSE alert_id END,
       tenant_id,
       (ARRAY['email', 'slack', 'pagerduty', 'webhook'])[1 + pg_temp.pick(@seed, 432, id, 4)],
       fired_at + k * interval '1 minute'
FROM child;

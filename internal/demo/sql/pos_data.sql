-- demo_pos data. The tenants and their weights come from the same plan as demo_app's.

-- step: configurations
WITH parent AS (
    SELECT p.tenant_id, c.n, sum(c.n) OVER (ORDER BY p.tenant_id) - c.n AS base
    FROM plan AS p
    CROSS JOIN LATERAL (SELECT CASE WHEN p.big THEN 6 ELSE 1 + pg_temp.fan(@seed, 300, p.tenant_id, 0.8) END AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO pos_configurations (id, tenant_id, name, currency, settings, created_at)
SELECT id, tenant_id,
       (ARRAY['Front counter', 'Bar', 'Patio', 'Drive-through', 'Pop-up stand', 'Kiosk'])[1 + (k - 1) % 6]
         || CASE WHEN k > 6 THEN ' ' || k ELSE '' END,
       (ARRAY['USD', 'USD', 'EUR', 'GBP', 'CAD'])[1 + pg_temp.pick(@seed, 301, tenant_id, 5)],
       jsonb_build_object('tips', pg_temp.rnd(@seed, 302, id) < 0.5, 'receipt', 'email'),
       pg_temp.at(@seed, 303, id)
FROM child;

-- step: sessions
WITH parent AS (
    SELECT cf.id AS configuration_id, cf.tenant_id, c.n, sum(c.n) OVER (ORDER BY cf.id) - c.n AS base
    FROM pos_configurations AS cf
    JOIN plan AS p ON p.tenant_id = cf.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 310, cf.id, 10 * p.w) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO pos_sessions (id, configuration_id, tenant_id, cashier, opened_at, closed_at)
SELECT id, configuration_id, tenant_id,
       (ARRAY['Sam', 'Priya', 'Jordan', 'Mei', 'Luca', 'Amara'])[1 + pg_temp.pick(@seed, 311, id, 6)],
       opened_at,
       -- The newest session of each configuration is still open.
       CASE WHEN k < n THEN opened_at + (3600 + pg_temp.pick(@seed, 312, id, 36000)) * interval '1 second' END
FROM (SELECT child.*, pg_temp.at(@seed, 313, child.id) AS opened_at FROM child) AS s;

-- step: transactions
WITH parent AS (
    SELECT s.id AS session_id, s.tenant_id, c.n, sum(c.n) OVER (ORDER BY s.id) - c.n AS base, s.opened_at
    FROM pos_sessions AS s
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 320, s.id, 14) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO pos_transactions (id, session_id, tenant_id, amount_cents, kind, refund_of_id, created_at)
SELECT id, session_id, tenant_id,
       CASE WHEN refund THEN -amount ELSE amount END,
       CASE WHEN refund THEN 'refund' ELSE 'sale' END,
       -- A refund refers to the sale just before it, in the same session.
       CASE WHEN refund THEN id - 1 END,
       opened_at + k * interval '90 seconds'
FROM (SELECT child.*, 100 + pg_temp.pick(@seed, 321, child.id, 20000) AS amount,
             child.k > 1 AND pg_temp.rnd(@seed, 322, child.id) < 0.03 AS refund
      FROM child) AS t;

-- demo_app data. Each step is one set-based statement; ids are dense and computed from the
-- parent rows' child counts (a running sum), so they never depend on execution order.
-- Parameters: @seed, @tenants, @users, @merchants, @big_w (see plan.sql for the plan table).

-- step: tenants
INSERT INTO tenants (id, slug, name, plan, created_at, deleted_at)
SELECT p.tenant_id,
       CASE WHEN p.big THEN 'bigco'
            WHEN n.slug IS NOT NULL THEN n.slug
            ELSE g.adj || '-' || g.noun || '-' || p.tenant_id END,
       CASE WHEN p.big THEN 'BigCo Holdings'
            WHEN n.name IS NOT NULL THEN n.name
            ELSE initcap(g.adj) || ' ' || initcap(g.noun) END,
       CASE WHEN p.big OR p.w >= 1.5 THEN 'enterprise' WHEN p.w >= 0.6 THEN 'team' ELSE 'free' END,
       pg_temp.at(@seed, 20, p.tenant_id),
       -- soylent, and about one generated tenant in twelve, are already tombstoned.
       CASE WHEN n.slug = 'soylent' THEN timestamptz '2024-11-05 09:30:00+00'
            WHEN n.slug IS NULL AND NOT p.big AND pg_temp.rnd(@seed, 21, p.tenant_id) < 0.08
            THEN timestamptz '2025-01-01 00:00:00+00' - pg_temp.pick(@seed, 22, p.tenant_id, 17280000) * interval '1 second' END
FROM plan AS p
LEFT JOIN (VALUES
    (1, 'acme', 'Acme Corporation'), (2, 'globex', 'Globex Corporation'), (3, 'initech', 'Initech'),
    (4, 'umbrella', 'Umbrella Corporation'), (5, 'hooli', 'Hooli'), (6, 'piedpiper', 'Pied Piper'),
    (7, 'vandelay', 'Vandelay Industries'), (8, 'wonka', 'Wonka Industries'), (9, 'soylent', 'Soylent Corporation'),
    (10, 'stark', 'Stark Industries'), (11, 'wayne', 'Wayne Enterprises'), (12, 'cyberdyne', 'Cyberdyne Systems'),
    (13, 'tyrell', 'Tyrell Corporation'), (14, 'aperture', 'Aperture Science'), (15, 'black-mesa', 'Black Mesa'),
    (16, 'oscorp', 'Oscorp'), (17, 'dunder-mifflin', 'Dunder Mifflin'), (18, 'monsters-inc', 'Monsters, Inc.'),
    (19, 'gringotts', 'Gringotts'), (20, 'massive-dynamic', 'Massive Dynamic'), (21, 'nakatomi', 'Nakatomi Trading'),
    (22, 'weyland-yutani', 'Weyland-Yutani'), (23, 'sirius-cybernetics', 'Sirius Cybernetics'), (24, 'bluth', 'Bluth Company')
) AS n (id, slug, name) ON n.id = p.tenant_id
CROSS JOIN LATERAL (
    SELECT adjs[1 + pg_temp.pick(@seed, 23, p.tenant_id, cardinality(adjs))] AS adj,
           nouns[1 + pg_temp.pick(@seed, 24, p.tenant_id, cardinality(nouns))] AS noun
    FROM (SELECT ARRAY['northwind', 'blue', 'silver', 'bright', 'rapid', 'quiet', 'golden', 'red', 'iron',
                       'clear', 'little', 'green', 'swift', 'bold', 'urban', 'coastal', 'alpine', 'sunny'] AS adjs,
                 ARRAY['labs', 'foods', 'logistics', 'studio', 'works', 'bakery', 'analytics', 'media', 'health',
                       'systems', 'outfitters', 'coffee', 'robotics', 'travel', 'books', 'garden'] AS nouns) AS words
) AS g;

-- step: users
INSERT INTO users (id, email, name, created_at)
SELECT u.id, lower(u.first) || '.' || lower(u.last) || '.' || u.id || '@example.com', u.first || ' ' || u.last,
       pg_temp.at(@seed, 30, u.id)
FROM (
    SELECT g AS id,
           firsts[1 + pg_temp.pick(@seed, 31, g, cardinality(firsts))] AS first,
           lasts[1 + pg_temp.pick(@seed, 32, g, cardinality(lasts))] AS last
    FROM generate_series(1, @users::bigint) AS g
    CROSS JOIN (SELECT ARRAY['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Margaret',
                             'Linus', 'Radia', 'Dennis', 'Hedy', 'John', 'Sophie', 'Tim', 'Katherine', 'Niklaus'] AS firsts,
                       ARRAY['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson',
                             'Hamilton', 'Torvalds', 'Perlman', 'Ritchie', 'Lamarr', 'Backus', 'Wilson', 'Berners-Lee',
                             'Johnson', 'Wirth'] AS lasts) AS names
) AS u;

-- step: memberships
-- A tenant's members are a run of consecutive users, so each (tenant, user) pair is distinct.
INSERT INTO memberships (tenant_id, user_id, role, created_at)
SELECT p.tenant_id, 1 + (p.user_off + k - 1) % @users::bigint,
       CASE WHEN k = 1 THEN 'owner' WHEN k <= 3 THEN 'admin' ELSE 'member' END,
       pg_temp.at(@seed, 33, p.tenant_id * 1000000 + k)
FROM plan AS p
CROSS JOIN generate_series(1, p.members) AS k;

-- step: repos
WITH parent AS (
    SELECT p.*, t.slug AS tenant_slug, c.n, sum(c.n) OVER (ORDER BY p.tenant_id) - c.n AS base,
           CASE WHEN p.tenant_id = 1 THEN 0 ELSE pg_temp.pick(@seed, 41, p.tenant_id, 12) END AS start
    FROM plan AS p
    JOIN tenants AS t ON t.id = p.tenant_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p.big THEN 8 WHEN p.tenant_id = 1 THEN 4
                    ELSE 1 + pg_temp.fan(@seed, 40, p.tenant_id, 2.5) END AS n
    ) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k,
           slugs[1 + (parent.start + k - 1) % 12] || CASE WHEN k > 12 THEN '-' || k ELSE '' END AS slug
    FROM parent
    CROSS JOIN generate_series(1, parent.n) AS k
    CROSS JOIN (SELECT ARRAY['website', 'api', 'mobile-app', 'infra', 'docs', 'billing', 'design-system',
                             'data-pipeline', 'cli', 'sdk', 'dashboard', 'search'] AS slugs) AS s
)
INSERT INTO repos (id, tenant_id, owner_id, fork_parent_id, slug, name, visibility, created_at, deleted_at)
SELECT id, tenant_id,
       1 + (user_off + pg_temp.pick(@seed, 42, id, members)) % @users::bigint,
       -- About one repo in ten is a fork of an earlier repo, often in another tenant.
       CASE WHEN id > 1 AND pg_temp.rnd(@seed, 43, id) < 0.1 THEN 1 + pg_temp.pick(@seed, 44, id, id - 1) END,
       slug, tenant_slug || '/' || slug,
       (ARRAY['private', 'private', 'internal', 'public'])[1 + pg_temp.pick(@seed, 45, id, 4)],
       pg_temp.at(@seed, 46, id),
       CASE WHEN k > 1 AND pg_temp.rnd(@seed, 47, id) < 0.06
            THEN timestamptz '2025-01-01 00:00:00+00' - pg_temp.pick(@seed, 48, id, 8640000) * interval '1 second' END
FROM child;

-- step: branches
WITH parent AS (
    SELECT r.id AS repo_id, c.n, sum(c.n) OVER (ORDER BY r.id) - c.n AS base
    FROM repos AS r
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT 1 + pg_temp.fan(@seed, 50, r.id, 3 * p.w) AS n) AS c
), child AS (
    SELECT parent.repo_id, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO branches (id, repo_id, name, created_at, deleted_at)
SELECT id, repo_id,
       CASE WHEN k = 1 THEN 'main'
            ELSE (ARRAY['feature', 'fix', 'chore', 'release', 'experiment'])[1 + pg_temp.pick(@seed, 51, id, 5)] || '/'
              || (ARRAY['login', 'search', 'billing', 'onboarding', 'export', 'cache', 'ci', 'docs'])[1 + pg_temp.pick(@seed, 52, id, 8)]
              || '-' || k END,
       pg_temp.at(@seed, 53, id),
       CASE WHEN k > 1 AND pg_temp.rnd(@seed, 54, id) < 0.1
            THEN timestamptz '2025-01-01 00:00:00+00' - pg_temp.pick(@seed, 55, id, 8640000) * interval '1 second' END
FROM child;

-- step: commits
WITH parent AS (
    SELECT b.id AS branch_id, b.repo_id, p.user_off, p.members, c.n, sum(c.n) OVER (ORDER BY b.id) - c.n AS base
    FROM branches AS b
    JOIN repos AS r ON r.id = b.repo_id
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT 1 + pg_temp.fan(@seed, 60, b.id, CASE WHEN b.name = 'main' THEN 20 ELSE 4 END) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO commits (id, repo_id, branch_id, sha, message, author_id, committed_at)
SELECT id, repo_id, branch_id, pg_temp.sha(@seed, 61, id),
       (ARRAY['Fix', 'Add', 'Update', 'Remove', 'Refactor', 'Document'])[1 + pg_temp.pick(@seed, 62, id, 6)] || ' '
         || (ARRAY['login flow', 'search index', 'invoice totals', 'build script', 'README', 'API client', 'retry logic'])[1 + pg_temp.pick(@seed, 63, id, 7)],
       CASE WHEN pg_temp.rnd(@seed, 64, id) < 0.03 THEN NULL
            ELSE 1 + (user_off + pg_temp.pick(@seed, 65, id, members)) % @users::bigint END,
       pg_temp.at(@seed, 66, id)
FROM child;

-- step: branch heads
UPDATE branches AS b SET head_commit_id = c.head
FROM (SELECT branch_id, max(id) AS head FROM commits GROUP BY branch_id) AS c
WHERE c.branch_id = b.id;

-- step: objects
WITH parent AS (
    SELECT c.id AS commit_id, c.repo_id, x.n, sum(x.n) OVER (ORDER BY c.id) - x.n AS base
    FROM commits AS c
    CROSS JOIN LATERAL (SELECT 1 + pg_temp.fan(@seed, 70, c.id, 5) AS n) AS x
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO objects (id, repo_id, commit_id, sha, kind, size_bytes)
SELECT id, repo_id, commit_id, pg_temp.sha(@seed, 71, id),
       (ARRAY['blob', 'blob', 'blob', 'tree', 'tree', 'tag'])[1 + pg_temp.pick(@seed, 72, id, 6)],
       16 + pg_temp.pick(@seed, 73, id, 200000)
FROM child;

-- step: issues
WITH parent AS (
    SELECT r.id AS repo_id, p.user_off, p.members, c.n, sum(c.n) OVER (ORDER BY r.id) - c.n AS base
    FROM repos AS r
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 80, r.id, 20 * p.w) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO issues (id, repo_id, number, title, state, author_id, created_at, deleted_at)
SELECT id, repo_id, k,
       (ARRAY['Crash when', 'Slow response when', 'Wrong total when', 'Typo shown when', 'Timeout when', 'Add option for'])[1 + pg_temp.pick(@seed, 81, id, 6)] || ' '
         || (ARRAY['exporting CSV', 'signing in with SSO', 'searching by date', 'uploading images', 'changing plans', 'inviting a teammate'])[1 + pg_temp.pick(@seed, 82, id, 6)],
       CASE WHEN pg_temp.rnd(@seed, 83, id) < 0.6 THEN 'closed' ELSE 'open' END,
       CASE WHEN pg_temp.rnd(@seed, 84, id) < 0.03 THEN NULL
            ELSE 1 + (user_off + pg_temp.pick(@seed, 85, id, members)) % @users::bigint END,
       pg_temp.at(@seed, 86, id),
       CASE WHEN pg_temp.rnd(@seed, 87, id) < 0.05
            THEN timestamptz '2025-01-01 00:00:00+00' - pg_temp.pick(@seed, 88, id, 8640000) * interval '1 second' END
FROM child;

-- step: issue comments
WITH parent AS (
    SELECT i.id AS issue_id, r.tenant_id, p.user_off, p.members, c.n, sum(c.n) OVER (ORDER BY i.id) - c.n AS base
    FROM issues AS i
    JOIN repos AS r ON r.id = i.repo_id
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 90, i.id, 5) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO issue_comments (id, issue_id, tenant_id, author_id, body, created_at, is_deleted)
SELECT id, issue_id, tenant_id,
       CASE WHEN pg_temp.rnd(@seed, 91, id) < 0.03 THEN NULL
            ELSE 1 + (user_off + pg_temp.pick(@seed, 92, id, members)) % @users::bigint END,
       (ARRAY['I can reproduce this.', 'Fixed in the latest build.', 'Can you share the logs?', 'Same here since Tuesday.',
              'This is a duplicate.', 'Closing as it works now.'])[1 + pg_temp.pick(@seed, 93, id, 6)],
       pg_temp.at(@seed, 94, id),
       pg_temp.rnd(@seed, 95, id) < 0.04
FROM child;

-- step: issue labels
INSERT INTO issue_labels (issue_id, label)
SELECT i.id, labels[1 + (pg_temp.pick(@seed, 100, i.id, 6) + k) % 6]
FROM issues AS i
CROSS JOIN LATERAL generate_series(1, least(6, pg_temp.fan(@seed, 101, i.id, 1.2))) AS k
CROSS JOIN (SELECT ARRAY['bug', 'enhancement', 'documentation', 'question', 'security', 'good first issue'] AS labels) AS l;

-- step: proposals
-- Proposals come from feature branches; head_branch_id guards the branch (RESTRICT).
WITH parent AS (
    SELECT b.id AS branch_id, b.repo_id, p.user_off, p.members, c.n, sum(c.n) OVER (ORDER BY b.id) - c.n AS base
    FROM branches AS b
    JOIN repos AS r ON r.id = b.repo_id
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 110, b.id, 1.0) AS n) AS c
    WHERE b.name <> 'main'
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO proposals (id, repo_id, number, title, state, head_branch_id, author_id, created_at)
SELECT id, repo_id, row_number() OVER (PARTITION BY repo_id ORDER BY id),
       (ARRAY['Speed up', 'Clean up', 'Rework', 'Add tests for', 'Harden'])[1 + pg_temp.pick(@seed, 111, id, 5)] || ' '
         || (ARRAY['checkout', 'the importer', 'rate limits', 'session handling', 'the build'])[1 + pg_temp.pick(@seed, 112, id, 5)],
       (ARRAY['open', 'merged', 'merged', 'closed'])[1 + pg_temp.pick(@seed, 113, id, 4)],
       branch_id,
       1 + (user_off + pg_temp.pick(@seed, 114, id, members)) % @users::bigint,
       pg_temp.at(@seed, 115, id)
FROM child;

-- step: proposal comments
WITH parent AS (
    SELECT pr.id AS proposal_id, p.user_off, p.members, c.n, sum(c.n) OVER (ORDER BY pr.id) - c.n AS base
    FROM proposals AS pr
    JOIN repos AS r ON r.id = pr.repo_id
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 120, pr.id, 2.5) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO proposal_comments (id, proposal_id, author_id, body, created_at, deleted_at)
SELECT id, proposal_id,
       1 + (user_off + pg_temp.pick(@seed, 121, id, members)) % @users::bigint,
       (ARRAY['Looks good to me.', 'Please add a test.', 'Nit: naming.', 'Approved.', 'Can we split this?'])[1 + pg_temp.pick(@seed, 122, id, 5)],
       pg_temp.at(@seed, 123, id),
       CASE WHEN pg_temp.rnd(@seed, 124, id) < 0.03
            THEN timestamptz '2025-01-01 00:00:00+00' - pg_temp.pick(@seed, 125, id, 8640000) * interval '1 second' END
FROM child;

-- step: collaborators
-- Collaborators are distinct members of the repo's tenant.
INSERT INTO collaborators (repo_id, user_id, permission)
SELECT r.id,
       1 + (p.user_off + (pg_temp.pick(@seed, 130, r.id, p.members) + k - 1) % p.members) % @users::bigint,
       (ARRAY['read', 'write', 'write', 'admin'])[1 + pg_temp.pick(@seed, 131, r.id * 1000 + k, 4)]
FROM repos AS r
JOIN plan AS p ON p.tenant_id = r.tenant_id
CROSS JOIN LATERAL generate_series(1, least(p.members, 1 + pg_temp.fan(@seed, 132, r.id, 2))) AS k;

-- step: webhooks
WITH parent AS (
    SELECT r.id AS repo_id, r.tenant_id, t.slug AS tenant_slug, c.n, sum(c.n) OVER (ORDER BY r.id) - c.n AS base
    FROM repos AS r
    JOIN tenants AS t ON t.id = r.tenant_id
    JOIN plan AS p ON p.tenant_id = r.tenant_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN t.slug = 'acme' AND r.slug = 'website' THEN 2
                    WHEN p.big THEN 3
                    ELSE pg_temp.fan(@seed, 140, r.id, 0.7) END AS n
    ) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO webhooks (id, repo_id, tenant_id, url, events, active)
SELECT id, repo_id, tenant_id, 'https://hooks.' || tenant_slug || '.example/tombstone-demo/' || id,
       (ARRAY['{push}', '{push,issues}', '{issues,proposals}'])[1 + pg_temp.pick(@seed, 141, id, 3)]::text[],
       pg_temp.rnd(@seed, 142, id) < 0.9
FROM child;

-- step: webhook deliveries
WITH parent AS (
    SELECT wh.id AS webhook_id, wh.repo_id, c.n, sum(c.n) OVER (ORDER BY wh.id) - c.n AS base
    FROM webhooks AS wh
    JOIN plan AS p ON p.tenant_id = wh.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 150, wh.id, 25 * p.w) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO webhook_deliveries (id, repo_id, webhook_id, event, status_code, delivered_at)
SELECT id, repo_id, webhook_id,
       (ARRAY['push', 'issues', 'proposals'])[1 + pg_temp.pick(@seed, 151, id, 3)],
       (ARRAY[200, 200, 200, 200, 200, 202, 404, 500, 504])[1 + pg_temp.pick(@seed, 152, id, 9)],
       pg_temp.at(@seed, 153, id)
FROM child;

-- step: merchants
INSERT INTO merchants (id, name, email, created_at)
SELECT g,
       initcap((ARRAY['harbor', 'maple', 'summit', 'cedar', 'lighthouse', 'meadow', 'granite', 'willow'])[1 + pg_temp.pick(@seed, 160, g, 8)])
         || ' ' || (ARRAY['Trading', 'Retail', 'Goods', 'Supply', 'Commerce'])[1 + pg_temp.pick(@seed, 161, g, 5)]
         || ' ' || (ARRAY['LLC', 'Ltd', 'GmbH', 'Inc.'])[1 + pg_temp.pick(@seed, 162, g, 4)],
       'billing+' || g || '@merchants.example',
       pg_temp.at(@seed, 163, g)
FROM generate_series(1, @merchants::bigint) AS g;

-- step: stores
-- Live stores first (acme-shop, acme-store2, ...), then for some tenants an old tombstoned
-- store that reuses the first subdomain, which the partial unique index allows.
WITH parent AS (
    SELECT p.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, c.live, c.n,
           sum(c.n) OVER (ORDER BY p.tenant_id) - c.n AS base
    FROM plan AS p
    JOIN tenants AS t ON t.id = p.tenant_id
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p.big THEN 12 WHEN p.tenant_id = 1 THEN 2
                    ELSE 1 + pg_temp.fan(@seed, 170, p.tenant_id, least(p.w, 2)) END AS live
    ) AS l
    CROSS JOIN LATERAL (
        SELECT l.live, l.live + CASE WHEN p.tenant_id = 1 OR pg_temp.rnd(@seed, 171, p.tenant_id) < 0.25 THEN 1 ELSE 0 END AS n
    ) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO stores (id, tenant_id, merchant_id, subdomain, name, created_at, deleted_at)
SELECT id, tenant_id, 1 + pg_temp.pick(@seed, 172, id, @merchants::bigint),
       tenant_slug || CASE WHEN k = 1 OR k > live THEN '-shop' ELSE '-store' || k END,
       tenant_name || CASE WHEN k = 1 OR k > live THEN ' Shop' ELSE ' Store ' || k END,
       pg_temp.at(@seed, 173, id),
       CASE WHEN k > live THEN timestamptz '2024-06-01 00:00:00+00' - pg_temp.pick(@seed, 174, id, 8640000) * interval '1 second' END
FROM child;

-- step: hosted sites
-- Each live store was created by a site with the same subdomain. Some stores are shared by a
-- second site (acme-shop and acme-shop-eu), and some are orphans whose site is gone (initech-shop).
WITH parent AS (
    SELECT st.id AS store_id, st.tenant_id, st.subdomain, st.name, c.n, sum(c.n) OVER (ORDER BY st.id) - c.n AS base
    FROM stores AS st
    CROSS JOIN LATERAL (SELECT pg_temp.rnd(@seed, 180, st.id) AS r) AS x
    CROSS JOIN LATERAL (
        SELECT CASE WHEN st.subdomain = 'acme-shop' THEN 2
                    WHEN st.subdomain = 'initech-shop' THEN 0
                    WHEN st.tenant_id = 1 THEN 1
                    WHEN x.r < 0.12 THEN 0
                    WHEN x.r < 0.30 THEN 2
                    ELSE 1 END AS n
    ) AS c
    WHERE st.deleted_at IS NULL
), child AS (
    SELECT parent.*, parent.base + k AS id, k FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO hosted_sites (id, tenant_id, store_id, subdomain, title, created_at)
SELECT id, tenant_id, store_id,
       subdomain || CASE WHEN k = 2 THEN '-eu' ELSE '' END,
       name || CASE WHEN k = 2 THEN ' (EU)' ELSE '' END,
       pg_temp.at(@seed, 181, id)
FROM child;

-- step: landing sites
-- Sites without a store.
INSERT INTO hosted_sites (id, tenant_id, store_id, subdomain, title, created_at)
SELECT coalesce((SELECT max(id) FROM hosted_sites), 0) + row_number() OVER (ORDER BY t.id),
       t.id, NULL, t.slug || '-landing', t.name || ' landing page', pg_temp.at(@seed, 185, t.id)
FROM tenants AS t
WHERE t.id = 1 OR pg_temp.rnd(@seed, 186, t.id) < 0.3;

-- step: store themes
WITH parent AS (
    SELECT st.id AS store_id, c.n, sum(c.n) OVER (ORDER BY st.id) - c.n AS base
    FROM stores AS st
    CROSS JOIN LATERAL (SELECT 1 + pg_temp.fan(@seed, 190, st.id, 0.6) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO store_themes (id, store_id, name, settings)
SELECT id, store_id,
       (ARRAY['Dawn', 'Craft', 'Sense', 'Refresh', 'Ride', 'Studio'])[1 + pg_temp.pick(@seed, 191, id, 6)],
       jsonb_build_object('color', (ARRAY['#1f6feb', '#d29922', '#2da44e', '#cf222e'])[1 + pg_temp.pick(@seed, 192, id, 4)],
                          'font', (ARRAY['Inter', 'Lora', 'Work Sans'])[1 + pg_temp.pick(@seed, 193, id, 3)])
FROM child;

-- step: content pages
-- Pages hang off a store and usually off one of its themes too (a diamond under stores).
WITH parent AS (
    SELECT th.id AS theme_id, th.store_id, c.n, sum(c.n) OVER (ORDER BY th.id) - c.n AS base
    FROM store_themes AS th
    JOIN stores AS st ON st.id = th.store_id
    JOIN plan AS p ON p.tenant_id = st.tenant_id
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 200, th.id, 6 * p.w) AS n) AS c
), child AS (
    SELECT parent.*, parent.base + k AS id FROM parent CROSS JOIN generate_series(1, parent.n) AS k
)
INSERT INTO content_pages (id, store_id, theme_id, slug, title, body, published)
SELECT id, store_id,
       CASE WHEN pg_temp.rnd(@seed, 201, id) < 0.2 THEN NULL ELSE theme_id END,
       page || '-' || id, initcap(replace(page, '-', ' ')),
       'Welcome to our ' || replace(page, '-', ' ') || ' page.',
       pg_temp.rnd(@seed, 202, id) < 0.85
FROM (SELECT child.*, (ARRAY['home', 'about', 'contact', 'shipping', 'returns', 'faq', 'blog', 'careers'])[1 + pg_temp.pick(@seed, 203, child.id, 8)] AS page
      FROM child) AS pages;

-- step: store platforms
INSERT INTO store_platforms (store_id, platform, external_id)
SELECT st.id, platforms[1 + (pg_temp.pick(@seed, 210, st.id, 4) + k) % 4],
       'ext-' || left(pg_temp.sha(@seed, 211, st.id * 10 + k), 12)
FROM stores AS st
CROSS JOIN LATERAL generate_series(1, least(4, pg_temp.fan(@seed, 212, st.id, 1.2))) AS k
CROSS JOIN (SELECT ARRAY['shopify', 'woocommerce', 'square', 'etsy'] AS platforms) AS pl;

-- step: storage warehouses
WITH parent AS (
    SELECT p.tenant_id, c.n, sum(c.n) OVER (ORDER BY p.tenant_id) - c.n AS base
    FROM plan AS p
    CROSS JOIN LATERAL (SELECT CASE WHEN p.big THEN 6 ELSE 1 + pg_temp.fan(@seed, 220, p.tenant_id, 1) END AS n) AS c
)
INSERT INTO storage_options (id, tenant_id, parent_id, kind, name)
SELECT base + k, tenant_id, NULL, 'warehouse',
       (ARRAY['Main warehouse', 'Cold storage', 'Archive', 'Showroom', 'Overflow', 'Returns'])[1 + (k - 1) % 6]
         || CASE WHEN k > 6 THEN ' ' || k ELSE '' END
FROM parent CROSS JOIN generate_series(1, parent.n) AS k;

-- step: storage zones
WITH parent AS (
    SELECT s.id AS parent_id, s.tenant_id, c.n, sum(c.n) OVER (ORDER BY s.id) - c.n AS base
    FROM storage_options AS s
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 221, s.id, 2.5) AS n) AS c
    WHERE s.kind = 'warehouse'
)
INSERT INTO storage_options (id, tenant_id, parent_id, kind, name)
SELECT (SELECT max(id) FROM storage_options) + base + k, tenant_id, parent_id, 'zone', 'Zone ' || k
FROM parent CROSS JOIN generate_series(1, parent.n) AS k;

-- step: storage aisles
WITH parent AS (
    SELECT s.id AS parent_id, s.tenant_id, c.n, sum(c.n) OVER (ORDER BY s.id) - c.n AS base
    FROM storage_options AS s
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 222, s.id, 2.5) AS n) AS c
    WHERE s.kind = 'zone'
)
INSERT INTO storage_options (id, tenant_id, parent_id, kind, name)
SELECT (SELECT max(id) FROM storage_options) + base + k, tenant_id, parent_id, 'aisle', 'Aisle ' || k
FROM parent CROSS JOIN generate_series(1, parent.n) AS k;

-- step: storage shelves
WITH parent AS (
    SELECT s.id AS parent_id, s.tenant_id, c.n, sum(c.n) OVER (ORDER BY s.id) - c.n AS base
    FROM storage_options AS s
    CROSS JOIN LATERAL (SELECT pg_temp.fan(@seed, 223, s.id, 2) AS n) AS c
    WHERE s.kind = 'aisle'
)
INSERT INTO storage_options (id, tenant_id, parent_id, kind, name)
SELECT (SELECT max(id) FROM storage_options) + base + k, tenant_id, parent_id, 'shelf', 'Shelf ' || k
FROM parent CROSS JOIN generate_series(1, parent.n) AS k;

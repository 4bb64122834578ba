-- Shared by the three demo databases, run first on the generator's single session.
--
-- Every generated value comes from rnd(seed, salt, id): a hash of the row's (or its parent's) id,
-- keyed by the seed and a per-use salt. The same seed therefore gives the same rows in any
-- order of execution, and the three databases agree on the tenants without talking to each other.

-- step: functions
CREATE FUNCTION pg_temp.rnd(seed bigint, salt integer, id bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(id, hashint8extended(salt::bigint, seed)) & 4503599627370495)::double precision / 4503599627370496 $$;

-- pick returns a whole number in [0, n).
CREATE FUNCTION pg_temp.pick(seed bigint, salt integer, id bigint, n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT floor(pg_temp.rnd(seed, salt, id) * n)::bigint $$;

-- fan returns a child count whose mean is mean: spread between half and one and a half times
-- the mean, rounded up or down at random so that small means still average out.
CREATE FUNCTION pg_temp.fan(seed bigint, salt integer, id bigint, mean double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT floor(mean * (0.5 + pg_temp.rnd(seed, salt, id)) + pg_temp.rnd(seed, salt + 100000, id))::integer $$;

-- at returns a moment in 2023 or 2024, to the second.
CREATE FUNCTION pg_temp.at(seed bigint, salt integer, id bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT timestamptz '2023-01-01 00:00:00+00' + pg_temp.pick(seed, salt, id, 63158400) * interval '1 second' $$;

-- sha returns 40 hex digits, like a git object name.
CREATE FUNCTION pg_temp.sha(seed bigint, salt integer, id bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT left(lpad(to_hex(hashint8extended(id, hashint8extended(salt::bigint, seed))), 16, '0')
               || lpad(to_hex(hashint8extended(id, hashint8extended(salt::bigint + 1, seed))), 16, '0')
               || lpad(to_hex(hashint8extended(id, hashint8extended(salt::bigint + 2, seed))), 16, '0'), 40) $$;

-- step: plan
-- One row per tenant: its weight w scales how much it owns (1 is an average tenant), and its
-- members are a run of consecutive users starting at user_off. Tenant 1 is acme, of average
-- size; the big tenant (bigco) comes last and only when big_w > 0.
CREATE TEMP TABLE plan AS
SELECT g::bigint AS tenant_id,
       g = @tenants::integer + 1 AS big,
       w,
       least(@users::bigint, 3 + pg_temp.fan(@seed, 3, g, 6 * w))::integer AS members,
       pg_temp.pick(@seed, 4, g, @users::bigint) AS user_off
FROM generate_series(1, @tenants::integer + CASE WHEN @big_w::double precision > 0 THEN 1 ELSE 0 END) AS g
CROSS JOIN LATERAL (
    SELECT CASE WHEN g = @tenants::integer + 1 THEN @big_w::double precision
                WHEN g = 1 THEN 1.0
                ELSE 0.2 + 2.0 * pg_temp.rnd(@seed, 2, g) ^ 2 END AS w
) AS weight;

-- step: plan key
ALTER TABLE plan ADD PRIMARY KEY (tenant_id);

-- Run last in every demo database: move identity sequences past the generated ids, so that rows
-- inserted later (by tests, or by hand) get fresh ids.
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT a.attrelid::regclass AS tbl, a.attname
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND a.attidentity <> '' AND NOT a.attisdropped
    LOOP
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), coalesce(max(%I), 0) + 1, false) FROM %s',
                       col.tbl, col.attname, col.attname, col.tbl);
    END LOOP;
END
$$;

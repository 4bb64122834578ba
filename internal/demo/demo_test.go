package demo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup builds demo databases under a fresh prefix and drops them when the test ends.
func setup(t *testing.T, opts demo.Options) (*demo.Result, demo.Options) {
	t.Helper()
	pgtest.Admin(t) // fails with a hint when PostgreSQL is not running
	if opts.Prefix == "" {
		opts.Prefix = newPrefix()
	}
	opts.AdminURL = pgtest.AdminURL()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := demo.Drop(ctx, opts.AdminURL, opts.Prefix); err != nil {
			t.Errorf("drop demo databases: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := demo.Setup(ctx, opts)
	require.NoError(t, err)
	return res, opts
}

func newPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "demo_t" + hex.EncodeToString(b[:])
}

func open(t *testing.T, url string) *pg.DB {
	t.Helper()
	db, err := pg.Open(context.Background(), url, pg.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// contentHashes returns, per "target.schema.table", the md5 of all its rows as text in a fixed
// order.
func contentHashes(t *testing.T, res *demo.Result) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for target, url := range res.Databases {
		db := open(t, url)
		for _, tbl := range tables(t, db) {
			var sum string
			err := db.Pool.QueryRow(ctx, "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM "+tbl.Quoted()+" AS t").Scan(&sum)
			require.NoError(t, err)
			out[target+"."+tbl.String()] = sum
		}
	}
	return out
}

func tables(t *testing.T, db *pg.DB) []pg.Table {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pg.Table, error) {
		var tbl pg.Table
		return tbl, r.Scan(&tbl.Schema, &tbl.Name)
	})
	require.NoError(t, err)
	return out
}

func TestSetupIsDeterministicAndIdempotent(t *testing.T) {
	t.Parallel()
	opts := demo.Options{Seed: 7, Scale: 0.2}

	first, opts := setup(t, opts)
	require.Greater(t, first.Total(), int64(10_000))
	firstHashes := contentHashes(t, first)
	require.Len(t, firstHashes, len(first.Rows))

	// Again under the same prefix: the databases are rebuilt from nothing, not added to, and
	// the same seed gives the same rows.
	again, err := demo.Setup(context.Background(), opts)
	require.NoError(t, err)
	require.Equal(t, first.Rows, again.Rows)
	require.Equal(t, firstHashes, contentHashes(t, again))

	// Another seed gives other content, with the same readable names.
	reseeded, _ := setup(t, demo.Options{Seed: 8, Scale: 0.2})
	reseededHashes := contentHashes(t, reseeded)
	var changed []string
	for table, sum := range firstHashes {
		if reseededHashes[table] != sum {
			changed = append(changed, table)
		}
	}
	for _, table := range []string{"app.public.repos", "app.public.issues", "app.public.objects", "pos.public.pos_transactions", "alerts.public.alerts"} {
		require.Contains(t, changed, table)
	}
	var slug string
	require.NoError(t, open(t, reseeded.Databases["app"]).Pool.QueryRow(context.Background(), "SELECT slug FROM tenants WHERE id = 1").Scan(&slug))
	require.Equal(t, "acme", slug)
}

func TestSetupIntegrity(t *testing.T) {
	t.Parallel()
	res, _ := setup(t, demo.Options{Seed: 1, Scale: 0.2, BigTenantRows: 20_000})
	ctx := context.Background()
	app := open(t, res.Databases["app"])

	t.Run("every foreign key is satisfied", func(t *testing.T) {
		for target, url := range res.Databases {
			db := open(t, url)
			fks := foreignKeys(t, db)
			if target == "app" {
				require.GreaterOrEqual(t, len(fks), 30)
			}
			for _, fk := range fks {
				require.Zerof(t, orphans(t, db, fk), "%s: rows of %s whose %s refer to no row of %s", target, fk.child, fk.cols, fk.parent)
			}
		}
	})

	t.Run("the app schema mixes actions, keys and indexes", func(t *testing.T) {
		fks := foreignKeys(t, app)
		actions := map[string]bool{}
		composite := false
		for _, fk := range fks {
			actions[fk.action] = true
			composite = composite || len(fk.cols) > 1
		}
		for _, a := range []string{"CASCADE", "SET NULL", "RESTRICT", "NO ACTION"} {
			require.Truef(t, actions[a], "no foreign key with ON DELETE %s", a)
		}
		require.True(t, composite, "no composite foreign key")
		require.Equal(t, []string{"issue_comments.tenant_id"}, unindexed(t, app))

		var partial string
		require.NoError(t, app.Pool.QueryRow(ctx, "SELECT pg_get_indexdef('stores_subdomain_live_key'::regclass)").Scan(&partial))
		require.Contains(t, partial, "UNIQUE INDEX")
		require.Contains(t, partial, "WHERE (deleted_at IS NULL)")
	})

	t.Run("everything but users and merchants hangs off tenants", func(t *testing.T) {
		reached := map[string]bool{"tenants": true}
		fks := foreignKeys(t, app)
		for changed := true; changed; {
			changed = false
			for _, fk := range fks {
				if reached[fk.parent] && !reached[fk.child] {
					reached[fk.child], changed = true, true
				}
			}
		}
		for _, tbl := range tables(t, app) {
			if tbl.Name == "users" || tbl.Name == "merchants" {
				require.False(t, reached[tbl.Name], tbl.Name)
				continue
			}
			require.Truef(t, reached[tbl.Name], "%s is not reachable from tenants", tbl.Name)
		}
	})

	t.Run("tenant_id in the other services names an app tenant", func(t *testing.T) {
		var ids []int64
		require.NoError(t, app.Bun.NewSelect().Table("tenants").Column("id").Scan(ctx, &ids))
		for _, target := range []string{"pos", "alerts"} {
			db := open(t, res.Databases[target])
			n := 0
			for _, tbl := range tables(t, db) {
				var missing, rows int64
				err := db.Pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE tenant_id <> ALL($1)), count(*) FROM "+tbl.Quoted(), ids).Scan(&missing, &rows)
				require.NoError(t, err)
				require.Zerof(t, missing, "%s.%s", target, tbl)
				require.Positive(t, rows, "%s.%s", target, tbl)
				n++
			}
			require.GreaterOrEqual(t, n, 3)
		}
	})

	t.Run("readable roots and the cases' shapes are there", func(t *testing.T) {
		one := func(sql string, args ...any) int64 {
			t.Helper()
			var n int64
			require.NoError(t, app.Pool.QueryRow(ctx, sql, args...).Scan(&n))
			return n
		}
		require.EqualValues(t, 1, one("SELECT count(*) FROM tenants WHERE slug = 'acme' AND deleted_at IS NULL"))
		require.EqualValues(t, 1, one("SELECT count(*) FROM tenants WHERE slug = 'soylent' AND deleted_at IS NOT NULL"))
		require.EqualValues(t, 1, one("SELECT count(*) FROM repos WHERE name = 'acme/website' AND deleted_at IS NULL"))
		// Case 1: two sites share acme's store; initech's store is an orphan.
		require.EqualValues(t, 1, one("SELECT count(DISTINCT store_id) FROM hosted_sites WHERE subdomain IN ('acme-shop', 'acme-shop-eu')"))
		require.EqualValues(t, 0, one("SELECT count(*) FROM hosted_sites h JOIN stores s ON s.id = h.store_id WHERE s.subdomain = 'initech-shop'"))
		require.EqualValues(t, 1, one("SELECT count(*) FROM stores WHERE subdomain = 'initech-shop' AND deleted_at IS NULL"))
		require.Positive(t, one("SELECT count(*) FROM stores AS dead JOIN stores AS live ON live.subdomain = dead.subdomain AND live.deleted_at IS NULL WHERE dead.deleted_at IS NOT NULL"))
		// Rows already tombstoned, for previews to report.
		for _, sql := range []string{
			"SELECT count(*) FROM repos WHERE deleted_at IS NOT NULL",
			"SELECT count(*) FROM issues WHERE deleted_at IS NOT NULL",
			"SELECT count(*) FROM issue_comments WHERE is_deleted",
			"SELECT count(*) FROM branches WHERE deleted_at IS NOT NULL",
			// Forks across tenants: deleting one tenant detaches another's repo.
			"SELECT count(*) FROM repos r JOIN repos p ON p.id = r.fork_parent_id WHERE p.tenant_id <> r.tenant_id",
			"SELECT count(*) FROM storage_options WHERE parent_id IS NOT NULL",
			"SELECT count(*) FROM webhooks w JOIN tenants t ON t.id = w.tenant_id WHERE t.slug = 'acme'",
		} {
			require.Positive(t, one(sql), sql)
		}
		// bigco owns about BigTenantRows rows across the three databases.
		require.InDelta(t, 20_000, bigcoRows(t, res), 20_000*0.3)
		// New rows get fresh ids.
		require.Greater(t, one("INSERT INTO tenants (slug, name) VALUES ('fresh-' || md5(random()::text), 'Fresh') RETURNING id"), one("SELECT count(*) FROM tenants")-1)
	})

	t.Run("PostgreSQL's own delete of a tenant stops at the NO ACTION guard", func(t *testing.T) {
		tx, err := app.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, "SAVEPOINT s")
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "DELETE FROM tenants WHERE slug = 'acme'")
		require.ErrorIs(t, pg.Interpret(err), pg.ErrReferenced)
		var pgErr *pg.Error
		require.ErrorAs(t, pg.Interpret(err), &pgErr)
		require.Equal(t, "webhooks_tenant_id_fkey", pgErr.Constraint)
		_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
		require.NoError(t, err)

		// With the webhooks gone first, the rest cascades: the other RESTRICT edges guard rows
		// the same delete removes.
		_, err = tx.Exec(ctx, "DELETE FROM webhooks WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')")
		require.NoError(t, err)
		tag, err := tx.Exec(ctx, "DELETE FROM tenants WHERE slug = 'acme'")
		require.NoError(t, err)
		require.EqualValues(t, 1, tag.RowsAffected())
		var left int64
		require.NoError(t, tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM stores WHERE tenant_id = 1) + (SELECT count(*) FROM storage_options WHERE tenant_id = 1) + (SELECT count(*) FROM repos WHERE tenant_id = 1)").Scan(&left))
		require.Zero(t, left)
	})

	t.Run("the example policy names tables and columns that exist", func(t *testing.T) {
		env := res.EnvVars()
		env["TOMBSTONE_DATABASE_URL"] = "postgres://tombstone@127.0.0.1:5432/tombstone"
		cfg, err := config.Parse("tombstone.yaml", examples.Policy(), lookup(env))
		require.NoError(t, err)

		columns := map[string][]string{} // "target.table" -> columns
		for target, url := range res.Databases {
			rows, err := open(t, url).Pool.Query(ctx, "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")
			require.NoError(t, err)
			var tbl, col string
			_, err = pgx.ForEachRow(rows, []any{&tbl, &col}, func() error {
				columns[target+"."+tbl] = append(columns[target+"."+tbl], col)
				return nil
			})
			require.NoError(t, err)
		}
		hasColumn := func(target, table, col string) bool {
			return slices.Contains(columns[target+"."+table], col)
		}
		inSomeTarget := func(table string) (string, bool) {
			for _, target := range demo.Targets {
				if _, ok := columns[target+"."+table]; ok {
					return target, true
				}
			}
			return "", false
		}
		for name, k := range cfg.Kinds {
			require.Containsf(t, columns, k.Target+"."+k.Table, "kind %s", name)
			for _, col := range append(append(slices.Clone(k.Search), k.Owns...), config.LabelColumns(k.Label)...) {
				require.Truef(t, hasColumn(k.Target, k.Table, col), "kind %s: %s.%s", name, k.Table, col)
			}
			for _, a := range k.Also {
				require.Truef(t, hasColumn(a.Target, a.Table, a.Column), "kind %s: also %s.%s", name, a.Table, a.Column)
			}
		}
		for table, rule := range cfg.Tables {
			target, ok := inSomeTarget(table)
			require.Truef(t, ok, "tables.%s", table)
			if rule.Soft != "" {
				require.True(t, hasColumn(target, table, rule.Soft))
			}
		}
		for key := range cfg.Edges {
			table, col, _ := strings.Cut(key, ".")
			target, ok := inSomeTarget(table)
			require.Truef(t, ok, "edges.%s", key)
			require.Truef(t, hasColumn(target, table, col), "edges.%s", key)
		}
	})
}

func TestExamplePolicy(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"TOMBSTONE_DATABASE_URL": "postgres://tombstone@127.0.0.1:5432/tombstone",
		"DEMO_APP_URL":           "postgres://postgres@127.0.0.1:5432/demo_app",
		"DEMO_POS_URL":           "postgres://postgres@127.0.0.1:5432/demo_pos",
		"DEMO_ALERTS_URL":        "postgres://postgres@127.0.0.1:5432/demo_alerts",
	}
	cfg, err := config.Parse("tombstone.yaml", examples.Policy(), lookup(env))
	require.NoError(t, err)

	require.Equal(t, "http://127.0.0.1:8080", cfg.BaseURL)
	require.Equal(t, []string{"alerts", "app", "pos"}, cfg.TargetNames())
	require.Equal(t, env["DEMO_POS_URL"], cfg.Targets["pos"].DSN)
	require.Equal(t, []string{"repo", "site", "tenant"}, cfg.KindNames())

	tenant := cfg.Kinds["tenant"]
	require.Equal(t, config.ActionDelete, tenant.Root)
	require.Equal(t, config.Duration(30*24*time.Hour), tenant.Archive)
	require.Equal(t, []config.Also{
		{Target: "pos", Table: "pos_configurations", Column: "tenant_id"},
		{Target: "alerts", Table: "alert_rules", Column: "tenant_id"},
	}, tenant.Also)
	require.Equal(t, config.ActionSoft, cfg.Kinds["repo"].Root)
	require.Equal(t, []string{"store_id"}, cfg.Kinds["site"].Owns)
	require.Equal(t, []string{"subdomain", "title"}, cfg.Kinds["site"].Search)

	require.True(t, cfg.Tables["merchants"].Protect)
	require.Equal(t, "is_deleted", cfg.Tables["issue_comments"].Soft)
	for _, table := range []string{"objects", "branches", "commits"} {
		require.Equal(t, config.ActionKeep, cfg.Tables[table].UnderSoft, table)
	}
	require.Equal(t, config.ActionDelete, cfg.Edges["webhooks.tenant_id"].UnderDelete)

	// With TOMBSTONE_BASE_URL set, it wins over the default.
	env["TOMBSTONE_BASE_URL"] = "https://tombstone.example.com"
	cfg, err = config.Parse("tombstone.yaml", examples.Policy(), lookup(env))
	require.NoError(t, err)
	require.Equal(t, "https://tombstone.example.com", cfg.BaseURL)

	// A missing target URL is named.
	delete(env, "DEMO_ALERTS_URL")
	_, err = config.Parse("tombstone.yaml", examples.Policy(), lookup(env))
	require.ErrorContains(t, err, "environment variable DEMO_ALERTS_URL is not set")

	// Policy hands out copies.
	p := examples.Policy()
	p[0] = 'X'
	require.NotEqual(t, p[0], examples.Policy()[0])
}

func TestSetupRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts demo.Options
		want string
	}{
		{"prefix with a quote", demo.Options{AdminURL: pgtest.AdminURL(), Prefix: `x"; drop`}, "prefix must be"},
		{"upper-case prefix", demo.Options{AdminURL: pgtest.AdminURL(), Prefix: "Demo"}, "prefix must be"},
		{"negative scale", demo.Options{AdminURL: pgtest.AdminURL(), Scale: -1}, "scale must be above zero"},
		{"huge big tenant", demo.Options{AdminURL: pgtest.AdminURL(), BigTenantRows: 1 << 40}, "big tenant rows"},
		{"no admin URL", demo.Options{}, "admin database URL"},
		{"keyword DSN", demo.Options{AdminURL: "host=127.0.0.1 dbname=postgres", Prefix: newPrefix()}, "postgres:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := demo.Setup(ctx, tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// bigcoRows counts the rows the tenant bigco owns in the three databases.
func bigcoRows(t *testing.T, res *demo.Result) int64 {
	t.Helper()
	ctx := context.Background()
	var id, total int64
	app := open(t, res.Databases["app"])
	require.NoError(t, app.Pool.QueryRow(ctx, "SELECT id FROM tenants WHERE slug = 'bigco'").Scan(&id))
	owned := []string{
		"SELECT count(*) FROM tenants WHERE id = $1",
		"SELECT count(*) FROM memberships WHERE tenant_id = $1",
		"SELECT count(*) FROM repos WHERE tenant_id = $1",
		"SELECT count(*) FROM stores WHERE tenant_id = $1",
		"SELECT count(*) FROM hosted_sites WHERE tenant_id = $1",
		"SELECT count(*) FROM storage_options WHERE tenant_id = $1",
		"SELECT count(*) FROM webhooks WHERE tenant_id = $1",
		"SELECT count(*) FROM issue_comments WHERE tenant_id = $1",
		"SELECT count(*) FROM issues x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM branches x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM commits x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM objects x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM proposals x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM collaborators x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM webhook_deliveries x JOIN repos r ON r.id = x.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM issue_labels x JOIN issues i ON i.id = x.issue_id JOIN repos r ON r.id = i.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM proposal_comments x JOIN proposals p ON p.id = x.proposal_id JOIN repos r ON r.id = p.repo_id WHERE r.tenant_id = $1",
		"SELECT count(*) FROM store_themes x JOIN stores s ON s.id = x.store_id WHERE s.tenant_id = $1",
		"SELECT count(*) FROM content_pages x JOIN stores s ON s.id = x.store_id WHERE s.tenant_id = $1",
		"SELECT count(*) FROM store_platforms x JOIN stores s ON s.id = x.store_id WHERE s.tenant_id = $1",
	}
	for _, sql := range owned {
		var n int64
		require.NoError(t, app.Pool.QueryRow(ctx, sql, id).Scan(&n))
		total += n
	}
	for _, target := range []string{"pos", "alerts"} {
		db := open(t, res.Databases[target])
		for _, tbl := range tables(t, db) {
			var n int64
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+tbl.Quoted()+" WHERE tenant_id = $1", id).Scan(&n))
			total += n
		}
	}
	return total
}

func lookup(env map[string]string) config.Env {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

type foreignKey struct {
	name, child, parent, action string
	cols, refCols               []string
}

func foreignKeys(t *testing.T, db *pg.DB) []foreignKey {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
		SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
		       CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT'
		                          WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END,
		       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k (num, i)
		             JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.i),
		       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k (num, i)
		             JOIN pg_attribute AS a ON a.attrelid = c.confrelid AND a.attnum = k.num ORDER BY k.i)
		FROM pg_constraint AS c
		WHERE c.contype = 'f'
		ORDER BY 1`)
	require.NoError(t, err)
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (foreignKey, error) {
		var fk foreignKey
		return fk, r.Scan(&fk.name, &fk.child, &fk.parent, &fk.action, &fk.cols, &fk.refCols)
	})
	require.NoError(t, err)
	return fks
}

// orphans counts the child rows of fk (with all key columns set, as MATCH SIMPLE checks) whose
// parent row does not exist.
func orphans(t *testing.T, db *pg.DB, fk foreignKey) int64 {
	t.Helper()
	var notNull, match []string
	for i, col := range fk.cols {
		notNull = append(notNull, "c."+pg.QuoteIdent(col)+" IS NOT NULL")
		match = append(match, "p."+pg.QuoteIdent(fk.refCols[i])+" = c."+pg.QuoteIdent(col))
	}
	sql := "SELECT count(*) FROM " + pg.Table{Schema: "public", Name: fk.child}.Quoted() + " AS c WHERE " +
		strings.Join(notNull, " AND ") + " AND NOT EXISTS (SELECT 1 FROM " +
		pg.Table{Schema: "public", Name: fk.parent}.Quoted() + " AS p WHERE " + strings.Join(match, " AND ") + ")"
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql).Scan(&n))
	return n
}

// unindexed lists "table.column" for the foreign keys no index leads with.
func unindexed(t *testing.T, db *pg.DB) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
		SELECT c.conrelid::regclass::text || '.' || string_agg(a.attname, ',' ORDER BY k.i)
		FROM pg_constraint AS c
		CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k (num, i)
		JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.num
		WHERE c.contype = 'f' AND NOT EXISTS (
		    SELECT 1 FROM pg_index AS x
		    WHERE x.indrelid = c.conrelid
		      AND (x.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
		      AND (x.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
		GROUP BY c.oid, c.conrelid
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

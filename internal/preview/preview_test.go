package preview_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// singleTarget is a preview.Targets over one database named "db".
type singleTarget struct{ db *pg.DB }

func (s singleTarget) DB(context.Context, string) (*pg.DB, error) { return s.db, nil }

func engineFor(t *testing.T, db *pg.DB, policy string) *preview.Engine {
	t.Helper()
	src := "database: postgres://x/y\ntargets:\n  db: {dsn: postgres://x/y}\n" + policy
	cfg, err := config.Parse("test.yaml", []byte(src), nil)
	require.NoError(t, err)
	return preview.NewEngine(cfg, singleTarget{db}, schema.NewCache(0))
}

func exec(t *testing.T, db *pg.DB, sql string) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql)
	require.NoError(t, err, sql)
}

func summary(p *preview.Preview) map[string]int64 {
	out := map[string]int64{}
	for _, l := range p.Summary {
		out[l.Table+" "+l.Action] = l.Rows
	}
	return out
}

func TestHostileIdentifiers(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE SCHEMA "Weird Schema";
		CREATE TABLE "Weird Schema"."Ten""ants" ("ID ?" bigint PRIMARY KEY, "näme" text, "select" text);
		CREATE TABLE "Weird Schema"."$1 orders" ("key" bigint PRIMARY KEY, "a""; drop table x;--" bigint REFERENCES "Weird Schema"."Ten""ants" ON DELETE CASCADE, "title" text);
		CREATE TABLE "Weird Schema"."größe ?" ("Order" bigint REFERENCES "Weird Schema"."$1 orders" ON DELETE SET NULL, "x" int);
		INSERT INTO "Weird Schema"."Ten""ants" VALUES (1, 'Acme', 'x'), (2, 'Other', 'y');
		INSERT INTO "Weird Schema"."$1 orders" VALUES (10, 1, 'one'), (11, 1, 'two'), (12, 2, 'three');
		INSERT INTO "Weird Schema"."größe ?" VALUES (10, 1), (11, 2), (12, 3), (NULL, 4);`)
	e := engineFor(t, db, "kinds:\n  t:\n    table: 'Weird Schema.Ten\"ants'\n    search: ['näme', 'select']\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "t")
	require.NoError(t, err)

	// A search term that is SQL stays a search term.
	_, err = e.FindRoot(ctx, plan, "x' OR 1=1; --")
	require.ErrorIs(t, err, preview.ErrRootNotFound)
	_, err = e.FindRoot(ctx, plan, "$1")
	require.ErrorIs(t, err, preview.ErrRootNotFound)

	root, err := e.FindRoot(ctx, plan, "acme")
	require.NoError(t, err)
	require.Equal(t, []string{"1"}, root.Key)
	p, err := e.Run(ctx, plan, root.Key)
	require.NoError(t, err)
	require.False(t, p.Blocked())
	require.Equal(t, map[string]int64{
		`Weird Schema.Ten"ants delete`:  1,
		`Weird Schema.$1 orders delete`: 2,
		`Weird Schema.größe ? detach`:   2,
	}, summary(p))
	require.Len(t, p.Digest, 64)
}

func TestPlanIsReusedUntilTheSchemaChanges(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, slug text UNIQUE);
		CREATE TABLE repos (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants);`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants, search: [slug]}\ndefaults: {under_delete: delete}\n")
	ctx := context.Background()
	first, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	again, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	require.Same(t, first, again, "an unchanged schema gives the plan already resolved")
	require.Len(t, first.Nodes, 2)

	exec(t, db, `CREATE TABLE issues (id bigint PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos)`)
	changed, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	require.NotSame(t, first, changed, "a new table under the root gives a new plan")
	require.Len(t, changed.Nodes, 3)
	require.NotEqual(t, first.Fingerprints, changed.Fingerprints)
}

func TestRootLookup(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, slug text UNIQUE, name text, deleted_at timestamptz);
		CREATE TABLE pairs (a int, b text, name text, PRIMARY KEY (a, b));
		INSERT INTO tenants VALUES (1, 'acme', 'Acme Inc', NULL), (2, 'acme-eu', 'Acme EU', NULL), (3, 'globex', 'Globex Acme', now());
		INSERT INTO pairs VALUES (1, 'x', 'first'), (1, 'y', 'second');`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants, search: [slug, name], label: '{name} ({slug})'}\n  pair: {table: pairs, search: [name]}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)

	c, err := e.FindRoot(ctx, plan, "2")
	require.NoError(t, err)
	require.Equal(t, "Acme EU (acme-eu)", c.Label)
	c, err = e.FindRoot(ctx, plan, "ACME")
	require.NoError(t, err, "exact, case-insensitive match on slug wins over substring matches")
	require.Equal(t, []string{"1"}, c.Key)

	_, err = e.FindRoot(ctx, plan, "acm")
	var nf *preview.NotFoundError
	require.ErrorAs(t, err, &nf)
	require.Len(t, nf.Closest, 3, "closest matches are listed")

	exec(t, db, `UPDATE tenants SET name = 'acme' WHERE id = 2`)
	_, err = e.FindRoot(ctx, plan, "acme")
	var amb *preview.AmbiguousError
	require.ErrorAs(t, err, &amb)
	require.Len(t, amb.Matches, 2)

	res, err := e.Search(ctx, "tenant", "glob", 10)
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.True(t, res[0].Tombstoned)

	pplan, err := e.Plan(ctx, "pair")
	require.NoError(t, err)
	c, err = e.FindRoot(ctx, pplan, "1,y")
	require.NoError(t, err, "a composite key is comma-separated in key order")
	require.Equal(t, "second", c.Label)

	_, err = e.Plan(ctx, "tenantz")
	require.ErrorContains(t, err, `unknown kind "tenantz" (known kinds: pair, tenant)`)
}

func TestSoftDeleteAndOwns(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE merchants (id bigint PRIMARY KEY, name text);
		CREATE TABLE stores (id bigint PRIMARY KEY, merchant_id bigint NOT NULL REFERENCES merchants, subdomain text, deleted_at timestamptz);
		CREATE TABLE sites (id bigint PRIMARY KEY, store_id bigint REFERENCES stores ON DELETE SET NULL, subdomain text);
		CREATE TABLE pages (id bigint PRIMARY KEY, store_id bigint NOT NULL REFERENCES stores ON DELETE CASCADE, title text);
		INSERT INTO merchants VALUES (1, 'M');
		INSERT INTO stores VALUES (1, 1, 'a', NULL), (2, 1, 'b', NULL);
		INSERT INTO sites VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 2, 'b2');
		INSERT INTO pages VALUES (1, 1, 'p1'), (2, 1, 'p2'), (3, 2, 'p3');

		CREATE TABLE repos (id bigint PRIMARY KEY, name text, deleted_at timestamptz);
		CREATE TABLE issues (id bigint PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos ON DELETE CASCADE, deleted_at timestamptz);
		CREATE TABLE comments (id bigint PRIMARY KEY, issue_id bigint NOT NULL REFERENCES issues ON DELETE CASCADE, is_deleted boolean NOT NULL DEFAULT false);
		CREATE TABLE objects (id bigint PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos ON DELETE CASCADE);
		INSERT INTO repos VALUES (1, 'r', NULL);
		INSERT INTO issues VALUES (1, 1, NULL), (2, 1, now());
		INSERT INTO comments VALUES (1, 1, false), (2, 1, true), (3, 2, false);
		INSERT INTO objects VALUES (1, 1), (2, 1);`)
	e := engineFor(t, db, `kinds:
  site: {table: sites, owns: [store_id]}
  repo: {table: repos, root: soft}
tables:
  merchants: {protect: true}
`)
	ctx := context.Background()
	site, err := e.Plan(ctx, "site")
	require.NoError(t, err)

	// Site 1 owns store 1 alone: the store and its pages go.
	p, err := e.Run(ctx, site, []string{"1"})
	require.NoError(t, err)
	require.False(t, p.Blocked())
	require.Equal(t, int64(1), summary(p)["public.stores delete"])
	require.Equal(t, int64(2), summary(p)["public.pages delete"])

	// Site 2 shares store 2 with site 3: the store stays, with a warning.
	p, err = e.Run(ctx, site, []string{"2"})
	require.NoError(t, err)
	require.Zero(t, summary(p)["public.stores delete"])
	require.Zero(t, summary(p)["public.pages delete"])
	require.Contains(t, fmt.Sprint(p.Warnings), "kept because other rows still refer to them")

	repo, err := e.Plan(ctx, "repo")
	require.NoError(t, err)
	p, err = e.Run(ctx, repo, []string{"1"})
	require.NoError(t, err)
	s := summary(p)
	require.Equal(t, int64(1), s["public.repos soft"])
	require.Equal(t, int64(1), s["public.issues soft"], "issue 2 is already tombstoned")
	require.Equal(t, int64(2), s["public.comments soft"], "comment 2 is already flagged")
	require.Equal(t, int64(2), s["public.objects keep"])
	require.Contains(t, fmt.Sprint(p.Warnings), "already tombstoned")
}

// A soft root on a self-referencing table tombstones its whole subtree, in the preview as in
// the executor's locked evaluation.
func TestSoftRootTree(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE folders (id bigint PRIMARY KEY, parent_id bigint REFERENCES folders ON DELETE CASCADE, name text, deleted_at timestamptz);
		INSERT INTO folders VALUES (1, NULL, 'a', NULL), (2, 1, 'b', NULL), (3, 2, 'c', NULL), (4, NULL, 'other', NULL);`)
	e := engineFor(t, db, "kinds:\n  folder: {table: folders, root: soft}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "folder")
	require.NoError(t, err)
	require.True(t, preview.Inlineable(plan))
	p, err := e.Run(ctx, plan, []string{"1"})
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"public.folders soft": 3}, summary(p))

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{"db": tx}, plan, []string{"1"}, preview.Options{Lock: true})
	require.NoError(t, err)
	locked, err := preview.Describe(ctx, sets)
	require.NoError(t, err)
	require.Equal(t, p.Digest, locked.Digest, "the executor's evaluation agrees with the preview")
}

// diamondDDL is tenants with repos, commits of repos, and objects reached both through commits
// and through repos directly: a diamond.
const diamondDDL = `
	CREATE TABLE tenants (id bigint PRIMARY KEY, name text);
	CREATE TABLE repos (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE);
	CREATE TABLE commits (id bigint PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos ON DELETE CASCADE);
	CREATE TABLE objects (id int PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos ON DELETE CASCADE,
		commit_id bigint REFERENCES commits ON DELETE CASCADE, name text);`

// Leaf sets are counted and hashed as they are read (one piece per path, a row counted by the
// first path that reaches it) and their samples come from a window of the key index; a node
// whose rows are spread thinner than the window falls back to reading all of them. Every figure
// must match the temp-table evaluation.
func TestStreamedLeaves(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, diamondDDL+`
		-- Rows of tenant 1 are sparse among tenant 2's: the sample window misses most of them.
		CREATE TABLE events (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, title text);
		INSERT INTO tenants VALUES (1, 'one'), (2, 'two');
		INSERT INTO repos VALUES (1, 1), (2, 1), (3, 2);
		INSERT INTO commits SELECT g, 1 + g % 3 FROM generate_series(1, 30) g;
		INSERT INTO objects SELECT g, 1 + g % 3, CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 30 END, 'o' || g FROM generate_series(1, 3000) g;
		INSERT INTO events SELECT g, CASE WHEN g % 700 = 0 THEN 1 ELSE 2 END, 'e' || g FROM generate_series(1, 5000) g;
		ANALYZE;`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	require.True(t, preview.Inlineable(plan))

	evaluate := func(inline bool) *preview.Preview { return evaluateRoot(t, db, plan, "1", inline) }
	in, temp := evaluate(true), evaluate(false)
	require.Equal(t, temp.Summary, in.Summary)
	require.Equal(t, temp.Tree, in.Tree)
	require.Equal(t, temp.Digest, in.Digest)

	var objects int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM objects o WHERE repo_id IN (1, 2) OR commit_id IN (SELECT id FROM commits WHERE repo_id IN (1, 2))`).Scan(&objects))
	require.Equal(t, objects, summary(in)["public.objects delete"], "a row reached by both paths counts once")
	require.Equal(t, int64(7), summary(in)["public.events delete"])
	for _, n := range in.Tree.Children {
		if n.Table == "public.events" {
			require.Len(t, n.Sample, preview.SampleSize)
			require.Equal(t, "700", n.Sample[0].Key, "the smallest keys, found past the window")
			require.Equal(t, "3500", n.Sample[4].Key)
		}
	}

	// Swapping one row of a streamed set for another keeps its count and changes the digest.
	exec(t, db, `UPDATE objects SET repo_id = 3 WHERE id = 4; UPDATE objects SET repo_id = 1 WHERE id = 8`)
	moved := evaluate(true)
	require.Equal(t, summary(in), summary(moved))
	require.Equal(t, evaluate(false).Digest, moved.Digest)
	require.NotEqual(t, in.Digest, moved.Digest)
}

// The inline statement of a kind is the same for every root: a connection prepares it once and
// plans it once, generically, and the next root's preview reuses the plan.
func TestInlineStatementIsPlannedOnce(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, name text);
		CREATE TABLE repos (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE);
		INSERT INTO tenants VALUES (1, 'one'), (2, 'two');
		INSERT INTO repos VALUES (1, 1), (2, 1), (3, 2);`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	for key, repos := range map[string]int64{"1": 2, "2": 1} {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		require.NoError(t, err)
		p, err := preview.EvaluateInline(ctx, map[string]preview.Querier{"db": tx}, plan, []string{key})
		require.NoError(t, err)
		require.Equal(t, repos, summary(p)["public.repos delete"])
		require.NoError(t, tx.Rollback(ctx))
	}
	var generic, custom int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH %'").Scan(&generic, &custom))
	require.Equal(t, int64(2), generic, "both previews ran the one generic plan")
	require.Zero(t, custom)
}

// Deferred leaf deletes (the executor's evaluation without an archive): the leaves' sets are
// not built; deleting them from their parents' sets, node by node, counts a row reached by two
// paths once and hashes to the same digest as the preview. Tables with children in the plan, or
// with other actions, keep their sets.
func TestDeferredLeafDeletes(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, diamondDDL+`
		CREATE TABLE labels (tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, label text, PRIMARY KEY (tenant_id, label));
		CREATE TABLE "Log" (tenant_id bigint REFERENCES tenants ON DELETE CASCADE, line text);
		INSERT INTO tenants VALUES (1, 'one'), (2, 'two');
		INSERT INTO repos VALUES (1, 1), (2, 1), (3, 2);
		INSERT INTO commits SELECT g, 1 + g % 3 FROM generate_series(1, 30) g;
		INSERT INTO objects SELECT g, 1 + g % 3, CASE WHEN g % 4 = 0 THEN NULL ELSE 1 + g % 30 END, 'o' || g FROM generate_series(1, 3000) g;
		INSERT INTO labels VALUES (1, 'a'), (1, 'b'), (2, 'a');
		INSERT INTO "Log" VALUES (1, 'x'), (2, 'y');
		-- A cycle across two tables with a leaf below it: b 4 joins only in the fixpoint's second
		-- round (a 3 of tenant 2 refers to b 1; b 4 to a 3), and its leaf rows must go too.
		CREATE TABLE a (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, b_id bigint);
		CREATE TABLE b (id bigint PRIMARY KEY, a_id bigint REFERENCES a ON DELETE CASCADE);
		ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b ON DELETE CASCADE;
		CREATE TABLE c (id bigint PRIMARY KEY, b_id bigint NOT NULL REFERENCES b ON DELETE CASCADE);
		INSERT INTO a VALUES (1, 1, NULL), (2, 2, NULL), (3, 2, NULL);
		INSERT INTO b VALUES (1, 1), (2, 2), (4, 3);
		UPDATE a SET b_id = 1 WHERE id = 3;
		INSERT INTO c VALUES (1, 1), (2, 2), (3, 4), (4, 4);`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	want, err := e.Run(ctx, plan, []string{"1"})
	require.NoError(t, err)

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{"db": tx}, plan, []string{"1"}, preview.Options{Lock: true, DeferLeafDeletes: true})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"public.tenants": false, "public.repos": false, "public.commits": false,
		"public.objects": true, "public.labels": true, "public.Log": false,
		"public.a": false, "public.b": false, "public.c": true}, deferredTables(sets), "leaves with a key are deferred")
	var jit string
	require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('jit')").Scan(&jit))
	require.Equal(t, "off", jit, "no JIT compilation of statements on sets without statistics")
	_, err = sets.Lines(ctx)
	require.NoError(t, err, "lines of the built sets are known before the deletes")
	require.NotEqual(t, want.Digest, digestOf(t, sets, plan), "the deferred sets are missing")

	deleteDeferred(t, tx, sets, want)
	require.Equal(t, want.Digest, digestOf(t, sets, plan), "what was deleted is what the preview showed")
	var left int64
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM objects WHERE repo_id IN (1, 2)").Scan(&left))
	require.Zero(t, left)
	require.Equal(t, int64(3), summary(want)["public.c delete"], "c 1, and c 3 and 4 below b 4, found in the fixpoint")
	require.NoError(t, tx.QueryRow(ctx, "SELECT count(*) FROM c").Scan(&left))
	require.Equal(t, int64(1), left)
}

// A deferred leaf below an owned row reads the owned subtree as rebuilt once the owned row
// turned out to be shared; a table referring to the owned table is not deferred.
func TestDeferredLeafDeletesUnderOwnedRows(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE stores (id bigint PRIMARY KEY, subdomain text);
		CREATE TABLE sites (id bigint PRIMARY KEY, store_id bigint REFERENCES stores ON DELETE SET NULL);
		CREATE TABLE pages (id bigint PRIMARY KEY, store_id bigint NOT NULL REFERENCES stores ON DELETE CASCADE);
		CREATE TABLE views (id bigint PRIMARY KEY, page_id bigint NOT NULL REFERENCES pages ON DELETE CASCADE);
		INSERT INTO stores VALUES (1, 'a'), (2, 'b');
		INSERT INTO sites VALUES (1, 1), (2, 2), (3, 2);
		INSERT INTO pages VALUES (1, 1), (2, 1), (3, 2);
		INSERT INTO views SELECT g, 1 + g % 3 FROM generate_series(1, 30) g;`)
	e := engineFor(t, db, "kinds:\n  site: {table: sites, owns: [store_id]}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "site")
	require.NoError(t, err)
	for _, key := range []string{"1", "2"} {
		want, err := e.Run(ctx, plan, []string{key})
		require.NoError(t, err)
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{"db": tx}, plan, []string{key}, preview.Options{Lock: true, DeferLeafDeletes: true})
		require.NoError(t, err)
		require.Equal(t, map[string]bool{"public.sites": false, "public.stores": false, "public.pages": false, "public.views": true}, deferredTables(sets))
		deleteDeferred(t, tx, sets, want)
		require.Equal(t, want.Digest, digestOf(t, sets, plan), "site %s", key)
		require.NoError(t, tx.Rollback(ctx))
	}
}

// deferredTables maps each table of the sets to whether its set is deferred.
func deferredTables(sets *preview.Sets) map[string]bool {
	out := map[string]bool{}
	for _, ts := range sets.Tables {
		out[ts.Table.Name.String()] = ts.Deferred
	}
	return out
}

// deleteDeferred runs the statements of every deferred set and records them; each must delete
// what the preview counted.
func deleteDeferred(t *testing.T, tx pgx.Tx, sets *preview.Sets, want *preview.Preview) {
	t.Helper()
	for _, ts := range sets.Tables {
		require.Equal(t, ts.Deferred, ts.Pending())
		if !ts.Deferred {
			continue
		}
		var parts []preview.DeferredPart
		for _, sql := range sets.DeferredDeleteSQL(ts) {
			var p preview.DeferredPart
			require.NoError(t, tx.QueryRow(context.Background(), sql).Scan(&p.Rows, &p.Sum1, &p.Sum2), sql)
			parts = append(parts, p)
		}
		require.Len(t, parts, len(ts.Nodes))
		require.NoError(t, ts.RecordDeferred(parts))
		require.False(t, ts.Pending())
		require.Equal(t, summary(want)[ts.Table.Name.String()+" delete"], ts.Rows, ts.Table.Name.String())
	}
}

func digestOf(t *testing.T, sets *preview.Sets, plan *policy.Plan) string {
	t.Helper()
	lines, err := sets.Lines(context.Background())
	require.NoError(t, err)
	return preview.DigestOf(plan, sets.RootKey, lines)
}

// evaluateRoot previews the root with the given key of a single-target plan in one rolled-back
// REPEATABLE READ transaction: in one statement (inline) or through temp tables.
func evaluateRoot(t *testing.T, db *pg.DB, plan *policy.Plan, key string, inline bool) *preview.Preview {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	q := map[string]preview.Querier{"db": tx}
	if inline {
		p, err := preview.EvaluateInline(ctx, q, plan, []string{key})
		require.NoError(t, err)
		return p
	}
	sets, err := preview.Evaluate(ctx, q, plan, []string{key})
	require.NoError(t, err)
	p, err := preview.Describe(ctx, sets)
	require.NoError(t, err)
	return p
}

// A table closed under a tree-shaped self reference below another table: rows reached both from
// the parent and through the self reference, rows reached only through it (from another
// tenant's session, or with no session at all), and a cycle in the data.
func TestSelfReferenceBelowParent(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	exec(t, db, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, name text);
		CREATE TABLE sessions (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE);
		CREATE TABLE txns (id bigint PRIMARY KEY, session_id bigint REFERENCES sessions ON DELETE CASCADE,
			refund_of_id bigint REFERENCES txns ON DELETE CASCADE, note text);
		INSERT INTO tenants VALUES (1, 'one'), (2, 'two');
		INSERT INTO sessions VALUES (1, 1), (2, 2);
		INSERT INTO txns VALUES (1, 1, NULL, 'a'), (2, 1, 1, 'b'), (3, 2, 1, 'c'), (4, NULL, 3, 'd'),
			(10, 1, NULL, 'e'), (11, 2, 10, 'f'), (20, 2, NULL, 'g'), (21, 2, 20, 'h'), (22, NULL, NULL, 'i');
		UPDATE txns SET refund_of_id = 11 WHERE id = 10;
		ANALYZE;`)
	e := engineFor(t, db, "kinds:\n  tenant: {table: tenants}\n")
	ctx := context.Background()
	plan, err := e.Plan(ctx, "tenant")
	require.NoError(t, err)
	require.True(t, preview.Inlineable(plan))

	evaluate := func(inline bool) *preview.Preview { return evaluateRoot(t, db, plan, "1", inline) }
	in, temp := evaluate(true), evaluate(false)
	require.Equal(t, temp.Summary, in.Summary)
	require.Equal(t, temp.Tree, in.Tree)
	require.Equal(t, temp.Digest, in.Digest)
	// 1, 2 and 10 through session 1; 3 (session 2) and 4 (no session) as refunds of 1 and 3;
	// 11 as a refund of 10, which in turn refunds 11.
	require.Equal(t, int64(6), summary(in)["public.txns delete"])
	keys := map[string]bool{}
	for _, n := range in.Tree.Children[0].Children {
		for _, r := range n.Sample {
			keys[r.Key] = true
		}
	}
	require.Equal(t, map[string]bool{"1": true, "2": true, "3": true, "4": true, "10": true}, keys, "the five smallest keys")
}

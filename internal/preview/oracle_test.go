package preview_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
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

// The oracle: on random schemas and data, the preview must agree with PostgreSQL itself.
//   - With defaults.under_delete: delete, per-table distinct counts equal the rows PostgreSQL
//     removes when every FK is switched to ON DELETE CASCADE (in a rolled-back transaction).
//   - With the default policy (follow), the preview is blocked exactly when PostgreSQL's own
//     DELETE of the root fails; otherwise deleted and detached counts per table equal the rows
//     PostgreSQL removes and the rows it changes (SET NULL).
//
// ORACLE_CASES sets the number of cases (default 200), ORACLE_SEED the first seed.
func TestOracle(t *testing.T) {
	t.Parallel()
	cases := envInt("ORACLE_CASES", 200)
	first := envInt("ORACLE_SEED", 1)
	const workers = 2
	for w := 0; w < workers; w++ {
		t.Run(fmt.Sprintf("worker%d", w), func(t *testing.T) {
			t.Parallel()
			db, _ := pgtest.Empty(t)
			for seed := first + w; seed < first+cases; seed += workers {
				runOracleCase(t, db, uint64(seed))
			}
		})
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

type genFK struct {
	child, parent int
	cols          []string // child columns
	refs          []string // parent columns
	onDelete      string
	notNull       bool
}

type genTable struct {
	name        string
	composite   bool // primary key (a, b) instead of (id)
	partitioned bool
	rows        int
}

func (g genTable) keyCols() []string {
	if g.composite {
		return []string{"a", "b"}
	}
	return []string{"id"}
}

func runOracleCase(t *testing.T, db *pg.DB, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, seed*7919))
	sch := fmt.Sprintf("oracle_%d", seed)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("oracle seed %d (rerun with ORACLE_SEED=%d ORACLE_CASES=1): %s", seed, seed, fmt.Sprintf(format, args...))
	}
	ddl, fks, tables := genSchema(r, sch)
	_, err := db.Pool.Exec(ctx, ddl)
	if err != nil {
		fail("schema: %v\n%s", err, ddl)
	}
	if os.Getenv("ORACLE_KEEP") == "" {
		defer func() { _, _ = db.Pool.Exec(ctx, "DROP SCHEMA "+pg.QuoteIdent(sch)+" CASCADE") }()
	}
	if err := genData(ctx, db, r, sch, tables, fks); err != nil {
		fail("data: %v", err)
	}
	rootKey := []string{"1"}
	if tables[0].composite {
		rootKey = []string{"1", "1"}
	}

	for _, mode := range []string{"delete", "follow"} {
		cfg := oracleConfig(t, sch, mode)
		s, err := schema.Load(ctx, db.Bun)
		if err != nil {
			fail("load schema: %v", err)
		}
		plan, err := policy.Resolve(cfg, "root", map[string]*schema.Schema{"db": s})
		if err != nil {
			fail("resolve: %v", err)
		}
		got := previewCounts(ctx, t, db, plan, rootKey, fail)
		want, pgErr := postgresCounts(ctx, db, sch, tables, fks, rootKey, mode == "delete")
		if mode == "delete" {
			if pgErr != nil {
				fail("PostgreSQL cascade failed: %v", pgErr)
			}
			if got.blocked {
				fail("mode delete: preview blocked: %v", got.blockers)
			}
			t.Logf("seed %d: %d tables, %d fks, %d nodes, deleted %v", seed, len(tables), len(fks), len(plan.Nodes), got.deleted)
			require.Equal(t, want.removed, got.deleted, "seed %d mode %s: deleted rows per table (ORACLE_SEED=%d)", seed, mode, seed)
			continue
		}
		if (pgErr != nil) != got.blocked {
			fail("mode follow: PostgreSQL error %v, preview blocked %v (%v)", pgErr, got.blocked, got.blockers)
		}
		t.Logf("seed %d follow: pg error %v, blocked %v, detached %v", seed, pgErr, got.blocked, got.detached)
		if pgErr == nil {
			require.Equal(t, want.removed, got.deleted, "seed %d mode follow: deleted (ORACLE_SEED=%d)", seed, seed)
			require.Equal(t, want.changed, got.detached, "seed %d mode follow: detached (ORACLE_SEED=%d)", seed, seed)
		}
	}
}

func oracleConfig(t *testing.T, sch, mode string) *config.Config {
	src := fmt.Sprintf("database: postgres://x/y\ntargets:\n  db: {dsn: postgres://x/y}\nkinds:\n  root: {table: %s.t0}\ndefaults: {under_delete: %s}\n", sch, mode)
	cfg, err := config.Parse("oracle.yaml", []byte(src), nil)
	require.NoError(t, err)
	return cfg
}

type counts struct {
	deleted, detached map[string]int64
	blocked           bool
	blockers          []preview.Blocker
}

func previewCounts(ctx context.Context, t *testing.T, db *pg.DB, plan *policy.Plan, rootKey []string, fail func(string, ...any)) counts {
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	sets, err := preview.Evaluate(ctx, map[string]preview.Querier{"db": tx}, plan, rootKey)
	if err != nil {
		fail("evaluate: %v", err)
	}
	p, err := preview.Describe(ctx, sets)
	if err != nil {
		fail("describe: %v", err)
	}
	if preview.Inlineable(plan) {
		// The one-statement evaluation must agree with the temp-table one in every figure. It runs
		// in a transaction of its own, read-only as the preview page runs it: in the temp-table
		// evaluation's transaction, a name the inline statement failed to define as a CTE would
		// silently resolve to that evaluation's temp table.
		itx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		require.NoError(t, err)
		in, err := preview.EvaluateInline(ctx, map[string]preview.Querier{"db": itx}, plan, rootKey)
		_ = itx.Rollback(ctx)
		if err != nil {
			fail("evaluate inline: %v", err)
		}
		if in.Digest != p.Digest || !reflect.DeepEqual(in.Summary, p.Summary) || !reflect.DeepEqual(in.Blockers, p.Blockers) || !reflect.DeepEqual(in.Tree, p.Tree) {
			fail("inline and temp-table evaluations differ:\n inline %+v\n temp   %+v", in.Summary, p.Summary)
		}
	}
	c := counts{deleted: map[string]int64{}, detached: map[string]int64{}, blocked: p.Blocked(), blockers: p.Blockers}
	for _, l := range p.Summary {
		name := l.Table[strings.IndexByte(l.Table, '.')+1:]
		switch l.Action {
		case config.ActionDelete:
			c.deleted[name] += l.Rows
		case config.ActionDetach:
			c.detached[name] += l.Rows
		}
	}
	for k, v := range c.deleted {
		if v == 0 {
			delete(c.deleted, k)
		}
	}
	for k, v := range c.detached {
		if v == 0 {
			delete(c.detached, k)
		}
	}
	return c
}

type pgResult struct{ removed, changed map[string]int64 }

// postgresCounts deletes the root with PostgreSQL's own cascade in a transaction that is rolled
// back, and reports per table the rows removed and the surviving rows changed.
func postgresCounts(ctx context.Context, db *pg.DB, sch string, tables []genTable, fks []genFK, rootKey []string, allCascade bool) (pgResult, error) {
	res := pgResult{removed: map[string]int64{}, changed: map[string]int64{}}
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	q := func(sql string) error { _, err := tx.Exec(ctx, sql); return err }
	if allCascade {
		for i, fk := range fks {
			name := fmt.Sprintf("fk%d", i)
			tbl := pg.Table{Schema: sch, Name: tables[fk.child].name}.Quoted()
			if err := q(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", tbl, name)); err != nil {
				return res, err
			}
			if err := q(fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE CASCADE", tbl, name, strings.Join(fk.cols, ", "),
				pg.Table{Schema: sch, Name: tables[fk.parent].name}.Quoted(), strings.Join(fk.refs, ", "))); err != nil {
				return res, err
			}
		}
	}
	for _, g := range tables {
		tbl := pg.Table{Schema: sch, Name: g.name}.Quoted()
		if err := q(fmt.Sprintf("CREATE TEMP TABLE snap_%s AS SELECT * FROM %s", g.name, tbl)); err != nil {
			return res, err
		}
	}
	cond := "id = " + rootKey[0]
	if tables[0].composite {
		cond = fmt.Sprintf("a = %s AND b = %s", rootKey[0], rootKey[1])
	}
	if err := q("SAVEPOINT del"); err != nil {
		return res, err
	}
	if err := q(fmt.Sprintf("DELETE FROM %s WHERE %s", pg.Table{Schema: sch, Name: "t0"}.Quoted(), cond)); err != nil {
		return res, err
	}
	for _, g := range tables {
		tbl := pg.Table{Schema: sch, Name: g.name}.Quoted()
		keys := strings.Join(g.keyCols(), ", ")
		var removed, changed int64
		err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT
			(SELECT count(*) FROM snap_%[1]s s WHERE (%[2]s) NOT IN (SELECT %[2]s FROM %[3]s)),
			(SELECT count(*) FROM snap_%[1]s s JOIN %[3]s c USING (%[2]s) WHERE s::text <> c::text)`, g.name, keys, tbl)).Scan(&removed, &changed)
		if err != nil {
			return res, err
		}
		if removed > 0 {
			res.removed[g.name] = removed
		}
		if changed > 0 {
			res.changed[g.name] = changed
		}
	}
	return res, nil
}

// genSchema makes 5–40 tables: t0 is the root. Tables reference earlier tables (a DAG), some
// reference themselves, and a few reference later tables through nullable FKs (cycles across
// tables). Some keys are composite; one table may be partitioned.
func genSchema(r *rand.Rand, sch string) (string, []genFK, []genTable) {
	n := 5 + r.IntN(36)
	tables := make([]genTable, n)
	partitioned := -1
	if r.IntN(2) == 0 {
		partitioned = 1 + r.IntN(n-1)
	}
	for i := range tables {
		tables[i] = genTable{name: fmt.Sprintf("t%d", i), composite: r.IntN(5) == 0, partitioned: i == partitioned, rows: 5 + r.IntN(60)}
	}
	tables[0].rows = 3 + r.IntN(5)
	// Half the cases have no blocking FKs at all, so that follow-mode counts are compared often.
	actions := []string{"CASCADE", "CASCADE", "CASCADE", "SET NULL"}
	if r.IntN(2) == 0 {
		actions = append(actions, "NO ACTION", "RESTRICT")
	}
	var fks []genFK
	colN := 0
	addFK := func(child, parent int, late bool) {
		action := actions[r.IntN(len(actions))]
		notNull := !late && action != "SET NULL" && r.IntN(3) == 0
		ref := tables[parent].keyCols()
		cols := make([]string, len(ref))
		for k := range ref {
			colN++
			cols[k] = fmt.Sprintf("f%d", colN)
		}
		fks = append(fks, genFK{child: child, parent: parent, cols: cols, refs: ref, onDelete: action, notNull: notNull})
	}
	for i := 1; i < n; i++ {
		parents := 1
		if r.IntN(3) == 0 {
			parents++
		}
		for p := 0; p < parents; p++ {
			addFK(i, r.IntN(i), false)
		}
		if r.IntN(6) == 0 {
			addFK(i, i, true) // self-reference
		}
	}
	for c := 0; c < r.IntN(3); c++ { // cycles across tables through nullable FKs
		child := r.IntN(n - 1)
		parent := child + 1 + r.IntN(n-child-1)
		addFK(child, parent, true)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE SCHEMA %s;\n", pg.QuoteIdent(sch))
	for i, g := range tables {
		var cols []string
		if g.composite {
			cols = append(cols, "a bigint NOT NULL", "b bigint NOT NULL")
		} else {
			cols = append(cols, "id bigint NOT NULL")
		}
		cols = append(cols, "name text")
		for _, fk := range fks {
			if fk.child != i {
				continue
			}
			for _, c := range fk.cols {
				nn := ""
				if fk.notNull {
					nn = " NOT NULL"
				}
				cols = append(cols, c+" bigint"+nn)
			}
		}
		cols = append(cols, "PRIMARY KEY ("+strings.Join(g.keyCols(), ", ")+")")
		tbl := pg.Table{Schema: sch, Name: g.name}.Quoted()
		if g.partitioned {
			fmt.Fprintf(&b, "CREATE TABLE %s (%s) PARTITION BY HASH (%s);\n", tbl, strings.Join(cols, ", "), g.keyCols()[0])
			for p := 0; p < 2; p++ {
				fmt.Fprintf(&b, "CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS 2, REMAINDER %d);\n", pg.Table{Schema: sch, Name: fmt.Sprintf("%s_p%d", g.name, p)}.Quoted(), tbl, p)
			}
		} else {
			fmt.Fprintf(&b, "CREATE TABLE %s (%s);\n", tbl, strings.Join(cols, ", "))
		}
	}
	for i, fk := range fks {
		fmt.Fprintf(&b, "ALTER TABLE %s ADD CONSTRAINT fk%d FOREIGN KEY (%s) REFERENCES %s (%s) ON DELETE %s;\n",
			pg.Table{Schema: sch, Name: tables[fk.child].name}.Quoted(), i, strings.Join(fk.cols, ", "),
			pg.Table{Schema: sch, Name: tables[fk.parent].name}.Quoted(), strings.Join(fk.refs, ", "), fk.onDelete)
	}
	return b.String(), fks, tables
}

// genData inserts rows table by table; FK columns point at random existing parent rows (often
// the root's descendants, so cascades are deep), or NULL where allowed. Forward references
// (self and cycles) are filled in by UPDATE once every table has rows.
func genData(ctx context.Context, db *pg.DB, r *rand.Rand, sch string, tables []genTable, fks []genFK) error {
	key := func(g genTable, i int) []string {
		if g.composite {
			return []string{strconv.Itoa(1 + i/3 + 0*i), strconv.Itoa(1 + i%3)}
		}
		return []string{strconv.Itoa(i + 1)}
	}
	for ti, g := range tables {
		var cols []string
		cols = append(cols, g.keyCols()...)
		cols = append(cols, "name")
		var fkOf []genFK
		for _, fk := range fks {
			if fk.child == ti {
				cols = append(cols, fk.cols...)
				fkOf = append(fkOf, fk)
			}
		}
		var rows []string
		for i := 0; i < g.rows; i++ {
			vals := append([]string{}, key(g, i)...)
			vals = append(vals, fmt.Sprintf("'%s_%d'", g.name, i))
			for _, fk := range fkOf {
				p := tables[fk.parent]
				if fk.parent >= ti { // forward or self reference: filled later
					for range fk.cols {
						vals = append(vals, "NULL")
					}
					continue
				}
				if !fk.notNull && r.IntN(4) == 0 {
					for range fk.cols {
						vals = append(vals, "NULL")
					}
					continue
				}
				pi := r.IntN(p.rows)
				if r.IntN(2) == 0 {
					pi = r.IntN(min(p.rows, 3)) // bias towards the first rows: the root is row 1
				}
				vals = append(vals, key(p, pi)...)
			}
			rows = append(rows, "("+strings.Join(vals, ", ")+")")
		}
		sql := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", pg.Table{Schema: sch, Name: g.name}.Quoted(), strings.Join(cols, ", "), strings.Join(rows, ", "))
		if _, err := db.Pool.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%w\n%s", err, sql)
		}
	}
	for _, fk := range fks {
		if fk.parent < fk.child {
			continue
		}
		c, p := tables[fk.child], tables[fk.parent]
		for i := 0; i < c.rows; i++ {
			if r.IntN(3) == 0 {
				continue
			}
			pk := key(p, r.IntN(p.rows))
			ck := key(c, i)
			sets := make([]string, len(fk.cols))
			for k, col := range fk.cols {
				sets[k] = fmt.Sprintf("%s = %s", col, pk[k])
			}
			conds := make([]string, len(ck))
			for k, col := range c.keyCols() {
				conds[k] = fmt.Sprintf("%s = %s", col, ck[k])
			}
			sql := fmt.Sprintf("UPDATE %s SET %s WHERE %s", pg.Table{Schema: sch, Name: c.name}.Quoted(), strings.Join(sets, ", "), strings.Join(conds, " AND "))
			if _, err := db.Pool.Exec(ctx, sql); err != nil {
				return fmt.Errorf("%w\n%s", err, sql)
			}
		}
	}
	_, err := db.Pool.Exec(ctx, "ANALYZE "+pg.QuoteIdent(sch)+"."+pg.QuoteIdent("t0"))
	return err
}

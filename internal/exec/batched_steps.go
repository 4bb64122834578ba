package exec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// Hidden says how a batched run hid its root (tombstone.batch_runs.hidden).
const (
	hiddenTombstone = "tombstone" // the run set the root's tombstone column
	hiddenAlready   = "already"   // the root was tombstoned before the run
	hiddenMarked    = "marked"    // a tombstone.hidden_roots row
)

// load reads what an earlier run of the request did in the target: how the root was hidden,
// the collected steps, and the checkpoints of the batches done.
func (b *batchRun) load(ctx context.Context) error {
	var collected *time.Time
	err := b.db.Pool.QueryRow(ctx, "SELECT hidden, collected_at FROM tombstone.batch_runs WHERE request_id = $1 AND target = $2",
		b.req.ID, b.target).Scan(&b.hidden, &collected)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("read the batched run: %w", pg.Interpret(err))
	}
	b.collected = collected != nil
	if err := b.loadSteps(ctx); err != nil {
		return err
	}
	rows, err := b.db.Pool.Query(ctx, `SELECT step, max(to_seq), sum(rows), sum(missing) FROM tombstone.batch_checkpoints
		WHERE request_id = $1 AND target = $2 GROUP BY step`, b.req.ID, b.target)
	if err != nil {
		return fmt.Errorf("read the checkpoints: %w", pg.Interpret(err))
	}
	defer rows.Close()
	for rows.Next() {
		var step int
		var d batchDone
		if err := rows.Scan(&step, &d.Seq, &d.Rows, &d.Missing); err != nil {
			return pg.Interpret(err)
		}
		b.done[step] = d
	}
	if err := rows.Err(); err != nil {
		return pg.Interpret(err)
	}
	arrived, err := b.db.Pool.Query(ctx, "SELECT arrived FROM tombstone.batch_checkpoints WHERE request_id = $1 AND target = $2 AND arrived <> '{}'", b.req.ID, b.target)
	if err != nil {
		return pg.Interpret(err)
	}
	defer arrived.Close()
	for arrived.Next() {
		var c Counts
		if err := arrived.Scan(&c); err != nil {
			return pg.Interpret(err)
		}
		for k, n := range c {
			b.arrived[k] += n
		}
	}
	if err := arrived.Err(); err != nil {
		return pg.Interpret(err)
	}
	var longest int64
	if err := b.db.Pool.QueryRow(ctx, "SELECT count(*), coalesce(max(took_ms), 0) FROM tombstone.batch_checkpoints WHERE request_id = $1 AND target = $2",
		b.req.ID, b.target).Scan(&b.batches, &longest); err != nil {
		return pg.Interpret(err)
	}
	b.longest = time.Duration(longest) * time.Millisecond
	return nil
}

// loadSteps reads the collected steps and finds their tables in the plan.
func (b *batchRun) loadSteps(ctx context.Context) error {
	rows, err := b.db.Pool.Query(ctx, `SELECT step, table_schema, table_name, action, grp, whole, work_table, planned
		FROM tombstone.batch_steps WHERE request_id = $1 AND target = $2 ORDER BY step`, b.req.ID, b.target)
	if err != nil {
		return fmt.Errorf("read the collected steps: %w", pg.Interpret(err))
	}
	defer rows.Close()
	b.steps = nil
	for rows.Next() {
		var s batchStep
		if err := rows.Scan(&s.Step, &s.Table.Schema, &s.Table.Name, &s.Action, &s.Group, &s.Whole, &s.Work, &s.Planned); err != nil {
			return pg.Interpret(err)
		}
		b.steps = append(b.steps, s)
	}
	if err := rows.Err(); err != nil {
		return pg.Interpret(err)
	}
	for i := range b.steps {
		ts, err := b.tableSet(b.steps[i].Table, b.steps[i].Action)
		if err != nil {
			return err
		}
		b.steps[i].ts = ts
	}
	return nil
}

// tableSet rebuilds the TableSet of (table, action) from the plan, without keys: the table
// and the nodes whose detach columns and tombstone column the statements need.
func (b *batchRun) tableSet(name pg.Table, action string) (*preview.TableSet, error) {
	t := b.plan.Schemas[b.target].Tables[name]
	if t == nil {
		return nil, fmt.Errorf("table %s is no longer in target %s", name, b.target)
	}
	ts := &preview.TableSet{Target: b.target, Table: t, Action: action}
	for _, n := range b.plan.Nodes {
		if n.Target == b.target && n.Table.Name == name && n.Action == action {
			ts.Nodes = append(ts.Nodes, n)
		}
	}
	if len(ts.Nodes) == 0 {
		return nil, fmt.Errorf("the plan no longer reaches %s with %s", name, action)
	}
	return ts, nil
}

// execPlan is what applySets needs: the request, the plan, and the archive window.
func (b *batchRun) execPlan(archiveUntil time.Time) Plan {
	return Plan{RequestID: b.req.ID, Plan: b.plan, RootKey: b.req.RootKeys, Digest: b.req.Digest,
		Approved: b.req.Preview.Summary, ArchiveUntil: archiveUntil}
}

func (b *batchRun) archiveUntil() time.Time {
	if a := time.Duration(b.kind.Archive); a > 0 {
		return time.Now().Add(a)
	}
	return time.Time{}
}

// rootWhere matches the root row under alias t; its arguments are the root key, from $1.
func rootWhere(t *schema.Table, key []string) (string, []any) {
	conds := make([]string, len(t.PrimaryKey))
	args := make([]any, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), i+1, t.Column(c).Type)
		args[i] = key[i]
	}
	return strings.Join(conds, " AND "), args
}

// rootTombstone is the column that hides the root, or nil.
func (b *batchRun) rootTombstone() *schema.Column {
	if c := b.plan.Root.Tombstone; c != nil {
		return c
	}
	return b.plan.Root.Table.Tombstone
}

// liveCond is true for a row whose tombstone col is not set.
func liveCond(alias string, col *schema.Column) string {
	if policy.IsBoolean(col) {
		return alias + "." + pg.QuoteIdent(col.Name) + " IS NOT TRUE"
	}
	return alias + "." + pg.QuoteIdent(col.Name) + " IS NULL"
}

// hide is step 1, in its own short transaction: the root disappears from the application
// (its tombstone column is set, archived like any tombstone when the root's own action is
// soft; or, without one, it is recorded in tombstone.hidden_roots), and the batch_runs row
// marks the request as a batched run in this target.
func (b *batchRun) hide(ctx context.Context) error {
	began := time.Now()
	tx, err := b.begin(ctx, b.statementLimit())
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	root := b.plan.Root
	t := root.Table
	where, args := rootWhere(t, b.req.RootKeys)
	var exists int
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s t WHERE %s FOR UPDATE) x", t.Name.Quoted(), where), args...).Scan(&exists); err != nil {
		return fmt.Errorf("lock the root: %w", pg.Interpret(err))
	}
	if exists == 0 {
		return &DriftError{Approved: b.req.Digest, Changes: []Change{{Target: b.target, Table: t.Name.String(), Action: root.Action, Approved: 1}}}
	}
	col := b.rootTombstone()
	switch {
	case col != nil && root.Action == config.ActionSoft:
		// The root's own action: archived and applied exactly as a single transaction does.
		tag, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE tomb_root ON COMMIT DROP AS SELECT %s FROM %s t WHERE %s AND %s",
			qualifiedKey(t, "t"), t.Name.Quoted(), where, liveCond("t", col)), args...)
		if err != nil {
			return pg.Interpret(err)
		}
		b.hidden = hiddenAlready
		if tag.RowsAffected() > 0 {
			ts := &preview.TableSet{Target: b.target, Table: t, Action: config.ActionSoft, Rel: "pg_temp.tomb_root", Rows: tag.RowsAffected(), Nodes: []*policy.Node{root}}
			if _, err := applySets(ctx, tx, b.target, b.execPlan(b.archiveUntil()), &preview.Sets{Plan: b.plan, Tables: []*preview.TableSet{ts}}); err != nil {
				return err
			}
			b.hidden = hiddenTombstone
		}
	case col != nil:
		val := "now()"
		if policy.IsBoolean(col) {
			val = "true"
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf("UPDATE %s t SET %s = %s WHERE %s AND %s", t.Name.Quoted(), pg.QuoteIdent(col.Name), val, where, liveCond("t", col)), args...)
		if err != nil {
			return fmt.Errorf("tombstone the root: %w", pg.Interpret(err))
		}
		b.hidden = hiddenAlready
		if tag.RowsAffected() > 0 {
			b.hidden = hiddenTombstone
		}
	default:
		if _, err := tx.Exec(ctx, `INSERT INTO tombstone.hidden_roots (request_id, target, table_schema, table_name, root_key)
			VALUES ($1, $2, $3, $4, $5)`, b.req.ID, b.target, t.Name.Schema, t.Name.Name, b.req.RootKeys); err != nil {
			return fmt.Errorf("mark the root hidden: %w", pg.Interpret(err))
		}
		b.hidden = hiddenMarked
	}
	if _, err := tx.Exec(ctx, "INSERT INTO tombstone.batch_runs (request_id, target, digest, hidden) VALUES ($1, $2, $3, $4)",
		b.req.ID, b.target, b.req.Digest, b.hidden); err != nil {
		return fmt.Errorf("record the batched run: %w", pg.Interpret(err))
	}
	if err := b.commit(ctx, tx, began); err != nil {
		b.hidden = ""
		return err
	}
	return nil
}

// unhide undoes step 1 after the collection found the cascade drifted: the root shows again
// and the request leaves no trace in the target but its tombstone archive rows' removal.
func (b *batchRun) unhide(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := b.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return pg.Interpret(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if b.hidden == hiddenTombstone {
		if err := b.clearRootTombstone(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM tombstone.archive WHERE request_id = $1 AND target = $2", b.req.ID, b.target); err != nil {
			return pg.Interpret(err)
		}
	}
	for _, sql := range []string{
		"DELETE FROM tombstone.hidden_roots WHERE request_id = $1 AND target = $2",
		"DELETE FROM tombstone.batch_runs WHERE request_id = $1 AND target = $2",
	} {
		if _, err := tx.Exec(ctx, sql, b.req.ID, b.target); err != nil {
			return pg.Interpret(err)
		}
	}
	return pg.Interpret(tx.Commit(ctx))
}

// clearRootTombstone resets the tombstone the run set on the root.
func (b *batchRun) clearRootTombstone(ctx context.Context, tx pgx.Tx) error {
	t := b.plan.Root.Table
	col := b.rootTombstone()
	val := "NULL"
	if policy.IsBoolean(col) {
		val = "false"
	}
	where, args := rootWhere(t, b.req.RootKeys)
	if _, err := tx.Exec(ctx, fmt.Sprintf("UPDATE %s t SET %s = %s WHERE %s", t.Name.Quoted(), pg.QuoteIdent(col.Name), val, where), args...); err != nil {
		return fmt.Errorf("clear the root's tombstone: %w", pg.Interpret(err))
	}
	return nil
}

// qualifiedKey is the key columns of t under alias a.
func qualifiedKey(t *schema.Table, a string) string {
	cols := make([]string, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		cols[i] = a + "." + pg.QuoteIdent(c)
	}
	return strings.Join(cols, ", ")
}

// collect is step 2, once: it evaluates the cascade in one REPEATABLE READ snapshot (no row
// locks: the batches lock their own rows), checks it against the approved preview, and stores
// every set the batches apply in a work table of the tombstone schema, numbered by tomb_seq.
// The root itself is left for the final transaction.
func (b *batchRun) collect(ctx context.Context) error {
	started := time.Now()
	tx, err := b.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return pg.Interpret(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", millis(b.statementLimit())); err != nil {
		return pg.Interpret(err)
	}
	// Leaf sets are not built as temp tables: their work tables are filled straight from their
	// parents' sets, and they are checked with the rest once all are stored.
	sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{b.target: tx}, b.plan, b.req.RootKeys, preview.Options{DeferLeafDeletes: true})
	if err != nil {
		return err
	}
	b.steps = nil
	add := func(ts *preview.TableSet, group int, whole bool) error {
		st := batchStep{Step: len(b.steps), Table: ts.Table.Name, Action: ts.Action, Group: group, Whole: whole, ts: ts,
			Work: fmt.Sprintf("work_%d_%d", b.req.ID, len(b.steps))}
		from := "SELECT * FROM " + ts.Rel
		if ts.Deferred {
			from = sets.DeferredSelectSQL(ts)
		}
		var args []any
		if ts.Table == b.plan.Root.Table && ts.Action == b.plan.Root.Action {
			cols := make([]string, len(ts.Table.PrimaryKey))
			for i, c := range ts.Table.PrimaryKey {
				cols[i] = fmt.Sprintf("CAST($%d::text AS %s)", i+1, ts.Table.Column(c).Type)
				args = append(args, b.req.RootKeys[i])
			}
			from += " EXCEPT SELECT " + strings.Join(cols, ", ")
		}
		work := pgx.Identifier{"tombstone", st.Work}.Sanitize()
		tag, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s AS SELECT row_number() OVER (ORDER BY %s) AS tomb_seq, s.* FROM (%s) s",
			work, qualifiedKey(ts.Table, "s"), from), args...)
		if err != nil {
			return fmt.Errorf("collect %s: %w", ts.Table.Name, pg.Interpret(err))
		}
		st.Planned = tag.RowsAffected()
		if ts.Deferred {
			if err := ts.Collected(work, st.Planned); err != nil {
				return err
			}
		}
		if st.Planned == 0 {
			_, err := tx.Exec(ctx, "DROP TABLE "+work)
			return pg.Interpret(err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (tomb_seq)", work)); err != nil {
			return pg.Interpret(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tombstone.batch_steps (request_id, target, step, table_schema, table_name, action, grp, whole, work_table, planned)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, b.req.ID, b.target, st.Step, st.Table.Schema, st.Table.Name,
			st.Action, st.Group, st.Whole, st.Work, st.Planned); err != nil {
			return pg.Interpret(err)
		}
		b.steps = append(b.steps, st)
		return nil
	}
	// Detach and tombstone first, as in one transaction: a detach must precede its parent's
	// deletion.
	for _, ts := range sets.Tables {
		if ts.Target == b.target && ts.Rows > 0 && (ts.Action == config.ActionDetach || ts.Action == config.ActionSoft) {
			if err := add(ts, len(b.steps), false); err != nil {
				return err
			}
		}
	}
	sch := b.plan.Schemas[b.target]
	for g, group := range deleteOrder(sets, b.target) {
		whole := len(group) > 1 || refersToItself(sch, group[0].Table)
		for _, ts := range group {
			if err := add(ts, 1000000+g, whole); err != nil {
				return err
			}
		}
	}
	lines, err := sets.Lines(ctx)
	if err != nil {
		return err
	}
	if changes := b.drift(lines); len(changes) > 0 {
		return &DriftError{Approved: b.req.Digest, Current: preview.DigestOf(b.plan, b.req.RootKeys, lines), Changes: changes}
	}
	if _, err := tx.Exec(ctx, "UPDATE tombstone.batch_runs SET collected_at = now() WHERE request_id = $1 AND target = $2", b.req.ID, b.target); err != nil {
		return pg.Interpret(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return pg.Interpret(err)
	}
	b.collected = true
	b.collectTook = time.Since(started)
	return nil
}

// refersToItself reports a table with a foreign key to itself: its rows may refer to rows of
// another batch, so its set is deleted in one transaction.
func refersToItself(sch *schema.Schema, t *schema.Table) bool {
	for _, fk := range sch.Parents(t.Name) {
		if fk.Parent == t.Name {
			return true
		}
	}
	return false
}

// drift compares the collected summary with the approved one. The root's own tombstone, set
// by step 1 when its action is soft, is the one expected difference.
func (b *batchRun) drift(now []preview.SummaryLine) []Change {
	var out []Change
	root := b.plan.Root
	for _, c := range Diff(b.req.Preview.Summary, now) {
		if b.hidden == hiddenTombstone && root.Action == config.ActionSoft && c.Table == root.Table.Name.String() &&
			c.Action == config.ActionSoft && c.Approved == c.Now+1 {
			continue
		}
		out = append(out, c)
	}
	return out
}

// commit commits a step's transaction, keeping the longest one.
func (b *batchRun) commit(ctx context.Context, tx pgx.Tx, began time.Time) error {
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", pg.Interpret(err))
	}
	if d := time.Since(began); d > b.longest {
		b.longest = d
	}
	return nil
}

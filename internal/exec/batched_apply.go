package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// applyStep applies what is left of one collected set: in batches, or, for a set that must go
// in one transaction (a cycle of foreign keys), together with the rest of its group.
func (b *batchRun) applyStep(ctx context.Context, st *batchStep) error {
	if st.Whole {
		return b.applyWhole(ctx, st)
	}
	wait := b.e.backoff()
	tries := 0
	for b.done[st.Step].Seq < st.Planned {
		from := b.done[st.Step].Seq
		to := min(from+int64(b.size), st.Planned)
		took, err := b.batch(ctx, []*batchStep{st}, []int64{from}, []int64{to}, b.maxTime())
		switch {
		case err == nil:
			tries = 0
			b.adapt(took)
			continue
		case errors.Is(err, errTooLong), pg.Code(err) == "57014":
			if b.size == 1 {
				return fmt.Errorf("one row of %s takes longer than max_batch_seconds (%s) to %s: raise max_batch_seconds: %w", st.Table, b.maxTime(), st.Action, err)
			}
			b.size = max(1, b.size/4)
			b.e.log().WarnContext(ctx, "batch took too long; shrinking it", "request_id", b.req.ID, "table", st.Table.String(), "rows", b.size)
			continue
		case retryable(err) && tries < b.e.retries() && ctx.Err() == nil:
			tries++
			b.e.log().WarnContext(ctx, "batch will be retried", "request_id", b.req.ID, "attempt", tries, "wait", wait, "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
			continue
		}
		return err
	}
	return nil
}

// errTooLong rolls back a batch whose transaction ran past max_batch_seconds before its commit.
var errTooLong = errors.New("the batch transaction ran longer than max_batch_seconds")

// adapt sizes the next batch from how long this one took: half the limit is the aim, so that a
// slower batch (a colder cache, a busier server) still fits.
func (b *batchRun) adapt(took time.Duration) {
	limit := b.maxTime()
	switch {
	case took > limit/2:
		b.size = max(1, b.size/2)
	case took < limit/8 && b.size < b.maxRows():
		b.size = min(b.maxRows(), b.size*2)
	}
}

// applyWhole applies every step of st's group, from where each stopped to its end, in one
// transaction.
func (b *batchRun) applyWhole(ctx context.Context, st *batchStep) error {
	var group []*batchStep
	var from, to []int64
	for i := range b.steps {
		g := &b.steps[i]
		if g.Group == st.Group && b.done[g.Step].Seq < g.Planned {
			group = append(group, g)
			from = append(from, b.done[g.Step].Seq)
			to = append(to, g.Planned)
		}
	}
	if len(group) == 0 {
		return nil
	}
	_, err := b.batch(ctx, group, from, to, b.statementLimit())
	return err
}

// batch is one batch transaction: it locks the rows of keys tomb_seq in (from, to] of each step
// that still exist (and, for a tombstone, are not tombstoned yet), archives and applies them
// with the single-transaction code (a step that deletes leaf rows without an archive deletes
// them straight from its work table: see directDelete), and writes one checkpoint per step,
// all before commit. A
// transaction that ran past limit is rolled back (errTooLong). It returns how long the
// transaction took.
func (b *batchRun) batch(ctx context.Context, steps []*batchStep, from, to []int64, limit time.Duration) (time.Duration, error) {
	began := time.Now()
	tx, err := b.begin(ctx, limit)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var found []int64
	var arrived Counts
	if len(steps) == 1 && b.directDelete(steps[0]) {
		n, err := b.deleteBatch(ctx, tx, steps[0], from[0], to[0])
		if err != nil {
			return 0, err
		}
		found, arrived = []int64{n}, Counts{}
	} else if found, arrived, err = b.lockAndApply(ctx, tx, steps, from, to); err != nil {
		return 0, err
	}
	arrivedJSON, err := json.Marshal(arrived)
	if err != nil {
		return 0, err
	}
	took := time.Since(began)
	if took > limit {
		return took, fmt.Errorf("%w (%s)", errTooLong, took.Round(time.Millisecond))
	}
	batch := b.batches + 1
	for i, st := range steps {
		if i > 0 {
			arrivedJSON = []byte("{}")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tombstone.batch_checkpoints (request_id, target, batch, step, from_seq, to_seq, rows, missing, took_ms, arrived)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, b.req.ID, b.target, batch+i, st.Step, from[i], to[i], found[i],
			(to[i]-from[i])-found[i], took.Milliseconds(), arrivedJSON); err != nil {
			return 0, fmt.Errorf("write the checkpoint: %w", pg.Interpret(err))
		}
	}
	if err := b.commit(ctx, tx, began); err != nil {
		return 0, err
	}
	took = time.Since(began)
	b.batches += len(steps)
	for i, st := range steps {
		d := b.done[st.Step]
		d.Seq, d.Rows, d.Missing = to[i], d.Rows+found[i], d.Missing+(to[i]-from[i])-found[i]
		b.done[st.Step] = d
		b.rateRows += to[i] - from[i]
		b.prog.batchDone(st.ts, found[i])
	}
	b.rateTime += took
	for k, n := range arrived {
		b.arrived[k] += n
	}
	b.prog.status.Batches = b.batches
	b.prog.status.LeftSeconds = b.left()
	b.prog.write(ctx, false)
	if h := b.e.hooks.afterBatch; h != nil {
		h(b.batches)
	}
	return took, nil
}

// lockAndApply locks the rows of each step's keys in (from, to] that still need the action,
// finds the rows that arrived below them since the collection, and archives and applies both
// with the single-transaction code. It returns the rows found per step and the arrivals.
func (b *batchRun) lockAndApply(ctx context.Context, tx pgx.Tx, steps []*batchStep, from, to []int64) ([]int64, Counts, error) {
	sets := &preview.Sets{Plan: b.plan}
	found := make([]int64, len(steps))
	arr := &arrivals{b: b, tx: tx, sets: map[string]*preview.TableSet{}, own: map[pg.Table][]string{}}
	rels := make([]string, len(steps))
	for i, st := range steps {
		rels[i] = fmt.Sprintf("pg_temp.tomb_batch_%d", st.Step)
		n, err := b.lockBatch(ctx, tx, st, rels[i], from[i], to[i])
		if err != nil {
			return nil, nil, err
		}
		found[i] = n
		if n > 0 {
			ts := *st.ts
			ts.Rel, ts.Rows, ts.Deferred = rels[i], n, false // this batch's rows, in its own temp table
			sets.Tables = append(sets.Tables, &ts)
			arr.own[st.ts.Table.Name] = append(arr.own[st.ts.Table.Name], rels[i])
		}
	}
	// Arrivals are looked for once every step of the batch is locked: in a group of tables
	// that refer to each other, one step's rows are children of another's, and they are
	// planned rows of this batch, not arrivals.
	for i, st := range steps {
		if found[i] > 0 && st.Action == config.ActionDelete {
			if err := arr.under(ctx, st.ts.Nodes, rels[i]); err != nil {
				return nil, nil, err
			}
		}
	}
	arrived := Counts{}
	for _, ts := range arr.order {
		sets.Tables = append(sets.Tables, ts)
		arrived[key(b.target, ts)] = ts.Rows
	}
	if len(sets.Tables) > 0 {
		if _, err := applySets(ctx, tx, b.target, b.execPlan(b.archiveUntil()), sets); err != nil {
			return nil, nil, err
		}
	}
	return found, arrived, nil
}

// directDelete reports whether a step's batches can delete their rows straight from the work
// table, without locking them first: a delete of leaf rows (nothing can arrive below them),
// one table at a time, with no archive to write.
func (b *batchRun) directDelete(st *batchStep) bool {
	if st.Action != config.ActionDelete || !b.archiveUntil().IsZero() {
		return false
	}
	for _, n := range st.ts.Nodes {
		if len(n.Children) > 0 || len(n.Back) > 0 {
			return false
		}
	}
	return true
}

// deleteBatch deletes the rows of st's keys in (from, to] that still exist, and returns how
// many it deleted.
func (b *batchRun) deleteBatch(ctx context.Context, tx pgx.Tx, st *batchStep, from, to int64) (int64, error) {
	t := st.ts.Table
	work := pgx.Identifier{"tombstone", st.Work}.Sanitize()
	tag, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s t USING %s w WHERE w.tomb_seq > $1 AND w.tomb_seq <= $2 AND (%s) = (%s)",
		t.Name.Quoted(), work, qualifiedKey(t, "t"), qualifiedKey(t, "w")), from, to)
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", t.Name, pg.Interpret(err))
	}
	return tag.RowsAffected(), nil
}

// lockBatch creates rel with the keys of st in (from, to] whose rows still need the action,
// locking those rows, and returns how many there are.
func (b *batchRun) lockBatch(ctx context.Context, tx pgx.Tx, st *batchStep, rel string, from, to int64) (int64, error) {
	t := st.ts.Table
	live := ""
	if st.Action == config.ActionSoft {
		live = " AND " + liveCond("t", st.ts.Nodes[0].Tombstone)
	}
	work := pgx.Identifier{"tombstone", st.Work}.Sanitize()
	sql := fmt.Sprintf(`CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s FROM (
		SELECT %s FROM %s w JOIN %s t ON (%s) = (%s) WHERE w.tomb_seq > $1 AND w.tomb_seq <= $2%s ORDER BY w.tomb_seq FOR UPDATE OF t) s`,
		rel, pg.QuoteIdents(t.PrimaryKey), qualifiedKey(t, "w"), work, t.Name.Quoted(), qualifiedKey(t, "t"), qualifiedKey(t, "w"), live)
	tag, err := tx.Exec(ctx, sql, from, to)
	if err != nil {
		return 0, fmt.Errorf("%s %s: lock the batch: %w", st.Action, t.Name, pg.Interpret(err))
	}
	return tag.RowsAffected(), nil
}

// left estimates the seconds the remaining batches take, from the rate so far.
func (b *batchRun) left() int64 {
	if b.rateRows == 0 || b.rateTime <= 0 {
		return 0
	}
	var rest int64
	for _, st := range b.steps {
		rest += st.Planned - b.done[st.Step].Seq
	}
	return int64(float64(rest) / float64(b.rateRows) * b.rateTime.Seconds())
}

// progressFromCheckpoints fills the progress with what earlier runs of the request did.
func (b *batchRun) progressFromCheckpoints() {
	for _, st := range b.steps {
		b.prog.batchDone(st.ts, b.done[st.Step].Rows)
	}
	if b.hidden == hiddenTombstone && b.plan.Root.Action == config.ActionSoft {
		b.prog.batchDone(&preview.TableSet{Table: b.plan.Root.Table, Action: config.ActionSoft}, 1)
	}
	b.prog.status.Batches = b.batches
}

// finish is the final transaction: it recomputes the cascade under lock (what is left is the
// root and any row that arrived under it since the collection), refuses when an arrival
// blocks, applies the rest with the root, writes the ledger row with the counts of the whole
// run and drops the work tables.
func (b *batchRun) finish(ctx context.Context) (*Report, error) {
	began := time.Now()
	tx, err := b.begin(ctx, b.statementLimit())
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	root := b.plan.Root
	if b.hidden == hiddenTombstone && root.Action == config.ActionDelete {
		// The archive keeps the root as it was before the run hid it.
		if err := b.clearRootTombstone(ctx, tx); err != nil {
			return nil, err
		}
	}
	sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{b.target: tx}, b.plan, b.req.RootKeys, preview.Options{Lock: true})
	if errors.Is(err, preview.ErrRootNotFound) {
		return nil, errors.New("the root was deleted by someone else during the batched run")
	}
	if err != nil {
		return nil, err
	}
	pv, err := preview.Summarize(ctx, sets)
	if err != nil {
		return nil, err
	}
	if pv.Blocked() {
		var why []string
		for _, bl := range pv.Blockers {
			why = append(why, fmt.Sprintf("%s rows of %s (%s)", preview.Thousands(bl.Rows), bl.Table, bl.Reason))
		}
		return nil, fmt.Errorf("rows that arrived under the hidden root during the run block its deletion: %s; remove them, then resume", strings.Join(why, "; "))
	}
	final, err := applySets(ctx, tx, b.target, b.execPlan(b.archiveUntil()), sets)
	if err != nil {
		return nil, err
	}
	arrived := Counts{}
	for k, n := range final {
		if k == key(b.target, &preview.TableSet{Table: root.Table, Action: root.Action}) {
			n--
		}
		if n > 0 {
			arrived[k] = n
		}
	}
	total, missing := b.counts()
	for k, n := range final {
		total[k] += n
	}
	for k, n := range b.arrived {
		arrived[k] += n
		total[k] += n
	}
	if err := writeLedger(ctx, tx, b.target, b.req.ID, b.req.Digest, total); err != nil {
		return nil, err
	}
	if err := b.dropWork(ctx, tx); err != nil {
		return nil, err
	}
	if err := b.commit(ctx, tx, began); err != nil {
		return nil, err
	}
	return &Report{
		Digest: b.req.Digest, Tables: total.Tables(), Rows: total.Total(), Attempts: 1, Mode: ModeBatched,
		Batches: b.batches, LongestTransaction: b.longest.Milliseconds(), CollectMillis: b.collectTook.Milliseconds(),
		Arrived: arrived.Tables(), Missing: missing.Tables(),
	}, nil
}

// counts adds up the batches (and the root's tombstone set in step 1): rows changed, and the
// approved rows that were already gone.
func (b *batchRun) counts() (done, missing Counts) {
	done, missing = Counts{}, Counts{}
	for _, st := range b.steps {
		k := key(b.target, st.ts)
		d := b.done[st.Step]
		done[k] += d.Rows
		if d.Missing > 0 {
			missing[k] += d.Missing
		}
	}
	if b.hidden == hiddenTombstone && b.plan.Root.Action == config.ActionSoft {
		done[key(b.target, &preview.TableSet{Table: b.plan.Root.Table, Action: config.ActionSoft})]++
	}
	return done, missing
}

// dropWork removes the run's work tables, its steps and its hidden_roots row. The batch_runs
// and checkpoint rows stay as the run's record.
func (b *batchRun) dropWork(ctx context.Context, tx pgx.Tx) error {
	for _, st := range b.steps {
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{"tombstone", st.Work}.Sanitize()); err != nil {
			return pg.Interpret(err)
		}
	}
	for _, sql := range []string{
		"DELETE FROM tombstone.batch_steps WHERE request_id = $1 AND target = $2",
		"DELETE FROM tombstone.hidden_roots WHERE request_id = $1 AND target = $2",
	} {
		if _, err := tx.Exec(ctx, sql, b.req.ID, b.target); err != nil {
			return pg.Interpret(err)
		}
	}
	return nil
}

// batchDone adds rows done to the progress of ts's table and action.
func (p *progress) batchDone(ts *preview.TableSet, rows int64) {
	for i := range p.status.Tables {
		t := &p.status.Tables[i]
		if t.Table == ts.Table.Name.String() && t.Action == ts.Action {
			t.Done += rows
		}
	}
}

// arrivals collects, inside a batch transaction, the rows that appeared since the collection
// under the rows a batch deletes: rows of the tables the plan deletes or detaches below them,
// at any depth. Their parents' children were all handled by earlier steps (children go
// first), so any such row is new; without this the database's own ON DELETE would delete or
// detach it behind the run's back, unarchived and uncounted.
type arrivals struct {
	b     *batchRun
	tx    pgx.Tx
	sets  map[string]*preview.TableSet // by "table action"
	order []*preview.TableSet
	n     int
	// own are the batch's own sets by table: their rows are planned, never arrivals (to
	// delete, or to detach from rows this batch deletes).
	own map[pg.Table][]string
}

// under finds the arrivals below the rows of rel, which are rows reached through nodes.
func (a *arrivals) under(ctx context.Context, nodes []*policy.Node, rel string) error {
	for _, n := range nodes {
		for _, c := range n.Children {
			if c.Target != a.b.target || c.Edge.Kind == policy.EdgeOwns || len(c.Table.PrimaryKey) == 0 {
				continue
			}
			if c.Action != config.ActionDelete && c.Action != config.ActionDetach {
				continue
			}
			crel, added, err := a.add(ctx, n, c, rel)
			if err != nil {
				return err
			}
			if added > 0 && c.Action == config.ActionDelete {
				if err := a.under(ctx, []*policy.Node{c}, crel); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// add puts the rows of c's table that refer to rel's rows (of n's table) into the arrivals'
// set of c's (table, action), locking them, and returns that set and how many it gained.
func (a *arrivals) add(ctx context.Context, n, c *policy.Node, rel string) (string, int64, error) {
	k := c.Table.Name.String() + " " + c.Action
	ts := a.sets[k]
	except := ""
	for _, r := range a.own[c.Table.Name] {
		except += " EXCEPT SELECT * FROM " + r
	}
	pt, ct := n.Table, c.Table
	// The parent values are the batch's keys when the link starts from the parent's key;
	// otherwise they are read from the parent's rows.
	parents := fmt.Sprintf("SELECT %s FROM %s p WHERE (%s) IN (SELECT * FROM %s)", qualified("p", c.Edge.FromColumns), pt.Name.Quoted(), qualifiedKey(pt, "p"), rel)
	if slices.Equal(c.Edge.FromColumns, pt.PrimaryKey) {
		parents = "SELECT * FROM " + rel
	}
	sel := fmt.Sprintf(`SELECT %s FROM %s x WHERE (%s) IN (%s)`, qualifiedKey(ct, "x"), ct.Name.Quoted(), qualified("x", c.Edge.ToColumns), parents)
	var sql string
	if ts == nil {
		a.n++
		ts = &preview.TableSet{Target: a.b.target, Table: ct, Action: c.Action, Rel: fmt.Sprintf("pg_temp.tomb_arrived_%d", a.n), Nodes: []*policy.Node{c}}
		sql = fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT * FROM (%s ORDER BY %s FOR UPDATE OF x) s%s", ts.Rel, sel, qualifiedKey(ct, "x"), except)
	} else {
		sql = fmt.Sprintf("INSERT INTO %s SELECT * FROM (%s ORDER BY %s FOR UPDATE OF x) s EXCEPT SELECT * FROM %s%s", ts.Rel, sel, qualifiedKey(ct, "x"), ts.Rel, except)
	}
	tag, err := a.tx.Exec(ctx, sql)
	if err != nil {
		return "", 0, fmt.Errorf("look for rows that arrived in %s: %w", ct.Name, pg.Interpret(err))
	}
	if tag.RowsAffected() > 0 && a.sets[k] == nil {
		a.sets[k] = ts
		a.order = append(a.order, ts)
	} else if a.sets[k] == nil {
		if _, err := a.tx.Exec(ctx, "DROP TABLE "+ts.Rel); err != nil {
			return "", 0, pg.Interpret(err)
		}
		return "", 0, nil
	}
	ts.Rows += tag.RowsAffected()
	return ts.Rel, tag.RowsAffected(), nil
}

// qualified is cols under alias a, comma-separated.
func qualified(a string, cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = a + "." + pg.QuoteIdent(c)
	}
	return strings.Join(out, ", ")
}

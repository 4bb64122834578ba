// Package exec executes approved requests: in one transaction per target it locks the cascade,
// recomputes it, checks it against the approved digest, archives, applies the actions children
// first, writes the execution ledger and commits.
package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// ErrDrifted means the cascade no longer matches the approved digest.
var ErrDrifted = errors.New("the data changed since the request was approved")

// DriftError carries the per-table differences between the approved and the current preview.
type DriftError struct {
	Approved string
	Current  string
	Changes  []Change
}

func (e *DriftError) Error() string {
	parts := make([]string, 0, len(e.Changes))
	for _, c := range e.Changes {
		parts = append(parts, c.String())
	}
	if len(parts) == 0 {
		parts = append(parts, "the same counts but different rows")
	}
	return "drifted: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrDrifted) true.
func (e *DriftError) Is(target error) bool { return target == ErrDrifted }

// Change is one (target, table, action) whose rows differ.
type Change struct {
	Target   string `json:"target"`
	Table    string `json:"table"`
	Action   string `json:"action"`
	Approved int64  `json:"approved"`
	Now      int64  `json:"now"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s %s: approved %s, now %s", c.Target, c.Table, c.Action, preview.Thousands(c.Approved), preview.Thousands(c.Now))
}

// Diff lists the tables whose counts or key sets differ between two previews.
func Diff(approved, now []preview.SummaryLine) []Change {
	type k struct{ target, table, action string }
	a := map[k]preview.SummaryLine{}
	for _, l := range approved {
		a[k{l.Target, l.Table, l.Action}] = l
	}
	var out []Change
	seen := map[k]bool{}
	for _, l := range now {
		key := k{l.Target, l.Table, l.Action}
		seen[key] = true
		old := a[key]
		if old.Rows != l.Rows || (old.KeyHash != "" && old.KeyHash != l.KeyHash) {
			out = append(out, Change{Target: l.Target, Table: l.Table, Action: l.Action, Approved: old.Rows, Now: l.Rows})
		}
	}
	for key, l := range a {
		if !seen[key] && l.Rows != 0 {
			out = append(out, Change{Target: key.target, Table: key.table, Action: key.action, Approved: l.Rows})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Target+out[i].Table+out[i].Action < out[j].Target+out[j].Table+out[j].Action
	})
	return out
}

// Counts are the rows a step changed, per "target table action".
type Counts map[string]int64

// Step is reported to Progress as execution moves on.
type Step struct {
	Target string
	Table  string
	Action string
	Rows   int64 // rows done in this step
	Phase  string
}

// Plan is what one target transaction executes.
type Plan struct {
	RequestID int64
	Plan      *policy.Plan
	RootKey   []string
	// Digest is the approved digest; Approved the approved summary (for drift details).
	Digest   string
	Approved []preview.SummaryLine
	// Archive keeps changed rows until ArchiveUntil when non-zero.
	ArchiveUntil time.Time
	// Progress, when set, is called after each step (from the executing goroutine).
	Progress func(Step)
}

// Result is what a committed target transaction did.
type Result struct {
	Digest  string
	Counts  Counts
	Summary []preview.SummaryLine
}

// ApplyTx runs the deletion of one target inside tx, which must be a fresh READ COMMITTED
// transaction on that target; the caller commits when ApplyTx returns nil and rolls back
// otherwise. The steps:
//
//  1. lock the root, and every row with children in the cascade, FOR UPDATE, parents first;
//  2. recompute the sets and compare them with the approved ones (DriftError on change);
//  3. archive changed rows when the kind keeps an archive;
//  4. detach, tombstone, then delete children before parents, checking every statement's row
//     count against the sets;
//  5. check the digest of what was deleted against the approved one;
//  6. write the execution-ledger row in the target's tombstone schema.
//
// Without an archive, the sets of leaf tables are not built: their rows are deleted straight
// from their parents' locked sets, and counted and hashed as they go (preview's
// Options.DeferLeafDeletes). Every other set is checked against the approved preview before
// anything changes; the leaves' counts and key hashes only after their deletes, still inside
// the transaction, which the caller rolls back on a DriftError.
//
// The whole plan must live in this one target (single-target kinds).
func ApplyTx(ctx context.Context, tx pgx.Tx, target string, p Plan) (*Result, error) {
	if err := raiseWorkMem(ctx, tx); err != nil {
		return nil, err
	}
	opts := preview.Options{Lock: true, DeferLeafDeletes: p.ArchiveUntil.IsZero()}
	sets, err := preview.EvaluateWith(ctx, map[string]preview.Querier{target: tx}, p.Plan, p.RootKey, opts)
	if err != nil {
		if errors.Is(err, preview.ErrRootNotFound) {
			return nil, &DriftError{Approved: p.Digest, Changes: []Change{{Target: target, Table: p.Plan.Root.Table.Name.String(), Action: p.Plan.Root.Action, Approved: 1}}}
		}
		return nil, err
	}
	lines, err := sets.Lines(ctx)
	if err != nil {
		return nil, err
	}
	pending := hasPending(sets)
	if p.Approved != nil {
		if changes := Diff(withoutPending(p.Approved, sets), lines); len(changes) > 0 {
			return nil, &DriftError{Approved: p.Digest, Changes: changes}
		}
	}
	digest := ""
	if !pending {
		if digest, err = checkDigest(p, lines); err != nil {
			return nil, err
		}
	}
	counts, err := applySets(ctx, tx, target, p, sets)
	if err != nil {
		return nil, err
	}
	if pending {
		if lines, err = sets.Lines(ctx); err != nil {
			return nil, err
		}
		if digest, err = checkDigest(p, lines); err != nil {
			return nil, err
		}
	}
	if err := writeLedger(ctx, tx, target, p.RequestID, digest, counts); err != nil {
		return nil, err
	}
	return &Result{Digest: digest, Counts: counts, Summary: lines}, nil
}

// checkDigest returns the digest of a summary, or a DriftError when it is not the approved one.
func checkDigest(p Plan, lines []preview.SummaryLine) (string, error) {
	digest := preview.DigestOf(p.Plan, p.RootKey, lines)
	if digest != p.Digest {
		return "", &DriftError{Approved: p.Digest, Current: digest, Changes: Diff(p.Approved, lines)}
	}
	return digest, nil
}

// hasPending reports whether some deferred set has not been deleted yet.
func hasPending(sets *preview.Sets) bool {
	for _, ts := range sets.Tables {
		if ts.Pending() {
			return true
		}
	}
	return false
}

// withoutPending drops the approved lines of the sets not known before their deletes.
func withoutPending(approved []preview.SummaryLine, sets *preview.Sets) []preview.SummaryLine {
	pending := map[string]bool{}
	for _, ts := range sets.Tables {
		if ts.Pending() {
			pending[lineKey(ts.Target, ts.Table.Name.String(), ts.Action)] = true
		}
	}
	out := make([]preview.SummaryLine, 0, len(approved))
	for _, l := range approved {
		if !pending[lineKey(l.Target, l.Table, l.Action)] {
			out = append(out, l)
		}
	}
	return out
}

// applySets archives and applies the target's share of checked sets inside tx: detach and
// tombstone, then deletes children before parents, checking every statement's row count
// against the sets. It writes no ledger row.
func applySets(ctx context.Context, tx pgx.Tx, target string, p Plan, sets *preview.Sets) (Counts, error) {
	report := func(s Step) {
		if p.Progress != nil {
			p.Progress(s)
		}
	}
	counts := Counts{}
	if !p.ArchiveUntil.IsZero() {
		if err := archive(ctx, tx, target, p, sets); err != nil {
			return nil, err
		}
		report(Step{Target: target, Phase: "archived"})
	}
	// Detach and tombstone first: they only change columns, and a detach must happen before
	// its parent row goes.
	for _, ts := range sets.Tables {
		if ts.Target != target || ts.Rows == 0 {
			continue
		}
		var sql string
		var args []any
		switch ts.Action {
		case config.ActionDetach:
			sql = detachSQL(ts)
		case config.ActionSoft:
			sql = softSQL(ts)
		default:
			continue
		}
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", ts.Action, ts.Table.Name, pg.Interpret(err))
		}
		if tag.RowsAffected() != ts.Rows {
			return nil, fmt.Errorf("%s %s changed %d rows, expected %d", ts.Action, ts.Table.Name, tag.RowsAffected(), ts.Rows)
		}
		counts[key(target, ts)] = ts.Rows
		report(Step{Target: target, Table: ts.Table.Name.String(), Action: ts.Action, Rows: ts.Rows, Phase: "applied"})
	}
	for _, group := range deleteOrder(sets, target) {
		n, err := deleteGroup(ctx, tx, sets, group)
		if err != nil {
			return nil, err
		}
		for i, ts := range group {
			// A deferred set is what its statements deleted; the digest checks it.
			if !ts.Deferred && n[i] != ts.Rows {
				return nil, fmt.Errorf("delete %s removed %d rows, expected %d", ts.Table.Name, n[i], ts.Rows)
			}
			if n[i] == 0 {
				continue
			}
			counts[key(target, ts)] = n[i]
			report(Step{Target: target, Table: ts.Table.Name.String(), Action: ts.Action, Rows: n[i], Phase: "applied"})
		}
	}
	return counts, nil
}

func key(target string, ts *preview.TableSet) string {
	return lineKey(target, ts.Table.Name.String(), ts.Action)
}

// lineKey names a (target, table, action) as Counts does.
func lineKey(target, table, action string) string {
	return target + " " + table + " " + action
}

// setJoin is how a statement on ts.Table (aliased t) reaches the rows of ts's set: a join
// clause naming the set s (for DELETE ... USING or UPDATE ... FROM) and the condition matching
// t to it. A set holds each key once, so a plain join touches each row once; unlike a
// semi-join (key IN (SELECT ...)) it needs no de-duplicating aggregate, whose size the
// planner cannot estimate for a temp table without statistics and then answers with a
// nested loop of index probes in hash order. A table without a primary key is matched by
// ctid, which a TID scan serves best as IN.
func setJoin(ts *preview.TableSet) (from, cond string) {
	t := ts.Table
	if len(t.PrimaryKey) == 0 {
		return "", "t.ctid IN (SELECT * FROM " + ts.Rel + ")"
	}
	conds := make([]string, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		conds[i] = "t." + pg.QuoteIdent(c) + " = s." + pg.QuoteIdent(c)
	}
	return ts.Rel + " s", strings.Join(conds, " AND ")
}

// deleteSQL deletes the rows of ts's set from its table.
func deleteSQL(ts *preview.TableSet) string {
	from, cond := setJoin(ts)
	if from != "" {
		from = " USING " + from
	}
	return fmt.Sprintf("DELETE FROM %s t%s WHERE %s", ts.Table.Name.Quoted(), from, cond)
}

// updateSQL sets columns of the rows of ts's set, where extra (if any) also holds.
func updateSQL(ts *preview.TableSet, set, extra string) string {
	from, cond := setJoin(ts)
	if from != "" {
		from = " FROM " + from
	}
	if extra != "" {
		cond += " AND " + extra
	}
	return fmt.Sprintf("UPDATE %s t SET %s%s WHERE %s", ts.Table.Name.Quoted(), set, from, cond)
}

func detachSQL(ts *preview.TableSet) string {
	cols := map[string]bool{}
	var sets []string
	for _, n := range ts.Nodes {
		val := "NULL"
		if n.DetachDefault {
			val = "DEFAULT"
		}
		for _, c := range n.DetachColumns {
			if !cols[c] {
				cols[c] = true
				sets = append(sets, pg.QuoteIdent(c)+" = "+val)
			}
		}
	}
	return updateSQL(ts, strings.Join(sets, ", "), "")
}

func softSQL(ts *preview.TableSet) string {
	col := ts.Nodes[0].Tombstone
	name := pg.QuoteIdent(col.Name)
	if policy.IsBoolean(col) {
		return updateSQL(ts, name+" = true", "t."+name+" IS NOT TRUE")
	}
	return updateSQL(ts, name+" = now()", "t."+name+" IS NULL")
}

// deleteOrder groups the target's delete sets so that every group is deleted after every group
// that refers to it: children before parents. Tables in a cycle of foreign keys form one group,
// deleted in one statement so that the constraints are checked once, at its end.
func deleteOrder(sets *preview.Sets, target string) [][]*preview.TableSet {
	var del []*preview.TableSet
	idx := map[*schema.Table]int{}
	for _, ts := range sets.Tables {
		if ts.Target == target && ts.Action == config.ActionDelete && (ts.Rows > 0 || ts.Pending()) {
			idx[ts.Table] = len(del)
			del = append(del, ts)
		}
	}
	sch := sets.Plan.Schemas[target]
	// refs[i] lists the tables that table i refers to (its parents among the deleted tables).
	refs := make([][]int, len(del))
	for i, ts := range del {
		for _, fk := range sch.Parents(ts.Table.Name) {
			if j, ok := idx[sch.Tables[fk.Parent]]; ok && j != i {
				refs[i] = append(refs[i], j)
			}
		}
	}
	comp := sccs(len(del), refs)
	// A group can go when no table outside it still to be deleted refers to it.
	groups := map[int][]int{}
	for i, c := range comp {
		groups[c] = append(groups[c], i)
	}
	done := map[int]bool{}
	var out [][]*preview.TableSet
	for len(done) < len(groups) {
		progressed := false
		for c := 0; c < len(groups); c++ {
			if done[c] {
				continue
			}
			blocked := false
			for i := range del {
				if comp[i] == c || done[comp[i]] {
					continue
				}
				for _, j := range refs[i] {
					if comp[j] == c {
						blocked = true
					}
				}
			}
			if blocked {
				continue
			}
			var g []*preview.TableSet
			for _, i := range groups[c] {
				g = append(g, del[i])
			}
			out = append(out, g)
			done[c] = true
			progressed = true
		}
		if !progressed { // cannot happen: components form a DAG
			break
		}
	}
	return out
}

// sccs labels each node with its strongly connected component (Tarjan), components numbered
// 0..k-1.
func sccs(n int, edges [][]int) []int {
	index := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	comp := make([]int, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int
	next, count := 0, 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, w := range edges[v] {
			if index[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp[w] = count
				if w == v {
					break
				}
			}
			count++
		}
	}
	for v := 0; v < n; v++ {
		if index[v] < 0 {
			visit(v)
		}
	}
	return comp
}

// deleteGroup deletes a group of tables in one statement and returns each table's count.
func deleteGroup(ctx context.Context, tx pgx.Tx, sets *preview.Sets, group []*preview.TableSet) ([]int64, error) {
	for _, ts := range group {
		if ts.Deferred && len(group) > 1 {
			return nil, fmt.Errorf("delete %s: a deferred set in a cycle of foreign keys", ts.Table.Name)
		}
	}
	if len(group) == 1 && group[0].Deferred {
		n, err := deleteDeferred(ctx, tx, sets, group[0])
		return []int64{n}, err
	}
	if len(group) == 1 {
		ts := group[0]
		tag, err := tx.Exec(ctx, deleteSQL(ts))
		if err != nil {
			return nil, fmt.Errorf("delete %s: %w", ts.Table.Name, pg.Interpret(err))
		}
		return []int64{tag.RowsAffected()}, nil
	}
	ctes := make([]string, len(group))
	sel := make([]string, len(group))
	names := make([]string, len(group))
	for i, ts := range group {
		ctes[i] = fmt.Sprintf("d%d AS (%s RETURNING 1)", i, deleteSQL(ts))
		sel[i] = fmt.Sprintf("(SELECT count(*) FROM d%d)", i)
		names[i] = ts.Table.Name.String()
	}
	out := make([]int64, len(group))
	dest := make([]any, len(group))
	for i := range out {
		dest[i] = &out[i]
	}
	if err := tx.QueryRow(ctx, "WITH "+strings.Join(ctes, ", ")+" SELECT "+strings.Join(sel, ", ")).Scan(dest...); err != nil {
		return nil, fmt.Errorf("delete %s: %w", strings.Join(names, ", "), pg.Interpret(err))
	}
	return out, nil
}

// deleteDeferred deletes a deferred set's rows from its parents' sets, node by node, and
// records what the statements deleted.
func deleteDeferred(ctx context.Context, tx pgx.Tx, sets *preview.Sets, ts *preview.TableSet) (int64, error) {
	stmts := sets.DeferredDeleteSQL(ts)
	parts := make([]preview.DeferredPart, len(stmts))
	for i, sql := range stmts {
		if err := tx.QueryRow(ctx, sql).Scan(&parts[i].Rows, &parts[i].Sum1, &parts[i].Sum2); err != nil {
			return 0, fmt.Errorf("delete %s: %w", ts.Table.Name, pg.Interpret(err))
		}
	}
	if err := ts.RecordDeferred(parts); err != nil {
		return 0, err
	}
	return ts.Rows, nil
}

// archive copies every row the request changes into tombstone.archive: whole rows for deletes,
// old column values for detach and tombstone.
func archive(ctx context.Context, tx pgx.Tx, target string, p Plan, sets *preview.Sets) error {
	for _, ts := range sets.Tables {
		if ts.Target != target || ts.Rows == 0 {
			continue
		}
		var rowExpr string
		var args []any
		switch ts.Action {
		case config.ActionDelete:
			rowExpr = "to_jsonb(t)"
		case config.ActionSoft:
			rowExpr = "jsonb_build_object($6::text, t." + pg.QuoteIdent(ts.Nodes[0].Tombstone.Name) + ")"
			args = append(args, ts.Nodes[0].Tombstone.Name)
		case config.ActionDetach:
			parts := []string{}
			seen := map[string]bool{}
			for _, n := range ts.Nodes {
				for _, c := range n.DetachColumns {
					if seen[c] {
						continue
					}
					seen[c] = true
					args = append(args, c)
					parts = append(parts, fmt.Sprintf("$%d::text, t.%s", 5+len(args), pg.QuoteIdent(c)))
				}
			}
			rowExpr = "jsonb_build_object(" + strings.Join(parts, ", ") + ")"
		default:
			continue
		}
		keyExpr := "jsonb_build_object('ctid', t.ctid::text)"
		if len(ts.Table.PrimaryKey) > 0 {
			keyExpr = "to_jsonb(s)"
		}
		join := fmt.Sprintf("JOIN %s t ON %s = %s", ts.Table.Name.Quoted(), rowKey(ts.Table, "t"), rowKey(ts.Table, "s"))
		sql := fmt.Sprintf(`INSERT INTO tombstone.archive (request_id, target, table_schema, table_name, action, key, row, expires_at)
			SELECT $1, $2, $3, $4, '%s', %s, %s, $5 FROM %s s %s`, ts.Action, keyExpr, rowExpr, ts.Rel, join)
		all := append([]any{p.RequestID, target, ts.Table.Name.Schema, ts.Table.Name.Name, p.ArchiveUntil}, args...)
		tag, err := tx.Exec(ctx, sql, all...)
		if err != nil {
			return fmt.Errorf("archive %s: %w", ts.Table.Name, pg.Interpret(err))
		}
		if tag.RowsAffected() != ts.Rows {
			return fmt.Errorf("archive %s wrote %d rows, expected %d", ts.Table.Name, tag.RowsAffected(), ts.Rows)
		}
	}
	return nil
}

func rowKey(t *schema.Table, alias string) string {
	if len(t.PrimaryKey) == 0 {
		if alias == "s" {
			return "s.tomb_ctid"
		}
		return alias + ".ctid"
	}
	cols := make([]string, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		cols[i] = alias + "." + pg.QuoteIdent(c)
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

func writeLedger(ctx context.Context, tx pgx.Tx, target string, requestID int64, digest string, counts Counts) error {
	b, err := json.Marshal(counts)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO tombstone.ledger (request_id, target, digest, counts) VALUES ($1, $2, $3, $4)", requestID, target, digest, b)
	if err != nil {
		return fmt.Errorf("write ledger: %w", pg.Interpret(err))
	}
	return nil
}

// LedgerRow is a target's record that a request executed there.
type LedgerRow struct {
	RequestID  int64
	Target     string
	Digest     string
	Counts     Counts
	ExecutedAt time.Time
}

// ReadLedger returns the ledger row of a request in a target, or pg.ErrNotFound.
func ReadLedger(ctx context.Context, q preview.Querier, target string, requestID int64) (*LedgerRow, error) {
	r := &LedgerRow{}
	var counts []byte
	err := q.QueryRow(ctx, "SELECT request_id, target, digest, counts, executed_at FROM tombstone.ledger WHERE request_id = $1 AND target = $2", requestID, target).
		Scan(&r.RequestID, &r.Target, &r.Digest, &counts, &r.ExecutedAt)
	if err != nil {
		if pg.Code(err) == "42P01" {
			return nil, pg.ErrNotFound // the tombstone schema was never created: nothing ran here
		}
		return nil, pg.Interpret(err)
	}
	if err := json.Unmarshal(counts, &r.Counts); err != nil {
		return nil, err
	}
	return r, nil
}

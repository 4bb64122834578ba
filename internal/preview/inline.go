package preview

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// Inline evaluation computes a read-only preview in one statement per target: a node's set is a
// MATERIALIZED common table expression instead of a temp table, and the counts, samples,
// blockers and key hashes come back as rows of that same statement. Leaf sets that need no other
// set (see streamable) are not stored at all: their rows are counted and hashed as they are
// read, a set reached through several paths without a DISTINCT union. It skips the temp tables'
// catalog and write costs, so it is as fast as the join counts a person would write. It covers
// every plan except those needing iteration in Go: cycles across several tables (evaluated to
// a fixpoint) and owned rows (which may have to be excluded and their subtrees rebuilt). Both
// evaluations produce the same digest; the oracle test checks that they agree.

// Inlineable reports whether a plan can be evaluated inline.
func Inlineable(p *policy.Plan) bool {
	if len(cycleHeads(p)) > 0 {
		return false
	}
	for _, c := range p.Root.Children {
		if c.Edge.Kind == policy.EdgeOwns && (c.Action == config.ActionDelete || c.Action == config.ActionSoft) {
			return false
		}
	}
	return true
}

// EvaluateInline computes the preview of an inlineable plan in the given transactions (one
// REPEATABLE READ transaction per target; read-only is fine).
func EvaluateInline(ctx context.Context, q map[string]Querier, plan *policy.Plan, rootKey []string) (*Preview, error) {
	if !Inlineable(plan) {
		return nil, fmt.Errorf("plan of %s cannot be evaluated inline", plan.Kind.Name)
	}
	s := &Sets{Plan: plan, RootKey: rootKey, nodes: make([]nodeSet, len(plan.Nodes)), q: q}
	for _, n := range plan.Nodes {
		s.nodes[n.ID].rel = fmt.Sprintf("tomb_n%d", n.ID)
	}
	f := &facts{nodeRows: make([]int64, len(plan.Nodes)), samples: make([][]Row, len(plan.Nodes))}
	specs := tableSpecs(plan)
	tables := make([]tableFact, len(specs))
	// The targets are separate databases, each in its own transaction: they are evaluated at
	// once. Each writes only its own nodes' and sets' entries of f and tables. The root's values
	// that links into other targets start from are read first, so that no two goroutines use the
	// root target's transaction.
	if err := s.readRootValues(ctx); err != nil {
		return nil, err
	}
	errs := make([]error, len(plan.Targets))
	found := make([][]Blocker, len(plan.Targets))
	var wg sync.WaitGroup
	for i, target := range plan.Targets {
		wg.Go(func() { found[i], errs[i] = s.inlineTarget(ctx, target, specs, tables, f) })
	}
	wg.Wait()
	for i := range plan.Targets {
		if errs[i] != nil {
			return nil, errs[i]
		}
		f.blockers = append(f.blockers, found[i]...)
	}
	f.tables = tables
	// Blockers in plan order, as the temp-table evaluation lists them.
	var ordered []Blocker
	for _, sp := range specs {
		if sp.action != config.ActionBlock {
			continue
		}
		for _, n := range sp.nodes {
			for _, b := range f.blockers {
				if b.Path == n.Path() && b.Target == n.Target {
					ordered = append(ordered, b)
				}
			}
		}
	}
	f.blockers = ordered
	return assemble(ctx, q[plan.Root.Target], plan, rootKey, f)
}

// inlineTarget evaluates one target's share of the plan in one statement, fills f's and
// tables' entries of that target and returns its blockers.
func (s *Sets) inlineTarget(ctx context.Context, target string, specs []tableSpec, tables []tableFact, f *facts) (blockers []Blocker, err error) {
	plan := s.Plan
	var ctes, rows []string
	var args []any
	if plan.Root.Target == target {
		t := plan.Root.Table
		conds := make([]string, len(t.PrimaryKey))
		for i, c := range t.PrimaryKey {
			args = append(args, s.RootKey[i])
			conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), len(args), t.Column(c).Type)
		}
		base := fmt.Sprintf("SELECT %s FROM %s t WHERE %s", keySelect(t, "t"), t.Name.Quoted(), strings.Join(conds, " AND "))
		ctes = append(ctes, fmt.Sprintf("%s AS MATERIALIZED (%s)", s.nodes[0].rel, withSelf(plan.Root, base)))
	}
	// Streamed sets: each node's rows are counted and hashed as they are read, never stored.
	streamed := map[int]bool{} // spec index
	piece := map[int]string{}  // node ID → its piece's one-row relation
	var pieces []string        // after the sets they read
	for i, sp := range specs {
		if sp.target != target || !streamable(specs, i) {
			continue
		}
		streamed[i] = true
		for k, n := range sp.nodes {
			piece[n.ID] = fmt.Sprintf("tomb_p%d", n.ID)
			pieces = append(pieces, fmt.Sprintf("%s AS MATERIALIZED (%s)", piece[n.ID], s.pieceSQL(sp, k)))
		}
	}
	recursive := false
	for _, n := range plan.Nodes[1:] {
		if n.Target != target || piece[n.ID] != "" {
			continue
		}
		if tree := s.treeCTEs(n); tree != nil {
			ctes = append(ctes, tree...)
			recursive = true
			continue
		}
		sql, a, err := s.selectSQL(ctx, n, len(args)+1)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
		ctes = append(ctes, fmt.Sprintf("%s AS MATERIALIZED (%s)", s.nodes[n.ID].rel, sql))
	}
	ctes = append(ctes, pieces...)
	for _, n := range plan.Nodes {
		if n.Target != target {
			continue
		}
		if p := piece[n.ID]; p != "" {
			rows = append(rows, fmt.Sprintf("SELECT 'n', %d, (SELECT n FROM %s), 0::bigint, NULL::text, %s::text", n.ID, p, sampleSQL(n.Table, s.streamSample(n, p))))
			continue
		}
		rel := s.nodes[n.ID].rel
		rows = append(rows, fmt.Sprintf("SELECT 'n', %d, (SELECT count(*) FROM %s), 0::bigint, NULL::text, %s::text", n.ID, rel, sampleSQL(n.Table, rel)))
	}
	rel := func(n *policy.Node) string { return s.nodes[n.ID].rel }
	names := map[int]string{}
	find := func(sp tableSpec, action string) string {
		for i, o := range specs {
			if o.target == sp.target && o.table == sp.table && o.action == action {
				return names[i]
			}
		}
		return ""
	}
	for i, sp := range specs {
		if sp.target != target {
			continue
		}
		if streamed[i] {
			var count, h1, h2 []string
			for _, n := range sp.nodes {
				count = append(count, fmt.Sprintf("(SELECT d FROM %s)", piece[n.ID]))
				h1 = append(h1, fmt.Sprintf("coalesce((SELECT h1 FROM %s), 0)", piece[n.ID]))
				h2 = append(h2, fmt.Sprintf("coalesce((SELECT h2 FROM %s), 0)", piece[n.ID]))
			}
			rows = append(rows, fmt.Sprintf("SELECT 't', %d, %s, 0::bigint, %s, NULL::text", i, strings.Join(count, " + "), keyHashOf(strings.Join(h1, " + "), strings.Join(h2, " + "))))
			continue
		}
		sql, all, reuse := setSQL(sp, rel, find(sp, config.ActionDelete), find(sp, config.ActionSoft))
		name := reuse
		if reuse == "" {
			name = fmt.Sprintf("tomb_a%d", i)
			ctes = append(ctes, fmt.Sprintf("%s AS MATERIALIZED (%s)", name, sql))
		}
		names[i] = name
		already := "0::bigint"
		if sp.action == config.ActionSoft {
			already = fmt.Sprintf("(SELECT count(*) FROM (%s) x) - (SELECT count(*) FROM %s)", all, name)
		}
		rows = append(rows, fmt.Sprintf("SELECT 't', %d, (SELECT count(*) FROM %s), %s, %s, NULL::text", i, name, already, keyHashSQL(sp.table, name)))
		if sp.action == config.ActionBlock {
			for _, n := range sp.nodes {
				both := blockedOf(s.nodes[n.ID].rel, name)
				rows = append(rows, fmt.Sprintf("SELECT 'b', %d, (SELECT count(*) FROM %s), 0::bigint, NULL::text, %s::text", n.ID, both, sampleSQL(n.Table, both)))
			}
		}
	}
	with := "WITH "
	if recursive {
		with = "WITH RECURSIVE "
	}
	sql := with + strings.Join(ctes, ",\n") + "\n" + strings.Join(rows, "\nUNION ALL\n")
	// The statement is large and its cost estimate high, so PostgreSQL would JIT-compile it:
	// seconds of compilation for milliseconds of work. Its text is the same for every root of
	// the kind (the root's values are parameters), so it is prepared once per connection and
	// planned once, generically: planning it takes about as long as running it for a small
	// root (60 ms for the demo's tenant kind), and a generic plan is as good as a custom one
	// here, where no estimate depends on the root. The server keeps the plan (about 5 MB for
	// that kind) until the connection closes.
	if _, err := s.q[target].Exec(ctx, "SELECT set_config('jit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)"); err != nil {
		return nil, fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	res, err := s.q[target].Query(ctx, sql, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	defer res.Close()
	for res.Next() {
		var kind string
		var id int
		var count, extra int64
		var hash, sample *string
		if err := res.Scan(&kind, &id, &count, &extra, &hash, &sample); err != nil {
			return nil, err
		}
		switch kind {
		case "n":
			f.nodeRows[id] = count
			if count > 0 && sample != nil {
				rows, err := parseSample(plan.Nodes[id].Table, []byte(*sample))
				if err != nil {
					return nil, err
				}
				f.samples[id] = rows
			}
		case "t":
			tables[id] = tableFact{spec: specs[id], rows: count, already: extra, hash: emptyKeyHash}
			if count > 0 && hash != nil {
				tables[id].hash = *hash
			}
		case "b":
			if count == 0 {
				continue
			}
			n := plan.Nodes[id]
			var smp []Row
			if sample != nil {
				if smp, err = parseSample(n.Table, []byte(*sample)); err != nil {
					return nil, err
				}
			}
			blockers = append(blockers, Blocker{Target: n.Target, Table: n.Table.Name.String(), Path: n.Path(), Reason: n.BlockReason, Rows: count, Sample: smp})
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	if target == plan.Root.Target && f.nodeRows[0] == 0 {
		return nil, ErrRootNotFound
	}
	return blockers, nil
}

// sampleWindow is how many rows, in key order from a streamed node's smallest key, its sample
// looks at before it falls back to reading the whole node again.
const sampleWindow = 1000

// streamable reports whether final set specs[i] is computed from its nodes' rows as they are
// read, without materializing them: its nodes are the only ones of their table, all leaves of
// the same target as their parents and without back edges, the action needs no other set
// (delete, detach or keep), and the table's key is one integer column.
func streamable(specs []tableSpec, i int) bool {
	sp := specs[i]
	switch sp.action {
	case config.ActionDelete, config.ActionDetach, config.ActionKeep:
	default:
		return false
	}
	for j, o := range specs {
		if j != i && o.target == sp.target && o.table == sp.table {
			return false
		}
	}
	t := sp.table
	if len(t.PrimaryKey) != 1 || t.Column(t.PrimaryKey[0]) == nil || !isInteger(t.Column(t.PrimaryKey[0]).Type) {
		return false
	}
	for _, n := range sp.nodes {
		if n.Parent == nil || n.Parent.Target != n.Target || len(n.Children) > 0 || len(n.Back) > 0 {
			return false
		}
	}
	return true
}

// pieceSQL is one row about node sp.nodes[k] of a streamed set: n, the rows the node reaches;
// d, h1 and h2, the count and key hash sums of those not reached by an earlier node of the set
// (so the pieces of a set add up to its DISTINCT rows without a union); m, its smallest key.
// Whether an earlier node reaches a row is a probe of a hash of that node's parent values (a
// hashed subplan, built once from the few parent values rather than from the many child rows),
// not a comparison with the earlier node's rows; a NULL reaches nothing. The probes run once
// per row, in a subquery kept apart from the aggregates (OFFSET 0) that all filter on them.
func (s *Sets) pieceSQL(sp tableSpec, k int) string {
	t := sp.table
	n := sp.nodes[k]
	var fresh []string
	for j := 0; j < k; j++ {
		m := sp.nodes[j]
		values, _ := s.reachValues(m.Edge, m.Parent)
		fresh = append(fresh, fmt.Sprintf("((%s) IN (%s)) IS NOT TRUE", qualified("c", m.Edge.ToColumns), values))
	}
	isNew := "true"
	if len(fresh) > 0 {
		isNew = strings.Join(fresh, " AND ")
	}
	key := pg.QuoteIdent(t.PrimaryKey[0])
	reach, where := s.reachFilter(n.Edge, n.Parent)
	return fmt.Sprintf("SELECT count(*) AS n, count(*) FILTER (WHERE c.tomb_new) AS d, sum(%[1]s) FILTER (WHERE c.tomb_new) AS h1, sum(%[2]s) FILTER (WHERE c.tomb_new) AS h2, min(c.%[3]s) AS m FROM (SELECT c.%[3]s, %[4]s AS tomb_new FROM %[5]s c%[6]s WHERE %[7]s OFFSET 0) c",
		keyHashExpr(t, "c", keySeed1), keyHashExpr(t, "c", keySeed2), key, isNew, t.Name.Quoted(), reach, where)
}

// streamSample is a relation of the keys a streamed node's sample is taken from: the node's rows
// among the sampleWindow rows of its table from its smallest key on, in key order, which hold its
// SampleSize smallest keys unless other rows are interleaved; then, and only then, all its rows.
func (s *Sets) streamSample(n *policy.Node, piece string) string {
	t := n.Table
	key := pg.QuoteIdent(t.PrimaryKey[0])
	values, _ := s.reachValues(n.Edge, n.Parent)
	member := fmt.Sprintf("(%s) IN (%s)", qualified("c", n.Edge.ToColumns), values)
	near := fmt.Sprintf("SELECT c.%[1]s FROM (SELECT c.* FROM %[2]s c WHERE c.%[1]s >= (SELECT m FROM %[3]s) ORDER BY c.%[1]s LIMIT %[4]d) c WHERE %[5]s ORDER BY c.%[1]s LIMIT %[6]d",
		key, t.Name.Quoted(), piece, sampleWindow, member, SampleSize)
	// OFFSET 0 keeps the planner from walking the whole key index in order to find a few rows.
	all := fmt.Sprintf("SELECT f.%[1]s FROM (SELECT c.%[1]s FROM %[2]s c WHERE %[3]s OFFSET 0) f", key, t.Name.Quoted(), member)
	short := fmt.Sprintf("(SELECT count(*) FROM (%s) k) < LEAST(%d, (SELECT n FROM %s))", near, SampleSize, piece)
	return fmt.Sprintf("(SELECT k.* FROM (%s) k WHERE NOT %s UNION ALL %s WHERE %s) b", near, short, all, short)
}

// treeCTEs evaluates a node closed under one tree-shaped self edge (parent_id → id) and reached
// from a parent of the same target, or returns nil for any other node. WITH RECURSIVE over the
// whole set would keep every row of the set in the recursion's DISTINCT table and store the set
// twice. Here the rows reached from the parent (tomb_b) are stored once; the recursion starts
// from their children only (tomb_e, the few rows that refer to another row of the table) and
// carries the columns of the parent edge, so that the node (tomb_n, a view over both) adds the
// recursion's rows not already among tomb_b's by a probe of the parent's values rather than a
// comparison with tomb_b. A row is in tomb_b exactly when that probe is true, so the two parts
// never share a row.
func (s *Sets) treeCTEs(n *policy.Node) []string {
	if n.Parent == nil || n.Parent.Target != n.Target || len(n.Back) != 1 || n.Back[0].To != n {
		return nil
	}
	t := n.Table
	self := n.Back[0].Edge
	if len(t.PrimaryKey) == 0 || !sameColumns(self.FromColumns, t.PrimaryKey) {
		return nil
	}
	base := fmt.Sprintf("tomb_b%d", n.ID)
	rec := fmt.Sprintf("tomb_e%d", n.ID)
	// tomb_e's columns: the key as k0… in key order, then the parent edge's columns as v0….
	names := make([]string, 0, len(t.PrimaryKey)+len(n.Edge.ToColumns))
	sel := make([]string, 0, cap(names))
	for i, c := range t.PrimaryKey {
		names = append(names, fmt.Sprintf("k%d", i))
		sel = append(sel, "c."+pg.QuoteIdent(c))
	}
	vals := make([]string, len(n.Edge.ToColumns))
	for i, c := range n.Edge.ToColumns {
		names = append(names, fmt.Sprintf("v%d", i))
		sel = append(sel, "c."+pg.QuoteIdent(c))
		vals[i] = fmt.Sprintf("e.v%d", i)
	}
	// The self edge's columns on the referring row (c) against the referred row's key, under
	// the name that row's relation gives it: its own name in tomb_b, k<i> in tomb_e.
	on := func(alias string, renamed bool) string {
		conds := make([]string, len(self.ToColumns))
		for i, to := range self.ToColumns {
			ref := alias + "." + pg.QuoteIdent(self.FromColumns[i])
			if renamed {
				ref = fmt.Sprintf("%s.k%d", alias, keyIndex(t, self.FromColumns[i]))
			}
			conds[i] = fmt.Sprintf("c.%s = %s", pg.QuoteIdent(to), ref)
		}
		return strings.Join(conds, " AND ")
	}
	// NULL never equals a key: saying so lets the planner hash only the rows that refer to one.
	var notNull []string
	for _, to := range self.ToColumns {
		notNull = append(notNull, "c."+pg.QuoteIdent(to)+" IS NOT NULL")
	}
	nn := strings.Join(notNull, " AND ")
	values, _ := s.reachValues(n.Edge, n.Parent)
	keys := make([]string, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		keys[i] = fmt.Sprintf("e.k%d AS %s", i, pg.QuoteIdent(c))
	}
	return []string{
		fmt.Sprintf("%s AS MATERIALIZED (%s)", base, s.reachSQL(n.Edge, n.Parent, t)),
		fmt.Sprintf("%[1]s(%[2]s) AS (SELECT %[3]s FROM %[4]s b JOIN %[5]s c ON %[6]s WHERE %[7]s UNION SELECT %[3]s FROM %[1]s e JOIN %[5]s c ON %[8]s WHERE %[7]s)",
			rec, strings.Join(names, ", "), strings.Join(sel, ", "), base, t.Name.Quoted(), on("b", false), nn, on("e", true)),
		fmt.Sprintf("%s AS NOT MATERIALIZED (SELECT * FROM %s UNION ALL SELECT %s FROM %s e WHERE ((%s) IN (%s)) IS NOT TRUE)",
			s.nodes[n.ID].rel, base, strings.Join(keys, ", "), rec, strings.Join(vals, ", "), values),
	}
}

// keyIndex is the position of column c in t's primary key.
func keyIndex(t *schema.Table, c string) int {
	for i, k := range t.PrimaryKey {
		if k == c {
			return i
		}
	}
	return -1
}

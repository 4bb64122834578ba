package preview

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// ErrRootNotFound means the root row does not exist (any more).
var ErrRootNotFound = errors.New("root row not found")

// maxFixpointRounds bounds the evaluation of a cycle across tables. Each round adds at least one
// row or stops, so real data never gets near it.
const maxFixpointRounds = 100000

// Sets is a plan evaluated for one root inside one transaction per target. Every set is a temp
// table of primary keys in that target's transaction; none of the cascade's rows is loaded into
// Go. The relations live until the transactions end, so the executor can lock, archive and
// delete through them in the same transactions.
type Sets struct {
	Plan *policy.Plan
	// RootKey is the root's primary key values as text, in key order.
	RootKey []string
	nodes   []nodeSet
	// Tables are the final per-(target, table, action) sets, in plan order.
	Tables []*TableSet
	// Kept lists owned rows left alone because something outside the cascade still refers to them.
	Kept []KeptOwned

	q map[string]Querier
	// rootVals holds the root's values of links into other targets (readRootValues).
	rootVals map[*policy.Edge][]string
	agg      []string // temp relations made by aggregation, dropped when re-aggregating
	seqTmp   int
	opts     Options
}

// Options change how sets are evaluated.
type Options struct {
	// Lock takes FOR UPDATE locks, parents first and ordered by key, on the root and on every
	// row that has children in the cascade, as soon as its set is known and before its children
	// are read. Used by the executor in a READ COMMITTED transaction: a concurrent insert of a
	// child then waits for the executor and can neither be orphaned nor escape the count.
	Lock bool
	// ScratchSchema, when set, holds the sets as ordinary unlogged tables named
	// ScratchPrefix+name in that schema instead of temp tables. PostgreSQL refuses to PREPARE
	// a transaction that touched temp tables, so a transaction meant for two-phase commit
	// evaluates this way. The tables live only inside the transaction: the caller must Drop
	// them before it commits or prepares, and must make the prefix unique among concurrent
	// transactions on the target (a second CREATE of the same name waits for the first).
	ScratchSchema string
	ScratchPrefix string
	// DeferLeafDeletes leaves the sets of deferrable leaf tables (see deferrable) unbuilt: the
	// executor deletes their rows straight from their parents' sets, one statement per node,
	// and records what each statement deleted (DeferredDeleteSQL, RecordDeferred). Their
	// counts and key hashes are known only then, so the caller checks the digest after the
	// deletes, in the same transaction. Nothing else reads a leaf's set, and a foreign key
	// from the leaf to its parent's locked rows keeps it from gaining rows meanwhile.
	DeferLeafDeletes bool
}

// relName names a set relation: a temp table, or a scratch table (Options.ScratchSchema).
func (s *Sets) relName(format string, args ...any) string {
	name := fmt.Sprintf(format, args...)
	if s.opts.ScratchSchema == "" {
		return "pg_temp." + pg.QuoteIdent(name)
	}
	return pg.QuoteIdent(s.opts.ScratchSchema) + "." + pg.QuoteIdent(s.opts.ScratchPrefix+name)
}

// createAs starts the statement that creates set relation rel from a query.
func (s *Sets) createAs(rel string) string {
	if s.opts.ScratchSchema == "" {
		return "CREATE TEMP TABLE " + rel + " ON COMMIT DROP AS "
	}
	return "CREATE UNLOGGED TABLE " + rel + " AS "
}

type nodeSet struct {
	rel  string
	rows int64
	// deferred marks a leaf whose set is never built (Options.DeferLeafDeletes).
	deferred bool
	// locked is rows when the set was last locked (Options.Lock).
	locked int64
}

// TableSet is the distinct rows of one table that get one action: a row reached by several
// paths is counted once; a row deleted through any path is only in the delete set.
type TableSet struct {
	Target string
	Table  *schema.Table
	Action string
	// Rel is the temp relation holding the keys (columns KeyColumns(Table)).
	Rel  string
	Rows int64
	// AlreadyTombstoned counts soft rows whose tombstone is already set; they are not in Rel.
	AlreadyTombstoned int64
	// Nodes are the plan nodes that reach these rows with this action.
	Nodes []*policy.Node
	// Deferred marks a delete set that was not built (Options.DeferLeafDeletes): Rel is empty
	// and Rows is zero until RecordDeferred.
	Deferred bool
	// applied is set by RecordDeferred; keyHash caches the set's key hash once known.
	applied bool
	keyHash string
}

// KeptOwned is an owned row (owns:) that stays because other rows still refer to it.
type KeptOwned struct {
	Node *policy.Node
	Rows int64
}

// NodeRows returns the number of rows reached through node id.
func (s *Sets) NodeRows(id int) int64 { return s.nodes[id].rows }

// NodeRel returns the temp relation of node id's set.
func (s *Sets) NodeRel(id int) string { return s.nodes[id].rel }

// Querier returns the transaction of a target.
func (s *Sets) Querier(target string) Querier { return s.q[target] }

// Evaluate computes every node's set and the per-table sets for the root with the given key, in
// the given transactions (one per target of the plan, each REPEATABLE READ for a consistent
// snapshot; they must be read-write because sets are temp tables, and the preview rolls them
// back). Evaluation order: the root's target first, then the others, which receive the root's
// values for their also links.
func Evaluate(ctx context.Context, q map[string]Querier, plan *policy.Plan, rootKey []string) (*Sets, error) {
	return EvaluateWith(ctx, q, plan, rootKey, Options{})
}

// noJIT turns JIT compilation off for the rest of the transaction. A set read from a temp
// table without statistics, or through WITH RECURSIVE, has a cost estimate high enough for
// PostgreSQL to JIT-compile the statement: hundreds of milliseconds of compilation for a
// statement that runs in one, and for a delete through the set, more than the delete.
func noJIT(ctx context.Context, q Querier) error {
	if _, err := q.Exec(ctx, "SELECT set_config('jit', 'off', true)"); err != nil {
		return pg.Interpret(err)
	}
	return nil
}

// EvaluateWith is Evaluate with options. It turns JIT off in the transactions it is given
// (noJIT): the caller's statements on the sets after it run without it too.
func EvaluateWith(ctx context.Context, q map[string]Querier, plan *policy.Plan, rootKey []string, opts Options) (*Sets, error) {
	s := &Sets{Plan: plan, RootKey: rootKey, nodes: make([]nodeSet, len(plan.Nodes)), q: q, opts: opts}
	for _, t := range plan.Targets {
		if q[t] == nil {
			return nil, fmt.Errorf("no transaction for target %q", t)
		}
		if err := noJIT(ctx, q[t]); err != nil {
			return nil, fmt.Errorf("target %s: %w", t, err)
		}
	}
	if opts.DeferLeafDeletes {
		for _, sp := range deferrable(plan) {
			for _, n := range sp.nodes {
				s.nodes[n.ID].deferred = true
			}
		}
	}
	if err := s.buildRoot(ctx); err != nil {
		return nil, err
	}
	for _, target := range plan.Targets {
		if err := s.buildTarget(ctx, target); err != nil {
			return nil, fmt.Errorf("target %s: %w", target, err)
		}
		if opts.Lock {
			if err := s.settleLocked(ctx, target); err != nil {
				return nil, fmt.Errorf("target %s: %w", target, err)
			}
		}
	}
	if err := s.aggregate(ctx); err != nil {
		return nil, err
	}
	if err := s.excludeReferencedOwned(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sets) buildRoot(ctx context.Context) error {
	root := s.Plan.Root
	t := root.Table
	if len(s.RootKey) != len(t.PrimaryKey) {
		return fmt.Errorf("root key has %d values, %s's primary key has %d columns", len(s.RootKey), t.Name, len(t.PrimaryKey))
	}
	conds := make([]string, len(t.PrimaryKey))
	args := make([]any, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), i+1, t.Column(c).Type)
		args[i] = s.RootKey[i]
	}
	rel := s.relName("tomb_n%d", root.ID)
	base := fmt.Sprintf("SELECT %s FROM %s t WHERE %s", keySelect(t, "t"), t.Name.Quoted(), strings.Join(conds, " AND "))
	sql := s.createAs(rel) + withSelf(root, base)
	tag, err := s.q[root.Target].Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("find root: %w", pg.Interpret(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrRootNotFound
	}
	s.nodes[root.ID] = nodeSet{rel: rel, rows: tag.RowsAffected()}
	return s.lock(ctx, root)
}

// lock takes FOR UPDATE locks on the rows of a node that has children in the cascade.
func (s *Sets) lock(ctx context.Context, n *policy.Node) error {
	if !s.opts.Lock || (len(n.Children) == 0 && len(n.Back) == 0) {
		return nil
	}
	t := n.Table
	order := keyRefList(t, "t")
	_, err := s.q[n.Target].Exec(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s t WHERE %s IN (SELECT * FROM %s) ORDER BY %s FOR UPDATE OF t) x",
		t.Name.Quoted(), keyRef(t, "t"), s.nodes[n.ID].rel, order))
	if err != nil {
		return fmt.Errorf("lock %s: %w", n.Path(), pg.Interpret(err))
	}
	s.nodes[n.ID].locked = s.nodes[n.ID].rows
	return nil
}

// settleLocked re-reads the nodes of a target from their locked parents until nothing new
// turns up, locking what does. Rows found here appeared between a set's read and its parent's
// lock.
//
// A set read through a foreign key (or owned through the root's) from rows that were all
// locked before the read cannot gain rows: a concurrent insert or update of a child takes FOR
// KEY SHARE on its parent in its FK check, so it either committed before the lock, and the
// later read saw it, or waits for this transaction. Such a read is repeated only once its
// source gained rows or was locked here. That leaves, re-read at least once after locking: the
// children and back edges of nodes to which a cycle's fixpoint added rows without locking them
// (they are locked first); self back edges, closed in the node's own statement before the node
// was locked; and, every round, links without a foreign key.
func (s *Sets) settleLocked(ctx context.Context, target string) error {
	q := s.q[target]
	nodes := s.Plan.Nodes
	grew := make([]int, len(nodes))       // times a node's set gained rows or was locked here
	seen := make([]int, len(nodes))       // grew[parent] when the node was last read from it
	seenBack := make([][]int, len(nodes)) // grew[node] when each back edge was last read
	for _, n := range nodes {
		seenBack[n.ID] = make([]int, len(n.Back))
		for i, b := range n.Back {
			if b.To == n {
				seenBack[n.ID][i] = -1 // read once more, now that n is locked
			}
		}
	}
	for _, h := range cycleHeads(s.Plan) {
		if h.Target != target {
			continue
		}
		for id := h.ID; id <= subtreeEnd(s.Plan, h); id++ {
			if s.nodes[id].rows == s.nodes[id].locked {
				continue // the fixpoint added nothing: every row was locked before its children were read
			}
			if err := s.lock(ctx, nodes[id]); err != nil {
				return err
			}
			grew[id] = 1
		}
	}
	for round := 0; round < maxFixpointRounds; round++ {
		var changed int64
		for _, n := range nodes {
			if n.Target != target || s.nodes[n.ID].deferred {
				continue
			}
			var added int64
			if n.Parent != nil && n.Parent.Target == target && (!lockedLink(n.Edge) || seen[n.ID] != grew[n.Parent.ID]) {
				seen[n.ID] = grew[n.Parent.ID]
				m, err := s.insertNew(ctx, q, n, s.reachSQL(n.Edge, n.Parent, n.Table))
				if err != nil {
					return err
				}
				added = m
			}
			for i, b := range n.Back {
				if lockedLink(b.Edge) && seenBack[n.ID][i] == grew[n.ID] {
					continue
				}
				seenBack[n.ID][i] = grew[n.ID]
				m, err := s.insertNew(ctx, q, b.To, s.reachSQL(b.Edge, n, b.To.Table))
				if err != nil {
					return err
				}
				added += m
				if m > 0 {
					grew[b.To.ID]++
					if err := s.lock(ctx, b.To); err != nil {
						return err
					}
				}
			}
			if added > 0 {
				grew[n.ID]++
				if err := s.lock(ctx, n); err != nil {
					return err
				}
			}
			changed += added
		}
		if changed == 0 {
			return nil
		}
	}
	return fmt.Errorf("sets did not settle")
}

// lockedLink reports an edge whose rows cannot change while the rows it starts from are locked
// FOR UPDATE: a foreign key from the child (its check takes FOR KEY SHARE on the parent), or
// the root's own foreign key to a row it owns.
func lockedLink(e *policy.Edge) bool {
	return e != nil && e.FK != nil && (e.Kind == policy.EdgeFK || e.Kind == policy.EdgeOwns)
}

// buildTarget builds the sets of every node of one target in depth-first order, running each
// cycle to its fixpoint once the cycle head's subtree is built.
func (s *Sets) buildTarget(ctx context.Context, target string) error {
	nodes := s.Plan.Nodes
	heads := cycleHeads(s.Plan)
	for i := 1; i < len(nodes); i++ {
		n := nodes[i]
		if n.Target != target {
			continue
		}
		if !s.nodes[n.ID].deferred {
			sql, args, err := s.selectSQL(ctx, n, 1)
			if err != nil {
				return err
			}
			rel := s.relName("tomb_n%d", n.ID)
			tag, err := s.q[target].Exec(ctx, s.createAs(rel)+sql, args...)
			if err != nil {
				return fmt.Errorf("node %s: %w", n.Path(), pg.Interpret(err))
			}
			s.nodes[n.ID] = nodeSet{rel: rel, rows: tag.RowsAffected()}
			if err := s.lock(ctx, n); err != nil {
				return err
			}
		}
		// A deferred leaf may end a cycle's subtree: the cycle closes here all the same.
		if err := s.closeCycles(ctx, heads, i); err != nil {
			return err
		}
	}
	// A cycle whose head is the root closes after everything else.
	if s.Plan.Root.Target == target {
		return s.closeCycles(ctx, heads, len(nodes)-1)
	}
	return nil
}

// closeCycles runs the fixpoint of every cycle head whose subtree ends at index i, innermost first.
func (s *Sets) closeCycles(ctx context.Context, heads []*policy.Node, i int) error {
	for j := len(heads) - 1; j >= 0; j-- {
		h := heads[j]
		if subtreeEnd(s.Plan, h) == i {
			if err := s.fixpoint(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// cycleHeads are nodes that a back edge from another node leads to (self edges are evaluated
// by WITH RECURSIVE when the node is built), in plan order.
func cycleHeads(p *policy.Plan) []*policy.Node {
	seen := map[*policy.Node]bool{}
	var out []*policy.Node
	for _, n := range p.Nodes {
		for _, b := range n.Back {
			if b.To != n && !seen[b.To] {
				seen[b.To] = true
			}
		}
	}
	for _, n := range p.Nodes {
		if seen[n] {
			out = append(out, n)
		}
	}
	return out
}

// subtreeEnd is the index of the last node in n's subtree (nodes are in depth-first order).
func subtreeEnd(p *policy.Plan, n *policy.Node) int {
	end := n.ID
	for _, c := range n.Children {
		if e := subtreeEnd(p, c); e > end {
			end = e
		}
	}
	return end
}

// fixpoint grows the sets of head's subtree until no back edge or parent edge adds a row.
// Every set of the subtree is closed under its parent edge when it starts (built or refilled
// from its parent, inner cycles closed first), so the first round follows only the back edges,
// and later rounds re-read a node from its parent, or follow a node's back edges, only once
// that parent or node gained rows.
func (s *Sets) fixpoint(ctx context.Context, head *policy.Node) error {
	end := subtreeEnd(s.Plan, head)
	q := s.q[head.Target]
	grew := map[int]int{}        // node id → times its set gained rows in this fixpoint
	seen := map[int]int{}        // node id → grew[parent] when last read from its parent
	seenBack := map[[2]int]int{} // (node id, back edge) → grew[node] when last followed
	for round := 0; ; round++ {
		if round > maxFixpointRounds {
			return fmt.Errorf("cycle at %s did not converge", head.Path())
		}
		var changed int64
		for id := head.ID; id <= end; id++ {
			m := s.Plan.Nodes[id]
			if s.nodes[id].deferred {
				continue // a leaf nothing reads, deleted from its parent's final set
			}
			for i, b := range m.Back {
				if b.To.ID < head.ID || b.To.ID > end {
					continue
				}
				k := [2]int{id, i}
				if round > 0 && seenBack[k] == grew[id] {
					continue
				}
				seenBack[k] = grew[id]
				n, err := s.insertNew(ctx, q, b.To, s.reachSQL(b.Edge, m, b.To.Table))
				if err != nil {
					return err
				}
				if n > 0 {
					grew[b.To.ID]++
				}
				changed += n
			}
			if id != head.ID && seen[id] != grew[m.Parent.ID] {
				seen[id] = grew[m.Parent.ID]
				n, err := s.insertNew(ctx, q, m, s.reachSQL(m.Edge, m.Parent, m.Table))
				if err != nil {
					return err
				}
				if n > 0 {
					grew[id]++
				}
				changed += n
			}
		}
		if changed == 0 {
			return nil
		}
	}
}

func (s *Sets) insertNew(ctx context.Context, q Querier, n *policy.Node, sql string) (int64, error) {
	rel := s.nodes[n.ID].rel
	tag, err := q.Exec(ctx, fmt.Sprintf("INSERT INTO %s SELECT * FROM (%s) x EXCEPT SELECT * FROM %s", rel, sql, rel))
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", n.Path(), pg.Interpret(err))
	}
	s.nodes[n.ID].rows += tag.RowsAffected()
	return tag.RowsAffected(), nil
}

// selectSQL is the query for a node's initial set: rows reached from its parent's set, or from
// the root's values for an also link into another target (bound as parameter $argN); with self
// back edges it is closed under them by WITH RECURSIVE.
func (s *Sets) selectSQL(ctx context.Context, n *policy.Node, argN int) (string, []any, error) {
	var base string
	var args []any
	if n.Parent.Target != n.Target {
		vals, err := s.rootValues(ctx, n.Edge)
		if err != nil {
			return "", nil, err
		}
		col := n.Table.Column(n.Edge.ToColumns[0])
		base = fmt.Sprintf("SELECT %s FROM %s c WHERE c.%s = ANY(CAST($%d::text[] AS %s[]))", keySelect(n.Table, "c"), n.Table.Name.Quoted(), pg.QuoteIdent(col.Name), argN, col.Type)
		args = []any{vals}
	} else {
		base = s.reachSQL(n.Edge, n.Parent, n.Table)
	}
	return withSelf(n, base), args, nil
}

// withSelf closes a node's base query under its self back edges with WITH RECURSIVE (a tree:
// parent_id → id), or returns base when it has none.
func withSelf(n *policy.Node, base string) string {
	var self []*policy.Edge
	for _, b := range n.Back {
		if b.To == n {
			self = append(self, b.Edge)
		}
	}
	if len(self) == 0 {
		return base
	}
	t := n.Table
	if len(self) == 1 && len(t.PrimaryKey) > 0 && sameColumns(self[0].FromColumns, t.PrimaryKey) {
		// The common tree (parent_id → id): a plain join lets the planner hash it. NULL never
		// equals a key: saying so lets it hash only the rows that refer to another.
		e := self[0]
		notNull := make([]string, len(e.ToColumns))
		for i, c := range e.ToColumns {
			notNull[i] = "c." + pg.QuoteIdent(c) + " IS NOT NULL"
		}
		return fmt.Sprintf("WITH RECURSIVE r AS (%s UNION SELECT %s FROM r JOIN %s c ON (%s) = (%s) WHERE %s) SELECT * FROM r",
			base, keySelect(t, "c"), t.Name.Quoted(), qualified("c", e.ToColumns), qualified("r", e.FromColumns), strings.Join(notNull, " AND "))
	}
	terms := make([]string, len(self))
	for i, e := range self {
		if len(t.PrimaryKey) > 0 && sameColumns(e.FromColumns, t.PrimaryKey) {
			terms[i] = fmt.Sprintf("SELECT %s FROM %s c WHERE (%s) = (%s)", keySelect(t, "c"), t.Name.Quoted(), qualified("c", e.ToColumns), qualified("r", e.FromColumns))
		} else {
			terms[i] = fmt.Sprintf("SELECT %s FROM %s p JOIN %s c ON (%s) = (%s) WHERE %s = %s",
				keySelect(t, "c"), t.Name.Quoted(), t.Name.Quoted(), qualified("c", e.ToColumns), qualified("p", e.FromColumns), keyRef(t, "p"), rowOf("r", KeyColumns(t)))
		}
	}
	return fmt.Sprintf("WITH RECURSIVE r AS (%s UNION SELECT x.* FROM r, LATERAL (%s) x) SELECT * FROM r", base, strings.Join(terms, " UNION ALL "))
}

func rowOf(alias string, cols []string) string {
	if len(cols) == 1 {
		return alias + "." + pg.QuoteIdent(cols[0])
	}
	return "(" + qualified(alias, cols) + ")"
}

// reachSQL selects the keys of child-table rows reached through e from parent's set.
func (s *Sets) reachSQL(e *policy.Edge, parent *policy.Node, child *schema.Table) string {
	join, where := s.reachFilter(e, parent)
	return fmt.Sprintf("SELECT %s FROM %s c%s WHERE %s", keySelect(child, "c"), child.Name.Quoted(), join, where)
}

// reachFilter keeps the rows of a child table, aliased c, reached through e from parent's set:
// a join with the parent's values when no value repeats (a node's set never holds a row
// twice, so its own keys are unique), which spares the planner a pass that removes duplicates
// before it probes the child's index; otherwise a semi-join (IN). Either way each child row
// comes out at most once, and a NULL reaches nothing.
func (s *Sets) reachFilter(e *policy.Edge, parent *policy.Node) (join, where string) {
	rel, cond := s.reachParts(e, parent)
	if rel == "" {
		return "", cond
	}
	return " JOIN " + rel + " ON " + cond, "true"
}

// reachParts are the pieces of reachFilter: the parent's values as a relation rp(v0, …) and
// the condition matching c to it, or, when values may repeat, no relation and a semi-join.
func (s *Sets) reachParts(e *policy.Edge, parent *policy.Node) (rel, cond string) {
	values, unique := s.reachValues(e, parent)
	if !unique {
		return "", fmt.Sprintf("(%s) IN (%s)", qualified("c", e.ToColumns), values)
	}
	cols := make([]string, len(e.ToColumns))
	on := make([]string, len(e.ToColumns))
	for i, c := range e.ToColumns {
		cols[i] = fmt.Sprintf("v%d", i)
		on[i] = fmt.Sprintf("rp.v%d = c.%s", i, pg.QuoteIdent(c))
	}
	return fmt.Sprintf("(%s) rp(%s)", values, strings.Join(cols, ", ")), strings.Join(on, " AND ")
}

// reachValues selects the values of e's parent columns over parent's set: the rows of the child
// table whose e.ToColumns equal one of them are reached. unique is true when the set's own keys
// are the values, so no value repeats.
func (s *Sets) reachValues(e *policy.Edge, parent *policy.Node) (values string, unique bool) {
	prel := s.nodes[parent.ID].rel
	pt := parent.Table
	if len(pt.PrimaryKey) > 0 && sameColumns(e.FromColumns, pt.PrimaryKey) {
		return fmt.Sprintf("SELECT %s FROM %s", pg.QuoteIdents(e.FromColumns), prel), true
	}
	return fmt.Sprintf("SELECT %s FROM %s p WHERE %s IN (SELECT %s FROM %s)", qualified("p", e.FromColumns), pt.Name.Quoted(), keyRef(pt, "p"), pg.QuoteIdents(KeyColumns(pt)), prel), false
}

// readRootValues reads, once, the root's values of every link into another target, so that
// evaluating the other targets needs nothing more from the root's target.
func (s *Sets) readRootValues(ctx context.Context) error {
	for _, n := range s.Plan.Nodes {
		if n.Parent == nil || n.Parent.Target == n.Target {
			continue
		}
		if _, ok := s.rootVals[n.Edge]; ok {
			continue
		}
		vals, err := s.readRootValuesOf(ctx, n.Edge)
		if err != nil {
			return err
		}
		if s.rootVals == nil {
			s.rootVals = map[*policy.Edge][]string{}
		}
		s.rootVals[n.Edge] = vals
	}
	return nil
}

// rootValues returns the root's values of an also link's source column: read by
// readRootValues, or now.
func (s *Sets) rootValues(ctx context.Context, e *policy.Edge) ([]string, error) {
	if vals, ok := s.rootVals[e]; ok {
		return vals, nil
	}
	return s.readRootValuesOf(ctx, e)
}

// readRootValuesOf reads the root's values of an also link's source column, by the root's key.
func (s *Sets) readRootValuesOf(ctx context.Context, e *policy.Edge) ([]string, error) {
	root := s.Plan.Root
	t := root.Table
	conds := make([]string, len(t.PrimaryKey))
	args := make([]any, len(t.PrimaryKey))
	for i, c := range t.PrimaryKey {
		conds[i] = fmt.Sprintf("r.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), i+1, t.Column(c).Type)
		args[i] = s.RootKey[i]
	}
	col := pg.QuoteIdent(e.FromColumns[0])
	rows, err := s.q[root.Target].Query(ctx, fmt.Sprintf("SELECT r.%s::text FROM %s r WHERE %s AND r.%s IS NOT NULL", col, t.Name.Quoted(), strings.Join(conds, " AND "), col), args...)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, pg.Interpret(rows.Err())
}

// tableSpec is one final (target, table, action) set and the nodes that reach it.
type tableSpec struct {
	target string
	table  *schema.Table
	action string
	nodes  []*policy.Node
}

// actionOrder is the order final sets are computed in: a set may subtract those before it.
var actionOrder = []string{config.ActionDelete, config.ActionSoft, config.ActionDetach, config.ActionBlock, config.ActionKeep}

// tableSpecs lists the final sets of a plan: tables in order of first appearance, actions in
// actionOrder.
func tableSpecs(p *policy.Plan) []tableSpec {
	type key struct {
		target string
		table  *schema.Table
	}
	var order []key
	by := map[key]map[string][]*policy.Node{}
	for _, n := range p.Nodes {
		k := key{n.Target, n.Table}
		if by[k] == nil {
			by[k] = map[string][]*policy.Node{}
			order = append(order, k)
		}
		by[k][n.Action] = append(by[k][n.Action], n)
	}
	var out []tableSpec
	for _, k := range order {
		for _, a := range actionOrder {
			if nodes := by[k][a]; len(nodes) > 0 {
				out = append(out, tableSpec{target: k.target, table: k.table, action: a, nodes: nodes})
			}
		}
	}
	return out
}

// setSQL is the query of a final set: the union of its nodes' sets, less the rows deleted
// through another path (del) and, for keep, less the tombstoned rows (soft). When a single
// node's relation already is the set, reuse names it and sql is "".
//
// A soft set is split: live selects the rows to tombstone (tombstone not yet set), all every
// row reached; sql is live.
func setSQL(sp tableSpec, rel func(*policy.Node) string, del, soft string) (sql, all, reuse string) {
	parts := make([]string, len(sp.nodes))
	for i, n := range sp.nodes {
		parts[i] = "SELECT * FROM " + rel(n)
	}
	union := strings.Join(parts, " UNION ")
	var minus []string
	if del != "" {
		minus = append(minus, del)
	}
	if sp.action == config.ActionKeep && soft != "" {
		minus = append(minus, soft)
	}
	if sp.action != config.ActionSoft && len(sp.nodes) == 1 && len(minus) == 0 {
		return "", "", rel(sp.nodes[0])
	}
	all = union
	for _, m := range minus {
		all = fmt.Sprintf("(%s) EXCEPT SELECT * FROM %s", all, m)
	}
	if sp.action != config.ActionSoft {
		return all, all, ""
	}
	t := sp.table
	col := sp.nodes[0].Tombstone
	live := pg.QuoteIdent(col.Name) + " IS NULL"
	if policy.IsBoolean(col) {
		live = pg.QuoteIdent(col.Name) + " IS NOT TRUE"
	}
	sql = fmt.Sprintf("SELECT %s FROM %s t WHERE %s IN (%s) AND t.%s", keySelect(t, "t"), t.Name.Quoted(), keyRef(t, "t"), all, live)
	return sql, all, ""
}

// aggregate computes the final per-table sets as temp tables (see setSQL).
func (s *Sets) aggregate(ctx context.Context) error {
	for _, rel := range s.agg {
		target := rel[:strings.IndexByte(rel, '\x00')]
		if _, err := s.q[target].Exec(ctx, "DROP TABLE IF EXISTS "+rel[len(target)+1:]); err != nil {
			return pg.Interpret(err)
		}
	}
	s.agg = nil
	s.Tables = nil
	rel := func(n *policy.Node) string { return s.nodes[n.ID].rel }
	for _, sp := range tableSpecs(s.Plan) {
		del, soft := "", ""
		if ts := s.Table(sp.target, sp.table, config.ActionDelete); ts != nil {
			del = ts.Rel
		}
		if ts := s.Table(sp.target, sp.table, config.ActionSoft); ts != nil {
			soft = ts.Rel
		}
		ts := &TableSet{Target: sp.target, Table: sp.table, Action: sp.action, Nodes: sp.nodes}
		if s.nodes[sp.nodes[0].ID].deferred {
			ts.Deferred = true
			s.Tables = append(s.Tables, ts)
			continue
		}
		sql, all, reuse := setSQL(sp, rel, del, soft)
		if reuse != "" {
			ts.Rel, ts.Rows = reuse, s.nodes[sp.nodes[0].ID].rows
		} else {
			r, rows, err := s.materialize(ctx, sp.target, sql)
			if err != nil {
				return err
			}
			ts.Rel, ts.Rows = r, rows
			if sp.action == config.ActionSoft {
				var total int64
				if err := s.q[sp.target].QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM (%s) x", all)).Scan(&total); err != nil {
					return pg.Interpret(err)
				}
				ts.AlreadyTombstoned = total - rows
			}
		}
		s.Tables = append(s.Tables, ts)
	}
	return nil
}

func (s *Sets) materialize(ctx context.Context, target, sql string) (string, int64, error) {
	s.seqTmp++
	rel := s.relName("tomb_a%d", s.seqTmp)
	tag, err := s.q[target].Exec(ctx, s.createAs(rel)+sql)
	if err != nil {
		return "", 0, pg.Interpret(err)
	}
	s.agg = append(s.agg, target+"\x00"+rel)
	return rel, tag.RowsAffected(), nil
}

// Table returns the final set of (target, table, action), or nil.
func (s *Sets) Table(target string, t *schema.Table, action string) *TableSet {
	for _, ts := range s.Tables {
		if ts.Target == target && ts.Table == t && ts.Action == action {
			return ts
		}
	}
	return nil
}

// excludeReferencedOwned keeps owned rows that something outside the cascade still refers to:
// a row of any table with an FK to the owned table that the cascade does not delete (or, for a
// soft owner, tombstone). Their subtrees are rebuilt without them.
func (s *Sets) excludeReferencedOwned(ctx context.Context) error {
	root := s.Plan.Root
	changed := false
	for _, o := range root.Children {
		if o.Edge.Kind != policy.EdgeOwns || (o.Action != config.ActionDelete && o.Action != config.ActionSoft) {
			continue
		}
		q := s.q[o.Target]
		sch := o.Table
		var conds []string
		for _, fk := range s.fksInto(o) {
			child := s.tableOf(o.Target, fk.Child)
			if child == nil {
				continue
			}
			survive := ""
			for _, action := range []string{config.ActionDelete, config.ActionSoft} {
				if ts := s.Table(o.Target, child, action); ts != nil && (action == config.ActionDelete || o.Action == config.ActionSoft) {
					survive += fmt.Sprintf(" AND %s NOT IN (SELECT %s FROM %s)", keyRef(child, "x"), pg.QuoteIdents(KeyColumns(child)), ts.Rel)
				}
			}
			conds = append(conds, fmt.Sprintf("EXISTS (SELECT 1 FROM %s x WHERE (%s) = (%s)%s)", child.Name.Quoted(), qualified("x", fk.Columns), qualified("t", fk.RefColumns), survive))
		}
		if len(conds) == 0 {
			continue
		}
		rel := s.nodes[o.ID].rel
		tag, err := q.Exec(ctx, fmt.Sprintf("DELETE FROM %s o WHERE %s IN (SELECT %s FROM %s t WHERE %s)",
			rel, rowOf("o", KeyColumns(sch)), keySelectNoAlias(sch, "t"), sch.Name.Quoted(), strings.Join(conds, " OR ")))
		if err != nil {
			return fmt.Errorf("owned rows of %s: %w", o.Path(), pg.Interpret(err))
		}
		if n := tag.RowsAffected(); n > 0 {
			s.nodes[o.ID].rows -= n
			s.Kept = append(s.Kept, KeptOwned{Node: o, Rows: n})
			if err := s.rebuildSubtree(ctx, o); err != nil {
				return err
			}
			changed = true
		}
	}
	if changed {
		return s.aggregate(ctx)
	}
	return nil
}

// keySelectNoAlias is keySelect without "AS" renaming, for IN lists against a set.
func keySelectNoAlias(t *schema.Table, alias string) string {
	if len(t.PrimaryKey) == 0 {
		return alias + ".ctid"
	}
	return qualified(alias, t.PrimaryKey)
}

// fksInto lists every FK that refers to n's table, whether or not the plan follows it.
func (s *Sets) fksInto(n *policy.Node) []*schema.FK {
	return s.Plan.Schemas[n.Target].Children(n.Table.Name)
}

func (s *Sets) tableOf(target string, name pg.Table) *schema.Table {
	return s.Plan.Schemas[target].Tables[name]
}

// rebuildSubtree refills every descendant of n from its (changed) parent set.
func (s *Sets) rebuildSubtree(ctx context.Context, n *policy.Node) error {
	end := subtreeEnd(s.Plan, n)
	q := s.q[n.Target]
	for id := n.ID + 1; id <= end; id++ {
		m := s.Plan.Nodes[id]
		if s.nodes[id].deferred {
			continue
		}
		sql, args, err := s.selectSQL(ctx, m, 1)
		if err != nil {
			return err
		}
		rel := s.nodes[id].rel
		if _, err := q.Exec(ctx, "TRUNCATE "+rel); err != nil {
			return pg.Interpret(err)
		}
		tag, err := q.Exec(ctx, fmt.Sprintf("INSERT INTO %s %s", rel, sql), args...)
		if err != nil {
			return pg.Interpret(err)
		}
		s.nodes[id].rows = tag.RowsAffected()
	}
	heads := cycleHeads(s.Plan)
	for id := end; id > n.ID; id-- {
		for _, h := range heads {
			if h.ID == id {
				if err := s.fixpoint(ctx, h); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Drop removes every temp relation of the sets, so the same transaction can evaluate again.
func (s *Sets) Drop(ctx context.Context) error {
	for _, rel := range s.agg {
		target := rel[:strings.IndexByte(rel, '\x00')]
		if _, err := s.q[target].Exec(ctx, "DROP TABLE IF EXISTS "+rel[len(target)+1:]); err != nil {
			return pg.Interpret(err)
		}
	}
	s.agg = nil
	for i, n := range s.nodes {
		if n.rel == "" {
			continue
		}
		if _, err := s.q[s.Plan.Nodes[i].Target].Exec(ctx, "DROP TABLE IF EXISTS "+n.rel); err != nil {
			return pg.Interpret(err)
		}
		s.nodes[i].rel = ""
	}
	return nil
}

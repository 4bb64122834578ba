package preview

import (
	"context"
	"fmt"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
)

// Inline evaluation computes a read-only preview in one statement per target: every node's set
// is a MATERIALIZED common table expression instead of a temp table, and the counts, samples,
// blockers and key hashes come back as rows of that same statement. It skips the temp tables'
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
	for _, target := range plan.Targets {
		if err := s.inlineTarget(ctx, target, specs, tables, f); err != nil {
			return nil, err
		}
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

func (s *Sets) inlineTarget(ctx context.Context, target string, specs []tableSpec, tables []tableFact, f *facts) error {
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
	for _, n := range plan.Nodes[1:] {
		if n.Target != target {
			continue
		}
		sql, a, err := s.selectSQL(ctx, n, len(args)+1)
		if err != nil {
			return err
		}
		args = append(args, a...)
		ctes = append(ctes, fmt.Sprintf("%s AS MATERIALIZED (%s)", s.nodes[n.ID].rel, sql))
	}
	for _, n := range plan.Nodes {
		if n.Target != target {
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
	sql := "WITH " + strings.Join(ctes, ",\n") + "\n" + strings.Join(rows, "\nUNION ALL\n")
	// The statement is large and its cost estimate high, so PostgreSQL would JIT-compile it:
	// seconds of compilation for milliseconds of work. Turn JIT off for this transaction.
	if _, err := s.q[target].Exec(ctx, "SELECT set_config('jit', 'off', true)"); err != nil {
		return fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	res, err := s.q[target].Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	defer res.Close()
	for res.Next() {
		var kind string
		var id int
		var count, extra int64
		var hash, sample *string
		if err := res.Scan(&kind, &id, &count, &extra, &hash, &sample); err != nil {
			return err
		}
		switch kind {
		case "n":
			f.nodeRows[id] = count
			if count > 0 && sample != nil {
				rows, err := parseSample(plan.Nodes[id].Table, []byte(*sample))
				if err != nil {
					return err
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
					return err
				}
			}
			f.blockers = append(f.blockers, Blocker{Target: n.Target, Table: n.Table.Name.String(), Path: n.Path(), Reason: n.BlockReason, Rows: count, Sample: smp})
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	if target == plan.Root.Target && f.nodeRows[0] == 0 {
		return ErrRootNotFound
	}
	return nil
}

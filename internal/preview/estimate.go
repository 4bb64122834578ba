package preview

import (
	"context"
	"math"
	"time"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
)

// Estimate returns the tree with planner estimates instead of exact counts, for a fast first
// paint: each node's rows are its parent's times the child table's rows per distinct FK value
// (reltuples / n_distinct from pg_stats). It reads only statistics, never the cascade itself.
func (e *Engine) Estimate(ctx context.Context, plan *policy.Plan) (*Preview, error) {
	start := time.Now()
	distinct := map[string]map[string]float64{} // target → "schema.table.column" → n_distinct
	for _, t := range plan.Targets {
		db, err := e.targets.DB(ctx, t)
		if err != nil {
			return nil, &TargetError{Target: t, Err: err}
		}
		rows, err := db.Pool.Query(ctx, `SELECT schemaname || '.' || tablename || '.' || attname, n_distinct::float8 FROM pg_stats WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
		if err != nil {
			return nil, &TargetError{Target: t, Err: pg.Interpret(err)}
		}
		m := map[string]float64{}
		for rows.Next() {
			var k string
			var v float64
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			m[k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, pg.Interpret(err)
		}
		distinct[t] = m
	}
	est := make([]float64, len(plan.Nodes))
	nodes := make([]*Node, len(plan.Nodes))
	p := &Preview{Kind: plan.Kind.Name, Target: plan.Root.Target, Action: plan.Root.Action, PolicyHash: plan.PolicyHash, Fingerprints: plan.Fingerprints, At: time.Now().UTC(), Blockers: []Blocker{}, Warnings: []Warning{}}
	for _, n := range plan.Nodes {
		if n.Parent == nil {
			est[n.ID] = 1
		} else {
			rows := float64(max(n.Table.Estimate, 0))
			nd := distinct[n.Target][n.Table.Name.String()+"."+n.Edge.ToColumns[0]]
			if nd < 0 {
				nd = -nd * rows
			}
			perValue := 1.0
			if nd > 0 {
				perValue = rows / nd
			}
			est[n.ID] = math.Min(est[n.Parent.ID]*perValue, rows)
		}
		out := treeNode(n, int64(math.Round(est[n.ID])), true)
		nodes[n.ID] = out
		if n.Parent != nil {
			nodes[n.Parent.ID].Children = append(nodes[n.Parent.ID].Children, out)
		}
		addTotals(&p.Totals, n.Action, out.Rows)
	}
	p.Tree = nodes[0]
	p.Took = time.Since(start)
	return p, nil
}

package preview

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
)

// Deferred leaf deletes (Options.DeferLeafDeletes). Most of a large cascade's rows are in its
// leaves: comments, objects, deliveries. Building their sets only to delete through them, and
// then unioning the sets of a table reached by several paths, costs as much as the deletes.
// A deferrable leaf is instead deleted straight from its parents' sets, one statement per
// node: a row an earlier node's statement deleted is gone for the later ones, so the
// statements' counts and key hash sums add up to the table's DISTINCT set, with no union.

// deferrable lists the delete sets of a plan that can be deferred: a table deleted through
// leaf nodes only, each reached from a parent of the same target through a foreign key
// declared on the table itself and led to by no back edge; with no other action on the table,
// a primary key, and no foreign key into it from any table the plan deletes (which keeps it
// out of every cycle of deletes and lets each of its statements run on its own). Nothing reads
// such a leaf's set: the fixpoint of a cycle and the rebuild of an owned row's subtree pass
// deferred nodes by, and the leaf's delete reads its parents' final sets. A table with a
// foreign key to an owned table is not deferred: the check of which owned rows stay reads its
// delete set.
func deferrable(p *policy.Plan) []tableSpec {
	heads := map[*policy.Node]bool{} // nodes a back edge leads to: the fixpoint adds to their sets
	for _, h := range cycleHeads(p) {
		heads[h] = true
	}
	owned := map[string]bool{} // target + table of owned rows
	for _, c := range p.Root.Children {
		if c.Edge.Kind == policy.EdgeOwns && (c.Action == config.ActionDelete || c.Action == config.ActionSoft) {
			owned[c.Target+"\x00"+c.Table.Name.String()] = true
		}
	}
	specs := tableSpecs(p)
	deleted := map[string]map[string]bool{} // target → tables with a delete set
	for _, sp := range specs {
		if sp.action == config.ActionDelete {
			if deleted[sp.target] == nil {
				deleted[sp.target] = map[string]bool{}
			}
			deleted[sp.target][sp.table.Name.String()] = true
		}
	}
	var out []tableSpec
	for i, sp := range specs {
		if sp.action != config.ActionDelete || len(sp.table.PrimaryKey) == 0 {
			continue
		}
		ok := true
		for j, o := range specs {
			if j != i && o.target == sp.target && o.table == sp.table {
				ok = false
			}
		}
		for _, n := range sp.nodes {
			e := n.Edge
			if heads[n] || n.Parent == nil || n.Parent.Target != n.Target || len(n.Children) > 0 || len(n.Back) > 0 ||
				e == nil || e.Kind != policy.EdgeFK || e.FK == nil || e.FK.Child != sp.table.Name ||
				e.FK.ChildPartition != (pg.Table{}) || e.FK.ParentPartition != (pg.Table{}) {
				ok = false
			}
		}
		sch := p.Schemas[sp.target]
		for _, fk := range sch.Children(sp.table.Name) {
			if deleted[sp.target][fk.Child.String()] {
				ok = false
			}
		}
		for _, fk := range sch.Parents(sp.table.Name) {
			if owned[sp.target+"\x00"+fk.Parent.String()] {
				ok = false
			}
		}
		if ok {
			out = append(out, sp)
		}
	}
	return out
}

// DeferredDeleteSQL returns the statements that delete a deferred set's rows, one per node, in
// order. Each returns one row: the rows it deleted and the two key hash sums over them, as
// text. Run them in the sets' transaction, in order, when the table's turn to be deleted comes,
// and give their results to RecordDeferred.
func (s *Sets) DeferredDeleteSQL(ts *TableSet) []string {
	t := ts.Table
	out := make([]string, len(ts.Nodes))
	for i, n := range ts.Nodes {
		rel, cond := s.reachParts(n.Edge, n.Parent)
		using := ""
		if rel != "" {
			using = " USING " + rel
		}
		out[i] = fmt.Sprintf("WITH d AS (DELETE FROM %s c%s WHERE %s RETURNING %s) SELECT count(*), coalesce(sum(%s), 0)::text, coalesce(sum(%s), 0)::text FROM d",
			t.Name.Quoted(), using, cond, keySelect(t, "c"), keyHashExpr(t, "d", keySeed1), keyHashExpr(t, "d", keySeed2))
	}
	return out
}

// DeferredSelectSQL returns a query of the keys of a deferred set: the distinct rows its nodes
// reach from their parents' sets. A caller that stores them (the batched executor's work
// tables) gives the relation to Collected.
func (s *Sets) DeferredSelectSQL(ts *TableSet) string {
	parts := make([]string, len(ts.Nodes))
	for i, n := range ts.Nodes {
		parts[i] = s.reachSQL(n.Edge, n.Parent, ts.Table)
	}
	return strings.Join(parts, " UNION ")
}

// Collected records that rel (which may have more columns) holds the keys of a deferred set,
// rows of them: the set's relation from now on.
func (ts *TableSet) Collected(rel string, rows int64) error {
	if !ts.Pending() {
		return fmt.Errorf("%s: not a deferred set still to collect", ts.Table.Name)
	}
	ts.Rel, ts.Rows, ts.applied, ts.keyHash = rel, rows, true, ""
	return nil
}

// DeferredPart is what one statement of DeferredDeleteSQL returned.
type DeferredPart struct {
	Rows       int64
	Sum1, Sum2 string
}

// RecordDeferred records what a deferred set's statements deleted: its rows and key hash.
func (ts *TableSet) RecordDeferred(parts []DeferredPart) error {
	if !ts.Deferred || len(parts) != len(ts.Nodes) {
		return fmt.Errorf("%s: %d results for a set of %d deferred statements", ts.Table.Name, len(parts), len(ts.Nodes))
	}
	var rows int64
	sum1, sum2 := new(big.Int), new(big.Int)
	for _, p := range parts {
		a, ok1 := new(big.Int).SetString(p.Sum1, 10)
		b, ok2 := new(big.Int).SetString(p.Sum2, 10)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s: key hash sums %q, %q are not integers", ts.Table.Name, p.Sum1, p.Sum2)
		}
		rows += p.Rows
		sum1.Add(sum1, a)
		sum2.Add(sum2, b)
	}
	ts.Rows, ts.applied = rows, true
	ts.keyHash = emptyKeyHash
	if rows > 0 {
		// The same text keyHashOf hashes in SQL: the two sums in decimal, comma-separated.
		h := sha256.Sum256([]byte(sum1.String() + "," + sum2.String()))
		ts.keyHash = hex.EncodeToString(h[:])
	}
	return nil
}

// Pending reports whether a deferred set has not been recorded yet.
func (ts *TableSet) Pending() bool { return ts.Deferred && !ts.applied }

// tableHash returns the key hash of a set, computed once.
func (s *Sets) tableHash(ctx context.Context, ts *TableSet) (string, error) {
	if ts.keyHash != "" {
		return ts.keyHash, nil
	}
	if ts.Pending() {
		return "", fmt.Errorf("%s: the deferred set was not deleted yet", ts.Table.Name)
	}
	h := emptyKeyHash
	if ts.Rows > 0 {
		if err := s.q[ts.Target].QueryRow(ctx, "SELECT "+keyHashSQL(ts.Table, ts.Rel)).Scan(&h); err != nil {
			return "", pg.Interpret(err)
		}
	}
	ts.keyHash = h
	return h, nil
}

// Lines returns the summary lines (rows and key hash) of every set but the pending deferred
// ones, as Summarize would: only sets with rows, or with rows already tombstoned.
func (s *Sets) Lines(ctx context.Context) ([]SummaryLine, error) {
	var out []SummaryLine
	for _, ts := range s.Tables {
		if ts.Pending() || (ts.Rows == 0 && ts.AlreadyTombstoned == 0) {
			continue
		}
		h, err := s.tableHash(ctx, ts)
		if err != nil {
			return nil, err
		}
		out = append(out, SummaryLine{Target: ts.Target, Table: ts.Table.Name.String(), Action: ts.Action, Rows: ts.Rows, AlreadyTombstoned: ts.AlreadyTombstoned, KeyHash: h})
	}
	return out, nil
}

// DigestOf is the digest of the preview of plan for the root with rootKey whose summary is
// lines (see Digest).
func DigestOf(plan *policy.Plan, rootKey []string, lines []SummaryLine) string {
	return Digest(&Preview{
		Kind: plan.Kind.Name, Target: plan.Root.Target, PolicyHash: plan.PolicyHash, Fingerprints: plan.Fingerprints,
		Root: Root{Table: plan.Root.Table.Name.String(), Key: strings.Join(rootKey, ",")}, Summary: lines,
	})
}

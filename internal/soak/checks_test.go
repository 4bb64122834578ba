//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// allRequests reads every request, with its frozen preview.
func allRequests(t *testing.T, console *pg.DB) []*approval.Request {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	require.NoError(t, console.Bun.NewRaw("SELECT id FROM requests ORDER BY id").Scan(ctx, &ids))
	out := make([]*approval.Request, 0, len(ids))
	for _, id := range ids {
		r, err := approval.Get(ctx, console.Bun, id)
		require.NoError(t, err)
		out = append(out, r)
	}
	return out
}

// checkExecutedOnce: at most one execution_started and one executed event per request, and at
// most one ledger row per request in each target.
func checkExecutedOnce(t *testing.T, console *pg.DB, targets map[string]*pg.DB, fail func(string, ...any)) {
	t.Helper()
	ctx := context.Background()
	rows, err := console.Pool.Query(ctx, `SELECT request_id, action, count(*) FROM audit_events
		WHERE action IN ('execution_started', 'executed') GROUP BY 1, 2 HAVING count(*) > 1`)
	require.NoError(t, err)
	for rows.Next() {
		var id, n int64
		var action string
		require.NoError(t, rows.Scan(&id, &action, &n))
		fail("request %d has %d %s events", id, n, action)
	}
	require.NoError(t, rows.Err())
	for name, db := range targets {
		rows, err := db.Pool.Query(ctx, "SELECT request_id, count(*) FROM tombstone.ledger GROUP BY 1 HAVING count(*) > 1")
		require.NoError(t, err)
		for rows.Next() {
			var id, n int64
			require.NoError(t, rows.Scan(&id, &n))
			fail("request %d has %d ledger rows in %s", id, n, name)
		}
		require.NoError(t, rows.Err())
	}
}

// checkDone: every done request changed exactly the rows its preview showed (the counts in
// its report and its ledger rows equal the frozen preview's, per table and action); the rows
// it deleted are gone; a soft-deleted root is tombstoned. No request that is not done or
// partial has a ledger row.
func checkDone(t *testing.T, console *pg.DB, targets map[string]*pg.DB, reqs []*approval.Request, fail func(string, ...any)) {
	t.Helper()
	ctx := context.Background()
	ledger := map[string]map[int64]exec.Counts{} // target → request → counts
	for name, db := range targets {
		ledger[name] = map[int64]exec.Counts{}
		rows, err := db.Pool.Query(ctx, "SELECT request_id, counts FROM tombstone.ledger")
		require.NoError(t, err)
		for rows.Next() {
			var id int64
			var raw []byte
			require.NoError(t, rows.Scan(&id, &raw))
			var c exec.Counts
			require.NoError(t, json.Unmarshal(raw, &c))
			ledger[name][id] = c
		}
		require.NoError(t, rows.Err())
	}
	var deleted []int64
	var softRoots []string
	for _, r := range reqs {
		if r.State != approval.Done {
			if r.State != approval.Partial {
				for name := range targets {
					if _, ok := ledger[name][r.ID]; ok {
						fail("request %d is %s but has a ledger row in %s", r.ID, r.State, name)
					}
				}
			}
			continue
		}
		want := map[string]int64{}
		for _, l := range r.Preview.Summary {
			if l.Rows > 0 && (l.Action == config.ActionDelete || l.Action == config.ActionSoft || l.Action == config.ActionDetach) {
				want[l.Target+" "+l.Table+" "+l.Action] = l.Rows
			}
		}
		var rep exec.Report
		require.NoError(t, json.Unmarshal(r.Result, &rep))
		got := map[string]int64{}
		for _, tc := range rep.Tables {
			if tc.Rows > 0 {
				got[tc.Target+" "+tc.Table+" "+tc.Action] = tc.Rows
			}
		}
		if d := diff(want, got); d != "" {
			fail("request %d (%s %s) changed other rows than it previewed: %s", r.ID, r.Kind, r.RootKey, d)
		}
		fromLedger := map[string]int64{}
		for _, pt := range r.Preview.Targets {
			c, ok := ledger[pt.Target][r.ID]
			if !ok {
				fail("done request %d has no ledger row in %s", r.ID, pt.Target)
				continue
			}
			for _, tc := range c.Tables() {
				if tc.Rows > 0 {
					fromLedger[pt.Target+" "+tc.Table+" "+tc.Action] = tc.Rows
				}
			}
		}
		if d := diff(want, fromLedger); d != "" {
			fail("request %d's ledger differs from its preview: %s", r.ID, d)
		}
		if r.Kind == "repo" {
			softRoots = append(softRoots, r.RootKey)
		} else {
			deleted = append(deleted, r.ID)
		}
	}
	// Every row a done request archived as deleted is gone from its table.
	var archived int64
	for _, db := range targets {
		var n int64
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM tombstone.archive WHERE action = 'delete' AND request_id = ANY($1)", deleted).Scan(&n))
		archived += n
	}
	if len(deleted) > 0 && archived == 0 {
		fail("%d done hard deletions archived nothing: the check that their rows are gone cannot see them", len(deleted))
	}
	for name, db := range targets {
		s, err := schema.Load(ctx, db.Bun)
		require.NoError(t, err)
		for _, tbl := range s.Tables {
			if len(tbl.PrimaryKey) == 0 {
				continue
			}
			var match []string
			for _, c := range tbl.PrimaryKey {
				match = append(match, fmt.Sprintf("x.%s::text = a.row ->> %s", pg.QuoteIdent(c), pg.QuoteLiteral(c)))
			}
			var n int64
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM tombstone.archive a JOIN "+tbl.Name.Quoted()+" x ON "+
				strings.Join(match, " AND ")+" WHERE a.action = 'delete' AND a.table_schema = $1 AND a.table_name = $2 AND a.request_id = ANY($3)",
				tbl.Name.Schema, tbl.Name.Name, deleted).Scan(&n))
			if n > 0 {
				fail("%d rows of %s.%s deleted by done requests are still there", n, name, tbl.Name)
			}
		}
	}
	var alive int64
	require.NoError(t, targets["app"].Pool.QueryRow(ctx, "SELECT count(*) FROM repos WHERE id::text = ANY($1) AND deleted_at IS NULL", softRoots).Scan(&alive))
	if alive > 0 {
		fail("%d repos soft-deleted by done requests have no tombstone", alive)
	}
}

func diff(want, got map[string]int64) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%s: previewed %d, changed %d", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: previewed 0, changed %d", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// orphans lists every foreign key of every target with child rows whose parent is missing,
// and every `also` link of the policy whose value names no root.
func orphans(t *testing.T, cfg *config.Config, targets map[string]*pg.DB) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	schemas := map[string]*schema.Schema{}
	for name, db := range targets {
		s, err := schema.Load(ctx, db.Bun)
		require.NoError(t, err)
		schemas[name] = s
		for _, fk := range s.FKs {
			var notNull, match []string
			for i, col := range fk.Columns {
				notNull = append(notNull, "c."+pg.QuoteIdent(col)+" IS NOT NULL")
				match = append(match, "p."+pg.QuoteIdent(fk.RefColumns[i])+" = c."+pg.QuoteIdent(col))
			}
			var n int64
			require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*) FROM "+fk.Child.Quoted()+" AS c WHERE "+
				strings.Join(notNull, " AND ")+" AND NOT EXISTS (SELECT 1 FROM "+fk.Parent.Quoted()+" AS p WHERE "+
				strings.Join(match, " AND ")+")").Scan(&n))
			if n > 0 {
				out = append(out, fmt.Sprintf("%s: %d rows of %s.%s", fk.Name, n, name, fk.Child))
			}
		}
	}
	for _, kind := range cfg.KindNames() {
		k := cfg.Kinds[kind]
		root, err := schemas[k.Target].Table(k.Table)
		require.NoError(t, err)
		for _, a := range k.Also {
			col := a.Matches
			if col == "" {
				require.Len(t, root.PrimaryKey, 1, "also links match a one-column key")
				col = root.PrimaryKey[0]
			}
			linked, err := schemas[a.Target].Table(a.Table)
			require.NoError(t, err)
			var values []string
			require.NoError(t, targets[a.Target].Bun.NewRaw("SELECT DISTINCT "+pg.QuoteIdent(a.Column)+"::text FROM "+linked.Name.Quoted()+
				" WHERE "+pg.QuoteIdent(a.Column)+" IS NOT NULL").Scan(ctx, &values))
			var missing []string
			require.NoError(t, targets[k.Target].Bun.NewRaw("SELECT v FROM unnest(?::text[]) AS v WHERE NOT EXISTS (SELECT 1 FROM "+
				root.Name.Quoted()+" AS r WHERE r."+pg.QuoteIdent(col)+"::text = v) ORDER BY v", pgdialect.Array(values)).Scan(ctx, &missing))
			if len(missing) > 0 {
				out = append(out, fmt.Sprintf("also %s.%s.%s: %d values name no %s (%s)", a.Target, a.Table, a.Column, len(missing), root.Name, strings.Join(missing, ", ")))
			}
		}
	}
	sort.Strings(out)
	return out
}

// checkAudit: the chain verifies, and each request's events are exactly its transitions.
func checkAudit(t *testing.T, console *pg.DB, reqs []*approval.Request, fail func(string, ...any)) {
	t.Helper()
	ctx := context.Background()
	res, err := audit.Verify(ctx, console.Bun, 1)
	require.NoError(t, err)
	if !res.OK {
		fail("the audit chain does not verify: %s", res)
	}
	counts := map[int64]map[audit.Action]int{}
	rows, err := console.Pool.Query(ctx, "SELECT request_id, action, count(*) FROM audit_events WHERE request_id IS NOT NULL GROUP BY 1, 2")
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var action string
		var n int
		require.NoError(t, rows.Scan(&id, &action, &n))
		if counts[id] == nil {
			counts[id] = map[audit.Action]int{}
		}
		counts[id][audit.Action(action)] = n
	}
	require.NoError(t, rows.Err())
	for _, r := range reqs {
		c := counts[r.ID]
		want := map[audit.Action]int{audit.ActionRequested: 1, audit.ActionApproved: len(r.Approvals)}
		switch r.State {
		case approval.Pending:
		case approval.Rejected:
			want[audit.ActionRejected] = 1
		case approval.Cancelled:
			want[audit.ActionCancelled] = 1
		case approval.Done:
			want[audit.ActionExecutionStarted], want[audit.ActionExecuted] = 1, 1
		case approval.Failed:
			want[audit.ActionExecutionStarted], want[audit.ActionExecutionFailed] = 1, 1
		case approval.Drifted:
			want[audit.ActionExecutionStarted], want[audit.ActionDrifted] = 1, 1
		default:
			fail("request %d ended the soak %s", r.ID, r.State)
			continue
		}
		for a, n := range c {
			if want[a] != n {
				fail("request %d (%s) has %d %s events, want %d", r.ID, r.State, n, a, want[a])
			}
		}
		for a, n := range want {
			if c[a] != n {
				fail("request %d (%s) has %d %s events, want %d", r.ID, r.State, c[a], a, n)
			}
		}
	}
}

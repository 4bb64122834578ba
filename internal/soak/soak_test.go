//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/cluster"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

const (
	operators = 4
	executors = 3
	// checkApp names the soak's own checking connections, which the connection count
	// leaves out.
	checkApp = "tombstone soak check"
	loadApp  = "tombstone soak"
)

// stats counts what the load did.
type stats struct {
	previews, previewErrs, blocked, openAlready      atomic.Int64
	requested, approved, rejected, cancelled, errors atomic.Int64
	inserts, insertErrs, runs, runErrs               atomic.Int64
}

func duration(t *testing.T) time.Duration {
	s := os.Getenv("SOAK_DURATION")
	if s == "" {
		return 5 * time.Minute
	}
	d, err := time.ParseDuration(s)
	require.NoError(t, err, "SOAK_DURATION must be a Go duration such as 60s or 5m")
	require.Positive(t, d, "SOAK_DURATION must be positive")
	return d
}

func TestSoak(t *testing.T) {
	dur := duration(t)
	ctx := context.Background()
	c, err := cluster.New(cluster.Options{MaxPreparedTransactions: 20})
	require.NoError(t, err)
	defer c.Stop()
	res, err := demo.Setup(ctx, demo.Options{AdminURL: c.URL, Scale: 0.3, Prefix: "soak"})
	require.NoError(t, err)
	consoleURL, err := cluster.CreateDatabase(ctx, c.URL, "soak_console")
	require.NoError(t, err)
	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = consoleURL
	cfg, err := config.Parse("tombstone.yaml", examples.Policy(), func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
	require.NoError(t, err)

	// The checking connections, open before the baseline.
	check := map[string]*pg.DB{}
	for name, url := range res.Databases {
		check[name], err = pg.Open(ctx, url, pg.Options{MaxConns: 2, ApplicationName: checkApp})
		require.NoError(t, err)
		defer check[name].Close()
	}
	console, err := pg.Open(ctx, consoleURL, pg.Options{MaxConns: 2, ApplicationName: checkApp})
	require.NoError(t, err)
	defer console.Close()
	_, err = pg.Migrate(ctx, console.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)
	users := map[string]approval.Actor{}
	for _, u := range []struct{ name, role string }{{"alice", "requester"}, {"erin", "requester"}, {"bob", "approver"}, {"dana", "approver"}} {
		var id int64
		require.NoError(t, console.Pool.QueryRow(ctx, "INSERT INTO users (name, role, email) VALUES ($1, $2, '') RETURNING id", u.name, u.role).Scan(&id))
		users[u.name] = approval.Actor{ID: id, Name: u.name}
	}
	roots := rootsOf(t, check["app"])
	orphansBefore := orphans(t, cfg, check)
	require.Empty(t, orphansBefore, "the demo data has no orphans to begin with")

	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	baseConns := connections(t, console)
	t.Logf("baseline: %d goroutines, %d load connections; roots: %d tenants, %d sites, %d repos",
		baseGoroutines, baseConns, len(roots["tenant"]), len(roots["site"]), len(roots["repo"]))

	st := &stats{}
	started := time.Now()
	runLoad(t, cfg, consoleURL, res.Databases, users, roots, dur, st)
	took := time.Since(started)

	var violations []string
	fail := func(format string, args ...any) { violations = append(violations, fmt.Sprintf(format, args...)) }

	// Goroutines and connections go back to their baseline once the load is closed.
	if !eventually(10*time.Second, func() bool { return runtime.NumGoroutine() <= baseGoroutines }) {
		fail("goroutines did not return to the baseline: %d now, %d before", runtime.NumGoroutine(), baseGoroutines)
	}
	if !eventually(10*time.Second, func() bool { return connections(t, console) <= baseConns }) {
		fail("connections did not return to the baseline: %d now, %d before", connections(t, console), baseConns)
	}

	reqs := allRequests(t, console)
	checkExecutedOnce(t, console, check, fail)
	checkDone(t, console, check, reqs, fail)
	for _, o := range orphans(t, cfg, check) {
		fail("orphan rows: %s", o)
	}
	checkAudit(t, console, reqs, fail)

	byState := map[approval.State]int{}
	var changed int64
	for _, r := range reqs {
		byState[r.State]++
		if r.State == approval.Done {
			var rep exec.Report
			if json.Unmarshal(r.Result, &rep) == nil {
				changed += rep.Rows
			}
		}
	}
	states := []string{}
	for s, n := range byState {
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(states)
	mins := took.Minutes()
	summary := fmt.Sprintf(`soak: %s of load (%s in all)
  requests: %d made (%.1f/min), %s
  decisions: %d approved, %d rejected, %d cancelled; %d previews (%d failed, %d blocked), %d roots already requested, %d other errors
  executions: %d done (%.1f/min), %d rows changed (%.1f rows/s), %d runs (%d errors)
  writers: %d rows inserted (%d refused)
  violations: %d`,
		dur, took.Round(time.Second), len(reqs), float64(len(reqs))/mins, strings.Join(states, ", "),
		st.approved.Load(), st.rejected.Load(), st.cancelled.Load(), st.previews.Load(), st.previewErrs.Load(), st.blocked.Load(), st.openAlready.Load(), st.errors.Load(),
		byState[approval.Done], float64(byState[approval.Done])/mins, changed, float64(changed)/took.Seconds(), st.runs.Load(), st.runErrs.Load(),
		st.inserts.Load(), st.insertErrs.Load(), len(violations))
	fmt.Println(summary)
	for _, v := range violations {
		fmt.Println("  VIOLATION: " + v)
	}
	require.Positive(t, byState[approval.Done], "the soak executed nothing")
	require.Empty(t, violations)
}

func eventually(within time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connections counts the client sessions on the cluster other than the soak's checking ones.
func connections(t *testing.T, db *pg.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' AND application_name <> $1 AND pid <> pg_backend_pid()`, checkApp).Scan(&n))
	return n
}

// rootsOf lists the keys operators pick from, per kind.
func rootsOf(t *testing.T, app *pg.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for kind, sql := range map[string]string{
		"tenant": "SELECT id::text FROM tenants ORDER BY id",
		"site":   "SELECT id::text FROM hosted_sites ORDER BY id",
		"repo":   "SELECT id::text FROM repos ORDER BY id",
	} {
		rows, err := app.Pool.Query(context.Background(), sql)
		require.NoError(t, err)
		for rows.Next() {
			var k string
			require.NoError(t, rows.Scan(&k))
			out[kind] = append(out[kind], k)
		}
		require.NoError(t, rows.Err())
	}
	return out
}

// runLoad runs operators and writers for dur while executors and a reconciler work, then
// lets the executors finish what was approved, and closes everything it opened.
func runLoad(t *testing.T, cfg *config.Config, consoleURL string, targets map[string]string, users map[string]approval.Actor, roots map[string][]string, dur time.Duration, st *stats) {
	ctx := context.Background()
	console, err := pg.Open(ctx, consoleURL, pg.Options{MaxConns: 16, ApplicationName: loadApp})
	require.NoError(t, err)
	defer console.Close()
	pools := pg.NewPools(targets, pg.Options{MaxConns: 16, ApplicationName: loadApp})
	defer pools.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := preview.NewEngine(cfg, pools, schema.NewCache(0))
	svc := approval.New(cfg)
	newExecutor := func() *exec.Executor {
		return &exec.Executor{Config: cfg, DB: console, Targets: pools, Engine: engine, Approval: svc,
			Logger: quiet, Backoff: 50 * time.Millisecond, ProgressEvery: 200 * time.Millisecond}
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, dur)
	defer stopLoad()
	execCtx, stopExec := context.WithCancel(ctx)
	defer stopExec()
	var load, work sync.WaitGroup
	kinds := []string{"tenant", "site", "site", "repo", "repo"}
	for i := range operators {
		load.Go(func() { operate(loadCtx, i, engine, svc, console, users, roots, kinds, st) })
	}
	for name, sql := range writerSQL {
		load.Go(func() { write(loadCtx, pools, name, sql, st) })
	}
	for range executors {
		e := newExecutor()
		work.Go(func() { executeApproved(execCtx, e, console, st) })
	}
	rec := newExecutor()
	work.Go(func() { _ = rec.RunReconciler(execCtx, time.Second) })

	load.Wait()
	// Drain: every approved request runs, and nothing is left running.
	if !eventually(2*time.Minute, func() bool {
		var n int
		err := console.Pool.QueryRow(ctx, "SELECT count(*) FROM requests WHERE state IN ('approved', 'running')").Scan(&n)
		return err == nil && n == 0
	}) {
		t.Log("requests still approved or running two minutes after the load stopped")
	}
	stopExec()
	work.Wait()
	if _, err := rec.Reconcile(ctx); err != nil {
		t.Logf("final reconcile: %v", err)
	}
}

// operate is one operator: preview a random root, request it, then approve, reject or cancel.
func operate(ctx context.Context, i int, engine *preview.Engine, svc *approval.Service, console *pg.DB, users map[string]approval.Actor, roots map[string][]string, kinds []string, st *stats) {
	rnd := rand.New(rand.NewPCG(uint64(i), 42))
	requester := []approval.Actor{users["alice"], users["erin"]}[i%2]
	approvers := []approval.Actor{users["bob"], users["dana"]}
	for ctx.Err() == nil {
		kind := kinds[rnd.IntN(len(kinds))]
		key := roots[kind][rnd.IntN(len(roots[kind]))]
		plan, err := engine.Plan(ctx, kind)
		if err != nil {
			st.previewErrs.Add(1)
			continue
		}
		p, err := engine.Run(ctx, plan, []string{key})
		st.previews.Add(1)
		switch {
		case err != nil:
			st.previewErrs.Add(1) // the root is gone, or the load is ending
			continue
		case p.Blocked():
			st.blocked.Add(1)
			continue
		}
		r, err := svc.Create(ctx, console.Bun, approval.CreateInput{Actor: requester, Preview: p, Reason: "soak: the customer asked"})
		var open *approval.OpenRequestError
		switch {
		case errors.As(err, &open):
			st.openAlready.Add(1)
			continue
		case err != nil:
			st.errors.Add(1)
			continue
		}
		st.requested.Add(1)
		time.Sleep(time.Duration(rnd.IntN(30)) * time.Millisecond)
		switch x := rnd.Float64(); {
		case x < 0.7:
			_, err = svc.Approve(ctx, console.Bun, approval.ApproveInput{Actor: approvers[rnd.IntN(2)], RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
			count(err, &st.approved, st)
		case x < 0.85:
			_, err = svc.Reject(ctx, console.Bun, approvers[rnd.IntN(2)], r.ID, "soak: not this one, wrong root")
			count(err, &st.rejected, st)
		default:
			_, err = svc.Cancel(ctx, console.Bun, requester, r.ID)
			count(err, &st.cancelled, st)
		}
	}
}

func count(err error, ok *atomic.Int64, st *stats) {
	if err != nil {
		st.errors.Add(1)
		return
	}
	ok.Add(1)
}

// writerSQL inserts one child row under a random existing parent, per target: the writers
// race the executors for the same parents.
var writerSQL = map[string]string{
	"app": `INSERT INTO issue_comments (issue_id, tenant_id, body)
		SELECT i.id, r.tenant_id, 'soak' FROM issues i JOIN repos r ON r.id = i.repo_id
		WHERE i.id >= (SELECT floor(random() * max(id)) FROM issues) ORDER BY i.id LIMIT 1`,
	"pos": `INSERT INTO pos_sessions (configuration_id, tenant_id, cashier)
		SELECT id, tenant_id, 'soak' FROM pos_configurations
		WHERE id >= (SELECT floor(random() * max(id)) FROM pos_configurations) ORDER BY id LIMIT 1`,
	"alerts": `INSERT INTO alert_history (alert_id, tenant_id, to_state)
		SELECT id, tenant_id, 'firing' FROM alerts
		WHERE id >= (SELECT floor(random() * max(id)) FROM alerts) ORDER BY id LIMIT 1`,
}

func write(ctx context.Context, pools *pg.Pools, target, sql string, st *stats) {
	for ctx.Err() == nil {
		db, err := pools.DB(ctx, target)
		if err == nil {
			_, err = db.Pool.Exec(ctx, sql)
		}
		if err != nil {
			st.insertErrs.Add(1)
		} else {
			st.inserts.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// executeApproved runs approved requests until ctx ends. Several executors pick the same
// requests on purpose: exactly one may run each.
func executeApproved(ctx context.Context, e *exec.Executor, console *pg.DB, st *stats) {
	for ctx.Err() == nil {
		var ids []int64
		rows, err := console.Pool.Query(ctx, "SELECT id FROM requests WHERE state = 'approved' ORDER BY random() LIMIT 3")
		if err == nil {
			for rows.Next() {
				var id int64
				if rows.Scan(&id) == nil {
					ids = append(ids, id)
				}
			}
			rows.Close()
		}
		for _, id := range ids {
			st.runs.Add(1)
			if err := e.Run(ctx, id); err != nil {
				st.runErrs.Add(1)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

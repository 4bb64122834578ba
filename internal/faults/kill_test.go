//go:build faults

package faults

import (
	"bufio"
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/cluster"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// buildConsole builds cmd/console with the faults tag (so TOMBSTONE_FAULT_AT works) into a
// temporary directory and returns the binary's path.
func buildConsole(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "console")
	cmd := osexec.Command("go", "build", "-tags", "faults", "-o", bin, "./cmd/console")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build the console: %s", out)
	return bin
}

// demoRig is the demo targets and a console database in one private cluster with prepared
// transactions (so a tenant runs in two-phase commit), the example policy, and the console
// binary built with fault points.
type demoRig struct {
	cluster *cluster.Cluster
	console *pg.DB
	targets map[string]*pg.DB
	engine  *preview.Engine
	svc     *approval.Service
	alice   approval.Actor
	bob     approval.Actor
	bin     string
	config  string
	env     []string
}

func newDemoRig(t *testing.T) *demoRig {
	t.Helper()
	ctx := context.Background()
	d := &demoRig{cluster: newCluster(t, 10), targets: map[string]*pg.DB{}}
	built := make(chan string, 1)
	go func() { built <- buildConsole(t) }()
	res, err := demo.Setup(ctx, demo.Options{AdminURL: d.cluster.URL, Scale: 0.1, Prefix: "faults"})
	require.NoError(t, err)
	consoleURL := durableDB(t, d.cluster, "console")
	d.console, err = pg.Open(ctx, consoleURL, pg.Options{MaxConns: 4, ApplicationName: "tombstone faults"})
	require.NoError(t, err)
	t.Cleanup(d.console.Close)
	_, err = pg.Migrate(ctx, d.console.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)

	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = consoleURL
	cfg, err := config.Parse("tombstone.yaml", examples.Policy(), func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
	require.NoError(t, err)
	pools := pg.NewPools(res.Databases, pg.Options{MaxConns: 4, ApplicationName: "tombstone faults"})
	t.Cleanup(pools.Close)
	for name := range res.Databases {
		d.targets[name], err = pools.DB(ctx, name)
		require.NoError(t, err)
	}
	d.engine = preview.NewEngine(cfg, pools, schema.NewCache(0))
	d.svc = approval.New(cfg)
	d.alice = addUser(t, d.console, "alice", "requester")
	d.bob = addUser(t, d.console, "bob", "approver")

	d.config = filepath.Join(t.TempDir(), "tombstone.yaml")
	require.NoError(t, os.WriteFile(d.config, examples.Policy(), 0o600))
	d.env = os.Environ()
	for k, v := range vars {
		d.env = append(d.env, k+"="+v)
	}
	d.bin = <-built
	return d
}

// approved previews the root, opens a request and approves it.
func (d *demoRig) approved(t *testing.T, kind, key string) *approval.Request {
	t.Helper()
	ctx := context.Background()
	plan, err := d.engine.Plan(ctx, kind)
	require.NoError(t, err)
	p, err := d.engine.Run(ctx, plan, []string{key})
	require.NoError(t, err)
	require.False(t, p.Blocked(), "%s %s: %v", kind, key, p.Blockers)
	req, err := d.svc.Create(ctx, d.console.Bun, approval.CreateInput{Actor: d.alice, Preview: p, Reason: "fault suite: kill the worker"})
	require.NoError(t, err)
	req, err = d.svc.Approve(ctx, d.console.Bun, approval.ApproveInput{Actor: d.bob, RequestID: req.ID, Digest: req.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	return req
}

// worker is a `console worker` process.
type worker struct {
	cmd     *osexec.Cmd
	reached chan string
	mu      sync.Mutex
	log     []string
}

// startWorker runs `console worker` with one executor; faultAt, when set, stops it at that
// step of the first execution that reaches it.
func (d *demoRig) startWorker(t *testing.T, faultAt string) *worker {
	t.Helper()
	w := &worker{reached: make(chan string, 4)}
	w.cmd = osexec.Command(d.bin, "worker", "--config", d.config, "--workers", "1")
	w.cmd.Env = append(append([]string{}, d.env...), exec.FaultEnv+"="+faultAt)
	stderr, err := w.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, w.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.log = append(w.log, line)
			w.mu.Unlock()
			if strings.HasPrefix(line, "fault point ") {
				w.reached <- line
			}
		}
	}()
	t.Cleanup(func() { _ = w.cmd.Process.Kill(); _ = w.cmd.Wait() })
	return w
}

func (w *worker) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log[max(0, len(w.log)-15):], "\n")
}

// kill ends the worker with SIGKILL: no deferred function, no rollback, no goodbye.
func (w *worker) kill(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	_ = w.cmd.Wait()
}

// stop ends the worker as an operator would (SIGTERM) and waits for it.
func (w *worker) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	_ = w.cmd.Wait()
}

// workerGone waits until the cluster has no session left from a console process: the server
// notices a killed client's closed sockets, rolls back its transactions and drops its locks.
func (d *demoRig) workerGone(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := d.console.Pool.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tombstone console'").Scan(&n)
		return err == nil && n == 0
	}, 30*time.Second, 50*time.Millisecond, "the killed worker's sessions linger")
}

// rowCounts is every public table's row count in each target.
func (d *demoRig) rowCounts(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, db := range d.targets {
		rows, err := db.Pool.Query(context.Background(), `SELECT relname,
			(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), false, true, '')))[1]::text::bigint
			FROM pg_stat_user_tables WHERE schemaname = 'public'`)
		require.NoError(t, err)
		for rows.Next() {
			var tbl string
			var n int64
			require.NoError(t, rows.Scan(&tbl, &n))
			out[name+"."+tbl] = n
		}
		require.NoError(t, rows.Err())
	}
	return out
}

// Killing the worker at each step of an execution, then starting a fresh one, ends every
// request in its documented state (never running, never executed twice), with exactly one
// executed event per executed request.
func TestKillWorkerAtEachStep(t *testing.T) {
	ctx := context.Background()
	d := newDemoRig(t)
	var tenants []string
	require.NoError(t, d.targets["app"].Pool.QueryRow(ctx,
		"SELECT array_agg(id::text ORDER BY id) FROM (SELECT id FROM tenants WHERE deleted_at IS NULL ORDER BY id LIMIT 2) t").Scan(&tenants))
	require.Len(t, tenants, 2)
	var sites []string
	require.NoError(t, d.targets["app"].Pool.QueryRow(ctx, `SELECT array_agg(id::text ORDER BY id) FROM (
		SELECT id FROM hosted_sites WHERE tenant_id::text <> ALL ($1) ORDER BY id LIMIT 4) s`, tenants).Scan(&sites))
	require.Len(t, sites, 4)

	cases := []struct {
		step, kind, key string
		want            approval.State
	}{
		{exec.FaultClaimed, "site", sites[0], approval.Failed},
		{exec.FaultArchived, "site", sites[1], approval.Failed},
		{exec.FaultApplied, "site", sites[2], approval.Failed},
		{exec.FaultCommitted, "site", sites[3], approval.Done},
		{exec.FaultPrepared, "tenant", tenants[0], approval.Failed},
		{exec.FaultDecided, "tenant", tenants[1], approval.Done},
	}
	var executed []int64
	for _, c := range cases {
		t.Run(c.step, func(t *testing.T) {
			req := d.approved(t, c.kind, c.key)
			before := d.rowCounts(t)
			w := d.startWorker(t, c.step)
			select {
			case line := <-w.reached:
				t.Log(line)
			case <-time.After(60 * time.Second):
				t.Fatalf("the worker never reached %s:\n%s", c.step, w.tail())
			}
			w.kill(t)
			d.workerGone(t)
			require.Equal(t, approval.Running, d.request(t, req.ID).State)

			fresh := d.startWorker(t, "")
			deadline := time.Now().Add(60 * time.Second)
			got := d.request(t, req.ID)
			for got.State == approval.Running && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				got = d.request(t, req.ID)
			}
			// Give the fresh worker's sweeper and reconciler a pass after the request settled:
			// nothing may run it again.
			time.Sleep(2500 * time.Millisecond)
			fresh.stop(t)
			got = d.request(t, req.ID)
			t.Logf("killed at %s: request %s (%s)", c.step, got.State, got.Error)
			require.Equal(t, c.want, got.State, "%s\n%s", got.Error, fresh.tail())

			require.Equal(t, 1, events(t, d.console, req.ID, audit.ActionExecutionStarted))
			after := d.rowCounts(t)
			var prepared int
			require.NoError(t, d.console.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_xacts").Scan(&prepared))
			require.Zero(t, prepared, "no prepared transaction is left behind")
			targets := []string{"app"}
			if c.kind == "tenant" {
				targets = []string{"app", "pos", "alerts"}
			}
			for _, tg := range targets {
				n := ledgerRows(t, d.targets[tg], req.ID)
				if got.State == approval.Done {
					require.Equal(t, 1, n, "target %s", tg)
				} else {
					require.Zero(t, n, "target %s", tg)
				}
			}
			if got.State == approval.Done {
				executed = append(executed, req.ID)
				require.Equal(t, 1, events(t, d.console, req.ID, audit.ActionExecuted))
				require.NotEqual(t, before, after, "a done request changed the targets")
			} else {
				require.Zero(t, events(t, d.console, req.ID, audit.ActionExecuted))
				require.Equal(t, 1, events(t, d.console, req.ID, audit.ActionExecutionFailed))
				require.Equal(t, before, after, "a failed request changed nothing")
			}
		})
	}
	require.NotEmpty(t, executed)
	verified(t, d.console)
}

func (d *demoRig) request(t *testing.T, id int64) *approval.Request {
	t.Helper()
	r, err := approval.Get(context.Background(), d.console.Bun, id)
	require.NoError(t, err)
	return r
}

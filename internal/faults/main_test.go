//go:build faults

package faults

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/cluster"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// shopDDL is a small single-target schema: 5 tenants, each with 4 projects of 10 docs.
const shopDDL = `
CREATE TABLE tenants (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE projects (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, name text NOT NULL);
CREATE TABLE docs (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE, body text NOT NULL);
CREATE INDEX ON projects (tenant_id);
CREATE INDEX ON docs (project_id);
INSERT INTO tenants SELECT i, 'tenant ' || i FROM generate_series(1, 5) AS i;
INSERT INTO projects SELECT i, (i - 1) / 4 + 1, 'project ' || i FROM generate_series(1, 20) AS i;
INSERT INTO docs SELECT i, (i - 1) / 10 + 1, 'doc ' || i FROM generate_series(1, 200) AS i;
`

// shopPolicy deletes a tenant with everything under it, archived for a week.
const shopPolicy = "kinds:\n  tenant: {table: tenants, search: [name], archive: 7d}\n"

// rig is a console database, one target with shopDDL, an executor over them, a requester and
// an approver.
type rig struct {
	console    *pg.DB
	consoleURL string
	target     *pg.DB
	targetURL  string
	exec       *exec.Executor
	svc        *approval.Service
	alice, bob approval.Actor
}

// newRig builds a rig over existing databases: the console one is migrated here, the target
// one gets shopDDL. targetOpts is appended to the target's flow mapping (", lock_timeout: 1s").
func newRig(t *testing.T, consoleURL, targetURL, targetOpts string) *rig {
	t.Helper()
	ctx := context.Background()
	console, err := pg.Open(ctx, consoleURL, pg.Options{MaxConns: 8, ApplicationName: "tombstone faults"})
	require.NoError(t, err)
	t.Cleanup(console.Close)
	_, err = pg.Migrate(ctx, console.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)
	target, err := pg.Open(ctx, targetURL, pg.Options{MaxConns: 4, Unprepared: true, ApplicationName: "tombstone faults"})
	require.NoError(t, err)
	t.Cleanup(target.Close)
	_, err = target.Pool.Exec(ctx, shopDDL)
	require.NoError(t, err)

	cfg, err := config.Parse("faults.yaml", []byte(fmt.Sprintf("database: %q\ntargets:\n  app: {dsn: %q%s}\n%s",
		consoleURL, targetURL, targetOpts, shopPolicy)), nil)
	require.NoError(t, err)
	pools := pg.NewPools(map[string]string{"app": targetURL}, pg.Options{MaxConns: 6, ConnectTimeout: 2 * time.Second})
	t.Cleanup(pools.Close)
	r := &rig{console: console, consoleURL: consoleURL, target: target, targetURL: targetURL}
	r.exec = &exec.Executor{
		Config: cfg, DB: console, Targets: pools,
		Engine:   preview.NewEngine(cfg, pools, schema.NewCache(0)),
		Approval: approval.New(cfg),
		Backoff:  50 * time.Millisecond, ProgressEvery: time.Millisecond,
	}
	r.svc = r.exec.Approval
	r.alice = addUser(t, console, "alice", "requester")
	r.bob = addUser(t, console, "bob", "approver")
	return r
}

func addUser(t *testing.T, db *pg.DB, name, role string) approval.Actor {
	t.Helper()
	var id int64
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"INSERT INTO users (name, role, email) VALUES ($1, $2, '') RETURNING id", name, role).Scan(&id))
	return approval.Actor{ID: id, Name: name}
}

// requested previews the root and opens a request for it as alice.
func (r *rig) requested(t *testing.T, kind, key string) *approval.Request {
	t.Helper()
	ctx := context.Background()
	plan, err := r.exec.Engine.Plan(ctx, kind)
	require.NoError(t, err)
	p, err := r.exec.Engine.Run(ctx, plan, []string{key})
	require.NoError(t, err)
	require.False(t, p.Blocked(), "%v", p.Blockers)
	req, err := r.svc.Create(ctx, r.console.Bun, approval.CreateInput{Actor: r.alice, Preview: p, Reason: "fault suite: the customer left"})
	require.NoError(t, err)
	return req
}

// approved opens a request for the root and has bob approve it.
func (r *rig) approved(t *testing.T, kind, key string) *approval.Request {
	t.Helper()
	req := r.requested(t, kind, key)
	req, err := r.svc.Approve(context.Background(), r.console.Bun, approval.ApproveInput{
		Actor: r.bob, RequestID: req.ID, Digest: req.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, approval.Approved, req.State)
	return req
}

func (r *rig) request(t *testing.T, id int64) *approval.Request {
	t.Helper()
	req, err := approval.Get(context.Background(), r.console.Bun, id)
	require.NoError(t, err)
	return req
}

// settled runs the reconciler until the request leaves running (or the time is up) and
// returns it.
func (r *rig) settled(t *testing.T, id int64) *approval.Request {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := r.request(t, id)
		if req.State != approval.Running && req.State != approval.Approved {
			return req
		}
		require.True(t, time.Now().Before(deadline), "request %d is stuck in %s: %s", id, req.State, req.Error)
		if _, err := r.exec.Reconcile(ctx); err != nil {
			t.Logf("reconcile: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// events counts the request's audit events with action.
func events(t *testing.T, db *pg.DB, id int64, action audit.Action) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM audit_events WHERE request_id = $1 AND action = $2", id, string(action)).Scan(&n))
	return n
}

// verified checks the whole audit chain.
func verified(t *testing.T, db *pg.DB) {
	t.Helper()
	res, err := audit.Verify(context.Background(), db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, "%s", res)
}

// shopCounts is the number of rows of each shop table.
func shopCounts(t *testing.T, db *pg.DB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range []string{"tenants", "projects", "docs"} {
		var n int64
		require.NoError(t, db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+tbl).Scan(&n))
		out[tbl] = n
	}
	return out
}

// tenantRows is the number of rows tenant id owns across the shop tables (1 + 4 + 40 when
// untouched).
func tenantRows(t *testing.T, db *pg.DB, id int64) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM tenants WHERE id = $1) +
		(SELECT count(*) FROM projects WHERE tenant_id = $1) +
		(SELECT count(*) FROM docs d JOIN projects p ON p.id = d.project_id WHERE p.tenant_id = $1)`, id).Scan(&n))
	return n
}

// ledgerRows is the number of ledger rows the request has in a target (0 when the tombstone
// schema was never made there).
func ledgerRows(t *testing.T, db *pg.DB, id int64) int {
	t.Helper()
	var n int
	err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM tombstone.ledger WHERE request_id = $1", id).Scan(&n)
	if pg.Code(err) == "42P01" {
		return 0
	}
	require.NoError(t, err)
	return n
}

var clusterDBs atomic.Int64

// newCluster starts a private server for one test, stopped at its end.
func newCluster(t *testing.T, maxPrepared int) *cluster.Cluster {
	t.Helper()
	c, err := cluster.New(cluster.Options{MaxPreparedTransactions: maxPrepared})
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	return c
}

// durableDB creates a database in the cluster whose commits survive a server crash: the
// private clusters run with synchronous_commit off, which may lose the last commits of an
// immediate shutdown, and a crash test must not mistake that for a bug.
func durableDB(t *testing.T, c *cluster.Cluster, name string) string {
	t.Helper()
	ctx := context.Background()
	name = fmt.Sprintf("%s_%d", name, clusterDBs.Add(1))
	url, err := cluster.CreateDatabase(ctx, c.URL, name)
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, c.URL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" SET synchronous_commit = on")
	require.NoError(t, err)
	return url
}

// waitForLockWait waits until a backend of db whose application_name starts with prefix is
// waiting for a lock.
func waitForLockWait(t *testing.T, db *pg.DB, prefix string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND application_name LIKE $1`,
			strings.ReplaceAll(prefix, "%", `\%`)+"%").Scan(&n)
		return err == nil && n > 0
	}, 20*time.Second, 20*time.Millisecond, "nobody waits for a lock")
}

// poolsNoticeRestart waits out pgxpool's health check: a pooled connection idle for more than a second
// is pinged before it is handed out, so a connection the restart cut is then replaced
// instead of failing the next statement. (A statement sent on a cut connection within that
// second fails with pg.ErrUnavailable, which is what an operator would see too.)
func poolsNoticeRestart() { time.Sleep(1100 * time.Millisecond) }

package exec_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// bundle is a console database, a target with the apply tests' schema, an executor over them,
// and two users: a requester and an approver.
type bundle struct {
	console *pg.DB
	target  *pg.DB
	urls    [2]string // console, target
	exec    *exec.Executor
	svc     *approval.Service
	alice   approval.Actor
	bob     approval.Actor
}

func newBundle(t *testing.T, targetDDL, policy, targetOpts string) *bundle {
	t.Helper()
	ctx := context.Background()
	console := pgtest.Fresh(t)
	target, targetURL := pgtest.Empty(t)
	_, err := target.Pool.Exec(ctx, targetDDL)
	require.NoError(t, err)
	b := &bundle{console: console, target: target, urls: [2]string{pgtest.URLOf(console), targetURL}}
	b.exec = executorFor(t, b.urls[0], b.urls[1], policy, targetOpts, console)
	b.svc = b.exec.Approval
	for _, u := range []struct {
		name, role string
		dst        *approval.Actor
	}{{"alice", "requester", &b.alice}, {"bob", "approver", &b.bob}} {
		var id int64
		require.NoError(t, console.Pool.QueryRow(ctx, "INSERT INTO users (name, role, email) VALUES ($1, $2, '') RETURNING id", u.name, u.role).Scan(&id))
		*u.dst = approval.Actor{ID: id, Name: u.name}
	}
	return b
}

// executorFor builds an executor from a policy, as `console serve` does. console may be nil
// (it is then opened from its URL).
func executorFor(t *testing.T, consoleURL, targetURL, policy, targetOpts string, console *pg.DB) *exec.Executor {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Parse("t.yaml", []byte(fmt.Sprintf("database: %s\ntargets:\n  app: {dsn: %q%s}\n%s", consoleURL, targetURL, targetOpts, policy)), nil)
	require.NoError(t, err)
	if console == nil {
		console, err = pg.Open(ctx, consoleURL, pg.Options{})
		require.NoError(t, err)
		t.Cleanup(console.Close)
	}
	pools := pg.NewPools(map[string]string{"app": targetURL}, pg.Options{MaxConns: 6})
	t.Cleanup(pools.Close)
	return &exec.Executor{
		Config: cfg, DB: console, Targets: pools,
		Engine:   preview.NewEngine(cfg, pools, schema.NewCache(0)),
		Approval: approval.New(cfg),
		Backoff:  10 * time.Millisecond, ProgressEvery: time.Millisecond,
	}
}

// approved creates a request for the root and has bob approve it.
func (b *bundle) approved(t *testing.T, kind, key string) *approval.Request {
	t.Helper()
	ctx := context.Background()
	plan, err := b.exec.Engine.Plan(ctx, kind)
	require.NoError(t, err)
	p, err := b.exec.Engine.Run(ctx, plan, []string{key})
	require.NoError(t, err)
	require.False(t, p.Blocked(), "%v", p.Blockers)
	r, err := b.svc.Create(ctx, b.console.Bun, approval.CreateInput{Actor: b.alice, Preview: p, Reason: "the customer asked to be deleted"})
	require.NoError(t, err)
	r, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, approval.Approved, r.State)
	return r
}

func (b *bundle) request(t *testing.T, id int64) *approval.Request {
	t.Helper()
	r, err := approval.Get(context.Background(), b.console.Bun, id)
	require.NoError(t, err)
	return r
}

func (b *bundle) events(t *testing.T, id int64, action audit.Action) []audit.Event {
	t.Helper()
	evs, _, err := audit.List(context.Background(), b.console.Bun, audit.Filter{RequestID: id, Action: action}, 0, 100)
	require.NoError(t, err)
	return evs
}

func (b *bundle) count(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.target.Pool.QueryRow(context.Background(), sql).Scan(&n), sql)
	return n
}

func (b *bundle) verified(t *testing.T) {
	t.Helper()
	res, err := audit.Verify(context.Background(), b.console.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, "%s", res)
}

func report(t *testing.T, r *approval.Request) exec.Report {
	t.Helper()
	var rep exec.Report
	require.NoError(t, json.Unmarshal(r.Result, &rep))
	return rep
}

// snapshot is the target's rows, per table, as a hash over every column.
func (b *bundle) snapshot(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range []string{"tenants", "folders", "docs", `"Doc Tags"`, "a", "b", "notes"} {
		var h string
		require.NoError(t, b.target.Pool.QueryRow(context.Background(),
			"SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+tbl+" x").Scan(&h))
		out[tbl] = h
	}
	return out
}

func TestEndToEndThroughRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	require.NoError(t, exec.MigrateJobs(ctx, b.console.Pool, nil))
	jobs, err := exec.NewJobs(b.exec, exec.JobOptions{Workers: 2})
	require.NoError(t, err)
	require.NoError(t, jobs.Start(ctx))
	t.Cleanup(func() { _ = jobs.Stop(context.Background()) })

	r := b.approved(t, "tenant", "1")
	var enq exec.Enqueuer = jobs
	require.NoError(t, enq.Enqueue(ctx, r.ID))
	require.NoError(t, enq.Enqueue(ctx, r.ID), "a second enqueue is harmless")
	require.Eventually(t, func() bool { return b.request(t, r.ID).State == approval.Done }, 20*time.Second, 50*time.Millisecond)

	got := b.request(t, r.ID)
	rep := report(t, got)
	require.Equal(t, r.Digest, rep.Digest)
	var want int64
	for _, l := range r.Preview.Summary {
		if l.Action != config.ActionKeep {
			want += l.Rows
		}
	}
	require.Equal(t, want, rep.Rows, "exactly the previewed rows changed")
	require.Zero(t, b.count(t, "SELECT count(*) FROM tenants WHERE id = 1"))
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM folders"))
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM docs WHERE tenant_id = 2 AND n = 2 AND folder_id IS NULL"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM a")+b.count(t, "SELECT count(*) FROM b"))

	var status []exec.TargetStatus
	require.NoError(t, json.Unmarshal(got.TargetStatus, &status))
	require.Equal(t, exec.PhaseCommitted, status[0].Phase)
	for _, tp := range status[0].Tables {
		require.Equal(t, tp.Planned, tp.Done, "%s %s", tp.Table, tp.Action)
	}

	executed := b.events(t, r.ID, audit.ActionExecuted)
	require.Len(t, executed, 1)
	require.Equal(t, rep.Rows, executed[0].Details["rows"])
	require.Len(t, b.events(t, r.ID, audit.ActionExecutionStarted), 1)
	b.verified(t)

	// The sweeper finds nothing to queue: the request is no longer approved.
	n, err := jobs.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestSweeperQueuesAnApprovalWhoseEnqueueWasLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	require.NoError(t, exec.MigrateJobs(ctx, b.console.Pool, nil))
	jobs, err := exec.NewJobs(b.exec, exec.JobOptions{Workers: 1})
	require.NoError(t, err)
	require.NoError(t, jobs.Start(ctx))
	t.Cleanup(func() { _ = jobs.Stop(context.Background()) })
	r := b.approved(t, "tenant", "2")
	n, err := jobs.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Eventually(t, func() bool { return b.request(t, r.ID).State == approval.Done }, 20*time.Second, 50*time.Millisecond)
}

func TestDuplicateExecutorsRunOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	other := executorFor(t, b.urls[0], b.urls[1], tenantPolicy, "", nil)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		e := b.exec
		if i%2 == 1 {
			e = other
		}
		wg.Go(func() { errs[i] = e.Run(ctx, r.ID) })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, approval.Done, b.request(t, r.ID).State)
	require.Len(t, b.events(t, r.ID, audit.ActionExecutionStarted), 1)
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tombstone.ledger"))
	require.NoError(t, b.exec.Run(ctx, r.ID), "a late duplicate does nothing")
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
}

func TestConcurrentChildInsertDrifts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	_, err := b.target.Pool.Exec(ctx, "INSERT INTO notes VALUES (3, 1, false)")
	require.NoError(t, err)
	before := b.snapshot(t)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Drifted, got.State)
	rep := report(t, got)
	require.Equal(t, []exec.Change{{Target: "app", Table: "public.notes", Action: "delete", Approved: 1, Now: 2}}, rep.Changes)
	require.Contains(t, got.Error, "public.notes")
	require.Equal(t, before, b.snapshot(t), "nothing changed")
	require.Len(t, b.events(t, r.ID, audit.ActionDrifted), 1)
	require.Empty(t, b.events(t, r.ID, audit.ActionExecuted))
	b.verified(t)
}

func TestLockTimeoutRetriesThenFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, ", lock_timeout: 100ms")
	b.exec.Retries = 2
	r := b.approved(t, "tenant", "1")
	before := b.snapshot(t)

	holder, err := b.target.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, "SELECT * FROM tenants WHERE id = 1 FOR UPDATE")
	require.NoError(t, err)

	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "could not lock the rows in time")
	require.Contains(t, got.Error, "gave up after 3 attempts")
	require.Equal(t, 3, report(t, got).Attempts)
	require.NoError(t, holder.Rollback(ctx))
	require.Equal(t, before, b.snapshot(t))
	failed := b.events(t, r.ID, audit.ActionExecutionFailed)
	require.Len(t, failed, 1)
	require.Contains(t, failed[0].Details["error"], "could not lock")
}

func TestLostCommitThatCommittedIsDone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	// COMMIT reaches the server, but its answer is lost.
	b.exec.SetHooks(nil, func(err error) error {
		require.NoError(t, err)
		return errors.New("read tcp: connection reset by peer")
	})
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.Zero(t, b.count(t, "SELECT count(*) FROM tenants WHERE id = 1"))
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
	b.exec.SetHooks(nil, nil)
	require.NoError(t, b.exec.Run(ctx, r.ID), "never runs twice")
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tombstone.ledger"))
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
}

func TestLostConnectionBeforeCommitFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	before := b.snapshot(t)
	// The target's backend dies just before COMMIT.
	b.exec.SetHooks(func(ctx context.Context, tx pgx.Tx) {
		pid := tx.Conn().PgConn().PID()
		_, err := b.target.Pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
		require.NoError(t, err)
	}, nil)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "lost at commit")
	require.Equal(t, before, b.snapshot(t))
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.ledger"))
}

func TestAuditFailureIsReconciled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	// The console refuses the first executed event.
	_, err := b.console.Pool.Exec(ctx, `
		CREATE SEQUENCE refuse_once;
		CREATE FUNCTION refuse_executed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('refuse_once') = 1 THEN RAISE EXCEPTION 'audit insert refused'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_executed BEFORE INSERT ON audit_events
			FOR EACH ROW WHEN (NEW.action = 'executed') EXECUTE FUNCTION refuse_executed();`)
	require.NoError(t, err)

	err = b.exec.Run(ctx, r.ID)
	require.ErrorContains(t, err, "audit insert refused")
	require.Equal(t, approval.Running, b.request(t, r.ID).State, "the outcome is not recorded yet")
	require.Zero(t, b.count(t, "SELECT count(*) FROM tenants WHERE id = 1"), "the target committed")
	require.Empty(t, b.events(t, r.ID, audit.ActionExecuted))

	n, err := b.exec.Reconcile(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State)
	require.True(t, report(t, got).Reconciled)
	executed := b.events(t, r.ID, audit.ActionExecuted)
	require.Len(t, executed, 1)
	require.Equal(t, true, executed[0].Details["reconciled"])
	n, err = b.exec.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
	b.verified(t)
}

// killHelperEnv makes TestKillHelper run the executor in this (sub)process and pause it
// before COMMIT.
const killHelperEnv = "TOMBSTONE_EXEC_KILL_HELPER"

func TestKillHelper(t *testing.T) {
	args := os.Getenv(killHelperEnv)
	if args == "" {
		t.Skip("runs only as the subprocess of TestKillMidTransaction")
	}
	parts := strings.SplitN(args, " ", 3)
	id, err := strconv.ParseInt(parts[0], 10, 64)
	require.NoError(t, err)
	e := executorFor(t, parts[1], parts[2], tenantPolicy, "", nil)
	e.SetHooks(func(context.Context, pgx.Tx) {
		fmt.Println("PAUSED")
		select {}
	}, nil)
	_ = e.Run(context.Background(), id)
}

func TestKillMidTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, ddl, tenantPolicy, "")
	r := b.approved(t, "tenant", "1")
	before := b.snapshot(t)

	cmd := osexec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d %s %s", killHelperEnv, r.ID, b.urls[0], b.urls[1]))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	paused := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "PAUSED" {
				paused <- true
			}
		}
		close(paused)
	}()
	select {
	case ok := <-paused:
		require.True(t, ok, "the helper exited before pausing")
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the helper did not pause")
	}
	require.Equal(t, approval.Running, b.request(t, r.ID).State)
	n, err := b.exec.Reconcile(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a live executor's request is left alone")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool {
		n, err := b.exec.Reconcile(ctx)
		require.NoError(t, err)
		return n == 1
	}, 15*time.Second, 100*time.Millisecond)
	got := b.request(t, r.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Equal(t, exec.Interrupted, got.Error)
	require.Equal(t, before, b.snapshot(t), "nothing was deleted")
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.ledger"))
	require.Len(t, b.events(t, r.ID, audit.ActionExecutionFailed), 1)
	b.verified(t)
}

const hostileDDL = `
CREATE SCHEMA "we""ird schema";
CREATE TABLE "we""ird schema"."Tenants; DROP TABLE x;--" ("id ""key""" bigint PRIMARY KEY, "na'me" text);
CREATE TABLE "we""ird schema"."a""b" (id bigint PRIMARY KEY,
    "ten""ant" bigint NOT NULL REFERENCES "we""ird schema"."Tenants; DROP TABLE x;--" ON DELETE CASCADE, "$1" text);
CREATE TABLE "we""ird schema"."c d" (id bigint PRIMARY KEY,
    "a b" bigint REFERENCES "we""ird schema"."a""b" ON DELETE SET NULL);
INSERT INTO "we""ird schema"."Tenants; DROP TABLE x;--" VALUES (1, 'x''); DROP TABLE y;--'), (2, 'keep');
INSERT INTO "we""ird schema"."a""b" VALUES (1, 1, '?'), (2, 1, '$2'), (3, 2, 'keep');
INSERT INTO "we""ird schema"."c d" VALUES (1, 1), (2, 3);
`

func TestHostileIdentifiersEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	policy := "kinds:\n  tenant: {table: '\"we\"\"ird schema\".\"Tenants; DROP TABLE x;--\"', archive: 7d}\n"
	b := newBundle(t, hostileDDL, policy, "")
	r := b.approved(t, "tenant", "1")
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM "we""ird schema"."Tenants; DROP TABLE x;--"`))
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM "we""ird schema"."a""b"`))
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM "we""ird schema"."c d" WHERE "a b" IS NULL`))
	require.Equal(t, int64(4), b.count(t, "SELECT count(*) FROM tombstone.archive"))
	rep := report(t, got)
	require.Equal(t, int64(4), rep.Rows)
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
	b.verified(t)
}

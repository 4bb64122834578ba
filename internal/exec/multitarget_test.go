package exec_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest/cluster"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// The demo targets for these tests: demo_app, demo_pos and demo_alerts in a private cluster
// with prepared transactions, and a second copy of the same data (same seed and scale, so the
// same tenant ids) in a private cluster without. Both clusters are shared by the package's
// tests and stop when the test binary exits. The tests that delete run one after the other,
// each on a tenant of its own.
var (
	demoOnce  sync.Once
	demoURLs  map[string]string // target → URL in the cluster with prepared transactions
	plainURLs map[string]string // target → URL in the cluster without
	demoErr   error
	demoMu    sync.Mutex // serialises the tests that delete from the demo targets

	requestIDs atomic.Int64
	consoles   atomic.Int64
)

func demoTargets(t *testing.T) {
	t.Helper()
	demoOnce.Do(func() {
		ctx := context.Background()
		urls := make([]map[string]string, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, n := range []int{10, 0} {
			admin := cluster.Shared(t, cluster.Options{MaxPreparedTransactions: n})
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := demo.Setup(ctx, demo.Options{AdminURL: admin, Scale: 0.1})
				if err != nil {
					errs[i] = err
					return
				}
				urls[i] = res.Databases
			}()
		}
		wg.Wait()
		demoURLs, plainURLs, demoErr = urls[0], urls[1], errors.Join(errs...)
	})
	require.NoError(t, demoErr)
}

// multiBundle is a console database and an executor over the demo targets.
type multiBundle struct {
	console *pg.DB
	exec    *exec.Executor
	svc     *approval.Service
	urls    map[string]string
	alice   approval.Actor
	bob     approval.Actor
}

func newMultiBundle(t *testing.T, urls map[string]string) *multiBundle {
	t.Helper()
	ctx := context.Background()
	// The console database lives in the private cluster too: the shared server is busy.
	consoleURL := cluster.Database(t, cluster.Shared(t, cluster.Options{MaxPreparedTransactions: 10}), fmt.Sprintf("console_%d", consoles.Add(1)))
	console, err := pg.Open(ctx, consoleURL, pg.Options{MaxConns: 6})
	require.NoError(t, err)
	t.Cleanup(console.Close)
	_, err = pg.Migrate(ctx, console.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)
	env := map[string]string{
		"TOMBSTONE_DATABASE_URL": consoleURL,
		"DEMO_APP_URL":           urls["app"], "DEMO_POS_URL": urls["pos"], "DEMO_ALERTS_URL": urls["alerts"],
	}
	cfg, err := config.Parse("tombstone.yaml", examples.Policy(), func(n string) (string, bool) { v, ok := env[n]; return v, ok })
	require.NoError(t, err)
	pools := pg.NewPools(urls, pg.Options{MaxConns: 6})
	t.Cleanup(pools.Close)
	b := &multiBundle{console: console, urls: urls}
	b.exec = &exec.Executor{
		Config: cfg, DB: console, Targets: pools,
		Engine:   preview.NewEngine(cfg, pools, schema.NewCache(0)),
		Approval: approval.New(cfg),
		Backoff:  10 * time.Millisecond, ProgressEvery: time.Millisecond,
	}
	b.svc = b.exec.Approval
	// Every test has a console database of its own but the targets are shared: request ids
	// must not repeat across tests, or one test would find another's ledger rows.
	_, err = console.Pool.Exec(ctx, fmt.Sprintf("ALTER TABLE requests ALTER COLUMN id RESTART WITH %d", requestIDs.Add(1000)))
	require.NoError(t, err)
	for _, u := range []struct {
		name, role string
		dst        *approval.Actor
	}{{"alice", "requester", &b.alice}, {"bob", "approver", &b.bob}, {"carol", "approver", nil}} {
		var id int64
		require.NoError(t, console.Pool.QueryRow(ctx, "INSERT INTO users (name, role, email) VALUES ($1, $2, '') RETURNING id", u.name, u.role).Scan(&id))
		if u.dst != nil {
			*u.dst = approval.Actor{ID: id, Name: u.name}
		}
	}
	return b
}

// tenant returns the id of the demo tenant with slug.
func (b *multiBundle) tenant(t *testing.T, slug string) string {
	t.Helper()
	var id int64
	b.query(t, "app", "SELECT id FROM tenants WHERE slug = $1", []any{slug}, &id)
	return fmt.Sprint(id)
}

func (b *multiBundle) query(t *testing.T, target, sql string, args []any, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.urls[target])
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(dest...), sql)
}

func (b *multiBundle) exec1(t *testing.T, target, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.urls[target])
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}

// previewOf evaluates the tenant's preview now.
func (b *multiBundle) previewOf(t *testing.T, key string) *preview.Preview {
	t.Helper()
	ctx := context.Background()
	plan, err := b.exec.Engine.Plan(ctx, "tenant")
	require.NoError(t, err)
	p, err := b.exec.Engine.Run(ctx, plan, []string{key})
	require.NoError(t, err)
	return p
}

// approved requests the tenant's deletion and has it approved (it reaches over 100,000 rows
// only for bigco, so one approver suffices).
func (b *multiBundle) approved(t *testing.T, key string) (*approval.Request, *preview.Preview) {
	t.Helper()
	ctx := context.Background()
	p := b.previewOf(t, key)
	require.False(t, p.Blocked(), "%v", p.Blockers)
	require.Len(t, p.Targets, 3)
	r, err := b.svc.Create(ctx, b.console.Bun, approval.CreateInput{Actor: b.alice, Preview: p, Reason: "the tenant closed its account"})
	require.NoError(t, err)
	r, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.Equal(t, approval.Approved, r.State)
	return r, p
}

func (b *multiBundle) request(t *testing.T, id int64) *approval.Request {
	t.Helper()
	r, err := approval.Get(context.Background(), b.console.Bun, id)
	require.NoError(t, err)
	return r
}

func (b *multiBundle) events(t *testing.T, id int64, action audit.Action) []audit.Event {
	t.Helper()
	evs, _, err := audit.List(context.Background(), b.console.Bun, audit.Filter{RequestID: id, Action: action}, 0, 100)
	require.NoError(t, err)
	return evs
}

// prepared counts the prepared transactions left in the cluster.
func (b *multiBundle) prepared(t *testing.T) int64 {
	t.Helper()
	var n int64
	b.query(t, "app", "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'tombstone-%'", nil, &n)
	return n
}

func (b *multiBundle) ledgers(t *testing.T, id int64) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, target := range demo.Targets {
		var n int64
		b.query(t, target, "SELECT count(*) FROM tombstone.ledger WHERE request_id = $1", []any{id}, &n)
		out[target] = n > 0
	}
	return out
}

// requireDeleted checks that every row the preview reached is gone (or changed) and that the
// request's report has the preview's counts.
func requireDone(t *testing.T, b *multiBundle, r *approval.Request, p *preview.Preview) exec.Report {
	t.Helper()
	r = b.request(t, r.ID)
	require.Equal(t, approval.Done, r.State, r.Error)
	rep := report(t, r)
	want := map[string]int64{}
	for _, l := range p.Summary {
		switch l.Action {
		case config.ActionDelete, config.ActionSoft, config.ActionDetach:
			want[l.Target+" "+l.Table+" "+l.Action] = l.Rows
		}
	}
	got := map[string]int64{}
	for _, tc := range rep.Tables {
		got[tc.Target+" "+tc.Table+" "+tc.Action] = tc.Rows
	}
	require.Equal(t, want, got)
	require.Equal(t, p.Totals.Changed(), rep.Rows)
	executed := b.events(t, r.ID, audit.ActionExecuted)
	require.Len(t, executed, 1)
	targets, ok := executed[0].Details["targets"].(map[string]any)
	require.True(t, ok, "%#v", executed[0].Details)
	require.Len(t, targets, 3)
	for _, tt := range p.Targets {
		require.EqualValues(t, tt.Totals.Changed(), targets[tt.Target], tt.Target)
	}
	require.Equal(t, map[string]bool{"app": true, "pos": true, "alerts": true}, b.ledgers(t, r.ID))
	var n int64
	b.query(t, "app", "SELECT count(*) FROM tenants WHERE id = $1::bigint", []any{r.RootKeys[0]}, &n)
	require.Zero(t, n)
	for _, target := range []string{"pos", "alerts"} {
		for _, tbl := range tenantTables[target] {
			b.query(t, target, "SELECT count(*) FROM "+tbl+" WHERE tenant_id = $1::bigint", []any{r.RootKeys[0]}, &n)
			require.Zero(t, n, "%s.%s", target, tbl)
		}
	}
	res, err := audit.Verify(context.Background(), b.console.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, "%s", res)
	return rep
}

var tenantTables = map[string][]string{
	"pos":    {"pos_configurations", "pos_sessions", "pos_transactions"},
	"alerts": {"alert_rules", "alerts", "alert_history", "alert_notifications"},
}

// TestMultiTargetOracle checks the preview's counts in demo_pos and demo_alerts against a
// plain count of each table's rows with the tenant's id: every row of these services names
// its tenant, and the foreign keys inside each service cascade.
func TestMultiTargetOracle(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	b := newMultiBundle(t, demoURLs)
	for _, slug := range []string{"acme", "umbrella", "hooli"} {
		key := b.tenant(t, slug)
		p := b.previewOf(t, key)
		got := map[string]int64{}
		for _, l := range p.Summary {
			if l.Target != "app" {
				require.Equal(t, config.ActionDelete, l.Action, "%s %s", l.Target, l.Table)
				got[l.Target+" "+strings.TrimPrefix(l.Table, "public.")] = l.Rows
			}
		}
		want := map[string]int64{}
		var total int64
		for target, tables := range tenantTables {
			for _, tbl := range tables {
				var n int64
				b.query(t, target, "SELECT count(*) FROM "+tbl+" WHERE tenant_id = $1::bigint", []any{key}, &n)
				if n > 0 {
					want[target+" "+tbl] = n
				}
				total += n
			}
		}
		require.NotZero(t, total, slug)
		require.Equal(t, want, got, slug)
		for _, tt := range p.Targets {
			if tt.Target != "app" {
				var sum int64
				for k, v := range want {
					if strings.HasPrefix(k, tt.Target+" ") {
						sum += v
					}
				}
				require.Equal(t, sum, tt.Totals.Delete, "%s %s", slug, tt.Target)
			}
		}
	}
}

// TestMultiTargetAtomic deletes a tenant across the three demo databases with two-phase
// commit.
func TestMultiTargetAtomic(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	b := newMultiBundle(t, demoURLs)
	ctx := context.Background()
	r, p := b.approved(t, b.tenant(t, "globex"))
	var prepares []string
	b.exec.SetMultiHooks(exec.MultiHooks{BeforePrepare: func(_ context.Context, target string, _ pgx.Tx) {
		prepares = append(prepares, target)
	}})
	require.NoError(t, b.exec.Run(ctx, r.ID))
	require.Equal(t, []string{"alerts", "pos", "app"}, prepares)
	rep := requireDone(t, b, r, p)
	require.Equal(t, exec.ModeAtomic, rep.Mode)
	require.Zero(t, b.prepared(t))
	var decision string
	require.NoError(t, b.console.Pool.QueryRow(ctx, "SELECT decision FROM execution_decisions WHERE request_id = $1", r.ID).Scan(&decision))
	require.Equal(t, "commit", decision)
	// No scratch table survives.
	for _, target := range demo.Targets {
		var n int64
		b.query(t, target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'tombstone' AND tablename LIKE 'r%'", nil, &n)
		require.Zero(t, n, target)
	}
	st := b.request(t, r.ID)
	require.Contains(t, string(st.TargetStatus), `"phase": "committed"`)
}

// TestMultiTargetPrepareFails makes the last target's PREPARE fail (a deferred trigger on
// its ledger raises): every target is rolled back and nothing changes anywhere.
func TestMultiTargetPrepareFails(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	b := newMultiBundle(t, demoURLs)
	ctx := context.Background()
	key := b.tenant(t, "initech")
	r, p := b.approved(t, key)
	migrateTargets(t, b)
	b.exec1(t, "app", `CREATE FUNCTION tombstone.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'ledger refused'; END $$;
		CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON tombstone.ledger DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION tombstone.refuse()`)
	t.Cleanup(func() { b.exec1(t, "app", "DROP FUNCTION IF EXISTS tombstone.refuse() CASCADE") })

	require.NoError(t, b.exec.Run(ctx, r.ID))
	r = b.request(t, r.ID)
	require.Equal(t, approval.Failed, r.State)
	require.Contains(t, r.Error, "ledger refused")
	require.Zero(t, b.prepared(t))
	require.Equal(t, map[string]bool{"app": false, "pos": false, "alerts": false}, b.ledgers(t, r.ID))
	require.Equal(t, p.Digest, b.previewOf(t, key).Digest, "nothing changed in any target")
	var decision string
	require.NoError(t, b.console.Pool.QueryRow(ctx, "SELECT decision FROM execution_decisions WHERE request_id = $1", r.ID).Scan(&decision))
	require.Equal(t, "rollback", decision)
	require.Len(t, b.events(t, r.ID, audit.ActionExecutionFailed), 1)
	require.Empty(t, b.events(t, r.ID, audit.ActionExecuted))
}

// TestMultiTargetCrash stops the executor after every target prepared: before the decision
// was recorded the reconciler rolls everything back; after it, the reconciler commits.
func TestMultiTargetCrash(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	ctx := context.Background()
	crash := errors.New("executor crashed")

	t.Run("before the decision", func(t *testing.T) {
		b := newMultiBundle(t, demoURLs)
		key := b.tenant(t, "initech")
		r, p := b.approved(t, key)
		b.exec.SetMultiHooks(exec.MultiHooks{Prepared: func() error { return crash }})
		require.Error(t, b.exec.Run(ctx, r.ID))
		require.Equal(t, approval.Running, b.request(t, r.ID).State)
		require.EqualValues(t, 3, b.prepared(t))

		b.exec.SetMultiHooks(exec.MultiHooks{})
		n, err := b.exec.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Zero(t, b.prepared(t))
		r = b.request(t, r.ID)
		require.Equal(t, approval.Failed, r.State)
		require.Equal(t, exec.Interrupted, r.Error)
		require.Equal(t, p.Digest, b.previewOf(t, key).Digest, "nothing changed in any target")
		require.Empty(t, b.events(t, r.ID, audit.ActionExecuted))
	})
	t.Run("after the decision", func(t *testing.T) {
		b := newMultiBundle(t, demoURLs)
		r, p := b.approved(t, b.tenant(t, "hooli"))
		b.exec.SetMultiHooks(exec.MultiHooks{Decided: func() error { return crash }})
		require.Error(t, b.exec.Run(ctx, r.ID))
		require.Equal(t, approval.Running, b.request(t, r.ID).State)
		require.EqualValues(t, 3, b.prepared(t))

		b.exec.SetMultiHooks(exec.MultiHooks{})
		n, err := b.exec.Reconcile(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Zero(t, b.prepared(t))
		rep := requireDone(t, b, r, p)
		require.True(t, rep.Reconciled)
	})
}

// migrateTargets creates the tombstone schema in every demo target ahead of the executor.
func migrateTargets(t *testing.T, b *multiBundle) {
	t.Helper()
	ctx := context.Background()
	for target := range b.urls {
		db, err := b.exec.Targets.DB(ctx, target)
		require.NoError(t, err)
		_, err = pg.Migrate(ctx, db.Bun, pg.TargetMigrations())
		require.NoError(t, err)
	}
}

// TestMultiTargetFallback runs with one target that has no prepared transactions: the
// targets commit in order, the second one fails, the request is partial, and resuming it
// finishes the rest with the right totals and one executed event.
func TestMultiTargetFallback(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	urls := map[string]string{"app": demoURLs["app"], "alerts": demoURLs["alerts"], "pos": plainURLs["pos"]}
	b := newMultiBundle(t, urls)
	ctx := context.Background()
	key := b.tenant(t, "umbrella")
	r, p := b.approved(t, key)
	migrateTargets(t, b)
	// pos is second in the order (alerts, pos, app): make its commit fail.
	b.exec1(t, "pos", `CREATE FUNCTION tombstone.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'ledger refused'; END $$;
		CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON tombstone.ledger DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION tombstone.refuse()`)
	t.Cleanup(func() { b.exec1(t, "pos", "DROP FUNCTION IF EXISTS tombstone.refuse() CASCADE") })

	require.NoError(t, b.exec.Run(ctx, r.ID))
	r = b.request(t, r.ID)
	require.Equal(t, approval.Partial, r.State)
	require.Contains(t, r.Error, "ledger refused")
	require.Equal(t, map[string]bool{"alerts": true, "pos": false, "app": false}, b.ledgers(t, r.ID))
	rep := report(t, r)
	require.Equal(t, exec.ModeOrdered, rep.Mode)
	states := map[string]string{}
	for _, tr := range rep.Targets {
		states[tr.Target] = tr.State
	}
	require.Equal(t, map[string]string{"alerts": exec.TargetDone, "pos": exec.TargetFailed, "app": exec.TargetNotRun}, states)
	require.Contains(t, string(r.TargetStatus), `"phase": "failed"`)
	require.Len(t, b.events(t, r.ID, audit.ActionPaused), 1)
	require.Empty(t, b.events(t, r.ID, audit.ActionExecuted))
	var n int64
	b.query(t, "app", "SELECT count(*) FROM tenants WHERE id = $1::bigint", []any{key}, &n)
	require.EqualValues(t, 1, n, "the root's target commits last and was rolled back")

	b.exec1(t, "pos", "DROP FUNCTION IF EXISTS tombstone.refuse() CASCADE")
	require.NoError(t, exec.Resume(ctx, b.console.Bun, b.bob, r.ID))
	require.Len(t, b.events(t, r.ID, audit.ActionResumed), 1)
	require.NoError(t, b.exec.Run(ctx, r.ID)) // resume: same approval, no new digest
	rep = requireDone(t, b, r, p)
	require.ErrorIs(t, exec.Resume(ctx, b.console.Bun, b.bob, r.ID), exec.ErrNotPartial)
	require.Equal(t, exec.ModeOrdered, rep.Mode)
	for _, tr := range rep.Targets {
		require.Equal(t, exec.TargetDone, tr.State)
		require.Equal(t, tr.Target == "alerts", tr.Earlier, tr.Target)
	}
	// Running it again changes nothing: the request is done.
	require.NoError(t, b.exec.Run(ctx, r.ID))
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
}

// TestMultiTargetResumeDrift changes an unfinished target between the partial run and the
// resume: the resume drifts instead of deleting rows nobody approved.
func TestMultiTargetResumeDrift(t *testing.T) {
	demoTargets(t)
	demoMu.Lock()
	defer demoMu.Unlock()
	urls := map[string]string{"app": demoURLs["app"], "alerts": demoURLs["alerts"], "pos": plainURLs["pos"]}
	b := newMultiBundle(t, urls)
	ctx := context.Background()
	key := b.tenant(t, "initech")
	r, _ := b.approved(t, key)
	migrateTargets(t, b)
	b.exec1(t, "pos", `CREATE FUNCTION tombstone.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'ledger refused'; END $$;
		CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON tombstone.ledger DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW EXECUTE FUNCTION tombstone.refuse()`)
	t.Cleanup(func() { b.exec1(t, "pos", "DROP FUNCTION IF EXISTS tombstone.refuse() CASCADE") })
	require.NoError(t, b.exec.Run(ctx, r.ID))
	require.Equal(t, approval.Partial, b.request(t, r.ID).State)

	b.exec1(t, "pos", "DROP FUNCTION IF EXISTS tombstone.refuse() CASCADE")
	b.exec1(t, "pos", fmt.Sprintf("INSERT INTO pos_configurations (tenant_id, name) VALUES (%s, 'opened meanwhile')", key))
	require.NoError(t, b.exec.Run(ctx, r.ID))
	r = b.request(t, r.ID)
	require.Equal(t, approval.Drifted, r.State)
	rep := report(t, r)
	require.NotEmpty(t, rep.Changes)
	require.Equal(t, "pos", rep.Changes[0].Target)
	require.Equal(t, map[string]bool{"alerts": true, "pos": false, "app": false}, b.ledgers(t, r.ID))
}

// TestMultiTargetCommitOrder puts linked targets first and the root's target last.
func TestMultiTargetCommitOrder(t *testing.T) {
	demoTargets(t)
	b := newMultiBundle(t, demoURLs)
	plan, err := b.exec.Engine.Plan(context.Background(), "tenant")
	require.NoError(t, err)
	require.Equal(t, []string{"alerts", "pos", "app"}, exec.CommitOrder(plan))
	require.Equal(t, "tombstone-42-pos", exec.GID(42, "pos"))
}

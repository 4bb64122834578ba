package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/internal/web"
)

// rqRunning makes an approved request and moves it to running, as the executor does.
func (a *app) rqRunning(requester, approver *auth.User, key string) (*approval.Service, *approval.Request) {
	a.t.Helper()
	ctx := context.Background()
	svc := approval.New(a.cfg)
	rq := a.rqCreate(requester, "tenant", key, "Tenant "+key)
	_, err := svc.Approve(ctx, a.db.Bun, approval.ApproveInput{
		Actor: approval.Actor{ID: approver.ID, Name: approver.Name}, RequestID: rq.ID, Digest: rq.Digest, SignedInAt: time.Now(),
	})
	require.NoError(a.t, err)
	rq, err = svc.Start(ctx, a.db.Bun, rq.ID)
	require.NoError(a.t, err)
	return svc, rq
}

func rqJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestRequestProgressAndResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, bobU := a.signedIn("bob", auth.Approver)
	svc, rq := a.rqRunning(aliceU, bobU, "1")

	status := []exec.TargetStatus{
		{Target: "app", Phase: exec.PhaseApplying, Tables: []exec.TableProgress{
			{Table: "public.users", Action: "delete", Done: 600, Planned: 1200},
			{Table: "public.audit_notes", Action: "detach", Done: 3, Planned: 3},
		}},
		{Target: "billing", Phase: exec.PhaseCommitted, Tables: []exec.TableProgress{
			{Table: "public.invoices", Action: "delete", Done: 12000, Planned: 12000},
		}},
	}
	require.NoError(t, approval.Progress(ctx, a.db.Bun, rq.ID, rqJSON(t, status)))

	// The fragment htmx polls: per-table bars and per-target status, polling every second.
	r := bob.get(reqPath(rq.ID, "/progress"), "HX-Request", "true")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Empty(t, r.Header.Get("HX-Location"))
	panel := r.testid("progress")
	require.Equal(t, "running", panel.AttrOr("data-state", ""))
	require.Equal(t, "every 1s", panel.AttrOr("hx-trigger", ""))
	require.Equal(t, reqPath(rq.ID, "/progress"), panel.AttrOr("hx-get", ""))
	require.Equal(t, "outerHTML", panel.AttrOr("hx-swap", ""))
	require.Zero(t, r.doc().Find("header.topbar, main").Length(), "a fragment, not a page")
	targets := r.testid("target-progress")
	require.Equal(t, 2, targets.Length())
	require.Equal(t, "applying 1/2", strings.Join(strings.Fields(targets.Eq(0).Find(`[data-testid="target-status"]`).Text()), " "))
	require.Equal(t, "done 1/1", strings.Join(strings.Fields(targets.Eq(1).Find(`[data-testid="target-status"]`).Text()), " "))
	users := r.doc().Find(`[data-testid="table-progress"][data-table="public.users"]`)
	bar := users.Find("progress")
	require.Equal(t, "600", bar.AttrOr("value", ""))
	require.Equal(t, "1200", bar.AttrOr("max", ""))
	require.Equal(t, "600 of 1,200", users.Find(`[data-testid="table-rows"]`).Text())
	require.Equal(t, "12,000 of 12,000", r.doc().Find(`[data-table="public.invoices"] [data-testid="table-rows"]`).Text())
	require.Zero(t, r.doc().Find("[style]").Length(), "no inline styles")

	// The page shows the same panel, with a refresh link for browsers without JavaScript.
	page := bob.get(reqPath(rq.ID, ""))
	require.Equal(t, "every 1s", page.testid("progress").AttrOr("hx-trigger", ""))
	require.Equal(t, reqPath(rq.ID, ""), page.testid("progress-refresh").AttrOr("href", ""))
	checkHeaders(t, page, "running request")

	// Done: polling stops (htmx is told to load the page), and the page shows the counts.
	report := exec.Report{Digest: rq.Digest, Rows: 1204, Tables: []exec.TableCount{
		{Target: "app", Table: "public.audit_notes", Action: "detach", Rows: 3},
		{Target: "app", Table: "public.tenants", Action: "delete", Rows: 1},
		{Target: "app", Table: "public.users", Action: "delete", Rows: 1200},
	}}
	_, err := svc.Finish(ctx, a.db.Bun, rq.ID, approval.Done, rqJSON(t, report), "")
	require.NoError(t, err)
	r = bob.get(reqPath(rq.ID, "/progress"), "HX-Request", "true")
	require.JSONEq(t, `{"path": "`+reqPath(rq.ID, "")+`", "target": "body"}`, r.Header.Get("HX-Location"))
	require.Empty(t, r.testid("progress").AttrOr("hx-trigger", ""))
	page = bob.get(reqPath(rq.ID, ""))
	require.Zero(t, page.testid("progress").Length())
	require.Equal(t, "done", page.testid("result").AttrOr("data-state", ""))
	lines := page.testid("result-table")
	require.Equal(t, 3, lines.Length())
	require.Contains(t, lines.Eq(2).Text(), "public.users")
	require.Contains(t, lines.Eq(2).Text(), "1,200")
	require.Zero(t, page.testid("resume").Length())

	// Failed: the error. Drifted: the per-table differences.
	svc2, failed := a.rqRunning(aliceU, bobU, "2")
	_, err = svc2.Finish(ctx, a.db.Bun, failed.ID, approval.Failed, nil, "lock timeout on public.users after 3 attempts")
	require.NoError(t, err)
	page = bob.get(reqPath(failed.ID, ""))
	require.Equal(t, "failed", page.testid("result").AttrOr("data-state", ""))
	require.Contains(t, page.testid("result-error").Text(), "lock timeout on public.users")

	_, drifted := a.rqRunning(aliceU, bobU, "3")
	rep := exec.Report{Changes: []exec.Change{{Target: "app", Table: "public.users", Action: "delete", Approved: 1200, Now: 1201}}}
	_, err = svc.Finish(ctx, a.db.Bun, drifted.ID, approval.Drifted, rqJSON(t, rep), "drifted: app public.users delete: approved 1,200, now 1,201")
	require.NoError(t, err)
	page = bob.get(reqPath(drifted.ID, ""))
	require.Equal(t, "drifted", page.testid("result").AttrOr("data-state", ""))
	change := page.testid("drift-change")
	require.Equal(t, 1, change.Length())
	require.Contains(t, change.Text(), "1,201")
	require.Zero(t, page.testid("result-error").Length(), "the table replaces the error text")

	// Partial: which targets are done, and a resume button for approvers.
	_, partial := a.rqRunning(aliceU, bobU, "4")
	require.NoError(t, approval.Progress(ctx, a.db.Bun, partial.ID, rqJSON(t, status)))
	_, err = svc.Finish(ctx, a.db.Bun, partial.ID, approval.Partial, rqJSON(t, exec.Report{Rows: 12000, Tables: []exec.TableCount{
		{Target: "billing", Table: "public.invoices", Action: "delete", Rows: 12000},
	}}), "target app: connection refused")
	require.NoError(t, err)
	page = bob.get(reqPath(partial.ID, ""))
	require.Equal(t, "partial", page.testid("result").AttrOr("data-state", ""))
	var states []string
	page.testid("result-target").Each(func(_ int, s *goquery.Selection) {
		states = append(states, s.Find("td").Eq(0).Text()+" "+s.Find("td").Eq(1).Text())
	})
	require.Equal(t, []string{"app waiting", "billing done"}, states)
	require.Contains(t, page.testid("result-error").Text(), "connection refused")
	require.Equal(t, reqPath(partial.ID, "/resume"), page.testid("resume-form").AttrOr("action", ""))

	// Resuming takes the approver role; it records who resumed, and only a partial request
	// can be resumed.
	require.Equal(t, http.StatusForbidden, alice.post(reqPath(partial.ID, "/resume"), nil).StatusCode)
	resp := bob.post(reqPath(partial.ID, "/resume"), nil)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, reqPath(partial.ID, ""), resp.location())
	var resumed int
	require.NoError(t, a.db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND action = 'resumed' AND actor_name = 'bob'", partial.ID).Scan(&resumed))
	require.Equal(t, 1, resumed)
	require.Equal(t, http.StatusConflict, bob.post(reqPath(drifted.ID, "/resume"), nil).StatusCode)
	require.Equal(t, http.StatusNotFound, bob.post("/requests/999999/resume", nil).StatusCode)
}

func TestRequestNotificationFailures(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme")
	_, err := a.db.Bun.ExecContext(context.Background(), `INSERT INTO outbox (request_id, event, channel, recipient, attempts, next_attempt_at, last_error)
		VALUES (?, 'awaiting', 'email', 'approvers@example.com', 2, now() + interval '10 minutes', 'dial tcp 10.0.0.9:25: connection refused'),
		       (?, 'awaiting', 'slack', 'webhook', 0, now(), '')`, rq.ID, rq.ID)
	require.NoError(t, err)
	page := bob.get(reqPath(rq.ID, ""))
	fails := page.testid("notify-failure")
	require.Equal(t, 1, fails.Length(), "only messages that failed")
	text := strings.Join(strings.Fields(fails.Text()), " ")
	require.Contains(t, text, "Email to approvers@example.com (awaiting) failed 2 times: dial tcp")
	require.Contains(t, text, "connection refused")
	require.Contains(t, text, "Retrying in")
}

// rqTargetPolicy is a policy on a real target database.
const rqTargetPolicy = `database: postgres://unused/db
targets:
  app: {dsn: "${APP_DSN}"}
kinds:
  tenant:
    target: app
    table: tenants
    search: [slug]
    root: delete
`

func TestRequestDriftCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tdb, _ := pgtest.Empty(t)
	_, err := tdb.Pool.Exec(ctx, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, slug text NOT NULL UNIQUE);
		CREATE TABLE users (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE, email text NOT NULL);
		INSERT INTO tenants VALUES (1, 'acme'), (2, 'globex');
		INSERT INTO users SELECT g, 1 + g % 2, 'u' || g || '@example.com' FROM generate_series(1, 10) g;`)
	require.NoError(t, err)
	cfg, err := config.Parse("test.yaml", []byte(rqTargetPolicy), func(k string) (string, bool) { return "postgres://unused/app", k == "APP_DSN" })
	require.NoError(t, err)
	engine := preview.NewEngine(cfg, targets{"app": tdb}, schema.NewCache(0))
	plan, err := engine.Plan(ctx, "tenant")
	require.NoError(t, err)
	live, err := engine.Run(ctx, plan, []string{"1"})
	require.NoError(t, err)

	a := newAppWith(t, strings.ReplaceAll(rqTargetPolicy, "${APP_DSN}", "postgres://unused/app"), nil, func(d *web.Deps) { d.Engine = engine })
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq, err := approval.New(a.cfg).Create(ctx, a.db.Bun, approval.CreateInput{
		Actor: approval.Actor{ID: aliceU.ID, Name: aliceU.Name}, Preview: live, Reason: "Closing the acme account for good.",
	})
	require.NoError(t, err)
	p := reqPath(rq.ID, "")

	page := bob.get(p)
	require.Equal(t, 1, page.testid("drift-check").Length())
	require.Equal(t, p+"/drift", page.testid("drift-form").AttrOr("hx-get", ""))
	require.Zero(t, page.testid("drift-banner").Length(), "the page does not compute the live preview by itself")

	same := bob.get(p+"/drift", "HX-Request", "true")
	require.Equal(t, http.StatusOK, same.StatusCode)
	require.Zero(t, same.doc().Find("header.topbar").Length(), "htmx gets the region alone")
	require.Equal(t, 1, same.testid("drift-same").Length())

	_, err = tdb.Pool.Exec(ctx, `INSERT INTO users VALUES (11, 1, 'late@example.com')`)
	require.NoError(t, err)
	changed := bob.get(p + "/drift")
	require.Equal(t, http.StatusOK, changed.StatusCode)
	require.Equal(t, 1, changed.testid("request").Length(), "without htmx, the whole page")
	require.Equal(t, 1, changed.testid("drift-banner").Length())
	row := changed.testid("drift-change")
	require.Equal(t, 1, row.Length())
	require.Contains(t, row.Text(), "public.users")
	require.Contains(t, row.Text(), "5")
	require.Contains(t, row.Text(), "6")
	require.Equal(t, approval.Pending, a.rqGet(rq.ID).State, "checking changes nothing")
}

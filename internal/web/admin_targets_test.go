package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	pgcluster "github.com/tombstone-console/tombstone/internal/pg/pgtest/cluster"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/internal/web"
	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// targetsPolicy has four targets (the DSNs are not used: the test hands the server its
// databases) and three kinds that span them.
const targetsPolicy = `database: postgres://unused/db
targets:
  app: {dsn: "postgres://127.0.0.1:1/app"}
  pos: {dsn: "postgres://127.0.0.1:1/pos"}
  pos_eu: {dsn: "postgres://127.0.0.1:1/pos_eu"}
  alerts: {dsn: "postgres://127.0.0.1:1/alerts"}
kinds:
  tenant:
    target: app
    table: tenants
    root: delete
    also:
      - {target: pos, table: pos_configurations, column: tenant_id}
      - {target: alerts, table: alert_rules, column: tenant_id}
  store:
    target: pos
    table: stores
    root: delete
    also:
      - {target: pos_eu, table: stores, column: id}
  rule:
    target: pos
    table: rules
    root: delete
    also:
      - {target: alerts, table: alert_rules, column: rule_id}
`

// TestAdminTargets: the targets page reports what /readyz reports for each target (a
// reachable one without prepared transactions, two with, one unreachable), the schema
// fingerprints, and how each kind across targets commits.
func TestAdminTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app, _ := pgtest.Empty(t)
	private := pgcluster.Start(t, pgcluster.Options{MaxPreparedTransactions: 5})
	pos := openDB(t, pgcluster.Database(t, private, "pos"))
	posEU := openDB(t, pgcluster.Database(t, private, "pos_eu"))
	_, err := pos.Pool.Exec(ctx, "CREATE TABLE stores (id bigint PRIMARY KEY, name text)")
	require.NoError(t, err)
	ts := targets{"app": app, "pos": pos, "pos_eu": posEU, "alerts": nil}

	cfg, err := config.Parse("test.yaml", []byte(targetsPolicy), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	engine := preview.NewEngine(cfg, ts, schema.NewCache(0))
	b := newAppWith(t, targetsPolicy, nil, func(d *web.Deps) { d.Targets, d.Engine = ts, engine })
	a := newAppWith(t, targetsPolicy, nil, onDB(b.db), func(d *web.Deps) { d.Targets = ts })

	// Only admins see the page.
	viewer, _ := b.signedIn("vic", auth.Viewer)
	require.Equal(t, http.StatusForbidden, viewer.get("/admin/targets").StatusCode)

	c, _ := b.signedIn("ada", auth.Admin)
	users := c.get("/admin/users")
	require.Equal(t, "/admin/targets", users.testid("tab-targets").AttrOr("href", ""))

	r := c.get("/admin/targets")
	require.Equal(t, http.StatusOK, r.StatusCode, r.text())
	checkHeaders(t, r, "targets")
	require.Equal(t, "Targets", r.doc().Find(`[data-testid="tab-targets"].active`).Text())

	var rd web.Readiness
	require.NoError(t, json.Unmarshal(c.get("/readyz").body, &rd))
	require.Len(t, rd.Targets, 4)

	rows := r.testid("target-row")
	require.Equal(t, 4, rows.Length())
	row := func(name string) *goquery.Selection {
		return r.doc().Find(`[data-testid="target-row"][data-target="` + name + `"]`)
	}
	for name, st := range rd.Targets {
		s := row(name)
		require.Equal(t, 1, s.Length(), name)
		require.Equal(t, strconv.FormatBool(st.OK), s.AttrOr("data-reachable", ""), name)
		if !st.OK {
			continue
		}
		require.Equal(t, "reachable", s.Find(`[data-testid="target-status"]`).Text(), name)
		version := s.Find(`[data-testid="target-version"]`)
		require.Equal(t, st.ServerVersion, version.AttrOr("title", ""), name)
		require.Regexp(t, `^\d+(\.\d+)*$`, version.Text(), name)
		sch, err := engine.Schema(ctx, name)
		require.NoError(t, err)
		require.Equal(t, sch.Fingerprint, s.Find(`[data-testid="target-fingerprint"]`).AttrOr("title", ""), name)
	}

	// The shared test server has prepared transactions off, the private cluster on.
	var appPrepared int
	require.NoError(t, app.Pool.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&appPrepared))
	require.Equal(t, appPrepared, rd.Targets["app"].MaxPreparedTransactions)
	prepared := func(name string) string { return row(name).Find(`[data-testid="target-prepared"]`).Text() }
	if appPrepared == 0 {
		require.Contains(t, prepared("app"), "not supported")
	}
	require.Contains(t, prepared("pos"), "supported")
	require.NotContains(t, prepared("pos"), "not supported")
	require.Contains(t, prepared("pos"), "max_prepared_transactions = 5")

	// The unreachable target says why, in the words /readyz uses.
	alerts := row("alerts")
	require.Equal(t, "unreachable", alerts.Find(`[data-testid="target-status"]`).Text())
	require.Equal(t, rd.Targets["alerts"].Error, alerts.Find(`[data-testid="target-problem"]`).Text())
	require.Contains(t, alerts.Find(`[data-testid="target-problem"]`).Text(), "127.0.0.1:1")
	require.Zero(t, alerts.Find(`[data-testid="target-fingerprint"]`).Length())

	// How each kind across targets commits.
	mode := func(kind string) string {
		return r.doc().Find(`[data-testid="target-span"][data-kind="`+kind+`"]`).AttrOr("data-mode", "")
	}
	require.Equal(t, "atomic", mode("store"))
	require.Equal(t, "unknown", mode("rule"))
	if appPrepared == 0 {
		require.Equal(t, "ordered", mode("tenant"))
		require.Contains(t, r.doc().Find(`[data-testid="target-span"][data-kind="tenant"]`).Text(), "max_prepared_transactions is 0 on app")
	}

	// Without an engine the page still reports health, without fingerprints.
	plain := a.client()
	_, pw := a.user("ida", auth.Admin)
	require.Equal(t, http.StatusSeeOther, plain.signIn("ida", pw, "").StatusCode)
	r = plain.get("/admin/targets")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, 4, r.testid("target-row").Length())
	require.Zero(t, r.testid("target-fingerprint").Length())

	screenshotTargets(t, b, pw)
}

// screenshotTargets opens the targets page in Chromium from the admin tabs and takes
// screenshots at desktop and phone widths.
func screenshotTargets(t *testing.T, a *app, pw string) {
	t.Helper()
	ctx := webtest.Browser(t, 1280, 900, 2*time.Minute)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	do(chromedp.Navigate(a.srv.URL+"/admin/users"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-name"]`), "ida"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-password"]`), pw),
		chromedp.Click(chromedp.CSS(`[data-testid="signin-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="tab-targets"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="tab-targets"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="targets-table"]`)))
	for _, width := range []int64{1280, 390} {
		do(chromedp.EmulateViewport(width, 900))
		webtest.Screenshot(t, ctx, "", fmt.Sprintf("admin-targets-%d.png", width))
	}
}

func openDB(t *testing.T, url string) *pg.DB {
	t.Helper()
	db, err := pg.Open(context.Background(), url, pg.Options{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/internal/web"
	"github.com/tombstone-console/tombstone/internal/web/webtest"
	"github.com/tombstone-console/tombstone/web/templates"
)

// demoTargets are the demo databases (scale 0.2: ten tenants, acme to wonka plus soylent,
// and bigco with about 10k rows) that the tests of search, preview and requests run against.
type demoTargets struct {
	res *demo.Result
}

// TestOnDemoTargets builds the demo targets once and runs every test that needs real target
// data against them, in parallel; they are dropped when all of them are done.
func TestOnDemoTargets(t *testing.T) {
	t.Parallel()
	d := setupDemo(t)
	for name, test := range map[string]func(*testing.T, *demoTargets){
		"SearchResults":        testSearchResults,
		"PreviewPage":          testPreviewPage,
		"EstimateThenExact":    testEstimateThenExact,
		"LazyNodes":            testLazyNodes,
		"Blocked":              testBlocked,
		"RequestForm":          testRequestForm,
		"NotFoundAndAmbiguous": testNotFoundAndAmbiguous,
		"HostileURLs":          testHostileURLs,
		"AdminPolicy":          testAdminPolicyOnDemo,
		"Browser":              testPreviewBrowser,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, d)
		})
	}
}

func setupDemo(t *testing.T) *demoTargets {
	t.Helper()
	pgtest.Admin(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	opts := demo.Options{AdminURL: pgtest.AdminURL(), Prefix: "webtest_" + hex.EncodeToString(b[:]), Scale: 0.2, BigTenantRows: 10_000}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := demo.Drop(ctx, opts.AdminURL, opts.Prefix); err != nil {
			t.Errorf("drop the demo targets: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := demo.Setup(ctx, opts)
	require.NoError(t, err)
	return &demoTargets{res: res}
}

// config parses the example policy for the demo targets; edit may change it.
func (d *demoTargets) config(t *testing.T, edit func(*config.Config)) *config.Config {
	t.Helper()
	env := d.res.EnvVars()
	env["TOMBSTONE_DATABASE_URL"] = pgtest.AdminURL()
	cfg, err := config.Parse("tombstone.yaml", examples.Policy(), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	require.NoError(t, err)
	if edit != nil {
		edit(cfg)
	}
	return cfg
}

// demoApp is a console on a fresh database with a preview engine over the demo targets.
type demoApp struct {
	*app
	engine *preview.Engine
}

func (d *demoTargets) app(t *testing.T, edit func(*config.Config), opts ...option) *demoApp {
	t.Helper()
	return newEngineApp(t, d.config(t, edit), opts...)
}

// newEngineApp starts a console for cfg with a preview engine over cfg's targets.
func newEngineApp(t *testing.T, cfg *config.Config, opts ...option) *demoApp {
	t.Helper()
	dsns := map[string]string{}
	for name, tg := range cfg.Targets {
		dsns[name] = tg.DSN
	}
	pools := pg.NewPools(dsns, pg.Options{MaxConns: 4, ConnectTimeout: 2 * time.Second})
	t.Cleanup(pools.Close)
	engine := preview.NewEngine(cfg, pools, schema.NewCache(2*time.Second))
	deps := web.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Engine: engine, Targets: pools}
	for _, o := range opts {
		o(&deps)
	}
	if deps.DB == nil {
		deps.DB = pgtest.Fresh(t)
	}
	deps.Config = cfg
	w, err := web.New(deps)
	require.NoError(t, err)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return &demoApp{app: &app{t: t, db: deps.DB, cfg: cfg, srv: srv, web: w}, engine: engine}
}

// exact is the engine's own exact preview of a root, the oracle for the page.
func (a *demoApp) exact(kind, key string) *preview.Preview {
	a.t.Helper()
	ctx := context.Background()
	plan, err := a.engine.Plan(ctx, kind)
	require.NoError(a.t, err)
	root, err := a.engine.FindRoot(ctx, plan, key)
	require.NoError(a.t, err)
	p, err := a.engine.Run(ctx, plan, root.Key)
	require.NoError(a.t, err)
	return p
}

func rowsAttr(s *goquery.Selection) int64 {
	n, _ := strconv.ParseInt(s.AttrOr("data-rows", "-1"), 10, 64)
	return n
}

// countNodes counts the nodes of a tree down to depth maxDepth (the root is depth 0).
func countNodes(n *preview.Node, maxDepth int) int {
	c := 1
	if maxDepth > 0 {
		for _, ch := range n.Children {
			c += countNodes(ch, maxDepth-1)
		}
	}
	return c
}

func testPreviewPage(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	c, _ := a.signedIn("rita", auth.Requester)
	want := a.exact("tenant", "1")

	r := c.get("/kinds/tenant/1?exact=1")
	require.Equal(t, http.StatusOK, r.StatusCode, r.text())
	checkHeaders(t, r, "preview")
	doc := r.doc()
	q := func(id string) *goquery.Selection { return doc.Find(`[data-testid="` + id + `"]`) }

	// Header.
	require.Equal(t, "Acme Corporation (acme)", q("root-label").Text())
	require.Equal(t, "tenant", q("root-kind").Text())
	require.Equal(t, "app", q("root-target").Text())
	require.Equal(t, "delete", strings.TrimSpace(q("root-action").Text()))
	require.Equal(t, "1", q("root-key").Text())
	require.Equal(t, "true", q("preview").AttrOr("data-exact", ""))
	require.Zero(t, q("estimate-badge").Length())

	// Summary cards match the engine's preview.
	require.Equal(t, want.Totals.Changed(), rowsAttr(q("card-changed")))
	require.Equal(t, want.Totals.Delete, rowsAttr(q("card-delete")))
	require.Equal(t, want.Totals.Soft, rowsAttr(q("card-soft")))
	require.Equal(t, want.Totals.Detach, rowsAttr(q("card-detach")))
	require.Equal(t, want.Totals.Keep, rowsAttr(q("card-keep")))
	require.Equal(t, want.Totals.Block, rowsAttr(q("card-block")))
	require.Contains(t, q("card-changed").Find(".card-value").Text(), preview.Thousands(want.Totals.Changed()))
	require.Greater(t, want.Totals.Changed(), int64(1000), "acme is big enough to need a confirmation")

	// Multi-target: one line per target, and the grand total.
	require.Len(t, want.Targets, 3)
	targets := q("target-total")
	require.Equal(t, 3, targets.Length())
	for i, tt := range want.Targets {
		row := targets.Eq(i)
		require.Equal(t, tt.Target, row.AttrOr("data-target", ""))
		require.Equal(t, tt.Totals.Changed(), rowsAttr(row))
	}
	require.Equal(t, want.Totals.Changed(), rowsAttr(q("grand-total")))

	// Per-table summary: every line, with thousands separators.
	rows := q("summary-row")
	require.Equal(t, len(want.Summary), rows.Length())
	for _, l := range want.Summary {
		row := doc.Find(`[data-testid="summary-row"][data-target="` + l.Target + `"][data-table="` + l.Table + `"][data-action="` + l.Action + `"]`)
		require.Equal(t, 1, row.Length(), l)
		require.Equal(t, l.Rows, rowsAttr(row))
		require.Equal(t, preview.Thousands(l.Rows), row.Find("td.num").First().Text())
		require.Equal(t, l.Action, row.Find(`[data-testid="action-badge"]`).Text())
	}
	require.Equal(t, 3, q("summary-group").Length(), "a section per target")

	// Tree: every node is on the page (deep ones as lazy placeholders), the first two levels
	// are open, and nodes show table, via, action and count.
	nodes := q("tree-node")
	require.Equal(t, countNodes(want.Tree, 4), nodes.Length(), "down to the first lazy level")
	root := nodes.First()
	require.Equal(t, "0", root.AttrOr("data-node", ""))
	_, open := root.Attr("open")
	require.True(t, open)
	child := doc.Find(`[data-testid="tree-node"][data-depth="1"]`).First()
	_, open = child.Attr("open")
	require.True(t, open, "the first two levels are open")
	_, open = doc.Find(`[data-testid="tree-node"][data-depth="2"]`).First().Attr("open")
	require.False(t, open)
	repos := doc.Find(`[data-testid="tree-node"][data-depth="1"][data-table="public.repos"]`)
	require.Equal(t, 1, repos.Length())
	require.Contains(t, repos.Find("summary .node-via").First().Text(), "via repos.tenant_id")
	require.Contains(t, repos.Find(`summary [data-testid="node-count"]`).First().Text(), " rows")
	require.Positive(t, repos.Find(`[data-testid="node-sample"]`).First().Find(`[data-testid="sample-row"]`).Length())
	require.Positive(t, doc.Find(`[data-testid="tree-node"][data-lazy="true"]`).Length(), "deep nodes load lazily")

	// Warnings.
	require.Equal(t, len(want.Warnings), q("warning").Length())
	require.Positive(t, len(want.Warnings))

	// The request form: the digest shown, a confirmation for more than 1,000 rows.
	require.Equal(t, "ready", q("request-panel").AttrOr("data-state", ""))
	require.Equal(t, want.Digest, q("request-digest").AttrOr("value", ""))
	require.Equal(t, 1, q("request-confirm").Length())
	require.Equal(t, "/kinds/tenant/1/request", q("request-form").AttrOr("action", ""))

	// A search term finds the root and redirects to its key; the kind's own path goes to
	// its search tab.
	r = c.get("/kinds/tenant/acme")
	require.Equal(t, http.StatusFound, r.StatusCode)
	require.Equal(t, "/kinds/tenant/1", r.location())
	r = c.get("/kinds/tenant")
	require.Equal(t, http.StatusFound, r.StatusCode)
	require.Equal(t, "/?kind=tenant", r.location())

	// A repo is soft-deleted and small: no confirmation needed.
	rp := a.exact("repo", "1")
	r = c.get("/kinds/repo/1?exact=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "soft", strings.TrimSpace(r.testid("root-action").Text()))
	require.Equal(t, rp.Totals.Soft, rowsAttr(r.testid("card-soft")))
	require.Zero(t, r.testid("targets").Length(), "a single-target kind has no per-target section")
	if rp.Totals.Changed() <= 1000 {
		require.Zero(t, r.testid("request-confirm").Length())
	}
}

func testEstimateThenExact(t *testing.T, d *demoTargets) {
	a := d.app(t, nil, func(deps *web.Deps) { deps.ExactWait = -1 })
	c, _ := a.signedIn("erin", auth.Requester)

	// The first paint carries planner estimates and asks htmx for the exact counts.
	r := c.get("/kinds/tenant/bigco")
	require.Equal(t, http.StatusFound, r.StatusCode)
	page := r.location()
	r = c.get(page)
	require.Equal(t, http.StatusOK, r.StatusCode)
	region := r.testid("preview-region")
	require.Equal(t, "false", region.AttrOr("data-exact", ""))
	require.Equal(t, page+"/exact", region.AttrOr("hx-get", ""))
	require.Equal(t, "load", region.AttrOr("hx-trigger", ""))
	require.Equal(t, 1, r.testid("estimate-badge").Length())
	require.Contains(t, r.testid("card-changed").Find(".card-value").Text(), "≈")
	require.Equal(t, page+"?exact=1", r.testid("exact-link").AttrOr("href", ""), "without JavaScript, a link to the exact counts")
	require.Equal(t, "estimate", r.testid("request-panel").AttrOr("data-state", ""))
	_, disabled := r.doc().Find(`[data-testid="request-form"] fieldset`).Attr("disabled")
	require.True(t, disabled, "no request from an estimate")
	require.Empty(t, r.testid("request-digest").AttrOr("value", "x"))
	require.Positive(t, r.testid("tree-node").Length())
	require.Positive(t, r.testid("summary-row").Length())

	// htmx gets only the exact region.
	want := a.exact("tenant", "bigco")
	r = c.get(page+"/exact", "HX-Request", "true")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NotContains(t, r.text(), "<html")
	require.Zero(t, r.testid("topbar").Length())
	region = r.testid("preview-region")
	require.Equal(t, "true", region.AttrOr("data-exact", ""))
	_, hx := region.Attr("hx-get")
	require.False(t, hx, "the exact region does not ask again")
	require.Equal(t, want.Digest, r.testid("request-digest").AttrOr("value", ""))
	require.Equal(t, want.Totals.Changed(), rowsAttr(r.testid("card-changed")))
	require.Equal(t, "ready", r.testid("request-panel").AttrOr("data-state", ""))

	// Without htmx, /exact is the page that waits; and now that it is cached, the page
	// itself is exact at once.
	r = c.get(page + "/exact")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, page+"?exact=1", r.location())
	r = c.get(page)
	require.Equal(t, "true", r.testid("preview-region").AttrOr("data-exact", ""))
	require.Equal(t, want.Digest, r.testid("request-digest").AttrOr("value", ""))
}

func testLazyNodes(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	c, _ := a.signedIn("lara", auth.Viewer)
	want := a.exact("tenant", "2")
	r := c.get("/kinds/tenant/2?exact=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	lazy := r.doc().Find(`[data-testid="tree-node"][data-lazy="true"]`)
	require.Positive(t, lazy.Length())
	first := lazy.First()
	depth, err := strconv.Atoi(first.AttrOr("data-depth", ""))
	require.NoError(t, err)
	require.Greater(t, depth, 3)
	nodeURL := first.AttrOr("hx-get", "")
	require.Regexp(t, `^/kinds/tenant/2/node/\d+$`, nodeURL)
	require.Equal(t, "toggle once", first.AttrOr("hx-trigger", ""))
	require.Equal(t, nodeURL, first.Find(`[data-testid="branch-link"]`).AttrOr("href", ""), "without JavaScript, a link")
	require.Equal(t, "/kinds/tenant/2?tree=full", r.testid("full-tree-link").AttrOr("href", ""))

	// The tree is rendered once per preview and URL; the second page shows the same HTML.
	tree, err := r.testid("tree").Html()
	require.NoError(t, err)
	again, err := c.get("/kinds/tenant/2?exact=1").testid("tree").Html()
	require.NoError(t, err)
	require.Equal(t, tree, again)

	// htmx gets the node, open, with its rows.
	id, _ := strconv.Atoi(first.AttrOr("data-node", ""))
	var node *preview.Node
	var find func(n *preview.Node)
	find = func(n *preview.Node) {
		if n.ID == id {
			node = n
		}
		for _, ch := range n.Children {
			find(ch)
		}
	}
	find(want.Tree)
	require.NotNil(t, node)
	f := c.get(nodeURL, "HX-Request", "true")
	require.Equal(t, http.StatusOK, f.StatusCode)
	require.NotContains(t, f.text(), "<html")
	got := f.doc().Find(`[data-testid="tree-node"]`).First()
	require.Equal(t, strconv.Itoa(id), got.AttrOr("data-node", ""))
	_, open := got.Attr("open")
	require.True(t, open)
	require.Equal(t, "", got.AttrOr("data-lazy", ""))
	require.Equal(t, node.Rows, rowsAttr(got))
	require.Equal(t, len(node.Sample), got.Children().Filter(".node-body").ChildrenFiltered(`[data-testid="node-sample"], .table-wrap`).Find(`[data-testid="sample-row"]`).Length())

	// Without htmx, the branch has a page of its own.
	p := c.get(nodeURL)
	require.Equal(t, http.StatusOK, p.StatusCode)
	require.Equal(t, 1, p.testid("topbar").Length())
	require.Equal(t, strconv.Itoa(id), p.testid("tree-node").First().AttrOr("data-node", ""))

	// ?tree=full renders every node in place.
	full := c.get("/kinds/tenant/2?tree=full")
	require.Zero(t, full.doc().Find(`[data-lazy="true"]`).Length())
	require.Equal(t, countNodes(want.Tree, 1000), full.testid("tree-node").Length())

	// Unknown nodes.
	require.Equal(t, http.StatusNotFound, c.get("/kinds/tenant/2/node/99999").StatusCode)
	require.Equal(t, http.StatusNotFound, c.get("/kinds/tenant/2/node/abc").StatusCode)
	require.Equal(t, http.StatusNotFound, c.get("/kinds/tenant/2/node/-1").StatusCode)
}

// blockedConfig protects webhooks, as the example protects merchants: reaching any webhook
// blocks deleting its tenant.
func blockedConfig(cfg *config.Config) { cfg.Tables["webhooks"] = &config.TableRule{Protect: true} }

func testBlocked(t *testing.T, d *demoTargets) {
	a := d.app(t, blockedConfig)
	c, _ := a.signedIn("bea", auth.Requester)
	want := a.exact("tenant", "1")
	require.True(t, want.Blocked(), "acme has webhooks")

	r := c.get("/kinds/tenant/1?exact=1")
	require.Equal(t, http.StatusOK, r.StatusCode)
	blockers := r.testid("blocker")
	require.Equal(t, len(want.Blockers), blockers.Length())
	require.Equal(t, want.Blockers[0].Table, blockers.First().AttrOr("data-table", ""))
	require.Contains(t, blockers.First().Text(), want.Blockers[0].Path)
	require.Contains(t, blockers.First().Text(), want.Blockers[0].Reason)
	require.Equal(t, 1, r.testid("blockers").Find(".banner-block").Length())
	require.Equal(t, want.Totals.Block, rowsAttr(r.testid("card-block")))
	require.True(t, r.testid("card-block").HasClass("card-alarm"), "a dark red card")
	require.Equal(t, "blocked", r.testid("request-panel").AttrOr("data-state", ""))
	require.Zero(t, r.testid("request-form").Length(), "no form for a blocked preview")

	// Posting anyway is refused.
	form := url.Values{"digest": {want.Digest}, "reason": {"Customer asked us to delete everything"}, "confirm": {want.Root.Label}}
	r = c.post("/kinds/tenant/1/request", form)
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.Contains(t, r.testid("preview-problem").Text(), "blocker")
	n, err := a.db.Bun.NewSelect().Table("requests").Count(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
}

func testRequestForm(t *testing.T, d *demoTargets) {
	ctx := context.Background()
	a := d.app(t, nil)
	viewer, _ := a.signedIn("vic", auth.Viewer)
	req, requester := a.signedIn("rosa", auth.Requester)
	want := a.exact("tenant", "3")
	path := "/kinds/tenant/3"
	good := url.Values{"digest": {want.Digest}, "reason": {"Contract ended; customer asked for erasure"},
		"ticket_url": {"https://tickets.example.com/OPS-42"}, "confirm": {want.Root.Label}}

	// A viewer sees why there is no form, and cannot post one.
	r := viewer.get(path + "?exact=1")
	require.Equal(t, "role", r.testid("request-panel").AttrOr("data-state", ""))
	require.Contains(t, r.testid("request-role").Text(), "viewer")
	require.Zero(t, r.testid("request-form").Length())
	r = viewer.post(path+"/request", good)
	require.Equal(t, http.StatusForbidden, r.StatusCode)

	// A short reason: 422, the form again with the message and the values entered.
	bad := url.Values{"digest": {want.Digest}, "reason": {"too short"}, "ticket_url": {"https://tickets.example.com/OPS-42"}, "confirm": {want.Root.Label}}
	r = req.post(path+"/request", bad)
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	checkHeaders(t, r, "422 request form")
	require.Contains(t, r.testid("error-reason").Text(), "at least 10 characters")
	require.Equal(t, "too short", r.testid("request-reason").Text())
	require.Equal(t, "https://tickets.example.com/OPS-42", r.testid("request-ticket").AttrOr("value", ""))
	require.Equal(t, "true", r.testid("request-reason").AttrOr("aria-invalid", ""))

	// A bad ticket URL and a wrong confirmation are named too.
	r = req.post(path+"/request", url.Values{"digest": {want.Digest}, "reason": good["reason"], "ticket_url": {"javascript:alert(1)"}, "confirm": {want.Root.Label}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.NotEmpty(t, r.testid("error-ticket_url").Text())
	r = req.post(path+"/request", url.Values{"digest": {want.Digest}, "reason": good["reason"], "confirm": {"initech"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.Contains(t, r.testid("error-confirm").Text(), want.Root.Label)
	require.Equal(t, "initech", r.testid("request-confirm").AttrOr("value", ""))

	// A digest the server does not compute (the data changed): 409 with the new preview.
	stale := url.Values{}
	for k, v := range good {
		stale[k] = v
	}
	stale.Set("digest", strings.Repeat("0", 64))
	r = req.post(path+"/request", stale)
	require.Equal(t, http.StatusConflict, r.StatusCode)
	require.Contains(t, r.testid("preview-problem").Text(), "data changed since you loaded this page")
	require.Equal(t, want.Digest, r.testid("request-digest").AttrOr("value", ""), "the new preview's digest")
	require.Equal(t, good.Get("reason"), r.testid("request-reason").Text())
	n, err := a.db.Bun.NewSelect().Table("requests").Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing was requested")

	// Success: 303 to the request, which froze the preview the form showed.
	r = req.post(path+"/request", good)
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.text())
	m := regexp.MustCompile(`^/requests/(\d+)$`).FindStringSubmatch(r.location())
	require.NotNil(t, m, r.location())
	id, _ := strconv.ParseInt(m[1], 10, 64)
	rq, err := approval.Get(ctx, a.db.Bun, id)
	require.NoError(t, err)
	require.Equal(t, want.Digest, rq.Digest)
	require.Equal(t, requester.ID, rq.RequesterID)
	require.Equal(t, "3", rq.RootKey)
	require.Equal(t, "tenant", rq.Kind)
	require.Equal(t, good.Get("reason"), rq.Reason)
	require.Equal(t, good.Get("ticket_url"), rq.TicketURL)
	require.Equal(t, approval.Pending, rq.State)
	require.Equal(t, want.Totals.Changed(), rq.RowsTotal)

	// A second request for the same root: 409 linking the open one.
	r = req.post(path+"/request", good)
	require.Equal(t, http.StatusConflict, r.StatusCode)
	require.Equal(t, "/requests/"+m[1], r.testid("problem-link").AttrOr("href", ""))
	// And the page now links it instead of offering the form.
	r = req.get(path + "?exact=1")
	require.Equal(t, "open", r.testid("request-panel").AttrOr("data-state", ""))
	require.Equal(t, "/requests/"+m[1], r.testid("open-request-link").AttrOr("href", ""))
}

func testNotFoundAndAmbiguous(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	c, _ := a.signedIn("nina", auth.Viewer)

	// Not found: 404 with the closest matches as links.
	r := c.get("/kinds/tenant/acm")
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	checkHeaders(t, r, "404 root")
	require.Contains(t, r.testid("error-message").Text(), `No tenant matches "acm"`)
	links := r.testid("problem-link")
	require.Positive(t, links.Length())
	require.Equal(t, "Acme Corporation (acme)", links.First().Text())
	require.Equal(t, "/kinds/tenant/1", links.First().AttrOr("href", ""))

	// Unknown kind: 404 listing the kinds.
	r = c.get("/kinds/planet/1")
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	var kinds []string
	r.testid("problem-link").Each(func(_ int, s *goquery.Selection) { kinds = append(kinds, s.AttrOr("href", "")) })
	require.Equal(t, []string{"/?kind=repo", "/?kind=site", "/?kind=tenant"}, kinds)
	require.Equal(t, http.StatusNotFound, c.get("/kinds/planet").StatusCode)
	require.Equal(t, http.StatusNotFound, c.get("/kinds/planet/1/exact").StatusCode)

	// Several matches: the list to choose from (every tenant has a repo named "website").
	plan, err := a.engine.Plan(context.Background(), "repo")
	require.NoError(t, err)
	_, err = a.engine.FindRoot(context.Background(), plan, "website")
	var amb *preview.AmbiguousError
	require.ErrorAs(t, err, &amb)
	r = c.get("/kinds/repo/website")
	require.Equal(t, http.StatusMultipleChoices, r.StatusCode)
	require.Equal(t, len(amb.Matches), r.testid("problem-link").Length())
	require.Equal(t, "/kinds/repo/"+amb.Matches[0].KeyString(), r.testid("problem-link").First().AttrOr("href", ""))
}

func testHostileURLs(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	c, _ := a.signedIn("hugo", auth.Requester)
	cases := map[string]int{
		"/kinds/%3Cscript%3Ealert(1)%3C%2Fscript%3E/1":       http.StatusNotFound,
		"/kinds/tenant/%3Cscript%3Ealert(1)%3C%2Fscript%3E":  http.StatusNotFound,
		"/kinds/tenant/%27%3B%20drop%20table%20tenants%3B--": http.StatusNotFound,
		"/kinds/tenant/1%27%20OR%20%271%27%3D%271":           http.StatusNotFound,
		"/kinds/tenant/%00":                                             http.StatusNotFound,
		"/kinds/tenant/1%00":                                            http.StatusNotFound,
		"/kinds/tenant/%FF%FE":                                          http.StatusNotFound,
		"/kinds/tenant/" + strings.Repeat("a", 5000):                    http.StatusNotFound,
		"/kinds/tenant/..%2F..%2Fadmin%2Fusers":                         http.StatusNotFound,
		"/kinds/tenant/99999999999999999999999":                         http.StatusNotFound,
		"/kinds/tenant/1,2":                                             http.StatusNotFound,
		"/kinds/tenant/%25":                                             http.StatusNotFound,
		"/kinds/tenant/%5C":                                             http.StatusNotFound,
		"/kinds/__proto__/1":                                            http.StatusNotFound,
		"/kinds/tenant/1/node/1%27":                                     http.StatusNotFound,
		"/kinds/tenant/%E2%80%AEevil":                                   http.StatusNotFound,
		"/kinds/tenant/%3Cscript%3Ealert(1)%3C%2Fscript%3E/node/1":      http.StatusNotFound,
		"/kinds/tenant/%3Cscript%3Ealert(1)%3C%2Fscript%3E/exact?x=%3C": http.StatusNotFound,
	}
	for path, status := range cases {
		r := c.get(path)
		require.Equal(t, status, r.StatusCode, path)
		checkHeaders(t, r, path)
		require.NotContains(t, r.text(), "<script>alert", path)
		require.Zero(t, r.doc().Find("script:not([src])").Length(), path)
	}
	r := c.post("/kinds/tenant/%27%3B%20drop%20table%20tenants%3B--/request", url.Values{"reason": {"x"}})
	require.Equal(t, http.StatusNotFound, r.StatusCode)
	// Nothing was dropped.
	p := a.exact("tenant", "1")
	require.Equal(t, "Acme Corporation (acme)", p.Root.Label)
}

func testAdminPolicyOnDemo(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	c, _ := a.signedIn("ada", auth.Admin)
	r := c.get("/admin/policy")
	require.Equal(t, http.StatusOK, r.StatusCode)
	checkHeaders(t, r, "policy")
	require.Zero(t, r.testid("policy-unreachable").Length())
	require.Equal(t, 3, r.testid("policy-plan").Length())

	tenant := r.doc().Find(`[data-testid="policy-plan"][data-kind="tenant"]`)
	repos := tenant.Find(`[data-testid="plan-table"][data-table="public.repos"]`)
	require.Equal(t, 1, repos.Length())
	require.Equal(t, "delete", repos.Find(`[data-testid="action-badge"]`).First().Text())
	require.Positive(t, tenant.Find(`[data-testid="plan-table"][data-table="public.pos_configurations"]`).Length(), "also links into other targets")

	repo := r.doc().Find(`[data-testid="policy-plan"][data-kind="repo"]`)
	root := repo.Find(`[data-testid="plan-table"][data-table="public.repos"]`)
	require.Equal(t, "soft", root.Find(`[data-testid="action-badge"]`).First().Text())
	require.Equal(t, "deleted_at", root.Find(`[data-testid="plan-tombstone"]`).Text())

	// The lint findings are those of policy check.
	var codes []string
	r.doc().Find(`[data-testid="finding"]`).Each(func(_ int, s *goquery.Selection) { codes = append(codes, s.AttrOr("data-code", "")) })
	require.NotEmpty(t, codes)
	require.Contains(t, r.testid("finding").Text(), "proposals")
}

// testPreviewBrowser signs in with Chromium, searches a demo tenant by typing, opens its
// preview, waits for the exact counts, expands a lazily loaded node and takes a screenshot
// (in a temporary directory). With $TOMBSTONE_SCREENSHOTS set it also saves the search,
// preview (a big tenant and a blocked one) and policy pages at desktop and phone widths
// there, for looking at.
func testPreviewBrowser(t *testing.T, d *demoTargets) {
	a := d.app(t, nil)
	blocked := d.app(t, blockedConfig, onDB(a.db)) // same sessions: one sign-in serves both
	_, pw := a.user("ada", auth.Admin)

	ctx := webtest.Browser(t, 1280, 900, 2*time.Minute)
	base := a.srv.URL
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	eval := func(js string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		require.NoError(t, err)
		return s
	}

	do(chromedp.Navigate(base+"/?kind=tenant"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-name"]`), "ada"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-password"]`), pw),
		chromedp.Click(chromedp.CSS(`[data-testid="signin-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="search"]`)))

	// Type into the search box: htmx swaps the results in, with their badges.
	do(chromedp.SendKeys(chromedp.CSS(`#q`), "corp"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="results-table"]`)))
	require.Contains(t, eval(`document.querySelector('[data-testid="results-table"]').textContent`), "Acme Corporation (acme)")
	require.Contains(t, eval(`document.querySelector('[data-testid="results-table"]').textContent`), "tombstoned")
	all := os.Getenv("TOMBSTONE_SCREENSHOTS") != ""
	shot := func(name string) {
		t.Helper()
		if !all {
			return
		}
		for _, width := range []int64{1280, 390} {
			do(chromedp.EmulateViewport(width, 900))
			webtest.Screenshot(t, ctx, "", fmt.Sprintf("%s-%d.png", name, width))
		}
		do(chromedp.EmulateViewport(1280, 900))
	}
	shot("search")

	// Open the preview: exact counts replace the estimates when they arrive.
	do(chromedp.Click(chromedp.CSS(`[data-testid="result-link"][href="/kinds/tenant/1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview"][data-exact="true"]`)))
	require.Equal(t, "Acme Corporation (acme)", eval(`document.querySelector('[data-testid="root-label"]').textContent`))

	// Expand a deep node: opening it loads its rows and children through htmx.
	id := eval(`(() => {
		const n = document.querySelector('[data-testid="tree-node"][data-lazy="true"]');
		for (let p = n.parentElement; p; p = p.parentElement) { if (p.tagName === 'DETAILS') p.open = true; }
		n.scrollIntoView();
		return n.dataset.node;
	})()`)
	do(chromedp.Click(chromedp.CSS(`[data-node="`+id+`"] > summary`)),
		chromedp.WaitVisible(chromedp.CSS(`details[open][data-node="`+id+`"]:not([data-lazy]) .node-body`)))
	require.Equal(t, "true", eval(`String(document.querySelector('[data-node="`+id+`"]').open)`))
	png := webtest.Screenshot(t, ctx, t.TempDir(), "preview-expanded.png")
	require.FileExists(t, png)
	shot("preview-acme")
	if !all {
		return
	}

	// A big tenant, a blocked one, and the policy page.
	do(chromedp.Navigate(base+"/kinds/tenant/bigco"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview"][data-exact="true"]`)))
	shot("preview-bigco")
	do(chromedp.Navigate(blocked.srv.URL+"/kinds/tenant/1"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="blockers"]`)))
	shot("preview-blocked")
	do(chromedp.Navigate(base+"/admin/policy"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="policy-plan"]`)))
	shot("policy-demo")
}

// TestBreakableEscapes: names with break opportunities are still escaped (catalog names may
// hold anything).
func TestBreakableEscapes(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	require.NoError(t, templates.Breakable(`public.<script>a_b"c`).Render(context.Background(), &b))
	require.Equal(t, `public.<wbr>&lt;script&gt;a_<wbr>b&#34;c`, b.String())
}

package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// The end-to-end suite drives the console as its users do, in Chromium, against the real
// `serve` wiring over fresh demo databases: it covers the cases of CASES.md from search to
// audit export, checks the targets by SQL, runs axe-core on every main page and, with
// TOMBSTONE_SCREENSHOTS set, writes the README's screenshots.

// TestE2ETenantJourney is the whole life of a deletion across the three demo databases, with
// JavaScript: alice finds the tenant acme, previews it, expands the tree and asks for the
// deletion; bob gets the email, follows its link, signs in and approves with the keyboard
// alone; the run shows its progress per target and ends done; the targets lose exactly the
// rows the preview listed; the audit log verifies and its CSV export passes `console audit
// verify --csv`; alice asks for a restore, dana approves it, and every row is back.
func TestE2ETenantJourney(t *testing.T) {
	t.Parallel()
	tenantJourney(t, true)
}

// TestE2ETenantJourneyWithoutJavaScript is the same journey in browsers with script execution
// disabled: plain forms and links only.
func TestE2ETenantJourneyWithoutJavaScript(t *testing.T) {
	t.Parallel()
	tenantJourney(t, false)
}

func tenantJourney(t *testing.T, js bool) {
	step := stepper(t)
	e := startE2E(t)
	step("demo and console started")
	open := e.browserFor(js)
	shots := ""
	if js {
		shots = screenshotDir(t)
	}
	// axe-core runs as a script in the page, so the accessibility pass needs JavaScript.
	a11y := func(p *person, page string) {
		if js {
			p.axe(page)
		}
	}

	// a. alice signs in, searches for the tenant, opens and expands its preview.
	alice := open("alice")
	alice.open("/", `[data-testid="signin-form"]`)
	a11y(alice, "sign-in")
	alice.signIn(`[data-testid="search"]`)
	htmx, err := chromedp.Run(alice.ctx, chromedp.Evaluate[string](`typeof htmx`))
	require.NoError(t, err)
	if js {
		require.Equal(t, "object", htmx, "htmx runs")
	} else {
		require.Equal(t, "undefined", htmx, "no script runs in the page")
	}
	before := e.snapshot()
	step("a: alice signed in")
	alice.search("tenant", "corp")
	a11y(alice, "search")
	alice.shoot(shots, "search")
	summary := alice.preview("(acme)")
	a11y(alice, "preview")
	alice.shoot(shots, "preview")
	targets := map[string]bool{}
	for _, l := range summary {
		targets[l.target] = true
	}
	require.Equal(t, map[string]bool{"app": true, "pos": true, "alerts": true}, targets, "the tenant's preview spans the three demo databases")
	step("a: previewed")
	id := alice.requestDeletion("Customer acme closed its account (ticket OPS-4711); contract ended.")
	require.Equal(t, "pending", alice.attr(`[data-testid="request"]`, "data-state"))
	require.Equal(t, 0, alice.count(`[data-testid="approve"]`), "the requester is not offered Approve")
	require.Equal(t, 1, alice.count(`[data-testid="cancel"]`))

	step("a: alice requested")

	// b. bob gets the email and follows its link; c. he signs in and lands on the request.
	link := e.requestLink("bob@example.com", id)
	bob := open("bob")
	bob.do(chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)))
	require.Contains(t, bob.location(), "/signin?next=%2Frequests%2F"+strconv.FormatInt(id, 10))
	if js {
		bob.signInWithKeyboard()
	} else {
		bob.signIn(`[data-testid="request"]`)
	}
	require.Equal(t, link, bob.location(), "after signing in bob is on the request the email linked to")
	require.Equal(t, "pending", bob.text(`[data-testid="request"] h1 [data-testid="state-badge"]`))
	a11y(bob, "request pending")
	bob.shoot(shots, "request-pending")

	step("c: bob signed in")

	// d. The run shows its progress per target. acme's row is held locked in app meanwhile,
	// so that the run waits (well within the target's lock_timeout) where it can be seen.
	release := e.lockRow("app", "tenants", 1)
	if js {
		bob.pressUntilFocused("approve")
	} else {
		bob.do(chromedp.Click(chromedp.CSS(`[data-testid="approve"]`)))
	}
	bob.expect(`[data-testid="flash"]`)
	require.Contains(t, bob.text(`[data-testid="flash"]`), "You approved request #"+strconv.FormatInt(id, 10))
	bob.waitProgress(3)
	require.Equal(t, "targets done 0/3", bob.text(`[data-testid="progress-phase"]`))
	var shown []string
	for _, a := range bob.attrsAll(`[data-testid="target-progress"]`) {
		shown = append(shown, a["data-target"])
	}
	require.Equal(t, []string{"alerts", "pos", "app"}, shown, "linked services commit first, the root's target last")
	// The per-target progress, photographed whole (kept with the README's screenshots when
	// those are asked for).
	if shots != "" {
		bob.shoot(shots, "request-running")
	} else {
		webtest.Screenshot(t, bob.ctx, t.TempDir(), "request-running.png")
	}
	release()
	bob.waitState("done", 90*time.Second)
	require.Equal(t, "done", bob.attr(`[data-testid="result"]`, "data-state"))
	for target := range targets {
		require.Contains(t, bob.text(`[data-testid="result-tables"]`), "on "+target)
	}
	require.Equal(t, 3, bob.count(`[data-testid="result-target"]`), "the done page shows each target's outcome")
	require.Equal(t, "alerts done pos done app done", bob.text(`[data-testid="result-targets"] tbody`), "every target is done")
	a11y(bob, "request done")
	bob.shoot(shots, "request-done")

	step("d: done")

	// e. The targets lost exactly what the preview showed.
	after := e.snapshot()
	requireApplied(t, before, after, summary)
	require.Zero(t, e.scalar("app", "SELECT count(*) FROM tenants WHERE id = 1"))
	require.Zero(t, e.scalar("pos", "SELECT count(*) FROM pos_configurations WHERE tenant_id = 1"))
	require.Zero(t, e.scalar("pos", "SELECT count(*) FROM pos_transactions WHERE tenant_id = 1"))
	require.Zero(t, e.scalar("alerts", "SELECT count(*) FROM alert_rules WHERE tenant_id = 1"))
	require.Positive(t, e.scalar("app", "SELECT count(*) FROM tenants"), "other tenants stay")

	// f. The audit page shows the request's events with the chain verified.
	bob.open("/audit?request="+strconv.FormatInt(id, 10), `[data-testid="audit-table"]`)
	require.Equal(t, "true", bob.attr(`[data-testid="chain-status"]`, "data-ok"))
	require.Contains(t, bob.text(`[data-testid="chain-status"]`), "Verified through #")
	var actions []string
	for _, a := range bob.attrsAll(`[data-testid="audit-event"]`) {
		actions = append(actions, a["data-action"])
	}
	for _, want := range []string{"requested", "approved", "execution_started", "executed"} {
		require.Contains(t, actions, want)
	}
	bob.open("/audit", `[data-testid="audit-table"]`)
	a11y(bob, "audit")
	bob.open("/requests?tab=all", `[data-testid="requests-table"]`)
	a11y(bob, "requests")

	step("f: audit")

	// g. The CSV export downloads and verifies offline.
	downloads := t.TempDir()
	bob.allowDownloads(downloads)
	bob.open("/audit", `[data-testid="export-csv"]`)
	bob.do(chromedp.Click(chromedp.CSS(`[data-testid="export-csv"]`)))
	csvFile := waitFile(t, downloads)
	var out strings.Builder
	err = run(context.Background(), []string{"audit", "verify", "--csv", csvFile}, Env{Stdout: &out, Stderr: &out})
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "verified")

	step("g: csv verified")

	// h. alice asks for a restore, dana approves it, and every row is back as it was.
	alice.open("/requests/"+strconv.FormatInt(id, 10), `[data-testid="restore-form"]`)
	alice.do(chromedp.SendKeys(chromedp.CSS(`[data-testid="restore-reason"]`), "acme renewed its contract; bring the data back."),
		chromedp.Click(chromedp.CSS(`[data-testid="restore-submit"]`)))
	alice.expect(`[data-testid="request"][data-state="pending"]`)
	rid := alice.requestID()
	require.NotEqual(t, id, rid)
	step("h: restore requested")
	dana := open("dana")
	dana.do(chromedp.Navigate(e.requestLink("dana@example.com", rid)))
	step("h: dana got the email")
	dana.signIn(`[data-testid="approve"]`)
	dana.approve()
	step("h: dana approved")
	dana.waitState("done", 90*time.Second)
	require.Equal(t, before, e.snapshot(), "the restore brings back every row, column and tombstone as they were")
	// The audit log has the whole story now: deletion, export, restore.
	dana.open("/audit", `[data-testid="audit-table"]`)
	require.Equal(t, "true", dana.attr(`[data-testid="chain-status"]`, "data-ok"))
	for _, want := range []string{"exported", "restore_requested", "restored"} {
		require.Equal(t, 1, dana.count(`[data-testid="audit-event"][data-action="`+want+`"]`), want)
	}
	dana.shoot(shots, "audit")

	step("h: restored")

	// The admin pages, for the accessibility pass.
	if js {
		carol := open("carol")
		carol.open("/admin/users", `[data-testid="signin-form"]`)
		carol.signIn(`[data-testid="users-table"]`)
		carol.axe("admin users")
		carol.open("/admin/policy", `[data-testid="policy-kinds"]`)
		carol.axe("admin policy")
	}
	step("admin pages checked")
}

// stepper logs how long each part of a test took.
func stepper(t *testing.T) func(string) {
	start, last := time.Now(), time.Now()
	return func(what string) {
		t.Logf("%-28s %6.1fs (total %6.1fs)", what, time.Since(last).Seconds(), time.Since(start).Seconds())
		last = time.Now()
	}
}

// TestE2ESoftDeleteAndOwnedStore covers the two other demo cases and the two-person rule in
// the browser: a repo soft delete (the repo and its issues get deleted_at, their comments
// is_deleted, objects are kept), and a site deletion that takes the store it owns but not the
// merchant behind it, requested by an approver whose own approval is refused.
func TestE2ESoftDeleteAndOwnedStore(t *testing.T) {
	t.Parallel()
	e := startE2E(t)
	open := e.browserFor(true)
	alice, bob, dana := open("alice"), open("bob"), open("dana")
	for _, p := range []*person{alice, bob, dana} {
		p.open("/", `[data-testid="signin-form"]`)
		p.signIn(`[data-testid="search"]`)
	}

	// The repo acme/website: a soft delete.
	repoID := e.scalar("app", "SELECT r.id FROM repos AS r JOIN tenants AS t ON t.id = r.tenant_id WHERE t.slug = 'acme' AND r.slug = 'website'")
	objects := e.scalar("app", "SELECT count(*) FROM objects WHERE repo_id = $1", repoID)
	require.Positive(t, objects)
	before := e.snapshot()
	summary := alice.findAndPreview("repo", "acme/website", "acme/website")
	id := alice.requestDeletion("The acme/website repo was moved elsewhere; hide it and keep its history.")
	bob.open("/requests/"+strconv.FormatInt(id, 10), `[data-testid="approve"]`)
	bob.approve()
	bob.waitState("done", 90*time.Second)
	after := e.snapshot()
	requireApplied(t, before, after, summary)
	require.Equal(t, int64(1), e.scalar("app", "SELECT count(*) FROM repos WHERE id = $1 AND deleted_at IS NOT NULL", repoID))
	require.Zero(t, e.scalar("app", "SELECT count(*) FROM issues WHERE repo_id = $1 AND deleted_at IS NULL", repoID))
	require.Positive(t, e.scalar("app", "SELECT count(*) FROM issues WHERE repo_id = $1", repoID), "issues are tombstoned, not deleted")
	require.Zero(t, e.scalar("app", "SELECT count(*) FROM issue_comments AS c JOIN issues AS i ON i.id = c.issue_id WHERE i.repo_id = $1 AND NOT c.is_deleted", repoID))
	require.Equal(t, objects, e.scalar("app", "SELECT count(*) FROM objects WHERE repo_id = $1", repoID), "objects are kept")
	require.Equal(t, before["app public.objects"], after["app public.objects"])

	// The site acme-store2 owns its store: both go, the merchant stays. bob asks for it, and
	// the console refuses his own approval.
	storeID := e.scalar("app", "SELECT store_id FROM hosted_sites WHERE subdomain = 'acme-store2'")
	merchantID := e.scalar("app", "SELECT merchant_id FROM stores WHERE id = $1", storeID)
	require.Equal(t, int64(1), e.scalar("app", "SELECT count(*) FROM hosted_sites WHERE store_id = $1", storeID), "the store belongs to this site alone")
	before = e.snapshot()
	summary = bob.findAndPreview("site", "acme-store2", "acme-store2")
	id = bob.requestDeletion("Store 2 of acme closed; free the subdomain acme-store2.")
	require.Equal(t, 0, bob.count(`[data-testid="approve"]`), "the requester is not offered Approve, approver or not")
	require.Equal(t, 1, bob.count(`[data-testid="cancel"]`))
	// He posts the approval anyway, as a hand-made form in his signed-in browser would.
	bob.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = location.pathname + "/approve";
		const d = document.createElement("input");
		d.type = "hidden"; d.name = "digest"; d.value = document.querySelector('[data-testid="digest"]').title;
		f.append(d);
		document.body.append(f);
		f.submit();
	})()`), chromedp.WaitVisible(chromedp.CSS(`[data-testid="error-page"]`)))
	require.Equal(t, "403", bob.attr(`[data-testid="error-page"]`, "data-status"))
	require.Contains(t, bob.text(`[data-testid="error-message"]`), "someone else must approve it")
	bob.open("/audit?request="+strconv.FormatInt(id, 10), `[data-testid="audit-table"]`)
	require.Equal(t, 1, bob.count(`[data-testid="audit-event"][data-action="self_approval_refused"]`))
	bob.open("/requests/"+strconv.FormatInt(id, 10), `[data-testid="request"]`)
	require.Equal(t, "pending", bob.attr(`[data-testid="request"]`, "data-state"))

	dana.open("/requests/"+strconv.FormatInt(id, 10), `[data-testid="approve"]`)
	dana.approve()
	dana.waitState("done", 90*time.Second)
	after = e.snapshot()
	requireApplied(t, before, after, summary)
	require.Zero(t, e.scalar("app", "SELECT count(*) FROM hosted_sites WHERE subdomain = 'acme-store2'"))
	require.Zero(t, e.scalar("app", "SELECT count(*) FROM stores WHERE id = $1", storeID), "the owned store is deleted with its site")
	require.Equal(t, int64(1), e.scalar("app", "SELECT count(*) FROM merchants WHERE id = $1", merchantID), "the merchant stays")
	require.Equal(t, before["app public.merchants"], after["app public.merchants"])
}

// summaryLine is one line of a preview's per-table summary, as the page shows it.
type summaryLine struct {
	target, table, action string
	rows                  int64
}

// search looks for query on kind's search tab and waits for the results: with JavaScript
// htmx searches as you type (and the URL follows), without it the form is sent.
func (p *person) search(kind, query string) {
	p.t.Helper()
	p.open("/?kind="+kind, `[data-testid="search-q"]`)
	p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid="search-q"]`), query))
	if !p.js {
		p.do(chromedp.Click(chromedp.CSS(`[data-testid="search-form"] button[type="submit"]`)))
	}
	p.do(chromedp.WaitVisible(chromedp.CSS(`[data-testid="results-table"]`)))
	require.Contains(p.t, p.location(), "q=")
}

// preview opens the search result whose label contains label, waits for the exact counts,
// expands the tree and returns the preview's summary.
func (p *person) preview(label string) []summaryLine {
	p.t.Helper()
	p.do(chromedp.Click(`//a[@data-testid="result-link"][contains(., "` + label + `")]`))
	p.expect(`[data-testid="preview"]`)
	if p.attr(`[data-testid="preview-region"]`, "data-exact") != "true" {
		if !p.js {
			// Without JavaScript the estimate notice links to the exact preview.
			p.do(chromedp.Click(chromedp.CSS(`[data-testid="exact-link"]`)))
		}
		p.expect(`[data-testid="preview-region"][data-exact="true"]`)
	}
	p.expandTree()

	var out []summaryLine
	for _, a := range p.attrsAll(`[data-testid="summary-row"]`) {
		n, err := strconv.ParseInt(a["data-rows"], 10, 64)
		require.NoError(p.t, err)
		out = append(out, summaryLine{target: a["data-target"], table: a["data-table"], action: a["data-action"], rows: n})
	}
	require.NotEmpty(p.t, out)
	return out
}

// findAndPreview searches and opens the preview in one go.
func (p *person) findAndPreview(kind, query, label string) []summaryLine {
	p.t.Helper()
	p.search(kind, query)
	return p.preview(label)
}

// expandTree opens a closed node of the cascade and, where the tree loads deep branches on
// demand, one of those: with htmx in place, without JavaScript on the branch's own page.
func (p *person) expandTree() {
	p.t.Helper()
	if closed := p.attrsAll(`[data-testid="tree-node"]:not([open]):not([data-lazy])`); len(closed) > 0 {
		sel := `[data-testid="tree-node"][data-node="` + closed[0]["data-node"] + `"]`
		p.openNode(closed[0]["data-node"])
		p.do(chromedp.WaitVisible(chromedp.CSS(sel + `[open] > .node-body`)))
	}
	lazy := p.attrsAll(`[data-testid="tree-node"][data-lazy="true"]`)
	if len(lazy) == 0 {
		return
	}
	node := lazy[0]["data-node"]
	sel := `[data-testid="tree-node"][data-node="` + node + `"]`
	p.openNode(node)
	if p.js {
		p.do(chromedp.WaitVisible(chromedp.CSS(sel + `:not([data-lazy])[open] > .node-body`)))
		require.NotEmpty(p.t, p.attr(sel, "data-rows"), "the branch was loaded")
		return
	}
	p.do(chromedp.Click(chromedp.CSS(sel+` [data-testid="branch-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="tree"] `+sel+`[open]`)))
	require.NotEmpty(p.t, p.attr(sel, "data-rows"), "the branch page shows the node")
	p.do(chromedp.NavigateBack(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="preview"]`)))
}

// openNode opens a node of the tree by clicking its summary, and those of its closed
// ancestors first, outermost first, as a reader would.
func (p *person) openNode(node string) {
	p.t.Helper()
	xp := `//details[@data-node="` + node + `"]/ancestor-or-self::details[not(@open)]`
	nodes, err := chromedp.Run(p.ctx, chromedp.Nodes(xp, chromedp.AtLeast(0)))
	require.NoError(p.t, err)
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.AttributeValue("data-node"))
	}
	for _, id := range ids {
		p.do(chromedp.Click(chromedp.CSS(`[data-testid="tree-node"][data-node="` + id + `"] > summary`)))
	}
}

// requestDeletion fills in the request form under the preview the browser shows (typing the
// root's label when the form asks for it) and returns the new request's number.
func (p *person) requestDeletion(reason string) int64 {
	p.t.Helper()
	p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid="request-reason"]`), reason))
	if p.count(`[data-testid="request-confirm"]`) > 0 {
		p.do(chromedp.SendKeys(chromedp.CSS(`[data-testid="request-confirm"]`), p.text(`.confirm-label`)))
	}
	p.do(chromedp.Click(chromedp.CSS(`[data-testid="request-submit"]`)))
	p.expect(`[data-testid="request"]`)
	return p.requestID()
}

// requireApplied checks the targets after a run against the preview's summary: each table
// lost exactly its deleted rows and gained exactly its tombstones, detached tables changed
// without losing rows, and every table the preview did not change is untouched.
func requireApplied(t *testing.T, before, after map[string]tableState, summary []summaryLine) {
	t.Helper()
	type change struct{ del, soft, detach int64 }
	changes := map[string]*change{}
	for _, l := range summary {
		table := l.table
		if !strings.Contains(table, ".") {
			table = "public." + table
		}
		key := l.target + " " + table
		require.Contains(t, before, key, "the summary names a table of the targets")
		c := changes[key]
		if c == nil {
			c = &change{}
			changes[key] = c
		}
		switch l.action {
		case "delete":
			c.del += l.rows
		case "soft":
			c.soft += l.rows
		case "detach":
			c.detach += l.rows
		case "keep":
		default:
			t.Fatalf("unexpected action %q for %s in a request that ran", l.action, key)
		}
	}
	require.Equal(t, len(before), len(after), "no table appeared or vanished")
	for key, b := range before {
		a := after[key]
		c := changes[key]
		if c == nil || (c.del == 0 && c.soft == 0 && c.detach == 0) {
			require.Equal(t, b, a, "%s is not changed by the preview, and is untouched", key)
			continue
		}
		require.Equal(t, b.Rows-c.del, a.Rows, "%s lost exactly the previewed rows", key)
		if c.soft > 0 {
			require.Equal(t, b.Tombstoned+c.soft, a.Tombstoned, "%s gained exactly the previewed tombstones", key)
		}
		require.NotEqual(t, b.Hash, a.Hash, "%s changed", key)
	}
}

// approve presses Approve on the request page the browser shows.
func (p *person) approve() {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(`[data-testid="approve"]`)))
	p.expect(`[data-testid="flash"]`)
	require.Contains(p.t, p.text(`[data-testid="flash"]`), "You approved request #")
}

package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/web"
)

// rqPreview is a hand-made exact preview of deleting one tenant: the tenant, its users and
// their projects, with a detached audit column.
func rqPreview(kind, key, label string) *preview.Preview {
	digest := make([]byte, 32)
	_, _ = rand.Read(digest)
	return &preview.Preview{
		Kind: kind, Target: "app", Action: "delete",
		Root: preview.Root{Table: "public.tenants", Key: key, Keys: []string{key}, Label: label},
		Summary: []preview.SummaryLine{
			{Target: "app", Table: "public.tenants", Action: "delete", Rows: 1},
			{Target: "app", Table: "public.users", Action: "delete", Rows: 1200},
			{Target: "app", Table: "public.audit_notes", Action: "detach", Rows: 3},
		},
		Totals: preview.Totals{Delete: 1201, Detach: 3, Tables: 3},
		Tree: &preview.Node{ID: 1, Target: "app", Table: "public.tenants", Action: "delete", Rule: "root", Rows: 1,
			Sample: []preview.Row{{Key: key, Label: label}},
			Children: []*preview.Node{
				{ID: 2, Target: "app", Table: "public.users", Via: "tenant_id", Action: "delete", Rule: "follow", Rows: 1200,
					Sample: []preview.Row{{Key: "7", Label: "ada@" + key + ".example", Values: []preview.Column{{Name: "email", Value: "ada@" + key + ".example"}}}}},
				{ID: 3, Target: "app", Table: "public.audit_notes", Via: "tenant_id", Action: "detach", Rule: "edges", Rows: 3},
			}},
		Digest: hex.EncodeToString(digest), PolicyHash: "policy-hash", Exact: true, At: time.Now().UTC(),
	}
}

// rqCreate opens a request as u for a root of kind.
func (a *app) rqCreate(u *auth.User, kind, key, label string) *approval.Request {
	a.t.Helper()
	r, err := approval.New(a.cfg).Create(context.Background(), a.db.Bun, approval.CreateInput{
		Actor: approval.Actor{ID: u.ID, Name: u.Name}, Preview: rqPreview(kind, key, label),
		Reason: "Customer " + label + " asked to close the account (GDPR art. 17).", TicketURL: "https://tickets.example/T-" + key,
	})
	require.NoError(a.t, err)
	return r
}

// rqGet reads a request back.
func (a *app) rqGet(id int64) *approval.Request {
	a.t.Helper()
	r, err := approval.Get(context.Background(), a.db.Bun, id)
	require.NoError(a.t, err)
	return r
}

// rqEvents lists a request's audit events with action.
func (a *app) rqEvents(id int64, action audit.Action) []audit.Event {
	a.t.Helper()
	evs, _, err := audit.List(context.Background(), a.db.Bun, audit.Filter{RequestID: id, Action: action}, 0, audit.MaxPage)
	require.NoError(a.t, err)
	return evs
}

func reqPath(id int64, suffix string) string {
	return "/requests/" + strconv.FormatInt(id, 10) + suffix
}

// rqFetch sends a bodiless request with the given method.
func (c *client) rqFetch(m, p string, headers ...string) *response {
	c.a.t.Helper()
	req, err := http.NewRequest(m, c.a.srv.URL+p, nil)
	require.NoError(c.a.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// rqClock is an adjustable time source for the server.
type rqClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *rqClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *rqClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func withRqClock(c *rqClock) option { return func(d *web.Deps) { d.Now = c.Now } }

func rqRowIDs(r *response) []string {
	var ids []string
	r.testid("request-row").Each(func(_ int, s *goquery.Selection) { ids = append(ids, s.AttrOr("data-request", "")) })
	return ids
}

func rqItoa(id int64) string { return strconv.FormatInt(id, 10) }

func TestRequestsListTabsFiltersAndBadge(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, bobU := a.signedIn("bob", auth.Approver)
	carol, _ := a.signedIn("carol", auth.Approver)
	root, _ := a.signedIn("root", auth.Admin)

	r1 := a.rqCreate(aliceU, "tenant", "1", "Acme Corporation (acme)")
	r2 := a.rqCreate(aliceU, "repo", "9", "acme/widgets")
	r3 := a.rqCreate(bobU, "tenant", "2", "Globex (globex)")

	// The nav badge counts what each user can approve now, on every page.
	for _, c := range []struct {
		who  *client
		want string
	}{{bob, "2"}, {carol, "3"}} {
		for _, p := range []string{"/", "/requests", reqPath(r1.ID, ""), "/audit"} {
			r := c.who.get(p)
			require.Equal(t, http.StatusOK, r.StatusCode, p)
			require.Equal(t, c.want, strings.TrimSpace(r.testid("awaiting-count").Text()), p)
		}
	}
	require.Zero(t, alice.get("/").testid("awaiting-count").Length(), "a requester approves nothing")
	require.Zero(t, root.get("/").testid("awaiting-count").Length(), "an admin approves nothing")

	// An approver lands on "Awaiting me"; others on "All".
	r := bob.get("/requests")
	require.Equal(t, "page", r.testid("tab-awaiting").AttrOr("aria-current", ""))
	require.Equal(t, []string{rqItoa(r2.ID), rqItoa(r1.ID)}, rqRowIDs(r))
	require.Equal(t, "2", strings.TrimSpace(r.testid("tab-count-awaiting").Text()))
	row := r.doc().Find(`[data-testid="request-row"][data-request="` + rqItoa(r1.ID) + `"]`)
	require.Contains(t, row.Text(), "Acme Corporation (acme)")
	require.Equal(t, "pending", row.Find(`[data-testid="state-badge"]`).Text())
	require.Equal(t, "0/1 approvals", strings.TrimSpace(row.Find(`[data-testid="request-approvals"]`).Text()))
	require.Contains(t, row.Text(), "1,204", "rows with thousands separators")
	created := row.Find("time")
	require.Equal(t, "just now", created.Text())
	require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$`, created.AttrOr("title", ""))
	require.Equal(t, "page", alice.get("/requests").testid("tab-all").AttrOr("aria-current", ""))

	require.Equal(t, []string{rqItoa(r3.ID)}, rqRowIDs(bob.get("/requests?tab=mine")))
	require.Equal(t, []string{rqItoa(r3.ID), rqItoa(r2.ID), rqItoa(r1.ID)}, rqRowIDs(bob.get("/requests?tab=all")))
	require.Equal(t, []string{rqItoa(r2.ID)}, rqRowIDs(bob.get("/requests?tab=all&kind=repo")))
	empty := bob.get("/requests?tab=all&state=done")
	require.Empty(t, rqRowIDs(empty))
	require.Contains(t, empty.testid("requests-empty").Text(), "No requests match")
	require.Equal(t, "done", empty.testid("filter-state").Find("option[selected]").AttrOr("value", ""))
	require.Equal(t, []string{rqItoa(r2.ID), rqItoa(r1.ID)}, rqRowIDs(alice.get("/requests?tab=mine")))
	require.Empty(t, rqRowIDs(alice.get("/requests?tab=awaiting")))
	require.Equal(t, http.StatusNotFound, bob.get("/requests?tab=nope").StatusCode)

	// After bob approves one, his badge and tab count drop.
	resp := bob.post(reqPath(r1.ID, "/approve"), map[string][]string{"digest": {r1.Digest}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	r = bob.get("/requests")
	require.Equal(t, "1", strings.TrimSpace(r.testid("awaiting-count").Text()))
	require.Equal(t, []string{rqItoa(r2.ID)}, rqRowIDs(r))
	require.Equal(t, []string{rqItoa(r1.ID)}, rqRowIDs(bob.get("/requests?tab=all&state=approved")))
}

func TestRequestsListPaging(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	viewer, _ := a.signedIn("vera", auth.Viewer)
	alice, _ := a.user("alice", auth.Requester)
	var ids []int64
	for i := range 53 {
		ids = append(ids, a.rqCreate(alice, "tenant", strconv.Itoa(i+1), "Tenant "+strconv.Itoa(i+1)).ID)
	}
	first := viewer.get("/requests")
	got := rqRowIDs(first)
	require.Len(t, got, 50)
	require.Equal(t, rqItoa(ids[52]), got[0])
	require.Zero(t, first.testid("pager-newest").Length())
	older := first.testid("pager-older").AttrOr("href", "")
	require.Equal(t, "/requests?before="+rqItoa(ids[3])+"&tab=all", older)

	second := viewer.get(older)
	require.Equal(t, []string{rqItoa(ids[2]), rqItoa(ids[1]), rqItoa(ids[0])}, rqRowIDs(second))
	require.Zero(t, second.testid("pager-older").Length())
	require.Equal(t, "/requests?tab=all", second.testid("pager-newest").AttrOr("href", ""))
	require.Equal(t, http.StatusBadRequest, viewer.get("/requests?before=x").StatusCode)
}

func TestRequestControlsPerRole(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	root, _ := a.signedIn("root", auth.Admin)
	vera, _ := a.signedIn("vera", auth.Viewer)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme Corporation (acme)")
	p := reqPath(rq.ID, "")

	cases := []struct {
		name                    string
		c                       *client
		approve, reject, cancel bool
		why                     string
	}{
		{"requester", alice, false, false, true, ""},
		{"approver", bob, true, true, false, ""},
		{"admin", root, false, false, false, "Admins cannot approve"},
		{"viewer", vera, false, false, false, "takes the approver role; yours is viewer"},
	}
	for _, c := range cases {
		r := c.c.get(p)
		require.Equal(t, http.StatusOK, r.StatusCode, c.name)
		require.Equal(t, c.approve, r.testid("approve-form").Length() == 1, "%s approve", c.name)
		require.Equal(t, c.reject, r.testid("reject-form").Length() == 1, "%s reject", c.name)
		require.Equal(t, c.cancel, r.testid("cancel-form").Length() == 1, "%s cancel", c.name)
		if c.why != "" {
			require.Contains(t, r.testid("controls-none").Text(), c.why, c.name)
		}
		checkHeaders(t, r, "request page as "+c.name)
	}

	r := bob.get(p)
	require.Equal(t, rq.Digest, r.testid("approve-form").Find(`input[name="digest"]`).AttrOr("value", ""))
	require.Equal(t, "pending", r.testid("request").AttrOr("data-state", ""))
	require.Contains(t, r.testid("request-what").Text(), "Acme Corporation (acme)")
	require.Equal(t, "alice, just now", strings.Join(strings.Fields(r.testid("requester").Text()), " "))
	require.Contains(t, r.testid("request-reason").Text(), "GDPR art. 17")
	require.Equal(t, "https://tickets.example/T-1", r.testid("ticket-link").AttrOr("href", ""))
	require.Equal(t, "0 of 1 required", strings.TrimSpace(r.testid("approvals-count").Text()))

	// The frozen preview, shown with the preview page's component: summary, tree, samples.
	frozen := r.testid("frozen-preview").Find(`[data-testid="preview"]`)
	require.Equal(t, "false", frozen.AttrOr("data-live", ""))
	users := frozen.Find(`[data-testid="summary-row"][data-table="public.users"]`)
	require.Equal(t, "1200", users.AttrOr("data-rows", ""))
	require.Contains(t, users.Text(), "1,200")
	require.Equal(t, "delete", users.Find(`[data-testid="action-badge"]`).Text())
	require.Equal(t, 3, frozen.Find(`[data-testid="summary-row"]`).Length())
	require.Equal(t, 3, frozen.Find(`[data-testid="tree-node"]`).Length())
	require.Contains(t, frozen.Find(`[data-testid="tree-node"][data-table="public.users"] [data-testid="sample-row"]`).Text(), "ada@1.example")

	// The timeline starts with the request.
	ev := r.testid("timeline-event")
	require.Equal(t, 1, ev.Length())
	require.Equal(t, "requested", ev.AttrOr("data-action", ""))
	require.Contains(t, ev.Text(), "alice")
	require.Contains(t, ev.Text(), "Needs 1 approval.")

	// No preview engine: the drift check is not offered, and asking says why.
	require.Zero(t, r.testid("drift-check").Length())
	d := bob.get(p + "/drift")
	require.Equal(t, http.StatusOK, d.StatusCode)
	require.Contains(t, d.testid("drift-error").Text(), "No preview engine")

	require.Equal(t, http.StatusNotFound, bob.get("/requests/999999").StatusCode)
	require.Equal(t, http.StatusNotFound, bob.get("/requests/abc").StatusCode)
}

// rqRefused checks a decision's error page.
func rqRefused(t *testing.T, r *response, status int, contains string) {
	t.Helper()
	require.Equal(t, status, r.StatusCode, r.text())
	require.Equal(t, strconv.Itoa(status), r.testid("error-page").AttrOr("data-status", ""))
	require.Contains(t, r.testid("error-message").Text(), contains)
}

func TestRequestDecisions(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	root, rootU := a.signedIn("root", auth.Admin)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme Corporation (acme)")
	p := reqPath(rq.ID, "")

	// Self-approval: 403 explaining the two-person rule, and an audit event.
	r := alice.post(p+"/approve", map[string][]string{"digest": {rq.Digest}})
	rqRefused(t, r, http.StatusForbidden, "two-person rule")
	require.Equal(t, p, r.testid("error-page").Find("a").AttrOr("href", ""))
	require.Len(t, a.rqEvents(rq.ID, audit.ActionSelfApprovalRefused), 1)
	// ...also for an admin who requested.
	own := a.rqCreate(rootU, "tenant", "5", "Initech (initech)")
	rqRefused(t, root.post(reqPath(own.ID, "/approve"), map[string][]string{"digest": {own.Digest}}), http.StatusForbidden, "two-person rule")
	require.Len(t, a.rqEvents(own.ID, audit.ActionSelfApprovalRefused), 1)
	// An admin approving someone else's request is refused too.
	rqRefused(t, root.post(p+"/approve", map[string][]string{"digest": {rq.Digest}}), http.StatusForbidden, "admins cannot decide")

	// A stale digest: 409, and its event.
	rqRefused(t, bob.post(p+"/approve", map[string][]string{"digest": {"0123"}}), http.StatusConflict, "different preview")
	require.Len(t, a.rqEvents(rq.ID, audit.ActionStaleApprovalRefused), 1)

	// Rejecting without a reason re-renders the page with the message (422).
	r = bob.post(p+"/reject", map[string][]string{"reason": {"no"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.Contains(t, r.testid("error-reason").Text(), "at least 10 characters")
	require.Equal(t, "no", r.testid("reject-reason").Text())
	_, open := r.testid("reject-details").Attr("open")
	require.True(t, open)
	require.Equal(t, approval.Pending, a.rqGet(rq.ID).State)

	// The requester cannot reject (they cancel instead); someone else cannot cancel.
	rqRefused(t, alice.post(p+"/reject", map[string][]string{"reason": {"changed my mind entirely"}}), http.StatusForbidden, "two-person rule")
	rqRefused(t, bob.post(p+"/cancel", nil), http.StatusForbidden, "cannot cancel")

	// Bob approves: 303 back with a flash, and the page shows the approval.
	r = bob.post(p+"/approve", map[string][]string{"digest": {rq.Digest}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, p, r.location())
	page := bob.get(p)
	require.Contains(t, page.testid("flash").Text(), "You approved request #"+rqItoa(rq.ID)+". It has the approvals it needs")
	require.Equal(t, "approved", page.testid("request").AttrOr("data-state", ""))
	require.Equal(t, "1 of 1 required", strings.TrimSpace(page.testid("approvals-count").Text()))
	require.Contains(t, page.testid("approval").Text(), "bob")
	require.Zero(t, page.testid("approve-form").Length())
	require.Equal(t, "approved", page.testid("timeline-event").Last().AttrOr("data-action", ""))
	require.Contains(t, page.testid("timeline-event").Last().Text(), "1 of 1 approvals.")
	require.Equal(t, 1, page.testid("progress").Length(), "an approved request shows its progress panel")
	require.Contains(t, page.testid("progress-waiting").Text(), "Waiting for a worker")

	// Deciding again: 409.
	rqRefused(t, bob.post(p+"/approve", map[string][]string{"digest": {rq.Digest}}), http.StatusConflict, "no longer pending")
	rqRefused(t, alice.post(p+"/cancel", nil), http.StatusConflict, "no longer pending")

	// Reject with a reason, and cancel, on other requests.
	r2 := a.rqCreate(aliceU, "tenant", "2", "Globex (globex)")
	r = bob.post(reqPath(r2.ID, "/reject"), map[string][]string{"reason": {"Wrong tenant: Globex is still a customer."}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	page = alice.get(reqPath(r2.ID, ""))
	require.Equal(t, "rejected", page.testid("request").AttrOr("data-state", ""))
	require.Contains(t, page.testid("decision-reason").Text(), "still a customer")
	require.Contains(t, page.testid("decided-by").Text(), "bob")
	require.Equal(t, "rejected", page.testid("timeline-event").Last().AttrOr("data-action", ""))

	r3 := a.rqCreate(aliceU, "tenant", "3", "Umbrella (umbrella)")
	require.Equal(t, http.StatusSeeOther, alice.post(reqPath(r3.ID, "/cancel"), nil).StatusCode)
	require.Equal(t, approval.Cancelled, a.rqGet(r3.ID).State)
	cancelled := alice.get(reqPath(r3.ID, ""))
	require.Equal(t, "cancelled", cancelled.testid("request").AttrOr("data-state", ""))
	require.Zero(t, cancelled.testid("controls").Length(), "nothing left to decide")

	rqRefused(t, bob.post("/requests/999999/approve", map[string][]string{"digest": {"x"}}), http.StatusNotFound, "no request #999999")
}

func TestRequestDuplicateApprovalWithTwoRequired(t *testing.T) {
	t.Parallel()
	a := newAppWith(t, policy, func(cfg *config.Config, _ string) { cfg.Approvals.Required = 2 })
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme")
	require.Equal(t, 2, rq.ApprovalsRequired)
	r := bob.post(reqPath(rq.ID, "/approve"), map[string][]string{"digest": {rq.Digest}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Contains(t, bob.get(reqPath(rq.ID, "")).testid("flash").Text(), "It needs 1 more approval.")
	rqRefused(t, bob.post(reqPath(rq.ID, "/approve"), map[string][]string{"digest": {rq.Digest}}), http.StatusConflict, "already approved")
	require.Len(t, a.rqEvents(rq.ID, audit.ActionDuplicateApprovalRefused), 1)
}

func TestRequestStepUp(t *testing.T) {
	t.Parallel()
	clk := &rqClock{t: time.Now()}
	a := newApp(t, withRqClock(clk))
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme")
	p := reqPath(rq.ID, "")

	clk.advance(16 * time.Minute) // past the 15 minute step-up window, inside the idle timeout
	r := bob.post(p+"/approve", map[string][]string{"digest": {rq.Digest}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/signin?next=%2Frequests%2F"+rqItoa(rq.ID)+"&reauth=1", r.location())
	refused := a.rqEvents(rq.ID, audit.ActionApprovalRefused)
	require.Len(t, refused, 1)
	require.Equal(t, "step_up", refused[0].Details["refused"])
	require.Equal(t, approval.Pending, a.rqGet(rq.ID).State)

	// The sign-in page asks for the password again although bob has a session.
	form := bob.get(r.location())
	require.Equal(t, http.StatusOK, form.StatusCode)
	require.Contains(t, form.testid("signin-notice").Text(), "Approving needs a recent sign-in")
	require.Equal(t, "bob", form.testid("signin-name").AttrOr("value", ""))
	require.Equal(t, 1, form.testid("signin-password").Length())
	require.Equal(t, p, form.doc().Find(`input[name="next"]`).AttrOr("value", ""))

	r = bob.signIn("bob", "password-of-bob", p)
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, p, r.location())
	r = bob.post(p+"/approve", map[string][]string{"digest": {rq.Digest}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, p, r.location())
	require.Equal(t, approval.Approved, a.rqGet(rq.ID).State)
}

func TestRequestLinksAreSafeToFetch(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme")
	ctx := context.Background()
	headBefore, _, err := audit.Head(ctx, a.db.Bun)
	require.NoError(t, err)

	agents := []string{
		"Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Microsoft Office SafeLinks",
		"",
	}
	paths := []string{"", "/approve", "/reject", "/cancel", "/drift", "/progress"}
	for _, ua := range agents {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			for _, sfx := range paths {
				// A scanner without the session cookie is sent to sign in.
				r := a.client().rqFetch(m, reqPath(rq.ID, sfx), "User-Agent", ua)
				require.Contains(t, []int{http.StatusSeeOther, http.StatusNotFound, http.StatusMethodNotAllowed}, r.StatusCode, "%s %s %q", m, sfx, ua)
				// One that carries it (a mail client rendering a preview) only reads.
				r = bob.rqFetch(m, reqPath(rq.ID, sfx), "User-Agent", ua)
				require.Less(t, r.StatusCode, 500, "%s %s %q", m, sfx, ua)
			}
		}
	}
	got := a.rqGet(rq.ID)
	require.Equal(t, approval.Pending, got.State)
	require.Empty(t, got.Approvals)
	headAfter, _, err := audit.Head(ctx, a.db.Bun)
	require.NoError(t, err)
	require.Equal(t, headBefore, headAfter, "no audit event was written")
}

func TestRequestCrossSitePostRefused(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, aliceU := a.signedIn("alice", auth.Requester)
	bob, _ := a.signedIn("bob", auth.Approver)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme")
	for _, h := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
		for _, sfx := range []string{"/approve", "/reject", "/cancel"} {
			r := bob.post(reqPath(rq.ID, sfx), map[string][]string{"digest": {rq.Digest}, "reason": {"a long enough reason"}}, h...)
			require.Equal(t, http.StatusForbidden, r.StatusCode, sfx)
			require.Contains(t, r.testid("error-message").Text(), "came from another site")
		}
	}
	got := a.rqGet(rq.ID)
	require.Equal(t, approval.Pending, got.State)
	require.Empty(t, got.Approvals)
	require.Len(t, a.rqEvents(rq.ID, ""), 1, "only the requested event")
}

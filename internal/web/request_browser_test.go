package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// TestBrowserApproval runs the two-person rule in two browsers: alice, who made a request,
// sees only Cancel; bob signs in in his own browser, opens the request from its link and
// approves it. Screenshots of the request before and after approval, the requests list, a
// running and a done request and the audit log, at desktop and phone widths, go to
// $TOMBSTONE_SCREENSHOTS (or a temporary directory).
func TestBrowserApproval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	_, alicePW := a.user("alice", auth.Requester)
	_, bobPW := a.user("bob", auth.Approver)
	aliceU, err := auth.UserByName(ctx, a.db.Bun, "alice")
	require.NoError(t, err)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme Corporation (acme)")
	a.rqCreate(aliceU, "repo", "9", "acme/widgets")
	base := a.srv.URL
	page := base + reqPath(rq.ID, "")
	// The request before and after approval is always photographed; the other pages only when
	// a directory for review is given.
	review := os.Getenv("TOMBSTONE_SCREENSHOTS") != ""
	shots := func(b context.Context, name string) {
		t.Helper()
		if !review {
			return
		}
		for _, w := range []int64{1280, 390} {
			require.NoError(t, chromedp.Do(b, chromedp.EmulateViewport(w, 900)))
			webtest.Screenshot(t, b, "", fmt.Sprintf("%s-%d.png", name, w))
		}
		require.NoError(t, chromedp.Do(b, chromedp.EmulateViewport(1280, 900)))
	}

	signIn := func(b context.Context, name, pw string) {
		t.Helper()
		require.NoError(t, chromedp.Do(b, chromedp.Navigate(page),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)),
			chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-name"]`), name),
			chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-password"]`), pw),
			chromedp.Click(chromedp.CSS(`[data-testid="signin-submit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="request"]`))))
	}
	count := func(b context.Context, sel string) int {
		t.Helper()
		n, err := chromedp.Run(b, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		require.NoError(t, err)
		return n
	}
	text := func(b context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(b, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return strings.TrimSpace(s)
	}

	// alice follows the link, signs in, and comes back to her request: she can only cancel.
	alice := webtest.Browser(t, 1280, 900, 120*time.Second)
	signIn(alice, "alice", alicePW)
	require.Equal(t, 0, count(alice, `[data-testid="approve"]`))
	require.Equal(t, 1, count(alice, `[data-testid="cancel"]`))
	shots(alice, "request-requester")

	// bob, in his own browser, sees Approve and the badge with what awaits him.
	bob := webtest.Browser(t, 1280, 900, 120*time.Second)
	signIn(bob, "bob", bobPW)
	require.Equal(t, "2", text(bob, `[data-testid="awaiting-count"]`))
	require.Equal(t, "pending", text(bob, `[data-testid="request"] h1 [data-testid="state-badge"]`))
	for _, w := range []int64{1280, 390} {
		require.NoError(t, chromedp.Do(bob, chromedp.EmulateViewport(w, 900)))
		webtest.Screenshot(t, bob, "", fmt.Sprintf("request-pending-%d.png", w))
	}
	require.NoError(t, chromedp.Do(bob, chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS(`[data-testid="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`))))
	require.Contains(t, text(bob, `[data-testid="flash"]`), "You approved request #"+rqItoa(rq.ID))
	require.Equal(t, "approved", text(bob, `[data-testid="request"] h1 [data-testid="state-badge"]`))
	require.Equal(t, "1", text(bob, `[data-testid="awaiting-count"]`))
	require.Equal(t, approval.Approved, a.rqGet(rq.ID).State)
	for _, w := range []int64{1280, 390} {
		require.NoError(t, chromedp.Do(bob, chromedp.EmulateViewport(w, 900)))
		webtest.Screenshot(t, bob, "", fmt.Sprintf("request-approved-%d.png", w))
	}

	// The executor starts it: the progress panel polls with htmx and fills its bars.
	svc := approval.New(a.cfg)
	_, err = svc.Start(ctx, a.db.Bun, rq.ID)
	require.NoError(t, err)
	progress := func(done int64) {
		t.Helper()
		b, err := json.Marshal([]exec.TargetStatus{{Target: "app", Phase: exec.PhaseApplying, Tables: []exec.TableProgress{
			{Table: "public.users", Action: "delete", Done: done, Planned: 1200},
			{Table: "public.audit_notes", Action: "detach", Done: 3, Planned: 3},
			{Table: "public.tenants", Action: "delete", Done: 0, Planned: 1},
		}}})
		require.NoError(t, err)
		require.NoError(t, approval.Progress(ctx, a.db.Bun, rq.ID, b))
	}
	progress(300)
	require.NoError(t, chromedp.Do(bob, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="table-progress"]`))))
	progress(900)
	require.NoError(t, chromedp.Do(bob, chromedp.Poll[chromedp.Void](
		`document.querySelector('[data-table="public.users"] [data-testid="table-rows"]')?.textContent === "900 of 1,200"`,
		chromedp.WithPollingTimeout(10*time.Second))), "htmx polls the progress every second")
	shots(bob, "request-running")

	// It finishes: the poll reloads the page, which shows the results.
	rep, err := json.Marshal(exec.Report{Digest: rq.Digest, Rows: 1204, Tables: []exec.TableCount{
		{Target: "app", Table: "public.audit_notes", Action: "detach", Rows: 3},
		{Target: "app", Table: "public.tenants", Action: "delete", Rows: 1},
		{Target: "app", Table: "public.users", Action: "delete", Rows: 1200},
	}})
	require.NoError(t, err)
	_, err = svc.Finish(ctx, a.db.Bun, rq.ID, approval.Done, rep, "")
	require.NoError(t, err)
	_, err = audit.Append(ctx, a.db.Bun, audit.Event{ActorName: audit.SystemActor, Action: audit.ActionExecuted, RequestID: &rq.ID,
		Kind: rq.Kind, Target: rq.Target, RootKey: rq.RootKey, RootLabel: rq.RootLabel, Details: map[string]any{"rows": int64(1204)}})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(bob, chromedp.EmulateViewport(1280, 900),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="result-tables"]`))))
	require.Equal(t, "done", text(bob, `[data-testid="request"] h1 [data-testid="state-badge"]`))
	shots(bob, "request-done")

	// The list and the audit log.
	require.NoError(t, chromedp.Do(bob, chromedp.Navigate(base+"/requests?tab=all"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="requests-table"]`))))
	shots(bob, "requests")
	require.NoError(t, chromedp.Do(bob, chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="audit-table"]`))))
	require.Equal(t, "Verified through #4", text(bob, `[data-testid="chain-status"]`))
	shots(bob, "audit")
}

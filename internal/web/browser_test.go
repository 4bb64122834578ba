package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/web"
	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// TestBrowser signs in with Chromium, searches as you type (htmx under the CSP), and saves
// screenshots of the sign-in, search and admin pages at desktop and phone widths to
// $TOMBSTONE_SCREENSHOTS (or a temporary directory).
func TestBrowser(t *testing.T) {
	t.Parallel()
	f := finder{"tenant:acme": {
		{Key: "1", Label: "Acme Corporation (acme)"},
		{Key: "2", Label: "Acme Labs (acme-labs)", OpenRequest: true},
		{Key: "17", Label: "Acme Archive (acme-archive)", Tombstoned: true},
	}}
	a := newApp(t, withFinder(f))
	_, pw := a.user("ada", auth.Admin)
	for _, n := range []string{"bert", "carla"} {
		a.user(n, auth.Approver)
	}
	_, err := auth.CreateUser(context.Background(), a.db.Bun, auth.NewUser{Name: "sso.user", DisplayName: "Single Sign-On User", Role: auth.Viewer, OIDCSubject: "idp|1"})
	require.NoError(t, err)

	ctx := webtest.Browser(t, 1280, 900, 90*time.Second)
	base := a.srv.URL
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, steps...))
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err)
		return strings.TrimSpace(s)
	}

	// Sign in through the form, coming back to the search the link pointed at.
	do(chromedp.Navigate(base+"/?kind=tenant"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Equal(t, base+"/signin?next=%2F%3Fkind%3Dtenant", loc)
	for _, width := range []int64{390, 1280} {
		do(chromedp.EmulateViewport(width, 900))
		webtest.Screenshot(t, ctx, "", fmt.Sprintf("signin-%d.png", width))
	}
	do(chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-name"]`), "ada"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-password"]`), pw),
		chromedp.Click(chromedp.CSS(`[data-testid="signin-submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="search"]`)))
	require.Equal(t, "ada", text(`[data-testid="user-menu"] .who`))
	require.Contains(t, text(`[data-testid="results-hint"]`), "Find a tenant by slug, name")

	// htmx is loaded (its script carries the CSP nonce) and searches as you type.
	kind, err := chromedp.Run(ctx, chromedp.Evaluate[string]("typeof htmx"))
	require.NoError(t, err)
	require.Equal(t, "object", kind, "htmx loaded under the content security policy")
	do(chromedp.SendKeys(chromedp.CSS(`#q`), "acme"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="results-table"]`)))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="result"]').length`))
	require.NoError(t, err)
	require.Equal(t, 3, rows)
	loc, err = chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.Contains(t, loc, "q=acme", "the URL follows the search")

	// The user menu opens without JavaScript (details/summary) and signs out with a POST.
	for _, width := range []int{1280, 390} {
		shots(t, ctx, base, width)
	}
	do(chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS(`[data-testid="user-menu"] summary`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signout"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="signout"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)))
	require.Equal(t, "You have signed out.", text(`[data-testid="flash"]`))
}

// shots saves screenshots of the pages a signed-in admin sees, at one width.
func shots(t *testing.T, ctx context.Context, base string, width int) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 900)))
	for _, p := range []struct{ name, path, wait string }{
		{"home", "/?kind=tenant&q=acme", `[data-testid="results-table"]`},
		{"admin-users", "/admin/users", `[data-testid="users-table"]`},
		{"admin-policy", "/admin/policy", `[data-testid="policy-kinds"]`},
	} {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait))), p.name)
		webtest.Screenshot(t, ctx, "", fmt.Sprintf("%s-%d.png", p.name, width))
	}
}

var _ web.Finder = finder{}

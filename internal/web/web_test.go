package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/auth/oidctest"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/web"
)

func TestRolesMatrix(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	clients := map[auth.Role]*client{}
	for _, role := range auth.Roles() {
		clients[role], _ = a.signedIn("u-"+string(role), role)
	}
	for role, c := range clients {
		r := c.get("/")
		require.Equal(t, http.StatusOK, r.StatusCode, role)
		require.Equal(t, 1, r.testid("search").Length(), role)
		require.Equal(t, "u-"+string(role), strings.TrimSpace(r.testid("user-menu").Find(".who").Text()))

		wantAdmin := role == auth.Admin
		require.Equal(t, wantAdmin, r.testid("nav-admin").Length() == 1, "admin link for %s", role)
		for _, path := range []string{"/admin/users", "/admin/policy"} {
			r = c.get(path)
			if wantAdmin {
				require.Equal(t, http.StatusOK, r.StatusCode, "%s %s", role, path)
			} else {
				require.Equal(t, http.StatusForbidden, r.StatusCode, "%s %s", role, path)
				require.Equal(t, "403", r.testid("error-page").AttrOr("data-status", ""))
			}
		}
		r = c.post("/admin/users", url.Values{"name": {"x-" + string(role)}, "role": {"viewer"}})
		if wantAdmin {
			require.Equal(t, http.StatusOK, r.StatusCode)
		} else {
			require.Equal(t, http.StatusForbidden, r.StatusCode)
		}
	}

	anon := a.client()
	for path, want := range map[string]string{
		"/":                  "/signin",
		"/admin/users":       "/signin?next=%2Fadmin%2Fusers",
		"/?kind=repo&q=acme": "/signin?next=%2F%3Fkind%3Drepo%26q%3Dacme",
		"/admin/policy?x=1":  "/signin?next=%2Fadmin%2Fpolicy%3Fx%3D1",
	} {
		r := anon.get(path)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, path)
		require.Equal(t, want, r.location(), path)
	}
	r := anon.post("/admin/users", url.Values{"name": {"sneaky"}, "role": {"admin"}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/signin", r.location())
	_, err := auth.UserByName(context.Background(), a.db.Bun, "sneaky")
	require.ErrorIs(t, err, auth.ErrNotFound)

	// The sign-in page itself, and a 404, are reachable anonymously.
	require.Equal(t, http.StatusOK, anon.get("/signin").StatusCode)
	require.Equal(t, http.StatusNotFound, anon.get("/no/such/page").StatusCode)
}

func TestCrossOriginProtection(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	admin, _ := a.signedIn("root", auth.Admin)
	target, _ := a.user("victim", auth.Viewer)
	path := "/admin/users/" + strconv.FormatInt(target.ID, 10) + "/role"
	host := a.srv.URL

	roleOf := func() auth.Role {
		u, err := auth.UserByID(context.Background(), a.db.Bun, target.ID)
		require.NoError(t, err)
		return u.Role
	}
	refused := [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "https://evil.example"},
		{"Origin", "http://127.0.0.1:1"},
	}
	for _, h := range refused {
		r := admin.post(path, url.Values{"role": {"admin"}}, h...)
		require.Equal(t, http.StatusForbidden, r.StatusCode, h)
		require.Equal(t, "403", r.testid("error-page").AttrOr("data-status", ""), h)
		require.Equal(t, auth.Viewer, roleOf(), h)
	}
	// A cross-site sign-in POST is refused too (login CSRF).
	r := a.client().post("/signin", url.Values{"name": {"root"}, "password": {"password-of-root"}}, "Sec-Fetch-Site", "cross-site")
	require.Equal(t, http.StatusForbidden, r.StatusCode)

	allowed := [][]string{
		{"Sec-Fetch-Site", "same-origin"},
		{"Origin", host},
		{}, // no browser headers at all: not a browser, so not a cross-site forgery
	}
	roles := []auth.Role{auth.Requester, auth.Approver, auth.Viewer}
	for i, h := range allowed {
		r := admin.post(path, url.Values{"role": {string(roles[i])}}, h...)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, h)
		require.Equal(t, roles[i], roleOf(), h)
	}
	// Safe methods pass whatever their origin.
	require.Equal(t, http.StatusOK, admin.get("/admin/users", "Sec-Fetch-Site", "cross-site").StatusCode)
}

var nonceRE = regexp.MustCompile(`script-src 'self' 'nonce-([A-Za-z0-9+/]{20,})'`)

// checkHeaders asserts the security headers, and for HTML that every script is external and
// carries the CSP nonce, and that there is no inline script or style anywhere.
func checkHeaders(t *testing.T, r *response, what string) {
	t.Helper()
	h := r.Header
	csp := h.Get("Content-Security-Policy")
	for _, part := range []string{"default-src 'self'", "style-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'self'"} {
		require.Contains(t, csp, part, what)
	}
	require.NotContains(t, csp, "unsafe-inline", what)
	require.NotContains(t, csp, "unsafe-eval", what)
	m := nonceRE.FindStringSubmatch(csp)
	require.NotNil(t, m, "%s: CSP has a nonce: %s", what, csp)
	require.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), what)
	require.Equal(t, "same-origin", h.Get("Referrer-Policy"), what)
	require.Equal(t, "DENY", h.Get("X-Frame-Options"), what)
	require.Regexp(t, `^[0-9a-f]{16}$`, h.Get("X-Request-Id"), what)
	if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || r.StatusCode/100 == 3 {
		return
	}
	d := r.doc()
	scripts := d.Find("script")
	require.Positive(t, scripts.Length(), what)
	scripts.Each(func(_ int, s *goquery.Selection) {
		src, ok := s.Attr("src")
		require.True(t, ok && strings.HasPrefix(src, "/static/"), "%s: script without src", what)
		require.Equal(t, m[1], s.AttrOr("nonce", ""), "%s: script nonce", what)
		require.Empty(t, strings.TrimSpace(s.Text()), "%s: inline script body", what)
	})
	require.Zero(t, d.Find("style, [style]").Length(), "%s: inline style", what)
	d.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, at := range s.Nodes[0].Attr {
			require.False(t, strings.HasPrefix(strings.ToLower(at.Key), "on"), "%s: event handler attribute %s", what, at.Key)
			require.False(t, strings.HasPrefix(strings.ToLower(strings.TrimSpace(at.Val)), "javascript:"), "%s: javascript: URL", what)
		}
	})
}

func TestSecurityHeadersEverywhere(t *testing.T) {
	t.Parallel()
	a := newApp(t, withFinder(finder{}), func(d *web.Deps) { d.Limits = auth.Limits{PerAccount: 2} })
	admin, _ := a.signedIn("root", auth.Admin)
	viewer, _ := a.signedIn("watcher", auth.Viewer)
	anon := a.client()

	home := admin.get("/")
	css := home.doc().Find(`link[rel="stylesheet"]`).AttrOr("href", "")
	require.Regexp(t, `^/static/app\.[0-9a-f]{12}\.css$`, css)

	cases := []struct {
		what   string
		r      *response
		status int
	}{
		{"home", home, 200},
		{"search", admin.get("/?kind=repo&q=x"), 200},
		{"admin users", admin.get("/admin/users"), 200},
		{"admin policy", admin.get("/admin/policy"), 200},
		{"signin", anon.get("/signin"), 200},
		{"redirect", anon.get("/admin/users"), 303},
		{"404", admin.get("/nope"), 404},
		{"404 anonymous", anon.get("/nope"), 404},
		{"403", viewer.get("/admin/users"), 403},
		{"403 cross-site", admin.post("/signout", nil, "Sec-Fetch-Site", "cross-site"), 403},
		{"409", admin.post("/admin/users", url.Values{"name": {"root"}, "role": {"viewer"}}), 409},
		{"422", anon.signIn("root", "wrong", ""), 422},
		{"429", anon.signIn("root", "wrong again", ""), 429},
		{"500", admin.get("/?q=boom"), 500},
		{"500 panic", admin.get("/?q=panic"), 500},
		{"static", anon.get(css), 200},
		{"static 404", anon.get("/static/app.css"), 404},
		{"healthz", anon.get("/healthz"), 200},
		{"readyz", anon.get("/readyz"), 200},
	}
	for _, c := range cases {
		require.Equal(t, c.status, c.r.StatusCode, c.what)
		checkHeaders(t, c.r, c.what)
	}
	for _, c := range cases[:15] {
		require.Equal(t, "no-store", c.r.Header.Get("Cache-Control"), c.what)
	}
	st := cases[15].r
	require.Equal(t, "public, max-age=31536000, immutable", st.Header.Get("Cache-Control"))
	require.Equal(t, "text/css; charset=utf-8", st.Header.Get("Content-Type"))

	// 500 pages show the request id and nothing of the error.
	for _, c := range cases[13:15] {
		require.Equal(t, c.r.Header.Get("X-Request-Id"), c.r.testid("request-id").Text(), c.what)
		require.NotContains(t, c.r.text(), "secret detail", c.what)
		require.NotContains(t, c.r.text(), "exploded", c.what)
	}
	// A 429 says when to come back.
	retry, err := strconv.Atoi(cases[12].r.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, retry, 60)
	// Without TLS there is no HSTS.
	require.Empty(t, home.Header.Get("Strict-Transport-Security"))
}

func TestTLSCookiesAndHSTS(t *testing.T) {
	t.Parallel()
	a := newAppWith(t, policy, func(cfg *config.Config, _ string) { cfg.BaseURL = "https://tombstone.example.com" })
	_, pw := a.user("tess", auth.Viewer)
	r := a.client().signIn("tess", pw, "")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "max-age=31536000", r.Header.Get("Strict-Transport-Security"))
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "__Host-tombstone" {
			session = c
		}
	}
	require.NotNil(t, session, "session cookie has the __Host- prefix")
	require.True(t, session.Secure)
	require.True(t, session.HttpOnly)
	require.Equal(t, http.SameSiteLaxMode, session.SameSite)
	require.Equal(t, "/", session.Path)
	require.Empty(t, session.Domain)
}

func TestHostileNext(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, pw := a.user("nora", auth.Viewer)
	cases := map[string]string{
		"/admin/users":          "/admin/users",
		"/?kind=repo&q=a+b":     "/?kind=repo&q=a+b",
		"":                      "/",
		"//evil.example":        "/",
		"//evil.example/path":   "/",
		"/\\evil.example":       "/",
		"\\\\evil.example":      "/",
		"/a\\b":                 "/",
		"https://evil.example":  "/",
		"javascript:alert(1)":   "/",
		"evil.example":          "/",
		"/%2f%2fevil.example":   "/",
		"/%5cevil.example":      "/",
		"/a\r\nSet-Cookie: x=y": "/",
		"/\tfoo":                "/",
		"///evil.example":       "/",
		" /admin":               "/",
	}
	for next, want := range cases {
		c := a.client()
		r := c.signIn("nora", pw, next)
		require.Equal(t, http.StatusSeeOther, r.StatusCode, next)
		require.Equal(t, want, r.location(), "next=%q", next)
		// The form carries only a safe next.
		f := c.get("/signin?next=" + url.QueryEscape(next))
		got := f.testid("signin-form").Find(`input[name="next"]`).AttrOr("value", "")
		if want == "/" {
			require.Empty(t, got, next)
		} else {
			require.Equal(t, want, got, next)
		}
	}
}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	u, pw := a.user("sam", auth.Viewer)
	c := a.client()
	require.Empty(t, c.token())

	// Sign-in sets a token; signing in again (step-up) replaces it, and the first is dead.
	require.Equal(t, http.StatusSeeOther, c.signIn("sam", pw, "").StatusCode)
	t1 := c.token()
	require.NotEmpty(t, t1)
	require.Equal(t, http.StatusOK, c.get("/").StatusCode)
	step := c.get("/signin")
	require.Equal(t, "sam", step.testid("signin-name").AttrOr("value", ""))
	require.NotEmpty(t, step.testid("signin-notice").Text())
	require.Equal(t, http.StatusSeeOther, c.signIn("sam", pw, "").StatusCode)
	t2 := c.token()
	require.NotEqual(t, t1, t2, "token renewed on sign-in")
	old := a.withToken(t1).get("/")
	require.Equal(t, http.StatusSeeOther, old.StatusCode, "old token rejected")

	// The token is stored hashed, with the user id beside it.
	var rows []struct {
		Token  string `bun:"token"`
		UserID int64  `bun:"user_id"`
	}
	require.NoError(t, a.db.Bun.NewSelect().Table("sessions").Column("token", "user_id").Scan(ctx, &rows))
	require.Len(t, rows, 1)
	require.Equal(t, u.ID, rows[0].UserID)
	require.NotEqual(t, t2, rows[0].Token)

	// A role change renews the token at the next request; the old one is dead.
	_, err := auth.SetRole(ctx, a.db.Bun, u.ID, auth.Requester)
	require.NoError(t, err)
	r := c.get("/")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "requester", r.testid("user-menu").Find(".role").Text())
	t3 := c.token()
	require.NotEqual(t, t2, t3, "token renewed on role change")
	require.Equal(t, http.StatusSeeOther, a.withToken(t2).get("/").StatusCode)

	// Sign-out kills the token even for a copy of it.
	r = c.post("/signout", nil, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/signin", r.location())
	require.Empty(t, c.token(), "cookie expired")
	require.Equal(t, http.StatusSeeOther, a.withToken(t3).get("/").StatusCode, "old token rejected after sign-out")
	page := c.get("/signin")
	require.Equal(t, "You have signed out.", page.testid("flash").Text())
	require.Zero(t, c.get("/signin").testid("flash").Length(), "a flash shows once")
}

func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := func() time.Time { return now }
	a := newApp(t, func(d *web.Deps) { d.Now = clock })
	_, pw := a.user("tim", auth.Viewer)
	c := a.client()
	require.Equal(t, http.StatusSeeOther, c.signIn("tim", pw, "").StatusCode)
	require.Equal(t, http.StatusOK, c.get("/").StatusCode)
	// Past the absolute timeout the session ends even while in use.
	now = now.Add(a.cfg.Sessions.AbsoluteTimeout + time.Minute)
	r := c.get("/")
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
}

func TestThrottleReturns429(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(d *web.Deps) { d.Limits = auth.Limits{Window: 15 * time.Minute, PerAccount: 3} })
	_, pw := a.user("tina", auth.Viewer)
	c := a.client()
	for i := range 2 {
		r := c.signIn("tina", "nope", "")
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode, i)
		require.Equal(t, "Wrong user name or password.", r.testid("signin-error").Text())
		require.Equal(t, "tina", r.testid("signin-name").AttrOr("value", ""), "the form keeps the name")
	}
	r := c.signIn("tina", "nope", "")
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode)
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 15*60, retry, 5)
	require.Contains(t, r.testid("signin-error").Text(), "Try again in 15 minutes")
	// The right password does not get through while throttled.
	r = c.signIn("tina", pw, "")
	require.Equal(t, http.StatusTooManyRequests, r.StatusCode)
	require.Empty(t, c.token())
}

func TestDisableEndsSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	admin, _ := a.signedIn("root", auth.Admin)
	victim, u := a.signedIn("vic", auth.Requester)
	second := a.client()
	require.Equal(t, http.StatusSeeOther, second.signIn("vic", "password-of-vic", "").StatusCode)
	require.Equal(t, http.StatusOK, victim.get("/").StatusCode)

	n, err := a.db.Bun.NewSelect().Table("sessions").Where("user_id = ?", u.ID).Count(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	r := admin.post("/admin/users/"+strconv.FormatInt(u.ID, 10)+"/disable", nil)
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	page := admin.get("/admin/users")
	require.Contains(t, page.testid("flash").Text(), "vic is disabled")
	row := page.doc().Find(`[data-testid="user-row"][data-user="vic"]`)
	require.Equal(t, "disabled", row.Find(`[data-testid="status"]`).Text())

	n, err = a.db.Bun.NewSelect().Table("sessions").Where("user_id = ?", u.ID).Count(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, http.StatusSeeOther, victim.get("/").StatusCode)
	require.Equal(t, http.StatusSeeOther, second.get("/").StatusCode)
	r = a.client().signIn("vic", "password-of-vic", "")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.testid("signin-error").Text(), "disabled")
}

func TestAdminUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	admin, me := a.signedIn("root", auth.Admin)

	r := admin.get("/admin/users")
	require.Equal(t, 1, r.testid("users-table").Length())
	require.Equal(t, "users", "users")
	self := r.doc().Find(`[data-testid="user-row"][data-user="root"]`)
	require.Zero(t, self.Find(`[data-testid="disable-form"]`).Length(), "no disabling yourself")
	require.Zero(t, self.Find(`[data-testid="role-form"]`).Length(), "no changing your own role")

	// Add: a generated password is shown once and works.
	r = admin.post("/admin/users", url.Values{"name": {"olga"}, "display_name": {"Olga Ops"}, "role": {"approver"}})
	require.Equal(t, http.StatusOK, r.StatusCode)
	pw := r.testid("initial-password").Text()
	require.Len(t, pw, 26)
	row := r.doc().Find(`[data-testid="user-row"][data-user="olga"]`)
	require.Equal(t, "approver", row.Find(`select[data-testid="role"] option[selected]`).AttrOr("value", ""))
	olga := a.client()
	require.Equal(t, http.StatusSeeOther, olga.signIn("olga", pw, "").StatusCode)

	// Invalid input re-renders the form with the error and the values kept.
	r = admin.post("/admin/users", url.Values{"name": {"bad name!"}, "display_name": {"Kept"}, "role": {"viewer"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.NotEmpty(t, r.testid("error-name").Text())
	require.Equal(t, "Kept", r.doc().Find(`#new-display`).AttrOr("value", ""))
	require.Equal(t, "true", r.doc().Find(`#new-name`).AttrOr("aria-invalid", ""))
	r = admin.post("/admin/users", url.Values{"name": {"x"}, "role": {"superuser"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.NotEmpty(t, r.testid("error-role").Text())
	r = admin.post("/admin/users", url.Values{"name": {"OLGA"}, "role": {"viewer"}})
	require.Equal(t, http.StatusConflict, r.StatusCode)
	require.Contains(t, r.testid("error-name").Text(), "already exists")

	// Role change with post/redirect/get and a flash.
	u, err := auth.UserByName(ctx, a.db.Bun, "olga")
	require.NoError(t, err)
	r = admin.post("/admin/users/"+strconv.FormatInt(u.ID, 10)+"/role", url.Values{"role": {"viewer"}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	require.Equal(t, "/admin/users", r.location())
	require.Equal(t, "olga is now viewer.", admin.get("/admin/users").testid("flash").Text())

	// Guard rails: yourself, unknown users, unknown roles.
	r = admin.post("/admin/users/"+strconv.FormatInt(me.ID, 10)+"/role", url.Values{"role": {"viewer"}})
	require.Equal(t, http.StatusConflict, r.StatusCode)
	require.Contains(t, r.testid("error-message").Text(), "your own role")
	require.Equal(t, http.StatusConflict, admin.post("/admin/users/"+strconv.FormatInt(me.ID, 10)+"/disable", nil).StatusCode)
	require.Equal(t, http.StatusNotFound, admin.post("/admin/users/999999/disable", nil).StatusCode)
	require.Equal(t, http.StatusNotFound, admin.post("/admin/users/abc/disable", nil).StatusCode)
	require.Equal(t, http.StatusUnprocessableEntity, admin.post("/admin/users/"+strconv.FormatInt(u.ID, 10)+"/role", url.Values{"role": {"god"}}).StatusCode)

	// The policy page lists the kinds.
	p := admin.get("/admin/policy")
	require.Equal(t, 2, p.testid("policy-kind").Length())
	tenant := p.doc().Find(`[data-testid="policy-kind"][data-kind="tenant"]`)
	require.Equal(t, "delete", tenant.Find(`[data-testid="action-badge"]`).Text())
	require.True(t, tenant.Find(`[data-testid="action-badge"]`).HasClass("action-delete"))
	require.Equal(t, a.cfg.PolicyHash(), p.testid("policy-hash").Text())
}

func TestSearchPage(t *testing.T) {
	t.Parallel()
	f := finder{
		"tenant:acme": {
			{Key: "1", Label: "Acme (acme)"},
			{Key: "7", Label: "Acme Old (acme-old)", Tombstoned: true, OpenRequest: true},
		},
	}
	a := newApp(t, withFinder(f))
	c, _ := a.signedIn("vera", auth.Viewer)

	r := c.get("/")
	tabs := r.testid("kind-tabs").Find("a")
	require.Equal(t, 2, tabs.Length())
	require.Equal(t, "Repo", tabs.First().Text(), "kinds sorted by name")
	require.True(t, tabs.First().HasClass("active"))
	require.Equal(t, "repo", r.testid("search-form").Find(`input[name="kind"]`).AttrOr("value", ""))
	require.Contains(t, r.testid("results-hint").Text(), "by slug")
	require.Zero(t, r.testid("topbar-search").Length(), "no second search box on the search page")
	require.Equal(t, "/", r.testid("search-form").AttrOr("hx-get", ""))

	r = c.get("/?kind=tenant&q=acme")
	require.True(t, r.testid("tab-tenant").HasClass("active"))
	require.Equal(t, "/?kind=repo&q=acme", r.testid("tab-repo").AttrOr("href", ""), "tabs keep the query")
	rows := r.testid("result")
	require.Equal(t, 2, rows.Length())
	require.Equal(t, "/kinds/tenant/1", rows.First().Find(`[data-testid="result-link"]`).AttrOr("href", ""))
	require.Equal(t, "Acme (acme)", rows.First().Find(`[data-testid="result-link"]`).Text())
	badges := rows.Last().Find(`[data-testid="badge"]`)
	require.Equal(t, 2, badges.Length())
	require.Equal(t, "tombstoned", badges.First().Text())
	require.True(t, badges.First().HasClass("action-soft"))
	require.Equal(t, 3, r.testid("results-table").Find("th").Length(), "the results table has headers")

	r = c.get("/?kind=tenant&q=zzz")
	require.Contains(t, r.testid("no-results").Text(), "No results.")
	require.Contains(t, r.testid("no-results").Text(), "“zzz”")

	// An unknown kind falls back to the first tab.
	r = c.get("/?kind=nope&q=acme")
	require.True(t, r.testid("tab-repo").HasClass("active"))

	// The top bar's search box on other pages targets the home page.
	admin, _ := a.signedIn("root", auth.Admin)
	form := admin.get("/admin/users").testid("topbar-search")
	require.Equal(t, "/", form.AttrOr("action", ""))
	require.Equal(t, "get", form.AttrOr("method", ""))
}

func TestSearchPageWithoutEngineOrKinds(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	c, _ := a.signedIn("vera", auth.Viewer)
	r := c.get("/?q=acme")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, 1, r.testid("results-unavailable").Length())
	require.Zero(t, r.testid("no-results").Length(), "no pretending that nothing matched")

	b := newAppWith(t, "database: postgres://unused/db\n", nil, onDB(a.db))
	c2, _ := b.signedIn("vera2", auth.Viewer)
	r = c2.get("/")
	require.Equal(t, 1, r.testid("no-kinds").Length())
}

func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	is := oidctest.New(t, "tombstone", "client-secret")
	a := newAppWith(t, policy, func(cfg *config.Config, url string) {
		cfg.OIDC = &config.OIDC{Issuer: is.URL, ClientID: "tombstone", ClientSecret: "client-secret", RedirectURL: url + "/auth/oidc/callback"}
	})
	_, err := auth.CreateUser(ctx, a.db.Bun, auth.NewUser{Name: "ida", Role: auth.Admin, OIDCSubject: "idp|ida"})
	require.NoError(t, err)

	page := a.client().get("/signin?next=%2Fadmin%2Fusers")
	require.Equal(t, "/auth/oidc/start?next=%2Fadmin%2Fusers", page.testid("signin-sso").AttrOr("href", ""))

	// follow walks the redirects through the issuer and back, like a browser.
	follow := func(c *client, path string) *response {
		r := c.get(path)
		for i := 0; i < 5 && r.StatusCode >= 300 && r.StatusCode < 400; i++ {
			loc := r.location()
			if strings.HasPrefix(loc, "/") {
				loc = a.srv.URL + loc
			}
			req, err := http.NewRequest(http.MethodGet, loc, nil)
			require.NoError(t, err)
			r = c.do(req)
		}
		return r
	}

	is.SignInAs("idp|ida", "ida@example.com")
	c := a.client()
	r := follow(c, "/auth/oidc/start?next=%2Fadmin%2Fusers")
	require.Equal(t, http.StatusOK, r.StatusCode, r.text())
	require.Equal(t, 1, r.testid("users-table").Length(), "landed on the return path")
	require.Equal(t, "ida", strings.TrimSpace(r.testid("user-menu").Find(".who").Text()))
	require.NotEmpty(t, c.token())

	// An identity that is not linked to a user is refused with an explanation.
	is.SignInAs("idp|stranger", "stranger@example.com")
	c = a.client()
	r = follow(c, "/auth/oidc/start")
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	msg := r.testid("signin-error").Text()
	require.Contains(t, msg, "stranger@example.com")
	require.Contains(t, msg, "not linked")
	require.Empty(t, c.token())

	// A callback that this browser did not start is refused.
	r = a.client().get("/auth/oidc/callback?state=forged&code=whatever")
	require.Equal(t, http.StatusBadRequest, r.StatusCode)
	require.NotEmpty(t, r.testid("signin-error").Text())

	// Without OIDC configured, the routes do not exist and there is no SSO button.
	b := newApp(t, onDB(a.db))
	require.Equal(t, http.StatusNotFound, b.client().get("/auth/oidc/start").StatusCode)
	require.Zero(t, b.client().get("/signin").testid("signin-sso").Length())
}

// targets is a fixed set of target databases; a nil entry is down.
type targets map[string]*pg.DB

func (ts targets) Names() []string {
	var names []string
	for n := range ts {
		names = append(names, n)
	}
	return names
}

func (ts targets) DB(_ context.Context, name string) (*pg.DB, error) {
	if db := ts[name]; db != nil {
		return db, nil
	}
	return nil, &pg.UnreachableError{Addr: "127.0.0.1:1", Cause: context.DeadlineExceeded}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	target, _ := pgtest.Empty(t)
	a := newApp(t, func(d *web.Deps) { d.Targets = targets{"app": target} })
	c := a.client()
	r := c.get("/healthz")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "ok\n", r.text())

	r = c.get("/readyz")
	require.Equal(t, http.StatusOK, r.StatusCode, r.text())
	var rd web.Readiness
	require.NoError(t, json.Unmarshal(r.body, &rd))
	require.True(t, rd.Ready)
	require.True(t, rd.Console.OK)
	require.True(t, rd.Targets["app"].OK)
	require.NotEmpty(t, rd.Targets["app"].ServerVersion)
	require.Equal(t, rd.Targets["app"].MaxPreparedTransactions > 0, rd.Targets["app"].TwoPhaseCommit)

	b := newApp(t, onDB(a.db), func(d *web.Deps) { d.Targets = targets{"app": target, "pos": nil} })
	r = b.client().get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.NoError(t, json.Unmarshal(r.body, &rd))
	require.False(t, rd.Ready)
	require.True(t, rd.Console.OK)
	require.True(t, rd.Targets["app"].OK)
	require.False(t, rd.Targets["pos"].OK)
	require.Contains(t, rd.Targets["pos"].Error, "127.0.0.1:1")
}

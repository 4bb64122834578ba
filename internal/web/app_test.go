package web_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/web"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// policy is the test config: two kinds on a target that is not reachable.
const policy = `database: postgres://unused/db
targets:
  app: {dsn: "postgres://127.0.0.1:1/app"}
kinds:
  tenant:
    target: app
    table: tenants
    search: [slug, name]
    root: delete
    archive: 30d
  repo:
    target: app
    table: repos
    search: [slug]
    root: soft
`

// app is one console server on its own fresh database.
type app struct {
	t   *testing.T
	db  *pg.DB
	cfg *config.Config
	srv *httptest.Server
	web *web.Server
}

type option func(*web.Deps)

func newApp(t *testing.T, opts ...option) *app {
	t.Helper()
	return newAppWith(t, policy, nil, opts...)
}

// newAppWith starts a server on a fresh database. edit may change the parsed config before
// the server is built (it gets the server's URL, known before it starts).
func newAppWith(t *testing.T, yaml string, edit func(cfg *config.Config, url string), opts ...option) *app {
	t.Helper()
	deps := web.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(&deps)
	}
	db := deps.DB
	if db == nil {
		db = pgtest.Fresh(t)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	if edit != nil {
		edit(cfg, url)
	}
	deps.Config, deps.DB = cfg, db
	w, err := web.New(deps)
	require.NoError(t, err)
	srv.Config.Handler = w.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &app{t: t, db: db, cfg: cfg, srv: srv, web: w}
}

// user creates a user and returns it with its password.
func (a *app) user(name string, role auth.Role) (*auth.User, string) {
	a.t.Helper()
	pw := "password-of-" + name
	u, err := auth.CreateUser(context.Background(), a.db.Bun, auth.NewUser{Name: name, Role: role, Password: pw})
	require.NoError(a.t, err)
	return u, pw
}

// client is a browser-like client with its own cookie jar that does not follow redirects.
type client struct {
	a   *app
	hc  *http.Client
	jar *cookiejar.Jar
}

func (a *app) client() *client {
	jar, err := cookiejar.New(nil)
	require.NoError(a.t, err)
	return &client{a: a, jar: jar, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// signedIn returns a client signed in as a new user with role.
func (a *app) signedIn(name string, role auth.Role) (*client, *auth.User) {
	a.t.Helper()
	u, pw := a.user(name, role)
	c := a.client()
	r := c.signIn(name, pw, "")
	require.Equal(a.t, http.StatusSeeOther, r.StatusCode, r.text())
	return c, u
}

type response struct {
	*http.Response
	t    *testing.T
	body []byte
}

func (r *response) text() string { return string(r.body) }

func (r *response) doc() *goquery.Document {
	r.t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(string(r.body)))
	require.NoError(r.t, err)
	return d
}

// testid returns the elements with data-testid=id.
func (r *response) testid(id string) *goquery.Selection {
	return r.doc().Find(`[data-testid="` + id + `"]`)
}

func (r *response) location() string { return r.Header.Get("Location") }

func (c *client) do(req *http.Request) *response {
	c.a.t.Helper()
	resp, err := c.hc.Do(req)
	require.NoError(c.a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.a.t, err)
	return &response{Response: resp, t: c.a.t, body: b}
}

func (c *client) get(path string, headers ...string) *response {
	c.a.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.a.srv.URL+path, nil)
	require.NoError(c.a.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// post submits a form; headers are name, value pairs (e.g. "Sec-Fetch-Site", "cross-site").
func (c *client) post(path string, form url.Values, headers ...string) *response {
	c.a.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.a.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(c.a.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

func (c *client) signIn(name, password, next string) *response {
	c.a.t.Helper()
	return c.post("/signin", url.Values{"name": {name}, "password": {password}, "next": {next}}, "Sec-Fetch-Site", "same-origin")
}

// token is the session cookie's value, or "".
func (c *client) token() string {
	u, _ := url.Parse(c.a.srv.URL)
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "tombstone" {
			return ck.Value
		}
	}
	return ""
}

// withToken returns a fresh client that presents the given session token.
func (a *app) withToken(token string) *client {
	c := a.client()
	u, _ := url.Parse(a.srv.URL)
	c.jar.SetCookies(u, []*http.Cookie{{Name: "tombstone", Value: token, Path: "/"}})
	return c
}

// finder is a Finder with canned answers.
type finder map[string][]web.Root

func (f finder) FindRoots(ctx context.Context, kind, query string, limit int) ([]web.Root, error) {
	switch query {
	case "boom":
		return nil, errors.New("search exploded: secret detail")
	case "panic":
		panic("search panicked: secret detail")
	}
	roots := f[kind+":"+query]
	if len(roots) > limit {
		roots = roots[:limit]
	}
	return roots, nil
}

// onDB makes a second server share another's database.
func onDB(db *pg.DB) option { return func(d *web.Deps) { d.DB = db } }

func withFinder(f web.Finder) option { return func(d *web.Deps) { d.Finder = f } }

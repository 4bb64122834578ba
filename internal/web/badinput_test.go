package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// The bad-input sweep sends every route every kind of bad value in each of its path values,
// query parameters and form fields, one at a time, with the other inputs valid, as a
// signed-in user whose role may use the route. Each answer must be a 4xx page that says what
// was wrong (or a form shown again with its error), never a 500, and must change nothing: the
// console's requests, approvals, users and audit log are compared before and after. Refused
// decisions are audited by design (self_approval_refused, stale_approval_refused, …) and an
// export records itself, so those events are allowed.

// class is a kind of bad value.
type class string

const (
	empty     class = "empty"
	huge      class = "huge"         // 1 MB
	badUTF8   class = "invalid-utf8" // bytes that are not UTF-8
	letters   class = "letters"      // letters where a number belongs
	negative  class = "negative"
	overflow  class = "overflow"   // beyond int64
	otherUser class = "other-user" // the id of someone else's request
)

// textClasses apply to every input; numberClasses to inputs holding a number, date or choice.
var (
	textClasses   = []class{empty, huge, badUTF8}
	numberClasses = []class{empty, huge, badUTF8, letters, negative, overflow}
)

// input is one path value, query parameter or form field of a route.
type input struct {
	name    string
	classes []class
	// lenient lists the classes the route may ignore (200, or a redirect, with nothing
	// changed): an optional filter left out, a value that only matters elsewhere.
	lenient []class
	// accepts lists the classes that are valid values here, so the request may succeed.
	accepts []class
}

// sweepRoute is how the sweep calls one registered route.
type sweepRoute struct {
	pattern string // as registered
	as      string // the user: anon, alice (requester), bob (approver), carol (admin), vic (viewer)
	path    []input
	query   []input
	form    []input
	// valid gives the valid value of every input; the case under test replaces one.
	valid func(s *sweep) map[string]string
	// reset undoes an accepted request, so later cases start from the same state.
	reset func(s *sweep)
}

func ids(names ...string) []input {
	var in []input
	for _, n := range names {
		in = append(in, input{name: n, classes: numberClasses})
	}
	return in
}

// requestIDs is a request id in the path; others adds the id of another user's request.
func requestIDs(others bool) []input {
	in := input{name: "id", classes: slices.Clone(numberClasses)}
	if others {
		in.classes = append(in.classes, otherUser)
	}
	return []input{in}
}

func texts(names ...string) []input {
	var in []input
	for _, n := range names {
		in = append(in, input{name: n, classes: textClasses})
	}
	return in
}

// sweep is the console under test, its users and requests.
type sweep struct {
	t       *testing.T
	a       *demoApp
	clients map[string]*client
	users   map[string]*auth.User
	mine    *approval.Request // alice's pending request for tenant 1
	other   *approval.Request // dan's pending request for tenant 2
	digest3 string            // the exact preview digest of tenant 3 (no request)
}

var sweepRoutes = []sweepRoute{
	{pattern: "GET /signin", as: "anon", query: []input{
		{name: "next", classes: textClasses, lenient: textClasses},
		{name: "reauth", classes: numberClasses, lenient: numberClasses},
	}},
	{pattern: "POST /signin", as: "anon", form: append(texts("name", "password"),
		input{name: "next", classes: textClasses}),
		valid: func(*sweep) map[string]string {
			return map[string]string{"name": "nobody", "password": "wrong-password", "next": "/requests"}
		}},
	{pattern: "POST /signout", as: "anon", form: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},
	{pattern: "GET /auth/oidc/start", as: "anon", query: texts("next")},
	{pattern: "GET /auth/oidc/callback", as: "anon", query: texts("state", "code", "error")},
	{pattern: "GET /{$}", as: "alice", query: []input{
		{name: "q", classes: textClasses, lenient: []class{empty, badUTF8}},
		{name: "kind", classes: numberClasses, lenient: numberClasses},
	}, valid: func(*sweep) map[string]string { return map[string]string{"q": "acme", "kind": "tenant"} }},

	{pattern: "GET /admin/users", as: "carol", query: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},
	{pattern: "POST /admin/users", as: "carol", form: []input{
		{name: "name", classes: numberClasses, accepts: []class{letters, negative, overflow}}, // valid user names
		{name: "display_name", classes: textClasses, accepts: []class{empty}},
		{name: "role", classes: numberClasses},
		{name: "oidc_subject", classes: textClasses, accepts: []class{empty}},
	}, valid: func(s *sweep) map[string]string {
		return map[string]string{"name": "new" + strconv.FormatInt(time.Now().UnixNano(), 36), "display_name": "New User", "role": "viewer", "oidc_subject": ""}
	}, reset: func(s *sweep) {
		_, err := s.a.db.Pool.Exec(context.Background(), `DELETE FROM users WHERE name = 'abc' OR name LIKE 'new%'`)
		require.NoError(s.t, err)
	}},
	{pattern: "POST /admin/users/{id}/role", as: "carol", path: ids("id"), form: []input{{name: "role", classes: numberClasses}},
		valid: func(s *sweep) map[string]string {
			return map[string]string{"id": strconv.FormatInt(s.users["vic"].ID, 10), "role": "viewer"}
		}},
	{pattern: "POST /admin/users/{id}/disable", as: "carol", path: ids("id")},
	{pattern: "GET /admin/targets", as: "carol", query: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},
	{pattern: "GET /admin/policy", as: "carol", query: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},

	{pattern: "GET /requests", as: "bob", query: []input{
		{name: "tab", classes: numberClasses},
		{name: "state", classes: numberClasses, lenient: numberClasses},
		{name: "kind", classes: numberClasses, lenient: numberClasses},
		{name: "before", classes: numberClasses},
	}, valid: func(*sweep) map[string]string {
		return map[string]string{"tab": "all", "state": "pending", "kind": "tenant", "before": "1000"}
	}},
	// Reading another user's request is allowed (lenient); deciding one is the approver's job,
	// so the other-user ids go to the requester's own actions (cancel, restore).
	{pattern: "GET /requests/{id}", as: "alice", path: []input{{name: "id", classes: append(slices.Clone(numberClasses), otherUser), lenient: []class{otherUser}}}},
	{pattern: "GET /requests/{id}/progress", as: "alice", path: []input{{name: "id", classes: append(slices.Clone(numberClasses), otherUser), lenient: []class{otherUser}}}},
	{pattern: "GET /requests/{id}/drift", as: "bob", path: []input{{name: "id", classes: append(slices.Clone(numberClasses), otherUser), lenient: []class{otherUser}}}},
	{pattern: "POST /requests/{id}/approve", as: "bob", path: requestIDs(false), form: texts("digest"),
		valid: func(s *sweep) map[string]string {
			return map[string]string{"id": strconv.FormatInt(s.mine.ID, 10), "digest": s.mine.Digest}
		}},
	{pattern: "POST /requests/{id}/reject", as: "bob", path: requestIDs(false), form: texts("reason"),
		valid: func(s *sweep) map[string]string {
			return map[string]string{"id": strconv.FormatInt(s.mine.ID, 10), "reason": "The ticket does not match this tenant."}
		}},
	{pattern: "POST /requests/{id}/cancel", as: "alice", path: requestIDs(true)},
	{pattern: "POST /requests/{id}/resume", as: "bob", path: requestIDs(false)},
	{pattern: "POST /requests/{id}/pause", as: "carol", path: requestIDs(false)},
	{pattern: "POST /requests/{id}/continue", as: "carol", path: requestIDs(false)},
	{pattern: "POST /requests/{id}/restore", as: "alice", path: requestIDs(true), form: texts("reason", "ticket_url"),
		valid: func(s *sweep) map[string]string {
			return map[string]string{"id": strconv.FormatInt(s.mine.ID, 10), "reason": "The customer came back after all.", "ticket_url": ""}
		}},

	{pattern: "GET /audit", as: "vic", query: []input{
		{name: "from", classes: numberClasses}, {name: "to", classes: numberClasses},
		{name: "actor", classes: textClasses, lenient: textClasses},
		{name: "action", classes: numberClasses}, {name: "kind", classes: numberClasses, lenient: numberClasses},
		{name: "request", classes: numberClasses}, {name: "before", classes: numberClasses},
	}, valid: auditFilters},
	{pattern: "GET /audit/export.csv", as: "vic", query: exportFilters(), valid: auditFilters},
	{pattern: "GET /audit/export.jsonl", as: "vic", query: exportFilters(), valid: auditFilters},

	{pattern: "GET /kinds/{kind}", as: "alice", path: texts("kind")},
	{pattern: "GET /kinds/{kind}/{key}", as: "alice", path: append(texts("kind"), input{name: "key", classes: numberClasses}),
		query: []input{{name: "exact", classes: textClasses, lenient: textClasses}, {name: "tree", classes: textClasses, lenient: textClasses}},
		valid: previewValues},
	{pattern: "GET /kinds/{kind}/{key}/exact", as: "alice", path: append(texts("kind"), input{name: "key", classes: numberClasses}),
		valid: previewValues},
	{pattern: "GET /kinds/{kind}/{key}/node/{id}", as: "alice", path: append(append(texts("kind"), input{name: "key", classes: numberClasses}), ids("id")...),
		valid: func(s *sweep) map[string]string { v := previewValues(s); v["id"] = "1"; return v }},
	{pattern: "POST /kinds/{kind}/{key}/request", as: "alice",
		path: append(texts("kind"), input{name: "key", classes: numberClasses}),
		form: []input{
			{name: "digest", classes: textClasses},
			{name: "reason", classes: textClasses},
			{name: "ticket_url", classes: textClasses, accepts: []class{empty}},
			// confirm matters only above 1,000 rows; tenant 3 has a handful.
			{name: "confirm", classes: textClasses, accepts: textClasses},
		},
		valid: func(s *sweep) map[string]string {
			v := previewValues(s)
			v["digest"], v["reason"], v["ticket_url"], v["confirm"] = s.digest3, "The customer asked us to close the account.", "https://tickets.example/T-3", "Initech"
			return v
		},
		reset: func(s *sweep) {
			_, err := s.a.db.Pool.Exec(context.Background(), `UPDATE requests SET state = 'cancelled' WHERE root_key = '3' AND state = 'pending'`)
			require.NoError(s.t, err)
		}},

	{pattern: "GET /static/{file}", as: "anon", path: texts("file")},
	{pattern: "GET /healthz", as: "anon", query: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},
	{pattern: "GET /readyz", as: "anon", query: []input{{name: "junk", classes: textClasses, lenient: textClasses}}},
	{pattern: "/", as: "alice", path: []input{{name: "rest", classes: textClasses, lenient: []class{empty}}}},
}

func exportFilters() []input {
	return []input{
		{name: "from", classes: numberClasses}, {name: "to", classes: numberClasses},
		{name: "actor", classes: textClasses, accepts: textClasses},
		{name: "action", classes: numberClasses}, {name: "kind", classes: numberClasses, accepts: numberClasses},
		{name: "request", classes: numberClasses},
	}
}

func auditFilters(*sweep) map[string]string {
	return map[string]string{"from": "2020-01-01", "to": "2099-12-31", "actor": "alice", "action": "requested", "kind": "tenant", "request": "1", "before": "1000"}
}

func previewValues(*sweep) map[string]string { return map[string]string{"kind": "tenant", "key": "3"} }

// registeredPatterns reads the patterns the server registers from the route files, so that a
// route added without a row in sweepRoutes fails the sweep.
func registeredPatterns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("routes*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	re := regexp.MustCompile(`(?:s\.page|s\.public|top\.HandleFunc|top\.Handle)\("([^"]+)"`)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestBadInputSweepCoversEveryRoute(t *testing.T) {
	t.Parallel()
	registered := registeredPatterns(t)
	var swept []string
	for _, r := range sweepRoutes {
		swept = append(swept, r.pattern)
		require.Contains(t, registered, r.pattern, "the sweep has a row for a route that is not registered")
	}
	for _, p := range registered {
		if p == "/" && slices.Contains(swept, "/") {
			continue
		}
		require.Contains(t, swept, p, "route %q has no row in sweepRoutes (badinput_test.go)", p)
	}
}

const sweepTargetDDL = `
CREATE TABLE tenants (id bigint PRIMARY KEY, slug text NOT NULL UNIQUE, name text);
CREATE TABLE sites (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, subdomain text);
INSERT INTO tenants VALUES (1, 'acme', 'Acme'), (2, 'globex', 'Globex'), (3, 'initech', 'Initech');
INSERT INTO sites VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c'), (4, 3, 'd');
`

func newSweep(t *testing.T) *sweep {
	ctx := context.Background()
	target, targetURL := pgtest.Empty(t)
	_, err := target.Pool.Exec(ctx, sweepTargetDDL)
	require.NoError(t, err)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`database: postgres://unused/db
targets:
  app: {dsn: %q}
kinds:
  tenant: {target: app, table: tenants, search: [slug, name], label: "{name}", archive: 30d}
`, targetURL)), nil)
	require.NoError(t, err)
	s := &sweep{t: t, a: newEngineApp(t, cfg), clients: map[string]*client{}, users: map[string]*auth.User{}}
	for name, role := range map[string]auth.Role{"alice": auth.Requester, "dan": auth.Requester, "bob": auth.Approver, "carol": auth.Admin, "vic": auth.Viewer} {
		s.clients[name], s.users[name] = s.a.signedIn(name, role)
	}
	s.clients["anon"] = s.a.client()
	svc := approval.New(cfg)
	open := func(who, key string) *approval.Request {
		u := s.users[who]
		rq, err := svc.Create(ctx, s.a.db.Bun, approval.CreateInput{
			Actor: approval.Actor{ID: u.ID, Name: u.Name}, Preview: s.a.exact("tenant", key), Reason: "The customer asked us to close the account.",
		})
		require.NoError(t, err)
		return rq
	}
	s.mine, s.other = open("alice", "1"), open("dan", "2")
	s.digest3 = s.a.exact("tenant", "3").Digest
	return s
}

// state is what a bad request must not change.
func (s *sweep) state() string {
	var out string
	err := s.a.db.Pool.QueryRow(context.Background(), `SELECT concat_ws(' | ',
		(SELECT count(*) FROM requests), (SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM requests),
		(SELECT count(*) FROM approvals),
		(SELECT string_agg(name || ':' || role || ':' || (disabled_at IS NULL), ',' ORDER BY id) FROM users),
		(SELECT count(*) FROM audit_events WHERE action NOT IN
			('self_approval_refused', 'stale_approval_refused', 'duplicate_approval_refused', 'approval_refused', 'exported')))`).Scan(&out)
	require.NoError(s.t, err)
	return out
}

func (s *sweep) value(c class) string {
	switch c {
	case huge:
		return strings.Repeat("a", 1<<20)
	case badUTF8:
		return "ab\xff\xfecd"
	case letters:
		return "abc"
	case negative:
		return "-5"
	case overflow:
		return "9223372036854775808"
	case otherUser:
		return strconv.FormatInt(s.other.ID, 10)
	}
	return ""
}

// build makes the request for route r with values v.
func (s *sweep) build(r sweepRoute, v map[string]string) *http.Request {
	method, path, ok := strings.Cut(r.pattern, " ")
	if !ok {
		method, path = http.MethodGet, "/{rest}"
	}
	path = strings.TrimSuffix(path, "{$}")
	for _, in := range r.path {
		path = strings.Replace(path, "{"+in.name+"}", url.PathEscape(v[in.name]), 1)
	}
	q := url.Values{}
	for _, in := range r.query {
		if x, ok := v[in.name]; ok {
			q.Set(in.name, x)
		}
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	form := url.Values{}
	for _, in := range r.form {
		if x, ok := v[in.name]; ok {
			form.Set(in.name, x)
		}
	}
	req, err := http.NewRequest(method, s.a.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(s.t, err)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return req
}

// helpful reports whether an error answer says what went wrong: an error page with its
// message, or a form with a field error, and not the generic text of a 500.
func helpful(r *response) bool {
	if strings.Contains(r.text(), "unexpected error") {
		return false
	}
	switch {
	case r.StatusCode == http.StatusRequestHeaderFieldsTooLarge, r.StatusCode == http.StatusRequestURITooLong:
		return true // net/http refuses the request line before any handler runs
	case r.StatusCode == http.StatusNotFound && strings.HasPrefix(r.Request.URL.Path, "/static/"):
		return true // static files are addressed by the pages, not by people
	}
	d := r.doc()
	return d.Find(`[data-testid^="error-"], [data-testid$="-error"], [data-testid$="-problem"]`).FilterFunction(func(_ int, sel *goquery.Selection) bool {
		return strings.TrimSpace(sel.Text()) != ""
	}).Length() > 0
}

func TestBadInputSweep(t *testing.T) {
	t.Parallel()
	s := newSweep(t)
	cases := 0
	for _, r := range sweepRoutes {
		inputs := append(append(slices.Clone(r.path), r.query...), r.form...)
		for _, in := range inputs {
			for _, c := range in.classes {
				name := r.pattern + " " + in.name + "=" + string(c)
				v := map[string]string{}
				if r.valid != nil {
					v = r.valid(s)
				}
				v[in.name] = s.value(c)
				cases++
				before := s.state()
				res := s.clients[r.as].do(s.build(r, v))
				after := s.state()
				st := res.StatusCode
				switch {
				case st >= 500:
					t.Errorf("%s: %d\n%s", name, st, res.text())
				case slices.Contains(in.accepts, c) && st < 400:
					if r.reset != nil {
						r.reset(s)
					}
				case slices.Contains(in.lenient, c) && st < 400:
					if before != after {
						t.Errorf("%s: %d changed the console's state:\n%s\n%s", name, st, before, after)
					}
				case c == empty && has(r.query, in.name) && st < 400:
					// An empty query parameter is one left out: the default applies.
					if before != after && !slices.Contains(in.accepts, c) {
						t.Errorf("%s: %d changed the console's state:\n%s\n%s", name, st, before, after)
					}
				case c == empty && has(r.path, in.name) && (st == http.StatusMovedPermanently || st == http.StatusTemporaryRedirect):
					// An empty path segment: net/http redirects to the cleaned path.
					if before != after || !strings.HasPrefix(res.location(), "/") {
						t.Errorf("%s: 301 to %q, state %q → %q", name, res.location(), before, after)
					}
				case st < 400:
					t.Errorf("%s: %d, want a 4xx (Location %q)", name, st, res.location())
				default:
					if !helpful(res) {
						t.Errorf("%s: %d without a helpful message:\n%.2000s", name, st, res.text())
					}
					if before != after {
						t.Errorf("%s: %d changed the console's state:\n%s\n%s", name, st, before, after)
					}
				}
			}
		}
	}
	t.Logf("%d bad requests over %d routes", cases, len(sweepRoutes))
}

func has(ins []input, name string) bool {
	return slices.ContainsFunc(ins, func(in input) bool { return in.name == name })
}

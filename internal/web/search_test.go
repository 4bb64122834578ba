package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
)

// resultByLabel finds a search result row by its link text.
func resultByLabel(r *response, label string) *goquery.Selection {
	return r.doc().Find(`[data-testid="result"]`).FilterFunction(func(_ int, s *goquery.Selection) bool {
		return s.Find(`[data-testid="result-link"]`).Text() == label
	})
}

func badgeTexts(s *goquery.Selection) []string {
	var out []string
	s.Find(`[data-testid="badge"]`).Each(func(_ int, b *goquery.Selection) { out = append(out, b.Text()) })
	return out
}

func testSearchResults(t *testing.T, d *demoTargets) {
	ctx := context.Background()
	a := d.app(t, nil)
	c, _ := a.signedIn("sara", auth.Viewer)

	// Results show label, key and a link to the preview.
	r := c.get("/?kind=tenant&q=acme")
	require.Equal(t, http.StatusOK, r.StatusCode)
	acme := resultByLabel(r, "Acme Corporation (acme)")
	require.Equal(t, 1, acme.Length(), r.testid("results").Text())
	require.Equal(t, "1", acme.Find(`[data-testid="result-key"]`).Text())
	require.Equal(t, "/kinds/tenant/1", acme.Find(`[data-testid="result-link"]`).AttrOr("href", ""))
	require.Empty(t, badgeTexts(acme))

	// A key finds its root too.
	r = c.get("/?kind=tenant&q=2")
	require.Equal(t, "Globex Corporation (globex)", r.testid("result-link").First().Text())

	// Tombstoned roots say so.
	r = c.get("/?kind=tenant&q=soylent")
	require.Equal(t, []string{"tombstoned"}, badgeTexts(resultByLabel(r, "Soylent Corporation (soylent)")))

	// A root with an open request says so.
	requester, _ := a.user("rex", auth.Requester)
	p := a.exact("tenant", "globex")
	_, err := approval.New(a.cfg).Create(ctx, a.db.Bun, approval.CreateInput{
		Actor: approval.Actor{ID: requester.ID, Name: requester.Name}, Preview: p, Reason: "Customer left, erase their data",
	})
	require.NoError(t, err)
	r = c.get("/?kind=tenant&q=globex")
	require.Equal(t, []string{"open request"}, badgeTexts(resultByLabel(r, "Globex Corporation (globex)")))

	// Other kinds: sites by subdomain, repos by name; a search that matches nothing says so.
	r = c.get("/?kind=site&q=acme-shop")
	require.Positive(t, r.testid("result").Length())
	require.True(t, strings.HasPrefix(r.testid("result-link").First().AttrOr("href", ""), "/kinds/site/"))
	r = c.get("/?kind=repo&q=zzzz-nothing")
	require.Equal(t, 1, r.testid("no-results").Length())

	// htmx gets only the results region; a plain request, or htmx restoring history, the page.
	frag := c.get("/?kind=tenant&q=acme", "HX-Request", "true")
	require.Equal(t, http.StatusOK, frag.StatusCode)
	require.NotContains(t, frag.text(), "<html")
	require.Zero(t, frag.testid("topbar").Length())
	require.Equal(t, 1, frag.testid("results").Length())
	require.Equal(t, "results", frag.doc().Find("body > *").First().AttrOr("id", ""))
	require.Equal(t, 1, resultByLabel(frag, "Acme Corporation (acme)").Length())
	require.Contains(t, frag.Header.Values("Vary"), "HX-Request")
	full := c.get("/?kind=tenant&q=acme", "HX-Request", "true", "HX-History-Restore-Request", "true")
	require.Equal(t, 1, full.testid("topbar").Length())
	require.Equal(t, 1, full.testid("kind-tabs").Length())
}

// TestSearchUnreachableTarget: a target that is down is named on the search page, the preview
// page and the policy page; none of them is a 500.
func TestSearchUnreachableTarget(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("test.yaml", []byte(policy), func(string) (string, bool) { return "", false })
	require.NoError(t, err)
	a := newEngineApp(t, cfg)
	c, _ := a.signedIn("una", auth.Admin)

	r := c.get("/?kind=tenant&q=acme")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	checkHeaders(t, r, "search with a target down")
	msg := r.testid("results-problem").Text()
	require.Contains(t, msg, `"app"`)
	require.Contains(t, msg, "cannot be reached")
	require.Equal(t, 1, r.testid("search-form").Length(), "the page is still the search page")

	frag := c.get("/?kind=tenant&q=acme", "HX-Request", "true")
	require.Equal(t, http.StatusOK, frag.StatusCode, "htmx swaps only 2xx answers")
	require.Contains(t, frag.testid("results-problem").Text(), `"app"`)

	r = c.get("/kinds/tenant/1")
	require.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	require.Equal(t, "30", r.Header.Get("Retry-After"))
	require.Contains(t, r.testid("error-message").Text(), `"app"`)

	r = c.get("/admin/policy")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "app", r.testid("unreachable-target").AttrOr("data-target", ""))
	require.Equal(t, 2, r.testid("plan-unchecked").Length())
	require.Equal(t, 2, r.testid("policy-kind").Length())
}

// TestSearchFragment: with a canned finder, htmx gets the results region alone and every
// other request the page.
func TestSearchFragment(t *testing.T) {
	t.Parallel()
	a := newApp(t, withFinder(finder{"tenant:acme": {{Key: "1", Label: "Acme (acme)"}, {Key: "a/b", Label: "Slash <b>", OpenRequest: true}}}))
	c, _ := a.signedIn("fern", auth.Viewer)
	page := c.get("/?kind=tenant&q=acme")
	require.Equal(t, 1, page.testid("topbar").Length())
	require.Equal(t, "/", page.testid("search-form").AttrOr("hx-get", ""))
	require.Equal(t, "#results", page.testid("search-form").AttrOr("hx-target", ""))
	require.Contains(t, page.testid("search-form").AttrOr("hx-trigger", ""), "delay:250ms")

	frag := c.get("/?kind=tenant&q=acme", "HX-Request", "true")
	require.NotContains(t, frag.text(), "<html")
	rows := frag.testid("result")
	require.Equal(t, 2, rows.Length())
	require.Equal(t, "/kinds/tenant/a%2Fb", rows.Last().Find(`[data-testid="result-link"]`).AttrOr("href", ""), "keys are escaped in links")
	require.Equal(t, "Slash <b>", rows.Last().Find(`[data-testid="result-link"]`).Text())
	require.Equal(t, []string{"open request"}, badgeTexts(rows.Last()))
	empty := c.get("/?kind=tenant&q=", "HX-Request", "true")
	require.Equal(t, 1, empty.testid("results-hint").Length())
}

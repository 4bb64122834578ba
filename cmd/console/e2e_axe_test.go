package main

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// TestAxeReportsViolations shows that the accessibility pass of the suite can fail: on a page
// with an unlabelled field and grey-on-grey text, axe-core reports both as serious, and on the
// same page done right it reports nothing serious.
func TestAxeReportsViolations(t *testing.T) {
	t.Parallel()
	ctx := webtest.Browser(t, 800, 600, time.Minute)
	page := func(body string) string {
		return "data:text/html," + url.PathEscape(`<!DOCTYPE html><html lang="en"><head><title>t</title></head><body><main>`+body+`</main></body></html>`)
	}

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page(
		`<h1>Search</h1><form><input name="q"><button>Go</button></form><p style="color:#bbb;background:#ccc">Low contrast</p>`))))
	bad, passed := axeRun(t, ctx, "a broken page")
	require.Positive(t, passed)
	all := strings.Join(bad, "\n")
	require.Contains(t, all, "label")
	require.Contains(t, all, "color-contrast")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(page(
		`<h1>Search</h1><form><label for="q">Search</label><input id="q" name="q"><button>Go</button></form><p style="color:#333;background:#fff">Readable</p>`))))
	bad, _ = axeRun(t, ctx, "a fixed page")
	require.Empty(t, bad)
}

package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/web/webtest"
)

// axeSource is axe-core, vendored from npm (see testdata/axe/README.md).
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// person is one user's browser tab, in a browser context (cookie jar) of its own.
type person struct {
	t    *testing.T
	e    *e2e
	name string
	ctx  context.Context
	// js is false when the tab runs with script execution disabled.
	js bool
}

// browserFor starts one Chromium for a test and returns a function that opens a tab for a
// demo user, each in its own browser context, with or without JavaScript.
func (e *e2e) browserFor(js bool) func(name string) *person {
	root := webtest.Browser(e.t, 1280, 900, 4*time.Minute)
	return func(name string) *person {
		ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
		e.t.Cleanup(cancel)
		p := &person{t: e.t, e: e, name: name, ctx: ctx, js: js}
		if !js {
			p.do(chromedp.Action[chromedp.Void](func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
				_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
				return chromedp.Void{}, err
			}))
		}
		return p
	}
}

func (p *person) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	require.NoError(p.t, chromedp.Do(p.ctx, steps...), "%s's browser", p.name)
}

func (p *person) open(path string, wait string) {
	p.t.Helper()
	url := path
	if strings.HasPrefix(path, "/") {
		url = p.e.base + path
	}
	p.do(chromedp.Navigate(url))
	p.expect(wait)
}

// expect waits until the page shows sel; an error page instead fails the test at once, with
// its message.
func (p *person) expect(sel string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(sel + `, [data-testid="error-page"]`)))
	if p.count(sel) == 0 {
		p.t.Fatalf("%s's browser shows an error page at %s instead of %s: %s %s", p.name, p.location(), sel,
			p.attr(`[data-testid="error-page"]`, "data-status"), p.text(`[data-testid="error-page"]`))
	}
}

func (p *person) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(p.t, err, sel)
	return strings.Join(strings.Fields(s), " ")
}

func (p *person) count(sel string) int {
	p.t.Helper()
	nodes, err := chromedp.Run(p.ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	require.NoError(p.t, err, sel)
	return len(nodes)
}

func (p *person) attr(sel, name string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	require.NoError(p.t, err, sel)
	return v.Value
}

// attrsAll returns the attributes of every element sel matches.
func (p *person) attrsAll(sel string) []map[string]string {
	p.t.Helper()
	if p.count(sel) == 0 {
		return nil
	}
	v, err := chromedp.Run(p.ctx, chromedp.AttributesAll(chromedp.CSSAll(sel)))
	require.NoError(p.t, err, sel)
	return v
}

func (p *person) location() string {
	p.t.Helper()
	loc, err := chromedp.Run(p.ctx, chromedp.Location())
	require.NoError(p.t, err)
	return loc
}

// signIn fills in the sign-in form the browser is on and waits for wait.
func (p *person) signIn(wait string) {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-form"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-name"]`), p.name),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="signin-password"]`), demoPassword(p.name)),
		chromedp.Click(chromedp.CSS(`[data-testid="signin-submit"]`)))
	p.expect(wait)
}

// shoot writes what the page shows at desktop width (name.png, 1280×900) and at phone width
// (name-phone.png, 390×844 at twice the pixel density) to dir, and goes back to the desktop
// width. Only the first screen is taken: the README shows what a user sees on arrival. An
// empty dir writes nothing.
func (p *person) shoot(dir, name string) {
	p.t.Helper()
	if dir == "" {
		return
	}
	require.NoError(p.t, os.MkdirAll(dir, 0o755))
	for _, v := range []struct {
		file  string
		w, h  int64
		scale float64
	}{{name + "-phone.png", 390, 844, 2}, {name + ".png", 1280, 900, 1}} {
		p.do(chromedp.EmulateViewport(v.w, v.h, chromedp.EmulateScale(v.scale)),
			chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0); 0`))
		png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
		require.NoError(p.t, err, "screenshot %s", v.file)
		require.NoError(p.t, os.WriteFile(filepath.Join(dir, v.file), png, 0o644))
	}
}

// axeViolation is one rule axe-core found broken, with the elements that break it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axe runs axe-core on the page the browser shows and fails the test on any violation of
// impact serious or critical; lesser ones are logged. page names the page in messages.
func (p *person) axe(page string) {
	p.t.Helper()
	bad, passed := axeRun(p.t, p.ctx, page)
	require.Positive(p.t, passed, "axe-core checked rules on %s", page)
	require.Empty(p.t, bad, "accessibility violations on %s", page)
}

// axeRun injects axe-core into the page ctx shows and runs it. It returns the violations of
// impact serious or critical, one description each, and how many rules passed; lesser
// violations are logged.
func axeRun(t *testing.T, ctx context.Context, page string) (bad []string, passed int) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axeSource+";0"))
	require.NoError(t, err, "inject axe-core into %s", page)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`axe.run(document).then(r => JSON.stringify({violations: r.violations, passed: r.passes.length}))`,
		chromedp.EvalAwaitPromise))
	require.NoError(t, err, "run axe-core on %s", page)
	var out struct {
		Violations []axeViolation `json:"violations"`
		Passed     int            `json:"passed"`
	}
	require.NoError(t, json.Unmarshal([]byte(res), &out))
	for _, v := range out.Violations {
		var where []string
		for i, n := range v.Nodes {
			if i == 5 {
				where = append(where, fmt.Sprintf("… and %d more", len(v.Nodes)-5))
				break
			}
			where = append(where, fmt.Sprintf("%v %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", " ")))
		}
		line := fmt.Sprintf("[%s] %s: %s\n    %s", v.Impact, v.ID, v.Help, strings.Join(where, "\n    "))
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, line)
		} else {
			t.Logf("axe on %s (not failing): %s", page, line)
		}
	}
	return bad, out.Passed
}

// allowDownloads makes the tab's browser context save downloads into dir.
func (p *person) allowDownloads(dir string) {
	p.t.Helper()
	c := chromedp.FromContext(p.ctx)
	_, err := cdp.Call(p.ctx, c.Browser, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir, BrowserContextID: c.BrowserContextID,
	})
	require.NoError(p.t, err)
}

// waitFile waits for a completely downloaded file in dir and returns its path.
func waitFile(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, en := range entries {
			if !strings.HasSuffix(en.Name(), ".crdownload") && !en.IsDir() {
				return filepath.Join(dir, en.Name())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no download in %s within 30s", dir)
	return ""
}

// requestID is the number of the request page the browser shows.
func (p *person) requestID() int64 {
	p.t.Helper()
	id, err := strconv.ParseInt(p.attr(`[data-testid="request"]`, "data-request"), 10, 64)
	require.NoError(p.t, err)
	return id
}

// waitState waits until the request page shows state. With JavaScript the page updates
// itself (htmx polls the progress and reloads once the run ends); without it the person
// reloads the page, as they would.
func (p *person) waitState(state string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// The page may be reloading: read it with a short bound and try again.
		ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="request"]')?.dataset.state ?? ""`))
		cancel()
		if err == nil && got == state {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("request page of %s did not reach %s within %s (it shows %q, %v)", p.name, state, timeout, got, err)
		}
		time.Sleep(500 * time.Millisecond)
		if !p.js {
			p.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="request"]`)))
		}
	}
}

// signInWithKeyboard signs in on the sign-in page with the keyboard alone: type the name,
// Tab to the password, type it, Enter.
func (p *person) signInWithKeyboard() {
	p.t.Helper()
	p.do(chromedp.WaitVisible(chromedp.CSS(`[data-testid="signin-name"]`)))
	require.Equal(p.t, "signin-name", p.focused(), "the name field has the focus when the page opens")
	p.do(chromedp.KeyEvent(p.name), chromedp.KeyEvent("\t"))
	require.Equal(p.t, "signin-password", p.focused())
	p.do(chromedp.KeyEvent(demoPassword(p.name)), chromedp.KeyEvent("\r"))
	p.expect(`[data-testid="request"]`)
}

// focused is the data-testid of the element that has the focus.
func (p *person) focused() string {
	p.t.Helper()
	id, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.activeElement?.dataset?.testid ?? ""`))
	require.NoError(p.t, err)
	return id
}

// pressUntilFocused moves the focus with Tab, from the top of the page, until the element
// with data-testid testid has it, checks that the focus is visible (an outline or a ring),
// and presses Enter.
func (p *person) pressUntilFocused(testid string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](`document.activeElement?.blur(); window.scrollTo(0, 0); 0`))
	for i := 0; i < 100; i++ {
		p.do(chromedp.KeyEvent("\t"))
		if p.focused() != testid {
			continue
		}
		ring, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`(() => {
			const s = getComputedStyle(document.activeElement);
			return (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0 ? "outline " : "") + (s.boxShadow !== "none" ? "shadow" : "");
		})()`))
		require.NoError(p.t, err)
		require.NotEmpty(p.t, strings.TrimSpace(ring), "the focused %s shows a focus ring", testid)
		p.do(chromedp.KeyEvent("\r"))
		return
	}
	p.t.Fatalf("%s cannot be reached with Tab", testid)
}

// waitProgress waits until the request page shows the progress of n targets (htmx polls the
// panel; without JavaScript the person reloads).
func (p *person) waitProgress(n int) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-testid="target-progress"]').length`))
		cancel()
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the request page shows the progress of %d targets, not %d (%v)", got, n, err)
		}
		time.Sleep(300 * time.Millisecond)
		if !p.js {
			p.do(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`[data-testid="request"]`)))
		}
	}
}

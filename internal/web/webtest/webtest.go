// Package webtest runs browser tests against the console with Debian's Chromium through the
// DevTools protocol (chromedp). Chromium is required: without it the tests fail with an
// instruction, they never skip.
package webtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian installs Chromium.
const ChromiumPath = "/usr/bin/chromium"

// Browser starts a fresh headless Chromium (its own profile directory) with a window of
// width×height CSS pixels and returns a chromedp context for it. The browser is closed when
// the test ends. Every action should use the returned context, bounded by timeout.
func Browser(t testing.TB, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browser tests need Chromium at %s: install it with `apt-get update && apt-get install -y chromium` (%v)", ChromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, on a context without a deadline (a deadline on the first run
	// bounds the browser process itself), so a broken installation fails here clearly.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start Chromium (%s): %v", ChromiumPath, err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// Screenshot saves a PNG of the whole page to dir/name and returns its path. dir defaults to
// $TOMBSTONE_SCREENSHOTS, else a temporary directory of the test.
func Screenshot(t testing.TB, ctx context.Context, dir, name string) string {
	t.Helper()
	if dir == "" {
		dir = os.Getenv("TOMBSTONE_SCREENSHOTS")
	}
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

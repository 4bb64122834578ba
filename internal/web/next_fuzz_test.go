package web

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext checks that SafeNext returns either its input or "/", and that whatever it
// returns is a path on this site however a browser reads it: resolved against the console's
// own address it stays on that host and scheme, and neither the raw text nor its
// percent-decoded path starts with two slashes or holds a backslash, and neither holds the
// control characters that could split a header or vanish in a browser (which drops tabs and
// newlines and reads a backslash as a slash).
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"/", "/requests/7", "/?kind=tenant&q=acme", "//evil.example", "/\\evil.example",
		"/%2F%2Fevil.example", "https://evil.example/", "javascript:alert(1)", "/a\tb",
		"/\t/evil.example", "/%5c%5cevil", "/.//evil", "/x?next=//evil#//evil", "/%E2%80%A8",
	} {
		f.Add(s)
	}
	base, err := url.Parse("https://console.example/requests/1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := SafeNext(next)
		if got != "/" && got != next {
			t.Fatalf("SafeNext(%q) = %q: neither the input nor /", next, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || len(got) > 2048 {
			t.Fatalf("SafeNext(%q) = %q: not a local path", next, got)
		}
		if strings.ContainsAny(got, "\\") || strings.ContainsFunc(got, isControl) {
			t.Fatalf("SafeNext(%q) = %q: backslash or control character", next, got)
		}
		u, err := base.Parse(got)
		if err != nil {
			t.Fatalf("SafeNext(%q) = %q does not parse: %v", next, got, err)
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
			t.Fatalf("SafeNext(%q) = %q leads to %s", next, got, u)
		}
		p, err := url.PathUnescape(strings.SplitN(strings.SplitN(got, "?", 2)[0], "#", 2)[0])
		if err != nil {
			return // a path a browser cannot decode stays on the site as it is
		}
		if strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\x00\t\n\r") {
			t.Fatalf("SafeNext(%q) = %q decodes to %q", next, got, p)
		}
	})
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' }

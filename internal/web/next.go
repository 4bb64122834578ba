package web

import (
	"net/url"
	"strings"
)

// SafeNext returns next when it is a path on this site, and "/" otherwise. It is the only
// check between a user-supplied return path (?next=) and a redirect, so it refuses anything a
// browser could read as another host or scheme: "//host", "/\host", any backslash, a scheme
// ("javascript:", "https:"), control characters, and encoded variants that decode to those.
func SafeNext(next string) string {
	const home = "/"
	if next == "" || len(next) > 2048 || next[0] != '/' {
		return home
	}
	if strings.ContainsAny(next, "\\") {
		return home
	}
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return home
		}
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return home
	}
	// Percent-encoded slashes, backslashes or controls could turn into the forms above after
	// a proxy or browser decodes them; refuse them in the path.
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return home
	}
	if p := u.Path; p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\") {
		return home
	}
	lower := strings.ToLower(u.RawPath + u.EscapedPath())
	for _, bad := range []string{"%2f", "%5c", "%00", "%0a", "%0d", "%09"} {
		if strings.Contains(lower, bad) {
			return home
		}
	}
	return next
}

package templates

import (
	"fmt"
	"github.com/tombstone-console/tombstone/internal/preview"
	"net/url"
	"strings"
	"time"
)

// Count formats n with thousands separators: 1234567 → "1,234,567".
func Count[T ~int | ~int64](n T) string { return preview.Thousands(int64(n)) }

// Ago says how long before now t was, coarsely: "just now", "5 minutes ago", "3 days ago";
// times in the future read "in 5 minutes".
func Ago(t, now time.Time) string {
	d := now.Sub(t)
	suffix := " ago"
	prefix := ""
	if d < 0 {
		d, suffix, prefix = -d, "", "in "
	}
	unit := func(n int, word string) string {
		if n != 1 {
			word += "s"
		}
		return fmt.Sprintf("%s%d %s%s", prefix, n, word, suffix)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return unit(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return unit(int(d/time.Hour), "hour")
	case d < 60*24*time.Hour:
		return unit(int(d/(24*time.Hour)), "day")
	default:
		return t.UTC().Format("2 Jan 2006")
	}
}

// Absolute is the full UTC time shown on hover.
func Absolute(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func statusTitle(status int) string {
	switch status {
	case 403:
		return "Not allowed"
	case 404:
		return "Not found"
	case 409:
		return "Conflict"
	case 422:
		return "Check the form"
	case 429:
		return "Too many attempts"
	case 503:
		return "Unavailable"
	default:
		return "Something went wrong"
	}
}

func joinOr(items []string, empty string) string {
	if len(items) == 0 {
		return empty
	}
	return strings.Join(items, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// ssoURL is the SSO start link, carrying the return path.
func ssoURL(next string) string {
	if next == "" || next == "/" {
		return "/auth/oidc/start"
	}
	return "/auth/oidc/start?next=" + url.QueryEscape(next)
}

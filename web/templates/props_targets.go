package templates

import "strings"

// Targets is the admin targets page: each target database's health, and how each kind that
// spans several targets will execute.
type Targets struct {
	Targets []TargetHealth
	// Spanning lists the kinds whose deletions reach more than one target.
	Spanning []TargetSpan
}

// TargetHealth is one target as /readyz reports it, with its schema fingerprint.
type TargetHealth struct {
	Name      string
	Reachable bool
	// Problem says why the target is not reachable.
	Problem       string
	ServerVersion string
	// MaxPreparedTransactions > 0 lets the target take part in a two-phase commit.
	MaxPreparedTransactions int
	// Fingerprint is the hash of the schema previews are checked against; empty when it could
	// not be read.
	Fingerprint string
	// Kinds are the kinds that reach this target (as root or through also links).
	Kinds []string
}

// TargetSpan is a kind that reaches several targets, and how its deletions will commit.
type TargetSpan struct {
	Kind    string
	Targets []string
	// Mode is "atomic" (every target allows prepared transactions), "ordered" (they run
	// one after another and a stopped request can be resumed) or "unknown" (a target is
	// unreachable).
	Mode string
	// Reason names the targets that decide the mode.
	Reason string
}

// versionNumber is the leading version number of a server_version such as
// "15.20 (Debian 15.20-0+deb12u1)"; the page shows the whole string on hover.
func versionNumber(v string) string {
	if i := strings.IndexByte(v, ' '); i > 0 {
		return v[:i]
	}
	return v
}

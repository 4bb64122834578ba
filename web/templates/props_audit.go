package templates

import (
	"strings"
	"time"
)

// Audit is the audit page: filters, one page of events (newest first), the chain's status and
// the export links.
type Audit struct {
	Filter  AuditFilter
	Actions []string
	Kinds   []string
	// Errors are per-filter messages (from, to, request) after an invalid submission.
	Errors map[string]string
	Events []AuditEvent
	// Older is the URL of the next (older) page, "" on the last; Newest returns to the first
	// page, "" on it.
	Older  string
	Newest string
	Chain  ChainStatus
	// ExportCSV and ExportJSONL download the events matching the filters.
	ExportCSV   string
	ExportJSONL string
}

// AuditFilter is the filter form's values, as typed.
type AuditFilter struct {
	From    string // yyyy-mm-dd, inclusive
	To      string // yyyy-mm-dd, inclusive
	Actor   string
	Action  string
	Kind    string
	Request string
}

// Active reports whether any filter is set.
func (f AuditFilter) Active() bool {
	return f.From != "" || f.To != "" || f.Actor != "" || f.Action != "" || f.Kind != "" || f.Request != ""
}

// AuditEvent is one row of the audit table.
type AuditEvent struct {
	Seq        int64
	At         time.Time
	Actor      string
	Action     string
	RequestID  int64
	RequestURL string
	Kind       string
	Root       string
	Reason     string
	Hash       string
}

// ChainStatus is the result of verifying the hash chain.
type ChainStatus struct {
	// Checked is false when verification could not run; Error says why.
	Checked bool
	Error   string
	OK      bool
	// Through is the last verified event (0 for an empty log).
	Through int64
	// BrokenAt and Reason say where and why a broken chain fails.
	BrokenAt int64
	Reason   string
	Head     string
	At       time.Time
}

// auditTone colours an action's badge: refusals and failures red, decisions and executions
// green, everything else neutral. The badge's text always names the action.
func auditTone(action string) string {
	switch {
	case strings.HasSuffix(action, "_refused"), action == "rejected", action == "execution_failed", action == "drifted":
		return "tone-bad"
	case action == "approved", action == "executed", action == "restored":
		return "tone-good"
	default:
		return "badge-muted"
	}
}

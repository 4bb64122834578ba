package templates

import (
	"strconv"
	"time"

	"github.com/a-h/templ"
)

// Requests is the requests list: tabs (awaiting me, mine, all), filters and one page of rows,
// newest first.
type Requests struct {
	Tabs []RequestTab
	// Tab, State and Kind are the active tab and filters ("" for any state or kind).
	Tab    string
	State  string
	Kind   string
	States []string
	Kinds  []string
	Rows   []RequestRow
	// Older is the URL of the next (older) page, "" on the last page; Newest goes back to the
	// first page, "" on it.
	Older  string
	Newest string
	// Empty says why there are no rows, in words fit for the active tab.
	Empty string
}

// RequestTab is one tab of the requests list.
type RequestTab struct {
	Name   string
	Label  string
	URL    string
	Active bool
	// Count is shown next to the label when positive (the awaiting tab).
	Count int
}

// RequestRow is one request in the list.
type RequestRow struct {
	ID        int64
	URL       string
	Kind      string
	Restore   bool
	RootLabel string
	RootKey   string
	State     string
	Rows      int64
	Requester string
	Created   time.Time
	Approvals int
	Required  int
}

// RequestPage is one request: its status, the frozen preview, the people involved, the
// decisions the viewer may take and, once it runs, its progress and results.
type RequestPage struct {
	ID      int64
	URL     string
	Restore bool
	// RestoresURL links the deletion a restore request undoes.
	RestoresID  int64
	RestoresURL string

	Kind      string
	Target    string
	RootTable string
	RootKey   string
	RootLabel string
	Action    string // the root's action: delete or soft
	// State is the request's state as the viewer should read it: a pending request past its
	// deadline reads "expired" before the sweep moves it.
	State   string
	Digest  string
	Created time.Time
	Expires time.Time
	// Decided is when it left pending; DecidedBy and DecisionReason are set for a rejection
	// or a cancellation.
	Decided        time.Time
	DecidedBy      string
	DecisionReason string

	Requester string
	Reason    string
	TicketURL string
	Required  int
	Approvals []ApprovalRow

	Rows   int64
	Tables int

	Controls RequestControls
	Timeline []TimelineEntry
	// Preview is the frozen preview, as it was when the request was made (Live false).
	Preview *PreviewProps

	// CanCheckDrift shows the "Check for changes" button (a preview engine is connected and
	// the request has not run). Drift is the outcome of a check, when one was asked for.
	CanCheckDrift bool
	Drift         *DriftCheck

	// Progress is shown while the request is approved or running.
	Progress *Progress
	// Result is shown once it has run (done, failed, drifted or partial).
	Result *RequestResult
	// Restoration is the restore panel: a done deletion's restore, or a restore request's live
	// check; nil when neither applies.
	Restoration *RestorePanel

	Failures []NotifyFailure
}

// ApprovalRow is one approval: who and when.
type ApprovalRow struct {
	Name string
	At   time.Time
}

// RequestControls are the decisions offered to the viewer, with the state of their forms.
type RequestControls struct {
	Approve bool
	Reject  bool
	Cancel  bool
	// Digest is the digest the page shows; the approve form posts it back.
	Digest string
	// RejectReason and Errors refill the reject form after a refused submission.
	RejectReason string
	Errors       map[string]string
	// Why explains, when no control is shown, who may decide.
	Why string
}

// Any reports whether at least one control is shown.
func (c RequestControls) Any() bool { return c.Approve || c.Reject || c.Cancel }

// TimelineEntry is one event in a request's history.
type TimelineEntry struct {
	Seq    int64
	Action string // the audit action, e.g. "approved"
	Label  string // the action in words, e.g. "Approved"
	Actor  string
	At     time.Time
	// Detail adds what matters about the event: a reason, a refusal's cause, an error.
	Detail string
	// Tone colours the marker: "good", "bad", "warn" or "".
	Tone string
}

// DriftCheck is the outcome of recomputing a request's preview against the live data.
type DriftCheck struct {
	// Differs is true when the live preview no longer matches the request's digest.
	Differs bool
	// Error says why the check could not run (a target is unreachable, ...).
	Error   string
	Changes []DriftChange
	At      time.Time
}

// DriftChange is one table whose rows differ between the request and now.
type DriftChange struct {
	Target   string
	Table    string
	Action   string
	Approved int64
	Now      int64
}

// Progress is the live execution panel. While Poll is set, htmx reloads it from URL every
// second; without JavaScript the page offers a refresh link.
type Progress struct {
	URL     string
	PageURL string
	State   string
	Poll    bool
	Phase   string
	Targets []TargetProgress
	// Batched marks a request that runs in batches: Batches have committed, Left estimates the
	// time the rest takes ("" when unknown), and Error is why the executor paused it. PauseURL
	// and ResumeURL, when set, are the admin's Pause and Resume forms.
	Batched   bool
	Batches   int
	Left      string
	Error     string
	PauseURL  string
	ResumeURL string
}

// TargetProgress is one target's share of an execution.
type TargetProgress struct {
	Target     string
	Phase      string
	Done       bool
	TablesDone int
	Tables     []TableProgress
}

// TableProgress is one table's rows done out of rows planned.
type TableProgress struct {
	Table   string
	Action  string
	Done    int64
	Planned int64
}

// RequestResult is what a finished run did, or why it did not.
type RequestResult struct {
	State string
	// Tables are the rows changed per table (done, partial).
	Tables []ResultLine
	// Error is why the run failed.
	Error string
	// Changes are the per-table differences that made it drift.
	Changes []DriftChange
	// Targets say which targets are done (partial).
	Targets []TargetOutcome
	// Raw is the stored result when it could not be read in the expected shape.
	Raw string
	// ResumeURL, when set, is where a partial request is resumed.
	ResumeURL string
}

// ResultLine is one table's changed rows.
type ResultLine struct {
	Target string
	Table  string
	Action string
	Rows   int64
}

// TargetOutcome is one target's state after a run.
type TargetOutcome struct {
	Target string
	State  string
}

// NotifyFailure is a notification that could not be delivered yet.
type NotifyFailure struct {
	Channel   string
	Recipient string
	Event     string
	Error     string
	Attempts  int
	Next      time.Time
	GaveUp    bool
}

// short cuts a hash to its first n characters for display; the full value goes in a title.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// batchWord is "batch" or "batches".
func batchWord(n int) string {
	if n == 1 {
		return "batch"
	}
	return "batches"
}

// pollAttrs makes the progress panel reload itself every second while the request is live.
func pollAttrs(pr Progress) templ.Attributes {
	if !pr.Poll {
		return templ.Attributes{}
	}
	return templ.Attributes{"hx-get": pr.URL, "hx-trigger": "every 1s", "hx-swap": "outerHTML"}
}

// progressMax and progressValue fill a <progress>: a table with nothing planned shows as
// complete, and done never shows beyond planned.
func progressMax(t TableProgress) string {
	if t.Planned <= 0 {
		return "1"
	}
	return strconv.FormatInt(t.Planned, 10)
}

func progressValue(t TableProgress) string {
	if t.Planned <= 0 {
		return "1"
	}
	return strconv.FormatInt(min(max(t.Done, 0), t.Planned), 10)
}

// targetPhase says where a target is, for "services done 2/3".
func targetPhase(t TargetProgress) string {
	switch {
	case t.Done:
		return "done"
	case t.Phase != "":
		return t.Phase
	default:
		return "waiting"
	}
}

// ariaCurrent marks the active tab for assistive technology.
func ariaCurrent(active bool) templ.Attributes {
	if active {
		return templ.Attributes{"aria-current": "page"}
	}
	return templ.Attributes{}
}

// failureText is "Email to x (awaiting) failed 2 times: ", before the error.
func failureText(f NotifyFailure) string {
	times := "times"
	if f.Attempts == 1 {
		times = "time"
	}
	return f.Channel + " to " + f.Recipient + " (" + f.Event + ") failed " + strconv.Itoa(f.Attempts) + " " + times + ": "
}

package templates

import (
	"time"

	"github.com/a-h/templ"
)

// Search is the search page: tabs per kind, the query and its results.
type Search struct {
	Kinds []KindTab
	// Kind is the active tab's kind name ("" when there are no kinds).
	Kind  string
	Query string
	// Ready is false while no search engine is connected; the page says so instead of
	// pretending that nothing matched.
	Ready   bool
	Results []Result
	// More is set when the results were cut off at the limit.
	More bool
	// Problem says why the search could not run (a target database is unreachable); it is
	// shown instead of the results.
	Problem string
}

// KindTab is one tab of the search page.
type KindTab struct {
	Name    string
	Label   string
	URL     string
	Columns []string // the columns a search matches, for the empty state
	Active  bool
}

// Result is one root that matched a search.
type Result struct {
	Label  string
	Key    string
	URL    string
	Badges []Badge
}

// LivePreview is the preview page: the live preview of one root with the "Request deletion"
// form.
type LivePreview struct {
	View PreviewProps
	Form RequestForm
	// Problem is shown above the preview, e.g. when the data changed since the form was
	// loaded.
	Problem string
}

// PreviewProps is a preview as PreviewView shows it. The same props serve the live preview
// page and a request's frozen preview (Live false).
type PreviewProps struct {
	Kind   string
	Target string
	// Action is the root's action: delete or soft.
	Action string
	Root   PreviewRoot
	// Exact is false for planner estimates: counts are marked "≈", and there are no samples,
	// blockers or digest yet.
	Exact bool
	// Live is true on the preview page. A frozen preview (in a request) is shown whole, with
	// nothing loaded later.
	Live bool
	// At is when the preview was computed; Took how long it took (zero when unknown).
	At     time.Time
	Took   time.Duration
	Now    time.Time
	Digest string
	Totals PreviewTotals
	// Targets has one entry per target the kind spans, in evaluation order; the page shows
	// them when there is more than one.
	Targets  []PreviewTarget
	Blockers []PreviewBlocker
	Summary  []PreviewLine
	Tree     *PreviewNode
	Warnings []PreviewWarning
	// BatchNote says how a batched kind runs ("" for one transaction): preview.BatchNote.
	BatchNote string
	// URL is the live preview's address (/kinds/{kind}/{key}): lazily loaded nodes, the
	// exact counts and the full tree hang off it. Empty for a frozen preview.
	URL string
	// LazyBelow makes nodes deeper than this depth load on demand (with htmx, or through a
	// link without it). Zero renders the whole tree.
	LazyBelow int
	// DetailsHTML, when set, is PreviewDetails(v) rendered earlier, shown in its place; the
	// props it was rendered from (Summary, Tree) may then be left empty.
	DetailsHTML templ.Component
}

// PreviewRoot is the root row.
type PreviewRoot struct {
	Label      string
	Table      string
	Key        string
	Tombstoned bool
}

// PreviewTotals counts rows per action; Changed is deleted + tombstoned + detached.
type PreviewTotals struct {
	Changed, Delete, Soft, Detach, Keep, Block int64
	Tables                                     int
}

// PreviewTarget is one target's share of a preview.
type PreviewTarget struct {
	Target string
	Totals PreviewTotals
}

// PreviewBlocker is a set of rows that stops the request.
type PreviewBlocker struct {
	Target string
	Table  string
	Path   string
	Reason string
	Rows   int64
	Sample []PreviewRow
}

// PreviewLine is one line of the per-table summary.
type PreviewLine struct {
	Target            string
	Table             string
	Action            string
	Rows              int64
	AlreadyTombstoned int64
}

// PreviewNode is one node of the tree: a table reached through one edge path.
type PreviewNode struct {
	ID int
	// Depth is 0 for the root.
	Depth     int
	Target    string
	Table     string
	Via       string
	Action    string
	Rule      string
	Reason    string
	Rows      int64
	Estimate  bool
	Recursive bool
	Sample    []PreviewRow
	Children  []*PreviewNode
	// Descendants counts the nodes under this one, for lazily loaded branches.
	Descendants int
}

// PreviewRow is a sample row: its key and label-like columns.
type PreviewRow struct {
	Key    string
	Label  string
	Values []PreviewColumn
}

// PreviewColumn is one named value of a sample row.
type PreviewColumn struct {
	Name  string
	Value string
}

// PreviewWarning is something to know before asking.
type PreviewWarning struct {
	Code    string
	Message string
}

// RequestForm is the "Request deletion" form under a live preview.
type RequestForm struct {
	// State says what is offered: "ready" (the form), "estimate" (waiting for exact counts),
	// "blocked", "role" (the user may not request), "open" (a request is open for this
	// root) or "unavailable" (no approval service).
	State string
	// Action is the URL the form posts to.
	Action string
	Digest string
	// Values entered, kept when the form is shown again with errors.
	Reason    string
	TicketURL string
	Confirm   string
	// ConfirmLabel is the text the operator must type (the root's label) when the request
	// changes more than ConfirmRows rows; empty when no confirmation is needed.
	ConfirmLabel string
	ConfirmRows  int64
	// Changed is the number of rows the request would change.
	Changed int64
	Errors  map[string]string
	// Role is the user's role, to explain State "role".
	Role string
	// OpenURL and OpenID name the open request for State "open".
	OpenURL string
	OpenID  int64
	// MinReason is the shortest reason accepted.
	MinReason int
}

// Problem explains why a preview cannot be shown (unknown kind, root not found, several
// matches, target unreachable) and offers links to get on.
type Problem struct {
	Status  int
	Title   string
	Message string
	// LinksTitle introduces Links, e.g. "Closest matches".
	LinksTitle string
	Links      []ProblemLink
	RequestID  string
}

// ProblemLink is one way on from a problem page.
type ProblemLink struct {
	Text string
	URL  string
	Note string
}

// Branch is the page of one subtree of a preview, for browsers without JavaScript.
type Branch struct {
	View PreviewProps
	Node *PreviewNode
}

// Policy is the admin policy page.
type Policy struct {
	Hash  string
	Kinds []PolicyKind
	// Defaults describe the default rules, e.g. "under_delete: follow".
	Defaults []string
	// Checked is false when no preview engine is connected: no plans and no lint.
	Checked bool
	// Unreachable lists targets whose schema could not be read.
	Unreachable []PolicyTarget
	// Findings are lint findings about the policy's table and edge rules (not one kind's).
	Findings []PolicyFinding
	// RulesUnchecked is set when table and edge rules could not be checked (a target is
	// unreachable, so an unknown table may just live there).
	RulesUnchecked bool
}

// PolicyTarget is a target the policy page could not read.
type PolicyTarget struct {
	Name    string
	Problem string
}

// PolicyKind is one kind as declared in the policy file, with its resolved plan.
type PolicyKind struct {
	Name    string
	Target  string
	Table   string
	Root    string
	Search  []string
	Archive string
	Also    []string
	Owns    []string

	// Targets the kind spans, root target first.
	Targets []string
	// Tables are the tables its plan reaches, in tree order, with their actions.
	Tables []PolicyTable
	// Findings are the lint findings about this kind.
	Findings []PolicyFinding
	// Unchecked says why the plan could not be resolved (a target is unreachable).
	Unchecked string
}

// PolicyTable is one table a kind's plan reaches.
type PolicyTable struct {
	Target    string
	Table     string
	Actions   []string
	Tombstone string
	Edges     []string
}

// PolicyFinding is one lint finding.
type PolicyFinding struct {
	Code    string
	Where   string
	Subject string // the edge or table concerned
	Message string
	Fix     string
	// Strict is set for findings that only `policy check --strict` reports.
	Strict bool
}

package exec

import (
	"sort"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// TargetStatus is one target's live progress, stored as a JSON array in the request's
// target_status while it runs (approval.Progress) and read by the request page.
type TargetStatus struct {
	Target string `json:"target"`
	// Phase is waiting, locking, archived, applying, prepared, committed or failed.
	Phase  string          `json:"phase"`
	Tables []TableProgress `json:"tables"`
	// Error is why the target failed (phase failed).
	Error string `json:"error,omitempty"`
	// Batched marks a batched run; Batches counts its committed batches, and LeftSeconds
	// estimates the time its remaining batches take, from the rate so far (0: unknown).
	Batched     bool  `json:"batched,omitempty"`
	Batches     int   `json:"batches,omitempty"`
	LeftSeconds int64 `json:"left_seconds,omitempty"`
}

// TableProgress is one (table, action) of a running request: rows done out of planned.
type TableProgress struct {
	Table   string `json:"table"`
	Action  string `json:"action"`
	Done    int64  `json:"done"`
	Planned int64  `json:"planned"`
}

// The phases of TargetStatus.
const (
	PhaseLocking   = "locking"
	PhaseArchived  = "archived"
	PhaseApplying  = "applying"
	PhaseCommitted = "committed"
	// The phases of a request that spans targets: waiting (not started, or rolled back to
	// run again on resume), prepared (two-phase commit), failed.
	PhaseWaiting  = "waiting"
	PhasePrepared = "prepared"
	PhaseFailed   = "failed"
)

// Report is the JSON the executor stores as a finished request's result: per-table counts
// when done, the per-table differences when drifted.
type Report struct {
	Digest string       `json:"digest,omitempty"`
	Tables []TableCount `json:"tables,omitempty"`
	// Rows is the total of Tables.
	Rows int64 `json:"rows"`
	// Changes are the differences from the approved preview (drifted only).
	Changes []Change `json:"changes,omitempty"`
	// Reason says in words why a request drifted or failed, when Changes do not.
	Reason string `json:"reason,omitempty"`
	// Attempts is the number of tries the target transaction took.
	Attempts int `json:"attempts,omitempty"`
	// Reconciled is true when the outcome was settled from the target's ledger by the
	// reconciler rather than by the executor that ran it.
	Reconciled bool `json:"reconciled,omitempty"`
	// Mode and Targets describe a request that spans targets: ModeAtomic or ModeOrdered, and
	// each target's state and rows.
	Mode    string         `json:"mode,omitempty"`
	Targets []TargetResult `json:"targets,omitempty"`
	// A batched run (Mode ModeBatched) also reports its number of batch transactions, the
	// longest transaction that locked rows (hiding the root, a batch, the finish) and how long
	// collecting the key sets took (one read-only snapshot), in milliseconds. Arrived are the
	// rows that appeared under the hidden root during the run and were applied by the final
	// transaction (they are in Tables too); Missing the approved rows that were already gone
	// when their batch came (deleted or tombstoned by someone else). Tables - Arrived + Missing
	// is the approved plan.
	Batches            int          `json:"batches,omitempty"`
	LongestTransaction int64        `json:"longest_transaction_ms,omitempty"`
	CollectMillis      int64        `json:"collect_ms,omitempty"`
	Arrived            []TableCount `json:"arrived,omitempty"`
	Missing            []TableCount `json:"missing,omitempty"`
}

// TableCount is the rows one action changed in one table.
type TableCount struct {
	Target string `json:"target"`
	Table  string `json:"table"`
	Action string `json:"action"`
	Rows   int64  `json:"rows"`
}

// Tables lists counts as TableCounts, sorted by target, table and action. Keys are
// "target table action"; a table name may itself contain spaces, the target and the action
// cannot.
func (c Counts) Tables() []TableCount {
	out := make([]TableCount, 0, len(c))
	for k, n := range c {
		first, last := strings.IndexByte(k, ' '), strings.LastIndexByte(k, ' ')
		if first < 0 || last <= first {
			continue
		}
		out = append(out, TableCount{Target: k[:first], Table: k[first+1 : last], Action: k[last+1:], Rows: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Action < b.Action
	})
	return out
}

// Total is the number of rows changed.
func (c Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// planned lists the (table, action) lines of a preview that the executor changes, with zero
// rows done.
func planned(target string, summary []preview.SummaryLine) []TableProgress {
	var out []TableProgress
	for _, l := range summary {
		if l.Target != target || l.Rows == 0 {
			continue
		}
		switch l.Action {
		case config.ActionDelete, config.ActionSoft, config.ActionDetach:
			out = append(out, TableProgress{Table: l.Table, Action: l.Action, Planned: l.Rows})
		}
	}
	return out
}

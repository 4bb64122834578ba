// Package approval is the two-person rule: requests, approvals, and the state machine that
// lets a deletion run only after someone other than the requester approved exactly what was
// previewed.
//
// # States
//
//	pending → approved → running → done | failed | drifted | partial
//	pending → rejected | cancelled | expired
//	approved → failed            (an approver lost the role before it ran; see Start)
//	partial → running            (resuming a request that stopped part-way across targets)
//	running → paused → running   (a batched run paused between batches, and resumed; see Pause)
//
// done, failed, drifted, rejected, cancelled and expired are terminal: nothing changes their
// state again. Every transition is a conditional UPDATE with the expected state in its WHERE
// clause and RETURNING, so of two racing deciders exactly one moves the request; a trigger on
// the requests table refuses any other edge and any change to what was requested.
//
// # Rules, enforced here and not in the pages
//
//   - Nobody approves their own request (stable user ids are compared), and admins never
//     approve: an admin has no power over the two-person rule.
//   - The approver has the approver role, and is not disabled, at the moment of approving: the
//     role is read from the users table, under a share lock, in the approving transaction.
//   - The approver signed in within approvals.step_up.
//   - The approval covers a digest: the form posts the digest it showed, and any other digest
//     is refused. A changed preview needs a new request.
//   - One approval per person, backed by the primary key of approvals.
//   - The approvals required are fixed when the request is made, from approvals.required and
//     the escalate rules.
//
// Every decision and every refused attempt writes an audit event. A refused attempt changes
// nothing else, so its transaction commits with only the event (and, for an approval that
// arrives after the deadline, the move to expired).
//
// # Timeline
//
// Requests keep no history table of their own: the audit log already records every decision,
// attempt and execution with the request id, in order and tamper-evident. Timeline reads it.
package approval

import (
	"encoding/json"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// State is where a request is in its life.
type State string

// The states.
const (
	Pending   State = "pending"
	Approved  State = "approved"
	Running   State = "running"
	Done      State = "done"
	Failed    State = "failed"
	Drifted   State = "drifted"
	Partial   State = "partial" // some targets done; can be resumed
	Paused    State = "paused"  // a batched run stopped between batches; can be resumed
	Rejected  State = "rejected"
	Cancelled State = "cancelled"
	Expired   State = "expired"
)

// States lists every state, in life order (for filters).
func States() []State {
	return []State{Pending, Approved, Running, Paused, Done, Failed, Drifted, Partial, Rejected, Cancelled, Expired}
}

// Terminal reports whether s never changes again.
func (s State) Terminal() bool {
	switch s {
	case Done, Failed, Drifted, Rejected, Cancelled, Expired:
		return true
	}
	return false
}

// Open reports whether s holds the root: another request for it cannot be opened.
func (s State) Open() bool {
	return s == Pending || s == Approved || s == Running || s == Partial || s == Paused
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	for _, x := range States() {
		if x == s {
			return true
		}
	}
	return false
}

// Operation is what a request does to its root.
type Operation string

// The operations.
const (
	Delete  Operation = "delete"
	Restore Operation = "restore" // undo a done deletion from its archive
)

// Request is a frozen preview with a requester, a reason and a state.
type Request struct {
	bun.BaseModel `bun:"table:requests,alias:r"`

	ID        int64     `bun:"id,pk"`
	Operation Operation `bun:"kind_of_request"`
	// RestoresRequestID is the deletion a restore request undoes; 0 otherwise.
	RestoresRequestID int64 `bun:"restores_request_id,nullzero"`

	Kind      string `bun:"kind"`
	Target    string `bun:"target"`
	RootTable string `bun:"root_table"`
	// RootKey is the preview's display key; RootKeys are the exact primary-key values.
	RootKey   string   `bun:"root_key"`
	RootKeys  []string `bun:"root_keys,array"`
	RootLabel string   `bun:"root_label"`

	Digest       string            `bun:"digest"`
	PolicyHash   string            `bun:"policy_hash"`
	Fingerprints map[string]string `bun:"schema_fingerprints,type:jsonb"`
	// Preview is the frozen preview (summary, tree with samples, warnings). List leaves it nil.
	Preview     *preview.Preview `bun:"preview,type:jsonb"`
	RowsTotal   int64            `bun:"rows_total"`
	TablesTotal int              `bun:"tables_total"`

	RequesterID   int64  `bun:"requester_id"`
	RequesterName string `bun:"requester_name,scanonly"`
	Reason        string `bun:"reason"`
	TicketURL     string `bun:"ticket_url"`

	ApprovalsRequired int `bun:"approvals_required"`
	// ApprovalsGiven counts the approvals recorded (including any whose approver has since
	// lost the role).
	ApprovalsGiven int `bun:"approvals_given,scanonly"`

	State     State     `bun:"state"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
	ExpiresAt time.Time `bun:"expires_at"`
	// DecidedAt is when the request left pending; zero while pending.
	DecidedAt time.Time `bun:"decided_at,nullzero"`
	// DecidedBy is who rejected or cancelled it (0 otherwise); DecisionReason is the
	// rejection's reason.
	DecidedBy      int64  `bun:"decided_by,nullzero"`
	DecidedByName  string `bun:"decided_by_name,scanonly"`
	DecisionReason string `bun:"decision_reason"`

	// Error, Result and TargetStatus are written by the executor (Finish, Progress).
	Error        string          `bun:"error"`
	Result       json.RawMessage `bun:"result,type:jsonb,nullzero"`
	TargetStatus json.RawMessage `bun:"target_status,type:jsonb,nullzero"`

	// Approvals are who approved and when, oldest first. Filled by Get and by the functions
	// that return one request; List leaves it nil.
	Approvals []Approval `bun:"-"`
}

// Approval is one person's approval of a request's digest.
type Approval struct {
	ApproverID   int64     `bun:"approver_id"`
	ApproverName string    `bun:"approver_name"`
	Digest       string    `bun:"digest"`
	CreatedAt    time.Time `bun:"created_at"`
}

// ExpiredAt reports whether a pending request is past its deadline at now (the expiry sweep
// may not have moved it yet).
func (r *Request) ExpiredAt(now time.Time) bool {
	return r.State == Pending && !now.Before(r.ExpiresAt)
}

// ApprovedBy reports whether userID has approved the request (needs Approvals, as Get fills).
func (r *Request) ApprovedBy(userID int64) bool {
	for _, a := range r.Approvals {
		if a.ApproverID == userID {
			return true
		}
	}
	return false
}

// Controls are the decisions a user may be offered on the request page.
type Controls struct {
	Approve bool
	Reject  bool
	Cancel  bool
}

// ControlsFor mirrors the rules of Approve, Reject and Cancel for a user with the given role
// (as the users table has it: viewer, requester, approver or admin), so that the page shows
// each control to exactly the people allowed to use it. It is advice for rendering only: the
// page may be stale, and Approve, Reject and Cancel check again. r needs its Approvals (as Get
// fills).
func (r *Request) ControlsFor(userID int64, role string, now time.Time) Controls {
	if r.State != Pending || r.ExpiredAt(now) {
		return Controls{}
	}
	mine := userID == r.RequesterID
	approver := role == "approver" && !mine
	return Controls{
		Approve: approver && !r.ApprovedBy(userID),
		Reject:  approver,
		Cancel:  mine,
	}
}

// notice is the request as notifications describe it.
func (r *Request) notice() notify.Notice {
	n := notify.Notice{
		RequestID: r.ID, Restore: r.Operation == Restore,
		Kind: r.Kind, Target: r.Target, RootKey: r.RootKey, RootLabel: r.RootLabel,
		RequesterID: r.RequesterID, Requester: r.RequesterName, Reason: r.Reason, TicketURL: r.TicketURL,
		ApprovalsRequired: r.ApprovalsRequired, ExpiresAt: r.ExpiresAt,
		DecidedBy: r.DecidedByName, DecisionReason: r.DecisionReason,
		State: string(r.State), Error: r.Error,
	}
	if r.Preview != nil {
		n.Totals = r.Preview.Totals
	} else {
		n.Totals.Delete = r.RowsTotal
		n.Totals.Tables = r.TablesTotal
	}
	for _, a := range r.Approvals {
		n.Approvers = append(n.Approvers, a.ApproverName)
	}
	return n
}

// Actor is the person acting, as the session knows them. Their role is never taken from here:
// it is read from the users table inside the transaction that acts.
type Actor struct {
	ID   int64
	Name string
	// ClientIP is recorded in the audit event ("" when none).
	ClientIP string
}

// Columns of a request read with its requester's and decider's names. The FROM clause must
// name requests r, users u (the requester) and LEFT JOIN users d (the decider).
const (
	listColumns = `r.id, r.kind_of_request, r.restores_request_id, r.kind, r.target, r.root_table,
		r.root_key, r.root_keys, r.root_label, r.digest, r.policy_hash, r.schema_fingerprints,
		r.rows_total, r.tables_total, r.requester_id, u.name AS requester_name, r.reason, r.ticket_url,
		r.approvals_required,
		(SELECT count(*) FROM approvals a WHERE a.request_id = r.id) AS approvals_given,
		r.state, r.created_at, r.updated_at, r.expires_at, r.decided_at, r.decided_by,
		coalesce(d.name, '') AS decided_by_name, r.decision_reason, r.error, r.result, r.target_status`
	fullColumns  = listColumns + `, r.preview`
	fromRequests = ` FROM requests r JOIN users u ON u.id = r.requester_id LEFT JOIN users d ON d.id = r.decided_by `
)

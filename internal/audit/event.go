package audit

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Action names what happened. Only the constants below are accepted by Append.
type Action string

// Requests and approvals.
const (
	ActionRequested                Action = "requested"
	ActionApproved                 Action = "approved"
	ActionRejected                 Action = "rejected"
	ActionSelfApprovalRefused      Action = "self_approval_refused"
	ActionStaleApprovalRefused     Action = "stale_approval_refused"
	ActionDuplicateApprovalRefused Action = "duplicate_approval_refused"
	// ActionApprovalRefused is any other refused approval: the approver lacks the role, has not
	// signed in within the step-up window, or the request has expired. Details say which.
	ActionApprovalRefused Action = "approval_refused"
	ActionCancelled       Action = "cancelled"
	ActionExpired         Action = "expired"
)

// Execution, restores and purges.
const (
	ActionExecutionStarted Action = "execution_started"
	// ActionExecuted is a finished deletion; details carry the per-table counts.
	ActionExecuted         Action = "executed"
	ActionExecutionFailed  Action = "execution_failed"
	ActionDrifted          Action = "drifted"
	ActionPaused           Action = "paused"
	ActionResumed          Action = "resumed"
	ActionRestoreRequested Action = "restore_requested"
	ActionRestored         Action = "restored"
	ActionPurged           Action = "purged"
)

// Users, exports and the log itself.
const (
	ActionUserAdded       Action = "user_added"
	ActionRoleChanged     Action = "role_changed"
	ActionUserDisabled    Action = "user_disabled"
	ActionPasswordChanged Action = "password_changed"
	ActionExported        Action = "exported"
	ActionCheckpoint      Action = "checkpoint"
)

var actions = []Action{
	ActionRequested, ActionApproved, ActionRejected, ActionSelfApprovalRefused,
	ActionStaleApprovalRefused, ActionDuplicateApprovalRefused, ActionApprovalRefused,
	ActionCancelled, ActionExpired,
	ActionExecutionStarted, ActionExecuted, ActionExecutionFailed, ActionDrifted,
	ActionPaused, ActionResumed, ActionRestoreRequested, ActionRestored, ActionPurged,
	ActionUserAdded, ActionRoleChanged, ActionUserDisabled, ActionPasswordChanged,
	ActionExported, ActionCheckpoint,
}

// Actions lists every action, in a fixed order (for filters on the audit page).
func Actions() []Action { return append([]Action(nil), actions...) }

// Valid reports whether a is one of the defined actions.
func (a Action) Valid() bool {
	for _, x := range actions {
		if x == a {
			return true
		}
	}
	return false
}

// SystemActor is the actor name of events no person caused (expiry, purge, checkpoints).
const SystemActor = "system"

// Event is one audit record. Callers fill in the who and what; Append sets Seq, At, PrevHash
// and Hash and returns the stored event.
type Event struct {
	Seq int64
	// At is the database's clock_timestamp() when the event was appended, in UTC, microseconds.
	At time.Time
	// ActorID is the acting user's stable id; nil for SystemActor and the command line.
	ActorID *int64
	// ActorName is the user's name at the time, or SystemActor. Required.
	ActorName string
	Action    Action
	RequestID *int64
	Kind      string
	Target    string
	RootKey   string
	RootLabel string
	Reason    string
	// PlanDigest is the approved preview digest (hex), when the event concerns one.
	PlanDigest string
	PolicyHash string
	// Details holds structured extras: per-table counts, errors, filters. Leaves must be
	// strings, integers (any Go integer type), bools or nil; floats are rejected. Events read
	// back hold only nil, bool, int64, string, []any and map[string]any.
	Details map[string]any
	// ClientIP is the client's address, normalised (e.g. "2001:db8::1"); "" when none.
	ClientIP string
	PrevHash string
	Hash     string
}

// Actor is who performs an operation that writes its own event (Export).
type Actor struct {
	ID       *int64
	Name     string
	ClientIP string
}

// prepare validates e for Append and returns it with normalised details and client IP.
func prepare(e Event) (Event, error) {
	if e.Seq != 0 || !e.At.IsZero() || e.PrevHash != "" || e.Hash != "" {
		return e, fmt.Errorf("%w: Seq, At, PrevHash and Hash are set by Append (is this event already stored?)", pg.ErrInvalid)
	}
	if !e.Action.Valid() {
		return e, fmt.Errorf("%w: unknown action %q", pg.ErrInvalid, e.Action)
	}
	if strings.TrimSpace(e.ActorName) == "" {
		return e, fmt.Errorf("%w: ActorName is required (use audit.SystemActor for events no person caused)", pg.ErrInvalid)
	}
	for _, id := range []*int64{e.ActorID, e.RequestID} {
		if id != nil && (*id > maxSafeInt || *id < -maxSafeInt) {
			return e, fmt.Errorf("%w: id %d is outside ±(2^53−1)", pg.ErrInvalid, *id)
		}
	}
	for name, s := range map[string]string{
		"ActorName": e.ActorName, "Kind": e.Kind, "Target": e.Target, "RootKey": e.RootKey,
		"RootLabel": e.RootLabel, "Reason": e.Reason, "PlanDigest": e.PlanDigest, "PolicyHash": e.PolicyHash,
	} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return e, fmt.Errorf("%w: %s must be valid UTF-8 without NUL", pg.ErrInvalid, name)
		}
	}
	if e.ClientIP != "" {
		ip, err := netip.ParseAddr(e.ClientIP)
		if err != nil {
			return e, fmt.Errorf("%w: ClientIP: %w", pg.ErrInvalid, err)
		}
		e.ClientIP = ip.Unmap().String()
	}
	d, err := normalizeDetails(e.Details)
	if err != nil {
		return e, err
	}
	if err := rejectNUL(d); err != nil {
		return e, fmt.Errorf("%w: details: %w", pg.ErrInvalid, err)
	}
	e.Details = d
	return e, nil
}

// rejectNUL fails on U+0000 anywhere in details: PostgreSQL's jsonb cannot store it.
func rejectNUL(v any) error {
	switch v := v.(type) {
	case string:
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("strings may not contain NUL")
		}
	case []any:
		for _, x := range v {
			if err := rejectNUL(x); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, x := range v {
			if err := rejectNUL(k); err != nil {
				return err
			}
			if err := rejectNUL(x); err != nil {
				return err
			}
		}
	}
	return nil
}

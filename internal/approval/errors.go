package approval

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Errors callers branch on with errors.Is. Each wraps the pg error of the same family, so a
// generic mapping (pg.ErrNotFound → 404, pg.ErrConflict → 409, pg.ErrInvalid → 422) also
// holds. The web layer maps them to statuses:
//
//	ErrSelfApproval, ErrForbidden       403
//	ErrStepUp                           ask the user to sign in again, then come back
//	ErrStaleDigest, ErrDuplicate,
//	ErrNotPending, ErrExpired,
//	ErrOpenRequest, ErrNotApproved      409
//	ErrNotFound                         404
//	ErrInvalid                          422 (a *ValidationError has per-field messages)
var (
	ErrNotFound = fmt.Errorf("request %w", pg.ErrNotFound)
	ErrInvalid  = fmt.Errorf("request %w", pg.ErrInvalid)

	// ErrForbidden: the actor's role (read from the users table at that moment) or state does
	// not allow the action, or the actor is not the requester (Cancel).
	ErrForbidden = errors.New("not allowed")
	// ErrSelfApproval: the requester tried to approve or reject their own request.
	ErrSelfApproval = fmt.Errorf("%w: nobody can approve their own request", ErrForbidden)
	// ErrStepUp: the approver signed in longer ago than approvals.step_up.
	ErrStepUp = errors.New("sign in again to approve")

	// ErrStaleDigest: the approve form showed a different preview than the request holds.
	ErrStaleDigest = fmt.Errorf("%w: the request changed since the page was loaded", pg.ErrConflict)
	// ErrDuplicate: this person already approved this request.
	ErrDuplicate = fmt.Errorf("%w: already approved by this person", pg.ErrConflict)
	// ErrNotPending: the request is no longer pending (decided, running or finished).
	ErrNotPending = fmt.Errorf("%w: the request is not pending", pg.ErrConflict)
	// ErrExpired: the request expired before the decision.
	ErrExpired = fmt.Errorf("%w: the request has expired", pg.ErrConflict)
	// ErrOpenRequest: the root already has an open request; see *OpenRequestError.
	ErrOpenRequest = fmt.Errorf("%w: the root already has an open request", pg.ErrConflict)
	// ErrNotApproved: Start found the request not approved (a duplicate job, or decided
	// otherwise), or Finish found it not running.
	ErrNotApproved = fmt.Errorf("%w: the request is not approved", pg.ErrConflict)
	// ErrApprovalRevoked: an approver lost the approver role (or was disabled) before the
	// request ran, so it no longer has the approvals it needs; Start failed it.
	ErrApprovalRevoked = fmt.Errorf("%w: an approval no longer counts", ErrForbidden)
)

// OpenRequestError is returned by Create when the root already has an open request (pending,
// approved or running). ID is that request, for a link.
type OpenRequestError struct {
	ID    int64
	State State
}

func (e *OpenRequestError) Error() string {
	return fmt.Sprintf("the root already has an open request: #%d (%s)", e.ID, e.State)
}

// Is makes errors.Is(err, ErrOpenRequest) and errors.Is(err, pg.ErrConflict) true.
func (e *OpenRequestError) Is(target error) bool {
	return target == ErrOpenRequest || target == pg.ErrConflict
}

// FieldError is one invalid input field, with a message fit to show next to it.
type FieldError struct {
	Field   string // reason, ticket_url, preview, digest
	Message string
}

// ValidationError lists what is wrong with an input. It matches ErrInvalid.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Message)
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) and errors.Is(err, pg.ErrInvalid) true.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || target == pg.ErrInvalid
}

// Message returns the message for field, or "".
func (e *ValidationError) Message(field string) string {
	for _, f := range e.Fields {
		if f.Field == field {
			return f.Message
		}
	}
	return ""
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

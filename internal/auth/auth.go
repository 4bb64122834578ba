// Package auth knows who may use Tombstone and what they may do: users and their roles,
// password hashing, sign-in throttling, single sign-on through OIDC, the session table and the
// step-up rule for approvals.
//
// Functions that change users take a bun.IDB so that a caller can run them in the same
// transaction as the audit event that records the change: pass a bun.Tx to make both commit
// or neither. Functions that must be atomic on their own (a role change that checks the last
// admin) use RunInTx on the given handle, which nests as a savepoint inside a caller's
// transaction.
package auth

import (
	"errors"
	"fmt"
	"time"
)

// Errors callers branch on with errors.Is.
var (
	// ErrNotFound: no such user.
	ErrNotFound = errors.New("user not found")
	// ErrBadCredentials: unknown user, wrong password or no password set. The three are
	// indistinguishable on purpose, so that sign-in does not reveal which names exist.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrDisabled: the credentials were right but the account is disabled.
	ErrDisabled = errors.New("account disabled")
	// ErrThrottled: too many failed sign-ins; see ThrottledError for the wait.
	ErrThrottled = errors.New("too many failed sign-ins")
	// ErrUnknownSubject: an OIDC identity that no user is linked to.
	ErrUnknownSubject = errors.New("no user is linked to this single sign-on identity")
	// ErrInvalid: a value failed validation; see ValidationError for the field.
	ErrInvalid = errors.New("invalid value")
	// ErrConflict: the change would break a rule about the set of users (a name taken, the
	// last admin demoted or disabled).
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the role does not allow the action.
	ErrForbidden = errors.New("forbidden")
	// ErrStepUp: the action needs a more recent sign-in.
	ErrStepUp = errors.New("a recent sign-in is required")
)

// ThrottledError is returned by Authenticate when an account or a client address has failed
// too often within the window. Wait is how long until an attempt will be considered again.
type ThrottledError struct {
	Wait time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed sign-ins; try again in %s", e.Wait.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// ValidationError names the field that is wrong and says why, in words fit for a form.
type ValidationError struct {
	Field   string // "name", "role", "password", ...
	Message string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ConflictError explains a refused change in words fit for a page.
type ConflictError struct {
	// Field is the form field at fault ("name", "oidc_subject"), or "" when the conflict is
	// not about one field.
	Field   string
	Message string
}

func (e *ConflictError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// StepUp checks the step-up rule: an action such as approving needs a sign-in no older than
// within. signedInAt is the time recorded in the session when the user last proved who they
// are. It returns ErrStepUp when the sign-in is too old (or unknown).
func StepUp(signedInAt, now time.Time, within time.Duration) error {
	if signedInAt.IsZero() || now.Sub(signedInAt) > within {
		return ErrStepUp
	}
	return nil
}

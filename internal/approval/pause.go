package approval

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// ErrNotPausable refuses to pause a request that is not a running batched run, or to resume
// one that is not paused.
var ErrNotPausable = fmt.Errorf("%w: only a running batched request can be paused, and only a paused one resumed", pg.ErrConflict)

// ErrAdminOnly refuses a pause or resume by someone who is not an admin.
var ErrAdminOnly = fmt.Errorf("%w: only an admin can pause or resume a batched run", ErrForbidden)

// Pause stops a running batched request between two batches: it moves the request running →
// paused and writes the "paused" audit event with the actor, in one console transaction that
// holds the request's row lock. The executor checks the state at the start of every batch
// transaction, so it finishes the batch it is in and then stops, leaving the root hidden and
// the request holding it. Only admins pause (the role is read from the users table here).
//
// batched is the caller's knowledge of the request's kind (its policy says execution:
// batched); a request that runs in one transaction cannot stop half-way and is refused with
// ErrNotPausable, as is a request that is not running.
func Pause(ctx context.Context, db bun.IDB, actor Actor, id int64, batched bool) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Pause(%d)", id)
	return changeRun(ctx, db, actor, id, Running, Paused, audit.ActionPaused, batched)
}

// Resume puts a paused batched request back to running (paused → running, with the "resumed"
// audit event and the actor) and clears the error a failed batch left. The caller then
// queues its execution, as after an approval; the executor continues from the request's last
// checkpoint in the target. Only admins resume. It returns ErrNotPausable, and changes
// nothing, when the request is not paused.
func Resume(ctx context.Context, db bun.IDB, actor Actor, id int64) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Resume(%d)", id)
	return changeRun(ctx, db, actor, id, Paused, Running, audit.ActionResumed, true)
}

func changeRun(ctx context.Context, db bun.IDB, actor Actor, id int64, from, to State, action audit.Action, batched bool) (r *Request, err error) {
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		req, err := lockRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		var role string
		if err := tx.QueryRowContext(ctx, "SELECT role FROM users WHERE id = ? AND disabled_at IS NULL FOR SHARE", actor.ID).Scan(&role); err != nil {
			if errors.Is(pg.Interpret(err), pg.ErrNotFound) {
				return ErrAdminOnly
			}
			return pg.Interpret(err)
		}
		if role != "admin" {
			return ErrAdminOnly
		}
		if req.State != from || !batched {
			return fmt.Errorf("%w (#%d is %s)", ErrNotPausable, id, req.State)
		}
		if err := transition(ctx, tx, id, from, to, time.Now().UTC(), "error = ''"); err != nil {
			return err
		}
		e := req.event(action, actor.ClientIP)
		uid := actor.ID
		e.ActorID, e.ActorName = &uid, actor.Name
		e.Details = map[string]any{"batched": true}
		if _, err := audit.Append(ctx, tx, e); err != nil {
			return err
		}
		r, err = get(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// PauseRun is the executor's own pause: a batched run that cannot go on (a batch failed for a
// reason retries do not cure, or its executor stopped and the reconciler found it) moves
// running → paused with errMsg shown on the request page, and the "paused" audit event from
// the system actor with errMsg in its details. The request keeps holding its root; an admin
// resumes it once the cause is fixed. It returns ErrNotApproved, and changes nothing, when the
// request is not running.
func PauseRun(ctx context.Context, db bun.IDB, id int64, errMsg string) (err error) {
	defer pg.Wrap(&err, "approval.PauseRun(%d)", id)
	errMsg = strings.ToValidUTF8(strings.ReplaceAll(errMsg, "\x00", ""), "?")
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		req, err := lockRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := transition(ctx, tx, id, Running, Paused, time.Now().UTC(), "error = ?", errMsg); err != nil {
			return err
		}
		e := req.event(audit.ActionPaused, "")
		e.ActorName = audit.SystemActor
		e.Details = map[string]any{"batched": true, "error": errMsg}
		_, err = audit.Append(ctx, tx, e)
		return err
	})
}

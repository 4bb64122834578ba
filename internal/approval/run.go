package approval

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// Start moves an approved request to running, for the executor, and returns it. A request in
// partial (stopped part-way across targets) is resumed the same way.
//
// Approvers need the approver role again when the request runs: when an approval no longer
// counts (its approver was demoted or disabled) and too few are left, Start moves the request
// approved → failed instead, queues the "failed" notice, writes an execution_failed event and
// returns ErrApprovalRevoked. A resumed partial request is not re-checked: it already ran.
//
// Any other state gives ErrNotApproved and changes nothing, so a duplicate job is harmless.
// Otherwise Start writes no audit event: the executor writes execution_started, in the same
// transaction when it passes one. Given a bun.Tx, Start runs in a savepoint of it.
func (s *Service) Start(ctx context.Context, db bun.IDB, id int64) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Start(%d)", id)
	var revoked error
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		revoked, r = nil, nil
		req, err := lockRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now()
		switch req.State {
		case Approved:
			lost, err := lostApprovers(ctx, tx, req.ID)
			if err != nil {
				return err
			}
			if valid := len(req.Approvals) - len(lost); valid < req.ApprovalsRequired {
				msg := fmt.Sprintf("not run: %s no longer %s the approver role, leaving %d of %d approvals",
					strings.Join(lost, ", "), hasHave(len(lost)), valid, req.ApprovalsRequired)
				if err := transition(ctx, tx, req.ID, Approved, Failed, now, "error = ?", msg); err != nil {
					return err
				}
				if r, err = get(ctx, tx, req.ID); err != nil {
					return err
				}
				if err := s.Notifier.Notify(ctx, tx, notify.Failed, r.notice()); err != nil {
					return err
				}
				e := r.event(audit.ActionExecutionFailed, "")
				e.ActorName = audit.SystemActor
				e.Details = map[string]any{"error": msg, "revoked_approvers": anyStrings(lost)}
				if _, err := audit.Append(ctx, tx, e); err != nil {
					return err
				}
				revoked = fmt.Errorf("%w: %s", ErrApprovalRevoked, msg)
				return nil
			}
		case Partial:
		default:
			return fmt.Errorf("%w (it is %s)", ErrNotApproved, req.State)
		}
		if err := transition(ctx, tx, req.ID, req.State, Running, now, ""); err != nil {
			return err
		}
		r, err = get(ctx, tx, req.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if revoked != nil {
		return nil, revoked
	}
	return r, nil
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// lostApprovers names the request's approvers who no longer hold the approver role or are
// disabled.
func lostApprovers(ctx context.Context, tx bun.IDB, id int64) ([]string, error) {
	var names []string
	err := tx.NewRaw(`SELECT u.name FROM approvals a JOIN users u ON u.id = a.approver_id
		WHERE a.request_id = ? AND (u.role <> 'approver' OR u.disabled_at IS NOT NULL)
		ORDER BY a.created_at, a.approver_id`, id).Scan(ctx, &names)
	return names, pg.Interpret(err)
}

// Finish moves a running request to its outcome (Done, Failed, Drifted or Partial), storing
// result (per-table counts, or drift details; JSON, may be nil) and errMsg, and queues the
// requester's notice (done, failed or drifted; partial is told as a failure). It returns
// ErrNotApproved when the request is not running, and changes nothing then.
//
// Finish writes no audit event: the executor writes executed, execution_failed or drifted in
// the same transaction (pass that bun.Tx; Finish then runs in a savepoint of it).
func (s *Service) Finish(ctx context.Context, db bun.IDB, id int64, state State, result json.RawMessage, errMsg string) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Finish(%d, %s)", id, state)
	var event notify.Event
	switch state {
	case Done:
		event = notify.Done
	case Failed, Partial:
		event = notify.Failed
	case Drifted:
		event = notify.Drifted
	default:
		return nil, fmt.Errorf("%w: a run ends in done, failed, drifted or partial, not %q", ErrInvalid, state)
	}
	var res any
	if len(result) > 0 {
		if !json.Valid(result) {
			return nil, fmt.Errorf("%w: result is not JSON", ErrInvalid)
		}
		res = string(result)
	}
	errMsg = strings.ToValidUTF8(strings.ReplaceAll(errMsg, "\x00", ""), "?")
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := transition(ctx, tx, id, Running, state, s.now(), "result = ?::jsonb, error = ?", res, errMsg); err != nil {
			if _, gerr := get(ctx, tx, id); gerr != nil {
				return gerr
			}
			return err
		}
		if r, err = get(ctx, tx, id); err != nil {
			return err
		}
		return s.Notifier.Notify(ctx, tx, event, r.notice())
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Progress stores the per-target status of a running request (JSON, shown live on the request
// page). It returns ErrNotApproved when the request is not running.
func Progress(ctx context.Context, db bun.IDB, id int64, targetStatus json.RawMessage) (err error) {
	defer pg.Wrap(&err, "approval.Progress(%d)", id)
	if !json.Valid(targetStatus) {
		return fmt.Errorf("%w: target status is not JSON", ErrInvalid)
	}
	var ids []int64
	err = db.NewRaw(`UPDATE requests SET target_status = ?::jsonb WHERE id = ? AND state = 'running' RETURNING id`,
		string(targetStatus), id).Scan(ctx, &ids)
	if err != nil {
		return pg.Interpret(err)
	}
	if len(ids) == 0 {
		if _, err := get(ctx, db, id); err != nil {
			return err
		}
		return fmt.Errorf("%w: #%d is not running", ErrNotApproved, id)
	}
	return nil
}

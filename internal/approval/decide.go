package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// ApproveInput is one approval, as the approve form posts it.
type ApproveInput struct {
	Actor     Actor
	RequestID int64
	// Digest is the digest the page showed: the approval covers exactly that preview.
	Digest string
	// SignedInAt is when the actor's session signed in (for step-up).
	SignedInAt time.Time
}

// refusal is a refused attempt: the event that records it and the error the caller gets.
type refusal struct {
	action  audit.Action
	reason  string // details.refused
	details map[string]any
	err     error
}

// Approve records in.Actor's approval of the request and returns the request.
//
// In one transaction it locks the request row (FOR UPDATE) and the actor's users row (FOR
// SHARE), then checks, in this order:
//
//   - the request is pending and not past its deadline (one past it is moved to expired, with
//     an expired event): ErrExpired, ErrNotPending;
//   - the actor is not the requester, whatever their role: ErrSelfApproval;
//   - the actor exists, is enabled and has the approver role now (admins never approve):
//     ErrForbidden;
//   - the actor signed in within approvals.step_up: ErrStepUp;
//   - the posted digest is the request's: ErrStaleDigest;
//   - the actor has not approved it before: ErrDuplicate.
//
// Each refusal writes its audit event (self_approval_refused, stale_approval_refused,
// duplicate_approval_refused, or approval_refused with details.refused saying why) and commits
// it; nothing else changes. An accepted approval writes the approval row and an approved event.
// When the approvals by people who still hold the approver role reach approvals_required, the
// request moves pending → approved and the requester is told. Given a bun.Tx, Approve runs in
// a savepoint of it.
func (s *Service) Approve(ctx context.Context, db bun.IDB, in ApproveInput) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Approve(%d)", in.RequestID)
	var refused error
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		refused, r = nil, nil
		req, err := lockRequest(ctx, tx, in.RequestID)
		if err != nil {
			return err
		}
		now := s.now()
		if ref, err := s.expireIfDue(ctx, tx, req, now); err != nil || ref != nil {
			if ref != nil {
				refused = ref.err
				return s.refuse(ctx, tx, req, in.Actor, ref)
			}
			return err
		}
		if req.State != Pending {
			refused = fmt.Errorf("%w (it is %s)", ErrNotPending, req.State)
			return s.refuse(ctx, tx, req, in.Actor, &refusal{action: audit.ActionApprovalRefused, reason: "not_pending",
				details: map[string]any{"state": string(req.State)}})
		}
		if in.Actor.ID == req.RequesterID {
			refused = ErrSelfApproval
			return s.refuse(ctx, tx, req, in.Actor, &refusal{action: audit.ActionSelfApprovalRefused, reason: "self_approval"})
		}
		u, err := lockUser(ctx, tx, in.Actor.ID)
		if err != nil {
			if errors.Is(err, ErrForbidden) {
				refused = err
				return s.refuse(ctx, tx, req, in.Actor, &refusal{action: audit.ActionApprovalRefused, reason: "unknown_user"})
			}
			return err
		}
		in.Actor.Name = u.name
		if ref := roleRefusal(u, "approve"); ref != nil {
			refused = ref.err
			return s.refuse(ctx, tx, req, in.Actor, ref)
		}
		if ref := s.stepUpRefusal(in.SignedInAt, now); ref != nil {
			refused = ref.err
			return s.refuse(ctx, tx, req, in.Actor, ref)
		}
		if in.Digest != req.Digest {
			refused = ErrStaleDigest
			return s.refuse(ctx, tx, req, in.Actor, &refusal{action: audit.ActionStaleApprovalRefused, reason: "stale_digest",
				details: map[string]any{"posted_digest": clipText(in.Digest, 64)}})
		}
		var inserted []int64
		err = tx.NewRaw(`INSERT INTO approvals (request_id, approver_id, digest, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (request_id, approver_id) DO NOTHING RETURNING approver_id`,
			req.ID, u.id, in.Digest, now).Scan(ctx, &inserted)
		if err != nil {
			return pg.Interpret(err)
		}
		if len(inserted) == 0 {
			refused = ErrDuplicate
			return s.refuse(ctx, tx, req, in.Actor, &refusal{action: audit.ActionDuplicateApprovalRefused, reason: "duplicate"})
		}
		valid, err := validApprovals(ctx, tx, req.ID)
		if err != nil {
			return err
		}
		approved := valid >= req.ApprovalsRequired
		if approved {
			if err := transition(ctx, tx, req.ID, Pending, Approved, now, "decided_at = ?", now); err != nil {
				return err
			}
		}
		if r, err = get(ctx, tx, req.ID); err != nil {
			return err
		}
		if approved {
			if err := s.Notifier.Notify(ctx, tx, notify.Approved, r.notice()); err != nil {
				return err
			}
		}
		e := r.event(audit.ActionApproved, in.Actor.ClientIP)
		e.ActorID, e.ActorName = &u.id, u.name
		e.Details = map[string]any{
			"approvals": int64(valid), "approvals_required": int64(req.ApprovalsRequired), "state": string(r.State),
		}
		_, err = audit.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return r, nil
}

// roleRefusal refuses a user who may not approve or reject: disabled, or any role but
// approver. Admins are refused by name: they have no power over the two-person rule.
func roleRefusal(u user, verb string) *refusal {
	switch {
	case u.disabled:
		return &refusal{action: audit.ActionApprovalRefused, reason: "disabled",
			err: fmt.Errorf("%w: user %s is disabled", ErrForbidden, u.name)}
	case u.role == "admin":
		return &refusal{action: audit.ActionApprovalRefused, reason: "admin", details: map[string]any{"role": u.role},
			err: fmt.Errorf("%w: admins cannot %s requests; it takes the approver role", ErrForbidden, verb)}
	case u.role != "approver":
		return &refusal{action: audit.ActionApprovalRefused, reason: "role", details: map[string]any{"role": u.role},
			err: fmt.Errorf("%w: to %s takes the approver role; %s is a %s", ErrForbidden, verb, u.name, u.role)}
	}
	return nil
}

func (s *Service) stepUpRefusal(signedInAt, now time.Time) *refusal {
	window := s.Approvals.StepUp
	if window <= 0 {
		window = config.DefaultStepUp
	}
	if !signedInAt.IsZero() && now.Sub(signedInAt) <= window && !signedInAt.After(now.Add(time.Minute)) {
		return nil
	}
	d := map[string]any{"step_up_seconds": int64(window / time.Second)}
	if !signedInAt.IsZero() {
		d["signed_in_at"] = signedInAt.UTC().Format(time.RFC3339)
	}
	return &refusal{action: audit.ActionApprovalRefused, reason: "step_up", details: d,
		err: fmt.Errorf("%w: approving needs a sign-in within the last %s", ErrStepUp, window)}
}

// refuse appends the event of a refused attempt. The transaction then commits with only that
// event (and any expiry), and the caller returns the refusal's error.
func (s *Service) refuse(ctx context.Context, tx bun.Tx, r *Request, actor Actor, ref *refusal) error {
	e := r.event(ref.action, actor.ClientIP)
	id := actor.ID
	e.ActorID, e.ActorName = &id, actorName(actor)
	e.Details = map[string]any{"refused": ref.reason}
	for k, v := range ref.details {
		e.Details[k] = v
	}
	_, err := audit.Append(ctx, tx, e)
	return err
}

func actorName(a Actor) string {
	if strings.TrimSpace(a.Name) == "" {
		return fmt.Sprintf("user #%d", a.ID)
	}
	return a.Name
}

// expireIfDue moves a locked pending request past its deadline to expired, with its expired
// event, and returns the refusal of the attempt that found it so.
func (s *Service) expireIfDue(ctx context.Context, tx bun.Tx, r *Request, now time.Time) (*refusal, error) {
	if !r.ExpiredAt(now) {
		return nil, nil
	}
	if err := s.expire(ctx, tx, r, now); err != nil {
		return nil, err
	}
	return &refusal{action: audit.ActionApprovalRefused, reason: "expired",
		details: map[string]any{"expires_at": r.ExpiresAt.Format(time.RFC3339)},
		err:     fmt.Errorf("%w (at %s)", ErrExpired, r.ExpiresAt.Format(time.RFC3339))}, nil
}

// expire moves a locked pending request to expired and writes the expired event.
func (s *Service) expire(ctx context.Context, tx bun.Tx, r *Request, now time.Time) error {
	if err := transition(ctx, tx, r.ID, Pending, Expired, now, "decided_at = ?", now); err != nil {
		return err
	}
	r.State = Expired
	_, err := audit.Append(ctx, tx, expiredEvent(r))
	return err
}

func expiredEvent(r *Request) audit.Event {
	e := r.event(audit.ActionExpired, "")
	e.ActorName = audit.SystemActor
	e.Details = map[string]any{
		"expires_at": r.ExpiresAt.Format(time.RFC3339), "approvals": int64(r.ApprovalsGiven),
		"approvals_required": int64(r.ApprovalsRequired),
	}
	return e
}

// transition moves request id from one state to another with a conditional UPDATE, setting
// updated_at and any extra assignments (set, with args). It fails with ErrNotPending (from
// pending) or ErrNotApproved (otherwise) when the request was not in state from.
func transition(ctx context.Context, tx bun.IDB, id int64, from, to State, now time.Time, set string, args ...any) error {
	q := "UPDATE requests SET state = ?, updated_at = ?"
	all := []any{to, now}
	if set != "" {
		q += ", " + set
		all = append(all, args...)
	}
	q += " WHERE id = ? AND state = ? RETURNING id"
	all = append(all, id, from)
	var ids []int64
	if err := tx.NewRaw(q, all...).Scan(ctx, &ids); err != nil {
		return pg.Interpret(err)
	}
	if len(ids) == 0 {
		if from == Pending {
			return ErrNotPending
		}
		return fmt.Errorf("%w (expected %s)", ErrNotApproved, from)
	}
	return nil
}

// validApprovals counts the request's approvals whose approver still holds the approver role
// and is enabled.
func validApprovals(ctx context.Context, tx bun.IDB, id int64) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM approvals a JOIN users u ON u.id = a.approver_id
		WHERE a.request_id = ? AND u.role = 'approver' AND u.disabled_at IS NULL`, id).Scan(&n)
	return n, pg.Interpret(err)
}

// Reject ends a pending request with a reason and returns it. Rejecting takes the same person
// as approving: the approver role now, enabled, not an admin, not the requester (who cancels
// instead). The reason needs MinReasonLength characters (*ValidationError). A refused attempt
// by the requester or by someone without the role writes its audit event, like a refused
// approval; a request past its deadline is moved to expired (ErrExpired). Step-up is not
// needed: a rejection can only stop a deletion.
func (s *Service) Reject(ctx context.Context, db bun.IDB, actor Actor, id int64, reason string) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Reject(%d)", id)
	reason = strings.TrimSpace(reason)
	v := &ValidationError{}
	if n := utf8.RuneCountInString(reason); n < MinReasonLength {
		v.add("reason", "give a reason of at least %d characters", MinReasonLength)
	} else if n > maxReasonLength || strings.ContainsRune(reason, 0) {
		v.add("reason", "keep the reason under %d characters of text", maxReasonLength)
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	var refused error
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		refused, r = nil, nil
		req, err := lockRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		now := s.now()
		if ref, err := s.expireIfDue(ctx, tx, req, now); err != nil || ref != nil {
			if ref != nil {
				refused = ref.err
				return nil // the expiry commits; a rejection attempt is no approval
			}
			return err
		}
		if req.State != Pending {
			refused = fmt.Errorf("%w (it is %s)", ErrNotPending, req.State)
			return nil
		}
		if actor.ID == req.RequesterID {
			refused = fmt.Errorf("%w: the requester cancels their own request instead", ErrSelfApproval)
			return s.refuse(ctx, tx, req, actor, &refusal{action: audit.ActionSelfApprovalRefused, reason: "self_rejection",
				details: map[string]any{"attempt": "reject"}})
		}
		u, err := lockUser(ctx, tx, actor.ID)
		if err != nil {
			return err
		}
		actor.Name = u.name
		if ref := roleRefusal(u, "reject"); ref != nil {
			refused = ref.err
			ref.details = withAttempt(ref.details, "reject")
			return s.refuse(ctx, tx, req, actor, ref)
		}
		if err := transition(ctx, tx, req.ID, Pending, Rejected, now,
			"decided_at = ?, decided_by = ?, decision_reason = ?", now, u.id, reason); err != nil {
			return err
		}
		if r, err = get(ctx, tx, req.ID); err != nil {
			return err
		}
		if err := s.Notifier.Notify(ctx, tx, notify.Rejected, r.notice()); err != nil {
			return err
		}
		e := r.event(audit.ActionRejected, actor.ClientIP)
		e.ActorID, e.ActorName, e.Reason = &u.id, u.name, reason
		e.Details = map[string]any{"request_reason": r.Reason}
		_, err = audit.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return r, nil
}

func withAttempt(d map[string]any, attempt string) map[string]any {
	if d == nil {
		d = map[string]any{}
	}
	d["attempt"] = attempt
	return d
}

// Cancel withdraws a pending request; only its requester may (ErrForbidden otherwise, even for
// admins). It writes the cancelled event. A request past its deadline is moved to expired
// instead (ErrExpired).
func (s *Service) Cancel(ctx context.Context, db bun.IDB, actor Actor, id int64) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Cancel(%d)", id)
	var refused error
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		refused, r = nil, nil
		req, err := lockRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		if actor.ID != req.RequesterID {
			return fmt.Errorf("%w: only the requester can cancel a request", ErrForbidden)
		}
		now := s.now()
		if ref, err := s.expireIfDue(ctx, tx, req, now); err != nil || ref != nil {
			if ref != nil {
				refused = ref.err
				return nil
			}
			return err
		}
		if req.State != Pending {
			return fmt.Errorf("%w (it is %s)", ErrNotPending, req.State)
		}
		if err := transition(ctx, tx, req.ID, Pending, Cancelled, now, "decided_at = ?, decided_by = ?", now, actor.ID); err != nil {
			return err
		}
		if r, err = get(ctx, tx, req.ID); err != nil {
			return err
		}
		e := r.event(audit.ActionCancelled, actor.ClientIP)
		e.ActorID, e.ActorName = &req.RequesterID, r.RequesterName
		_, err = audit.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return r, nil
}

// expireBatch bounds one ExpireDue transaction.
const expireBatch = 100

// ExpireDue moves pending requests whose deadline has passed (by the service's clock) to
// expired, each with an expired event, and returns how many it moved. Rows another transaction
// holds (an approval in progress) are skipped with SKIP LOCKED and left for that transaction or
// the next sweep. Several replicas may run it at once.
func (s *Service) ExpireDue(ctx context.Context, db bun.IDB) (n int, err error) {
	defer pg.Wrap(&err, "approval.ExpireDue")
	for {
		var batch int
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			batch = 0
			now := s.now()
			var ids []int64
			err := tx.NewRaw(`SELECT id FROM requests WHERE state = 'pending' AND expires_at <= ?
				ORDER BY expires_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, now, expireBatch).Scan(ctx, &ids)
			if err != nil {
				return pg.Interpret(err)
			}
			// Every transition first, then the events: the audit lock is held from the first
			// Append to the commit.
			var events []audit.Event
			for _, id := range ids {
				if err := transition(ctx, tx, id, Pending, Expired, now, "decided_at = ?", now); err != nil {
					return err
				}
				r, err := get(ctx, tx, id)
				if err != nil {
					return err
				}
				events = append(events, expiredEvent(r))
			}
			for _, e := range events {
				if _, err := audit.Append(ctx, tx, e); err != nil {
					return err
				}
			}
			batch = len(ids)
			return nil
		})
		if err != nil {
			return n, err
		}
		n += batch
		if batch < expireBatch {
			return n, nil
		}
	}
}

// RunExpirer calls ExpireDue now and then every interval until ctx is done. Errors are logged
// and retried at the next tick; it returns nil when ctx is done. A nil logger means
// slog.Default().
func (s *Service) RunExpirer(ctx context.Context, db *bun.DB, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("approval.RunExpirer: interval must be positive")
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.ExpireDue(ctx, db)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("expiring requests failed", "err", err)
		case n > 0:
			logger.Info("requests expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return strings.ToValidUTF8(s, "?")
	}
	return strings.ToValidUTF8(s[:n], "?") + "…"
}

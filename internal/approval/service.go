package approval

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// MinReasonLength is the shortest reason (in characters, after trimming) a request or a
// rejection accepts.
const MinReasonLength = 10

// Limits on free text, so that a page or an email stays readable.
const (
	maxReasonLength = 4000
	maxTicketLength = 2000
)

// Service applies the rules. Its zero value is not useful; build it with New, or fill the
// fields (tests inject Clock).
type Service struct {
	Approvals config.Approvals
	// Notifier queues messages in the outbox; nil queues none.
	Notifier *notify.Notifier
	// Clock is the time used for creation, expiry and step-up; nil means time.Now.
	Clock func() time.Time
}

// New returns the service cfg describes.
func New(cfg *config.Config) *Service {
	return &Service{Approvals: cfg.Approvals, Notifier: notify.NewNotifier(cfg)}
}

// now is the clock, in UTC at PostgreSQL's precision, so what is stored is what is compared.
func (s *Service) now() time.Time {
	t := time.Now()
	if s.Clock != nil {
		t = s.Clock()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Required is the number of approvals a request with this many changed rows and reached tables
// needs: approvals.required, raised by every escalate rule whose bound is exceeded (the largest
// applies).
func (s *Service) Required(rows int64, tables int) int {
	n := max(s.Approvals.Required, 1)
	for _, e := range s.Approvals.Escalate {
		if (e.RowsOver > 0 && rows > e.RowsOver) || (e.TablesOver > 0 && tables > e.TablesOver) {
			n = max(n, e.Required)
		}
	}
	return n
}

// CreateInput is a request for deletion (or, with RestoresRequestID, for a restore).
type CreateInput struct {
	Actor   Actor
	Preview *preview.Preview
	Reason  string
	// TicketURL is optional; when given it must be an http or https URL.
	TicketURL string
	// RestoresRequestID makes this a restore request undoing that (done) deletion.
	RestoresRequestID int64
}

// Create opens a request from a preview and returns it.
//
// It refuses a preview that is blocked or not exact (a planner estimate has no digest), a
// reason shorter than MinReasonLength (*ValidationError), an actor who may not request
// (viewers and disabled users: ErrForbidden), and a root that already has an open request
// (*OpenRequestError, with that request's id). In one transaction it freezes the preview,
// fixes the approvals required (Required), queues "awaiting approval" for the approvers and
// writes the requested (or restore_requested) audit event. Given a bun.Tx it runs in a
// savepoint of it.
func (s *Service) Create(ctx context.Context, db bun.IDB, in CreateInput) (r *Request, err error) {
	defer pg.Wrap(&err, "approval.Create")
	reason := strings.TrimSpace(in.Reason)
	ticket := strings.TrimSpace(in.TicketURL)
	if err := validateCreate(in.Preview, reason, ticket); err != nil {
		return nil, err
	}
	p := in.Preview
	preview, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("freeze the preview: %w", err)
	}
	fingerprints, err := json.Marshal(nonNil(p.Fingerprints))
	if err != nil {
		return nil, fmt.Errorf("freeze the fingerprints: %w", err)
	}
	keys := p.Root.Keys
	if len(keys) == 0 {
		keys = []string{p.Root.Key}
	}
	op, action := Delete, audit.ActionRequested
	if in.RestoresRequestID != 0 {
		op, action = Restore, audit.ActionRestoreRequested
	}
	rows, tables := p.Totals.Changed(), p.Totals.Tables
	required := s.Required(rows, tables)

	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		u, err := lockUser(ctx, tx, in.Actor.ID)
		if err != nil {
			return err
		}
		switch {
		case u.disabled:
			return fmt.Errorf("%w: user %s is disabled", ErrForbidden, u.name)
		case u.role != "requester" && u.role != "approver" && u.role != "admin":
			return fmt.Errorf("%w: requesting needs the requester role or above; %s is a %s", ErrForbidden, u.name, u.role)
		}
		if in.RestoresRequestID != 0 {
			var state State
			err := tx.QueryRowContext(ctx, "SELECT state FROM requests WHERE id = ?", in.RestoresRequestID).Scan(&state)
			if errors.Is(err, sql.ErrNoRows) {
				return &ValidationError{Fields: []FieldError{{Field: "restores", Message: fmt.Sprintf("there is no request #%d", in.RestoresRequestID)}}}
			}
			if err != nil {
				return pg.Interpret(err)
			}
			if state != Done && state != Partial {
				return &ValidationError{Fields: []FieldError{{Field: "restores", Message: fmt.Sprintf("request #%d has not run (it is %s)", in.RestoresRequestID, state)}}}
			}
		}
		now := s.now()
		var id int64
		err = tx.QueryRowContext(ctx, `INSERT INTO requests (kind_of_request, restores_request_id, kind, target,
				root_table, root_key, root_keys, root_label, digest, policy_hash, schema_fingerprints, preview,
				rows_total, tables_total, requester_id, reason, ticket_url, approvals_required, state,
				created_at, updated_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?::jsonb, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)
			ON CONFLICT (kind, target, root_key) WHERE state IN `+openStates+` DO NOTHING
			RETURNING id`,
			op, nullID(in.RestoresRequestID), p.Kind, p.Target, p.Root.Table, p.Root.Key, pgdialect.Array(keys), p.Root.Label,
			p.Digest, p.PolicyHash, string(fingerprints), string(preview), rows, tables, u.id, reason, ticket,
			required, now, now, now.Add(s.expiresAfter())).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			open, err := OpenFor(ctx, tx, p.Kind, p.Target, p.Root.Key)
			if err != nil {
				// The open request finished between the insert and this read; the caller
				// may simply try again.
				return fmt.Errorf("%w: the root's open request changed meanwhile, try again: %w", pg.ErrRetryable, err)
			}
			return &OpenRequestError{ID: open.ID, State: open.State}
		}
		if err != nil {
			return pg.Interpret(err)
		}
		if r, err = get(ctx, tx, id); err != nil {
			return err
		}
		if err := s.Notifier.Notify(ctx, tx, notify.Awaiting, r.notice()); err != nil {
			return err
		}
		e := r.event(action, in.Actor.ClientIP)
		e.ActorID, e.ActorName = &u.id, u.name
		e.Details = map[string]any{
			"approvals_required": int64(required), "rows": rows, "tables": int64(tables),
			"expires_at": r.ExpiresAt.Format(time.RFC3339),
		}
		if ticket != "" {
			e.Details["ticket_url"] = ticket
		}
		if op == Restore {
			e.Details["restores_request_id"] = in.RestoresRequestID
		}
		_, err = audit.Append(ctx, tx, e)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Service) expiresAfter() time.Duration {
	if s.Approvals.ExpiresAfter > 0 {
		return s.Approvals.ExpiresAfter
	}
	return config.DefaultExpiresAfter
}

func validateCreate(p *preview.Preview, reason, ticket string) error {
	v := &ValidationError{}
	switch {
	case p == nil:
		v.add("preview", "there is no preview to request")
	case p.Blocked():
		v.add("preview", "the preview has %d blocker(s); a blocked deletion cannot be requested", len(p.Blockers))
	case !p.Exact || p.Digest == "":
		v.add("preview", "the preview is still an estimate; wait for exact counts")
	case p.Kind == "" || p.Target == "" || p.Root.Key == "":
		v.add("preview", "the preview names no root")
	}
	switch n := utf8.RuneCountInString(reason); {
	case n < MinReasonLength:
		v.add("reason", "give a reason of at least %d characters", MinReasonLength)
	case n > maxReasonLength:
		v.add("reason", "keep the reason under %d characters", maxReasonLength)
	case strings.ContainsRune(reason, 0):
		v.add("reason", "the reason contains a NUL character")
	}
	if ticket != "" {
		u, err := url.Parse(ticket)
		switch {
		case len(ticket) > maxTicketLength:
			v.add("ticket_url", "the ticket URL is too long")
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			v.add("ticket_url", "give the ticket as an http or https URL")
		}
	}
	return v.orNil()
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// user is a users row as the rules need it: read in the acting transaction, never from the
// session.
type user struct {
	id       int64
	name     string
	role     string
	disabled bool
}

// lockUser reads the user and holds a share lock on the row until the transaction ends, so a
// concurrent role change waits for this decision instead of slipping under it.
func lockUser(ctx context.Context, tx bun.Tx, id int64) (user, error) {
	u := user{id: id}
	var disabledAt sql.NullTime
	err := tx.QueryRowContext(ctx, "SELECT name, role, disabled_at FROM users WHERE id = ? FOR SHARE", id).
		Scan(&u.name, &u.role, &disabledAt)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: user %d does not exist", ErrForbidden, id)
	}
	if err != nil {
		return u, pg.Interpret(err)
	}
	u.disabled = disabledAt.Valid
	return u, nil
}

// lockRequest reads the request with FOR UPDATE: every decision on a request is serialised on
// its row.
func lockRequest(ctx context.Context, tx bun.Tx, id int64) (*Request, error) {
	var locked int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM requests WHERE id = ? FOR UPDATE", id).Scan(&locked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: #%d", ErrNotFound, id)
	}
	if err != nil {
		return nil, pg.Interpret(err)
	}
	return get(ctx, tx, id)
}

// event is an audit event about r with the request's fields filled in; the caller sets the
// actor, reason and details.
func (r *Request) event(action audit.Action, clientIP string) audit.Event {
	id := r.ID
	return audit.Event{
		Action: action, RequestID: &id, Kind: r.Kind, Target: r.Target,
		RootKey: r.RootKey, RootLabel: r.RootLabel, Reason: r.Reason,
		PlanDigest: r.Digest, PolicyHash: r.PolicyHash, ClientIP: clientIP,
	}
}

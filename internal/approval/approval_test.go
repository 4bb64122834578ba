package approval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Tests that use pgtest.Tx do not run in parallel: every audit event takes the audit log's
// advisory lock until the test's transaction ends, so they would only queue behind each other.
// Tests that commit or race use pgtest.Fresh and run in parallel.

var t0 = time.Date(2030, 3, 4, 10, 0, 0, 0, time.UTC)

// fixture is a service with an injectable clock and one user of each role.
type fixture struct {
	db  bun.IDB
	svc *Service
	now time.Time

	alice int64 // requester, with an email address
	bob   int64 // approver
	carol int64 // approver
	dave  int64 // admin
	vic   int64 // viewer
}

func setup(t *testing.T, db bun.IDB) *fixture {
	t.Helper()
	f := &fixture{db: db, now: t0}
	f.svc = &Service{
		Approvals: config.Approvals{
			Required: 1, ExpiresAfter: 72 * time.Hour, StepUp: 15 * time.Minute,
			Escalate: []config.EscalateRule{{RowsOver: 100000, Required: 2}, {TablesOver: 20, Required: 3}},
		},
		Notifier: &notify.Notifier{
			BaseURL: "https://tombstone.example.com",
			Email:   &config.Email{SMTP: "smtp://127.0.0.1:25", From: "tombstone@example.com", To: []string{"ops@example.com"}},
			Slack:   &config.Slack{Webhook: "https://hooks.example.com/services/x"},
		},
		Clock: func() time.Time { return f.now },
	}
	f.alice = addUser(t, db, "alice", "requester", "alice@example.com")
	f.bob = addUser(t, db, "bob", "approver", "bob@example.com")
	f.carol = addUser(t, db, "carol", "approver", "")
	f.dave = addUser(t, db, "dave", "admin", "dave@example.com")
	f.vic = addUser(t, db, "vic", "viewer", "")
	return f
}

func addUser(t *testing.T, db bun.IDB, name, role, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRowContext(context.Background(),
		"INSERT INTO users (name, role, email) VALUES (?, ?, ?) RETURNING id", name, role, email).Scan(&id))
	return id
}

func (f *fixture) actor(id int64) Actor {
	var name string
	if err := f.db.QueryRowContext(context.Background(), "SELECT name FROM users WHERE id = ?", id).Scan(&name); err != nil {
		panic(err)
	}
	return Actor{ID: id, Name: name, ClientIP: "192.0.2.7"}
}

// newPreview builds an exact, unblocked preview of tenant rootKey reaching rows rows in tables
// tables.
func newPreview(rootKey string, rows int64, tables int) *preview.Preview {
	sum := sha256.Sum256([]byte(fmt.Sprintf("tenant/%s/%d/%d", rootKey, rows, tables)))
	return &preview.Preview{
		Kind: "tenant", Target: "app", Action: "delete",
		Root: preview.Root{Table: "public.tenants", Key: rootKey, Keys: []string{rootKey}, Label: "Acme (" + rootKey + ")"},
		Summary: []preview.SummaryLine{
			{Target: "app", Table: "public.tenants", Action: "delete", Rows: 1},
			{Target: "app", Table: "public.orders", Action: "delete", Rows: rows - 1},
		},
		Totals: preview.Totals{Delete: rows, Tables: tables},
		Tree: &preview.Node{ID: 1, Target: "app", Table: "public.tenants", Action: "delete", Rule: "root", Rows: 1,
			Sample: []preview.Row{{Key: rootKey, Label: "Acme"}},
			Children: []*preview.Node{{ID: 2, Target: "app", Table: "public.orders", Via: "tenant_id", Action: "delete",
				Rule: "fk cascade", Rows: rows - 1, Sample: []preview.Row{{Key: "7", Label: "order 7"}}}}},
		Warnings:     []preview.Warning{{Code: "unindexed_fk", Message: "orders.tenant_id has no index"}},
		Digest:       hex.EncodeToString(sum[:]),
		PolicyHash:   "policy-1",
		Fingerprints: map[string]string{"app": "fp-app"},
		Exact:        true,
		At:           t0,
	}
}

func (f *fixture) create(t *testing.T, requester int64, p *preview.Preview) *Request {
	t.Helper()
	r, err := f.svc.Create(context.Background(), f.db, CreateInput{
		Actor: f.actor(requester), Preview: p, Reason: "customer closed their account", TicketURL: "https://tickets.example.com/T-9",
	})
	require.NoError(t, err)
	return r
}

func (f *fixture) approve(r *Request, approver int64) (*Request, error) {
	return f.svc.Approve(context.Background(), f.db, ApproveInput{
		Actor: f.actor(approver), RequestID: r.ID, Digest: r.Digest, SignedInAt: f.now.Add(-time.Minute),
	})
}

// events returns the actions of the request's audit events, oldest first.
func events(t *testing.T, db bun.IDB, id int64) []audit.Event {
	t.Helper()
	es, err := Timeline(context.Background(), db, id)
	require.NoError(t, err)
	return es
}

func actions(es []audit.Event) []audit.Action {
	var out []audit.Action
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

func state(t *testing.T, db bun.IDB, id int64) State {
	t.Helper()
	r, err := Get(context.Background(), db, id)
	require.NoError(t, err)
	return r.State
}

func TestCreateFreezesThePreviewAndTellsApprovers(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	p := newPreview("acme", 120, 2)
	r := f.create(t, f.alice, p)

	require.Equal(t, Pending, r.State)
	require.Equal(t, Delete, r.Operation)
	require.Equal(t, "alice", r.RequesterName)
	require.Equal(t, "customer closed their account", r.Reason)
	require.Equal(t, "https://tickets.example.com/T-9", r.TicketURL)
	require.Equal(t, 1, r.ApprovalsRequired)
	require.Equal(t, int64(120), r.RowsTotal)
	require.Equal(t, 2, r.TablesTotal)
	require.Equal(t, []string{"acme"}, r.RootKeys)
	require.Equal(t, p.Digest, r.Digest)
	require.Equal(t, map[string]string{"app": "fp-app"}, r.Fingerprints)
	require.True(t, r.CreatedAt.Equal(t0))
	require.True(t, r.ExpiresAt.Equal(t0.Add(72*time.Hour)))
	require.Empty(t, r.Approvals)
	require.Nil(t, r.Result)
	require.Nil(t, r.TargetStatus)
	require.True(t, r.DecidedAt.IsZero())

	got, err := Get(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.NotNil(t, got.Preview)
	want, _ := json.Marshal(p)
	have, _ := json.Marshal(got.Preview)
	require.JSONEq(t, string(want), string(have), "the preview is frozen as it was")
	require.Equal(t, "order 7", got.Preview.Tree.Children[0].Sample[0].Label)

	es := events(t, f.db, r.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested}, actions(es))
	require.Equal(t, "alice", es[0].ActorName)
	require.Equal(t, f.alice, *es[0].ActorID)
	require.Equal(t, "acme", es[0].RootKey)
	require.Equal(t, p.Digest, es[0].PlanDigest)
	require.Equal(t, "customer closed their account", es[0].Reason)
	require.Equal(t, "192.0.2.7", es[0].ClientIP)
	require.Equal(t, int64(1), es[0].Details["approvals_required"])

	// Approvers hear of it: notify.email.to, bob (carol has no address), and Slack once.
	ms, err := notify.Messages(ctx, f.db, r.ID)
	require.NoError(t, err)
	var to []string
	for _, m := range ms {
		require.Equal(t, notify.Awaiting, m.Event)
		to = append(to, m.Recipient)
	}
	require.Equal(t, []string{"ops@example.com", "bob@example.com", notify.SlackRecipient}, to)
	require.Contains(t, ms[0].BodyText, fmt.Sprintf("https://tombstone.example.com/requests/%d", r.ID))
}

func TestCreateRefuses(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	blocked := newPreview("b", 5, 1)
	blocked.Blockers = []preview.Blocker{{Target: "app", Table: "public.merchants", Reason: "protected", Rows: 1}}
	estimate := newPreview("e", 5, 1)
	estimate.Exact, estimate.Digest = false, ""

	for name, tc := range map[string]struct {
		in    CreateInput
		field string
	}{
		"blocked":      {CreateInput{Actor: f.actor(f.alice), Preview: blocked, Reason: "a good long reason"}, "preview"},
		"estimate":     {CreateInput{Actor: f.actor(f.alice), Preview: estimate, Reason: "a good long reason"}, "preview"},
		"no preview":   {CreateInput{Actor: f.actor(f.alice), Reason: "a good long reason"}, "preview"},
		"short reason": {CreateInput{Actor: f.actor(f.alice), Preview: newPreview("s", 5, 1), Reason: "   too short  \n"}, "reason"},
		"no reason":    {CreateInput{Actor: f.actor(f.alice), Preview: newPreview("s", 5, 1)}, "reason"},
		"js ticket": {CreateInput{Actor: f.actor(f.alice), Preview: newPreview("s", 5, 1), Reason: "a good long reason",
			TicketURL: "javascript:alert(1)"}, "ticket_url"},
	} {
		_, err := f.svc.Create(ctx, f.db, tc.in)
		require.ErrorIs(t, err, ErrInvalid, name)
		require.ErrorIs(t, err, pg.ErrInvalid, name)
		var v *ValidationError
		require.ErrorAs(t, err, &v, name)
		require.NotEmpty(t, v.Message(tc.field), name)
	}

	// Exactly ten characters after trimming is enough.
	_, err := f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.alice), Preview: newPreview("ten", 5, 1), Reason: "  0123456789  "})
	require.NoError(t, err)

	// A viewer may not request; a disabled requester may not either.
	_, err = f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.vic), Preview: newPreview("v", 5, 1), Reason: "a good long reason"})
	require.ErrorIs(t, err, ErrForbidden)
	_, err = f.db.ExecContext(ctx, "UPDATE users SET disabled_at = now() WHERE id = ?", f.alice)
	require.NoError(t, err)
	_, err = f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.alice), Preview: newPreview("d", 5, 1), Reason: "a good long reason"})
	require.ErrorIs(t, err, ErrForbidden)

	// Approvers and admins may request.
	f.create(t, f.bob, newPreview("by-bob", 5, 1))
	f.create(t, f.dave, newPreview("by-dave", 5, 1))

	var n int
	require.NoError(t, f.db.QueryRowContext(ctx, "SELECT count(*) FROM requests").Scan(&n))
	require.Equal(t, 3, n, "nothing refused was stored")
}

func TestOpenRequestForTheSameRootIsRefusedWithItsID(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	first := f.create(t, f.alice, newPreview("acme", 10, 1))

	_, err := f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.bob), Preview: newPreview("acme", 11, 1), Reason: "another reason here"})
	require.ErrorIs(t, err, ErrOpenRequest)
	require.ErrorIs(t, err, pg.ErrConflict)
	var open *OpenRequestError
	require.ErrorAs(t, err, &open)
	require.Equal(t, first.ID, open.ID)
	require.Equal(t, Pending, open.State)

	// Another root, or the same key of another kind, is fine.
	f.create(t, f.alice, newPreview("globex", 10, 1))
	other := newPreview("acme", 10, 1)
	other.Kind = "site"
	f.create(t, f.alice, other)

	// Approved still holds the root; once it is decided the root is free again.
	_, err = f.approve(first, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.alice), Preview: newPreview("acme", 10, 1), Reason: "a good long reason"})
	require.ErrorIs(t, err, ErrOpenRequest)
	_, err = f.svc.Start(ctx, f.db, first.ID)
	require.NoError(t, err)
	_, err = f.svc.Finish(ctx, f.db, first.ID, Failed, nil, "lock timeout")
	require.NoError(t, err)
	again := f.create(t, f.alice, newPreview("acme", 10, 1))

	found, err := OpenFor(ctx, f.db, "tenant", "app", "acme")
	require.NoError(t, err)
	require.Equal(t, again.ID, found.ID)
	_, err = OpenFor(ctx, f.db, "tenant", "app", "nobody")
	require.ErrorIs(t, err, ErrNotFound)
	id, err := OpenID(ctx, f.db, "tenant", "app", "acme")
	require.NoError(t, err)
	require.Equal(t, again.ID, id, "the failed request no longer holds the root")
	_, err = OpenID(ctx, f.db, "tenant", "app", "nobody")
	require.ErrorIs(t, err, ErrNotFound)
	_, err = OpenID(ctx, f.db, "repo", "app", "acme")
	require.ErrorIs(t, err, ErrNotFound, "another kind's root of the same key")
	ids, err := OpenIDs(ctx, f.db, "tenant", "app", []string{"acme", "globex", "nobody"})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	require.Equal(t, again.ID, ids["acme"])
	globex, err := OpenFor(ctx, f.db, "tenant", "app", "globex")
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"acme": again.ID, "globex": globex.ID}, ids)
}

func TestSelfApprovalIsRefusedAndAudited(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()

	// An approver requests and tries to approve.
	r := f.create(t, f.bob, newPreview("bobs", 10, 1))
	_, err := f.approve(r, f.bob)
	require.ErrorIs(t, err, ErrSelfApproval)
	require.ErrorIs(t, err, ErrForbidden)
	require.Equal(t, Pending, state(t, f.db, r.ID))
	es := events(t, f.db, r.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionSelfApprovalRefused}, actions(es))
	require.Equal(t, f.bob, *es[1].ActorID)
	require.Equal(t, "192.0.2.7", es[1].ClientIP)

	// An admin requester is refused the same way.
	r2 := f.create(t, f.dave, newPreview("daves", 10, 1))
	_, err = f.approve(r2, f.dave)
	require.ErrorIs(t, err, ErrSelfApproval)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionSelfApprovalRefused}, actions(events(t, f.db, r2.ID)))

	// An admin cannot approve anybody's request either.
	r3 := f.create(t, f.alice, newPreview("alices", 10, 1))
	_, err = f.approve(r3, f.dave)
	require.ErrorIs(t, err, ErrForbidden)
	require.NotErrorIs(t, err, ErrSelfApproval)
	es = events(t, f.db, r3.ID)
	require.Equal(t, audit.ActionApprovalRefused, es[len(es)-1].Action)
	require.Equal(t, "admin", es[len(es)-1].Details["refused"])

	// No approval row was written by any of it.
	var n int
	require.NoError(t, f.db.QueryRowContext(ctx, "SELECT count(*) FROM approvals").Scan(&n))
	require.Zero(t, n)
}

func TestSecondApprovalBySamePersonIsDuplicate(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	r := f.create(t, f.alice, newPreview("big", 200000, 3)) // escalated: 2 approvals
	require.Equal(t, 2, r.ApprovalsRequired)

	got, err := f.approve(r, f.bob)
	require.NoError(t, err)
	require.Equal(t, Pending, got.State)
	_, err = f.approve(r, f.bob)
	require.ErrorIs(t, err, ErrDuplicate)
	require.ErrorIs(t, err, pg.ErrConflict)
	require.Equal(t, Pending, state(t, f.db, r.ID), "a duplicate does not count twice")
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionApproved, audit.ActionDuplicateApprovalRefused},
		actions(events(t, f.db, r.ID)))

	// The database backs the rule on its own.
	_, err = f.db.ExecContext(context.Background(), "SAVEPOINT dup")
	require.NoError(t, err)
	_, err = f.db.ExecContext(context.Background(), "INSERT INTO approvals (request_id, approver_id, digest, created_at) VALUES (?, ?, ?, now())",
		r.ID, f.bob, r.Digest)
	require.ErrorIs(t, pg.Interpret(err), pg.ErrConflict)
	_, err = f.db.ExecContext(context.Background(), "ROLLBACK TO SAVEPOINT dup")
	require.NoError(t, err)
}

func TestStaleDigestIsRefused(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	stale := newPreview("acme", 11, 1).Digest
	_, err := f.svc.Approve(context.Background(), f.db, ApproveInput{
		Actor: f.actor(f.bob), RequestID: r.ID, Digest: stale, SignedInAt: f.now,
	})
	require.ErrorIs(t, err, ErrStaleDigest)
	require.ErrorIs(t, err, pg.ErrConflict)
	require.Equal(t, Pending, state(t, f.db, r.ID))
	es := events(t, f.db, r.ID)
	require.Equal(t, audit.ActionStaleApprovalRefused, es[len(es)-1].Action)
	require.Equal(t, stale, es[len(es)-1].Details["posted_digest"])
}

func TestApprovingJustAfterExpiryIsRefused(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	r := f.create(t, f.alice, newPreview("acme", 10, 1))

	f.now = r.ExpiresAt.Add(time.Millisecond)
	_, err := f.approve(r, f.bob)
	require.ErrorIs(t, err, ErrExpired)
	got, err := Get(context.Background(), f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, Expired, got.State)
	require.True(t, got.DecidedAt.Equal(f.now.Truncate(time.Microsecond)))
	require.Empty(t, got.Approvals)
	es := events(t, f.db, r.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionExpired, audit.ActionApprovalRefused}, actions(es))
	require.Equal(t, audit.SystemActor, es[1].ActorName)
	require.Equal(t, "expired", es[2].Details["refused"])

	// It stays expired.
	f.now = t0
	_, err = f.approve(r, f.bob)
	require.ErrorIs(t, err, ErrNotPending)
	_, err = f.svc.Cancel(context.Background(), f.db, f.actor(f.alice), r.ID)
	require.ErrorIs(t, err, ErrNotPending)

	// A moment before the deadline, approving works.
	r2 := f.create(t, f.alice, newPreview("globex", 10, 1))
	f.now = r2.ExpiresAt.Add(-time.Millisecond)
	got, err = f.approve(r2, f.bob)
	require.NoError(t, err)
	require.Equal(t, Approved, got.State)
}

func TestExpireDueSweepsOnlyPendingPastTheirDeadline(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	old := f.create(t, f.alice, newPreview("old", 10, 1))
	approved := f.create(t, f.alice, newPreview("approved", 10, 1))
	_, err := f.approve(approved, f.bob)
	require.NoError(t, err)
	f.now = t0.Add(time.Hour)
	young := f.create(t, f.alice, newPreview("young", 10, 1))

	f.now = old.ExpiresAt // exactly at the deadline: due
	n, err := f.svc.ExpireDue(ctx, f.db)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, Expired, state(t, f.db, old.ID))
	require.Equal(t, Approved, state(t, f.db, approved.ID))
	require.Equal(t, Pending, state(t, f.db, young.ID))
	es := events(t, f.db, old.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionExpired}, actions(es))
	require.Equal(t, audit.SystemActor, es[1].ActorName)
	require.Nil(t, es[1].ActorID)

	n, err = f.svc.ExpireDue(ctx, f.db)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is expired twice")
	f.now = young.ExpiresAt.Add(time.Hour)
	n, err = f.svc.ExpireDue(ctx, f.db)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, Expired, state(t, f.db, young.ID))
}

func TestDemotedApproverIsRefused(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	page, err := Get(ctx, f.db, r.ID) // bob loads the page as an approver
	require.NoError(t, err)

	_, err = f.db.ExecContext(ctx, "UPDATE users SET role = 'requester' WHERE id = ?", f.bob)
	require.NoError(t, err)
	_, err = f.svc.Approve(ctx, f.db, ApproveInput{Actor: Actor{ID: f.bob, Name: "bob"}, RequestID: page.ID, Digest: page.Digest, SignedInAt: f.now})
	require.ErrorIs(t, err, ErrForbidden)
	es := events(t, f.db, r.ID)
	last := es[len(es)-1]
	require.Equal(t, audit.ActionApprovalRefused, last.Action)
	require.Equal(t, "role", last.Details["refused"])
	require.Equal(t, "requester", last.Details["role"])

	// Disabled is refused too, and so is a viewer.
	_, err = f.db.ExecContext(ctx, "UPDATE users SET disabled_at = now() WHERE id = ?", f.carol)
	require.NoError(t, err)
	_, err = f.approve(r, f.carol)
	require.ErrorIs(t, err, ErrForbidden)
	_, err = f.approve(r, f.vic)
	require.ErrorIs(t, err, ErrForbidden)
	require.Equal(t, Pending, state(t, f.db, r.ID))
}

func TestStepUpIsRequired(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	for _, signedIn := range []time.Time{{}, f.now.Add(-16 * time.Minute), f.now.Add(time.Hour)} {
		_, err := f.svc.Approve(ctx, f.db, ApproveInput{Actor: f.actor(f.bob), RequestID: r.ID, Digest: r.Digest, SignedInAt: signedIn})
		require.ErrorIs(t, err, ErrStepUp, "signed in at %v", signedIn)
	}
	es := events(t, f.db, r.ID)
	require.Equal(t, "step_up", es[len(es)-1].Details["refused"])
	got, err := f.svc.Approve(ctx, f.db, ApproveInput{Actor: f.actor(f.bob), RequestID: r.ID, Digest: r.Digest, SignedInAt: f.now.Add(-14 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, Approved, got.State)
}

func TestEscalationNeedsMoreApprovers(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	require.Equal(t, 1, f.svc.Required(100000, 20), "bounds are exclusive")
	require.Equal(t, 2, f.svc.Required(100001, 1))
	require.Equal(t, 3, f.svc.Required(1, 21))
	require.Equal(t, 3, f.svc.Required(100001, 21), "the largest rule that applies wins")

	r := f.create(t, f.alice, newPreview("big", 100001, 2))
	require.Equal(t, 2, r.ApprovalsRequired)
	got, err := f.approve(r, f.bob)
	require.NoError(t, err)
	require.Equal(t, Pending, got.State, "one approval is not enough")
	require.Len(t, got.Approvals, 1)
	ms, err := notify.Messages(context.Background(), f.db, r.ID)
	require.NoError(t, err)
	for _, m := range ms {
		require.NotEqual(t, notify.Approved, m.Event, "the requester is told only when it is approved")
	}

	got, err = f.approve(r, f.carol)
	require.NoError(t, err)
	require.Equal(t, Approved, got.State)
	require.Equal(t, []string{"bob", "carol"}, []string{got.Approvals[0].ApproverName, got.Approvals[1].ApproverName})
	require.True(t, got.ApprovedBy(f.carol))
	ms, err = notify.Messages(context.Background(), f.db, r.ID)
	require.NoError(t, err)
	last := ms[len(ms)-1]
	require.Equal(t, notify.Approved, last.Event)
	require.Equal(t, "alice@example.com", last.Recipient)
	require.Contains(t, last.BodyText, "approved by bob, carol")
}

func TestEscalationCountsOnlyApproversWhoStillHoldTheRole(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("big", 100001, 2))
	_, err := f.approve(r, f.bob)
	require.NoError(t, err)
	_, err = f.db.ExecContext(ctx, "UPDATE users SET role = 'viewer' WHERE id = ?", f.bob)
	require.NoError(t, err)
	got, err := f.approve(r, f.carol)
	require.NoError(t, err)
	require.Equal(t, Pending, got.State, "bob's approval no longer counts")
}

func TestRejectNeedsAReasonAndAnApprover(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))

	_, err := f.svc.Reject(ctx, f.db, f.actor(f.bob), r.ID, "  no ")
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	require.NotEmpty(t, v.Message("reason"))
	_, err = f.svc.Reject(ctx, f.db, f.actor(f.alice), r.ID, "changed my mind about it")
	require.ErrorIs(t, err, ErrSelfApproval, "the requester cancels instead")
	_, err = f.svc.Reject(ctx, f.db, f.actor(f.dave), r.ID, "admins have no say here")
	require.ErrorIs(t, err, ErrForbidden)
	_, err = f.svc.Reject(ctx, f.db, f.actor(f.vic), r.ID, "viewers have no say here")
	require.ErrorIs(t, err, ErrForbidden)
	require.Equal(t, Pending, state(t, f.db, r.ID))

	got, err := f.svc.Reject(ctx, f.db, f.actor(f.bob), r.ID, "  wrong tenant, see ticket  ")
	require.NoError(t, err)
	require.Equal(t, Rejected, got.State)
	require.Equal(t, f.bob, got.DecidedBy)
	require.Equal(t, "bob", got.DecidedByName)
	require.Equal(t, "wrong tenant, see ticket", got.DecisionReason)
	es := events(t, f.db, r.ID)
	last := es[len(es)-1]
	require.Equal(t, audit.ActionRejected, last.Action)
	require.Equal(t, "wrong tenant, see ticket", last.Reason)
	ms, err := notify.Messages(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, notify.Rejected, ms[len(ms)-1].Event)
	require.Equal(t, "alice@example.com", ms[len(ms)-1].Recipient)

	// Rejected is terminal.
	_, err = f.approve(r, f.carol)
	require.ErrorIs(t, err, ErrNotPending)
	_, err = f.svc.Reject(ctx, f.db, f.actor(f.carol), r.ID, "rejecting it once more")
	require.ErrorIs(t, err, ErrNotPending)
	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), r.ID)
	require.ErrorIs(t, err, ErrNotPending)
	require.Equal(t, Rejected, state(t, f.db, r.ID))
}

func TestCancelOnlyByTheRequesterWhilePending(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	for _, who := range []int64{f.bob, f.dave, f.vic} {
		_, err := f.svc.Cancel(ctx, f.db, f.actor(who), r.ID)
		require.ErrorIs(t, err, ErrForbidden)
	}
	got, err := f.svc.Cancel(ctx, f.db, f.actor(f.alice), r.ID)
	require.NoError(t, err)
	require.Equal(t, Cancelled, got.State)
	require.Equal(t, f.alice, got.DecidedBy)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionCancelled}, actions(events(t, f.db, r.ID)))
	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), r.ID)
	require.ErrorIs(t, err, ErrNotPending)

	// Approved requests cannot be cancelled.
	r2 := f.create(t, f.alice, newPreview("globex", 10, 1))
	_, err = f.approve(r2, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), r2.ID)
	require.ErrorIs(t, err, ErrNotPending)

	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), 999999)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorIs(t, err, pg.ErrNotFound)
}

func TestStartAndFinishForTheExecutor(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))

	_, err := f.svc.Start(ctx, f.db, r.ID)
	require.ErrorIs(t, err, ErrNotApproved, "pending does not start")
	_, err = f.approve(r, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Finish(ctx, f.db, r.ID, Done, nil, "")
	require.ErrorIs(t, err, ErrNotApproved, "approved is not running")

	running, err := f.svc.Start(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, Running, running.State)
	_, err = f.svc.Start(ctx, f.db, r.ID)
	require.ErrorIs(t, err, ErrNotApproved, "a duplicate job is harmless")

	require.NoError(t, Progress(ctx, f.db, r.ID, json.RawMessage(`{"app":"done"}`)))
	_, err = f.svc.Finish(ctx, f.db, r.ID, Rejected, nil, "")
	require.ErrorIs(t, err, ErrInvalid)

	done, err := f.svc.Finish(ctx, f.db, r.ID, Done, json.RawMessage(`{"public.tenants":1,"public.orders":9}`), "")
	require.NoError(t, err)
	require.Equal(t, Done, done.State)
	require.JSONEq(t, `{"public.tenants":1,"public.orders":9}`, string(done.Result))
	require.JSONEq(t, `{"app":"done"}`, string(done.TargetStatus))
	_, err = f.svc.Finish(ctx, f.db, r.ID, Failed, nil, "again")
	require.ErrorIs(t, err, ErrNotApproved)
	require.ErrorIs(t, Progress(ctx, f.db, r.ID, json.RawMessage(`{}`)), ErrNotApproved)

	ms, err := notify.Messages(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, notify.Done, ms[len(ms)-1].Event)
	// Start and Finish write no audit events of their own.
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionApproved}, actions(events(t, f.db, r.ID)))

	_, err = f.svc.Start(ctx, f.db, 999999)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestPartialIsResumed(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	_, err := f.approve(r, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Start(ctx, f.db, r.ID)
	require.NoError(t, err)
	p, err := f.svc.Finish(ctx, f.db, r.ID, Partial, json.RawMessage(`{"app":"done","pos":"failed"}`), "pos: lock timeout")
	require.NoError(t, err)
	require.Equal(t, Partial, p.State)
	require.False(t, p.State.Terminal())

	// A partly executed request still holds its root: resuming it is the way forward.
	_, err = f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.alice), Preview: newPreview("acme", 10, 1), Reason: "a good long reason"})
	var open *OpenRequestError
	require.ErrorAs(t, err, &open)
	require.Equal(t, r.ID, open.ID)
	require.Equal(t, Partial, open.State)

	resumed, err := f.svc.Start(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, Running, resumed.State)
}

func TestStartFailsARequestWhoseApproverLostTheRole(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	_, err := f.approve(r, f.bob)
	require.NoError(t, err)
	_, err = f.db.ExecContext(ctx, "UPDATE users SET role = 'requester' WHERE id = ?", f.bob)
	require.NoError(t, err)

	_, err = f.svc.Start(ctx, f.db, r.ID)
	require.ErrorIs(t, err, ErrApprovalRevoked)
	got, err := Get(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, Failed, got.State)
	require.Contains(t, got.Error, "bob no longer has the approver role")
	es := events(t, f.db, r.ID)
	require.Equal(t, audit.ActionExecutionFailed, es[len(es)-1].Action)
	ms, err := notify.Messages(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, notify.Failed, ms[len(ms)-1].Event)
}

func TestTerminalStatesNeverChange(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	terminal := map[State]int64{}

	r := f.create(t, f.alice, newPreview("rejected", 10, 1))
	_, err := f.svc.Reject(ctx, f.db, f.actor(f.bob), r.ID, "not this one, sorry")
	require.NoError(t, err)
	terminal[Rejected] = r.ID
	r = f.create(t, f.alice, newPreview("cancelled", 10, 1))
	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), r.ID)
	require.NoError(t, err)
	terminal[Cancelled] = r.ID
	r = f.create(t, f.alice, newPreview("expired", 10, 1))
	f.now = r.ExpiresAt
	_, err = f.svc.ExpireDue(ctx, f.db)
	require.NoError(t, err)
	f.now = t0
	terminal[Expired] = r.ID
	for _, s := range []State{Done, Failed, Drifted} {
		r = f.create(t, f.alice, newPreview(string(s), 10, 1))
		_, err = f.approve(r, f.bob)
		require.NoError(t, err)
		_, err = f.svc.Start(ctx, f.db, r.ID)
		require.NoError(t, err)
		_, err = f.svc.Finish(ctx, f.db, r.ID, s, nil, "")
		require.NoError(t, err)
		terminal[s] = r.ID
	}

	for s, id := range terminal {
		require.True(t, s.Terminal())
		require.Equal(t, s, state(t, f.db, id))
		_, err := f.approve(&Request{ID: id, Digest: newPreview(string(s), 10, 1).Digest}, f.carol)
		require.Error(t, err, s)
		_, err = f.svc.Reject(ctx, f.db, f.actor(f.carol), id, "rejecting a finished one")
		require.Error(t, err, s)
		_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), id)
		require.Error(t, err, s)
		_, err = f.svc.Start(ctx, f.db, id)
		require.ErrorIs(t, err, ErrNotApproved, s)
		_, err = f.svc.Finish(ctx, f.db, id, Done, nil, "")
		require.ErrorIs(t, err, ErrNotApproved, s)

		// Not even a direct UPDATE moves it: the trigger refuses every edge out.
		for _, to := range States() {
			if to == s {
				continue
			}
			_, err := f.db.ExecContext(ctx, "SAVEPOINT terminal")
			require.NoError(t, err)
			_, err = f.db.ExecContext(ctx, "UPDATE requests SET state = ? WHERE id = ?", to, id)
			require.ErrorIs(t, pg.Interpret(err), pg.ErrInvalid, "%s → %s", s, to)
			_, err = f.db.ExecContext(ctx, "ROLLBACK TO SAVEPOINT terminal")
			require.NoError(t, err)
		}
		require.Equal(t, s, state(t, f.db, id))
	}

	// What was requested is frozen, whatever the state.
	_, err = f.db.ExecContext(ctx, "SAVEPOINT frozen")
	require.NoError(t, err)
	_, err = f.db.ExecContext(ctx, "UPDATE requests SET digest = repeat('0', 64) WHERE id = ?", terminal[Done])
	require.ErrorIs(t, pg.Interpret(err), pg.ErrInvalid)
	_, err = f.db.ExecContext(ctx, "ROLLBACK TO SAVEPOINT frozen")
	require.NoError(t, err)
}

func TestListsAndAwaitingCount(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	a1 := f.create(t, f.alice, newPreview("a1", 10, 1))
	a2 := f.create(t, f.alice, newPreview("a2", 200000, 1)) // needs 2
	b1 := f.create(t, f.bob, newPreview("b1", 10, 1))
	site := newPreview("s1", 10, 1)
	site.Kind = "site"
	a3 := f.create(t, f.alice, site)
	_, err := f.approve(a2, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Cancel(ctx, f.db, f.actor(f.alice), a1.ID)
	require.NoError(t, err)

	ids := func(rs []Request) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	list := func(lf ListFilter) []int64 {
		rs, err := List(ctx, f.db, lf)
		require.NoError(t, err)
		for _, r := range rs {
			require.Nil(t, r.Preview, "lists leave the frozen preview out")
		}
		return ids(rs)
	}

	// bob: a1 is cancelled, a2 he approved, b1 is his own: only a3.
	require.Equal(t, []int64{a3.ID}, list(ListFilter{Tab: TabAwaiting, UserID: f.bob}))
	// carol: a2 (one more approval needed), b1, a3.
	require.Equal(t, []int64{a3.ID, b1.ID, a2.ID}, list(ListFilter{Tab: TabAwaiting, UserID: f.carol}))
	// Non-approvers have nothing awaiting them.
	require.Empty(t, list(ListFilter{Tab: TabAwaiting, UserID: f.dave}))
	require.Empty(t, list(ListFilter{Tab: TabAwaiting, UserID: f.alice}))
	for who, want := range map[int64]int{f.bob: 1, f.carol: 3, f.dave: 0, f.alice: 0} {
		n, err := CountAwaiting(ctx, f.db, who)
		require.NoError(t, err)
		require.Equal(t, want, n, "user %d", who)
	}

	require.Equal(t, []int64{a3.ID, a2.ID, a1.ID}, list(ListFilter{Tab: TabMine, UserID: f.alice}))
	require.Equal(t, []int64{a3.ID, b1.ID, a2.ID, a1.ID}, list(ListFilter{}))
	require.Equal(t, []int64{a1.ID}, list(ListFilter{Tab: TabAll, State: Cancelled}))
	require.Equal(t, []int64{a3.ID}, list(ListFilter{Kind: "site"}))
	require.Equal(t, []int64{a3.ID, b1.ID}, list(ListFilter{Limit: 2}))
	require.Equal(t, []int64{a2.ID, a1.ID}, list(ListFilter{Limit: 2, Before: b1.ID}))

	rs, err := List(ctx, f.db, ListFilter{Tab: TabMine, UserID: f.alice, State: Pending})
	require.NoError(t, err)
	require.Equal(t, []int64{a3.ID, a2.ID}, ids(rs))
	require.Equal(t, "alice", rs[1].RequesterName)
	require.Equal(t, 1, rs[1].ApprovalsGiven)
	require.Equal(t, 2, rs[1].ApprovalsRequired)

	_, err = List(ctx, f.db, ListFilter{Tab: "everyone"})
	require.ErrorIs(t, err, ErrInvalid)
	_, err = List(ctx, f.db, ListFilter{State: "bogus"})
	require.ErrorIs(t, err, ErrInvalid)
}

func TestTimelineIsTheRequestsAuditHistory(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	_, err := f.approve(r, f.alice)
	require.ErrorIs(t, err, ErrSelfApproval)
	_, err = f.approve(r, f.bob)
	require.NoError(t, err)
	es := events(t, f.db, r.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionSelfApprovalRefused, audit.ActionApproved}, actions(es))
	for i := 1; i < len(es); i++ {
		require.Less(t, es[i-1].Seq, es[i].Seq)
	}
	require.Equal(t, string(Approved), es[2].Details["state"])
	v, err := audit.Verify(context.Background(), f.db, 0)
	require.NoError(t, err)
	require.True(t, v.OK, v.String())
}

// TestRaceMakesExactlyOneTransition fires 50 concurrent decisions at one request (49
// approvals by different approvers and the requester's cancellation): exactly one wins.
func TestRaceMakesExactlyOneTransition(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t).Bun
	f := setup(t, db)
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	var approvers []int64
	for i := range 49 {
		approvers = append(approvers, addUser(t, db, fmt.Sprintf("approver%02d", i), "approver", ""))
	}

	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		mu        sync.Mutex
		wins      int
		unexpects []error
	)
	decide := func(fn func() error) {
		defer wg.Done()
		<-start
		err := fn()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ErrNotPending):
		default:
			unexpects = append(unexpects, err)
		}
	}
	for i, a := range approvers {
		wg.Add(1)
		go decide(func() error {
			_, err := f.approve(r, a)
			return err
		})
		if i == 24 {
			wg.Add(1)
			go decide(func() error {
				_, err := f.svc.Cancel(ctx, db, f.actor(f.alice), r.ID)
				return err
			})
		}
	}
	close(start)
	wg.Wait()
	require.Empty(t, unexpects)
	require.Equal(t, 1, wins)

	got, err := Get(ctx, db, r.ID)
	require.NoError(t, err)
	var decisions int
	for _, e := range events(t, db, r.ID) {
		if e.Action == audit.ActionApproved || e.Action == audit.ActionCancelled {
			decisions++
		}
	}
	require.Equal(t, 1, decisions, "one decision event")
	switch got.State {
	case Approved:
		require.Len(t, got.Approvals, 1)
	case Cancelled:
		require.Empty(t, got.Approvals)
	default:
		t.Fatalf("state %s", got.State)
	}
	v, err := audit.Verify(ctx, db, 0)
	require.NoError(t, err)
	require.True(t, v.OK, v.String())
	// requested, the decision, and a refusal event for each approval that lost (a losing
	// cancellation is not an approval attempt and writes none).
	refusals := int64(48)
	if got.State == Cancelled {
		refusals = 49
	}
	require.Equal(t, 2+refusals, v.Count)
}

// TestConcurrentStartsRunOnce: 20 executor jobs for one approved request; one starts it.
func TestConcurrentStartsRunOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t).Bun
	f := setup(t, db)
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	_, err := f.approve(r, f.bob)
	require.NoError(t, err)
	var (
		wg      sync.WaitGroup
		started sync.Map
		others  = make(chan error, 20)
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Start(ctx, db, r.ID)
			if err == nil {
				started.Store(i, true)
				return
			}
			others <- err
		}()
	}
	wg.Wait()
	close(others)
	n := 0
	started.Range(func(any, any) bool { n++; return true })
	require.Equal(t, 1, n)
	for err := range others {
		require.ErrorIs(t, err, ErrNotApproved)
	}
	require.Equal(t, Running, state(t, db, r.ID))
}

func TestRunExpirerStopsWithContext(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t).Bun
	f := setup(t, db)
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	f.svc.Clock = func() time.Time { return r.ExpiresAt.Add(time.Second) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.RunExpirer(ctx, db, 20*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	require.Eventually(t, func() bool { return state(t, db, r.ID) == Expired }, 5*time.Second, 20*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("RunExpirer did not stop")
	}
}

func TestRestoreRequestUndoesADoneDeletion(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	del := f.create(t, f.alice, newPreview("acme", 10, 1))
	restore := CreateInput{Actor: f.actor(f.alice), Preview: newPreview("acme", 10, 1), Reason: "deleted the wrong tenant",
		RestoresRequestID: del.ID}

	// Only a deletion that ran can be restored.
	_, err := f.svc.Create(ctx, f.db, restore)
	var v *ValidationError
	require.ErrorAs(t, err, &v)
	require.NotEmpty(t, v.Message("restores"))

	_, err = f.approve(del, f.bob)
	require.NoError(t, err)
	_, err = f.svc.Start(ctx, f.db, del.ID)
	require.NoError(t, err)
	_, err = f.svc.Finish(ctx, f.db, del.ID, Done, json.RawMessage(`{"public.tenants":1}`), "")
	require.NoError(t, err)

	r, err := f.svc.Create(ctx, f.db, restore)
	require.NoError(t, err)
	require.Equal(t, Restore, r.Operation)
	require.Equal(t, del.ID, r.RestoresRequestID)
	require.Equal(t, []audit.Action{audit.ActionRestoreRequested}, actions(events(t, f.db, r.ID)))
	ms, err := notify.Messages(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Contains(t, ms[0].Subject, "restore tenant")

	// It needs the same approval as a deletion.
	_, err = f.approve(r, f.alice)
	require.ErrorIs(t, err, ErrSelfApproval)
	got, err := f.approve(r, f.bob)
	require.NoError(t, err)
	require.Equal(t, Approved, got.State)
}

func TestApproveUnknownRequest(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	_, err := f.approve(&Request{ID: 424242, Digest: newPreview("x", 1, 1).Digest}, f.bob)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = Get(context.Background(), f.db, 424242)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestControlsFollowTheRules(t *testing.T) {
	t.Parallel()
	r := &Request{ID: 1, RequesterID: 10, State: Pending, ExpiresAt: t0.Add(time.Hour),
		Approvals: []Approval{{ApproverID: 11}}}
	for _, tc := range []struct {
		user int64
		role string
		want Controls
	}{
		{10, "approver", Controls{Cancel: true}}, // the requester, whatever their role
		{10, "admin", Controls{Cancel: true}},
		{11, "approver", Controls{Reject: true}}, // already approved
		{12, "approver", Controls{Approve: true, Reject: true}},
		{13, "admin", Controls{}},
		{14, "requester", Controls{}},
		{15, "viewer", Controls{}},
	} {
		require.Equal(t, tc.want, r.ControlsFor(tc.user, tc.role, t0), "user %d (%s)", tc.user, tc.role)
	}
	require.Equal(t, Controls{}, r.ControlsFor(12, "approver", r.ExpiresAt), "expired")
	r.State = Approved
	require.Equal(t, Controls{}, r.ControlsFor(10, "approver", t0))
	require.Equal(t, Controls{}, r.ControlsFor(12, "approver", t0))
}

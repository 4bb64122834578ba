package approval

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// running makes an approved request and starts it.
func (f *fixture) running(t *testing.T, root string) *Request {
	t.Helper()
	r := f.create(t, f.alice, newPreview(root, 10, 1))
	_, err := f.approve(r, f.bob)
	require.NoError(t, err)
	r, err = f.svc.Start(context.Background(), f.db, r.ID)
	require.NoError(t, err)
	return r
}

func TestPauseAndResumeABatchedRun(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.running(t, "acme")

	p, err := Pause(ctx, f.db, f.actor(f.dave), r.ID, true)
	require.NoError(t, err)
	require.Equal(t, Paused, p.State)
	require.True(t, p.State.Open(), "a paused request holds its root")
	require.False(t, p.State.Terminal())
	_, err = f.svc.Create(ctx, f.db, CreateInput{Actor: f.actor(f.alice), Preview: newPreview("acme", 10, 1), Reason: "a good long reason"})
	var open *OpenRequestError
	require.ErrorAs(t, err, &open)
	require.Equal(t, Paused, open.State)

	_, err = f.svc.Start(ctx, f.db, r.ID)
	require.ErrorIs(t, err, ErrNotApproved, "a stray job does not resume a paused request")
	require.ErrorIs(t, Progress(ctx, f.db, r.ID, []byte(`[]`)), ErrNotApproved)
	_, err = Pause(ctx, f.db, f.actor(f.dave), r.ID, true)
	require.ErrorIs(t, err, ErrNotPausable, "pausing twice")

	back, err := Resume(ctx, f.db, f.actor(f.dave), r.ID)
	require.NoError(t, err)
	require.Equal(t, Running, back.State)
	_, err = Resume(ctx, f.db, f.actor(f.dave), r.ID)
	require.ErrorIs(t, err, ErrNotPausable, "resuming a running request")

	es := events(t, f.db, r.ID)
	require.Equal(t, []audit.Action{audit.ActionRequested, audit.ActionApproved, audit.ActionPaused, audit.ActionResumed}, actions(es))
	for _, e := range es[2:] {
		require.Equal(t, "dave", e.ActorName)
		require.NotNil(t, e.ActorID)
		require.Equal(t, f.dave, *e.ActorID)
		require.Equal(t, "192.0.2.7", e.ClientIP)
	}
}

func TestOnlyAdminsPauseOnlyBatchedRuns(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.running(t, "acme")
	for _, who := range []int64{f.alice, f.bob, f.vic} {
		_, err := Pause(ctx, f.db, f.actor(who), r.ID, true)
		require.ErrorIs(t, err, ErrAdminOnly)
		require.ErrorIs(t, err, ErrForbidden)
	}
	_, err := Pause(ctx, f.db, f.actor(f.dave), r.ID, false)
	require.ErrorIs(t, err, ErrNotPausable, "a single-transaction run cannot stop half-way")
	require.Equal(t, Running, state(t, f.db, r.ID))

	pending := f.create(t, f.alice, newPreview("globex", 10, 1))
	_, err = Pause(ctx, f.db, f.actor(f.dave), pending.ID, true)
	require.ErrorIs(t, err, ErrNotPausable)
	_, err = Resume(ctx, f.db, f.actor(f.dave), pending.ID)
	require.ErrorIs(t, err, ErrNotPausable)

	_, err = Pause(ctx, f.db, f.actor(f.dave), r.ID, true)
	require.NoError(t, err)
	_, err = Resume(ctx, f.db, f.actor(f.bob), r.ID)
	require.ErrorIs(t, err, ErrAdminOnly)
	_, err = f.db.ExecContext(ctx, "UPDATE users SET disabled_at = now() WHERE id = ?", f.dave)
	require.NoError(t, err)
	_, err = Resume(ctx, f.db, f.actor(f.dave), r.ID)
	require.ErrorIs(t, err, ErrAdminOnly, "a disabled admin")
	require.Equal(t, Paused, state(t, f.db, r.ID))
	_, err = Pause(ctx, f.db, f.actor(f.dave), 999999, true)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestExecutorPausesARunThatCannotGoOn(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.running(t, "acme")
	require.NoError(t, PauseRun(ctx, f.db, r.ID, "lock timeout on public.orders"))
	got, err := Get(ctx, f.db, r.ID)
	require.NoError(t, err)
	require.Equal(t, Paused, got.State)
	require.Equal(t, "lock timeout on public.orders", got.Error)
	es := events(t, f.db, r.ID)
	last := es[len(es)-1]
	require.Equal(t, audit.ActionPaused, last.Action)
	require.Equal(t, audit.SystemActor, last.ActorName)
	require.Equal(t, "lock timeout on public.orders", last.Details["error"])
	require.ErrorIs(t, PauseRun(ctx, f.db, r.ID, "again"), ErrNotApproved, "only a running request")

	back, err := Resume(ctx, f.db, f.actor(f.dave), r.ID)
	require.NoError(t, err)
	require.Empty(t, back.Error, "resuming clears the error")
}

func TestPausedTransitionsAreGuardedByTheDatabase(t *testing.T) {
	f := setup(t, pgtest.Tx(t))
	ctx := context.Background()
	r := f.create(t, f.alice, newPreview("acme", 10, 1))
	_, err := f.db.ExecContext(ctx, "SAVEPOINT s")
	require.NoError(t, err)
	_, err = f.db.ExecContext(ctx, "UPDATE requests SET state = 'paused' WHERE id = ?", r.ID)
	require.ErrorContains(t, err, "cannot become paused", "pending never becomes paused")
	_, err = f.db.ExecContext(ctx, "ROLLBACK TO SAVEPOINT s")
	require.NoError(t, err)
}

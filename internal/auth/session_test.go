package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// sessionRig is a session store on a fresh database with a controlled clock, and helpers to
// commit and read sessions as scs does.
type sessionRig struct {
	t     *testing.T
	db    bun.IDB
	store *auth.SessionStore
	now   time.Time
	// deadline is the sessions' absolute deadline, part of their data.
	deadline time.Time
}

const rigIdle = 30 * time.Minute

func newSessionRig(t *testing.T) *sessionRig {
	t.Helper()
	db := pgtest.Fresh(t).Bun
	r := &sessionRig{t: t, db: db, now: time.Now().UTC().Truncate(time.Microsecond)}
	r.deadline = r.now.Add(12 * time.Hour)
	r.store = auth.NewSessionStore(db, scs.GobCodec{})
	r.store.Now = func() time.Time { return r.now }
	return r
}

// commit commits values as scs does at the end of a request: the expiry is the idle timeout
// from now.
func (r *sessionRig) commit(token string, values map[string]any) {
	r.t.Helper()
	b, err := scs.GobCodec{}.Encode(r.deadline, values)
	require.NoError(r.t, err)
	require.NoError(r.t, r.store.CommitCtx(context.Background(), token, b, r.now.Add(rigIdle)))
}

// find loads a session as scs does at the start of a request.
func (r *sessionRig) find(token string) (map[string]any, bool) {
	r.t.Helper()
	b, found, err := r.store.FindCtx(context.Background(), token)
	require.NoError(r.t, err)
	if !found {
		return nil, false
	}
	_, values, err := scs.GobCodec{}.Decode(b)
	require.NoError(r.t, err)
	return values, true
}

// stored returns the row's expiry as the table holds it.
func (r *sessionRig) stored(token string) time.Time {
	r.t.Helper()
	var expiry time.Time
	require.NoError(r.t, r.db.NewSelect().Table("sessions").Column("expiry").Where("token = ?", token).Scan(context.Background(), &expiry))
	return expiry
}

func (r *sessionRig) exists(token string) bool {
	r.t.Helper()
	n, err := r.db.NewSelect().Table("sessions").Where("token = ?", token).Count(context.Background())
	require.NoError(r.t, err)
	return n == 1
}

func TestSessionRefreshIsSkippedWithinTheStep(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t)
	u := mkUser(t, r.db, "gina", auth.Requester)
	values := map[string]any{auth.SessionUserKey: u.ID, "role": "requester", "method": "password"}
	r.commit("tok", values)
	first := r.stored("tok")
	require.WithinDuration(t, r.now.Add(rigIdle), first, time.Microsecond)

	// Page views within the step: each loads the session and commits the same values with
	// an expiry moved forward by less than a minute. Nothing is written.
	for range 5 {
		r.now = r.now.Add(10 * time.Second)
		got, found := r.find("tok")
		require.True(t, found)
		require.Equal(t, values, got)
		r.commit("tok", map[string]any{"method": "password", "role": "requester", auth.SessionUserKey: u.ID})
		require.Equal(t, first, r.stored("tok"), "a refresh within the step is not written")
	}

	// Past the step, the expiry is written again.
	r.now = r.now.Add(11 * time.Second)
	_, found := r.find("tok")
	require.True(t, found)
	r.commit("tok", values)
	require.WithinDuration(t, r.now.Add(rigIdle), r.stored("tok"), time.Microsecond)
	require.True(t, r.stored("tok").After(first))
}

func TestSessionRefreshStepFollowsAShortIdleTimeout(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t)
	b, err := scs.GobCodec{}.Encode(r.deadline, map[string]any{"k": "v"})
	require.NoError(t, err)
	ctx := context.Background()
	// An idle timeout of 2 minutes gives a step of 4 seconds.
	require.NoError(t, r.store.CommitCtx(ctx, "short", b, r.now.Add(2*time.Minute)))
	first := r.stored("short")
	r.now = r.now.Add(3 * time.Second)
	require.NoError(t, r.store.CommitCtx(ctx, "short", b, r.now.Add(2*time.Minute)))
	require.Equal(t, first, r.stored("short"))
	r.now = r.now.Add(2 * time.Second)
	require.NoError(t, r.store.CommitCtx(ctx, "short", b, r.now.Add(2*time.Minute)))
	require.WithinDuration(t, r.now.Add(2*time.Minute), r.stored("short"), time.Microsecond)
}

func TestSessionDataChangeIsAlwaysWritten(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t)
	r.commit("tok", map[string]any{"role": "viewer"})
	expiry := r.stored("tok")
	r.now = r.now.Add(time.Second)
	r.commit("tok", map[string]any{"role": "approver"})
	got, found := r.find("tok")
	require.True(t, found)
	require.Equal(t, map[string]any{"role": "approver"}, got)
	require.True(t, r.stored("tok").After(expiry))

	// A value of another type with the same printed form is a change too.
	r.commit("tok", map[string]any{"role": "approver", "n": int64(1)})
	r.commit("tok", map[string]any{"role": "approver", "n": int(1)})
	got, _ = r.find("tok")
	require.Equal(t, int(1), got["n"])

	// A new absolute deadline (a renewed token keeps its data but not its deadline) too.
	r.deadline = r.deadline.Add(time.Hour)
	r.commit("tok", map[string]any{"role": "approver", "n": int(1)})
	b, _, err := r.store.FindCtx(context.Background(), "tok")
	require.NoError(t, err)
	deadline, _, err := scs.GobCodec{}.Decode(b)
	require.NoError(t, err)
	require.True(t, deadline.Equal(r.deadline))
}

func TestSessionDeletedIsNotWrittenBack(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t)
	u := mkUser(t, r.db, "hank", auth.Requester)
	values := map[string]any{auth.SessionUserKey: u.ID}
	for _, tok := range []string{"a", "b", "c"} {
		r.commit(tok, values)
	}

	// A request loaded each session; then the user was disabled (EndSessions, from this or
	// another process) before the requests committed.
	for _, tok := range []string{"a", "b", "c"} {
		_, found := r.find(tok)
		require.True(t, found)
	}
	n, err := auth.EndSessions(context.Background(), r.db, u.ID)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)

	// Within the step: skipped, stays deleted.
	r.now = r.now.Add(time.Second)
	r.commit("a", values)
	require.False(t, r.exists("a"))
	// Past the step: updated, which finds no row, and stays deleted.
	r.now = r.now.Add(2 * time.Minute)
	r.commit("b", values)
	require.False(t, r.exists("b"))
	// With changed data: the same.
	r.commit("c", map[string]any{auth.SessionUserKey: u.ID, "role": "admin"})
	require.False(t, r.exists("c"))
	_, found := r.find("c")
	require.False(t, found)

	// Signed out (Delete) while another request of the same session was in flight.
	r.commit("d", values)
	_, found = r.find("d")
	require.True(t, found)
	require.NoError(t, r.store.DeleteCtx(context.Background(), "d"))
	require.False(t, r.exists("d"), "Delete is immediate")
	r.now = r.now.Add(2 * time.Minute)
	r.commit("d", values)
	require.False(t, r.exists("d"))

	// A store that never saw a token (a new token, or another process) inserts it.
	other := auth.NewSessionStore(r.db, scs.GobCodec{})
	b, err := scs.GobCodec{}.Encode(r.deadline, values)
	require.NoError(t, err)
	require.NoError(t, other.CommitCtx(context.Background(), "fresh", b, r.now.Add(rigIdle)))
	require.True(t, r.exists("fresh"))
}

func TestSessionIdleTimeoutIsStillEnforced(t *testing.T) {
	t.Parallel()
	r := newSessionRig(t)
	values := map[string]any{"role": "viewer"}
	r.commit("tok", values)
	start := r.now

	// Requests every 20 seconds for 10 minutes keep the session alive; the stored expiry
	// never lags more than a step behind the last request's idle deadline.
	for range 30 {
		r.now = r.now.Add(20 * time.Second)
		_, found := r.find("tok")
		require.True(t, found)
		r.commit("tok", values)
		lag := r.now.Add(rigIdle).Sub(r.stored("tok"))
		require.GreaterOrEqual(t, lag, time.Duration(0))
		require.Less(t, lag, auth.MaxRefreshStep)
	}
	require.Equal(t, start.Add(10*time.Minute), r.now)

	// Then no request for the idle timeout: the session is gone.
	r.now = r.now.Add(rigIdle)
	_, found := r.find("tok")
	require.False(t, found)
}

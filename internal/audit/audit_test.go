package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func ptr(n int64) *int64 { return &n }

// event is a factory for a valid event; opts adjust it.
func event(action Action, opts ...func(*Event)) Event {
	e := Event{
		ActorID:    ptr(7),
		ActorName:  "alice",
		Action:     action,
		RequestID:  ptr(42),
		Kind:       "tenant",
		Target:     "app",
		RootKey:    "17",
		RootLabel:  "Acme (acme)",
		Reason:     "customer asked, ticket #123",
		PlanDigest: "ab12",
		PolicyHash: "cd34",
		Details:    map[string]any{"tables": map[string]any{"public.orders": 12, "public.tenants": 1}},
		ClientIP:   "192.0.2.1",
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

// appendN appends n events in separate transactions and returns them.
func appendN(t *testing.T, db bun.IDB, n int) []Event {
	t.Helper()
	out := make([]Event, n)
	for i := range n {
		e, err := Append(context.Background(), db, event(ActionApproved, func(e *Event) { e.Reason = fmt.Sprintf("reason %d", i) }))
		require.NoError(t, err)
		out[i] = e
	}
	return out
}

func TestAppendStoresWhatItReturns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)

	first, err := Append(ctx, tx, event(ActionRequested))
	require.NoError(t, err)
	require.Equal(t, int64(1), first.Seq)
	require.Equal(t, GenesisHash, first.PrevHash)
	require.Len(t, first.Hash, 64)
	require.Equal(t, first.At.Location().String(), "UTC")
	require.Zero(t, first.At.Nanosecond()%1000, "microsecond precision")

	second, err := Append(ctx, tx, event(ActionApproved, func(e *Event) { e.ActorID = nil; e.RequestID = nil; e.Details = nil }))
	require.NoError(t, err)
	require.Equal(t, int64(2), second.Seq)
	require.Equal(t, first.Hash, second.PrevHash)

	got, next, err := List(ctx, tx, Filter{}, 0, 10)
	require.NoError(t, err)
	require.Zero(t, next)
	require.Equal(t, []Event{second, first}, []Event{got[0], got[1]})
	require.Equal(t, map[string]any{"tables": map[string]any{"public.orders": int64(12), "public.tenants": int64(1)}}, got[1].Details)

	seq, hash, err := Head(ctx, tx)
	require.NoError(t, err)
	require.Equal(t, int64(2), seq)
	require.Equal(t, second.Hash, hash)

	res, err := Verify(ctx, tx, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, "verified events 1..2, head "+second.Hash, res.String())
}

func TestAppendRejectsInvalidEvents(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	cases := map[string]func(*Event){
		"unknown action":    func(e *Event) { e.Action = "deleted_everything" },
		"no actor":          func(e *Event) { e.ActorName = " " },
		"already stored":    func(e *Event) { e.Seq = 3 },
		"hash set":          func(e *Event) { e.Hash = GenesisHash },
		"float":             func(e *Event) { e.Details = map[string]any{"rows": 3.0} },
		"float32 in slice":  func(e *Event) { e.Details = map[string]any{"rows": []any{1, float32(2)}} },
		"float in struct":   func(e *Event) { e.Details = map[string]any{"x": struct{ N float64 }{1}} },
		"json.Number float": func(e *Event) { e.Details = map[string]any{"x": jsonNumber("1.5")} },
		"huge integer":      func(e *Event) { e.Details = map[string]any{"x": int64(1) << 60} },
		"NUL in reason":     func(e *Event) { e.Reason = "a\x00b" },
		"NUL in details":    func(e *Event) { e.Details = map[string]any{"x": "a\x00b"} },
		"bad UTF-8":         func(e *Event) { e.RootLabel = "\xff" },
		"bad UTF-8 details": func(e *Event) { e.Details = map[string]any{"x": "\xff"} },
		"bad client IP":     func(e *Event) { e.ClientIP = "not-an-ip" },
	}
	for name, mutate := range cases {
		_, err := Append(context.Background(), tx, event(ActionApproved, mutate))
		require.ErrorIs(t, err, pg.ErrInvalid, name)
	}
	seq, _, err := Head(context.Background(), tx)
	require.NoError(t, err)
	require.Zero(t, seq, "nothing was written")
}

func TestAppendNormalisesClientIP(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	e, err := Append(context.Background(), tx, event(ActionApproved, func(e *Event) { e.ClientIP = "::ffff:192.0.2.9" }))
	require.NoError(t, err)
	require.Equal(t, "192.0.2.9", e.ClientIP)
	res, err := Verify(context.Background(), tx, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
}

func TestConcurrentAppendsFormOneChain(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	const n = 100
	var wg sync.WaitGroup
	seqs := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := Append(ctx, db.Bun, event(ActionApproved, func(e *Event) { e.RequestID = ptr(int64(i)) }))
			seqs[i], errs[i] = e.Seq, err
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i := range n {
		require.NoError(t, errs[i])
		require.False(t, seen[seqs[i]], "seq %d twice", seqs[i])
		seen[seqs[i]] = true
	}
	res, err := Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(1), res.First)
	require.Equal(t, int64(n), res.Last)
	require.Equal(t, int64(n), res.Count)
	var count, maxSeq int64
	require.NoError(t, db.Bun.QueryRowContext(ctx, "SELECT count(*), max(seq) FROM audit_events").Scan(&count, &maxSeq))
	require.Equal(t, int64(n), count)
	require.Equal(t, int64(n), maxSeq, "no gaps")
}

func TestRolledBackEventLeavesNoGap(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	appendN(t, db.Bun, 2)

	errRollback := fmt.Errorf("the deletion failed")
	err := db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		e, err := Append(ctx, tx, event(ActionExecuted))
		require.NoError(t, err)
		require.Equal(t, int64(3), e.Seq)
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)

	e, err := Append(ctx, db.Bun, event(ActionExecutionFailed))
	require.NoError(t, err)
	require.Equal(t, int64(3), e.Seq, "the rolled-back seq is reused")
	res, err := Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(3), res.Last)
}

func TestStaleSnapshotIsRetryable(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	appendN(t, db.Bun, 1)
	tx, err := db.Bun.BeginTx(ctx, &sqlTxRepeatableRead)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, _, err = Head(ctx, tx) // takes the snapshot
	require.NoError(t, err)
	appendN(t, db.Bun, 1) // commits after the snapshot
	_, err = Append(ctx, tx, event(ActionApproved))
	require.ErrorIs(t, err, pg.ErrRetryable)
}

func TestVerifyFrom(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	evs := appendN(t, db.Bun, 6)
	res, err := Verify(ctx, db.Bun, 4)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, "verified events 4..6, head "+evs[5].Hash, res.String())

	_, err = Verify(ctx, db.Bun, 9)
	require.ErrorIs(t, err, pg.ErrInvalid)

	empty := pgtest.Fresh(t)
	res, err = Verify(ctx, empty.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK)
	require.Equal(t, "no events to verify", res.String())
}

func TestCheckpointRoundTrip(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	key := testKey(t)

	_, err := NewCheckpoint(ctx, db.Bun, key)
	require.ErrorIs(t, err, ErrEmptyLog)

	evs := appendN(t, db.Bun, 3)
	cp, err := NewCheckpoint(ctx, db.Bun, key)
	require.NoError(t, err)
	require.Equal(t, int64(3), cp.Seq)
	require.Equal(t, evs[2].Hash, cp.Hash)

	got, next, err := List(ctx, db.Bun, Filter{Action: ActionCheckpoint}, 0, 5)
	require.NoError(t, err)
	require.Zero(t, next)
	require.Len(t, got, 1)
	require.Equal(t, int64(4), got[0].Seq, "the checkpoint is recorded in the chain")
	require.Equal(t, int64(3), got[0].Details["seq"])

	b, err := cp.MarshalJSON()
	require.NoError(t, err)
	back, err := ReadCheckpoint(bytesReader(b))
	require.NoError(t, err)
	require.Equal(t, cp.Seq, back.Seq)
	require.True(t, cp.At.Equal(back.At))

	res, err := VerifyCheckpoint(ctx, db.Bun, back, key.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.True(t, res.OK, res.String())

	other := ed25519.NewKeyFromSeed(make([]byte, 32))
	res, err = VerifyCheckpoint(ctx, db.Bun, back, other.Public().(ed25519.PublicKey))
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Contains(t, res.Reason, "not by the configured key")

	forged := back
	forged.At = forged.At.Add(1e3)
	res, err = VerifyCheckpoint(ctx, db.Bun, forged, nil)
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, "broken at event 3: the checkpoint's signature is invalid", res.String())
}

func TestParseSigningKey(t *testing.T) {
	t.Parallel()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	want := ed25519.NewKeyFromSeed(seed)
	for _, s := range []string{b64(seed), b64(want), rawURL(seed)} {
		k, err := ParseSigningKey(s)
		require.NoError(t, err, s)
		require.Equal(t, want, k)
	}
	bad := append([]byte(nil), want...)
	bad[63] ^= 1
	for _, s := range []string{"", "!!!", b64(seed[:16]), b64(bad)} {
		_, err := ParseSigningKey(s)
		require.Error(t, err, s)
	}
}

func TestVerifyTwiceInOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Its own database: the ALTER TABLE below locks audit_events until the test ends.
	tx, err := pgtest.Fresh(t).Bun.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	appendN(t, tx, 3)
	for range 2 {
		res, err := Verify(ctx, tx, 1)
		require.NoError(t, err)
		require.True(t, res.OK, res.String())
	}
	// A broken chain stops the stream early; the cursor is still closed.
	_, err = tx.ExecContext(ctx, "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete")
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "UPDATE audit_events SET kind = 'site' WHERE seq = 1")
	require.NoError(t, err)
	for range 2 {
		res, err := Verify(ctx, tx, 1)
		require.NoError(t, err)
		require.Equal(t, int64(1), res.BrokenAt)
	}
}

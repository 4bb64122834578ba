package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// exec runs a statement on its own connection and returns the error.
func exec(t *testing.T, db *pg.DB, sql string) error {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql)
	return err
}

func TestLogIsImmutableEvenForTheOwner(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	ctx := context.Background()
	appendN(t, db.Bun, 3)
	_, err := NewCheckpoint(ctx, db.Bun, testKey(t))
	require.NoError(t, err)

	var super bool
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super))
	require.True(t, super, "the test user is a superuser and owns the tables")

	for _, st := range []string{
		"UPDATE audit_events SET reason = 'x' WHERE seq = 2",
		"UPDATE audit_events SET reason = reason",
		"DELETE FROM audit_events WHERE seq = 3",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
		"TRUNCATE audit_events, audit_checkpoints",
		"UPDATE audit_checkpoints SET hash = hash",
		"DELETE FROM audit_checkpoints",
		"TRUNCATE audit_checkpoints",
	} {
		err := exec(t, db, st)
		require.Error(t, err, st)
		require.Equal(t, "42501", pg.Code(err), st)
		require.Contains(t, err.Error(), "append-only", st)
		require.ErrorIs(t, pg.Interpret(err), pg.ErrReadOnly)
	}

	// session_replication_role = replica disables ordinary triggers, not ENABLE ALWAYS ones.
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET session_replication_role = replica")
	require.NoError(t, err)
	for _, st := range []string{"UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"} {
		_, err = conn.Exec(ctx, st)
		require.Equal(t, "42501", pg.Code(err), st)
	}
	_, err = conn.Exec(ctx, "RESET session_replication_role")
	require.NoError(t, err)

	res, err := Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(4), res.Last)
}

// asAttacker runs statements as a superuser with the audit triggers disabled, the one way
// around them (ALTER TABLE … DISABLE TRIGGER), and turns them back on with ENABLE ALWAYS.
func asAttacker(t *testing.T, db *pg.DB, statements ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	for _, st := range []string{"ALTER TABLE audit_events DISABLE TRIGGER ALL", "ALTER TABLE audit_checkpoints DISABLE TRIGGER ALL"} {
		_, err := tx.Exec(ctx, st)
		require.NoError(t, err)
	}
	for _, st := range statements {
		_, err := tx.Exec(ctx, st)
		require.NoError(t, err, st)
	}
	for _, st := range []string{
		"ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_update_delete",
		"ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate",
		"ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_update_delete",
		"ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_no_truncate",
	} {
		_, err := tx.Exec(ctx, st)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

func TestTamperingIsFoundAtTheEditedEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("edited contents", func(t *testing.T) {
		t.Parallel()
		db := pgtest.Fresh(t)
		appendN(t, db.Bun, 10)
		asAttacker(t, db, "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 4")
		res, err := Verify(ctx, db.Bun, 1)
		require.NoError(t, err)
		require.Equal(t, "broken at event 4: hash does not match the event's contents", res.String())
	})

	t.Run("edited details", func(t *testing.T) {
		t.Parallel()
		db := pgtest.Fresh(t)
		appendN(t, db.Bun, 10)
		asAttacker(t, db, `UPDATE audit_events SET details = '{"tables": {"public.orders": 1}}' WHERE seq = 7`)
		res, err := Verify(ctx, db.Bun, 1)
		require.NoError(t, err)
		require.False(t, res.OK)
		require.Equal(t, int64(7), res.BrokenAt)
	})

	t.Run("edited and re-hashed", func(t *testing.T) {
		t.Parallel()
		db := pgtest.Fresh(t)
		evs := appendN(t, db.Bun, 10)
		e := evs[5]
		e.Reason = "rewritten"
		h, err := computeHash(e)
		require.NoError(t, err)
		asAttacker(t, db, "UPDATE audit_events SET reason = 'rewritten', hash = '"+h+"' WHERE seq = 6")
		res, err := Verify(ctx, db.Bun, 1)
		require.NoError(t, err)
		require.Equal(t, "broken at event 7: prev_hash does not match the hash of event 6", res.String())
	})

	t.Run("deleted in the middle", func(t *testing.T) {
		t.Parallel()
		db := pgtest.Fresh(t)
		appendN(t, db.Bun, 10)
		asAttacker(t, db, "DELETE FROM audit_events WHERE seq = 5")
		res, err := Verify(ctx, db.Bun, 1)
		require.NoError(t, err)
		require.Equal(t, "broken at event 5: event is missing (the next event is 6)", res.String())
	})

	t.Run("deleted at the start", func(t *testing.T) {
		t.Parallel()
		db := pgtest.Fresh(t)
		appendN(t, db.Bun, 5)
		asAttacker(t, db, "DELETE FROM audit_events WHERE seq <= 2")
		res, err := Verify(ctx, db.Bun, 1)
		require.NoError(t, err)
		require.Equal(t, "broken at event 1: event is missing (the log starts at 3)", res.String())
	})
}

func TestCheckpointCatchesARewrittenTail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	key := testKey(t)
	pub := key.Public().(ed25519.PublicKey)
	appendN(t, db.Bun, 10)
	cp, err := NewCheckpoint(ctx, db.Bun, key) // signs event 10; the checkpoint event is 11
	require.NoError(t, err)
	file, err := cp.MarshalJSON()
	require.NoError(t, err)
	saved, err := ReadCheckpoint(bytes.NewReader(file))
	require.NoError(t, err)

	// The last 3 events go; the stored checkpoint row still says event 10 existed.
	asAttacker(t, db, "DELETE FROM audit_events WHERE seq > 8")
	res, err := Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.Equal(t, "broken at event 10: event is missing but stored checkpoint 1 signed it", res.String())

	// A careful superuser removes the checkpoint rows too: the chain 1..8 is consistent again.
	asAttacker(t, db, "DELETE FROM audit_checkpoints")
	res, err = Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(8), res.Last)
	// Only the signed checkpoint kept outside the database finds it.
	res, err = VerifyCheckpoint(ctx, db.Bun, saved, pub)
	require.NoError(t, err)
	require.Equal(t, "broken at event 10: the signed event is missing (the log ends at event 8)", res.String())

	// And re-hashing a new tail consistently does not help either.
	appendN(t, db.Bun, 3)
	res, err = Verify(ctx, db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(11), res.Last)
	res, err = VerifyCheckpoint(ctx, db.Bun, saved, pub)
	require.NoError(t, err)
	require.Equal(t, "broken at event 10: the event's hash differs from the signed checkpoint", res.String())
}

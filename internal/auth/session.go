package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// SessionUserKey is the session value that holds the signed-in user's id (an int64). The
// session store copies it into the sessions.user_id column on every commit.
const SessionUserKey = "user_id"

// SessionCodec decodes session data; scs.GobCodec satisfies it.
type SessionCodec interface {
	Decode([]byte) (deadline time.Time, values map[string]any, err error)
}

// SessionStore keeps signed-in sessions in the console database's sessions table. It
// implements scs's CtxStore (and Store) interfaces. Tokens arrive already hashed when the
// session manager's HashTokenInStore is on, which the console always sets.
type SessionStore struct {
	db    bun.IDB
	codec SessionCodec
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// NewSessionStore returns a store on db. codec must be the session manager's codec; it is
// used to read SessionUserKey out of the data being committed.
func NewSessionStore(db bun.IDB, codec SessionCodec) *SessionStore {
	return &SessionStore{db: db, codec: codec, Now: time.Now}
}

// FindCtx returns the data of an unexpired session.
func (s *SessionStore) FindCtx(ctx context.Context, token string) (b []byte, found bool, err error) {
	defer pg.Wrap(&err, "SessionStore.Find")
	err = s.db.NewSelect().Table("sessions").Column("data").
		Where("token = ? AND expiry > ?", token, s.Now().UTC()).Scan(ctx, &b)
	if err = pg.Interpret(err); errors.Is(err, pg.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// CommitCtx inserts or replaces a session.
func (s *SessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error) {
	defer pg.Wrap(&err, "SessionStore.Commit")
	var userID *int64
	if _, values, err := s.codec.Decode(b); err != nil {
		return fmt.Errorf("decode session: %w", err)
	} else if id, ok := values[SessionUserKey].(int64); ok && id > 0 {
		userID = &id
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO sessions (token, data, expiry, user_id) VALUES (?, ?, ?, ?)
		ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, user_id = EXCLUDED.user_id`,
		token, b, expiry.UTC(), userID)
	return pg.Interpret(err)
}

// DeleteCtx removes a session; a missing one is not an error.
func (s *SessionStore) DeleteCtx(ctx context.Context, token string) (err error) {
	defer pg.Wrap(&err, "SessionStore.Delete")
	_, err = s.db.NewDelete().Table("sessions").Where("token = ?", token).Exec(ctx)
	return pg.Interpret(err)
}

// Find implements scs.Store for callers without a context.
func (s *SessionStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit implements scs.Store for callers without a context.
func (s *SessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete implements scs.Store for callers without a context.
func (s *SessionStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// DeleteExpired removes sessions past their expiry and returns how many went. Run it
// periodically; expired rows are already ignored by Find, so this only reclaims space.
func (s *SessionStore) DeleteExpired(ctx context.Context) (n int64, err error) {
	defer pg.Wrap(&err, "SessionStore.DeleteExpired")
	res, err := s.db.NewDelete().Table("sessions").Where("expiry <= ?", s.Now().UTC()).Exec(ctx)
	if err != nil {
		return 0, pg.Interpret(err)
	}
	return res.RowsAffected()
}

// EndSessions deletes every session of a user, signing them out everywhere, and returns how
// many there were. Run it in the transaction that makes the change requiring it.
func EndSessions(ctx context.Context, db bun.IDB, userID int64) (n int64, err error) {
	defer pg.Wrap(&err, "EndSessions(%d)", userID)
	res, err := db.NewDelete().Table("sessions").Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return 0, pg.Interpret(err)
	}
	return res.RowsAffected()
}

package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// SessionUserKey is the session value that holds the signed-in user's id (an int64). The
// session store copies it into the sessions.user_id column on every commit.
const SessionUserKey = "user_id"

// SessionCodec decodes session data; SessionValues and scs.GobCodec satisfy it.
type SessionCodec interface {
	Decode([]byte) (deadline time.Time, values map[string]any, err error)
}

// MaxRefreshStep bounds how far a session's stored expiry may lag behind the idle timeout:
// a commit that changes nothing but moves the expiry forward by less than the step (or less
// than 1/30 of the idle window, when that is smaller) is not written. See CommitCtx.
const MaxRefreshStep = time.Minute

// Bounds of the store's memory of the sessions it has seen (see sessionMemo).
const (
	memoCapacity = 10_000
	// memoDeletedFor is how long a deleted token is remembered, so that a request that
	// loaded the session before it was deleted cannot write it back. It only has to
	// outlast a request.
	memoDeletedFor = 10 * time.Minute
)

// SessionStore keeps signed-in sessions in the console database's sessions table. It
// implements scs's CtxStore (and Store) interfaces. Tokens arrive already hashed when the
// session manager's HashTokenInStore is on, which the console always sets.
//
// scs commits a session on every request when an idle timeout is set, only to move its
// expiry. The store remembers, per token, the expiry and the data it last read or wrote,
// and skips a commit that changes no data and moves the expiry by less than a refresh step
// (see CommitCtx), so that page views do not each wait for a WAL flush.
type SessionStore struct {
	db    bun.IDB
	codec SessionCodec
	memo  sessionMemo
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
	var expiry time.Time
	// Every request reads its session: one prepared statement (pg.Direct).
	err = pg.DirectOf(s.db).QueryRowContext(ctx, "SELECT data, expiry FROM sessions WHERE token = $1 AND expiry > $2",
		token, s.Now().UTC()).Scan(&b, &expiry)
	if err = pg.Interpret(err); errors.Is(err, pg.ErrNotFound) {
		s.memo.forget(token)
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if s.codec != nil {
		if deadline, values, err := s.codec.Decode(b); err == nil {
			s.memo.stored(token, expiry, digest(deadline, values), s.Now())
		}
	}
	return b, true, nil
}

// CommitCtx writes a session. A token the store has seen in the table (read or written by
// this process) is updated, never inserted again: a session deleted meanwhile (signed out,
// or ended by EndSessions) stays deleted. A token it has not seen is inserted.
//
// The write is skipped when the data is unchanged and the expiry moves forward by less than
// the refresh step: MaxRefreshStep, or 1/30 of the time left until expiry when that is
// smaller (for an idle timeout of 30 minutes, a minute). A session therefore expires up to
// one step earlier than its idle timeout says.
func (s *SessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) (err error) {
	defer pg.Wrap(&err, "SessionStore.Commit")
	deadline, values, err := s.codec.Decode(b)
	if err != nil {
		return fmt.Errorf("decode session: %w", err)
	}
	var userID *int64
	if id, ok := values[SessionUserKey].(int64); ok && id > 0 {
		userID = &id
	}
	now := s.Now()
	sum := digest(deadline, values)
	known, seen := s.memo.lookup(token, now)
	switch {
	case seen && known.deleted:
		return nil
	case seen && known.digest == sum && !expiry.Before(known.expiry) && expiry.Sub(known.expiry) < refreshStep(now, expiry):
		return nil
	case seen:
		res, err := s.db.NewUpdate().Table("sessions").
			Set("data = ?", b).Set("expiry = ?", expiry.UTC()).Set("user_id = ?", userID).
			Where("token = ?", token).Exec(ctx)
		if err != nil {
			return pg.Interpret(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("rows updated: %w", err)
		} else if n == 0 {
			// Deleted since this request read it: leave it deleted. The client's next request
			// finds no session and is anonymous.
			s.memo.forget(token)
			return nil
		}
	default:
		_, err = s.db.ExecContext(ctx, `INSERT INTO sessions (token, data, expiry, user_id) VALUES (?, ?, ?, ?)
			ON CONFLICT (token) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, user_id = EXCLUDED.user_id`,
			token, b, expiry.UTC(), userID)
		if err != nil {
			return pg.Interpret(err)
		}
	}
	s.memo.stored(token, expiry, sum, now)
	return nil
}

// refreshStep is how far the expiry may move before a commit that changes nothing else is
// written. expiry-now is the idle timeout, or less near the absolute timeout.
func refreshStep(now, expiry time.Time) time.Duration {
	return min(MaxRefreshStep, expiry.Sub(now)/30)
}

// DeleteCtx removes a session; a missing one is not an error. The token is remembered as
// deleted for a while, so that a request still holding it cannot commit it back.
func (s *SessionStore) DeleteCtx(ctx context.Context, token string) (err error) {
	defer pg.Wrap(&err, "SessionStore.Delete")
	s.memo.deleted(token, s.Now())
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
// many there were. Run it in the transaction that makes the change requiring it. A request
// of that user in flight cannot bring its session back: the store only updates sessions it
// has read (see SessionStore.CommitCtx).
func EndSessions(ctx context.Context, db bun.IDB, userID int64) (n int64, err error) {
	defer pg.Wrap(&err, "EndSessions(%d)", userID)
	res, err := db.NewDelete().Table("sessions").Where("user_id = ?", userID).Exec(ctx)
	if err != nil {
		return 0, pg.Interpret(err)
	}
	return res.RowsAffected()
}

// digest sums session data independently of the order in which the codec wrote its map:
// the deadline, then each key with the type and Go syntax of its value, in key order.
func digest(deadline time.Time, values map[string]any) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", deadline.UnixNano())
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%q %T %#v\n", k, values[k], values[k])
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// sessionMemo is what one process knows of the sessions table: per token, the expiry and
// data digest last read or written, or that it deleted the token. It holds at most
// memoCapacity tokens; a forgotten token only costs a write (and is inserted rather than
// updated, as when the store knew nothing).
type sessionMemo struct {
	mu      sync.Mutex
	entries map[string]memoEntry
}

type memoEntry struct {
	expiry  time.Time // stored expiry; for a deleted token, when to forget it
	digest  [sha256.Size]byte
	deleted bool
}

func (m *sessionMemo) lookup(token string, now time.Time) (memoEntry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[token]
	if ok && e.deleted && now.After(e.expiry) {
		delete(m.entries, token)
		return memoEntry{}, false
	}
	return e, ok
}

func (m *sessionMemo) stored(token string, expiry time.Time, sum [sha256.Size]byte, now time.Time) {
	m.put(token, memoEntry{expiry: expiry, digest: sum}, now)
}

func (m *sessionMemo) deleted(token string, now time.Time) {
	m.put(token, memoEntry{expiry: now.Add(memoDeletedFor), deleted: true}, now)
}

func (m *sessionMemo) forget(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, token)
}

// put records e, making room first when the memo is full: expired entries go, then, if
// that was not enough, arbitrary ones down to 90% of the capacity.
func (m *sessionMemo) put(token string, e memoEntry, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[string]memoEntry{}
	}
	if _, ok := m.entries[token]; !ok && len(m.entries) >= memoCapacity {
		for t, old := range m.entries {
			if !now.Before(old.expiry) {
				delete(m.entries, t)
			}
		}
		for t := range m.entries {
			if len(m.entries) < memoCapacity*9/10 {
				break
			}
			delete(m.entries, t)
		}
	}
	m.entries[token] = e
}

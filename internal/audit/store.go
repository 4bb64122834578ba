package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// lockKey is the pg_advisory_xact_lock key that serialises audit writers ("tombaudt").
const lockKey int64 = 0x746f6d6261756474

// columns is the column list of audit_events in scan order.
const columns = "seq, at, actor_id, actor_name, action, request_id, kind, target, root_key, root_label, " +
	"reason, plan_digest, policy_hash, details, client_ip, prev_hash, hash"

// briefColumns are columns without the details, which ListBrief does not read.
const briefColumns = "seq, at, actor_id, actor_name, action, request_id, kind, target, root_key, root_label, " +
	"reason, plan_digest, policy_hash, NULL::jsonb, client_ip, prev_hash, hash"

// numbered replaces the ? placeholders of a statement built from this package's own fragments
// (which hold no other question mark) with $1, $2, … in order.
func numbered(sql string) string {
	var b strings.Builder
	n := 0
	for _, r := range sql {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Append writes e as the next event of the chain and returns it as stored, with Seq, At,
// PrevHash and Hash set.
//
// Given a bun.Tx, Append writes inside that transaction, so the event commits or rolls back
// with the caller's change; given a *bun.DB (or bun.Conn) it runs its own transaction. It takes
// pg_advisory_xact_lock, which is held until the transaction ends: every other audit writer
// waits until then, so call Append as the last step before commit. Under REPEATABLE READ or
// SERIALIZABLE the caller's snapshot may predate the head; the insert then fails with an error
// matching pg.ErrRetryable and the whole transaction must be retried.
//
// Invalid events (unknown action, missing actor, float or NUL in details, malformed client IP)
// fail with an error matching pg.ErrInvalid before anything is written.
func Append(ctx context.Context, db bun.IDB, e Event) (stored Event, err error) {
	defer pg.Wrap(&err, "audit.Append(%s)", e.Action)
	e, err = prepare(e)
	if err != nil {
		return Event{}, err
	}
	err = inTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		stored, err = appendLocked(ctx, tx, e)
		return err
	})
	return stored, err
}

// inTx runs fn in db's transaction when db is one, or in a new transaction.
func inTx(ctx context.Context, db bun.IDB, opts *sql.TxOptions, fn func(context.Context, bun.Tx) error) error {
	if tx, ok := db.(bun.Tx); ok {
		return fn(ctx, tx)
	}
	if tx, ok := db.(*bun.Tx); ok {
		return fn(ctx, *tx)
	}
	return db.RunInTx(ctx, opts, fn)
}

func lock(ctx context.Context, tx bun.Tx) error {
	_, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", lockKey)
	return pg.Interpret(err)
}

// head is the newest event (seq 0 and GenesisHash when the log is empty) and the clock.
type head struct {
	seq    int64
	hash   string
	action Action
	now    time.Time
}

// readHead must run after lock, in a statement of its own, so that under READ COMMITTED its
// snapshot sees every event committed before the lock was granted.
func readHead(ctx context.Context, tx bun.Tx) (head, error) {
	var (
		seq    sql.NullInt64
		hash   sql.NullString
		action sql.NullString
		now    time.Time
	)
	err := tx.QueryRowContext(ctx, `SELECT h.seq, h.hash, h.action, clock_timestamp()
		FROM (SELECT 1) AS one
		LEFT JOIN LATERAL (SELECT seq, hash, action FROM audit_events ORDER BY seq DESC LIMIT 1) AS h ON true`).
		Scan(&seq, &hash, &action, &now)
	if err != nil {
		return head{}, pg.Interpret(err)
	}
	h := head{seq: seq.Int64, hash: GenesisHash, action: Action(action.String), now: now.UTC().Truncate(time.Microsecond)}
	if hash.Valid {
		h.hash = hash.String
	}
	return h, nil
}

// appendLocked inserts a prepared event as the successor of the head. The caller holds the lock.
func appendLocked(ctx context.Context, tx bun.Tx, e Event) (Event, error) {
	h, err := readHead(ctx, tx)
	if err != nil {
		return Event{}, err
	}
	e.Seq = h.seq + 1
	e.At = h.now
	e.PrevHash = h.hash
	if e.Hash, err = computeHash(e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", pg.ErrInvalid, err)
	}
	details, err := detailsJSON(e.Details)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %w", pg.ErrInvalid, err)
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO audit_events ("+columns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?, ?)",
		e.Seq, e.At, e.ActorID, e.ActorName, string(e.Action), e.RequestID, e.Kind, e.Target, e.RootKey, e.RootLabel,
		e.Reason, e.PlanDigest, e.PolicyHash, details, e.ClientIP, e.PrevHash, e.Hash)
	if err != nil {
		err = pg.Interpret(err)
		if errors.Is(err, pg.ErrConflict) {
			return Event{}, fmt.Errorf("%w: the transaction's snapshot predates the audit head (retry the transaction): %w", pg.ErrRetryable, err)
		}
		return Event{}, err
	}
	return e, nil
}

// Head returns the newest event's seq and hash, or 0 and "" when the log is empty.
func Head(ctx context.Context, db bun.IDB) (seq int64, hash string, err error) {
	defer pg.Wrap(&err, "audit.Head")
	err = db.QueryRowContext(ctx, "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, pg.Interpret(err)
}

// Filter selects events for the audit page and exports. Zero fields match everything.
type Filter struct {
	From time.Time // at >= From
	To   time.Time // at < To
	// Actor matches actor_name exactly.
	Actor     string
	Action    Action
	Kind      string
	RequestID int64
}

// where returns the SQL condition and its arguments (bun ? placeholders).
func (f Filter) where() (string, []any, error) {
	if f.Action != "" && !f.Action.Valid() {
		return "", nil, fmt.Errorf("%w: unknown action %q", pg.ErrInvalid, f.Action)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return "", nil, fmt.Errorf("%w: the time range is empty (from %s, to %s)", pg.ErrInvalid, formatTime(f.From), formatTime(f.To))
	}
	for name, v := range map[string]string{"actor": f.Actor, "kind": f.Kind} {
		if !utf8.ValidString(v) {
			return "", nil, fmt.Errorf("%w: the %s is not valid UTF-8 text", pg.ErrInvalid, name)
		}
	}
	conds := []string{"true"}
	var args []any
	if !f.From.IsZero() {
		conds, args = append(conds, "at >= ?"), append(args, f.From.UTC())
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "at < ?"), append(args, f.To.UTC())
	}
	if f.Actor != "" {
		conds, args = append(conds, "actor_name = ?"), append(args, f.Actor)
	}
	if f.Action != "" {
		conds, args = append(conds, "action = ?"), append(args, string(f.Action))
	}
	if f.Kind != "" {
		conds, args = append(conds, "kind = ?"), append(args, f.Kind)
	}
	if f.RequestID != 0 {
		conds, args = append(conds, "request_id = ?"), append(args, f.RequestID)
	}
	return strings.Join(conds, " AND "), args, nil
}

// details renders the filter for the exported event's details.
func (f Filter) details() map[string]any {
	m := map[string]any{}
	if !f.From.IsZero() {
		m["from"] = formatTime(f.From)
	}
	if !f.To.IsZero() {
		m["to"] = formatTime(f.To)
	}
	if f.Actor != "" {
		m["actor"] = f.Actor
	}
	if f.Action != "" {
		m["action"] = string(f.Action)
	}
	if f.Kind != "" {
		m["kind"] = f.Kind
	}
	if f.RequestID != 0 {
		m["request_id"] = f.RequestID
	}
	return m
}

// MaxPage caps List's limit.
const MaxPage = 500

// List returns up to limit events matching f, newest first, with seq < before (before <= 0
// starts at the head). next is the value of before for the following page, or 0 when there is
// none. Keyset paging on seq keeps every page as cheap as the first.
func List(ctx context.Context, db bun.IDB, f Filter, before int64, limit int) (events []Event, next int64, err error) {
	defer pg.Wrap(&err, "audit.List")
	return list(ctx, db, f, before, limit, true)
}

// ListBrief is List without the events' details (Details is nil), for pages that do not show
// them: decoding every event's details is most of List's work.
func ListBrief(ctx context.Context, db bun.IDB, f Filter, before int64, limit int) (events []Event, next int64, err error) {
	defer pg.Wrap(&err, "audit.ListBrief")
	return list(ctx, db, f, before, limit, false)
}

func list(ctx context.Context, db bun.IDB, f Filter, before int64, limit int, details bool) (events []Event, next int64, err error) {
	if limit <= 0 || limit > MaxPage {
		return nil, 0, fmt.Errorf("%w: limit must be between 1 and %d", pg.ErrInvalid, MaxPage)
	}
	where, args, err := f.where()
	if err != nil {
		return nil, 0, err
	}
	if before > 0 {
		where += " AND seq < ?"
		args = append(args, before)
	}
	args = append(args, limit+1)
	cols := columns
	if !details {
		cols = briefColumns
	}
	// The statement is written with $n parameters (pg.Direct): one text per filter shape, so
	// the audit page's query is prepared once per connection, not parsed and planned anew.
	rows, err := pg.DirectOf(db).QueryContext(ctx, numbered("SELECT "+cols+" FROM audit_events WHERE "+where+" ORDER BY seq DESC LIMIT ?"), args...)
	if err != nil {
		return nil, 0, pg.Interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows, details)
		if err != nil {
			return nil, 0, err
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, pg.Interpret(err)
	}
	if len(events) > limit {
		events = events[:limit]
		next = events[limit-1].Seq
	}
	return events, next, nil
}

// scanEvent reads one row selected with columns; without details, Details stays nil.
func scanEvent(rows *sql.Rows, withDetails bool) (Event, error) {
	var (
		e         Event
		actorID   sql.NullInt64
		requestID sql.NullInt64
		action    string
		details   []byte
	)
	if err := rows.Scan(&e.Seq, &e.At, &actorID, &e.ActorName, &action, &requestID, &e.Kind, &e.Target,
		&e.RootKey, &e.RootLabel, &e.Reason, &e.PlanDigest, &e.PolicyHash, &details, &e.ClientIP,
		&e.PrevHash, &e.Hash); err != nil {
		return Event{}, pg.Interpret(err)
	}
	e.At = e.At.UTC()
	e.Action = Action(action)
	if actorID.Valid {
		e.ActorID = &actorID.Int64
	}
	if requestID.Valid {
		e.RequestID = &requestID.Int64
	}
	if !withDetails {
		return e, nil
	}
	d, err := decodeDetails(details)
	if err != nil {
		// Stored details that are not canonical-able are themselves evidence of tampering;
		// keep the raw text so that verification reports a hash mismatch at this event.
		d = map[string]any{"unreadable_details": string(details)}
	}
	e.Details = d
	return e, nil
}

// cursorChunk is how many rows each FETCH returns.
const cursorChunk = 2000

// stream runs "SELECT columns FROM audit_events WHERE where ORDER BY seq" through a server-side
// cursor, calling fn for each event in order. Memory stays constant whatever the row count.
// When db is a transaction the cursor lives in it; otherwise stream opens a read-only
// REPEATABLE READ transaction, so that the whole stream is one snapshot.
func stream(ctx context.Context, db bun.IDB, where string, args []any, fn func(Event) error) error {
	opts := &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	return inTx(ctx, db, opts, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "DECLARE audit_stream NO SCROLL CURSOR FOR SELECT "+columns+
			" FROM audit_events WHERE "+where+" ORDER BY seq", args...); err != nil {
			return pg.Interpret(err)
		}
		var ferr error
		for {
			var n int
			n, ferr = fetch(ctx, tx, fn)
			if ferr != nil || n < cursorChunk {
				break
			}
		}
		// Close the cursor even when fn stopped early: the caller's transaction may go on and
		// stream again. After a database error the transaction is aborted and CLOSE fails too;
		// the first error is the one reported.
		_, cerr := tx.ExecContext(ctx, "CLOSE audit_stream")
		if ferr != nil {
			return ferr
		}
		return pg.Interpret(cerr)
	})
}

func fetch(ctx context.Context, tx bun.Tx, fn func(Event) error) (n int, err error) {
	rows, err := tx.QueryContext(ctx, "FETCH ? FROM audit_stream", cursorChunk)
	if err != nil {
		return 0, pg.Interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEvent(rows, true)
		if err != nil {
			return n, err
		}
		n++
		if err := fn(e); err != nil {
			return n, err
		}
	}
	return n, pg.Interpret(rows.Err())
}

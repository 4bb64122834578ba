package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Result is the outcome of a verification. An error from a Verify function means it could not
// run; a broken chain is a Result with OK false.
type Result struct {
	OK bool
	// First and Last are the verified range; Head is the hash of event Last.
	First, Last int64
	Count       int64
	Head        string
	// Gaps counts missing runs of events that were allowed (filtered CSV exports only).
	Gaps int64
	// BrokenAt is the first event that fails, and Reason says why.
	BrokenAt int64
	Reason   string
}

// String is the one-line summary the command line and the audit page print.
func (r Result) String() string {
	switch {
	case !r.OK:
		return fmt.Sprintf("broken at event %d: %s", r.BrokenAt, r.Reason)
	case r.Count == 0:
		return "no events to verify"
	case r.Gaps > 0:
		return fmt.Sprintf("verified %d events between %d..%d (%d gaps: a filtered export), head %s", r.Count, r.First, r.Last, r.Gaps, r.Head)
	default:
		return fmt.Sprintf("verified events %d..%d, head %s", r.First, r.Last, r.Head)
	}
}

// chain checks events one at a time, in order, in constant memory.
type chain struct {
	allowGaps bool
	// expectFirst, when set, is the seq the first event must have.
	expectFirst int64
	// anchor, when set, is the stored hash of the event before the first one checked.
	anchor    string
	anchorSeq int64
	res       Result
	prev      string
}

func (c *chain) broken(seq int64, format string, args ...any) {
	c.res.OK = false
	c.res.BrokenAt = seq
	c.res.Reason = fmt.Sprintf(format, args...)
}

// add checks e; it returns false once the chain is broken.
func (c *chain) add(e Event) bool {
	if c.res.Count == 0 {
		switch {
		case c.anchorSeq > 0 && e.Seq != c.anchorSeq+1:
			c.broken(c.anchorSeq+1, "event is missing (the next event is %d)", e.Seq)
			return false
		case c.anchorSeq > 0 && e.PrevHash != c.anchor:
			c.broken(e.Seq, "prev_hash does not match the hash of event %d", c.anchorSeq)
			return false
		case c.expectFirst > 0 && e.Seq != c.expectFirst:
			c.broken(c.expectFirst, "event is missing (the log starts at %d)", e.Seq)
			return false
		case e.Seq < 1:
			c.broken(e.Seq, "seq must be positive")
			return false
		case e.Seq == 1 && e.PrevHash != GenesisHash:
			c.broken(1, "the first event's prev_hash is not the genesis hash")
			return false
		}
		c.res.First = e.Seq
	} else {
		last := c.res.Last
		switch {
		case e.Seq <= last:
			c.broken(e.Seq, "out of order (after event %d)", last)
			return false
		case e.Seq != last+1 && !c.allowGaps:
			c.broken(last+1, "event is missing (the next event is %d)", e.Seq)
			return false
		case e.Seq != last+1:
			c.res.Gaps++
		case e.PrevHash != c.prev:
			c.broken(e.Seq, "prev_hash does not match the hash of event %d", last)
			return false
		}
	}
	h, err := computeHash(e)
	if err != nil {
		c.broken(e.Seq, "cannot be hashed: %v", err)
		return false
	}
	if h != e.Hash {
		c.broken(e.Seq, "hash does not match the event's contents")
		return false
	}
	c.prev = e.Hash
	c.res.Last = e.Seq
	c.res.Head = e.Hash
	c.res.Count++
	return true
}

func (c *chain) result() Result {
	if c.res.BrokenAt == 0 {
		c.res.OK = true
	}
	return c.res
}

var errStop = errors.New("stop")

// Verify recomputes the chain from event from (1 when from <= 1) to the head, in seq order,
// streaming from a server-side cursor in one REPEATABLE READ snapshot, in constant memory. With
// from > 1 it trusts the stored hash of event from−1 as the starting point.
//
// It also checks every stored checkpoint at or after from against the chain (that the signed
// seq still exists with the signed hash); signatures are checked by VerifyCheckpoint, which
// needs the public key.
func Verify(ctx context.Context, db bun.IDB, from int64) (res Result, err error) {
	defer pg.Wrap(&err, "audit.Verify(from %d)", from)
	if from < 1 {
		from = 1
	}
	opts := &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	err = inTx(ctx, db, opts, func(ctx context.Context, tx bun.Tx) error {
		c := &chain{expectFirst: 1}
		if from > 1 {
			c.expectFirst = 0
			err := tx.QueryRowContext(ctx, "SELECT hash FROM audit_events WHERE seq = ?", from-1).Scan(&c.anchor)
			if errors.Is(err, sql.ErrNoRows) {
				headSeq, _, herr := Head(ctx, tx)
				if herr != nil {
					return herr
				}
				if headSeq < from-1 {
					return fmt.Errorf("%w: the log ends at event %d", pg.ErrInvalid, headSeq)
				}
				c.broken(from-1, "event is missing")
				res = c.res
				return nil
			}
			if err != nil {
				return pg.Interpret(err)
			}
			c.anchorSeq = from - 1
		}
		err := stream(ctx, tx, "seq >= ?", []any{from}, func(e Event) error {
			if !c.add(e) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		res = c.result()
		if !res.OK {
			return nil
		}
		return checkStoredCheckpoints(ctx, tx, from, &res)
	})
	return res, err
}

// checkStoredCheckpoints marks res broken at the lowest checkpointed seq whose event is gone or
// has a different hash.
func checkStoredCheckpoints(ctx context.Context, tx bun.Tx, from int64, res *Result) error {
	var (
		id, seq int64
		have    sql.NullString
	)
	err := tx.QueryRowContext(ctx, `SELECT c.id, c.seq, e.hash FROM audit_checkpoints AS c
		LEFT JOIN audit_events AS e ON e.seq = c.seq
		WHERE c.seq >= ? AND e.hash IS DISTINCT FROM c.hash
		ORDER BY c.seq LIMIT 1`, from).Scan(&id, &seq, &have)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return pg.Interpret(err)
	}
	res.OK = false
	res.BrokenAt = seq
	if have.Valid {
		res.Reason = fmt.Sprintf("hash differs from stored checkpoint %d", id)
	} else {
		res.Reason = fmt.Sprintf("event is missing but stored checkpoint %d signed it", id)
	}
	return nil
}

package web

import (
	"context"
	"sync"
	"time"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/web/templates"
)

// chainFullEvery is how often the audit page verifies the whole chain again instead of only
// the events appended since the last check.
const chainFullEvery = time.Hour

// chainCache remembers the last verification of the audit chain, so that the audit page
// verifies only what was appended since (audit.Verify reads every event, which is slow on a
// big log). A broken chain stays broken for the life of the process: an edit that is undone
// later is still an edit.
type chainCache struct {
	mu     sync.Mutex
	valid  bool
	res    audit.Result // events res.First..res.Last verified, or broken
	fullAt time.Time    // when the whole chain was last verified
	// started is when the last verification began (the real clock, for callers that
	// waited for it: see verifyChain).
	started time.Time
}

// verifyChain returns the chain's status, verifying incrementally from the last verified
// event, whose stored hash must still be the one verified (else the tail was rewritten).
// Concurrent callers wait for one verification: a caller that waited while a verification
// that began after it arrived ran takes that result, which covers every event appended
// before it asked.
func (s *Server) verifyChain(ctx context.Context) (audit.Result, error) {
	asked := time.Now()
	c := &s.chain
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid && (!c.res.OK || c.started.After(asked)) {
		return c.res, nil
	}
	start := time.Now()
	now := s.now()
	from := int64(1)
	if c.valid && c.res.Last > 0 && now.Sub(c.fullAt) < chainFullEvery {
		last, _, err := audit.List(ctx, s.db.Bun, audit.Filter{}, c.res.Last+1, 1)
		if err != nil {
			return audit.Result{}, err
		}
		if len(last) == 0 || last[0].Seq != c.res.Last || last[0].Hash != c.res.Head {
			c.res = audit.Result{BrokenAt: c.res.Last, Reason: "the last verified event was changed or removed since it was verified"}
			return c.res, nil
		}
		from = c.res.Last + 1
	}
	res, err := audit.Verify(ctx, s.db.Bun, from)
	if err != nil {
		return audit.Result{}, err
	}
	switch {
	case from == 1:
		c.res, c.fullAt = res, now
	case !res.OK:
		c.res = res
	case res.Count > 0:
		c.res.Last, c.res.Head, c.res.Count = res.Last, res.Head, c.res.Count+res.Count
	}
	c.valid, c.started = true, start
	return c.res, nil
}

// chainStatus is the audit page's badge. A verification that cannot run (the database is
// busy, the client left) shows as unverified rather than failing the page.
func (s *Server) chainStatus(ctx context.Context) templates.ChainStatus {
	res, err := s.verifyChain(ctx)
	if err != nil {
		s.logger(ctx).Warn("verify audit chain", "err", err)
		return templates.ChainStatus{Error: "The chain could not be verified just now."}
	}
	return templates.ChainStatus{
		Checked: true, OK: res.OK, Through: res.Last, BrokenAt: res.BrokenAt, Reason: res.Reason, Head: res.Head, At: s.now(),
	}
}

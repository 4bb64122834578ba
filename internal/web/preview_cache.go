package web

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// DefaultExactWait is how long the preview page waits for the exact preview before it paints
// planner estimates instead: small previews (most of them) then show exact counts at once, and
// big ones show estimates without keeping the operator waiting.
const DefaultExactWait = 400 * time.Millisecond

// Bounds of exact previews computed for the web pages.
const (
	// previewTTL is how long an exact preview is reused: reloads, the htmx request for the
	// exact counts, lazily loaded nodes and the request POST within this window share one
	// evaluation.
	previewTTL = 30 * time.Second
	// previewRefresh is the age after which a visit to a cached preview starts evaluating it
	// again in the background while the cached one is still served; the new one replaces it
	// when it is done. A preview that is looked at all the time (many operators on one big
	// tenant) is thus never recomputed while they wait, and none shown is older than
	// previewTTL unless the evaluation takes longer than previewTTL - previewRefresh.
	previewRefresh = previewTTL / 2
	// previewTimeout bounds one evaluation, which runs on after the page that started it has
	// been served (the htmx request joins it).
	previewTimeout = 5 * time.Minute
	// previewSlots bounds the evaluations running at once; more wait for a slot.
	previewSlots = 4
)

// previewCache computes exact previews at most once per key and window, and shares a running
// evaluation among everyone who asks for it. The key covers the kind, the root's key, the
// policy hash and the schema fingerprints, so a changed policy or schema never reuses an old
// preview; changed data within the window does, which is why the executor checks the digest
// again before it deletes anything.
type previewCache struct {
	wait  time.Duration
	now   func() time.Time
	slots chan struct{}

	mu      sync.Mutex
	entries map[string]*previewEntry
	// next holds the background re-evaluations of entries that are still being served.
	next map[string]*previewEntry
}

// previewEntry is one evaluation: running until done is closed, then p or err.
type previewEntry struct {
	done chan struct{}
	p    *preview.Preview
	err  error
	at   time.Time // when it finished
	// refreshed is set once a re-evaluation of this entry was started, so that a failing
	// one is not retried on every visit; the entry then expires at previewTTL.
	refreshed bool
}

func newPreviewCache(wait time.Duration, now func() time.Time) *previewCache {
	if wait == 0 {
		wait = DefaultExactWait
	}
	return &previewCache{
		wait: wait, now: now, slots: make(chan struct{}, previewSlots),
		entries: map[string]*previewEntry{}, next: map[string]*previewEntry{},
	}
}

// previewKey identifies an exact preview: kind, root key, policy hash and schema fingerprints.
func previewKey(plan *policy.Plan, rootKey []string) string {
	var b strings.Builder
	b.WriteString(plan.Kind.Name)
	b.WriteByte(0)
	b.WriteString(strings.Join(rootKey, "\x1f"))
	b.WriteByte(0)
	b.WriteString(plan.PolicyHash)
	targets := make([]string, 0, len(plan.Fingerprints))
	for t := range plan.Fingerprints {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		b.WriteByte(0)
		b.WriteString(t + "=" + plan.Fingerprints[t])
	}
	return b.String()
}

// start returns the evaluation for key: a finished one younger than previewTTL, the one
// running, or a new one it starts with run. With fresh, a finished evaluation is not reused.
// A finished one older than previewRefresh is still returned, and a re-evaluation starts
// behind it (see previewRefresh). Evaluations run on a context of their own (values kept,
// cancellation not), so a client that goes away does not waste the work for the next one.
func (c *previewCache) start(ctx context.Context, key string, fresh bool, run func(context.Context) (*preview.Preview, error)) *previewEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for k, e := range c.entries {
		if e.finished() && now.Sub(e.at) > previewTTL {
			delete(c.entries, k)
		}
	}
	e := c.entries[key]
	if n := c.next[key]; e == nil && n != nil {
		// The served preview expired before its re-evaluation finished: join that.
		delete(c.next, key)
		c.entries[key], e = n, n
	}
	if e != nil && (!e.finished() || !fresh) {
		if e.finished() && e.err == nil && !e.refreshed && now.Sub(e.at) > previewRefresh {
			e.refreshed = true
			c.next[key] = c.launch(ctx, key, run)
		}
		return e
	}
	delete(c.next, key) // a re-evaluation started before this fresh one must not replace it
	e = c.launch(ctx, key, run)
	c.entries[key] = e
	return e
}

// launch starts an evaluation; the caller stores it in entries or next. When it finishes, a
// re-evaluation (still in next) replaces the served entry if it succeeded, and a failed one in
// entries is dropped so that the next visitor tries again. The caller holds c.mu.
func (c *previewCache) launch(ctx context.Context, key string, run func(context.Context) (*preview.Preview, error)) *previewEntry {
	e := &previewEntry{done: make(chan struct{})}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), previewTimeout)
		defer cancel()
		c.slots <- struct{}{}
		p, err := run(ctx)
		<-c.slots
		c.mu.Lock()
		e.p, e.err, e.at = p, err, c.now()
		switch {
		case c.next[key] == e:
			delete(c.next, key)
			if err == nil {
				c.entries[key] = e
			}
		case err != nil && c.entries[key] == e:
			delete(c.entries, key) // the next visitor tries again
		}
		c.mu.Unlock()
		close(e.done)
	}()
	return e
}

// cached returns the finished exact preview for key, if one younger than previewTTL exists.
func (c *previewCache) cached(key string) *preview.Preview {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil || !e.finished() || e.err != nil || c.now().Sub(e.at) > previewTTL {
		return nil
	}
	return e.p
}

func (e *previewEntry) finished() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// result waits for the evaluation until ctx ends.
func (e *previewEntry) result(ctx context.Context) (*preview.Preview, error) {
	select {
	case <-e.done:
		return e.p, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waitFor waits at most d for the evaluation and reports whether it has finished; then
// result returns at once.
func (e *previewEntry) waitFor(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return e.finished()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

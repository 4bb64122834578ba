package web

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/preview"
)

// cacheClock is a settable clock for the preview cache.
type cacheClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *cacheClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *cacheClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// evaluations is a run function whose evaluations are numbered and wait for release.
type evaluations struct {
	mu      sync.Mutex
	n       int
	release chan error
}

func (ev *evaluations) run(ctx context.Context) (*preview.Preview, error) {
	ev.mu.Lock()
	ev.n++
	n := ev.n
	ev.mu.Unlock()
	if err := <-ev.release; err != nil {
		return nil, err
	}
	return &preview.Preview{Digest: strconv.Itoa(n)}, nil
}

func (ev *evaluations) count() int {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.n
}

func TestPreviewCacheRefreshesBehindTheServedPreview(t *testing.T) {
	clock := &cacheClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newPreviewCache(0, clock.now)
	ev := &evaluations{release: make(chan error)}
	ctx := context.Background()
	const key = "tenant\x001"
	digest := func(e *previewEntry) string {
		t.Helper()
		p, err := e.result(ctx)
		require.NoError(t, err)
		return p.Digest
	}
	finish := func(err error) {
		t.Helper()
		select {
		case ev.release <- err:
		case <-time.After(10 * time.Second):
			t.Fatal("no evaluation is waiting")
		}
	}
	waitCached := func(want string) {
		t.Helper()
		require.Eventually(t, func() bool { p := c.cached(key); return p != nil && p.Digest == want }, 10*time.Second, time.Millisecond)
	}

	// The first visit evaluates; visits within previewRefresh reuse it.
	e := c.start(ctx, key, false, ev.run)
	finish(nil)
	require.Equal(t, "1", digest(e))
	clock.advance(previewRefresh - time.Second)
	require.Equal(t, "1", digest(c.start(ctx, key, false, ev.run)))
	require.Equal(t, 1, ev.count())

	// Older than previewRefresh: the visit gets the cached preview at once and a
	// re-evaluation starts behind it, only one however many visits come.
	clock.advance(2 * time.Second)
	e = c.start(ctx, key, false, ev.run)
	require.True(t, e.finished(), "served without waiting")
	require.Equal(t, "1", digest(e))
	require.Eventually(t, func() bool { return ev.count() == 2 }, 10*time.Second, time.Millisecond)
	require.Equal(t, "1", digest(c.start(ctx, key, false, ev.run)))
	require.Equal(t, "1", c.cached(key).Digest)
	finish(nil)
	waitCached("2")
	require.Equal(t, "2", digest(c.start(ctx, key, false, ev.run)))
	require.Equal(t, 2, ev.count())

	// A failed re-evaluation leaves the served preview alone and is not retried on every
	// visit; once the served one expires, the next visit evaluates again.
	clock.advance(previewRefresh + time.Second)
	require.Equal(t, "2", digest(c.start(ctx, key, false, ev.run)))
	finish(errors.New("target down"))
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.next[key] == nil }, 10*time.Second, time.Millisecond)
	require.Equal(t, "2", digest(c.start(ctx, key, false, ev.run)))
	require.Equal(t, 3, ev.count())
	clock.advance(previewTTL - previewRefresh)
	e = c.start(ctx, key, false, ev.run)
	require.False(t, e.finished(), "an expired preview is not served")
	finish(nil)
	require.Equal(t, "4", digest(e))

	// When the served preview expires while its re-evaluation runs, visitors join that.
	clock.advance(previewRefresh + time.Second)
	require.Equal(t, "4", digest(c.start(ctx, key, false, ev.run)))
	require.Eventually(t, func() bool { return ev.count() == 5 }, 10*time.Second, time.Millisecond)
	clock.advance(previewTTL)
	require.Nil(t, c.cached(key))
	e = c.start(ctx, key, false, ev.run)
	require.False(t, e.finished())
	finish(nil)
	require.Equal(t, "5", digest(e))
	require.Equal(t, 5, ev.count())

	// fresh skips the cache, and a re-evaluation started before it does not replace it.
	clock.advance(previewRefresh + time.Second)
	require.Equal(t, "5", digest(c.start(ctx, key, false, ev.run))) // starts re-evaluation 6
	require.Eventually(t, func() bool { return ev.count() == 6 }, 10*time.Second, time.Millisecond)
	c.mu.Lock()
	refresh := c.next[key]
	c.mu.Unlock()
	require.NotNil(t, refresh)
	f := c.start(ctx, key, true, ev.run) // evaluation 7
	require.Eventually(t, func() bool { return ev.count() == 7 }, 10*time.Second, time.Millisecond)
	finish(nil)
	finish(nil)
	require.Equal(t, "7", digest(f))
	require.Equal(t, "6", digest(refresh))
	require.Equal(t, "7", c.cached(key).Digest, "the fresh evaluation stays")
}

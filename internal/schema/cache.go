package schema

import (
	"context"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Cache keeps the last loaded Schema of each target and reloads it only when the target's
// catalog changes. It is safe for concurrent use.
//
// A Get checks the catalog at most once per minimum interval. The check is one query computing
// a checksum over the catalog rows Load depends on; only when the checksum differs does Get run
// a full Load. When the reloaded Schema has the same Fingerprint as the cached one (the checksum
// also moves on changes Load ignores, such as a renamed index), the cached pointer is kept, so
// callers may compare Schemas by pointer. Row estimates in a cached Schema are therefore those of
// the load that first produced its shape; read reltuples directly where fresh estimates matter.
type Cache struct {
	minInterval time.Duration

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	// sem is held (one token) while the entry is checked or loaded; the fields below belong to
	// its holder.
	sem     chan struct{}
	schema  *Schema
	stamp   string // the catalog checksum of the last load
	checked time.Time
}

// NewCache returns a Cache that checks each target's catalog at most once per minInterval
// (e.g. 2s); 0 checks on every Get.
func NewCache(minInterval time.Duration) *Cache {
	return &Cache{minInterval: minInterval, entries: map[string]*cacheEntry{}}
}

// Get returns target's Schema, loading it through db on first use and whenever the catalog has
// changed since. Concurrent Gets for one target wait for a single check or load; different
// targets do not wait for each other. db is used as in Load. A Cache shared between callers
// should be given a *bun.DB: a bun.Tx is used as is, and a Schema loaded through it (including
// that transaction's uncommitted DDL) would be served to every caller. Entries are never
// evicted; targets are a fixed set from the policy.
func (c *Cache) Get(ctx context.Context, target string, db bun.IDB) (s *Schema, err error) {
	defer pg.Wrap(&err, "schema.Cache.Get(%q)", target)
	e := c.entry(target)
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.sem }()

	now := time.Now()
	if e.schema != nil && now.Sub(e.checked) < c.minInterval {
		return e.schema, nil
	}
	if e.schema != nil {
		// One statement sees one snapshot: no transaction is needed for the check.
		stamp, err := readStamp(ctx, db, e.schema.ServerVersion)
		if err != nil {
			return nil, err
		}
		if stamp == e.stamp {
			e.checked = now
			return e.schema, nil
		}
	}
	fresh, err := Load(ctx, db)
	if err != nil {
		return nil, err
	}
	// fresh.stamp was taken in the same snapshot as fresh, so the next check compares against
	// exactly what was loaded. On an unchanged shape, keep the pointer callers already hold.
	e.stamp = fresh.stamp
	if e.schema == nil || fresh.Fingerprint != e.schema.Fingerprint {
		e.schema = fresh
	}
	e.checked = now
	return e.schema, nil
}

func (c *Cache) entry(target string) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[target]
	if e == nil {
		e = &cacheEntry{sem: make(chan struct{}, 1)}
		c.entries[target] = e
	}
	return e
}

package pg

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Pools opens one pool per named database on first use and keeps it. It is safe for concurrent
// use. A database that is down is retried on the next call rather than remembered as failed.
type Pools struct {
	mu   sync.Mutex
	dsns map[string]string
	opts Options
	dbs  map[string]*DB
}

// NewPools returns pools for the named DSNs (e.g. the config's targets). Their statements are
// not prepared on the server (see Options.Unprepared).
func NewPools(dsns map[string]string, opts Options) *Pools {
	opts.Unprepared = true
	return &Pools{dsns: dsns, opts: opts, dbs: map[string]*DB{}}
}

// Names returns the database names, sorted.
func (p *Pools) Names() []string {
	names := make([]string, 0, len(p.dsns))
	for n := range p.dsns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DB returns the named database, opening its pool if needed.
func (p *Pools) DB(ctx context.Context, name string) (*DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.dbs[name]; ok {
		return db, nil
	}
	dsn, ok := p.dsns[name]
	if !ok {
		return nil, fmt.Errorf("unknown target %q", name)
	}
	db, err := Open(ctx, dsn, p.opts)
	if err != nil {
		return nil, err
	}
	p.dbs[name] = db
	return db, nil
}

// Close closes every open pool.
func (p *Pools) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, db := range p.dbs {
		db.Close()
		delete(p.dbs, n)
	}
}

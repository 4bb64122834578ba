// Package cluster gives tests private PostgreSQL servers (see internal/pg/cluster), for
// tests that need a server setting the shared test server does not have
// (max_prepared_transactions), or that must stop, crash or reconfigure a server without
// disturbing anyone else.
//
// Starting a cluster takes a few seconds: share one per test package (Shared, stopped by
// StopShared from TestMain) rather than one per test. Tests fail, never skip, when no
// PostgreSQL server binaries are installed.
package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tombstone-console/tombstone/internal/pg/cluster"
)

// Options configure a cluster.
type Options = cluster.Options

// Start starts a new cluster and stops it (removing its files) when t's test ends. It
// returns the URL of its postgres database.
func Start(t testing.TB, opts Options) (url string) {
	t.Helper()
	c, err := cluster.New(opts)
	if err != nil {
		t.Fatalf("cluster.Start: %v", err)
	}
	t.Cleanup(c.Stop)
	return c.URL
}

var (
	sharedMu sync.Mutex
	shared   = map[Options]*cluster.Cluster{}
)

// Shared returns the URL of the package's cluster with these options, starting it on first
// use. Call StopShared from TestMain after m.Run.
func Shared(t testing.TB, opts Options) (url string) {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if c := shared[opts]; c != nil {
		return c.URL
	}
	c, err := cluster.New(opts)
	if err != nil {
		t.Fatalf("cluster.Shared: %v", err)
	}
	shared[opts] = c
	return c.URL
}

// StopShared stops every cluster Shared started.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for o, c := range shared {
		c.Stop()
		delete(shared, o)
	}
}

// Database creates database name in the cluster at adminURL and returns its URL.
func Database(t testing.TB, adminURL, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := cluster.CreateDatabase(ctx, adminURL, name)
	if err != nil {
		t.Fatalf("cluster.Database: %v", err)
	}
	return u
}

// WithDatabase returns base with its database name replaced. base must be a valid URL.
func WithDatabase(base, name string) string {
	u, err := cluster.WithDatabase(base, name)
	if err != nil {
		panic(err)
	}
	return u
}

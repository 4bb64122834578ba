package cluster_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg/cluster"
)

// TestNewAndStop starts a cluster, uses it, and checks that Stop shuts the server down and
// removes its files.
func TestNewAndStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := cluster.New(cluster.Options{MaxPreparedTransactions: 3})
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	require.DirExists(t, filepath.Join(c.Dir, "data"))

	url, err := cluster.CreateDatabase(ctx, c.URL, "app")
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var prepared int
	var name, user string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int, current_database(), current_user").Scan(&prepared, &name, &user))
	require.Equal(t, 3, prepared)
	require.Equal(t, "app", name)
	require.Equal(t, "postgres", user)
	require.NoError(t, conn.Close(ctx))

	c.Stop()
	c.Stop() // idempotent
	_, err = os.Stat(c.Dir)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = pgx.Connect(ctx, c.URL)
	require.Error(t, err, "the server still answers after Stop")
}

func TestFindBinaries(t *testing.T) {
	t.Parallel()
	dir, err := cluster.FindBinaries("")
	require.NoError(t, err, "the tests need PostgreSQL server binaries")
	require.FileExists(t, filepath.Join(dir, "initdb"))
	require.FileExists(t, filepath.Join(dir, "pg_ctl"))

	got, err := cluster.FindBinaries(dir)
	require.NoError(t, err)
	require.Equal(t, dir, got)

	empty := t.TempDir()
	_, err = cluster.FindBinaries(empty)
	require.ErrorIs(t, err, cluster.ErrNoBinaries)
	require.Contains(t, err.Error(), empty)

	_, err = cluster.New(cluster.Options{BinDir: empty})
	require.ErrorIs(t, err, cluster.ErrNoBinaries)
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	u, err := cluster.WithDatabase("postgres://postgres@127.0.0.1:5999/postgres?sslmode=disable", "demo_app")
	require.NoError(t, err)
	require.Equal(t, "postgres://postgres@127.0.0.1:5999/demo_app?sslmode=disable", u)
	_, err = cluster.WithDatabase("postgres://a b:%zz@host/db", "x")
	require.Error(t, err)
}

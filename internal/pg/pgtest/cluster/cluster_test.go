package cluster_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg/pgtest/cluster"
)

func TestStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, n := range []int{0, 4} {
		url := cluster.Start(t, cluster.Options{MaxPreparedTransactions: n})
		db := cluster.Database(t, url, "app")
		conn, err := pgx.Connect(ctx, db)
		require.NoError(t, err)
		var got int
		var name string
		require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int, current_database()").Scan(&got, &name))
		require.Equal(t, n, got)
		require.Equal(t, "app", name)
		require.NoError(t, conn.Close(ctx))
	}
}

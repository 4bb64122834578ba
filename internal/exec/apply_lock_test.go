package exec_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// TestEveryParentInTheCascadeIsLocked inserts, while the executor's transaction is open, a
// child under rows found in every way the evaluation finds them: deep in a self-referencing
// tree (folders), through a cycle across tables (a ↔ b) and under a tree row (docs). Each
// insert must wait on the executor's lock, which is what lets the evaluation skip re-reading
// sets whose parents were locked before the read.
func TestEveryParentInTheCascadeIsLocked(t *testing.T) {
	t.Parallel()
	f := setup(t, tenantPolicy)
	_, ep := f.preview(t, "tenant", "1")
	ctx := context.Background()
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = exec.ApplyTx(ctx, tx, "app", ep)
	require.NoError(t, err)

	conn, err := f.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET lock_timeout = '300ms'")
	require.NoError(t, err)
	for _, insert := range []string{
		"INSERT INTO folders VALUES (10, 2, 3, 'under the grandchild')",
		"INSERT INTO docs VALUES (2, 9, 3, 'in the grandchild')",
		"INSERT INTO b VALUES (3, 2)",
		"INSERT INTO a VALUES (3, 2, 1)",
	} {
		_, err = conn.Exec(ctx, insert)
		require.Error(t, err, insert)
		require.Equal(t, "55P03", pg.Code(err), "%s waits for the executor's lock: %v", insert, err)
	}
	require.NoError(t, tx.Commit(ctx))
	for _, insert := range []string{
		"INSERT INTO folders VALUES (10, 2, 3, 'under the grandchild')",
		"INSERT INTO b VALUES (3, 2)",
	} {
		_, err = conn.Exec(ctx, insert)
		require.Equal(t, "23503", pg.Code(err), "%s: after commit the parent is gone", insert)
	}
}

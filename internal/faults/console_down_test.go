//go:build faults

package faults

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// With the console database down and the target fine, approvals fail closed and nothing
// executes; when the console database is back, nothing was approved or run behind its back,
// and the approved request runs.
func TestConsoleDatabaseDown(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0)
	_, targetURL := pgtest.Empty(t)
	r := newRig(t, durableDB(t, c, "console"), targetURL, "")
	pending := r.requested(t, "tenant", "1")
	approved := r.approved(t, "tenant", "2")
	before := shopCounts(t, r.target)
	seq, _, err := audit.Head(ctx, r.console.Bun)
	require.NoError(t, err)

	require.NoError(t, c.Halt(true))
	_, err = r.svc.Approve(ctx, r.console.Bun, approval.ApproveInput{
		Actor: r.bob, RequestID: pending.ID, Digest: pending.Digest, SignedInAt: time.Now()})
	require.ErrorIs(t, err, pg.ErrUnavailable, "the approval fails closed")
	t.Logf("approve with the console database down: %v", err)
	_, err = r.svc.Reject(ctx, r.console.Bun, r.bob, pending.ID, "rejected while the console is down")
	require.ErrorIs(t, err, pg.ErrUnavailable)
	err = r.exec.Run(ctx, approved.ID)
	require.ErrorIs(t, err, pg.ErrUnavailable, "the executor cannot start the request")
	t.Logf("run with the console database down: %v", err)
	_, err = r.exec.Reconcile(ctx)
	require.ErrorIs(t, err, pg.ErrUnavailable)
	require.Equal(t, before, shopCounts(t, r.target), "nothing executed in the target")
	require.Zero(t, ledgerRows(t, r.target, approved.ID))

	require.NoError(t, c.Restart(false))
	poolsNoticeRestart()
	require.Equal(t, approval.Pending, r.request(t, pending.ID).State, "nothing was approved")
	require.Equal(t, approval.Approved, r.request(t, approved.ID).State, "nothing started")
	var approvals int
	require.NoError(t, r.console.Pool.QueryRow(ctx, "SELECT count(*) FROM approvals WHERE request_id = $1", pending.ID).Scan(&approvals))
	require.Zero(t, approvals)
	after, _, err := audit.Head(ctx, r.console.Bun)
	require.NoError(t, err)
	require.Equal(t, seq, after, "no audit event was written")
	verified(t, r.console)

	require.NoError(t, r.exec.Run(ctx, approved.ID))
	require.Equal(t, approval.Done, r.request(t, approved.ID).State)
	require.Zero(t, tenantRows(t, r.target, 2))
	require.Equal(t, int64(45), tenantRows(t, r.target, 1))
}

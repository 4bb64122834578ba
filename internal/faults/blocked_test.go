//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// sharedRig is a rig on the shared test server: a fresh console database and an empty target.
func sharedRig(t *testing.T, targetOpts string) *rig {
	t.Helper()
	console := pgtest.Fresh(t)
	_, targetURL := pgtest.Empty(t)
	return newRig(t, pgtest.URLOf(console), targetURL, targetOpts)
}

func attempts(t *testing.T, req *approval.Request) int {
	t.Helper()
	var rep exec.Report
	require.NoError(t, json.Unmarshal(req.Result, &rep))
	return rep.Attempts
}

// A statement that outlives the target's statement_timeout fails the request at once (it is
// not retried) with a reason that names the timeout, and changes nothing.
func TestStatementTimeoutFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := sharedRig(t, ", statement_timeout: 300ms")
	req := r.approved(t, "tenant", "1")
	// Deleting docs now takes a second: a slow trigger stands for a slow cascade.
	_, err := r.target.Pool.Exec(ctx, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
		CREATE TRIGGER slow BEFORE DELETE ON docs FOR EACH STATEMENT EXECUTE FUNCTION slow();`)
	require.NoError(t, err)
	before := shopCounts(t, r.target)

	require.NoError(t, r.exec.Run(ctx, req.ID))
	got := r.request(t, req.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "a statement ran longer than the target's statement_timeout")
	require.Equal(t, 1, attempts(t, got), "a statement timeout is not retried")
	require.Equal(t, before, shopCounts(t, r.target))
	require.Zero(t, ledgerRows(t, r.target, req.ID))
	require.Equal(t, 1, events(t, r.console, req.ID, audit.ActionExecutionFailed))
	verified(t, r.console)
}

// A row lock held by another session makes the execution hit lock_timeout; it is retried with
// a growing wait and succeeds once the lock is gone.
func TestLockTimeoutRetriedThenDone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := sharedRig(t, ", lock_timeout: 200ms")
	r.exec.Retries, r.exec.Backoff = 3, time.Second
	req := r.approved(t, "tenant", "1")
	holder, err := r.target.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, "SELECT * FROM docs WHERE id = 5 FOR UPDATE")
	require.NoError(t, err)
	ran := make(chan error, 1)
	go func() { ran <- r.exec.Run(ctx, req.ID) }()
	// The holder lets go after the first attempt timed out (200ms into its wait), while the
	// executor waits a second before its next attempt.
	waitForLockWait(t, r.target, fmt.Sprintf("tombstone request %d", req.ID))
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, holder.Rollback(ctx))
	require.NoError(t, <-ran)

	got := r.request(t, req.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.GreaterOrEqual(t, attempts(t, got), 2, "the first attempt timed out")
	require.Zero(t, tenantRows(t, r.target, 1))
	require.Equal(t, 1, events(t, r.console, req.ID, audit.ActionExecuted))
	verified(t, r.console)
}

// A row lock that is never released fails the request after the bounded retries, with a
// reason that says so, and changes nothing.
func TestLockTimeoutGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := sharedRig(t, ", lock_timeout: 100ms")
	r.exec.Retries, r.exec.Backoff = 2, 20*time.Millisecond
	req := r.approved(t, "tenant", "2")
	holder, err := r.target.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, "SELECT * FROM tenants WHERE id = 2 FOR UPDATE")
	require.NoError(t, err)
	before := shopCounts(t, r.target)

	require.NoError(t, r.exec.Run(ctx, req.ID))
	got := r.request(t, req.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "gave up after 3 attempts")
	require.Contains(t, got.Error, "could not lock the rows in time")
	require.NoError(t, holder.Rollback(ctx))
	require.Equal(t, before, shopCounts(t, r.target))
	require.Zero(t, ledgerRows(t, r.target, req.ID))
	verified(t, r.console)
}

// A writer that takes its locks in the opposite order (a doc, then its tenant) deadlocks with
// the executor (the tenant, then its docs). PostgreSQL aborts one of the two: when it is the
// executor, the attempt is retried after the writer is done; when it is the writer, the
// executor goes on. Either way the request ends done, exactly once, with every previewed row
// gone.
func TestDeadlockWithWriterIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := sharedRig(t, ", lock_timeout: 30s")
	r.exec.Backoff = 100 * time.Millisecond
	req := r.approved(t, "tenant", "3")

	writer, err := pgx.Connect(ctx, r.targetURL)
	require.NoError(t, err)
	defer writer.Close(ctx)
	_, err = writer.Exec(ctx, "BEGIN; UPDATE docs SET body = 'edited' WHERE id = 85")
	require.NoError(t, err)
	ran := make(chan error, 1)
	go func() { ran <- r.exec.Run(ctx, req.ID) }()
	// The executor holds tenant 3 and its projects and waits for doc 85.
	waitForLockWait(t, r.target, fmt.Sprintf("tombstone request %d", req.ID))
	_, werr := writer.Exec(ctx, "UPDATE tenants SET name = 'renamed' WHERE id = 3")
	if werr == nil {
		_, werr = writer.Exec(ctx, "COMMIT")
	} else {
		_, _ = writer.Exec(ctx, "ROLLBACK")
	}
	require.NoError(t, <-ran)

	got := r.request(t, req.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	n := attempts(t, got)
	if werr != nil {
		t.Logf("the writer lost the deadlock (%v); the executor ran in %d attempt(s)", werr, n)
		require.Contains(t, werr.Error(), "deadlock")
	} else {
		t.Logf("the executor lost the deadlock and was retried: %d attempts", n)
		require.GreaterOrEqual(t, n, 2)
	}
	require.Zero(t, tenantRows(t, r.target, 3))
	require.Equal(t, 1, events(t, r.console, req.ID, audit.ActionExecuted))
	require.Equal(t, 1, ledgerRows(t, r.target, req.ID))
	verified(t, r.console)
}

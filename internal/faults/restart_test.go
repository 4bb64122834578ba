//go:build faults

package faults

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// A preview caught by a crash of its target's server fails with a readable error that says
// the database is unavailable, and the same preview works once the server is back.
func TestRestartDuringPreview(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0)
	r := newRig(t, pgtest.URLOf(pgtest.Fresh(t)), durableDB(t, c, "app"), "")
	plan, err := r.exec.Engine.Plan(ctx, "tenant")
	require.NoError(t, err)
	before, err := r.exec.Engine.Run(ctx, plan, []string{"1"})
	require.NoError(t, err)

	// Hold docs so that the preview waits in the middle of its snapshot, then crash the
	// server under it.
	holder, err := pgx.Connect(ctx, r.targetURL)
	require.NoError(t, err)
	defer holder.Close(ctx)
	_, err = holder.Exec(ctx, "BEGIN; LOCK TABLE docs IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := r.exec.Engine.Run(ctx, plan, []string{"1"})
		done <- err
	}()
	waitForLockWait(t, r.target, "")
	require.NoError(t, c.Restart(true))
	err = <-done
	require.Error(t, err, "a preview whose server crashed cannot succeed")
	t.Logf("preview during the restart: %v", err)
	require.ErrorIs(t, err, pg.ErrUnavailable, "the error says the database is unavailable")
	require.Contains(t, err.Error(), "target app", "the error names the target")

	after, err := r.exec.Engine.Run(ctx, plan, []string{"1"})
	require.NoError(t, err, "a retry after the restart works")
	require.Equal(t, before.Digest, after.Digest)
	require.Equal(t, before.Totals, after.Totals)
}

// A crash of the target's server during an execution leaves no partial deletion: the request
// ends failed with nothing changed, or done with everything changed, and never stays running.
func TestRestartDuringExecution(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0)
	r := newRig(t, pgtest.URLOf(pgtest.Fresh(t)), durableDB(t, c, "app"), "")
	for i, step := range []string{exec.FaultClaimed, exec.FaultArchived, exec.FaultApplied, exec.FaultCommitted} {
		tenant := int64(i + 1)
		t.Run(step, func(t *testing.T) {
			req := r.approved(t, "tenant", fmt.Sprint(tenant))
			before := shopCounts(t, r.target)
			var restarted atomic.Bool
			exec.SetFaultHook(func(at string, id int64) {
				if at == step && id == req.ID && restarted.CompareAndSwap(false, true) {
					require.NoError(t, c.Restart(true))
				}
			})
			defer exec.SetFaultHook(nil)
			err := r.exec.Run(ctx, req.ID)
			require.True(t, restarted.Load(), "the execution never reached %s", step)
			if err != nil {
				t.Logf("run: %v", err)
			}
			poolsNoticeRestart()
			got := r.settled(t, req.ID)
			after := shopCounts(t, r.target)
			t.Logf("restart at %s: request %s: %s", step, got.State, got.Error)
			switch got.State {
			case approval.Done:
				require.Zero(t, tenantRows(t, r.target, tenant), "a done request deleted everything")
				require.Equal(t, before["docs"]-40, after["docs"])
				require.Equal(t, 1, events(t, r.console, req.ID, audit.ActionExecuted))
				require.Equal(t, 1, ledgerRows(t, r.target, req.ID))
			case approval.Failed:
				require.Equal(t, before, after, "a failed request changed nothing")
				require.Equal(t, int64(45), tenantRows(t, r.target, tenant))
				require.Zero(t, events(t, r.console, req.ID, audit.ActionExecuted))
				require.Equal(t, 1, events(t, r.console, req.ID, audit.ActionExecutionFailed))
				require.Zero(t, ledgerRows(t, r.target, req.ID))
				require.NotEmpty(t, got.Error)
			default:
				t.Fatalf("request ended %s, want done or failed", got.State)
			}
			if step == exec.FaultCommitted {
				require.Equal(t, approval.Done, got.State, "the target had committed before the crash")
			}
			verified(t, r.console)
		})
	}
}

// A crash of the console database's server while several writers append to the audit log
// leaves a chain that verifies, and every append that was acknowledged is in it.
func TestRestartDuringAuditAppend(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, 0)
	url := durableDB(t, c, "console")
	db, err := pg.Open(ctx, url, pg.Options{MaxConns: 8})
	require.NoError(t, err)
	defer db.Close()
	_, err = pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)

	var (
		mu       sync.Mutex
		acked    = map[int64]string{} // seq → hash
		failures atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				e := audit.Event{ActorName: audit.SystemActor, Action: audit.ActionExported,
					Details: map[string]any{"writer": int64(w), "n": int64(i)}}
				got, err := audit.Append(ctx, db.Bun, e)
				if err != nil {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[got.Seq] = got.Hash
				mu.Unlock()
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	require.NoError(t, c.Restart(true))
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("%d appends acknowledged, %d failed across the restart", len(acked), failures.Load())
	require.Positive(t, failures.Load(), "the restart cut some appends")

	verified(t, db)
	for seq, hash := range acked {
		var stored string
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT hash FROM audit_events WHERE seq = $1", seq).Scan(&stored), "acknowledged event %d", seq)
		require.Equal(t, hash, stored, "event %d", seq)
	}
	// The log goes on after the crash.
	_, err = audit.Append(ctx, db.Bun, audit.Event{ActorName: audit.SystemActor, Action: audit.ActionExported})
	require.NoError(t, err)
	verified(t, db)
}

package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// Interrupted is the error a request gets when the reconciler finds it running with nobody
// working on it and no ledger row in its target: the transaction rolled back (the executor
// died, or lost its connection, before committing). Nothing was changed, and the same
// deletion can be asked for again with a new request.
const Interrupted = "the execution was interrupted before it committed (the executor stopped or lost its connection); nothing was changed in the target; make a new request to try again"

// Reconcile settles every request stuck in running that no executor is working on, by the
// target's ledger: a ledger row means the target transaction committed, so the request is done
// (with its executed audit event, written only if missing); no ledger row means it rolled
// back, so the request failed with Interrupted. It returns how many requests it settled.
//
// A request that spans targets is settled the same way from every target's ledger: done when
// all have their row, partial when some do, failed when none does. Before that, prepared
// transactions left in the targets are committed or rolled back by the recorded decision
// (ResolvePrepared), since they hold the fences and the locks.
//
// A request is skipped while an executor holds its console lock, or while a target
// transaction holds its fence; a target that cannot be reached is skipped and tried again on
// the next pass. Safe to run from any number of processes at once.
func (e *Executor) Reconcile(ctx context.Context) (settled int, err error) {
	defer pg.Wrap(&err, "exec.Reconcile")
	var errs []error
	if _, err := e.ResolvePrepared(ctx); err != nil {
		errs = append(errs, err)
	}
	var ids []int64
	if err := e.DB.Bun.NewRaw("SELECT id FROM requests WHERE state = 'running' ORDER BY id").Scan(ctx, &ids); err != nil {
		return 0, errors.Join(append(errs, pg.Interpret(err))...)
	}
	for _, id := range ids {
		ok, err := e.reconcileOne(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			settled++
		}
	}
	return settled, errors.Join(errs...)
}

// reconcileOne settles request id if nobody is working on it.
func (e *Executor) reconcileOne(ctx context.Context, id int64) (bool, error) {
	conn, err := claim(ctx, e.DB.Pool, id)
	if err != nil || conn == nil {
		return false, err
	}
	defer unclaim(ctx, conn, id)
	req, err := approval.Get(ctx, e.DB.Bun, id)
	if err != nil {
		return false, err
	}
	if req.State != approval.Running {
		return false, nil
	}
	if paused, err := e.reconcileBatched(ctx, req); paused || err != nil {
		return paused, ignoreBusy(err)
	}
	var out outcome
	if targets := requestTargets(req); len(targets) > 1 {
		out, err = e.reconcileMulti(ctx, req, targets)
	} else {
		out, err = e.reconcileSingle(ctx, req)
	}
	if errors.Is(err, errBusy) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("request %d: %w", id, err)
	}
	e.log().InfoContext(ctx, "reconciled a running request", "request_id", id, "outcome", out.state)
	if e.Observer != nil {
		e.Observer.Finished(out.state, 0)
		if out.state == approval.Done {
			for _, tc := range out.report.Tables {
				e.Observer.Affected(tc.Target, tc.Action, tc.Rows)
			}
		}
	}
	return true, nil
}

// reconcileSingle settles a running single-target request by its target's ledger.
func (e *Executor) reconcileSingle(ctx context.Context, req *approval.Request) (outcome, error) {
	id := req.ID
	var out outcome
	// The fence is held until the outcome is committed: an executor that was about to begin
	// waits for it, then finds the request settled (stillRunning) and stops.
	err := e.ledgerUnderFence(ctx, req.Target, id, false, func(led *LedgerRow, err error) error {
		switch {
		case err == nil:
			out = outcome{state: approval.Done, report: Report{
				Digest: led.Digest, Tables: led.Counts.Tables(), Rows: led.Counts.Total(), Reconciled: true,
			}}
		case errors.Is(err, pg.ErrNotFound):
			out = outcome{state: approval.Failed, errMsg: Interrupted, report: Report{Reason: Interrupted, Reconciled: true}}
		default:
			return err
		}
		return e.settle(ctx, req, out)
	})
	return out, err
}

// RunReconciler calls Reconcile now and then every interval until ctx is done, logging
// errors. It returns nil when ctx is done.
func (e *Executor) RunReconciler(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("exec.RunReconciler: interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Reconcile(ctx); err != nil && ctx.Err() == nil {
			e.log().ErrorContext(ctx, "reconciling running requests failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

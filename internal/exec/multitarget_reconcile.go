package exec

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// ResolvePrepared settles the prepared transactions Tombstone left in its targets (an
// executor that died between PREPARE TRANSACTION and COMMIT PREPARED): it commits those of a
// request whose recorded decision is "commit", which is written only once every target has
// prepared, and rolls back every other one, recording "rollback" first so that an executor
// that lost its console session cannot decide "commit" afterwards. A prepared transaction
// holds its locks until it is settled, so none may be left behind.
//
// A request an executor is working on (it holds the request's console lock) is skipped, and
// so is a target that cannot be reached; both are tried again on the next pass. It returns
// how many prepared transactions it settled.
func (e *Executor) ResolvePrepared(ctx context.Context) (settled int, err error) {
	defer pg.Wrap(&err, "exec.ResolvePrepared")
	byRequest := map[int64][]string{}
	var errs []error
	for _, t := range e.Config.TargetNames() {
		ids, err := e.preparedIn(ctx, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t, err))
			continue
		}
		for _, id := range ids {
			byRequest[id] = append(byRequest[id], t)
		}
	}
	ids := make([]int64, 0, len(byRequest))
	for id := range byRequest {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		n, err := e.resolveRequest(ctx, id, byRequest[id])
		settled += n
		if err != nil {
			errs = append(errs, fmt.Errorf("request %d: %w", id, err))
		}
	}
	return settled, errors.Join(errs...)
}

// preparedIn lists the requests with a prepared transaction of Tombstone's in target. Only
// transactions prepared in the target's own database under its own name count: several
// targets may share one server, and pg_prepared_xacts lists every database's.
func (e *Executor) preparedIn(ctx context.Context, target string) ([]int64, error) {
	db, err := e.Targets.DB(ctx, target)
	if err != nil {
		return nil, err
	}
	rows, err := db.Pool.Query(ctx, "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE 'tombstone-%'")
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			return nil, pg.Interpret(err)
		}
		if id, t, ok := parseGID(gid); ok && t == target {
			out = append(out, id)
		}
	}
	return out, pg.Interpret(rows.Err())
}

// resolveRequest settles request id's prepared transactions in targets by its decision.
func (e *Executor) resolveRequest(ctx context.Context, id int64, targets []string) (int, error) {
	conn, err := claim(ctx, e.DB.Pool, id)
	if err != nil || conn == nil {
		return 0, err // an executor is working on it
	}
	defer unclaim(ctx, conn, id)
	decision, err := e.decide(ctx, id, "rollback", targets)
	if err != nil {
		return 0, err
	}
	verb := "ROLLBACK PREPARED"
	if decision == "commit" {
		verb = "COMMIT PREPARED"
	}
	if err := e.finishPrepared(ctx, id, targets, verb); err != nil {
		return 0, err
	}
	e.log().InfoContext(ctx, "settled prepared transactions", "request_id", id, "decision", decision, "targets", targets)
	return len(targets), nil
}

// requestTargets lists the targets a request spans, from its frozen preview.
func requestTargets(req *approval.Request) []string {
	if req.Preview == nil || len(req.Preview.Targets) == 0 {
		return []string{req.Target}
	}
	out := make([]string, 0, len(req.Preview.Targets))
	for _, t := range req.Preview.Targets {
		out = append(out, t.Target)
	}
	return out
}

// reconcileMulti settles a running request that spans targets by their ledgers, holding
// every target's fence while it reads them and records the outcome: done when every target
// has its ledger row, partial when some do (it can be resumed), failed (Interrupted) when
// none does. errBusy means a transaction still holds a fence.
func (e *Executor) reconcileMulti(ctx context.Context, req *approval.Request, targets []string) (outcome, error) {
	var conns []*pgxpool.Conn
	defer func() {
		for _, c := range conns {
			if _, err := c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", fenceLock(req.ID)); err != nil {
				_ = c.Conn().Close(context.WithoutCancel(ctx))
			}
			c.Release()
		}
	}()
	ledgers := map[string]*LedgerRow{}
	for _, t := range targets {
		db, err := e.Targets.DB(ctx, t)
		if err != nil {
			return outcome{}, fmt.Errorf("target %s: %w", t, err)
		}
		c, err := db.Pool.Acquire(ctx)
		if err != nil {
			return outcome{}, fmt.Errorf("target %s: %w", t, pg.Interpret(err))
		}
		var got bool
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", fenceLock(req.ID)).Scan(&got); err != nil {
			c.Release()
			return outcome{}, fmt.Errorf("target %s: %w", t, pg.Interpret(err))
		}
		if !got {
			c.Release()
			return outcome{}, errBusy
		}
		conns = append(conns, c)
		led, err := ReadLedger(ctx, c, t, req.ID)
		switch {
		case err == nil:
			ledgers[t] = led
		case !errors.Is(err, pg.ErrNotFound):
			return outcome{}, fmt.Errorf("target %s: %w", t, err)
		}
	}
	all := Counts{}
	rep := Report{Digest: req.Digest, Reconciled: true}
	for _, t := range targets {
		tr := TargetResult{Target: t, State: TargetNotRun}
		if led := ledgers[t]; led != nil {
			tr.State, tr.Rows = TargetDone, led.Counts.Total()
			for k, v := range led.Counts {
				all[k] = v
			}
		}
		rep.Targets = append(rep.Targets, tr)
	}
	rep.Tables, rep.Rows = all.Tables(), all.Total()
	var out outcome
	switch len(ledgers) {
	case len(targets):
		out = outcome{state: approval.Done, report: rep}
	case 0:
		rep.Reason = Interrupted
		out = outcome{state: approval.Failed, errMsg: Interrupted, report: rep}
	default:
		rep.Reason = fmt.Sprintf("the execution was interrupted after %d of %d targets; resume to run the rest", len(ledgers), len(targets))
		out = outcome{state: approval.Partial, errMsg: rep.Reason, report: rep}
	}
	return out, e.settle(ctx, req, out)
}

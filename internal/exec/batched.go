package exec

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// ModeBatched marks the report of a request that ran in batches (execution: batched).
const ModeBatched = "batched"

// Phases of a batched run, in TargetStatus.Phase.
const (
	PhaseHiding     = "hiding the root"
	PhaseCollecting = "collecting the key sets"
	PhaseBatches    = "batches"
	PhaseFinishing  = "finishing"
)

// errPaused stops a batched run between batches: its request is no longer running (an admin
// paused it, or it was settled meanwhile).
var errPaused = errors.New("the request was paused")

// A batched run trades atomicity for short transactions. Its steps, each its own transaction
// on the target, each safe to repeat after a crash:
//
//  1. hide the root: set its tombstone column, or record it in tombstone.hidden_roots, and
//     write the tombstone.batch_runs row;
//  2. collect the approved key sets once, check them against the approved digest (drifted:
//     the root is shown again and nothing else happened), and store them in work tables in
//     the tombstone schema (tombstone.batch_steps lists them in the order they are applied);
//  3. apply them in batches of at most batch_rows keys, detach and tombstone first, then
//     deletes children before parents: each batch archives its rows, applies the action and
//     writes its tombstone.batch_checkpoints row in one short transaction, under
//     statement_timeout = max_batch_seconds, and shrinks the next batch when one runs long;
//  4. finish in one transaction: recompute the cascade under lock (rows that arrived under the
//     hidden root since the collection are applied too, unless they block), delete or
//     tombstone the root, write the ledger row and drop the work tables.
//
// The console request holds an executor's claim throughout; every batch transaction takes the
// request's fence and checks that the request is still running, so a pause takes effect after
// the batch in flight. A failure after step 1 pauses the request with the error (it cannot be
// undone by failing it); an interrupted run (the context ended) stays running, and the next Run
// of the request continues from its last checkpoint.
type batchRun struct {
	e      *Executor
	req    *approval.Request
	plan   *policy.Plan
	kind   *config.Kind
	target string
	db     *pg.DB
	prog   *progress

	hidden    string // how the root is hidden; "" before step 1
	collected bool
	steps     []batchStep
	done      map[int]batchDone // by step
	arrived   Counts            // rows that arrived under batches' rows, applied with them
	batches   int
	longest   time.Duration
	// collectTook is how long step 2 took (its transaction holds no row locks).
	collectTook time.Duration
	size        int // the next batch's size
	// rate estimate: rows applied and time spent on batches since this run began
	rateRows int64
	rateTime time.Duration
}

// batchStep is one collected key set.
type batchStep struct {
	Step    int
	Table   pg.Table
	Action  string
	Group   int
	Whole   bool
	Work    string
	Planned int64
	ts      *preview.TableSet
}

// batchDone is how far a step has got, from its checkpoints.
type batchDone struct {
	Seq     int64
	Rows    int64
	Missing int64
}

// isBatched reports whether req runs in batches: its kind says so, or a batched run of it has
// already begun in its target (the policy may have changed since; the run must be finished
// the way it began).
func (e *Executor) isBatched(ctx context.Context, req *approval.Request, plan *policy.Plan) bool {
	if req.Operation == approval.Restore {
		return false
	}
	if plan.Kind.Execution == config.ExecBatched {
		return true
	}
	begun, err := e.batchBegun(ctx, req.Target, req.ID)
	if err != nil {
		e.log().WarnContext(ctx, "could not look for a batched run", "request_id", req.ID, "err", err)
	}
	return begun
}

// batchBegun reports whether the target has a batch_runs row for request id.
func (e *Executor) batchBegun(ctx context.Context, target string, id int64) (bool, error) {
	if err := e.migrateTarget(ctx, target); err != nil {
		return false, err
	}
	db, err := e.Targets.DB(ctx, target)
	if err != nil {
		return false, fmt.Errorf("target %s: %w", target, err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM tombstone.batch_runs WHERE request_id = $1 AND target = $2", id, target).Scan(&n); err != nil {
		return false, pg.Interpret(err)
	}
	return n > 0, nil
}

// continuable returns request id when it is running with a batched run begun in its target and
// nobody working on it (the caller holds its claim): its executor stopped mid-run, and Run
// continues it from its last checkpoint. Otherwise it returns nil.
func (e *Executor) continuable(ctx context.Context, id int64) (*approval.Request, error) {
	req, err := approval.Get(ctx, e.DB.Bun, id)
	if err != nil {
		return nil, err
	}
	if req.State != approval.Running || req.Operation == approval.Restore {
		return nil, nil
	}
	begun, err := e.batchBegun(ctx, req.Target, id)
	if err != nil || !begun {
		return nil, err
	}
	return req, nil
}

// reconcileBatched handles a running request nobody works on whose batched run has begun and
// not finished: it pauses it with an explanation (it cannot be failed: part of it is done)
// and reports true. It reports false for any other request, which is settled the usual way.
func (e *Executor) reconcileBatched(ctx context.Context, req *approval.Request) (bool, error) {
	if req.Operation == approval.Restore || len(requestTargets(req)) > 1 {
		return false, nil
	}
	begun, err := e.batchBegun(ctx, req.Target, req.ID)
	if err != nil || !begun {
		return false, err
	}
	paused := false
	err = e.ledgerUnderFence(ctx, req.Target, req.ID, false, func(_ *LedgerRow, err error) error {
		switch {
		case err == nil:
			return nil // finished: the ledger settles it
		case !errors.Is(err, pg.ErrNotFound):
			return err
		}
		paused = true
		return approval.PauseRun(ctx, e.DB.Bun, req.ID, "the executor stopped in the middle of the batched run; resume it to continue from its last checkpoint")
	})
	return paused, err
}

// ignoreBusy drops errBusy: a request whose fence is held is left for the next pass.
func ignoreBusy(err error) error {
	if errors.Is(err, errBusy) {
		return nil
	}
	return err
}

// executeBatched runs or continues req in batches and says how it ended: done, drifted or
// failed (nothing changed), or paused (between batches; the request is paused or, when ctx
// ended, still running).
func (e *Executor) executeBatched(ctx context.Context, req *approval.Request, plan *policy.Plan) outcome {
	b := &batchRun{e: e, req: req, plan: plan, kind: plan.Kind, target: req.Target, done: map[int]batchDone{}, arrived: Counts{}}
	b.size = b.maxRows()
	if err := e.migrateTarget(ctx, req.Target); err != nil {
		return failed(err, 0)
	}
	db, err := e.Targets.DB(ctx, req.Target)
	if err != nil {
		return failed(fmt.Errorf("target %s: %w", req.Target, err), 0)
	}
	b.db = db
	if led, err := ReadLedger(ctx, db.Pool, req.Target, req.ID); err == nil {
		// The final transaction committed, and its answer was lost.
		return outcome{state: approval.Done, report: Report{Digest: led.Digest, Tables: led.Counts.Tables(), Rows: led.Counts.Total(), Mode: ModeBatched}}
	} else if !errors.Is(err, pg.ErrNotFound) {
		return b.stopped(ctx, err)
	}
	if err := b.load(ctx); err != nil {
		return b.stopped(ctx, err)
	}
	if b.hidden == "" {
		// Nothing has happened yet: every check may still refuse the request.
		if o := b.check(); o != nil {
			return *o
		}
	} else if plan.PolicyHash != req.PolicyHash || plan.Fingerprints[req.Target] != req.Fingerprints[req.Target] {
		return b.pause(ctx, errors.New("the policy or the target's schema changed in the middle of the batched run; restore the policy it was approved under, then resume it"))
	}
	b.prog = e.newProgress(req.ID, req.Target, req.Preview.Summary)
	b.prog.status.Batched = true
	out := b.run(ctx)
	return out
}

// check refuses a request that cannot run in batches, before anything changes.
func (b *batchRun) check() *outcome {
	req, plan := b.req, b.plan
	if plan.PolicyHash != req.PolicyHash {
		o := drifted(Report{Reason: "the policy changed since the request was approved", Mode: ModeBatched})
		return &o
	}
	for t, fp := range plan.Fingerprints {
		if req.Fingerprints[t] != fp {
			o := drifted(Report{Reason: fmt.Sprintf("the schema of target %s changed since the request was approved", t), Mode: ModeBatched})
			return &o
		}
	}
	if req.Preview == nil {
		o := failed(errors.New("the request has no frozen preview"), 0)
		return &o
	}
	if len(plan.Targets) > 1 || plan.Targets[0] != req.Target {
		o := failed(fmt.Errorf("kind %s spans targets %v: batched execution runs kinds of one target only; run it with execution: single", plan.Kind.Name, plan.Targets), 0)
		return &o
	}
	for _, n := range plan.Nodes {
		switch n.Action {
		case config.ActionDelete, config.ActionSoft, config.ActionDetach:
			if len(n.Table.PrimaryKey) == 0 {
				o := failed(fmt.Errorf("%s has no primary key: batched execution needs one on every table it changes (row addresses move between batches); run kind %s with execution: single", n.Table.Name, plan.Kind.Name), 0)
				return &o
			}
		}
	}
	return nil
}

func (b *batchRun) maxRows() int {
	if b.kind.BatchRows > 0 {
		return b.kind.BatchRows
	}
	return config.DefaultBatchRows
}

func (b *batchRun) maxTime() time.Duration {
	if d := time.Duration(b.kind.MaxBatchSeconds); d > 0 {
		return d
	}
	return config.DefaultMaxBatchTime
}

// run does the steps that are left.
func (b *batchRun) run(ctx context.Context) outcome {
	if b.hidden == "" {
		b.prog.phase(ctx, PhaseHiding, true)
		err := b.hide(ctx)
		var drift *DriftError
		switch {
		case errors.As(err, &drift):
			return drifted(Report{Reason: "the root is gone", Changes: drift.Changes, Mode: ModeBatched})
		case err != nil:
			return failed(fmt.Errorf("hide the root: %w", err), 1)
		}
	}
	if !b.collected {
		b.prog.phase(ctx, PhaseCollecting, true)
		err := b.collect(ctx)
		var drift *DriftError
		if errors.As(err, &drift) {
			if uerr := b.unhide(ctx); uerr != nil {
				return b.pause(ctx, fmt.Errorf("the cascade changed since the approval (%v), and showing the root again failed: %w", drift, uerr))
			}
			return drifted(Report{Reason: drift.Error(), Changes: drift.Changes, Mode: ModeBatched})
		}
		if err != nil {
			return b.stopped(ctx, fmt.Errorf("collect the key sets: %w", err))
		}
	}
	b.progressFromCheckpoints()
	b.prog.phase(ctx, PhaseBatches, true)
	for i := range b.steps {
		if err := b.applyStep(ctx, &b.steps[i]); err != nil {
			return b.stopped(ctx, err)
		}
	}
	b.prog.phase(ctx, PhaseFinishing, true)
	rep, err := b.finish(ctx)
	if err != nil {
		return b.stopped(ctx, fmt.Errorf("finish: %w", err))
	}
	b.prog.phase(ctx, PhaseCommitted, true)
	return outcome{state: approval.Done, report: *rep}
}

// stopped ends a run that met err after the root was hidden: a pause by an admin, an ended
// context (the request stays running for the next Run), or a failure (the request is paused
// with it).
func (b *batchRun) stopped(ctx context.Context, err error) outcome {
	switch {
	case errors.Is(err, errPaused):
		return outcome{state: approval.Paused, errMsg: err.Error()}
	case ctx.Err() != nil:
		return outcome{state: approval.Paused, errMsg: "interrupted: " + err.Error()}
	}
	return b.pause(ctx, err)
}

// pause moves the request to paused with err, for an admin to resume once its cause is fixed.
func (b *batchRun) pause(ctx context.Context, err error) outcome {
	msg := readable(err)
	b.e.log().ErrorContext(ctx, "batched run paused by a failure", "request_id", b.req.ID, "err", err)
	if perr := approval.PauseRun(context.WithoutCancel(ctx), b.e.DB.Bun, b.req.ID, msg); perr != nil {
		b.e.log().ErrorContext(ctx, "could not pause the batched run; the reconciler will", "request_id", b.req.ID, "err", perr)
	}
	return outcome{state: approval.Paused, errMsg: msg}
}

// begin opens a target transaction with the request's fence taken and its state checked, and
// with statement_timeout (and lock_timeout, at most as long) set to limit.
func (b *batchRun) begin(ctx context.Context, limit time.Duration) (pgx.Tx, error) {
	tx, err := b.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("target %s: begin: %w", b.target, pg.Interpret(err))
	}
	lock := b.e.Config.Targets[b.target].LockTimeout
	if lock <= 0 || lock > limit {
		lock = limit
	}
	_, err = tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
		set_config('application_name', $3, true)`, millis(lock), millis(limit), fmt.Sprintf("tombstone request %d", b.req.ID))
	if err == nil {
		_, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", fenceLock(b.req.ID))
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("target %s: %w", b.target, pg.Interpret(err))
	}
	if err := b.e.stillRunning(ctx, b.req.ID); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if errors.Is(err, errNotRunning) {
			return nil, fmt.Errorf("%w: %w", errPaused, err)
		}
		return nil, err
	}
	return tx, nil
}

// statementLimit is the statement_timeout of the steps that are not batches: the target's.
func (b *batchRun) statementLimit() time.Duration {
	if d := b.e.Config.Targets[b.target].StatementTimeout; d > 0 {
		return d
	}
	return 10 * time.Minute
}

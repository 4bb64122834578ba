package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// errNotRunning stops a target transaction whose request was settled by the reconciler (or
// anyone else) meanwhile: it must not delete anything.
var errNotRunning = errors.New("the request is no longer running")

// Observer is told what executions do, for metrics. Its methods must be quick and safe for
// concurrent use.
type Observer interface {
	// Finished is called once per execution that reached an outcome (done, failed, drifted),
	// with how long it ran.
	Finished(outcome approval.State, took time.Duration)
	// Affected is called for each committed (target, action) with the rows it changed.
	Affected(target, action string, rows int64)
}

// Executor runs approved requests: one READ COMMITTED transaction per target, settled in the
// console database afterwards. It is safe for concurrent use; any number of executors, in
// any number of processes, may be given the same request: exactly one runs it.
//
// Exactly-once rests on three things. The approved → running transition (approval.Start) is
// conditional, so only one executor gets past it. While an executor works on a request it holds
// a session advisory lock on the request in the console database, which tells the reconciler
// the request is alive. And inside the target transaction it takes a transaction advisory lock
// on the request (the fence) and then checks that the request is still running, so a request
// the reconciler has settled can never be executed afterwards.
type Executor struct {
	Config *config.Config
	// DB is the console database.
	DB *pg.DB
	// Targets opens the target databases; *pg.Pools fits.
	Targets  preview.Targets
	Engine   *preview.Engine
	Approval *approval.Service
	// Logger may be nil (slog.Default()).
	Logger *slog.Logger
	// Observer may be nil.
	Observer Observer
	// Retries bounds the retries of a target transaction that hit a lock timeout (55P03), a
	// deadlock (40P01) or a serialization failure (40001): 0 means 3. Backoff is the first
	// wait (0 means 1s), doubled before each further retry.
	Retries int
	Backoff time.Duration
	// ProgressEvery is the least time between two progress writes; 0 means 500ms.
	ProgressEvery time.Duration

	migrated sync.Map // target name → true once its tombstone schema is up to date
	hooks    hooks
}

// hooks are fault-injection points for tests.
type hooks struct {
	// beforeCommit runs when the target transaction has done everything but commit.
	beforeCommit func(ctx context.Context, tx pgx.Tx)
	// afterCommit may replace the outcome of COMMIT as the executor sees it.
	afterCommit func(err error) error
	// beforePrepare runs before a target's PREPARE TRANSACTION (two-phase commit).
	beforePrepare func(ctx context.Context, target string, tx pgx.Tx)
	// prepared runs once every target is prepared, before the decision is recorded; decided
	// once the commit decision is durable, before COMMIT PREPARED. An error from either
	// makes the executor stop there as if it had died, leaving the prepared transactions.
	prepared func() error
	decided  func() error
	// afterBatch runs after each committed batch of a batched run, with the batches so far.
	afterBatch func(batches int)
}

func (e *Executor) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

func (e *Executor) retries() int {
	if e.Retries > 0 {
		return e.Retries
	}
	return 3
}

func (e *Executor) backoff() time.Duration {
	if e.Backoff > 0 {
		return e.Backoff
	}
	return time.Second
}

// Lock keys. Advisory locks share one 64-bit space per database; these carry "tomb" and
// "tmbf" in their high 32 bits and the request id in the low 32.
const (
	requestLockBase int64 = 0x746f6d62 << 32 // console: an executor is working on the request
	fenceLockBase   int64 = 0x746d6266 << 32 // target: a transaction may execute the request
)

func requestLock(id int64) int64 { return requestLockBase | (id & 0xffffffff) }
func fenceLock(id int64) int64   { return fenceLockBase | (id & 0xffffffff) }

// claim takes the console session lock on request id on a connection of its own and returns
// that connection, or nil when another executor or the reconciler holds it. The lock goes
// with the connection: if this process dies, the reconciler may settle the request.
func claim(ctx context.Context, pool *pgxpool.Pool, id int64) (*pgxpool.Conn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", requestLock(id)).Scan(&got); err != nil {
		conn.Release()
		return nil, pg.Interpret(err)
	}
	if !got {
		conn.Release()
		return nil, nil
	}
	return conn, nil
}

// unclaim releases the lock claim took, and the connection. A connection whose unlock fails
// is closed, which releases the lock too.
func unclaim(ctx context.Context, conn *pgxpool.Conn, id int64) {
	if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", requestLock(id)); err != nil {
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	conn.Release()
}

// Run executes approved request id, if it is still approved, and records the outcome.
//
// It returns nil when the request was not approved (a duplicate job, or it was decided
// otherwise), when an approver lost the role (approval.Start failed it), and when the request
// reached an outcome: done, drifted or failed, each with its audit event. It returns an error
// when the outcome could not be recorded, or the request could not be started; a request left
// running is then settled by the reconciler from the target's ledger.
func (e *Executor) Run(ctx context.Context, id int64) (err error) {
	defer pg.Wrap(&err, "exec.Run(%d)", id)
	conn, err := claim(ctx, e.DB.Pool, id)
	if err != nil {
		return err
	}
	if conn == nil {
		e.log().DebugContext(ctx, "request is being worked on elsewhere", "request_id", id)
		return nil
	}
	defer unclaim(ctx, conn, id)

	var (
		req     *approval.Request
		revoked bool
	)
	err = e.DB.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		r, err := e.Approval.Start(ctx, tx, id)
		switch {
		case errors.Is(err, approval.ErrApprovalRevoked):
			revoked = true
			return nil
		case err != nil:
			return err
		}
		req = r
		_, err = audit.Append(ctx, tx, requestEvent(r, audit.ActionExecutionStarted, nil))
		return err
	})
	switch {
	case errors.Is(err, approval.ErrNotApproved):
		// A batched run whose executor stopped mid-run continues from its last checkpoint.
		if req, err = e.continuable(ctx, id); err != nil || req == nil {
			e.log().DebugContext(ctx, "request is not approved; nothing to run", "request_id", id, "err", err)
			return err
		}
	case err != nil:
		return err
	case revoked:
		e.log().WarnContext(ctx, "request not run: an approval no longer counts", "request_id", id)
		if e.Observer != nil {
			e.Observer.Finished(approval.Failed, 0)
		}
		return nil
	}
	e.log().InfoContext(ctx, "executing request", "request_id", id, "kind", req.Kind, "target", req.Target, "root", req.RootKey)
	faultpoint(FaultClaimed, id)
	started := time.Now()
	out := e.execute(ctx, req)
	if out.state == approval.Paused {
		// A batched run stopped between batches; an ended ctx makes the job run it again.
		e.log().InfoContext(ctx, "batched run stopped", "request_id", id, "reason", out.errMsg)
		return ctx.Err()
	}
	if err := e.settle(context.WithoutCancel(ctx), req, out); err != nil {
		e.log().ErrorContext(ctx, "could not record the outcome; the reconciler will settle it",
			"request_id", id, "outcome", out.state, "err", err)
		return err
	}
	if e.Observer != nil {
		e.Observer.Finished(out.state, time.Since(started))
		if out.state == approval.Done {
			for _, tc := range out.report.Tables {
				e.Observer.Affected(tc.Target, tc.Action, tc.Rows)
			}
		}
	}
	e.log().InfoContext(ctx, "request finished", "request_id", id, "outcome", out.state, "took", time.Since(started), "err", out.errMsg)
	return nil
}

// outcome is how an execution ended.
type outcome struct {
	state  approval.State
	report Report
	errMsg string
}

func failed(err error, attempts int) outcome {
	return outcome{state: approval.Failed, errMsg: readable(err), report: Report{Attempts: attempts}}
}

// execute runs the request's target transaction, with retries, and says how it ended. It
// never leaves a target transaction open.
func (e *Executor) execute(ctx context.Context, req *approval.Request) outcome {
	if req.Operation == approval.Restore {
		return e.executeRestore(ctx, req)
	}
	plan, err := e.Engine.Plan(ctx, req.Kind)
	if err != nil {
		return failed(fmt.Errorf("resolve the plan: %w", err), 0)
	}
	if e.isBatched(ctx, req, plan) {
		return e.executeBatched(ctx, req, plan)
	}
	if plan.PolicyHash != req.PolicyHash {
		return drifted(Report{Reason: "the policy changed since the request was approved"})
	}
	for t, fp := range plan.Fingerprints {
		if req.Fingerprints[t] != fp {
			return drifted(Report{Reason: fmt.Sprintf("the schema of target %s changed since the request was approved", t)})
		}
	}
	if req.Preview == nil {
		return failed(errors.New("the request has no frozen preview"), 0)
	}
	if len(plan.Targets) > 1 || plan.Targets[0] != req.Target {
		return e.executeMulti(ctx, req, plan)
	}
	if err := e.migrateTarget(ctx, req.Target); err != nil {
		return failed(err, 0)
	}
	p := Plan{
		RequestID: req.ID, Plan: plan, RootKey: req.RootKeys,
		Digest: req.Digest, Approved: req.Preview.Summary,
	}
	if a := time.Duration(plan.Kind.Archive); a > 0 {
		p.ArchiveUntil = time.Now().Add(a)
	}
	return e.retrying(ctx, req, "target transaction", "", func(attempt int) (*outcome, error) {
		prog := e.newProgress(req.ID, req.Target, req.Preview.Summary)
		p.Progress = prog.step
		res, err := e.attempt(ctx, req, p, prog)
		var commitErr *commitError
		switch {
		case err == nil:
			return &outcome{state: approval.Done, report: Report{
				Digest: res.Digest, Tables: res.Counts.Tables(), Rows: res.Counts.Total(), Attempts: attempt,
			}}, nil
		case errors.As(err, &commitErr):
			// COMMIT's answer was lost: only the target knows whether it happened.
			o := e.decideFromLedger(ctx, req, attempt, commitErr)
			return &o, nil
		}
		return nil, err
	})
}

// retrying runs try until it settles the request. try returns an outcome, or an error for the
// common cases: a drift ends the request drifted (its report marked with mode); lock
// timeouts, deadlocks and serialization failures are retried up to e.retries() times with
// doubling waits; anything else fails it.
func (e *Executor) retrying(ctx context.Context, req *approval.Request, what, mode string, try func(attempt int) (*outcome, error)) outcome {
	wait := e.backoff()
	for attempt := 1; ; attempt++ {
		out, err := try(attempt)
		switch {
		case err == nil:
			return *out
		case errors.Is(err, ErrDrifted):
			var d *DriftError
			errors.As(err, &d)
			r := Report{Attempts: attempt, Reason: err.Error(), Mode: mode}
			if d != nil {
				r.Changes = d.Changes
			}
			return drifted(r)
		case retryable(err) && attempt <= e.retries() && ctx.Err() == nil:
			e.log().WarnContext(ctx, what+" will be retried", "request_id", req.ID, "attempt", attempt, "wait", wait, "err", err)
			select {
			case <-ctx.Done():
				return failed(fmt.Errorf("%w (after %d attempts)", err, attempt), attempt)
			case <-time.After(wait):
			}
			wait *= 2
		case retryable(err):
			return failed(fmt.Errorf("gave up after %d attempts: %w", attempt, err), attempt)
		default:
			return failed(err, attempt)
		}
	}
}

func drifted(r Report) outcome {
	return outcome{state: approval.Drifted, report: r, errMsg: r.Reason}
}

// retryable reports a lock timeout, a deadlock or a serialization failure.
func retryable(err error) bool {
	switch pg.Code(err) {
	case "55P03", "40P01", "40001":
		return true
	}
	return false
}

// readable turns an error into the message shown on the request page and in the audit log.
func readable(err error) string {
	switch pg.Code(err) {
	case "55P03":
		return "could not lock the rows in time: another session holds a conflicting lock (" + err.Error() + ")"
	case "57014":
		return "a statement ran longer than the target's statement_timeout (" + err.Error() + ")"
	}
	return err.Error()
}

// migrateTarget creates or updates the target's tombstone schema once per process.
func (e *Executor) migrateTarget(ctx context.Context, target string) error {
	if _, ok := e.migrated.Load(target); ok {
		return nil
	}
	db, err := e.Targets.DB(ctx, target)
	if err != nil {
		return fmt.Errorf("target %s: %w", target, err)
	}
	if _, err := pg.Migrate(ctx, db.Bun, pg.TargetMigrations()); err != nil {
		return fmt.Errorf("target %s: create the tombstone schema: %w", target, err)
	}
	e.migrated.Store(target, true)
	return nil
}

// commitError is a COMMIT whose outcome is unknown: the connection was lost.
type commitError struct{ err error }

func (c *commitError) Error() string { return "commit: " + c.err.Error() }
func (c *commitError) Unwrap() error { return c.err }

// attempt runs one target transaction: session settings, the fence, ApplyTx, commit.
func (e *Executor) attempt(ctx context.Context, req *approval.Request, p Plan, prog *progress) (_ *Result, err error) {
	db, err := e.Targets.DB(ctx, req.Target)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", req.Target, err)
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("target %s: begin: %w", req.Target, pg.Interpret(err))
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	t := e.Config.Targets[req.Target]
	_, err = tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
		set_config('application_name', $3, true)`,
		millis(t.LockTimeout), millis(t.StatementTimeout), fmt.Sprintf("tombstone request %d", req.ID))
	if err != nil {
		return nil, fmt.Errorf("set the session limits: %w", pg.Interpret(err))
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", fenceLock(req.ID)); err != nil {
		return nil, fmt.Errorf("take the request's fence: %w", pg.Interpret(err))
	}
	if err := e.stillRunning(ctx, req.ID); err != nil {
		return nil, err
	}
	prog.phase(ctx, PhaseLocking, true)
	res, err := ApplyTx(ctx, tx, req.Target, p)
	if err != nil {
		return nil, err
	}
	faultpoint(FaultApplied, req.ID)
	if e.hooks.beforeCommit != nil {
		e.hooks.beforeCommit(ctx, tx)
	}
	err = tx.Commit(ctx)
	done = true
	if e.hooks.afterCommit != nil {
		err = e.hooks.afterCommit(err)
	}
	if err != nil {
		return res, &commitError{err: err}
	}
	prog.phase(ctx, PhaseCommitted, true)
	faultpoint(FaultCommitted, req.ID)
	return res, nil
}

// stillRunning reads the request's state in the console database. The target transaction
// holds the fence when it calls this, so a reconciler cannot settle the request between this
// check and the commit.
func (e *Executor) stillRunning(ctx context.Context, id int64) error {
	var state approval.State
	if err := e.DB.Pool.QueryRow(ctx, "SELECT state FROM requests WHERE id = $1", id).Scan(&state); err != nil {
		return fmt.Errorf("read the request's state: %w", pg.Interpret(err))
	}
	if state != approval.Running {
		return fmt.Errorf("%w (it is %s)", errNotRunning, state)
	}
	return nil
}

func millis(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// decideFromLedger settles a lost COMMIT: it waits for the fence (held until the lost
// transaction has ended on the server) and reads the ledger.
func (e *Executor) decideFromLedger(ctx context.Context, req *approval.Request, attempts int, cause error) outcome {
	ctx = context.WithoutCancel(ctx)
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var out outcome
	err := e.ledgerUnderFence(waitCtx, req.Target, req.ID, true, func(led *LedgerRow, err error) error {
		switch {
		case err == nil:
			out = outcome{state: approval.Done, report: Report{
				Digest: led.Digest, Tables: led.Counts.Tables(), Rows: led.Counts.Total(), Attempts: attempts,
			}}
		case errors.Is(err, pg.ErrNotFound):
			out = failed(fmt.Errorf("the connection to target %s was lost at commit and the transaction did not commit; nothing was changed: %w", req.Target, cause), attempts)
		default:
			return err
		}
		return nil
	})
	if err != nil {
		// Unknown: leave the request running; the reconciler decides later.
		return outcome{state: approval.Running, errMsg: fmt.Sprintf("commit outcome unknown: %v; reading the ledger: %v", cause, err)}
	}
	return out
}

// errBusy means the fence is held: a transaction may still be executing the request.
var errBusy = errors.New("a transaction holds the request's fence")

// ledgerUnderFence takes the request's fence in the target (waiting for it when wait, else
// failing with errBusy), reads the ledger row and calls then with it while still holding the
// fence, so that no transaction can execute the request until then returns. pg.ErrNotFound
// means no transaction executed the request, and none is executing it.
func (e *Executor) ledgerUnderFence(ctx context.Context, target string, id int64, wait bool, then func(*LedgerRow, error) error) error {
	db, err := e.Targets.DB(ctx, target)
	if err != nil {
		return fmt.Errorf("target %s: %w", target, err)
	}
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("target %s: %w", target, pg.Interpret(err))
	}
	defer conn.Release()
	if wait {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", fenceLock(id)); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			return fmt.Errorf("target %s: wait for the fence: %w", target, pg.Interpret(err))
		}
	} else {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", fenceLock(id)).Scan(&got); err != nil {
			return fmt.Errorf("target %s: %w", target, pg.Interpret(err))
		}
		if !got {
			return errBusy
		}
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", fenceLock(id)); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	return then(ReadLedger(ctx, conn, target, id))
}

// settle records an outcome in one console transaction: the request's final state and result,
// and its audit event. A done request gets its executed event only if it has none yet.
func (e *Executor) settle(ctx context.Context, req *approval.Request, out outcome) error {
	if out.state == approval.Running {
		return errors.New(out.errMsg)
	}
	result, err := json.Marshal(out.report)
	if err != nil {
		return err
	}
	return e.DB.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := e.Approval.Finish(ctx, tx, req.ID, out.state, result, out.errMsg); err != nil {
			return err
		}
		var ev audit.Event
		switch out.state {
		case approval.Done:
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM audit_events WHERE request_id = ? AND action = ?",
				req.ID, string(doneAction(req))).Scan(&n); err != nil {
				return pg.Interpret(err)
			}
			if n > 0 {
				return nil
			}
			tables := map[string]any{}
			targets := map[string]any{}
			for _, tc := range out.report.Tables {
				tables[tc.Target+" "+tc.Table+" "+tc.Action] = tc.Rows
				n, _ := targets[tc.Target].(int64)
				targets[tc.Target] = n + tc.Rows
			}
			details := map[string]any{
				"tables": tables, "rows": out.report.Rows, "digest": out.report.Digest,
				"attempts": int64(out.report.Attempts), "reconciled": out.report.Reconciled,
				"targets": targets,
			}
			if out.report.Mode != "" {
				details["mode"] = out.report.Mode
			}
			ev = requestEvent(req, doneAction(req), details)
		case approval.Drifted:
			changes := make([]any, 0, len(out.report.Changes))
			for _, c := range out.report.Changes {
				changes = append(changes, c.String())
			}
			ev = requestEvent(req, audit.ActionDrifted, map[string]any{"reason": out.errMsg, "changes": changes})
		case approval.Partial:
			targets := map[string]any{}
			for _, tr := range out.report.Targets {
				targets[tr.Target] = tr.State
			}
			ev = requestEvent(req, audit.ActionPaused, map[string]any{"error": out.errMsg, "targets": targets, "rows": out.report.Rows})
		default:
			ev = requestEvent(req, audit.ActionExecutionFailed, map[string]any{"error": out.errMsg, "attempts": int64(out.report.Attempts)})
		}
		_, err := audit.Append(ctx, tx, ev)
		return err
	})
}

// doneAction is the audit action of a finished request: executed, or restored for a restore.
func doneAction(req *approval.Request) audit.Action {
	if req.Operation == approval.Restore {
		return audit.ActionRestored
	}
	return audit.ActionExecuted
}

// requestEvent is a system event about req.
func requestEvent(req *approval.Request, action audit.Action, details map[string]any) audit.Event {
	id := req.ID
	if details == nil {
		details = map[string]any{}
	}
	if req.Operation == approval.Restore && req.RestoresRequestID != 0 {
		details["restores_request_id"] = req.RestoresRequestID
	}
	return audit.Event{
		ActorName: audit.SystemActor, Action: action, RequestID: &id,
		Kind: req.Kind, Target: req.Target, RootKey: req.RootKey, RootLabel: req.RootLabel,
		Reason: req.Reason, PlanDigest: req.Digest, PolicyHash: req.PolicyHash, Details: details,
	}
}

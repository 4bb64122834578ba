package exec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// The ways a request that spans targets is committed (Report.Mode).
const (
	// ModeAtomic prepares every target's transaction (PREPARE TRANSACTION), records the
	// decision in the console database, then commits them all (COMMIT PREPARED).
	ModeAtomic = "atomic"
	// ModeOrdered commits the targets one after the other, linked targets first and the
	// root's target last; a request that stops part-way is partial and can be resumed.
	ModeOrdered = "ordered"
)

// The states of a target in Report.Targets.
const (
	TargetDone    = "done"
	TargetFailed  = "failed"
	TargetNotRun  = "not run"
	TargetAborted = "rolled back"
)

// scratchSchema holds the sets of a transaction meant for two-phase commit (see
// preview.Options.ScratchSchema): the tombstone schema every target already has.
const scratchSchema = "tombstone"

// GID is the name of request id's prepared transaction in target.
func GID(id int64, target string) string { return fmt.Sprintf("tombstone-%d-%s", id, target) }

// parseGID splits a GID; ok is false for a name Tombstone did not make.
func parseGID(gid string) (id int64, target string, ok bool) {
	rest, found := strings.CutPrefix(gid, "tombstone-")
	if !found {
		return 0, "", false
	}
	num, target, found := strings.Cut(rest, "-")
	if !found || target == "" {
		return 0, "", false
	}
	if _, err := fmt.Sscan(num, &id); err != nil || fmt.Sprint(id) != num {
		return 0, "", false
	}
	return id, target, true
}

// CommitOrder is the order in which the targets of a plan commit: the linked service
// databases first, sorted, and the root's target last. The root (and with it the values
// every also link is found by) therefore survives until everything else is done, so a
// request that stopped part-way can still be resumed.
func CommitOrder(plan *policy.Plan) []string {
	root := plan.Root.Target
	var out []string
	for _, t := range plan.Targets {
		if t != root {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return append(out, root)
}

// SupportsPrepared reports whether a target allows prepared transactions
// (max_prepared_transactions > 0).
func SupportsPrepared(ctx context.Context, q preview.Querier) (bool, error) {
	var n int
	if err := q.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
		return false, pg.Interpret(err)
	}
	return n > 0, nil
}

// TargetDigest is SHA-256 over one target's summary lines (table, action, rows and key hash,
// sorted): that target's share of a preview's digest. Summary lines need their key hashes, so
// only a freshly computed preview (not one decoded from JSON) gives the real digest.
func TargetDigest(summary []preview.SummaryLine, target string) string {
	var lines []string
	for _, l := range summary {
		if l.Target == target {
			b, _ := json.Marshal([]any{l.Table, l.Action, l.Rows, l.KeyHash})
			lines = append(lines, string(b))
		}
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(target + "\n" + strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

// TargetResult is one target's share of a request's outcome.
type TargetResult struct {
	Target string `json:"target"`
	// State is done, failed, not run or rolled back.
	State string `json:"state"`
	Rows  int64  `json:"rows"`
	// Earlier is true for a target finished by an earlier run of the request.
	Earlier bool   `json:"earlier,omitempty"`
	Error   string `json:"error,omitempty"`
}

// multiRun is one execution of a request across several targets.
type multiRun struct {
	e     *Executor
	req   *approval.Request
	plan  *policy.Plan
	order []string
	// finished maps the targets an earlier run committed to their ledger rows.
	finished map[string]*LedgerRow
	atomic   bool
	prog     *targetsProgress
}

// executeMulti runs a request whose kind spans targets. Every target is evaluated, locked
// and checked in its own READ COMMITTED transaction, all of them open at once, before
// anything commits anywhere; then either all are prepared and committed (ModeAtomic, when
// every target allows prepared transactions) or they commit in CommitOrder (ModeOrdered).
//
// A resumed request (it was partial) runs only the targets without a ledger row, checked
// against the per-target digests recorded when it first ran, always in ModeOrdered.
func (e *Executor) executeMulti(ctx context.Context, req *approval.Request, plan *policy.Plan) outcome {
	m := &multiRun{e: e, req: req, plan: plan, order: CommitOrder(plan), finished: map[string]*LedgerRow{}}
	for _, t := range m.order {
		if err := e.migrateTarget(ctx, t); err != nil {
			return failed(err, 0)
		}
	}
	m.atomic = true
	for _, t := range m.order {
		db, err := e.Targets.DB(ctx, t)
		if err != nil {
			return failed(fmt.Errorf("target %s: %w", t, err), 0)
		}
		led, err := ReadLedger(ctx, db.Pool, t, req.ID)
		switch {
		case err == nil:
			m.finished[t] = led
			m.atomic = false
		case !errors.Is(err, pg.ErrNotFound):
			return failed(fmt.Errorf("target %s: read the ledger: %w", t, err), 0)
		}
		ok, err := SupportsPrepared(ctx, db.Pool)
		if err != nil {
			return failed(fmt.Errorf("target %s: %w", t, err), 0)
		}
		m.atomic = m.atomic && ok
	}
	m.prog = e.newTargetsProgress(req.ID, m.order, req.Preview.Summary, m.finished)
	if len(m.finished) == len(m.order) {
		return m.outcome(nil, 0)
	}
	return e.retrying(ctx, req, "target transactions", m.mode(), func(attempt int) (*outcome, error) {
		if attempt > 1 {
			m.prog.reset()
		}
		res, err := m.attempt(ctx)
		var unsettled *unsettledError
		var prep *preparedError
		switch {
		case err == nil:
			o := m.outcome(res, attempt)
			return &o, nil
		case errors.As(err, &unsettled):
			// Prepared transactions are left behind: the reconciler settles them by the
			// recorded decision, and then the request by the targets' ledgers.
			return &outcome{state: approval.Running, errMsg: err.Error()}, nil
		case errors.As(err, &prep):
			o := failed(fmt.Errorf("%w; every target was rolled back, nothing was changed", err), attempt)
			o.report.Mode = ModeAtomic
			return &o, nil
		}
		return nil, err
	})
}

func (m *multiRun) mode() string {
	if m.atomic {
		return ModeAtomic
	}
	return ModeOrdered
}

// targetTx is one target's open transaction.
type targetTx struct {
	name string
	db   *pg.DB
	tx   pgx.Tx
	open bool
}

func (t *targetTx) rollback(ctx context.Context) {
	if t.open {
		_ = t.tx.Rollback(context.WithoutCancel(ctx))
		t.open = false
	}
}

// multiResult is how the commit phase of an attempt ended: which targets committed now,
// which failed, and why it stopped (nil when every target committed).
type multiResult struct {
	counts  map[string]Counts
	state   map[string]string
	errs    map[string]string
	stopped error
}

// attempt opens every target's transaction, evaluates and checks the whole cascade, applies
// each unfinished target's share, and commits. An error means nothing committed in this
// attempt; a commit phase that stopped part-way is reported in the multiResult.
func (m *multiRun) attempt(ctx context.Context) (_ *multiResult, err error) {
	e, req := m.e, m.req
	txs := map[string]*targetTx{}
	q := map[string]preview.Querier{}
	defer func() {
		for _, t := range txs {
			t.rollback(ctx)
		}
	}()
	// Open in plan order (the root's target first) so that locks are always taken in the
	// same order across targets.
	for _, name := range m.plan.Targets {
		t, err := e.beginTarget(ctx, req.ID, name)
		if err != nil {
			return nil, err
		}
		txs[name] = t
		q[name] = t.tx
	}
	if err := e.stillRunning(ctx, req.ID); err != nil {
		return nil, err
	}
	for _, t := range m.order {
		if m.finished[t] == nil {
			m.prog.phase(ctx, t, PhaseLocking, false)
		}
	}
	opts := preview.Options{Lock: true}
	if m.atomic {
		opts.ScratchSchema, opts.ScratchPrefix = scratchSchema, fmt.Sprintf("r%d_", req.ID)
	}
	sets, err := preview.EvaluateWith(ctx, q, m.plan, req.RootKeys, opts)
	if err != nil {
		if errors.Is(err, preview.ErrRootNotFound) {
			return nil, &DriftError{Approved: req.Digest, Changes: []Change{{Target: m.plan.Root.Target, Table: m.plan.Root.Table.Name.String(), Action: m.plan.Root.Action, Approved: 1}}}
		}
		return nil, err
	}
	pv, err := preview.Summarize(ctx, sets)
	if err != nil {
		return nil, err
	}
	if err := m.checkDrift(ctx, pv); err != nil {
		return nil, err
	}
	p := Plan{RequestID: req.ID, Plan: m.plan, RootKey: req.RootKeys, Digest: req.Digest, Approved: req.Preview.Summary, Progress: m.prog.step}
	if a := time.Duration(m.plan.Kind.Archive); a > 0 {
		p.ArchiveUntil = time.Now().Add(a)
	}
	res := &multiResult{counts: map[string]Counts{}, state: map[string]string{}, errs: map[string]string{}}
	for _, t := range m.order {
		if m.finished[t] != nil {
			continue
		}
		counts, err := applySets(ctx, txs[t].tx, t, p, sets)
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", t, err)
		}
		if err := writeLedger(ctx, txs[t].tx, t, req.ID, req.Digest, counts); err != nil {
			return nil, fmt.Errorf("target %s: %w", t, err)
		}
		res.counts[t] = counts
	}
	if m.atomic {
		// Scratch tables are ordinary tables: they must go before PREPARE.
		if err := sets.Drop(ctx); err != nil {
			return nil, err
		}
		return m.commitAtomic(ctx, txs, res)
	}
	return m.commitOrdered(ctx, txs, res), nil
}

// beginTarget opens a READ COMMITTED transaction on a target with the session limits and
// the request's fence taken.
func (e *Executor) beginTarget(ctx context.Context, id int64, name string) (*targetTx, error) {
	db, err := e.Targets.DB(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, fmt.Errorf("target %s: begin: %w", name, pg.Interpret(err))
	}
	t := &targetTx{name: name, db: db, tx: tx, open: true}
	cfg := e.Config.Targets[name]
	var lock, stmt time.Duration
	if cfg != nil {
		lock, stmt = cfg.LockTimeout, cfg.StatementTimeout
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
		set_config('application_name', $3, true)`, millis(lock), millis(stmt), fmt.Sprintf("tombstone request %d", id)); err != nil {
		t.rollback(ctx)
		return nil, fmt.Errorf("target %s: set the session limits: %w", name, pg.Interpret(err))
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", fenceLock(id)); err != nil {
		t.rollback(ctx)
		return nil, fmt.Errorf("target %s: take the request's fence: %w", name, pg.Interpret(err))
	}
	return t, nil
}

// checkDrift compares the recomputed cascade with what was approved, before anything
// commits. On the first run the whole digest must match; the per-target digests are then
// recorded, for a resumed run to check its unfinished targets against.
func (m *multiRun) checkDrift(ctx context.Context, pv *preview.Preview) error {
	req := m.req
	if len(m.finished) == 0 {
		if pv.Digest != req.Digest {
			return &DriftError{Approved: req.Digest, Current: pv.Digest, Changes: Diff(req.Preview.Summary, pv.Summary)}
		}
		for _, t := range m.order {
			if _, err := m.e.DB.Pool.Exec(ctx, `INSERT INTO execution_targets (request_id, target, digest) VALUES ($1, $2, $3)
				ON CONFLICT (request_id, target) DO NOTHING`, req.ID, t, TargetDigest(pv.Summary, t)); err != nil {
				return fmt.Errorf("record the verified target digests: %w", pg.Interpret(err))
			}
		}
		return nil
	}
	recorded := map[string]string{}
	rows, err := m.e.DB.Pool.Query(ctx, "SELECT target, digest FROM execution_targets WHERE request_id = $1", req.ID)
	if err != nil {
		return fmt.Errorf("read the verified target digests: %w", pg.Interpret(err))
	}
	for rows.Next() {
		var t, d string
		if err := rows.Scan(&t, &d); err != nil {
			rows.Close()
			return pg.Interpret(err)
		}
		recorded[t] = d
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return pg.Interpret(err)
	}
	for _, t := range m.order {
		if m.finished[t] != nil {
			continue
		}
		if d := TargetDigest(pv.Summary, t); recorded[t] != d {
			var approved, now []preview.SummaryLine
			for _, l := range req.Preview.Summary {
				if l.Target == t {
					approved = append(approved, l)
				}
			}
			for _, l := range pv.Summary {
				if l.Target == t {
					now = append(now, l)
				}
			}
			return &DriftError{Approved: req.Digest, Changes: Diff(approved, now)}
		}
	}
	return nil
}

// commitAtomic prepares every target, records the decision and commits the prepared
// transactions. A failed PREPARE rolls back every target (the prepared ones with ROLLBACK
// PREPARED) after recording "rollback", and fails the request: nothing changed anywhere.
func (m *multiRun) commitAtomic(ctx context.Context, txs map[string]*targetTx, res *multiResult) (*multiResult, error) {
	e, id := m.e, m.req.ID
	var prepared []string
	undo := func(cause error) (*multiResult, error) {
		ctx := context.WithoutCancel(ctx)
		for _, t := range txs {
			t.rollback(ctx)
		}
		if _, err := e.decide(ctx, id, "rollback", m.order); err != nil {
			e.log().ErrorContext(ctx, "could not record the rollback decision; the reconciler will roll back", "request_id", id, "err", err)
			return nil, &unsettledError{err: fmt.Errorf("%w; then recording the rollback: %v", cause, err)}
		}
		if err := e.finishPrepared(ctx, id, prepared, "ROLLBACK PREPARED"); err != nil {
			return nil, &unsettledError{err: fmt.Errorf("%w; then rolling back: %v", cause, err)}
		}
		for _, t := range prepared {
			m.prog.phase(ctx, t, PhaseWaiting, true)
		}
		return nil, &preparedError{err: cause}
	}
	for _, t := range m.order {
		tt := txs[t]
		if e.hooks.beforePrepare != nil {
			e.hooks.beforePrepare(ctx, t, tt.tx)
		}
		_, err := tt.tx.Exec(ctx, "PREPARE TRANSACTION "+pg.QuoteLiteral(GID(id, t)))
		// Whatever the answer, the session is out of the transaction now (or gone); the
		// rollback only tells pgx so.
		tt.rollback(ctx)
		if err != nil {
			return undo(fmt.Errorf("target %s: prepare: %w", t, pg.Interpret(err)))
		}
		prepared = append(prepared, t)
		m.prog.phase(ctx, t, PhasePrepared, true)
	}
	faultpoint(FaultPrepared, id)
	if e.hooks.prepared != nil {
		if err := e.hooks.prepared(); err != nil {
			return nil, &unsettledError{err: err}
		}
	}
	decision, err := e.decide(ctx, id, "commit", m.order)
	if err != nil {
		// The decision may or may not be durable: the reconciler reads it and settles.
		return nil, &unsettledError{err: fmt.Errorf("record the commit decision: %w", err)}
	}
	if decision != "commit" {
		return undo(errors.New("the reconciler rolled the prepared transactions back meanwhile"))
	}
	faultpoint(FaultDecided, id)
	if e.hooks.decided != nil {
		if err := e.hooks.decided(); err != nil {
			return nil, &unsettledError{err: err}
		}
	}
	if err := e.finishPrepared(ctx, id, m.order, "COMMIT PREPARED"); err != nil {
		return nil, &unsettledError{err: err}
	}
	for _, t := range m.order {
		res.state[t] = TargetDone
		m.prog.phase(ctx, t, PhaseCommitted, true)
	}
	return res, nil
}

// preparedError is a failed PREPARE whose targets were all rolled back: the request failed
// and nothing changed. It is never retried.
type preparedError struct{ err error }

func (p *preparedError) Error() string { return p.err.Error() }
func (p *preparedError) Unwrap() error { return p.err }

// unsettledError leaves prepared transactions for the reconciler: the request stays running.
type unsettledError struct{ err error }

func (u *unsettledError) Error() string { return "left for the reconciler: " + u.err.Error() }
func (u *unsettledError) Unwrap() error { return u.err }

// decide records the request's two-phase commit decision unless one exists, and returns the
// decision that stands.
func (e *Executor) decide(ctx context.Context, id int64, decision string, targets []string) (string, error) {
	var out string
	err := e.DB.Pool.QueryRow(ctx, `WITH ins AS (
			INSERT INTO execution_decisions (request_id, decision, targets) VALUES ($1, $2, $3)
			ON CONFLICT (request_id) DO NOTHING RETURNING decision)
		SELECT decision FROM ins UNION ALL SELECT decision FROM execution_decisions WHERE request_id = $1 LIMIT 1`,
		id, decision, targets).Scan(&out)
	if err != nil {
		return "", fmt.Errorf("record the decision %s: %w", decision, pg.Interpret(err))
	}
	return out, nil
}

// finishPrepared runs COMMIT PREPARED or ROLLBACK PREPARED for the request's transaction in
// each target, retrying a lost connection a few times. A transaction that no longer exists
// was finished already (by an earlier try or by the reconciler).
func (e *Executor) finishPrepared(ctx context.Context, id int64, targets []string, verb string) error {
	var errs []error
	for _, t := range targets {
		var err error
		for try := 0; try < 3; try++ {
			if err = finishOne(ctx, e.Targets, t, id, verb); err == nil || !errors.Is(err, pg.ErrUnavailable) {
				break
			}
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("target %s: %s: %w", t, verb, err))
		}
	}
	return errors.Join(errs...)
}

func finishOne(ctx context.Context, targets preview.Targets, target string, id int64, verb string) error {
	db, err := targets.DB(ctx, target)
	if err != nil {
		return err
	}
	_, err = db.Pool.Exec(ctx, verb+" "+pg.QuoteLiteral(GID(id, target)))
	if pg.Code(err) == "42704" { // undefined_object: no such prepared transaction
		return nil
	}
	return pg.Interpret(err)
}

// commitOrdered commits the targets one by one in CommitOrder and stops at the first that
// fails, rolling back the rest. A COMMIT whose answer was lost is settled from the target's
// ledger.
func (m *multiRun) commitOrdered(ctx context.Context, txs map[string]*targetTx, res *multiResult) *multiResult {
	e := m.e
	for i, t := range m.order {
		if m.finished[t] != nil {
			continue
		}
		tt := txs[t]
		faultpoint(FaultApplied, m.req.ID)
		if e.hooks.beforeCommit != nil {
			e.hooks.beforeCommit(ctx, tt.tx)
		}
		err := tt.tx.Commit(ctx)
		tt.open = false
		if e.hooks.afterCommit != nil {
			err = e.hooks.afterCommit(err)
		}
		var pgErr *pgconn.PgError
		if err != nil && !errors.As(err, &pgErr) {
			// The server's answer was lost: only the ledger knows.
			err = m.ledgerAfterLostCommit(ctx, t, err)
		}
		if err != nil {
			res.state[t] = TargetFailed
			res.errs[t] = readable(err)
			res.stopped = fmt.Errorf("target %s: commit: %w", t, pg.Interpret(err))
			delete(res.counts, t)
			m.prog.fail(ctx, t, readable(err))
			for _, rest := range m.order[i+1:] {
				if m.finished[rest] == nil {
					txs[rest].rollback(ctx)
					delete(res.counts, rest)
					m.prog.phase(ctx, rest, PhaseWaiting, true)
				}
			}
			return res
		}
		res.state[t] = TargetDone
		m.prog.phase(ctx, t, PhaseCommitted, true)
	}
	return res
}

// ledgerAfterLostCommit waits for the fence and reads the target's ledger: nil when the
// transaction committed, an error saying it did not otherwise.
func (m *multiRun) ledgerAfterLostCommit(ctx context.Context, target string, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	return m.e.ledgerUnderFence(ctx, target, m.req.ID, true, func(_ *LedgerRow, err error) error {
		switch {
		case err == nil:
			return nil
		case errors.Is(err, pg.ErrNotFound):
			return fmt.Errorf("the connection was lost at commit and the transaction did not commit: %w", cause)
		default:
			return fmt.Errorf("the connection was lost at commit (%v) and the ledger could not be read: %w", cause, err)
		}
	})
}

// outcome turns a finished attempt (nil when every target had finished earlier) into the
// request's outcome: done when every target is done, partial when some are, failed when none.
func (m *multiRun) outcome(res *multiResult, attempts int) outcome {
	rep := Report{Digest: m.req.Digest, Attempts: attempts, Mode: m.mode()}
	all := Counts{}
	done := 0
	var stopped []string
	for _, t := range m.order {
		tr := TargetResult{Target: t, State: TargetNotRun}
		var counts Counts
		switch {
		case m.finished[t] != nil:
			tr.State, tr.Earlier, counts = TargetDone, true, m.finished[t].Counts
		case res != nil && res.state[t] == TargetDone:
			tr.State, counts = TargetDone, res.counts[t]
		case res != nil && res.state[t] == TargetFailed:
			tr.State, tr.Error = TargetFailed, res.errs[t]
			stopped = append(stopped, t+": "+res.errs[t])
		}
		if tr.State == TargetDone {
			done++
			for k, v := range counts {
				all[k] = v
			}
			tr.Rows = counts.Total()
		}
		rep.Targets = append(rep.Targets, tr)
	}
	rep.Tables, rep.Rows = all.Tables(), all.Total()
	switch {
	case done == len(m.order):
		return outcome{state: approval.Done, report: rep}
	case done > 0:
		msg := fmt.Sprintf("stopped after %d of %d targets (%s); resume to run the rest", done, len(m.order), strings.Join(stopped, "; "))
		rep.Reason = msg
		return outcome{state: approval.Partial, report: rep, errMsg: msg}
	default:
		msg := "no target committed; nothing was changed: " + strings.Join(stopped, "; ")
		rep.Reason = msg
		return outcome{state: approval.Failed, report: rep, errMsg: msg}
	}
}

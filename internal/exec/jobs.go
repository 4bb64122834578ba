package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// ExecuteArgs is the job that runs one approved request. Its args are the unique key: while a
// job for a request is waiting or running, enqueueing it again does nothing.
type ExecuteArgs struct {
	RequestID int64 `json:"request_id"`
}

// Kind is the job's River kind.
func (ExecuteArgs) Kind() string { return "tombstone_execute" }

// InsertOpts makes the job unique per request among jobs that have not finished. A finished
// job does not block a new one: the request's state (approval.Start) decides whether it runs.
func (ExecuteArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: 5,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
			rivertype.JobStateRetryable, rivertype.JobStateScheduled,
		}},
	}
}

type executeWorker struct {
	river.WorkerDefaults[ExecuteArgs]
	exec *Executor
}

// Timeout is unlimited: the target's statement_timeout bounds each statement instead.
func (w *executeWorker) Timeout(*river.Job[ExecuteArgs]) time.Duration { return -1 }

func (w *executeWorker) Work(ctx context.Context, job *river.Job[ExecuteArgs]) error {
	return w.exec.Run(ctx, job.Args.RequestID)
}

// MigrateJobs creates or updates River's tables in the console database. It is idempotent and
// safe to run from several processes at once (River takes its own lock).
func MigrateJobs(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) (err error) {
	defer pg.Wrap(&err, "exec.MigrateJobs")
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return err
	}
	_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	return err
}

// JobOptions configure Jobs.
type JobOptions struct {
	// Workers is the number of requests executed at once by this process; 0 means 2. With
	// Workers < 0 the client only enqueues (a web server that leaves execution to
	// `console worker`).
	Workers int
	Logger  *slog.Logger
}

// Jobs is the River client on the console database that runs ExecuteArgs jobs with an
// Executor. It implements Enqueuer.
type Jobs struct {
	client *river.Client[pgx.Tx]
	exec   *Executor
	log    *slog.Logger
}

// Enqueuer queues the execution of an approved request. The web layer calls Enqueue after the
// approving transaction has committed (never inside it: the approved request row is the
// durable intent, and the sweeper enqueues any approved request that has no job).
type Enqueuer interface {
	Enqueue(ctx context.Context, requestID int64) error
}

// NewJobs returns a River client over the executor's console pool. MigrateJobs must have run.
func NewJobs(e *Executor, opts JobOptions) (*Jobs, error) {
	log := opts.Logger
	if log == nil {
		log = e.log()
	}
	cfg := &river.Config{
		Logger:        log,
		JobTimeout:    -1,
		MaxAttempts:   5,
		FetchCooldown: 100 * time.Millisecond,
	}
	if opts.Workers >= 0 {
		n := opts.Workers
		if n == 0 {
			n = 2
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, &executeWorker{exec: e})
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}}
	}
	client, err := river.NewClient(riverpgxv5.New(e.DB.Pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("exec.NewJobs: %w", err)
	}
	return &Jobs{client: client, exec: e, log: log}, nil
}

// Start starts working jobs (a no-op for an enqueue-only client). Stop it with Stop.
func (j *Jobs) Start(ctx context.Context) error {
	if err := j.client.Start(ctx); err != nil {
		return fmt.Errorf("exec.Jobs.Start: %w", err)
	}
	return nil
}

// Stop waits for running jobs to finish until ctx ends, then cancels them (their target
// transactions roll back, and the requests fail as interrupted).
func (j *Jobs) Stop(ctx context.Context) error {
	err := j.client.Stop(ctx)
	if err != nil && errors.Is(err, ctx.Err()) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = j.client.StopAndCancel(cctx)
	}
	if err != nil {
		return fmt.Errorf("exec.Jobs.Stop: %w", err)
	}
	return nil
}

// Enqueue queues the execution of request id. Queuing a request that already has a waiting
// or running job does nothing, and so does running a job for a request that is not approved.
func (j *Jobs) Enqueue(ctx context.Context, id int64) error {
	if _, err := j.client.Insert(ctx, ExecuteArgs{RequestID: id}, nil); err != nil {
		return fmt.Errorf("exec.Enqueue(%d): %w", id, err)
	}
	return nil
}

// Sweep enqueues every approved request, every partial request someone resumed (its
// latest "resumed" audit event is newer than its latest "paused" one; see Resume), and every
// running batched request resumed since it was last paused (approval.Resume; the job
// continues it from its checkpoint, and a duplicate finds it claimed or done), and returns
// how many were newly queued (a job that already waits is not duplicated). It covers
// approvals whose enqueue was lost (a crash after the approving commit) and jobs River gave
// up on.
func (j *Jobs) Sweep(ctx context.Context) (queued int, err error) {
	defer pg.Wrap(&err, "exec.Sweep")
	var ids []int64
	if err := j.exec.DB.Bun.NewRaw(`SELECT id FROM requests r WHERE state = 'approved'
		OR (state = 'partial' AND (SELECT max(seq) FROM audit_events a WHERE a.request_id = r.id AND a.action = 'resumed') >
			(SELECT max(seq) FROM audit_events a WHERE a.request_id = r.id AND a.action = 'paused'))
		OR (state = 'running' AND (SELECT max(seq) FROM audit_events a WHERE a.request_id = r.id AND a.action = 'resumed' AND a.details->>'batched' = 'true') >
			(SELECT max(seq) FROM audit_events a WHERE a.request_id = r.id AND a.action = 'paused'))
		ORDER BY id`).Scan(ctx, &ids); err != nil {
		return 0, pg.Interpret(err)
	}
	for _, id := range ids {
		res, err := j.client.Insert(ctx, ExecuteArgs{RequestID: id}, nil)
		if err != nil {
			return queued, err
		}
		if !res.UniqueSkippedAsDuplicate {
			queued++
		}
	}
	return queued, nil
}

// RunSweeper calls Sweep now and then every interval until ctx is done, logging errors. It
// returns nil when ctx is done.
func (j *Jobs) RunSweeper(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return errors.New("exec.RunSweeper: interval must be positive")
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := j.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			j.log.ErrorContext(ctx, "sweeping approved requests failed", "err", err)
		case n > 0:
			j.log.InfoContext(ctx, "queued approved requests", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

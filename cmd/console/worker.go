package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/metrics"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

func init() {
	register(command{name: "worker", summary: "run the job workers only (executions, reconciler, notifications), no web server", run: cmdWorker})
}

// Intervals of the background loops. The sweeper is short because it is what queues a request
// approved on the web (the approving transaction only records the approval).
const (
	sweepEvery     = 2 * time.Second
	reconcileEvery = 15 * time.Second
	expireEvery    = time.Minute
	deliverEvery   = 10 * time.Second
	sessionsEvery  = 10 * time.Minute
	// purgeEvery bounds how long an archive outlives its window.
	purgeEvery = 10 * time.Minute
)

// consolePoolSize leaves room for River (a listener and its producers), one claimed connection
// per running execution, and the web server.
const consolePoolSize = 20

func cmdWorker(ctx context.Context, args []string, env Env) error {
	fs := newFlags("worker", "worker [--config FILE] [--workers N]\n\n"+
		"Runs what console serve runs besides the web server: the execution jobs, the sweeper that\n"+
		"queues approved requests, the reconciler, the approval expirer, notification delivery,\n"+
		"session cleanup and audit checkpoints. Run any number of workers and servers against the\n"+
		"same console database: each request executes at most once.\n", env)
	cfgPath := configFlag(fs, env)
	workers := fs.Int("workers", 2, "requests executed at once by this process")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *workers < 1 {
		return &usageError{msg: "worker: --workers must be at least 1"}
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	db, targets, err := openRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	defer targets.Close()
	bg, err := startBackground(ctx, backgroundDeps{
		Config: cfg, DB: db, Targets: targets, Logger: log,
		Engine: sharedEngine(cfg, targets), Approval: approval.New(cfg), Workers: *workers, Sessions: true,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Tombstone worker running %d executor(s)\n", *workers)
	<-ctx.Done()
	log.Info("shutting down")
	return bg.stop(context.WithoutCancel(ctx))
}

// openRuntime opens and migrates the console database (exit 2 when unreachable) and prepares
// lazy target pools: a target that is down does not stop the start.
func openRuntime(ctx context.Context, cfg *config.Config, log *slog.Logger) (*pg.DB, *pg.Pools, error) {
	db, err := pg.Open(ctx, cfg.Database, pg.Options{ApplicationName: "tombstone console", MaxConns: consolePoolSize})
	if err != nil {
		return nil, nil, &ExitError{Code: 2, Err: fmt.Errorf("console database: %w", err)}
	}
	applied, err := pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations())
	if err != nil {
		db.Close()
		return nil, nil, &ExitError{Code: 2, Err: err}
	}
	for _, a := range applied {
		log.Info("applied migration", "name", a)
	}
	if err := exec.MigrateJobs(ctx, db.Pool, log); err != nil {
		db.Close()
		return nil, nil, &ExitError{Code: 2, Err: err}
	}
	dsns := map[string]string{}
	for name, t := range cfg.Targets {
		dsns[name] = t.DSN
	}
	return db, pg.NewPools(dsns, pg.Options{ApplicationName: "tombstone console", ConnectTimeout: 3 * time.Second}), nil
}

// backgroundDeps is what the background loops need.
type backgroundDeps struct {
	Config   *config.Config
	DB       *pg.DB
	Targets  *pg.Pools
	Logger   *slog.Logger
	Engine   *preview.Engine
	Approval *approval.Service
	// Metrics observes executions; nil observes nothing.
	Metrics *metrics.Metrics
	// Workers is the number of requests executed at once.
	Workers int
	// Sessions runs the session and sign-in throttle cleanup (serve does it in the web server).
	Sessions bool
}

// background is the running job client and loops; stop ends them.
type background struct {
	jobs   *exec.Jobs
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
}

// startBackground starts the River client with the execution workers, the sweeper, the
// reconciler, the approval expirer, notification delivery, audit checkpoints (when a signing
// key is configured) and, with d.Sessions, session cleanup.
func startBackground(ctx context.Context, d backgroundDeps) (*background, error) {
	sender, err := notify.NewSender(d.Config.Notify)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	e := &exec.Executor{
		Config: d.Config, DB: d.DB, Targets: d.Targets, Engine: d.Engine,
		Approval: d.Approval, Logger: d.Logger,
	}
	if d.Metrics != nil {
		e.Observer = d.Metrics
	}
	jobs, err := exec.NewJobs(e, exec.JobOptions{Workers: d.Workers, Logger: d.Logger})
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	if err := jobs.Start(ctx); err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	bg := &background{jobs: jobs, cancel: cancel, log: d.Logger}
	loop := func(name string, run func(context.Context) error) {
		bg.wg.Go(func() {
			if err := run(runCtx); err != nil {
				d.Logger.Error("background loop stopped", "loop", name, "err", err)
			}
		})
	}
	loop("sweeper", func(ctx context.Context) error { return jobs.RunSweeper(ctx, sweepEvery) })
	loop("reconciler", func(ctx context.Context) error { return e.RunReconciler(ctx, reconcileEvery) })
	loop("purger", func(ctx context.Context) error { return e.RunPurger(ctx, purgeEvery) })
	loop("expirer", func(ctx context.Context) error { return d.Approval.RunExpirer(ctx, d.DB.Bun, expireEvery, d.Logger) })
	loop("deliverer", func(ctx context.Context) error {
		return notify.RunDeliverer(ctx, d.DB.Bun, sender, deliverEvery, d.Logger)
	})
	if d.Config.Audit.SigningKey != "" {
		key, err := audit.ParseSigningKey(d.Config.Audit.SigningKey)
		if err != nil {
			_ = bg.stop(ctx)
			return nil, &ExitError{Code: 2, Err: fmt.Errorf("audit.signing_key: %w", err)}
		}
		loop("checkpoints", func(ctx context.Context) error {
			return audit.RunCheckpoints(ctx, d.DB.Bun, key, d.Config.Audit.CheckpointInterval, d.Logger)
		})
	}
	if d.Sessions {
		store := auth.NewSessionStore(d.DB.Bun, nil)
		authn := auth.NewAuthenticator(d.DB.Bun, auth.Limits{})
		loop("sessions", func(ctx context.Context) error {
			t := time.NewTicker(sessionsEvery)
			defer t.Stop()
			for {
				if _, err := store.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
					d.Logger.Warn("sweep sessions", "err", err)
				}
				if _, err := authn.ForgetFailures(ctx); err != nil && ctx.Err() == nil {
					d.Logger.Warn("sweep sign-in failures", "err", err)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		})
	}
	return bg, nil
}

// stop lets running executions finish for up to a minute (then cancels them: their target
// transactions roll back) and ends the loops.
func (bg *background) stop(ctx context.Context) error {
	stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := bg.jobs.Stop(stopCtx)
	bg.cancel()
	bg.wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

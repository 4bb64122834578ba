package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/metrics"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/internal/web"
)

func init() {
	register(command{name: "serve", summary: "run the web console", run: cmdServe})
}

// serveOptions are the flags of console serve that are not in the config file.
type serveOptions struct {
	// Listen overrides the config's listen address when set.
	Listen string
	// TLS marks the console as reached over HTTPS (e.g. behind a TLS-terminating proxy).
	TLS bool
	// CertFile and KeyFile make the console serve HTTPS itself.
	CertFile, KeyFile string
	// Web is extra wiring for the web server (e.g. a Finder); Config, DB, Targets and Logger
	// are filled in by serve.
	Web web.Deps
	// Ready, when set, is called with the bound address once the server accepts connections.
	Ready func(addr net.Addr)
}

func cmdServe(ctx context.Context, args []string, env Env) error {
	fs := newFlags("serve", "serve [--config FILE] [--listen ADDR] [--tls] [--tls-cert FILE --tls-key FILE]", env)
	cfgPath := configFlag(fs, env)
	listen := fs.String("listen", "", "address to listen on (default: the config's listen, else "+config.DefaultListen+")")
	tls := fs.Bool("tls", false, "the console is reached over HTTPS through a proxy: Secure cookies and HSTS (implied by an https base_url)")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate file")
	key := fs.String("tls-key", "", "private key of --tls-cert")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		return &usageError{msg: "serve: --tls-cert and --tls-key go together"}
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, serveOptions{Listen: *listen, TLS: *tls, CertFile: *cert, KeyFile: *key}, env)
}

// serve runs the console until ctx ends: it opens and migrates the console database and
// River's job tables (exit 2 when unreachable), prepares lazy connections to the targets (a
// target that is down does not stop the start; /readyz reports it), starts the background work
// that console worker also runs (executions, sweeper, reconciler, expirer, notifications,
// checkpoints), and serves the web application and /metrics with graceful shutdown. The demo
// command reuses it.
func serve(ctx context.Context, cfg *config.Config, opts serveOptions, env Env) error {
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	db, targets, err := openRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	defer targets.Close()

	deps := opts.Web
	deps.Config, deps.DB, deps.Targets, deps.Logger = cfg, db, targets, log
	deps.TLS = deps.TLS || opts.TLS || opts.CertFile != ""
	if deps.Engine == nil {
		deps.Engine = sharedEngine(cfg, targets)
	}
	if deps.Approval == nil {
		deps.Approval = approval.New(cfg)
	}
	srv, err := web.New(deps)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	m := metrics.New(db.Bun)
	bg, err := startBackground(ctx, backgroundDeps{
		Config: cfg, DB: db, Targets: targets, Logger: log,
		Engine: deps.Engine, Approval: deps.Approval, Metrics: m, Workers: 2,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := bg.stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stopping the background work", "err", err)
		}
	}()
	top := http.NewServeMux()
	top.Handle("GET /metrics", m.Handler())
	top.Handle("/", srv.Handler())

	addr := opts.Listen
	if addr == "" {
		addr = cfg.Listen
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("listen: %w", err)}
	}
	hs := &http.Server{
		Handler:           m.Instrument(top),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { srv.Sweep(runCtx, 10*time.Minute) })

	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	fmt.Fprintf(env.Stdout, "Tombstone console listening on %s://%s\n", scheme, ln.Addr())
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if opts.CertFile != "" {
			errc <- hs.ServeTLS(ln, opts.CertFile, opts.KeyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()

	select {
	case err = <-errc:
		stop()
		wg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err = hs.Shutdown(shutCtx)
	stop()
	wg.Wait()
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// sharedEngine is the preview engine over the targets, with a schema cache shared by every
// preview and execution of this process.
func sharedEngine(cfg *config.Config, targets *pg.Pools) *preview.Engine {
	return preview.NewEngine(cfg, targets, schema.NewCache(2*time.Second))
}

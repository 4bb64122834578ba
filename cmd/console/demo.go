package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/cluster"
	"github.com/tombstone-console/tombstone/internal/preview"
)

func init() {
	register(command{name: "demo", summary: "create the demo databases and users, and serve on :8080", run: cmdDemo})
}

// demoUsers are the demo accounts; their passwords are printed, never used anywhere else.
var demoUsers = []struct {
	name, display, email string
	role                 auth.Role
}{
	{"alice", "Alice Adams", "alice@example.com", auth.Requester},
	{"bob", "Bob Brown", "bob@example.com", auth.Approver},
	{"dana", "Dana Diaz", "dana@example.com", auth.Approver},
	{"carol", "Carol Chen", "carol@example.com", auth.Admin},
}

// DefaultAdminURL is the PostgreSQL server the demo uses when TOMBSTONE_DEMO_ADMIN_URL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func cmdDemo(ctx context.Context, args []string, env Env) error {
	fs := newFlags("demo", "demo [--admin-url URL] [--listen ADDR] [--scale F] [--seed N] [--big-tenant-rows N] [--config-out FILE] [--no-serve]", env)
	adminURL := fs.String("admin-url", firstNonEmpty(env.Getenv("TOMBSTONE_DEMO_ADMIN_URL"), DefaultAdminURL), "PostgreSQL maintenance database the demo creates its databases through (env TOMBSTONE_DEMO_ADMIN_URL); when nothing answers there, a private throwaway server is started if the PostgreSQL server binaries are installed (env TOMBSTONE_PG_BIN: the directory of initdb and pg_ctl)")
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	scale := fs.Float64("scale", 1, "demo data size: 1 is about 50 tenants and 100k rows")
	seed := fs.Int64("seed", 1, "seed of the deterministic generator")
	big := fs.Int64("big-tenant-rows", 0, "also create tenant bigco with about this many rows (for benchmarks)")
	noServe := fs.Bool("no-serve", false, "set up the demo and exit without serving")
	out := fs.String("config-out", "tombstone.demo.yaml", "where to write the demo's config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	server, err := demoServer(ctx, *adminURL, env)
	if err != nil {
		return err
	}
	defer server.Close(env)
	admin, serverURL := server.db, server.url

	fmt.Fprintf(env.Stdout, "Creating the demo databases on %s (scale %g, seed %d)…\n", admin.Addr, *scale, *seed)
	res, err := demo.Setup(ctx, demo.Options{AdminURL: serverURL, Seed: *seed, Scale: *scale, BigTenantRows: *big})
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("demo data: %w", err)}
	}
	fmt.Fprintf(env.Stdout, "  %s rows in demo_app, demo_pos and demo_alerts\n", preview.Thousands(res.Total()))

	consoleURL, err := ensureDatabase(ctx, admin, serverURL, "tombstone_demo")
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = consoleURL
	vars["TOMBSTONE_BASE_URL"] = "http://" + *listen
	lookup := func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return env.Lookup(name)
	}
	policy := examples.Policy()
	cfg, err := config.Parse("examples/tombstone.yaml", policy, lookup)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	cfg.Listen = *listen
	if *out != "" {
		if err := writeDemoConfig(*out, string(policy), vars); err != nil {
			return &ExitError{Code: 2, Err: err}
		}
	}

	db, err := openConsole(ctx, consoleURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations()); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	for _, target := range demo.Targets {
		tdb, err := pg.Open(ctx, res.Databases[target], pg.Options{MaxConns: 2})
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		_, err = pg.Migrate(ctx, tdb.Bun, pg.TargetMigrations())
		tdb.Close()
		if err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("target %s: %w", target, err)}
		}
	}
	passwords := map[string]string{}
	for _, u := range demoUsers {
		pw := "demo-" + u.name + "-password"
		passwords[u.name] = pw
		existing, err := auth.UserByName(ctx, db.Bun, u.name)
		switch {
		case errors.Is(err, auth.ErrNotFound) || errors.Is(err, pg.ErrNotFound):
			if _, err := auth.CreateUser(ctx, db.Bun, auth.NewUser{Name: u.name, DisplayName: u.display, Email: u.email, Role: u.role, Password: pw}); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("demo user %s: %w", u.name, err)}
			}
		case err != nil:
			return &ExitError{Code: 2, Err: err}
		default:
			if existing.Role != u.role {
				if _, err := auth.SetRole(ctx, db.Bun, existing.ID, u.role); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			if existing.Disabled() {
				if _, err := auth.Enable(ctx, db.Bun, existing.ID); err != nil {
					return &ExitError{Code: 2, Err: err}
				}
			}
			if err := auth.SetPassword(ctx, db.Bun, existing.ID, pw); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
		}
	}
	db.Close()

	w := env.Stdout
	fmt.Fprintf(w, "\nTombstone demo is ready.\n\n  Console:  http://%s\n  Config:   %s (use it with: console preview --config %s --kind tenant --root acme)\n\n", *listen, *out, *out)
	fmt.Fprintln(w, "  User    Role       Password")
	for _, u := range demoUsers {
		fmt.Fprintf(w, "  %-7s %-10s %s\n", u.name, u.role, passwords[u.name])
	}
	fmt.Fprint(w, `
A first flow:
  1. Sign in as alice, search for the tenant "acme", open its preview and expand the tree.
  2. Request the deletion with a reason.
  3. In another browser (or a private window) sign in as bob, open Requests, and approve.
  4. Watch the request run, then look at Audit: the chain is verified and exports as CSV.
  Also try the repo "acme/website" (a soft delete) and the site "acme-shop" (it owns its store).
`)
	if server.private != nil {
		fmt.Fprintf(w, "\nThe demo's data lives in a private PostgreSQL server that stops when the demo exits;\n%s works only while it runs.\n", *out)
	}
	if *noServe {
		return nil
	}
	fmt.Fprintf(w, "\nServing on http://%s (Ctrl-C to stop)\n", *listen)
	return serve(ctx, cfg, serveOptions{Listen: *listen}, env)
}

// installHelp is printed when no PostgreSQL server answers and none can be started.
const installHelp = `The demo needs a PostgreSQL server (12 or newer) it can create databases on.
Nothing answers at %s, and a private one cannot be started: %v.
Install PostgreSQL:
  Debian/Ubuntu: apt-get install postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  macOS:         brew install postgresql@16 && brew services start postgresql@16
Or point --admin-url / TOMBSTONE_DEMO_ADMIN_URL at a running server, or TOMBSTONE_PG_BIN
at the directory holding initdb and pg_ctl.
`

// demoPG is the PostgreSQL server the demo runs on.
type demoPG struct {
	db  *pg.DB // its maintenance database
	url string // the URL of db
	// private is the throwaway cluster started because nothing answered; nil otherwise.
	private *cluster.Cluster
}

// Close releases the server; a private cluster is stopped and its files removed.
func (d *demoPG) Close(env Env) {
	d.db.Close()
	if d.private != nil {
		d.private.Stop()
		fmt.Fprintf(env.Stdout, "Stopped the private PostgreSQL server and removed %s.\n", d.private.Dir)
	}
}

// demoServer connects to the PostgreSQL server the demo creates its databases on. When
// nothing answers at adminURL and the server binaries are installed, it starts a private
// throwaway cluster instead, with prepared transactions on so that multi-target deletions
// commit atomically; Close stops it, and a watchdog does if the process is killed. A server
// that answers but refuses (bad password, no such database) is an error: the operator meant
// that server.
func demoServer(ctx context.Context, adminURL string, env Env) (*demoPG, error) {
	opts := pg.Options{MaxConns: 2, ApplicationName: "tombstone demo"}
	db, err := pg.Open(ctx, adminURL, opts)
	if err == nil {
		return &demoPG{db: db, url: adminURL}, nil
	}
	if !nothingAnswers(err) {
		return nil, &ExitError{Code: 2, Err: err}
	}
	addr := "the admin URL"
	var ue *pg.UnreachableError
	if errors.As(err, &ue) {
		addr = ue.Addr
	}
	c, cerr := cluster.New(cluster.Options{MaxPreparedTransactions: 20, BinDir: env.Getenv("TOMBSTONE_PG_BIN")})
	if errors.Is(cerr, cluster.ErrNoBinaries) {
		fmt.Fprintf(env.Stderr, installHelp, addr, cerr)
		return nil, &ExitError{Code: 2, Err: err}
	}
	if cerr != nil {
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("%w; starting a private PostgreSQL instead failed: %w", err, cerr)}
	}
	fmt.Fprintf(env.Stdout, "Nothing answers at %s, so the demo runs on a private PostgreSQL server:\n"+
		"  %s (binaries in %s, files in %s).\n"+
		"  It is stopped and its files removed when the demo exits.\n",
		addr, c.URL, c.BinDir(), c.Dir)
	db, err = pg.Open(ctx, c.URL, opts)
	if err != nil {
		c.Stop()
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("private PostgreSQL: %w", err)}
	}
	return &demoPG{db: db, url: c.URL, private: c}, nil
}

// nothingAnswers says that no PostgreSQL server answered at all (refused or timed out), as
// opposed to a server that answered with an error.
func nothingAnswers(err error) bool {
	var ue *pg.UnreachableError
	if !errors.As(err, &ue) {
		return false
	}
	var pgErr *pgconn.PgError
	return !errors.As(ue.Cause, &pgErr)
}

// ensureDatabase creates the named database if it does not exist and returns its URL.
func ensureDatabase(ctx context.Context, admin *pg.DB, adminURL, name string) (string, error) {
	var exists bool
	if err := admin.Pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", pg.Interpret(err)
	}
	if !exists {
		if _, err := admin.Pool.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(name)); err != nil && pg.Code(err) != "42P04" {
			return "", fmt.Errorf("create database %s: %w", name, pg.Interpret(err))
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// writeDemoConfig writes the example policy with the demo's URLs filled in, so that other
// commands can be pointed at the demo with --config.
func writeDemoConfig(path, policy string, vars map[string]string) error {
	for name, v := range vars {
		policy = strings.ReplaceAll(policy, "${"+name+"}", v)
		policy = strings.ReplaceAll(policy, "${"+name+":-http://127.0.0.1:8080}", v)
	}
	header := "# Written by `console demo`: the example policy with the demo databases filled in.\n"
	return os.WriteFile(path, []byte(header+policy), 0o600)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

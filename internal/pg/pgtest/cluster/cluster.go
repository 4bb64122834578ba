// Package cluster starts private PostgreSQL servers for tests that need a server setting the
// shared test server does not have (max_prepared_transactions), or that must stop, crash or
// reconfigure a server without disturbing anyone else.
//
// A cluster is made with initdb in a temporary directory and started with pg_ctl on a free
// port of 127.0.0.1, with trust authentication for the user postgres and fsync off. The
// binaries are found on PATH or under /usr/lib/postgresql/*/bin (the newest). PostgreSQL
// refuses to run as root, so as root the cluster runs as the postgres user (runuser).
//
// Starting a cluster takes a few seconds: share one per test package (Shared, stopped by
// StopShared from TestMain) rather than one per test. A watchdog process stops the server and
// removes its directory if the test binary dies without cleaning up.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options configure a cluster.
type Options struct {
	// MaxPreparedTransactions is the server's max_prepared_transactions; 0 disables
	// prepared transactions (PostgreSQL's default).
	MaxPreparedTransactions int
}

// Cluster is a running private server.
type Cluster struct {
	// URL is the maintenance database (postgres) as user postgres.
	URL  string
	Port int
	dir  string
	bin  string
	run  []string // prefix that runs a command as the cluster's owner
	once sync.Once
}

// Start starts a new cluster and stops it (removing its files) when t's test ends. It
// returns the URL of its postgres database. Tests fail, never skip, when no PostgreSQL
// binaries are installed.
func Start(t testing.TB, opts Options) (url string) {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatalf("cluster.Start: %v", err)
	}
	t.Cleanup(c.Stop)
	return c.URL
}

var (
	sharedMu sync.Mutex
	shared   = map[Options]*Cluster{}
)

// Shared returns the URL of the package's cluster with these options, starting it on first
// use. Call StopShared from TestMain after m.Run.
func Shared(t testing.TB, opts Options) (url string) {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if c := shared[opts]; c != nil {
		return c.URL
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("cluster.Shared: %v", err)
	}
	shared[opts] = c
	return c.URL
}

// StopShared stops every cluster Shared started.
func StopShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for o, c := range shared {
		c.Stop()
		delete(shared, o)
	}
}

// Database creates database name in the cluster at adminURL and returns its URL.
func Database(t testing.TB, adminURL, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("cluster.Database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("cluster.Database(%q): %v", name, err)
	}
	return WithDatabase(adminURL, name)
}

// WithDatabase returns base with its database name replaced.
func WithDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("cluster: bad URL %q: %v", base, err))
	}
	u.Path = "/" + name
	return u.String()
}

// New starts a cluster; the caller must Stop it.
func New(opts Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// A short path: the socket lives here too, and socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "pgc")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root needs a postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		c.run = []string{"runuser", "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.cmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		o := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_prepared_transactions=%d -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
			port, dir, opts.MaxPreparedTransactions)
		out, err := c.cmd("pg_ctl", "-D", data, "-o", o, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			c.Port = port
			c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
			c.watch()
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		lastErr = fmt.Errorf("pg_ctl start: %v: %s\n%s", err, out, log)
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// Stop stops the server at once (immediate shutdown: the cluster is thrown away) and removes
// its files. It is idempotent.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		_ = c.cmd("pg_ctl", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(c.dir)
	})
}

func (c *Cluster) cmd(name string, args ...string) *osexec.Cmd {
	all := append(append([]string{}, c.run...), filepath.Join(c.bin, name))
	all = append(all, args...)
	cmd := osexec.Command(all[0], all[1:]...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// watch starts a detached watchdog that stops the server when this process is gone.
func (c *Cluster) watch() {
	stop := strings.Join(append(append([]string{}, c.run...), filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "stop"), " ")
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; [ -d %s ] && { %s >/dev/null 2>&1; rm -rf %s; }", os.Getpid(), c.dir, stop, c.dir)
	cmd := osexec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// binDir finds the directory of initdb and pg_ctl.
func binDir() (string, error) {
	if p, err := osexec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Package cluster starts private, throwaway PostgreSQL servers: for `console demo` when no
// server answers, and for tests that need a server setting the shared test server does not
// have (max_prepared_transactions), or that must stop, crash or reconfigure a server without
// disturbing anyone else.
//
// A cluster is made with initdb in a temporary directory and started with pg_ctl on a free
// port of 127.0.0.1, with trust authentication for the user postgres and fsync off: it is
// for data that may be lost. The binaries are found by FindBinaries. PostgreSQL refuses to
// run as root, so as root the cluster runs as the postgres user (runuser).
//
// Starting a cluster takes a few seconds. A watchdog process stops the server and removes
// its directory if the process that started it dies without calling Stop.
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

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries means no PostgreSQL server binaries (initdb and pg_ctl) were found.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, pg_ctl)")

// Options configure a cluster. Options values are comparable, so they can key a map of
// shared clusters.
type Options struct {
	// MaxPreparedTransactions is the server's max_prepared_transactions; 0 disables
	// prepared transactions (PostgreSQL's default).
	MaxPreparedTransactions int
	// BinDir, when set, is the only directory searched for initdb and pg_ctl (see
	// FindBinaries).
	BinDir string
}

// Cluster is a running private server.
type Cluster struct {
	// URL is the maintenance database (postgres) as user postgres.
	URL  string
	Port int
	// Dir holds the data directory, the socket and the server log; Stop removes it.
	Dir  string
	bin  string
	run  []string // prefix that runs a command as the cluster's owner
	once sync.Once
}

// New starts a cluster; the caller must Stop it. It fails with an error wrapping
// ErrNoBinaries when the server binaries are not installed.
func New(opts Options) (*Cluster, error) {
	bin, err := FindBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	// A short path: the socket lives here too, and socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "pgc")
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{Dir: dir, bin: bin}
	if err := c.setOwner(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if out, err := c.cmd("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cluster: initdb: %v: %s", err, out)
	}
	// A port found free may be taken before the server binds it; try a few.
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("cluster: %w", err)
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
		lastErr = fmt.Errorf("cluster: pg_ctl start: %v: %s\n%s", err, out, log)
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// setOwner arranges for the server to run as the postgres user when this process is root.
func (c *Cluster) setOwner() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("cluster: PostgreSQL refuses to run as root, and there is no postgres user to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(c.Dir, uid, gid); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.run = []string{"runuser", "-u", "postgres", "--"}
	return nil
}

// Stop stops the server at once (immediate shutdown: the cluster is thrown away) and removes
// its files. It is idempotent and safe to call from several goroutines.
func (c *Cluster) Stop() {
	c.once.Do(func() {
		_ = c.cmd("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(c.Dir)
	})
}

// BinDir is the directory the server binaries were taken from.
func (c *Cluster) BinDir() string { return c.bin }

// CreateDatabase creates database name in the cluster at adminURL and returns its URL.
func CreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("cluster: create database %q: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("cluster: create database %q: %w", name, err)
	}
	return WithDatabase(adminURL, name)
}

// WithDatabase returns base with its database name replaced.
func WithDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("cluster: bad URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (c *Cluster) cmd(name string, args ...string) *osexec.Cmd {
	all := append(append([]string{}, c.run...), filepath.Join(c.bin, name))
	all = append(all, args...)
	cmd := osexec.Command(all[0], all[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// watch starts a detached watchdog that stops the server and removes its directory when this
// process is gone, however it ended (a SIGKILL included).
func (c *Cluster) watch() {
	stop := strings.Join(append(append([]string{}, c.run...), filepath.Join(c.bin, "pg_ctl"), "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "stop"), " ")
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; [ -d %s ] && { %s >/dev/null 2>&1; rm -rf %s; }", os.Getpid(), c.Dir, stop, c.Dir)
	cmd := osexec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// FindBinaries returns the directory holding initdb and pg_ctl. With dir set, only dir is
// looked at; otherwise the directory of pg_ctl on PATH, then the newest
// /usr/lib/postgresql/*/bin (Debian and Ubuntu install the server there, off PATH). The
// error wraps ErrNoBinaries.
func FindBinaries(dir string) (string, error) {
	if dir != "" {
		if hasServer(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w in %s", ErrNoBinaries, dir)
	}
	if p, err := osexec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if d := filepath.Dir(p); hasServer(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if hasServer(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w on PATH or under /usr/lib/postgresql/*/bin", ErrNoBinaries)
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "pg_ctl"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
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

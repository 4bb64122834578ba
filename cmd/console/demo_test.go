package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	pgcluster "github.com/tombstone-console/tombstone/internal/pg/pgtest/cluster"
)

// demoOutput collects a running command's output for the test to read.
type demoOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *demoOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *demoOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runDemo runs console demo in-process with the given environment and arguments.
func runDemo(ctx context.Context, vars map[string]string, args ...string) (code int, stdout, stderr *demoOutput) {
	stdout, stderr = &demoOutput{}, &demoOutput{}
	env := Env{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr, Lookup: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
	err := run(ctx, append([]string{"demo"}, args...), env)
	return exitCode(err, stderr), stdout, stderr
}

// closedPortURL is a PostgreSQL URL on a port of 127.0.0.1 where nothing listens.
func closedPortURL(t *testing.T) (url, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr = l.Addr().String()
	require.NoError(t, l.Close())
	return "postgres://postgres@" + addr + "/postgres?sslmode=disable", addr
}

var privateDirRE = regexp.MustCompile(`files in (\S+)\)`)

// privateCluster returns the directory and URL of the private cluster the demo reported.
func privateCluster(t *testing.T, out string) (dir, url string) {
	t.Helper()
	m := privateDirRE.FindStringSubmatch(out)
	require.NotNil(t, m, "the demo names its private cluster's directory:\n%s", out)
	u := regexp.MustCompile(`postgres://postgres@127\.0\.0\.1:\d+/postgres\?sslmode=disable`).FindString(out)
	require.NotEmpty(t, u, out)
	return m[1], u
}

func requireDemoSummary(t *testing.T, out string) {
	t.Helper()
	for _, want := range []string{
		"Tombstone demo is ready.",
		"alice   requester  demo-alice-password",
		"bob     approver   demo-bob-password",
		"dana    approver   demo-dana-password",
		"carol   admin      demo-carol-password",
		"A first flow:",
		`search for the tenant "acme"`,
	} {
		require.Contains(t, out, want)
	}
}

// requireGone checks that the private cluster was stopped and its files removed.
func requireGone(t *testing.T, dir, url string) {
	t.Helper()
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist, "the private cluster's files are removed")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		conn.Close(ctx)
	}
	require.Error(t, err, "the private cluster still answers")
}

// TestDemoFallsBackToPrivateCluster: with nothing answering at the admin URL, the demo starts
// a private cluster, builds the demo on it, and removes it when it exits.
func TestDemoFallsBackToPrivateCluster(t *testing.T) {
	t.Parallel()
	url, addr := closedPortURL(t)
	cfgOut := filepath.Join(t.TempDir(), "tombstone.demo.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	code, out, errOut := runDemo(ctx, nil, "--admin-url", url, "--scale", "0.1", "--config-out", cfgOut, "--no-serve")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out.String(), "Nothing answers at "+addr+", so the demo runs on a private PostgreSQL server")
	dir, clusterURL := privateCluster(t, out.String())
	requireDemoSummary(t, out.String())
	require.Contains(t, out.String(), "works only while it runs")
	require.Contains(t, out.String(), "Stopped the private PostgreSQL server and removed "+dir)

	written, err := os.ReadFile(cfgOut)
	require.NoError(t, err)
	u, err := neturl.Parse(clusterURL)
	require.NoError(t, err)
	require.Contains(t, string(written), u.Host+"/demo_app", "the config points at the private cluster")
	requireGone(t, dir, clusterURL)
}

// TestDemoPrivateClusterStopsOnInterrupt: a serving demo on a private cluster stops the
// cluster when it is interrupted (Ctrl-C cancels the command's context).
func TestDemoPrivateClusterStopsOnInterrupt(t *testing.T) {
	t.Parallel()
	url, _ := closedPortURL(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	listen := l.Addr().String()
	require.NoError(t, l.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runCtx, interrupt := context.WithCancel(ctx)
	type result struct {
		code     int
		out, err *demoOutput
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runDemo(runCtx, nil, "--admin-url", url, "--scale", "0.1", "--listen", listen,
			"--config-out", filepath.Join(t.TempDir(), "demo.yaml"))
		done <- result{code, out, errOut}
	}()

	// Wait until the console answers.
	var status int
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	}, 2*time.Minute, 200*time.Millisecond)
	require.Equal(t, http.StatusOK, status, "the console and the three demo targets are ready")

	interrupt()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the demo did not stop after the interrupt")
	}
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.out, r.err)
	dir, clusterURL := privateCluster(t, r.out.String())
	require.Contains(t, r.out.String(), "Serving on http://"+listen)
	requireGone(t, dir, clusterURL)
}

// TestDemoWithoutServer: with nothing answering and no server binaries, the demo explains how
// to install or start PostgreSQL; a server that answers with an error is reported as such,
// with no private cluster.
func TestDemoWithoutServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	url, addr := closedPortURL(t)
	empty := t.TempDir()
	code, out, errOut := runDemo(ctx, map[string]string{"TOMBSTONE_PG_BIN": empty}, "--admin-url", url, "--no-serve", "--config-out", "")
	require.Equal(t, 2, code)
	require.Empty(t, out.String())
	help := errOut.String()
	require.Contains(t, help, "Nothing answers at "+addr+", and a private one cannot be started: no PostgreSQL server binaries (initdb, pg_ctl) in "+empty+".\n")
	require.Contains(t, help, "apt-get install postgresql")
	require.Contains(t, help, "brew install postgresql@16")
	require.Contains(t, help, "console: cannot reach PostgreSQL at "+addr+": connection refused")

	// The server answers, but has no such database: that is the operator's server, so no
	// private cluster is started and no install instructions are printed.
	pgtest.Admin(t)
	missing := pgcluster.WithDatabase(pgtest.AdminURL(), "no_such_database_for_demo")
	code, out, errOut = runDemo(ctx, nil, "--admin-url", missing, "--no-serve", "--config-out", "")
	require.Equal(t, 2, code)
	require.NotContains(t, out.String(), "private PostgreSQL")
	require.NotContains(t, errOut.String(), "apt-get")
	require.Contains(t, errOut.String(), `no database "no_such_database_for_demo"`)
}

// TestDemoIsIdempotent runs the demo twice on one server: the second run rebuilds the same
// data and resets the users, without duplicates.
func TestDemoIsIdempotent(t *testing.T) {
	t.Parallel()
	admin := pgcluster.Start(t, pgcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfgOut := filepath.Join(t.TempDir(), "demo.yaml")

	rows := regexp.MustCompile(`([\d,]+) rows in demo_app`)
	var totals []string
	for run := range 2 {
		code, out, errOut := runDemo(ctx, nil, "--admin-url", admin, "--scale", "0.1", "--no-serve", "--config-out", cfgOut)
		require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
		require.NotContains(t, out.String(), "private PostgreSQL")
		requireDemoSummary(t, out.String())
		m := rows.FindStringSubmatch(out.String())
		require.NotNil(t, m, out.String())
		totals = append(totals, m[1])

		// Someone changed a role and disabled a user in between: the next run resets them.
		console, err := pgx.Connect(ctx, pgcluster.WithDatabase(admin, "tombstone_demo"))
		require.NoError(t, err)
		var users, alices int
		require.NoError(t, console.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE name = 'alice' AND role = 'requester' AND disabled_at IS NULL) FROM users").Scan(&users, &alices))
		require.Equal(t, 4, users)
		require.Equal(t, 1, alices)
		if run == 0 {
			_, err = console.Exec(ctx, "UPDATE users SET role = 'viewer', disabled_at = now() WHERE name = 'alice'")
			require.NoError(t, err)
		}
		require.NoError(t, console.Close(ctx))
	}
	require.Equal(t, totals[0], totals[1])
}

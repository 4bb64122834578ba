package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/web"
)

// console runs commands in-process with a config file pointing at db.
type consoleCLI struct {
	t   *testing.T
	cfg string
}

func newConsoleCLI(t *testing.T, yaml string) *consoleCLI {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "tombstone.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(yaml), 0o600))
	return &consoleCLI{t: t, cfg: cfg}
}

func (c *consoleCLI) run(stdin string, args ...string) (int, string, string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Lookup: func(k string) (string, bool) {
		if k == "TOMBSTONE_CONFIG" {
			return c.cfg, true
		}
		return "", false
	}}
	err := run(context.Background(), args, env)
	return exitCode(err, &errOut), out.String(), errOut.String()
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	c := newConsoleCLI(t, "database: "+pgtest.URLOf(db)+"\n")

	code, out, errOut := c.run("", "user", "add", "alice", "--role", "admin")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "added alice (admin)")
	pw := strings.TrimPrefix(strings.TrimSpace(out[strings.Index(out, "password: "):]), "password: ")
	require.Len(t, pw, 26)
	a := auth.NewAuthenticator(db.Bun, auth.Limits{})
	_, err := a.Authenticate(ctx, "alice", pw, "127.0.0.1")
	require.NoError(t, err)

	code, out, errOut = c.run("a chosen password\n", "user", "add", "--password-stdin", "bob", "--role=viewer", "--display-name", "Bob B")
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "password:")
	bob, err := a.Authenticate(ctx, "bob", "a chosen password", "127.0.0.1")
	require.NoError(t, err)
	require.Equal(t, "Bob B", bob.DisplayName)

	code, out, _ = c.run("", "user", "set-role", "bob", "approver")
	require.Equal(t, 0, code)
	require.Equal(t, "bob is now approver\n", out)

	code, _, errOut = c.run("", "user", "set-role", "alice", "viewer")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "last enabled admin")

	code, out, _ = c.run("", "user", "passwd", "bob")
	require.Equal(t, 0, code)
	require.Contains(t, out, "sessions were ended")
	_, err = a.Authenticate(ctx, "bob", "a chosen password", "127.0.0.2")
	require.ErrorIs(t, err, auth.ErrBadCredentials)

	code, out, _ = c.run("", "user", "disable", "bob")
	require.Equal(t, 0, code)
	require.Contains(t, out, "bob is disabled")
	code, out, _ = c.run("", "user", "list")
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^NAME\s+ROLE\s+STATUS`, lines[0])
	require.Regexp(t, `^alice\s+admin\s+active\s+password\s+20`, lines[1])
	require.Regexp(t, `^bob\s+approver\s+disabled\s+password\s+`, lines[2])
	code, _, _ = c.run("", "user", "enable", "bob")
	require.Equal(t, 0, code)

	// Mistakes exit 2 with a message; unknown users exit 1.
	for _, args := range [][]string{
		{"user"},
		{"user", "frobnicate"},
		{"user", "add", "carol"},
		{"user", "add", "carol", "--role", "root"},
		{"user", "set-role", "bob"},
		{"user", "add", "a", "b", "--role", "viewer"},
	} {
		code, _, errOut = c.run("", args...)
		require.Equal(t, 2, code, args)
		require.NotEmpty(t, errOut, args)
	}
	code, _, errOut = c.run("", "user", "disable", "nobody")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not found")
	code, _, errOut = c.run("short\n", "user", "add", "dan", "--role", "viewer", "--password-stdin")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "at least 12 characters")
}

func TestServe(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t)
	c := newConsoleCLI(t, "database: "+pgtest.URLOf(db)+"\ntargets:\n  app: {dsn: \"postgres://postgres@127.0.0.1:1/app\"}\n")
	cfg, err := loadConfig(c.cfg, Env{})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, serveOptions{Listen: "127.0.0.1:0", Ready: func(a net.Addr) { addrc <- a }},
			Env{Stdout: io.Discard, Stderr: io.Discard})
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	base := "http://" + addr.String()

	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The target is down: the console runs, and /readyz says what is wrong.
	resp, err = http.Get(base + "/readyz")
	require.NoError(t, err)
	var rd web.Readiness
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rd))
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.True(t, rd.Console.OK)
	require.False(t, rd.Targets["app"].OK)
	require.Contains(t, rd.Targets["app"].Error, "127.0.0.1:1")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

func TestServeConsoleUnreachable(t *testing.T) {
	t.Parallel()
	c := newConsoleCLI(t, "database: postgres://postgres@127.0.0.1:1/console\n")
	code, _, errOut := c.run("", "serve", "--listen", "127.0.0.1:0")
	require.Equal(t, 2, code)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(errOut), "\n")+1, errOut)
	require.Contains(t, errOut, "cannot reach PostgreSQL at 127.0.0.1:1")
}

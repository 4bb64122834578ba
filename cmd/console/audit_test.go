package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// auditCLI runs the console in-process against a fresh console database with a signing key.
type auditCLI struct {
	t   *testing.T
	cfg string
	dir string
	db  *pg.DB
}

func newAuditCLI(t *testing.T) (*auditCLI, func(int) audit.Event) {
	t.Helper()
	db := pgtest.Fresh(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tombstone.yaml")
	seed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, os.WriteFile(cfg, []byte("database: "+pgtest.URLOf(db)+"\naudit:\n  signing_key: "+seed+"\n"), 0o600))
	add := func(i int) audit.Event {
		e, err := audit.Append(context.Background(), db.Bun, audit.Event{
			ActorName: "alice", Action: audit.ActionRequested, Reason: "=cmd|' /C calc'!A0", Kind: "tenant",
			Details: map[string]any{"i": i},
		})
		require.NoError(t, err)
		return e
	}
	return &auditCLI{t: t, cfg: cfg, dir: dir, db: db}, add
}

// run returns the exit code, stdout and stderr.
func (c *auditCLI) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Lookup: func(k string) (string, bool) {
		if k == "TOMBSTONE_CONFIG" {
			return c.cfg, true
		}
		if k == "USER" {
			return "tester", true
		}
		return "", false
	}}
	err := run(context.Background(), args, env)
	return exitCode(err, &errOut), out.String(), errOut.String()
}

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	cli, add := newAuditCLI(t)
	var last audit.Event
	for i := range 3 {
		last = add(i)
	}

	code, out, _ := cli.run("audit", "verify")
	require.Equal(t, 0, code)
	require.Equal(t, "verified events 1..3, head "+last.Hash+"\n", out)

	code, out, _ = cli.run("audit", "verify", "--from", "2")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "verified events 2..3"), out)

	cpFile := filepath.Join(cli.dir, "cp.json")
	code, out, errOut := cli.run("audit", "checkpoint", "--out", cpFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "event 3, head "+last.Hash)

	csvFile := filepath.Join(cli.dir, "audit.csv")
	code, _, errOut = cli.run("audit", "export", "--format", "csv", "--out", csvFile)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "exported 5 events") // 3, the checkpoint, the export itself

	// Offline: no config or database needed.
	code, out, _ = cli.run("audit", "verify", "--csv", csvFile, "--config", "/nonexistent.yaml")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "verified events 1..5, head "), out)
	data, err := os.ReadFile(csvFile)
	require.NoError(t, err)
	require.Contains(t, string(data), `'=cmd|' /C calc'!A0`)
	bad := bytes.Replace(data, []byte("alice"), []byte("alicf"), 1)
	badFile := filepath.Join(cli.dir, "bad.csv")
	require.NoError(t, os.WriteFile(badFile, bad, 0o600))
	code, out, _ = cli.run("audit", "verify", "--csv", badFile)
	require.Equal(t, 1, code)
	require.Equal(t, "broken at event 1: hash does not match the event's contents\n", out)
	code, _, _ = cli.run("audit", "verify", "--csv", filepath.Join(cli.dir, "missing.csv"))
	require.Equal(t, 2, code)

	code, out, _ = cli.run("audit", "export", "--format", "jsonl", "--action", "requested", "--to", "2999-01-01")
	require.Equal(t, 0, code)
	require.Equal(t, 3, strings.Count(out, "\n"))

	code, out, _ = cli.run("audit", "verify", "--checkpoint", cpFile)
	require.Equal(t, 0, code)
	require.Contains(t, out, "checkpoint matches: event 3")

	code, _, errOut = cli.run("audit", "verify", "--checkpoint", filepath.Join(cli.dir, "nope.json"))
	require.Equal(t, 2, code, errOut)

	code, _, _ = cli.run("audit", "export", "--format", "xml")
	require.Equal(t, 2, code)
	code, _, _ = cli.run("audit", "export", "--from", "yesterday")
	require.Equal(t, 2, code)
	code, out, _ = cli.run("audit", "verify", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, out, "--checkpoint")
	code, _, _ = cli.run("audit")
	require.Equal(t, 2, code)
}

func TestAuditVerifyExitCodes(t *testing.T) {
	t.Parallel()
	cli, add := newAuditCLI(t)
	for i := range 4 {
		add(i)
	}
	// Tamper as the superuser: the trigger must be disabled first.
	ctx := context.Background()
	for _, st := range []string{
		"ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
		"UPDATE audit_events SET reason = 'benign' WHERE seq = 2",
		"ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_update_delete",
	} {
		_, err := cli.db.Pool.Exec(ctx, st)
		require.NoError(t, err)
	}
	code, out, _ := cli.run("audit", "verify")
	require.Equal(t, 1, code)
	require.Equal(t, "broken at event 2: hash does not match the event's contents\n", out)

	// Could not run: no database there.
	cfg := filepath.Join(cli.dir, "down.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("database: postgres://postgres@127.0.0.1:1/none?connect_timeout=1\n"), 0o600))
	code, _, errOut := cli.run("audit", "verify", "--config", cfg)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "cannot reach PostgreSQL")
	code, _, _ = cli.run("audit", "checkpoint", "--config", cfg)
	require.Equal(t, 2, code)
}

func TestDBGrantsPrints(t *testing.T) {
	t.Parallel()
	cli, _ := newAuditCLI(t)
	code, out, errOut := cli.run("db", "grants", "--role", `tombstone "app"`)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `-- warning: role tombstone "app" does not exist yet`)
	require.Contains(t, out, `GRANT SELECT, INSERT ON "public"."audit_events" TO "tombstone ""app""";`)
	require.NotContains(t, out, `UPDATE, DELETE ON "public"."audit_events"`)
	code, _, _ = cli.run("db", "grants")
	require.Equal(t, 2, code)
}

package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
)

const valid = `database: ${DB_URL}
base_url: https://tombstone.example.com/
approvals:
  required: 1
  expires_after: 72h
  step_up: 15m
  escalate:
    - {rows_over: 100000, required: 2}
notify:
  email: {smtp: "smtp://mail:25", from: tombstone@example.com, to: [ops@example.com]}
  slack: {webhook: "https://hooks.example.com/x"}
targets:
  app: {dsn: "${APP_URL}", lock_timeout: 5s, statement_timeout: 10m}
  pos: {dsn: "postgres://pos/x"}
kinds:
  tenant:
    target: app
    table: tenants
    label: "{name} ({slug})"
    search: [slug, name]
    root: delete
    archive: 30d
    also:
      - {target: pos, table: pos_configurations, column: tenant_id}
  repo:
    target: app
    table: repos
    search: [slug]
    root: soft
defaults:
  under_delete: follow
  under_soft: auto
tables:
  issue_comments: {soft: is_deleted}
  objects: {under_soft: keep}
  merchants: {protect: true}
edges:
  "orders.customer_id": {under_delete: detach}
`

func env(m map[string]string) config.Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var goodEnv = env(map[string]string{"DB_URL": "postgres://console/db", "APP_URL": "postgres://app/db"})

func TestParseValid(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("tombstone.yaml", []byte(valid), goodEnv)
	require.NoError(t, err)
	require.Equal(t, "postgres://console/db", c.Database)
	require.Equal(t, "https://tombstone.example.com", c.BaseURL)
	require.Equal(t, 72*time.Hour, c.Approvals.ExpiresAfter)
	require.Equal(t, []config.EscalateRule{{RowsOver: 100000, Required: 2}}, c.Approvals.Escalate)
	require.Equal(t, "postgres://app/db", c.Targets["app"].DSN)
	require.Equal(t, 5*time.Second, c.Targets["app"].LockTimeout)
	require.Equal(t, config.DefaultStatementTimeout, c.Targets["pos"].StatementTimeout)
	require.Equal(t, []string{"repo", "tenant"}, c.KindNames())
	k := c.Kinds["tenant"]
	require.Equal(t, config.Duration(30*24*time.Hour), k.Archive)
	require.Equal(t, []config.Also{{Target: "pos", Table: "pos_configurations", Column: "tenant_id"}}, k.Also)
	require.Equal(t, config.ActionSoft, c.Kinds["repo"].Root)
	require.True(t, c.Tables["merchants"].Protect)
	require.Equal(t, "detach", c.Edges["orders.customer_id"].UnderDelete)
	require.Equal(t, config.DefaultIdleTimeout, c.Sessions.IdleTimeout)
	require.Equal(t, "tombstone.yaml:16:3", c.Where("kinds.tenant"))
	require.Len(t, c.PolicyHash(), 64)
}

func TestPolicyHashIgnoresSecretsButNotRules(t *testing.T) {
	t.Parallel()
	a, err := config.Parse("a.yaml", []byte(valid), goodEnv)
	require.NoError(t, err)
	b, err := config.Parse("b.yaml", []byte(valid), env(map[string]string{"DB_URL": "postgres://other/db", "APP_URL": "postgres://app2/db"}))
	require.NoError(t, err)
	require.Equal(t, a.PolicyHash(), b.PolicyHash())
	changed := strings.Replace(valid, "under_soft: keep", "under_soft: delete", 1)
	c, err := config.Parse("c.yaml", []byte(changed), goodEnv)
	require.NoError(t, err)
	require.NotEqual(t, a.PolicyHash(), c.PolicyHash())
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("t.yaml", []byte("database: postgres://h/db\ntargets:\n  app: {dsn: postgres://h/app}\nkinds:\n  tenant: {table: tenants}\n"), nil)
	require.NoError(t, err)
	require.Equal(t, "app", c.Kinds["tenant"].Target, "the only target is the default")
	require.Equal(t, config.ActionDelete, c.Kinds["tenant"].Root)
	require.Equal(t, config.Follow, c.Defaults.UnderDelete)
	require.Equal(t, config.Auto, c.Defaults.UnderSoft)
	require.Equal(t, 1, c.Approvals.Required)
	require.Equal(t, config.DefaultListen, c.Listen)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	// Each case replaces one line of the valid file, or the whole file, and expects one message.
	cases := []struct {
		name, old, new, want string
	}{
		{"bad root action", "    root: delete", "    root: hard", `tombstone.yaml:21:11: kinds.tenant.root: must be delete or soft, got "hard"`},
		{"unknown key with suggestion", "    search: [slug, name]", "    serch: [slug, name]", `tombstone.yaml:20:5: kinds.tenant.serch: unknown key (did you mean "search"?)`},
		{"unknown top-level key", "defaults:", "defaultz:", `tombstone.yaml:30:1: defaultz: unknown key (did you mean "defaults"?)`},
		{"bad duration", "  expires_after: 72h", "  expires_after: 3 days", `tombstone.yaml:5:18: approvals.expires_after: must be a duration such as 90s, 15m, 72h or 30d, got "3 days"`},
		{"required zero", "  required: 1", "  required: 0", `tombstone.yaml:4:13: approvals.required: must be at least 1, got 0`},
		{"required not a number", "  required: 1", "  required: one", `tombstone.yaml:4:13: approvals.required: must be a whole number, got "one"`},
		{"unknown target", "    target: app\n    table: tenants", "    target: ap\n    table: tenants", `tombstone.yaml:17:13: kinds.tenant.target: unknown target "ap" (did you mean "app"?) (targets: app, pos)`},
		{"unknown also target", "{target: pos, table: pos_configurations", "{target: pso, table: pos_configurations", `kinds.tenant.also[0].target: unknown target "pso"`},
		{"bad under_delete default", "  under_delete: follow", "  under_delete: cascade", `tombstone.yaml:31:17: defaults.under_delete: must be follow, delete, detach or block, got "cascade"`},
		{"follow not allowed on a table", "  objects: {under_soft: keep}", "  objects: {under_delete: follow}", `tables.objects.under_delete: must be delete, detach or block, got "follow"`},
		{"bad under_soft default", "  under_soft: auto", "  under_soft: detach", `defaults.under_soft: must be auto, soft, keep or delete, got "detach"`},
		{"protect not bool", "{protect: true}", "{protect: yes please}", `tables.merchants.protect: must be true or false, got "yes please"`},
		{"bad edge key", `"orders.customer_id"`, `"orders"`, `edges.orders: an edge is named table.column`},
		{"missing env", "database: ${DB_URL}", "database: ${NOPE_URL}", `tombstone.yaml:1:11: database: environment variable NOPE_URL is not set`},
		{"not a postgres url", "database: ${DB_URL}", "database: mysql://x/y", `database: must be a postgres or postgresql URL, got "mysql://x/y"`},
		{"bad smtp url", `smtp: "smtp://mail:25"`, `smtp: "http://mail:25"`, `notify.email.smtp: must be a smtp or smtps URL`},
		{"target without dsn", `  pos: {dsn: "postgres://pos/x"}`, `  pos: {lock_timeout: 1s}`, `targets.pos: needs dsn`},
		{"kind without table", "    table: repos\n", "\n", `kinds.repo: needs table`},
		{"escalate below required", "{rows_over: 100000, required: 2}", "{rows_over: 100000, required: 1}\n  required: 2", ""},
		{"escalate without bound", "{rows_over: 100000, required: 2}", "{required: 2}", `approvals.escalate[0]: needs rows_over or tables_over greater than zero`},
		{"kinds not a mapping", "kinds:\n  tenant:", "kinds: [tenant]\nx:\n  tenant:", `kinds: must be a mapping, got a list`},
		{"duplicate key", "  repo:\n", "  tenant:\n", `kinds.tenant: duplicate key`},
		{"bad label", `label: "{name} ({slug})"`, `label: "name"`, `kinds.tenant.label: must name at least one column in braces`},
		{"yaml syntax", "  required: 1", "  required: [1", `tombstone.yaml:`},
		{"bad execution", "    root: soft", "    root: soft\n    execution: chunked", `kinds.repo.execution: must be single or batched, got "chunked"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Contains(t, valid, tc.old, "test case must change the file")
			src := strings.Replace(valid, tc.old, tc.new, 1)
			_, err := config.Parse("tombstone.yaml", []byte(src), goodEnv)
			require.Error(t, err)
			if tc.want != "" {
				require.Contains(t, err.Error(), tc.want)
			}
			var errs config.Errors
			require.ErrorAs(t, err, &errs)
			for _, e := range errs {
				require.NotZero(t, e.Pos.Line, "every error has a line: %v", e)
				require.NotContains(t, e.Error(), "\n")
			}
		})
	}
}

func TestParseEscalateBelowRequired(t *testing.T) {
	t.Parallel()
	src := strings.Replace(valid, "  required: 1\n", "  required: 3\n", 1)
	_, err := config.Parse("tombstone.yaml", []byte(src), goodEnv)
	require.ErrorContains(t, err, "tombstone.yaml:8:37: approvals.escalate[0].required: must be at least approvals.required (3), got 2")
}

func TestParseWholeFileErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ src, want string }{
		"empty":                                {"", "tombstone.yaml: the file is empty"},
		"no database":                          {"targets: {}\n", "database: is required"},
		"not a mapping":                        {"- a\n- b\n", "must be a mapping, got a list"},
		"kinds, no target":                     {"database: postgres://h/d\nkinds:\n  t: {table: x}\n", "targets: at least one target is needed"},
		"several targets, kind without target": {"database: postgres://h/d\ntargets:\n  a: {dsn: postgres://h/a}\n  b: {dsn: postgres://h/b}\nkinds:\n  t: {table: x}\n", "kinds.t.target: is required when there are several targets (a, b)"},
		"env default":                          {"database: ${NOPE:-postgres://h/d}\n", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("tombstone.yaml", []byte(tc.src), nil)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	require.ErrorContains(t, err, "does not exist")
	p := filepath.Join(t.TempDir(), "t.yaml")
	require.NoError(t, os.WriteFile(p, []byte(valid), 0o600))
	_, err = config.Load(p, goodEnv)
	require.NoError(t, err)
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30d": 720 * time.Hour, "1d12h": 36 * time.Hour, "15m": 15 * time.Minute, "90s": 90 * time.Second} {
		got, err := config.ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "3 days", "-5m", "1x"} {
		_, err := config.ParseDuration(in)
		if in == "" {
			continue
		}
		require.Error(t, err, in)
	}
}

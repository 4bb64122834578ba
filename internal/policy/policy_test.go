package policy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const ddl = `
CREATE TABLE customers (id bigint PRIMARY KEY, name text, deleted_at timestamptz);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE SET NULL, note text);
CREATE TABLE addresses (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE);
CREATE INDEX ON addresses (customer_id);
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE RESTRICT);
CREATE TABLE notes (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE, is_deleted boolean);
CREATE TABLE folders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE, parent_id bigint REFERENCES folders ON DELETE CASCADE);
CREATE TABLE audit_trail (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE);
`

func load(t *testing.T) map[string]*schema.Schema {
	t.Helper()
	db, _ := pgtest.Empty(t)
	_, err := db.Pool.Exec(context.Background(), ddl)
	require.NoError(t, err)
	s, err := schema.Load(context.Background(), db.Bun)
	require.NoError(t, err)
	return map[string]*schema.Schema{"app": s}
}

func parse(t *testing.T, policyYAML string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("tombstone.yaml", []byte("database: postgres://h/d\ntargets:\n  app: {dsn: postgres://h/app}\n"+policyYAML), nil)
	require.NoError(t, err)
	return cfg
}

func actions(p *policy.Plan) map[string]string {
	out := map[string]string{}
	for _, n := range p.Nodes {
		if n.Edge == nil {
			out["root"] = n.Action
			continue
		}
		out[n.Edge.To.Name] = n.Action
	}
	return out
}

func TestResolveFollowAndRulePrecedence(t *testing.T) {
	t.Parallel()
	schemas := load(t)
	cfg := parse(t, `kinds:
  customer: {table: customers}
tables:
  audit_trail: {under_delete: block}
  invoices: {under_delete: delete}
edges:
  "invoices.customer_id": {under_delete: detach}
`)
	plan, err := policy.Resolve(cfg, "customer", schemas)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"root":        "delete",
		"orders":      "detach", // ON DELETE SET NULL
		"addresses":   "delete", // CASCADE
		"invoices":    "block",  // the edge rule (detach) wins over the table rule, and a NOT NULL column cannot be detached
		"notes":       "delete",
		"folders":     "delete",
		"audit_trail": "block", // table rule
	}, actions(plan))
	for _, n := range plan.Nodes {
		if n.Table.Name.Name == "invoices" {
			require.Contains(t, n.BlockReason, "NOT NULL")
		}
		if n.Table.Name.Name == "folders" {
			require.Len(t, n.Back, 1, "the folder tree recurses into itself")
			require.Same(t, n, n.Back[0].To)
		}
	}
}

func TestResolveSoft(t *testing.T) {
	t.Parallel()
	schemas := load(t)
	cfg := parse(t, `kinds:
  customer: {table: customers, root: soft}
tables:
  addresses: {under_soft: delete}
  notes: {soft: is_deleted}
`)
	plan, err := policy.Resolve(cfg, "customer", schemas)
	require.NoError(t, err)
	a := actions(plan)
	require.Equal(t, "soft", a["root"])
	require.Equal(t, "delete", a["addresses"], "table rule under_soft: delete")
	require.Equal(t, "soft", a["notes"], "declared tombstone column")
	require.Equal(t, "keep", a["orders"], "auto: no tombstone column")
}

func TestResolveErrors(t *testing.T) {
	t.Parallel()
	schemas := load(t)
	for name, tc := range map[string]struct{ policy, want string }{
		"unknown table":    {"kinds:\n  c: {table: customerz}\n", "kinds.c.table"},
		"soft without col": {"kinds:\n  c: {table: orders, root: soft}\n", "root: soft needs a tombstone column"},
		"bad soft column":  {"kinds:\n  c: {table: customers, root: soft}\ntables:\n  customers: {soft: name}\n", "must be timestamp, timestamptz or boolean"},
		"owns unknown":     {"kinds:\n  c: {table: orders, owns: [note]}\n", `no foreign key on column "note"`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := policy.Resolve(parse(t, tc.policy), "c", schemas)
			require.ErrorContains(t, err, tc.want)
			require.Contains(t, err.Error(), "tombstone.yaml:")
		})
	}
}

func TestLint(t *testing.T) {
	t.Parallel()
	schemas := load(t)
	cfg := parse(t, `kinds:
  customer: {table: customers}
tables:
  nosuch: {protect: true}
edges:
  "orders.customer_id": {under_delete: detach}
`)
	findings, inv := policy.Lint(cfg, schemas, false)
	codes := map[string]bool{}
	for _, f := range findings {
		codes[f.Code] = true
		require.NotEmpty(t, f.Msg)
	}
	require.True(t, codes["block"], "RESTRICT on invoices blocks")
	require.True(t, codes["unindexed_fk"], "orders.customer_id has no index")
	require.True(t, codes["unknown_table"])
	require.Len(t, inv, 1)

	strict, _ := policy.Lint(cfg, schemas, true)
	var noRule []string
	for _, f := range strict {
		if f.Code == "no_explicit_rule" {
			noRule = append(noRule, f.Edge)
		}
	}
	require.NotEmpty(t, noRule)
	for _, e := range noRule {
		require.False(t, strings.HasPrefix(e, "orders."), "orders.customer_id has an explicit rule: %s", e)
	}
}

package policy_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// TestLintAlsoLinks checks also links into another target: a column whose type cannot hold
// the root's key is reported (also_type), an unindexed one too (unindexed_also), and a
// compatible indexed one is clean.
func TestLintAlsoLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schemas := load(t)
	pos, _ := pgtest.Empty(t)
	_, err := pos.Pool.Exec(ctx, `
		CREATE TABLE by_int (id bigint PRIMARY KEY, customer_id integer NOT NULL);
		CREATE INDEX ON by_int (customer_id);
		CREATE TABLE by_uuid (id bigint PRIMARY KEY, customer_id uuid NOT NULL);
		CREATE INDEX ON by_uuid (customer_id);
		CREATE TABLE by_text (id bigint PRIMARY KEY, customer_id character varying(20) NOT NULL);
		CREATE TABLE by_name (id bigint PRIMARY KEY, customer_name text NOT NULL);
		CREATE INDEX ON by_name (customer_name);`)
	require.NoError(t, err)
	s, err := schema.Load(ctx, pos.Bun)
	require.NoError(t, err)
	schemas["pos"] = s
	cfg, err := config.Parse("tombstone.yaml", []byte(`database: postgres://h/d
targets:
  app: {dsn: postgres://h/app}
  pos: {dsn: postgres://h/pos}
kinds:
  customer:
    target: app
    table: customers
    also:
      - {target: pos, table: by_int, column: customer_id}
      - {target: pos, table: by_uuid, column: customer_id}
      - {target: pos, table: by_text, column: customer_id}
      - {target: pos, table: by_name, column: customer_name, matches: name}
`), nil)
	require.NoError(t, err)
	findings, _ := policy.Lint(cfg, schemas, false)
	got := map[string][]string{}
	for _, f := range findings {
		if f.Code == "also_type" || f.Code == "unindexed_also" {
			got[f.Code] = append(got[f.Code], f.Edge)
			require.NotEmpty(t, f.Fix)
		}
	}
	require.Len(t, got["also_type"], 2, "%v", got)
	require.Contains(t, got["also_type"][0]+got["also_type"][1], "by_uuid")
	require.Contains(t, got["also_type"][0]+got["also_type"][1], "by_text")
	require.Len(t, got["unindexed_also"], 1, "%v", got)
	require.Contains(t, got["unindexed_also"][0], "by_text")
}

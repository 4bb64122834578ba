package preview_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestGoldenDemo previews one root of each demo kind and compares the text output (tree and
// summary) with testdata/golden. Run with -update to rewrite them after a deliberate change.
func TestGoldenDemo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	prefix := "golden_" + hex.EncodeToString(rnd[:])
	res, err := demo.Setup(ctx, demo.Options{AdminURL: pgtest.AdminURL(), Prefix: prefix, Seed: 1, Scale: 0.2})
	require.NoError(t, err)
	t.Cleanup(func() { _ = demo.Drop(context.Background(), pgtest.AdminURL(), prefix) })
	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = pgtest.AdminURL()
	cfg, err := config.Parse("examples/tombstone.yaml", examples.Policy(), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	dsns := map[string]string{}
	for n, tg := range cfg.Targets {
		dsns[n] = tg.DSN
	}
	pools := pg.NewPools(dsns, pg.Options{MaxConns: 4})
	t.Cleanup(pools.Close)
	engine := preview.NewEngine(cfg, pools, schema.NewCache(time.Minute))

	for _, tc := range []struct{ kind, root, file string }{
		{"tenant", "acme", "tenant_acme.txt"},
		{"repo", "acme/website", "repo_acme_website.txt"},
		{"site", "acme-shop", "site_acme_shop.txt"},
		{"site", "acme-shop-eu", "site_acme_shop_eu.txt"},
		{"site", "acme-store2", "site_acme_store2.txt"},
	} {
		plan, err := engine.Plan(ctx, tc.kind)
		require.NoError(t, err)
		root, err := engine.FindRoot(ctx, plan, tc.root)
		require.NoError(t, err)
		p, err := engine.Run(ctx, plan, root.Key)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, preview.WriteText(&buf, p))
		path := filepath.Join("testdata", "golden", tc.file)
		if *update {
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
			require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		require.NoError(t, err, "missing golden file; run go test ./internal/preview -run TestGoldenDemo -update")
		require.Equal(t, string(want), buf.String(), "%s %s differs from %s", tc.kind, tc.root, path)
	}
}

package preview_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// BenchmarkPreview compares the exact preview of the demo tenant "bigco" (BENCH_ROWS rows
// under it, default 1,000,000) with a hand-written baseline measured in the same run: one
// join-count query per path of the tree, root to node, in one REPEATABLE READ snapshot per
// target (a recursive node is counted at its first level only, which favours the baseline).
// It also times the planner estimates. Each figure is the median of BENCH_RUNS runs (default 3).
//
//	go test -run '^$' -bench Preview -benchtime 1x ./internal/preview/
func BenchmarkPreview(b *testing.B) {
	rows := int64(envInt("BENCH_ROWS", 1_000_000))
	runs := envInt("BENCH_RUNS", 3)
	ctx := context.Background()
	prefix := fmt.Sprintf("tsbench%d", rows)
	b.Logf("generating the demo with %d rows under bigco…", rows)
	res, err := demo.Setup(ctx, demo.Options{AdminURL: pgtest.AdminURL(), Prefix: prefix, Seed: 1, Scale: 1, BigTenantRows: rows})
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("BENCH_KEEP") == "" {
		b.Cleanup(func() { _ = demo.Drop(context.Background(), pgtest.AdminURL(), prefix) })
	}
	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = pgtest.AdminURL()
	cfg, err := config.Parse("examples/tombstone.yaml", examples.Policy(), func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		b.Fatal(err)
	}
	dsns := map[string]string{}
	for n, t := range cfg.Targets {
		dsns[n] = t.DSN
	}
	pools := pg.NewPools(dsns, pg.Options{})
	defer pools.Close()
	engine := preview.NewEngine(cfg, pools, schema.NewCache(time.Minute))
	plan, err := engine.Plan(ctx, "tenant")
	if err != nil {
		b.Fatal(err)
	}
	root, err := engine.FindRoot(ctx, plan, "bigco")
	if err != nil {
		b.Fatal(err)
	}

	var exact, baseline, estimate []time.Duration
	var p *preview.Preview
	var base int64
	var peakHeap uint64
	for i := 0; i < runs; i++ {
		start := time.Now()
		base, err = joinCounts(ctx, pools, plan, root.Key)
		if err != nil {
			b.Fatal(err)
		}
		baseline = append(baseline, time.Since(start))

		start = time.Now()
		if _, err := engine.Estimate(ctx, plan); err != nil {
			b.Fatal(err)
		}
		estimate = append(estimate, time.Since(start))

		runtime.GC()
		start = time.Now()
		p, err = engine.Run(ctx, plan, root.Key)
		if err != nil {
			b.Fatal(err)
		}
		exact = append(exact, time.Since(start))
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
	}
	var reached int64
	for _, n := range walk(p.Tree) {
		reached += n.Rows
	}
	me, mb, mt := median(exact), median(baseline), median(estimate)
	fmt.Printf("\npreview of bigco: %s rows reached (%s changed); baseline join counts %s\n", preview.Thousands(reached), preview.Thousands(p.Totals.Changed()), preview.Thousands(base))
	fmt.Printf("%-28s %10s %21s %8s\n", "measure", "median", "min–max", "ratio")
	fmt.Printf("%-28s %10s %21s %8s\n", "join-count baseline", round(mb), spread(baseline), "1.00")
	fmt.Printf("%-28s %10s %21s %8.2f\n", "exact preview", round(me), spread(exact), float64(me)/float64(mb))
	fmt.Printf("%-28s %10s %21s %8.3f\n", "planner estimates", round(mt), spread(estimate), float64(mt)/float64(me))
	fmt.Printf("peak RSS %s MiB, Go heap in use %s MiB\n\n", peakRSS(), strconv.FormatUint(peakHeap>>20, 10))
	b.ReportMetric(float64(me)/float64(mb), "exact/baseline")
	b.ReportMetric(float64(mt)/float64(me), "estimate/exact")
}

func walk(n *preview.Node) []*preview.Node {
	out := []*preview.Node{n}
	for _, c := range n.Children {
		out = append(out, walk(c)...)
	}
	return out
}

// joinCounts runs one count(*) per plan node, joining from the root down its path.
func joinCounts(ctx context.Context, pools *pg.Pools, plan *policy.Plan, rootKey []string) (int64, error) {
	txs := map[string]pgx.Tx{}
	defer func() {
		for _, tx := range txs {
			_ = tx.Rollback(ctx)
		}
	}()
	for _, t := range plan.Targets {
		db, err := pools.DB(ctx, t)
		if err != nil {
			return 0, err
		}
		tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return 0, err
		}
		txs[t] = tx
	}
	var total int64
	for _, n := range plan.Nodes {
		var path []*policy.Node
		for m := n; m != nil && m.Target == n.Target; m = m.Parent {
			path = append(path, m)
		}
		top := path[len(path)-1]
		var from []string
		for i, m := range path {
			alias := "a" + strconv.Itoa(i)
			if i == 0 {
				from = append(from, m.Table.Name.Quoted()+" "+alias)
				continue
			}
			child, e := path[i-1], path[i-1].Edge
			on := make([]string, len(e.ToColumns))
			for k := range e.ToColumns {
				on[k] = fmt.Sprintf("a%d.%s = %s.%s", i-1, pg.QuoteIdent(e.ToColumns[k]), alias, pg.QuoteIdent(e.FromColumns[k]))
			}
			_ = child
			from = append(from, "JOIN "+m.Table.Name.Quoted()+" "+alias+" ON "+strings.Join(on, " AND "))
		}
		top0 := "a" + strconv.Itoa(len(path)-1)
		var where string
		if top.Parent == nil {
			where = fmt.Sprintf("%s.%s = $1::text::bigint", top0, pg.QuoteIdent(top.Table.PrimaryKey[0]))
		} else {
			where = fmt.Sprintf("%s.%s = $1::text::bigint", top0, pg.QuoteIdent(top.Edge.ToColumns[0]))
		}
		var c int64
		sql := "SELECT count(*) FROM " + strings.Join(from, " ") + " WHERE " + where
		if err := txs[n.Target].QueryRow(ctx, sql, rootKey[0]).Scan(&c); err != nil {
			return 0, fmt.Errorf("%s: %w", sql, err)
		}
		total += c
	}
	return total, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func spread(ds []time.Duration) string {
	return round(slices.Min(ds)) + "–" + round(slices.Max(ds))
}

func round(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// peakRSS reads the process's peak resident set (VmHWM) in MiB.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return strconv.FormatInt(kb/1024, 10)
			}
		}
	}
	return "?"
}

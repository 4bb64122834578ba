package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// Dataset is the demo generator's output with bigco owning Rows rows, next to 99 ordinary
// tenants. Benchmarks must not change it: execution benchmarks work on copies (CopyApp).
type Dataset struct {
	Rows   int64
	Label  string
	Prefix string
	// URLs maps a demo target ("app", "pos", "alerts") to its database URL.
	URLs map[string]string
	// Reused is true when an existing, complete dataset from an earlier run was used.
	Reused bool
}

// bigTenant is the slug of the tenant the benchmarks delete and preview.
const bigTenant = "bigco"

// otherTenants is the number of ordinary tenants next to bigco: the demo makes Scale×50.
const otherTenants = 99

var datasets struct {
	sync.Mutex
	built map[int64]*datasetOnce
	// drop lists databases to drop when the suite ends.
	drop []string
}

type datasetOnce struct {
	once sync.Once
	ds   *Dataset
	err  error
}

// keep reports whether datasets outlive the run (BENCH_KEEP=1), to be reused by the next one.
func keep() bool { return os.Getenv("BENCH_KEEP") == "1" }

// GetDataset returns the dataset with rows under bigco, building it on first use in this
// process. With BENCH_KEEP=1 it lives in tsbench_<rows>_* and is reused across runs when it is
// complete and was built by the same generator; otherwise each process builds its own, under a
// name of its own, and drops it at the end.
func GetDataset(tb testing.TB, rows int64) *Dataset {
	tb.Helper()
	datasets.Lock()
	if datasets.built == nil {
		datasets.built = map[int64]*datasetOnce{}
	}
	d := datasets.built[rows]
	if d == nil {
		d = &datasetOnce{}
		datasets.built[rows] = d
	}
	datasets.Unlock()
	d.once.Do(func() { d.ds, d.err = buildDataset(tb, rows) })
	if d.err != nil {
		tb.Fatalf("dataset of %s rows: %v", Label(rows), d.err)
	}
	return d.ds
}

func buildDataset(tb testing.TB, rows int64) (*Dataset, error) {
	ctx := context.Background()
	prefix := fmt.Sprintf("tsbench_%d", rows)
	if !keep() {
		prefix = fmt.Sprintf("tsbench_%d_p%d", rows, os.Getpid())
	}
	opts := demo.Options{AdminURL: pgtest.AdminURL(), Prefix: prefix, Seed: 1, Scale: otherTenants / 50.0, BigTenantRows: rows}
	stamp, err := generatorStamp(opts)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Rows: rows, Label: Label(rows), Prefix: prefix, URLs: map[string]string{}}
	for _, t := range demo.Targets {
		ds.URLs[t] = pgtest.WithDatabase(pgtest.AdminURL(), demo.DatabaseName(prefix, t))
	}
	admin := pgtest.Admin(tb)
	// Two processes keeping datasets must not build the same one at once.
	conn, err := admin.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	lock := int64(lockKey(prefix))
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lock); err != nil {
		return nil, err
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lock) }()

	if keep() {
		complete, err := stamped(ctx, admin, prefix, stamp)
		if err != nil {
			return nil, err
		}
		if complete {
			ds.Reused = true
			tb.Logf("reusing dataset %s (%s rows under %s)", prefix, ds.Label, bigTenant)
			return ds, nil
		}
	} else {
		datasets.Lock()
		for _, t := range demo.Targets {
			datasets.drop = append(datasets.drop, demo.DatabaseName(prefix, t))
		}
		datasets.Unlock()
	}
	tb.Logf("generating dataset %s: %s rows under %s, %d other tenants…", prefix, ds.Label, bigTenant, otherTenants)
	start := time.Now()
	if _, err := demo.Setup(ctx, opts); err != nil {
		return nil, err
	}
	// The stamp goes on last, so an interrupted build is never taken for a complete one.
	for _, t := range demo.Targets {
		name := demo.DatabaseName(prefix, t)
		if _, err := admin.Pool.Exec(ctx, "COMMENT ON DATABASE "+pg.QuoteIdent(name)+" IS "+pg.QuoteLiteral(stamp)); err != nil {
			return nil, fmt.Errorf("stamp %s: %w", name, err)
		}
	}
	tb.Logf("dataset %s generated in %s", prefix, time.Since(start).Round(time.Second))
	return ds, nil
}

func lockKey(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("tombstone bench " + s))
	return h.Sum64()
}

// generatorStamp identifies the generator's output: a hash of the demo package's sources and
// SQL (read from the module, next to this package) and the options.
func generatorStamp(opts demo.Options) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	var files []string
	for _, pattern := range []string{"internal/demo/*.go", "internal/demo/sql/*.sql"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return "", fmt.Errorf("no demo generator sources under %s", root)
	}
	h := sha256.New()
	fmt.Fprintf(h, "seed=%d scale=%g rows=%d\n", opts.Seed, opts.Scale, opts.BigTenantRows)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	return "tombstone bench dataset " + hex.EncodeToString(h.Sum(nil))[:32], nil
}

// stamped reports whether the three databases of prefix exist and carry stamp.
func stamped(ctx context.Context, admin *pg.DB, prefix, stamp string) (bool, error) {
	for _, t := range demo.Targets {
		var comment *string
		err := admin.Pool.QueryRow(ctx, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
			demo.DatabaseName(prefix, t)).Scan(&comment)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (comment == nil || *comment != stamp)) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// CopyOf creates a new database from template (CREATE DATABASE ... TEMPLATE) and returns its
// URL; it is dropped when tb ends. The template must have no open connections: PostgreSQL
// refuses the copy then, so this retries for a minute in case another benchmark is closing its
// pools.
func CopyOf(tb testing.TB, template, name string) string {
	tb.Helper()
	if err := createFrom(context.Background(), pgtest.Admin(tb), template, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dropDatabase(pgtest.Admin(tb), name) })
	return pgtest.WithDatabase(pgtest.AdminURL(), name)
}

func createFrom(ctx context.Context, admin *pg.DB, template, name string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := admin.Pool.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(name)+" TEMPLATE "+pg.QuoteIdent(template))
		var pgErr *pgconn.PgError
		// 55006: source database is being accessed by other users.
		if err != nil && errors.As(err, &pgErr) && pgErr.Code == "55006" && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			continue
		}
		if err != nil {
			return fmt.Errorf("copy database %s to %s: %w", template, name, err)
		}
		return nil
	}
}

func dropDatabase(admin *pg.DB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _ = admin.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(name)+" WITH (FORCE)")
}

// dropLater drops name when the suite ends, whatever BENCH_KEEP says.
func dropLater(name string) {
	datasets.Lock()
	defer datasets.Unlock()
	datasets.drop = append(datasets.drop, name)
}

// dropDatasets drops the databases this process built and does not keep.
func dropDatasets() {
	datasets.Lock()
	names := datasets.drop
	datasets.drop = nil
	datasets.Unlock()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pg.Open(ctx, pgtest.AdminURL(), pg.Options{MaxConns: 1, ApplicationName: "tombstone bench"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cannot drop the datasets:", err)
		return
	}
	defer admin.Close()
	for _, n := range names {
		dropDatabase(admin, n)
	}
}

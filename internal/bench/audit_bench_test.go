package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// auditExportMax is the size of the audit log the export is measured on when the suite runs
// at 1M rows or more.
const auditExportMax = 1_000_000

// auditEvents is the number of events exported: 1M when Sizes() reaches 1M, else the largest
// size (BENCH_SIZES=10000 exports 10k events).
func auditEvents() int64 {
	return min(slices.Max(Sizes()), auditExportMax)
}

// BenchmarkAuditExport streams the whole audit log as CSV with audit.Export, Runs() times,
// and records rows/s and the process's peak RSS during the export (which must not grow with
// the log: the export reads through a server-side cursor).
func BenchmarkAuditExport(b *testing.B) {
	n := auditEvents()
	db := pgtest.Fresh(b)
	ctx := context.Background()
	start := time.Now()
	if err := seedAuditLog(ctx, db, n); err != nil {
		b.Fatal(err)
	}
	b.Logf("audit log of %s events seeded in %s", Label(n), time.Since(start).Round(time.Second))
	b.ResetTimer()
	var rate, rss []float64
	for run := range Runs() {
		// The export appends an "exported" event first, and the export includes it.
		want := n + int64(run) + 1
		runtime.GC()
		debug.FreeOSMemory()
		reset := resetPeakRSS()
		var out csvLines
		t0 := time.Now()
		got, err := audit.Export(ctx, db.Bun, &out, audit.FormatCSV, audit.Filter{}, audit.Actor{Name: "bench"})
		took := time.Since(t0)
		if err != nil {
			b.Fatalf("run %d: %v", run+1, err)
		}
		if got != want || out.lines != want+1 {
			b.Fatalf("run %d: exported %d events in %d CSV lines, want %d events and a header", run+1, got, out.lines, want)
		}
		rate = append(rate, float64(got)/took.Seconds())
		if reset {
			rss = append(rss, peakRSSMiB())
		}
		b.Logf("run %d: %d events in %s (%.0f rows/s, %.1f MiB of CSV)", run+1, got, took.Round(time.Millisecond), rate[run], float64(out.bytes)/(1<<20))
	}
	b.StopTimer()
	size := Label(n)
	Record(Figure{Section: "audit", Name: "CSV export", Size: size, Unit: "rows/s", Runs: rate,
		Note: "audit.Export of the whole log to a byte counter, through a server-side cursor"})
	if len(rss) == len(rate) {
		Record(Figure{Section: "audit", Name: "CSV export peak RSS", Size: size, Unit: "MiB", Runs: rss,
			Note: "resident set of the Go process (VmHWM, reset before each run)"})
		b.ReportMetric(Median(rss), "peak-RSS-MiB")
	}
	b.ReportMetric(Median(rate), "rows/s")
}

// csvLines counts the bytes and lines written to it (by their LF: a CRLF may be split across
// two writes). No value of the seeded log holds a line break, so each event is one line.
type csvLines struct {
	bytes, lines int64
}

func (c *csvLines) Write(p []byte) (int, error) {
	c.bytes += int64(len(p))
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// seedAuditLog fills an empty audit log with n "executed" events in one INSERT … SELECT,
// shaped like the executor's (per-table counts in details, a reason, a plan digest). The
// events link prev_hash to the previous event's hash, but the hashes are not SHA-256 over
// the canonical JSON: computing those means appending one event at a time, far too slow for
// 1M events. Export streams the rows without verifying them, so the measurement is the
// same; Verify would report the chain broken at event 1.
func seedAuditLog(ctx context.Context, db *pg.DB, n int64) error {
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO audit_events (seq, at, actor_id, actor_name, action, request_id, kind, target,
			root_key, root_label, reason, plan_digest, policy_hash, details, client_ip, prev_hash, hash)
		SELECT i, timestamptz '2025-01-01 00:00:00+00' + i * interval '1 second', NULL, 'executor', 'executed', i,
			'tenant', 'app', i::text, 'Tenant ' || i || ' (tenant-' || i || ')',
			'ticket #' || i || ': customer asked to close the account',
			encode(sha256(('plan ' || i)::bytea), 'hex'), encode(sha256('policy'::bytea), 'hex'),
			jsonb_build_object('tables', jsonb_build_object(
				'public.tenants', 1, 'public.orders', i % 1000, 'public.invoices', i % 77,
				'public.users', i % 13, 'public.sessions', i % 5)),
			'',
			CASE WHEN i = 1 THEN $2 ELSE encode(sha256(('event ' || (i - 1))::bytea), 'hex') END,
			encode(sha256(('event ' || i)::bytea), 'hex')
		FROM generate_series(1, $1::bigint) AS i`, n, audit.GenesisHash)
	if err != nil {
		return fmt.Errorf("seed %d audit events: %w", n, err)
	}
	if _, err := db.Pool.Exec(ctx, "ANALYZE audit_events"); err != nil {
		return fmt.Errorf("analyze audit_events: %w", err)
	}
	return nil
}

package audit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// BenchmarkAppend measures append throughput with 8 concurrent writers, each committing one
// event per transaction.
func BenchmarkAppend(b *testing.B) {
	db := pgtest.Fresh(b)
	ctx := context.Background()
	const writers = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := Append(ctx, db.Bun, event(ActionApproved)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// benchEvents is the size of the log for the export and verify benchmarks:
// BENCH_AUDIT_EVENTS=1000000 for the full run.
func benchEvents(b *testing.B) int {
	n := 10_000
	if s := os.Getenv("BENCH_AUDIT_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("BENCH_AUDIT_EVENTS=%q: want a positive integer", s)
		}
		n = v
	}
	return n
}

// seedChain inserts n valid events with COPY, bypassing Append, computing each hash as it goes
// so that setup memory stays flat too.
func seedChain(b *testing.B, db *pg.DB, n int) {
	b.Helper()
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := GenesisHash
	i := 0
	cols := strings.Split(strings.ReplaceAll(columns, " ", ""), ",")
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		i++
		e := event(ActionExecuted, func(e *Event) {
			e.RequestID = ptr(int64(i))
			e.Reason = fmt.Sprintf("ticket #%d: customer asked to close the account", i)
			e.Details = map[string]any{"tables": map[string]any{
				"public.tenants": int64(1), "public.orders": int64(i % 1000), "public.invoices": int64(i % 77),
				"public.users": int64(i % 13), "public.sessions": int64(i % 5),
			}}
		})
		e.Seq, e.At, e.PrevHash = int64(i), at.Add(time.Duration(i)*time.Second), prev
		h, err := computeHash(e)
		if err != nil {
			return nil, err
		}
		e.Hash, prev = h, h
		d, err := detailsJSON(e.Details)
		if err != nil {
			return nil, err
		}
		return []any{e.Seq, e.At, e.ActorID, e.ActorName, string(e.Action), e.RequestID, e.Kind, e.Target,
			e.RootKey, e.RootLabel, e.Reason, e.PlanDigest, e.PolicyHash, d, e.ClientIP, e.PrevHash, e.Hash}, nil
	})
	copied, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"audit_events"}, cols, src)
	if err != nil || copied != int64(n) {
		b.Fatalf("seed %d events: copied %d: %v", n, copied, err)
	}
	if _, err := db.Pool.Exec(ctx, "ANALYZE audit_events"); err != nil {
		b.Fatal(err)
	}
}

// peakRSS resets the process's peak resident set size (Linux) and returns a function that
// reads it, in MiB, or -1 where /proc is not available.
func peakRSS() func() float64 {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return func() float64 {
		f, err := os.Open("/proc/self/status")
		if err != nil {
			return -1
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err == nil {
					return kb / 1024
				}
			}
		}
		return -1
	}
}

// BenchmarkExport measures streaming the whole log as CSV and JSON Lines; rows/s and the peak
// RSS during the export, which should not grow with BENCH_AUDIT_EVENTS.
func BenchmarkExport(b *testing.B) {
	n := benchEvents(b)
	db := pgtest.Fresh(b)
	seedChain(b, db, n)
	for _, format := range []Format{FormatCSV, FormatJSONL} {
		b.Run(fmt.Sprintf("%s/events=%d", format, n), func(b *testing.B) {
			ctx := context.Background()
			peak := peakRSS()
			var rows int64
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				got, err := Export(ctx, db.Bun, io.Discard, format, Filter{}, Actor{Name: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				rows += got
			}
			b.StopTimer()
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
			b.ReportMetric(peak(), "peak-RSS-MiB")
		})
	}
}

// BenchmarkVerify measures recomputing the whole chain from the database.
func BenchmarkVerify(b *testing.B) {
	n := benchEvents(b)
	db := pgtest.Fresh(b)
	seedChain(b, db, n)
	ctx := context.Background()
	peak := peakRSS()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		res, err := Verify(ctx, db.Bun, 1)
		if err != nil || !res.OK || res.Last != int64(n) {
			b.Fatalf("%v %v", res, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(peak(), "peak-RSS-MiB")
}

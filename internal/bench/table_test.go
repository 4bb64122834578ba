package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Figure is one row of the benchmark table.
type Figure struct {
	Section  string    // "preview", "execution", "console", "audit"
	Name     string    // e.g. "exact preview", "hard delete"
	Size     string    // dataset, e.g. "10k", "1M", "10M", or ""
	Unit     string    // "s", "ms", "MiB", "req/s", "rows/s"
	Runs     []float64 // ≥3 measured values, in Unit
	Baseline string    // what the ratio is against, e.g. "ON DELETE CASCADE"; "" when none
	BaseRuns []float64 // the baseline's values measured in the same run, in Unit
	Target   string    // e.g. "≤ 1.2×", "< 100 ms", "" when none
	Met      *bool     // nil when there is no target
	Note     string    // why a target is missed, or what the figure means
}

var table struct {
	sync.Mutex
	figures []Figure
}

// Record adds a figure to the table printed when the suite ends. It is safe for concurrent use.
func Record(f Figure) {
	table.Lock()
	defer table.Unlock()
	f.Runs = slices.Clone(f.Runs)
	f.BaseRuns = slices.Clone(f.BaseRuns)
	table.figures = append(table.figures, f)
}

// recorded returns a copy of the figures recorded so far, in recording order.
func recorded() []Figure {
	table.Lock()
	defer table.Unlock()
	return slices.Clone(table.figures)
}

// Median returns the median of xs (the mean of the two middle values for an even count), or 0
// for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Runs is the number of measured repetitions of every figure: BENCH_RUNS, default 3, and never
// fewer than 3 so that a median and a spread mean something.
func Runs() int {
	n, err := strconv.Atoi(os.Getenv("BENCH_RUNS"))
	if err != nil || n < 3 {
		return 3
	}
	return n
}

// Measure calls fn n times and returns the durations it reports, in seconds. fn times only
// the work it measures, so that per-run setup (copying a database) is left out.
func Measure(n int, fn func() (time.Duration, error)) ([]float64, error) {
	out := make([]float64, 0, n)
	for i := range n {
		d, err := fn()
		if err != nil {
			return out, fmt.Errorf("run %d of %d: %w", i+1, n, err)
		}
		out = append(out, d.Seconds())
	}
	return out, nil
}

// Sizes are the numbers of rows under the big tenant that the suite runs at: 10,000 and
// 1,000,000, plus 10,000,000 with BENCH_LARGE=1. BENCH_SIZES (comma-separated, e.g.
// "10000,100000") overrides both.
func Sizes() []int64 {
	out, err := parseSizes(os.Getenv("BENCH_SIZES"))
	if err != nil {
		panic(err) // TestMain has already rejected a bad BENCH_SIZES with this message
	}
	return out
}

func parseSizes(s string) ([]int64, error) {
	if s = strings.TrimSpace(s); s == "" {
		out := []int64{10_000, 1_000_000}
		if os.Getenv("BENCH_LARGE") == "1" {
			out = append(out, 10_000_000)
		}
		return out, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(f), "_", ""), 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("BENCH_SIZES=%q: %q is not a positive row count (want e.g. 10000,1000000)", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Label is the short name of a dataset size: 10000 → "10k", 1000000 → "1M", 2500 → "2.5k".
func Label(rows int64) string {
	switch {
	case rows >= 1_000_000 && rows%100_000 == 0:
		return trimFloat(float64(rows)/1e6) + "M"
	case rows >= 1_000 && rows%100 == 0:
		return trimFloat(float64(rows)/1e3) + "k"
	default:
		return strconv.FormatInt(rows, 10)
	}
}

func trimFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Met returns a pointer to ok, for Figure.Met.
func Met(ok bool) *bool {
	return &ok
}

// resetPeakRSS resets the process's peak resident set size (Linux: /proc/self/clear_refs),
// so that peakRSSMiB then reports the peak of what follows. It returns false where the reset is
// not possible; the peak is then the process's lifetime peak.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSSMiB is the peak resident set size since the last resetPeakRSS (VmHWM), or the
// lifetime peak from getrusage where /proc is not available.
func peakRSSMiB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb float64
				if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Maxrss) / 1024 // kilobytes on Linux
}

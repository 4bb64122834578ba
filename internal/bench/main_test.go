package bench

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// TestMain checks the environment, runs the benchmarks, prints the table and, with BENCH_OUT,
// saves it as Markdown. Databases come from pgtest.Admin, Fresh and Empty (each dropped by its
// own cleanup) and from the datasets and copies of this package, dropped here.
func TestMain(m *testing.M) {
	if _, err := parseSizes(os.Getenv("BENCH_SIZES")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	start := time.Now()
	code := m.Run()
	dropDatasets()
	figures := recorded()
	if len(figures) > 0 {
		fmt.Println()
		printTable(os.Stdout, figures)
		if out := os.Getenv("BENCH_OUT"); out != "" {
			if err := writeMarkdown(out, figures, time.Since(start)); err != nil {
				fmt.Fprintln(os.Stderr, "bench: write", out+":", err)
				code = max(code, 1)
			}
		}
	}
	os.Exit(code)
}

// row is a figure's printable cells.
type row struct {
	section, name, size, median, spread, baseline, base, ratio, target, met, note string
}

func cells(f Figure) row {
	r := row{section: f.Section, name: f.Name, size: f.Size, baseline: f.Baseline, target: f.Target, note: f.Note}
	if len(f.Runs) > 0 {
		r.median = formatValue(Median(f.Runs), f.Unit)
		r.spread = formatValue(slices.Min(f.Runs), f.Unit) + " – " + formatValue(slices.Max(f.Runs), f.Unit)
	}
	if len(f.BaseRuns) > 0 {
		r.base = formatValue(Median(f.BaseRuns), f.Unit)
		if b := Median(f.BaseRuns); b != 0 && len(f.Runs) > 0 {
			r.ratio = fmt.Sprintf("%.2f×", Median(f.Runs)/b)
		}
	}
	switch {
	case f.Met == nil:
	case *f.Met:
		r.met = "met"
	default:
		r.met = "MISSED"
	}
	return r
}

// formatValue prints v with three significant digits; seconds below one are shown in ms.
func formatValue(v float64, unit string) string {
	if unit == "s" && math.Abs(v) < 1 {
		v, unit = v*1000, "ms"
	}
	var s string
	switch a := math.Abs(v); {
	case a >= 100:
		s = fmt.Sprintf("%.0f", v)
	case a >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	return s + " " + unit
}

var header = row{"section", "figure", "size", "median", "min – max", "baseline", "baseline median", "ratio", "target", "", "note"}

func (r row) list() []string {
	return []string{r.section, r.name, r.size, r.median, r.spread, r.baseline, r.base, r.ratio, r.target, r.met, r.note}
}

func printTable(w io.Writer, figures []Figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header.list(), "\t"))
	for _, f := range sortFigures(figures) {
		fmt.Fprintln(tw, strings.Join(cells(f).list(), "\t"))
	}
	_ = tw.Flush()
}

// sortFigures orders the table by section (preview, execution, console, audit, then others),
// keeping each section's recording order.
func sortFigures(figures []Figure) []Figure {
	order := map[string]int{"preview": 0, "execution": 1, "console": 2, "audit": 3}
	rank := func(s string) int {
		if r, ok := order[s]; ok {
			return r
		}
		return len(order)
	}
	out := slices.Clone(figures)
	slices.SortStableFunc(out, func(a, b Figure) int { return rank(a.Section) - rank(b.Section) })
	return out
}

func writeMarkdown(path string, figures []Figure, took time.Duration) error {
	if !filepath.IsAbs(path) {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		path = filepath.Join(root, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured %s in %s with:\n\n```\n%s\n```\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), took.Round(time.Second), command())
	b.WriteString("Each figure is the median of the runs, with their minimum and maximum; the baseline is measured in the same runs, and the ratio is the figure's median over the baseline's.\n\n")
	b.WriteString("## Machine\n\n")
	for _, l := range machine() {
		b.WriteString("- " + l + "\n")
	}
	b.WriteString("\n## Results\n\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	h := header
	h.met = "met"
	b.WriteString("| " + strings.Join(h.list(), " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(h.list())) + "|\n")
	for _, f := range sortFigures(figures) {
		cs := cells(f).list()
		for i := range cs {
			cs[i] = esc(cs[i])
		}
		b.WriteString("| " + strings.Join(cs, " | ") + " |\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// moduleRoot is the directory holding go.mod, above the package directory tests run in.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
	}
}

// command reconstructs the command line that ran the suite: the BENCH_ variables and the test
// flags that matter.
func command() string {
	var parts []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BENCH_") {
			parts = append(parts, kv)
		}
	}
	slices.Sort(parts)
	parts = append(parts, "go test -run '^$'")
	for _, name := range []string{"bench", "benchtime", "timeout"} {
		if f := flag.Lookup("test." + name); f != nil && f.Value.String() != "" {
			parts = append(parts, "-"+name+" '"+f.Value.String()+"'")
		}
	}
	return strings.Join(append(parts, "./internal/bench/"), " ")
}

// machine describes the CPU, memory, PostgreSQL and Go the figures were measured on.
func machine() []string {
	cpu := firstField("/proc/cpuinfo", "model name")
	if cpu == "" {
		cpu = runtime.GOARCH
	}
	out := []string{fmt.Sprintf("CPU: %s, %d cores", cpu, runtime.NumCPU())}
	if mem := firstField("/proc/meminfo", "MemTotal"); mem != "" {
		var kb int64
		if _, err := fmt.Sscanf(mem, "%d", &kb); err == nil {
			mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
		out = append(out, "Memory: "+mem)
	}
	out = append(out, "PostgreSQL: "+serverVersion(), "Go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return out
}

// firstField returns the value of the first "key: value" line of a /proc file, or "".
func firstField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func serverVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := pg.Open(ctx, pgtest.AdminURL(), pg.Options{MaxConns: 1, ApplicationName: "tombstone bench"})
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer db.Close()
	var v string
	if err := db.Pool.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return v
}

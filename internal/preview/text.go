package preview

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tombstone-console/tombstone/internal/config"
)

// BatchNote is what a preview says about a kind that runs in batches (execution: batched): the
// number of batches, from the preview's rows, and the trade-off. It is "" for a kind that runs
// in one transaction.
func BatchNote(k *config.Kind, p *Preview) string {
	if k == nil || k.Execution != config.ExecBatched {
		return ""
	}
	m := int64(k.BatchRows)
	if m <= 0 {
		m = config.DefaultBatchRows
	}
	n := max(1, (p.Totals.Changed()+m-1)/m)
	batches := "batches"
	if n == 1 {
		batches = "batch"
	}
	return fmt.Sprintf("Runs in about %s %s of at most %s rows; not atomic; the root is hidden first", Thousands(n), batches, Thousands(m))
}

// WriteText prints the preview as an indented tree and a summary table, as `console preview`
// shows it, with notes (such as BatchNote's; empty ones are skipped) after the totals.
func WriteText(w io.Writer, p *Preview, notes ...string) error {
	bw := &errWriter{w: w}
	root := p.Root
	state := ""
	if root.Tombstoned {
		state = " [already tombstoned]"
	}
	fmt.Fprintf(bw, "%s %s: %s (%s, key %s)%s\n", p.Action, p.Kind, root.Label, root.Table, root.Key, state)
	if !p.Exact {
		fmt.Fprintln(bw, "(planner estimates; exact counts pending)")
	}
	fmt.Fprintln(bw)
	writeNode(bw, p.Tree, "", true, true)
	fmt.Fprintln(bw)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TARGET\tTABLE\tACTION\tROWS\t")
	for _, s := range p.Summary {
		extra := ""
		if s.AlreadyTombstoned > 0 {
			extra = fmt.Sprintf(" (+%s already)", Thousands(s.AlreadyTombstoned))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\t\n", s.Target, s.Table, s.Action, Thousands(s.Rows), extra)
	}
	tw.Flush()
	t := p.Totals
	fmt.Fprintf(bw, "\ntotal: %s delete, %s soft, %s detach, %s keep, %s block across %d tables\n",
		Thousands(t.Delete), Thousands(t.Soft), Thousands(t.Detach), Thousands(t.Keep), Thousands(t.Block), t.Tables)
	if len(p.Targets) > 1 {
		for _, tt := range p.Targets {
			fmt.Fprintf(bw, "  %s: %s changed\n", tt.Target, Thousands(tt.Totals.Changed()))
		}
	}
	for _, n := range notes {
		if n != "" {
			fmt.Fprintf(bw, "%s\n", n)
		}
	}
	if len(p.Blockers) > 0 {
		fmt.Fprintln(bw, "\nBLOCKED:")
		for _, b := range p.Blockers {
			fmt.Fprintf(bw, "  %s rows of %s (%s): %s\n", Thousands(b.Rows), b.Table, b.Path, b.Reason)
			for _, r := range b.Sample {
				fmt.Fprintf(bw, "    %s\n", rowText(r))
			}
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(bw, "\nwarnings:")
		for _, w := range p.Warnings {
			fmt.Fprintf(bw, "  - %s\n", w.Message)
		}
	}
	if p.Digest != "" {
		fmt.Fprintf(bw, "\ndigest %s\n", p.Digest)
	}
	return bw.err
}

func writeNode(w io.Writer, n *Node, indent string, last, root bool) {
	branch := ""
	next := indent
	if !root {
		if last {
			branch, next = "└─ ", indent+"   "
		} else {
			branch, next = "├─ ", indent+"│  "
		}
	}
	via := ""
	if n.Via != "" {
		via = " " + n.Via
	}
	approx := ""
	if n.Estimate {
		approx = "~"
	}
	rec := ""
	if n.Recursive {
		rec = " (recursive)"
	}
	target := ""
	if root || n.Target != "" && strings.Contains(n.Edge, "(also)") {
		target = " [" + n.Target + "]"
	}
	fmt.Fprintf(w, "%s%s%s%s%s  %s  %s%s rows%s\n", indent, branch, n.Table, target, via, strings.ToUpper(n.Action), approx, Thousands(n.Rows), rec)
	for _, r := range n.Sample {
		fmt.Fprintf(w, "%s%s  · %s\n", next, pad(len(n.Children) > 0), rowText(r))
	}
	for i, c := range n.Children {
		writeNode(w, c, next, i == len(n.Children)-1, false)
	}
}

func pad(hasChildren bool) string {
	if hasChildren {
		return "│"
	}
	return " "
}

func rowText(r Row) string {
	if r.Label != "" {
		return r.Key + " " + r.Label
	}
	return r.Key
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

package exec

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// progress keeps one target's live status and writes it to the console database, at most
// every ProgressEvery. It runs on the executing goroutine; the writes use the console pool, not
// the target transaction, so the request page sees them while the transaction is open.
type progress struct {
	e      *Executor
	id     int64
	status TargetStatus
	last   time.Time
}

func (e *Executor) newProgress(id int64, target string, summary []preview.SummaryLine) *progress {
	return &progress{e: e, id: id, status: TargetStatus{Target: target, Phase: PhaseLocking, Tables: planned(target, summary)}}
}

// step records a finished step of ApplyTx.
func (p *progress) step(s Step) {
	switch s.Phase {
	case "archived":
		p.status.Phase = PhaseArchived
		faultpoint(FaultArchived, p.id)
	case "applied":
		p.status.Phase = PhaseApplying
		for i := range p.status.Tables {
			t := &p.status.Tables[i]
			if t.Table == s.Table && t.Action == s.Action {
				t.Done += s.Rows
			}
		}
	}
	p.write(context.Background(), false)
}

// phase moves to a new phase and writes it (now when force).
func (p *progress) phase(ctx context.Context, phase string, force bool) {
	p.status.Phase = phase
	p.write(ctx, force)
}

func (p *progress) write(ctx context.Context, force bool) {
	every := p.e.ProgressEvery
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	if !force && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	b, err := json.Marshal([]TargetStatus{p.status})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	// Progress is advice for the page: a failed write must not stop the deletion.
	if err := approval.Progress(ctx, p.e.DB.Bun, p.id, b); err != nil {
		p.e.log().DebugContext(ctx, "progress not written", "request_id", p.id, "err", err)
	}
}

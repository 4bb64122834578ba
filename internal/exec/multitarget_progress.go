package exec

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// targetsProgress keeps the live status of every target of a request that spans targets, in
// commit order, and writes them all to target_status (at most every ProgressEvery, unless
// forced). A target finished by an earlier run shows as committed with its ledger's counts.
type targetsProgress struct {
	e        *Executor
	id       int64
	statuses []TargetStatus
	initial  []TargetStatus
	last     time.Time
}

func (e *Executor) newTargetsProgress(id int64, order []string, summary []preview.SummaryLine, finished map[string]*LedgerRow) *targetsProgress {
	p := &targetsProgress{e: e, id: id}
	for _, t := range order {
		st := TargetStatus{Target: t, Phase: PhaseWaiting, Tables: planned(t, summary)}
		if led := finished[t]; led != nil {
			st.Phase = PhaseCommitted
			for i := range st.Tables {
				tp := &st.Tables[i]
				tp.Done = led.Counts[t+" "+tp.Table+" "+tp.Action]
			}
		}
		p.statuses = append(p.statuses, st)
	}
	p.initial = clone(p.statuses)
	p.write(context.Background(), true)
	return p
}

func clone(s []TargetStatus) []TargetStatus {
	out := make([]TargetStatus, len(s))
	for i, st := range s {
		st.Tables = append([]TableProgress(nil), st.Tables...)
		out[i] = st
	}
	return out
}

func (p *targetsProgress) of(target string) *TargetStatus {
	for i := range p.statuses {
		if p.statuses[i].Target == target {
			return &p.statuses[i]
		}
	}
	return nil
}

// reset goes back to the state before the first attempt (a retry starts over).
func (p *targetsProgress) reset() {
	p.statuses = clone(p.initial)
	p.write(context.Background(), true)
}

// step records a finished step of applySets.
func (p *targetsProgress) step(s Step) {
	st := p.of(s.Target)
	if st == nil {
		return
	}
	switch s.Phase {
	case "archived":
		st.Phase = PhaseArchived
	case "applied":
		st.Phase = PhaseApplying
		for i := range st.Tables {
			t := &st.Tables[i]
			if t.Table == s.Table && t.Action == s.Action {
				t.Done += s.Rows
			}
		}
	}
	p.write(context.Background(), false)
}

// phase moves a target to a new phase (written now when force).
func (p *targetsProgress) phase(ctx context.Context, target, phase string, force bool) {
	st := p.of(target)
	if st == nil {
		return
	}
	st.Phase = phase
	if phase == PhaseWaiting {
		for i := range st.Tables {
			st.Tables[i].Done = 0
		}
	}
	p.write(ctx, force)
}

// fail marks a target failed with its error; its rows were rolled back.
func (p *targetsProgress) fail(ctx context.Context, target, msg string) {
	st := p.of(target)
	if st == nil {
		return
	}
	st.Phase, st.Error = PhaseFailed, msg
	for i := range st.Tables {
		st.Tables[i].Done = 0
	}
	p.write(ctx, true)
}

func (p *targetsProgress) write(ctx context.Context, force bool) {
	every := p.e.ProgressEvery
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	if !force && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	b, err := json.Marshal(p.statuses)
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

package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/templates"
)

// requestDrift recomputes the request's preview against the live data and says whether it
// still matches the digest approvals cover. It is a GET because it changes nothing; it runs
// only when someone asks, never on every view of the page. htmx asks for the drift region
// alone; without JavaScript the whole page comes back with the outcome.
func (s *Server) requestDrift(w http.ResponseWriter, r *http.Request) error {
	rq, err := s.loadRequest(r)
	if err != nil {
		return err
	}
	page, err := s.requestPage(r, rq)
	if err != nil {
		return err
	}
	switch {
	case s.engine == nil:
		page.Drift = &templates.DriftCheck{Error: "No preview engine is connected to this console.", At: s.now()}
	case !page.CanCheckDrift:
		page.Drift = &templates.DriftCheck{Error: "This request is " + page.State + ": there is no pending deletion to compare.", At: s.now()}
	default:
		page.Drift = s.checkDrift(r.Context(), rq)
	}
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("Cache-Control", "no-store")
		return s.render(w, r, http.StatusOK, templates.DriftRegion(page, templates.Page{Now: s.now()}))
	}
	return s.renderRequest(w, r, http.StatusOK, page)
}

// checkDrift evaluates the request's kind for its root now and compares the digest. Failures
// to reach a target are reported in the outcome rather than failing the page.
func (s *Server) checkDrift(ctx context.Context, rq *approval.Request) *templates.DriftCheck {
	d := &templates.DriftCheck{At: s.now()}
	plan, err := s.engine.Plan(ctx, rq.Kind)
	if err == nil {
		var live *preview.Preview
		if live, err = s.engine.Run(ctx, plan, rq.RootKeys); err == nil {
			if live.Digest != rq.Digest {
				d.Differs = true
				var approved []preview.SummaryLine
				if rq.Preview != nil {
					approved = rq.Preview.Summary
				}
				d.Changes = driftChanges(exec.Diff(approved, live.Summary))
			}
			return d
		}
	}
	var te *preview.TargetError
	var uk *policy.UnknownKindError
	switch {
	case errors.Is(err, preview.ErrRootNotFound):
		d.Differs = true
		d.Changes = []templates.DriftChange{{Target: rq.Target, Table: rq.RootTable, Action: "delete", Approved: 1}}
		if rq.Preview != nil && rq.Preview.Action != "" {
			d.Changes[0].Action = rq.Preview.Action
		}
	case errors.As(err, &uk):
		// The kind left the policy: what was approved can no longer be evaluated or run.
		d.Differs = true
	case errors.As(err, &te):
		s.logger(ctx).Warn("drift check: target unreachable", "request_id", rq.ID, "err", err)
		d.Error = "Target " + te.Target + " could not be reached. Try again shortly."
	default:
		s.logger(ctx).Error("drift check failed", "request_id", rq.ID, "err", err)
		d.Error = "The live preview could not be computed. The error has been logged."
	}
	return d
}

func driftChanges(cs []exec.Change) []templates.DriftChange {
	out := make([]templates.DriftChange, 0, len(cs))
	for _, c := range cs {
		out = append(out, templates.DriftChange{Target: c.Target, Table: c.Table, Action: c.Action, Approved: c.Approved, Now: c.Now})
	}
	return out
}

package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/web/templates"
)

// requestProgress is the progress panel alone, which htmx polls every second while the
// request is approved or running. Once the request has finished it tells htmx to load the
// whole page into the body (HX-Location), which then shows the results instead of the panel.
// Not HX-Refresh: htmx does not swap on it, so the panel went on polling, and each poll
// restarted a reload that took longer than a second, so the results never showed. htmx drops
// the polls' HX-Location requests while the first one is in flight.
func (s *Server) requestProgress(w http.ResponseWriter, r *http.Request) error {
	rq, err := s.loadRequest(r)
	if err != nil {
		return err
	}
	pr := s.progress(r.Context(), rq)
	if !pr.Poll && r.Header.Get("HX-Request") == "true" {
		loc, err := json.Marshal(map[string]string{"path": pr.PageURL, "target": "body"})
		if err != nil {
			return err
		}
		w.Header().Set("HX-Location", string(loc))
	}
	w.Header().Set("Cache-Control", "no-store")
	return s.render(w, r, http.StatusOK, templates.ProgressPanel(pr))
}

// progress reads the request's live status, as the executor stores it (a JSON array of
// exec.TargetStatus in target_status).
func (s *Server) progress(ctx context.Context, rq *approval.Request) templates.Progress {
	url := requestURL(rq.ID)
	pr := templates.Progress{
		URL: url + "/progress", PageURL: url, State: string(rq.State),
		Poll: rq.State == approval.Approved || rq.State == approval.Running,
	}
	for _, ts := range s.targetStatus(ctx, rq) {
		tp := templates.TargetProgress{Target: ts.Target, Phase: ts.Phase, Done: ts.Phase == exec.PhaseCommitted}
		for _, t := range ts.Tables {
			tp.Tables = append(tp.Tables, templates.TableProgress{Table: t.Table, Action: t.Action, Done: t.Done, Planned: t.Planned})
			if tp.Done || t.Done >= t.Planned {
				tp.TablesDone++
			}
		}
		pr.Targets = append(pr.Targets, tp)
	}
	if n := len(pr.Targets); n > 1 {
		done := 0
		for _, t := range pr.Targets {
			if t.Done {
				done++
			}
		}
		pr.Phase = "targets done " + strconv.Itoa(done) + "/" + strconv.Itoa(n)
	}
	s.batchProgress(ctx, &pr, rq)
	return pr
}

// targetStatus decodes target_status; an unreadable value is logged and shows as no progress
// (it is advice for the page, never a reason to fail it).
func (s *Server) targetStatus(ctx context.Context, rq *approval.Request) []exec.TargetStatus {
	if len(rq.TargetStatus) == 0 || string(rq.TargetStatus) == "null" {
		return nil
	}
	var ts []exec.TargetStatus
	if err := json.Unmarshal(rq.TargetStatus, &ts); err != nil {
		s.logger(ctx).Warn("unreadable target status", "request_id", rq.ID, "err", err)
		return nil
	}
	return ts
}

// result describes a finished run from the request's result (an exec.Report), error and
// target status.
func (s *Server) result(ctx context.Context, rq *approval.Request) *templates.RequestResult {
	res := &templates.RequestResult{State: string(rq.State)}
	var rep exec.Report
	if len(rq.Result) > 0 && string(rq.Result) != "null" {
		if err := json.Unmarshal(rq.Result, &rep); err != nil {
			s.logger(ctx).Warn("unreadable request result", "request_id", rq.ID, "err", err)
			res.Raw = string(rq.Result)
		}
	}
	for _, t := range rep.Tables {
		res.Tables = append(res.Tables, templates.ResultLine{Target: t.Target, Table: t.Table, Action: t.Action, Rows: t.Rows})
	}
	for _, c := range rep.Changes {
		res.Changes = append(res.Changes, templates.DriftChange{Target: c.Target, Table: c.Table, Action: c.Action, Approved: c.Approved, Now: c.Now})
	}
	switch {
	case rq.State == approval.Drifted && len(res.Changes) > 0:
		// The table says it better than the error text, which lists the same changes.
	case rq.Error != "":
		res.Error = rq.Error
	case rep.Reason != "":
		res.Error = rep.Reason
	}
	// A request across targets shows each target's outcome: which are done, and on a partial
	// request which are left for Resume.
	if ts := s.targetStatus(ctx, rq); rq.State == approval.Partial || len(ts) > 1 {
		for _, ts := range ts {
			o := templates.TargetOutcome{Target: ts.Target, State: "waiting"}
			switch ts.Phase {
			case exec.PhaseCommitted:
				o.State = string(approval.Done)
			case exec.PhaseFailed:
				o.State = string(approval.Failed)
			}
			res.Targets = append(res.Targets, o)
		}
	}
	if path := requestURL(rq.ID) + "/resume"; rq.State == approval.Partial && s.routeExists(http.MethodPost, path) {
		res.ResumeURL = path
	}
	return res
}

package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/web/templates"
)

// restorePanel fills the request page's restore panel, from the live targets:
//   - on a done deletion whose kind keeps an archive, what a restore would do, its conflicts,
//     and the "Request restore" form for those who may request;
//   - on a pending or approved restore request, the restore as it stands now, conflicts in red.
//
// It also hides "Check for changes" on restore requests: their digest is the restore plan's,
// which the deletion's preview engine cannot recompute. A target that cannot be read leaves
// a note instead of failing the page.
func (s *Server) restorePanel(ctx context.Context, rq *approval.Request, page *templates.RequestPage, me *auth.User) {
	if rq.Operation == approval.Restore {
		page.CanCheckDrift = false
	}
	if s.targets == nil {
		return
	}
	var del *approval.Request
	switch {
	case rq.Operation == approval.Restore && (rq.State == approval.Pending || rq.State == approval.Approved):
		d, err := approval.Get(ctx, s.db.Bun, rq.RestoresRequestID)
		if err != nil {
			s.logger(ctx).Error("restore panel: read the deletion", "request_id", rq.ID, "err", err)
			page.Restoration = &templates.RestorePanel{Note: "The deletion this request undoes could not be read. The error has been logged."}
			return
		}
		del = d
	case rq.Operation == approval.Delete && (rq.State == approval.Done || rq.State == approval.Partial):
		if k, ok := s.cfg.Kinds[rq.Kind]; !ok || k.Archive <= 0 {
			return
		}
		del = rq
	default:
		return
	}
	panel := &templates.RestorePanel{URL: requestURL(del.ID) + "/restore", Pending: rq.Operation == approval.Restore}
	page.Restoration = panel
	plan, err := exec.RestorePreview(ctx, s.targets, del)
	switch {
	case errors.Is(err, exec.ErrNotRestorable):
		panel.Note = sentence(err.Error())
		return
	case err != nil:
		s.logger(ctx).Warn("restore panel: evaluate the restore", "request_id", rq.ID, "err", err)
		panel.Note = "The restore could not be evaluated against the targets right now. Try again shortly."
		return
	}
	fillRestorePanel(panel, plan)
	panel.Offer = rq.Operation == approval.Delete && !plan.Blocked() && auth.Can(me.Role, auth.Request)
}

func fillRestorePanel(panel *templates.RestorePanel, plan *exec.RestorePlan) {
	panel.Expires, panel.At = plan.ExpiresAt, plan.At
	for _, l := range plan.Lines {
		panel.Lines = append(panel.Lines, templates.RestoreLine{Target: l.Target, Table: l.Table, Action: l.Action, Rows: l.Rows, Skipped: l.Skipped})
	}
	for _, c := range plan.Conflicts {
		panel.Conflicts = append(panel.Conflicts, templates.RestoreConflict{Target: c.Target, Table: c.Table, Reason: c.Reason, Rows: c.Rows, Sample: c.Sample})
	}
}

// requestRestore opens a restore request for the done deletion {id}, with the reason given,
// and redirects to it. The restore needs the same approvals as a deletion; conflicts,
// an expired archive or an invalid reason bring the deletion's page back with the problem.
func (s *Server) requestRestore(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	if s.targets == nil {
		return conflict("No target databases are connected to this console, so nothing can be restored.")
	}
	ctx := r.Context()
	reason := r.PostForm.Get("reason")
	ticket := strings.TrimSpace(r.PostForm.Get("ticket_url"))
	req, plan, err := exec.RequestRestore(ctx, s.approval, s.db.Bun, s.targets, exec.RestoreInput{
		Actor: s.actor(r), RequestID: id, Reason: reason, TicketURL: ticket,
	})
	again := func(status int, errs map[string]string, problem string) error {
		rq, lerr := s.loadRequest(r)
		if lerr != nil {
			return lerr
		}
		page, perr := s.requestPage(r, rq)
		if perr != nil {
			return perr
		}
		if page.Restoration == nil {
			page.Restoration = &templates.RestorePanel{URL: requestURL(id) + "/restore"}
		}
		if plan != nil {
			p := &templates.RestorePanel{URL: page.Restoration.URL, Offer: page.Restoration.Offer}
			fillRestorePanel(p, plan)
			page.Restoration = p
		}
		page.Restoration.Reason, page.Restoration.TicketURL = reason, ticket
		page.Restoration.Errors, page.Restoration.Problem = errs, problem
		return s.renderRequest(w, r, status, page)
	}
	var ve *approval.ValidationError
	var open *approval.OpenRequestError
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return notFound("There is no request #" + strconv.FormatInt(id, 10) + ".")
	case errors.Is(err, exec.ErrRestoreConflict):
		return again(http.StatusConflict, nil, "The restore conflicts with the current data (shown below in red). Resolve the conflicts first.")
	case errors.Is(err, exec.ErrNotRestorable):
		return again(http.StatusConflict, nil, sentence(err.Error()))
	case errors.As(err, &ve):
		errs, problem := map[string]string{}, ""
		for _, f := range ve.Fields {
			switch f.Field {
			case "reason", "ticket_url":
				errs[f.Field] = sentence(f.Message)
			default:
				problem = sentence(f.Message)
			}
		}
		return again(http.StatusUnprocessableEntity, errs, problem)
	case errors.As(err, &open):
		return s.renderProblem(w, r, templates.Problem{
			Status: http.StatusConflict, Title: "Already requested",
			Message:    fmt.Sprintf("This root already has an open request (#%d, %s). A root can have one open request at a time.", open.ID, open.State),
			LinksTitle: "The open request",
			Links:      []templates.ProblemLink{{Text: "Request #" + strconv.FormatInt(open.ID, 10), URL: requestURL(open.ID), Note: string(open.State)}},
		})
	case errors.Is(err, approval.ErrForbidden):
		return forbidden("Your role does not allow requesting a restore.")
	case err != nil:
		return err
	}
	s.logger(ctx).Info("restore requested", "request", req.ID, "restores", id, "rows", plan.Rows())
	s.flash(w, r, "success", fmt.Sprintf("Restore request #%d is open. It needs %d %s from someone else before it runs.",
		req.ID, req.ApprovalsRequired, plural(req.ApprovalsRequired, "approval", "approvals")))
	return seeOther(w, r, requestURL(req.ID))
}

// alreadyDeleted is the problem to show when a root is not found because a done request
// deleted it (and no restore undid it); nil when the console knows of no such deletion.
func (s *Server) alreadyDeleted(ctx context.Context, kind, term string) *templates.Problem {
	if term == "" {
		return nil
	}
	del, err := exec.DeletedBy(ctx, s.db.Bun, kind, term)
	if err != nil {
		if !errors.Is(err, pg.ErrNotFound) {
			s.logger(ctx).Warn("look up an earlier deletion", "kind", kind, "err", err)
		}
		return nil
	}
	label := del.RootLabel
	if label == "" {
		label = del.RootKey
	}
	return &templates.Problem{
		Status: http.StatusGone, Title: "Already deleted",
		Message:    fmt.Sprintf("This %s (%s) is already deleted: request #%d deleted it.", kind, label, del.ID),
		LinksTitle: "The deletion",
		Links:      []templates.ProblemLink{{Text: "Request #" + strconv.FormatInt(del.ID, 10), URL: requestURL(del.ID), Note: string(del.State)}},
	}
}

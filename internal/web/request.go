package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/notify"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/templates"
)

// requestShow is the request page. It only reads: the decisions are POSTs, and the live
// preview is recomputed only when asked (requestDrift).
func (s *Server) requestShow(w http.ResponseWriter, r *http.Request) error {
	rq, err := s.loadRequest(r)
	if err != nil {
		return err
	}
	page, err := s.requestPage(r, rq)
	if err != nil {
		return err
	}
	return s.renderRequest(w, r, http.StatusOK, page)
}

func (s *Server) renderRequest(w http.ResponseWriter, r *http.Request, status int, page templates.RequestPage) error {
	p := s.pageFor(w, r, "Request #"+strconv.FormatInt(page.ID, 10), "requests")
	return s.render(w, r, status, templates.RequestDetailPage(p, page))
}

// loadRequest reads the request named by the {id} path value, with its frozen preview and
// approvals.
func (s *Server) loadRequest(r *http.Request) (*approval.Request, error) {
	id, err := pathRequestID(r)
	if err != nil {
		return nil, err
	}
	rq, err := approval.GetHead(r.Context(), s.db.Bun, id)
	if errors.Is(err, approval.ErrNotFound) {
		return nil, notFound("There is no request #" + strconv.FormatInt(id, 10) + ".")
	}
	if err != nil {
		return nil, err
	}
	if err := s.withFrozenPreview(r, rq); err != nil {
		return nil, err
	}
	return rq, nil
}

// requestPage builds the request page's props for the signed-in user.
func (s *Server) requestPage(r *http.Request, rq *approval.Request) (templates.RequestPage, error) {
	ctx := r.Context()
	me := currentUser(r)
	now := s.now()
	state := shownState(rq, now)
	page := templates.RequestPage{
		ID: rq.ID, URL: requestURL(rq.ID), Restore: rq.Operation == approval.Restore,
		Kind: rq.Kind, Target: rq.Target, RootTable: rq.RootTable, RootKey: rq.RootKey, RootLabel: rq.RootLabel,
		State: string(state), Digest: rq.Digest, Created: rq.CreatedAt, Expires: rq.ExpiresAt,
		Decided: rq.DecidedAt, DecidedBy: rq.DecidedByName, DecisionReason: rq.DecisionReason,
		Requester: rq.RequesterName, Reason: rq.Reason, TicketURL: rq.TicketURL,
		Required: rq.ApprovalsRequired, Rows: rq.RowsTotal, Tables: rq.TablesTotal,
		CanCheckDrift: s.engine != nil && (state == approval.Pending || state == approval.Approved),
	}
	if rq.RestoresRequestID != 0 {
		page.RestoresID, page.RestoresURL = rq.RestoresRequestID, requestURL(rq.RestoresRequestID)
	}
	for _, a := range rq.Approvals {
		page.Approvals = append(page.Approvals, templates.ApprovalRow{Name: a.ApproverName, At: a.CreatedAt})
	}
	c := rq.ControlsFor(me.ID, string(me.Role), now)
	page.Controls = templates.RequestControls{Approve: c.Approve, Reject: c.Reject, Cancel: c.Cancel, Digest: rq.Digest}
	page.Controls.Why = controlsWhy(rq, state, me)
	if p := rq.Preview; p != nil {
		page.Action = p.Action
		v := previewHead(p, false, now)
		v.BatchNote = preview.BatchNote(s.cfg.Kinds[rq.Kind], p)
		s.withCachedDetails(ctx, frozenDetailsKey(rq), &v, p)
		page.Preview = &v
	}

	events, err := approval.Timeline(ctx, s.db.Bun, rq.ID)
	if err != nil {
		return page, err
	}
	for _, e := range events {
		page.Timeline = append(page.Timeline, timelineEntry(e))
	}
	fails, err := notify.Failures(ctx, s.db.Bun, rq.ID)
	if err != nil {
		return page, err
	}
	for _, f := range fails {
		page.Failures = append(page.Failures, templates.NotifyFailure{
			Channel: channelName(f.Channel), Recipient: f.Recipient, Event: string(f.Event),
			Error: f.LastError, Attempts: f.Attempts, Next: f.NextAttemptAt, GaveUp: f.GaveUp,
		})
	}

	switch rq.State {
	case approval.Approved, approval.Running, approval.Paused:
		pr := s.progress(ctx, rq)
		page.Progress = &pr
	case approval.Done, approval.Failed, approval.Drifted, approval.Partial:
		page.Result = s.result(ctx, rq)
	}
	s.restorePanel(ctx, rq, &page, me)
	return page, nil
}

// controlsWhy explains, to someone who is offered no decision, who can decide.
func controlsWhy(rq *approval.Request, state approval.State, me *auth.User) string {
	switch {
	case state == approval.Expired && rq.State == approval.Pending:
		return "This request passed its deadline before it had enough approvals. It can no longer be decided; make a new request."
	case state != approval.Pending:
		return "This request is " + string(state) + ": there is nothing left to decide."
	case me.ID == rq.RequesterID:
		return "You made this request. Another approver must approve it."
	case me.Role == auth.Admin:
		return "Admins cannot approve or reject requests: the two-person rule takes an approver who did not make the request."
	default:
		return "Approving or rejecting takes the approver role; yours is " + string(me.Role) + "."
	}
}

// timelineEntry describes one audit event of the request's history.
func timelineEntry(e audit.Event) templates.TimelineEntry {
	t := templates.TimelineEntry{Seq: e.Seq, Action: string(e.Action), Actor: e.ActorName, At: e.At}
	t.Label = strings.ToUpper(string(e.Action[:1])) + strings.ReplaceAll(string(e.Action[1:]), "_", " ")
	d := e.Details
	switch e.Action {
	case audit.ActionRequested, audit.ActionRestoreRequested:
		if n, ok := d["approvals_required"].(int64); ok {
			t.Detail = "Needs " + strconv.FormatInt(n, 10) + " " + plural(int(n), "approval", "approvals") + "."
		}
	case audit.ActionApproved:
		t.Tone = "good"
		n, ok1 := d["approvals"].(int64)
		m, ok2 := d["approvals_required"].(int64)
		if ok1 && ok2 {
			t.Detail = fmt.Sprintf("%d of %d approvals.", n, m)
		}
	case audit.ActionRejected:
		t.Tone, t.Detail = "bad", e.Reason
	case audit.ActionCancelled, audit.ActionExpired:
		t.Tone = "warn"
	case audit.ActionSelfApprovalRefused, audit.ActionStaleApprovalRefused, audit.ActionDuplicateApprovalRefused, audit.ActionApprovalRefused:
		t.Tone = "bad"
		t.Detail = refusalText(d)
	case audit.ActionExecuted, audit.ActionRestored:
		t.Tone = "good"
		if n, ok := d["rows"].(int64); ok {
			t.Detail = templates.Count(n) + " rows changed."
		}
	case audit.ActionExecutionFailed:
		t.Tone = "bad"
		t.Detail, _ = d["error"].(string)
	case audit.ActionDrifted:
		t.Tone = "bad"
		t.Detail, _ = d["reason"].(string)
	}
	return t
}

// refusalText says why an attempt was refused, from the event's details.refused.
func refusalText(d map[string]any) string {
	why, _ := d["refused"].(string)
	switch why {
	case "self_approval", "self_rejection":
		return "The requester cannot decide their own request."
	case "stale_digest":
		return "The page showed a different preview than the request holds."
	case "duplicate":
		return "This person had already approved."
	case "step_up":
		return "The sign-in was too old; approving needs a fresh one."
	case "admin":
		return "Admins cannot approve or reject."
	case "role":
		role, _ := d["role"].(string)
		return "Takes the approver role; this user is a " + role + "."
	case "disabled":
		return "The user is disabled."
	case "expired":
		return "The request had expired."
	case "not_pending":
		state, _ := d["state"].(string)
		return "The request was no longer pending (" + state + ")."
	case "":
		return ""
	}
	return strings.ReplaceAll(why, "_", " ") + "."
}

func channelName(c notify.Channel) string {
	switch c {
	case notify.Email:
		return "Email"
	case notify.Slack:
		return "Slack message"
	}
	return string(c)
}

// routeExists reports whether another part of the console registered method path (the
// executor's resume endpoint, for one), so the page offers a control only when it works.
func (s *Server) routeExists(method, path string) bool {
	req, err := http.NewRequestWithContext(context.Background(), method, path, nil)
	if err != nil {
		return false
	}
	_, pattern := s.mux.Handler(req)
	return pattern != "" && pattern != "/"
}

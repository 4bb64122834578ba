package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/web/templates"
)

// The decisions on a request. Each is a POST from a signed-in session, behind the
// cross-origin protection; each passes the console database itself (not a transaction) to
// the approval service, so that a refused attempt's audit event is committed. Success answers
// 303 back to the request page with a flash.

// twoPersonRule is shown with every refusal of a decision by the wrong person.
const twoPersonRule = "Tombstone applies the two-person rule: a deletion runs only after someone other than the person who asked for it approves it. " +
	"Approving and rejecting take the approver role; the requester can only cancel, and admins cannot decide requests at all."

func (s *Server) actor(r *http.Request) approval.Actor {
	u := currentUser(r)
	return approval.Actor{ID: u.ID, Name: u.Name, ClientIP: clientIP(r)}
}

// requestApprove records the signed-in user's approval of the digest their page showed.
func (s *Server) requestApprove(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	rq, err := s.approval.Approve(r.Context(), s.db.Bun, approval.ApproveInput{
		Actor: s.actor(r), RequestID: id, Digest: r.PostForm.Get("digest"), SignedInAt: SignedInAt(r.Context()),
	})
	if err != nil {
		return s.decisionError(w, r, id, "approve", err)
	}
	msg := "You approved request #" + strconv.FormatInt(id, 10) + "."
	switch {
	case rq.State == approval.Approved:
		msg += " It has the approvals it needs and will run shortly."
	case rq.ApprovalsRequired > rq.ApprovalsGiven:
		n := rq.ApprovalsRequired - rq.ApprovalsGiven
		msg += " It needs " + strconv.Itoa(n) + " more " + plural(n, "approval", "approvals") + "."
	}
	s.logger(r.Context()).Info("request approved", "request", id, "by", currentUser(r).Name, "state", rq.State)
	s.flash(w, r, "success", msg)
	return seeOther(w, r, requestURL(id))
}

// requestReject ends the request with the reason given.
func (s *Server) requestReject(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	reason := r.PostForm.Get("reason")
	_, err = s.approval.Reject(r.Context(), s.db.Bun, s.actor(r), id, reason)
	var ve *approval.ValidationError
	if errors.As(err, &ve) {
		rq, lerr := s.loadRequest(r)
		if lerr != nil {
			return lerr
		}
		page, perr := s.requestPage(r, rq)
		if perr != nil {
			return perr
		}
		page.Controls.RejectReason = reason
		page.Controls.Errors = map[string]string{}
		for _, f := range ve.Fields {
			page.Controls.Errors[f.Field] = capitalize(f.Message) + "."
		}
		return s.renderRequest(w, r, http.StatusUnprocessableEntity, page)
	}
	if err != nil {
		return s.decisionError(w, r, id, "reject", err)
	}
	s.logger(r.Context()).Info("request rejected", "request", id, "by", currentUser(r).Name)
	s.flash(w, r, "success", "You rejected request #"+strconv.FormatInt(id, 10)+". The requester is told why.")
	return seeOther(w, r, requestURL(id))
}

// requestCancel withdraws the signed-in user's own pending request.
func (s *Server) requestCancel(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	if _, err := s.approval.Cancel(r.Context(), s.db.Bun, s.actor(r), id); err != nil {
		return s.decisionError(w, r, id, "cancel", err)
	}
	s.logger(r.Context()).Info("request cancelled", "request", id, "by", currentUser(r).Name)
	s.flash(w, r, "success", "You cancelled request #"+strconv.FormatInt(id, 10)+".")
	return seeOther(w, r, requestURL(id))
}

// decisionError answers a refused decision: a sign-in to renew, or an error page that says
// what happened and links back to the request.
func (s *Server) decisionError(w http.ResponseWriter, r *http.Request, id int64, verb string, err error) error {
	back := requestURL(id)
	var status int
	var title, msg string
	switch {
	case errors.Is(err, approval.ErrStepUp):
		s.logger(r.Context()).Info("decision needs a fresh sign-in", "request", id, "user", currentUser(r).Name)
		return seeOther(w, r, "/signin?"+url.Values{"next": {back}, "reauth": {"1"}}.Encode())
	case errors.Is(err, approval.ErrSelfApproval):
		status, title = http.StatusForbidden, "You cannot decide your own request"
		msg = "You asked for this deletion, so someone else must approve it. " + twoPersonRule
	case errors.Is(err, approval.ErrForbidden):
		status, title = http.StatusForbidden, "Not allowed"
		msg = "You cannot " + verb + " this request. " + twoPersonRule
	case errors.Is(err, approval.ErrStaleDigest):
		status, title = http.StatusConflict, "The request changed"
		msg = "The page you approved from showed a different preview than the request holds now. Reload the request, review what it will delete, and approve again if it is right."
	case errors.Is(err, approval.ErrDuplicate):
		status, title = http.StatusConflict, "Already approved"
		msg = "You have already approved this request. Another approver must give the remaining approvals."
	case errors.Is(err, approval.ErrExpired):
		status, title = http.StatusConflict, "The request expired"
		msg = "This request passed its deadline before the decision, so it expired. Ask for a new request if the deletion is still needed."
	case errors.Is(err, approval.ErrNotPending):
		status, title = http.StatusConflict, "Already decided"
		msg = "This request is no longer pending: it was decided, cancelled or has run meanwhile. Reload it to see where it is."
	case errors.Is(err, approval.ErrNotFound):
		return notFound("There is no request #" + strconv.FormatInt(id, 10) + ".")
	default:
		return err
	}
	s.logger(r.Context()).Info("decision refused", "request", id, "verb", verb, "user", currentUser(r).Name, "status", status, "err", err)
	p := s.pageFor(w, r, title, "requests")
	return s.render(w, r, status, templates.ErrorPage(p, templates.Error{Status: status, Title: title, Message: msg, Back: back}))
}

// pathRequestID reads the {id} path value; a malformed one is a 404.
func pathRequestID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("There is no such request.")
	}
	return id, nil
}

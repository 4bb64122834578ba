package web

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/web/templates"
)

// oidcStart sends the browser to the identity provider, keeping the state, nonce, PKCE
// verifier and return path in the pre-sign-in cookie.
func (s *Server) oidcStart(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return notFound("Single sign-on is not configured.")
	}
	flow := auth.NewOIDCFlow()
	to, err := s.oidc.AuthCodeURL(r.Context(), flow)
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "The single sign-on provider cannot be reached. Try again shortly, or sign in with a password.", Err: err}
	}
	sess := s.preSession(r)
	sess.Values[keyOIDC] = oidcPending{Flow: flow, Next: SafeNext(r.URL.Query().Get("next"))}
	s.savePre(w, r, sess)
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// oidcCallback completes single sign-on: it checks the state, exchanges the code, verifies
// the ID token and nonce, maps the subject to a user and starts a session. The pending
// state is used once.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) error {
	if s.oidc == nil {
		return notFound("Single sign-on is not configured.")
	}
	sess := s.preSession(r)
	pending, ok := sess.Values[keyOIDC].(oidcPending)
	delete(sess.Values, keyOIDC)
	s.savePre(w, r, sess)

	q := r.URL.Query()
	f := templates.SignIn{SSO: true}
	if !ok || q.Get("state") == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(pending.Flow.State)) != 1 {
		f.Error = "The single sign-on attempt expired or did not start here. Try again."
		return s.renderSignIn(w, r, http.StatusBadRequest, f)
	}
	f.Next = pending.Next
	if e := q.Get("error"); e != "" {
		s.logger(r.Context()).Info("identity provider refused sign-in", "error", e, "description", q.Get("error_description"))
		f.Error = "The single sign-on provider did not sign you in."
		return s.renderSignIn(w, r, http.StatusForbidden, f)
	}
	id, err := s.oidc.Exchange(r.Context(), pending.Flow, q.Get("code"))
	if errors.Is(err, auth.ErrOIDCRejected) {
		s.logger(r.Context()).Warn("single sign-on rejected", "err", err)
		f.Error = "The single sign-on answer could not be verified. Try again."
		return s.renderSignIn(w, r, http.StatusForbidden, f)
	}
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "The single sign-on provider cannot be reached. Try again shortly.", Err: err}
	}
	u, err := s.authn.AuthenticateOIDC(r.Context(), id)
	switch {
	case errors.Is(err, auth.ErrUnknownSubject):
		s.logger(r.Context()).Info("single sign-on for unknown subject", "subject", id.Subject, "email", id.Email)
		f.Error = "Your single sign-on account (" + identityName(id) + ") is not linked to a Tombstone user. Ask an administrator to add you with SSO subject " + id.Subject + "."
		return s.renderSignIn(w, r, http.StatusForbidden, f)
	case errors.Is(err, auth.ErrDisabled):
		f.Error = "This account is disabled. Ask an administrator to enable it."
		return s.renderSignIn(w, r, http.StatusForbidden, f)
	case err != nil:
		return err
	}
	if err := s.startSession(r.Context(), u, "oidc"); err != nil {
		return err
	}
	s.logger(r.Context()).Info("signed in", "user", u.Name, "method", "oidc")
	return seeOther(w, r, SafeNext(pending.Next))
}

func identityName(id auth.Identity) string {
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}

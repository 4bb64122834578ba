package web

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/web/templates"
)

// signInForm shows the sign-in form. A signed-in user sees it too, to confirm who they are
// before an action that needs a recent sign-in (step-up).
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request) error {
	f := templates.SignIn{Next: SafeNext(r.URL.Query().Get("next")), SSO: s.oidc != nil}
	if u := currentUser(r); u != nil {
		f.Name = u.Name
		f.Notice = "You are signed in as " + u.Name + ". Sign in again to confirm it is you."
		if r.URL.Query().Get("reauth") == "1" {
			f.Notice = "Approving needs a recent sign-in. You are signed in as " + u.Name + ": enter your password again to continue."
		}
	}
	if f.Next == "/" {
		f.Next = ""
	}
	return s.render(w, r, http.StatusOK, templates.SignInPage(s.pageFor(w, r, "Sign in", ""), f))
}

// signIn checks the password and starts a session with a new token.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	f := templates.SignIn{Name: r.PostForm.Get("name"), Next: SafeNext(r.PostForm.Get("next")), SSO: s.oidc != nil}
	if f.Next == "/" {
		f.Next = ""
	}
	if auth.ValidateName(f.Name) != nil {
		// No user can have this name (too long, not UTF-8, …): answer as for a wrong password
		// without looking it up, and do not echo it back.
		f.Name, f.Error = "", "Wrong user name or password."
		return s.renderSignIn(w, r, http.StatusUnprocessableEntity, f)
	}
	u, err := s.authn.Authenticate(r.Context(), f.Name, r.PostForm.Get("password"), clientIP(r))
	var te *auth.ThrottledError
	switch {
	case err == nil:
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.Wait+time.Second-1)/time.Second)))
		f.Error = "Too many failed sign-ins. Try again in " + waitText(te.Wait) + "."
		return s.renderSignIn(w, r, http.StatusTooManyRequests, f)
	case errors.Is(err, auth.ErrBadCredentials):
		f.Error = "Wrong user name or password."
		return s.renderSignIn(w, r, http.StatusUnprocessableEntity, f)
	case errors.Is(err, auth.ErrDisabled):
		f.Error = "This account is disabled. Ask an administrator to enable it."
		return s.renderSignIn(w, r, http.StatusForbidden, f)
	default:
		return err
	}
	if err := s.startSession(r.Context(), u, "password"); err != nil {
		return err
	}
	s.logger(r.Context()).Info("signed in", "user", u.Name, "method", "password")
	return seeOther(w, r, SafeNext(f.Next))
}

func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, status int, f templates.SignIn) error {
	return s.render(w, r, status, templates.SignInPage(s.pageFor(w, r, "Sign in", ""), f))
}

// signOut ends the session: its row is deleted, so the old token is dead even if it was
// copied, and the cookie is expired.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) error {
	if u := currentUser(r); u != nil {
		s.logger(r.Context()).Info("signed out", "user", u.Name)
	}
	s.endSession(w, r, &flash{Kind: "info", Text: "You have signed out."})
	return seeOther(w, r, "/signin")
}

// clientIP is the address the request came from, for throttling. Forwarded headers are not
// trusted: behind a proxy every client shares the proxy's address and limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

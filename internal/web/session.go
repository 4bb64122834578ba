package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/tombstone-console/tombstone/internal/auth"
)

// Keys of the signed-in session (scs, server-side).
const (
	keyUserID     = auth.SessionUserKey // int64
	keySignedInAt = "signed_in_at"      // int64, Unix nanoseconds: when the user last proved who they are
	keyRole       = "role"              // string: the role the token was issued for
	keyMethod     = "method"            // string: "password" or "oidc"
)

// principal is the signed-in user of one request.
type principal struct {
	user       *auth.User
	signedInAt time.Time
	method     string
}

// currentUser returns the signed-in user, or nil for an anonymous request.
func currentUser(r *http.Request) *auth.User {
	if p, ok := r.Context().Value(principalKey).(*principal); ok {
		return p.user
	}
	return nil
}

// CurrentUser returns the signed-in user of a request context, or nil.
func CurrentUser(ctx context.Context) *auth.User {
	if p, ok := ctx.Value(principalKey).(*principal); ok {
		return p.user
	}
	return nil
}

// SignedInAt returns when the signed-in user last proved who they are (password or SSO), for
// the step-up rule (auth.StepUp); zero when anonymous.
func SignedInAt(ctx context.Context) time.Time {
	if p, ok := ctx.Value(principalKey).(*principal); ok {
		return p.signedInAt
	}
	return time.Time{}
}

// loadUser reads the session and puts the signed-in user in the context. The user is read
// from the database on every request, so a disabled user or a changed role takes effect at
// once. A session past the absolute timeout, or of a user who is gone or disabled, is
// destroyed. When the role differs from the one the token was issued for, the token is
// renewed.
func (s *Server) loadUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := s.sessions.GetInt64(ctx, keyUserID)
		if id == 0 {
			next.ServeHTTP(w, r)
			return
		}
		signedInAt := time.Unix(0, s.sessions.GetInt64(ctx, keySignedInAt))
		if s.now().Sub(signedInAt) > s.cfg.Sessions.AbsoluteTimeout {
			s.endSession(w, r, nil)
			next.ServeHTTP(w, r)
			return
		}
		u, err := auth.UserByID(ctx, s.db.Bun, id)
		if errors.Is(err, auth.ErrNotFound) || err == nil && u.Disabled() {
			s.endSession(w, r, nil)
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			s.serveError(w, r, err)
			return
		}
		if role := s.sessions.GetString(ctx, keyRole); role != string(u.Role) {
			if err := s.sessions.RenewToken(ctx); err != nil {
				s.serveError(w, r, err)
				return
			}
			s.sessions.Put(ctx, keyRole, string(u.Role))
			s.logger(ctx).Info("session renewed after role change", "user", u.Name, "from", role, "to", u.Role)
		}
		p := &principal{user: u, signedInAt: signedInAt, method: s.sessions.GetString(ctx, keyMethod)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, principalKey, p)))
	})
}

// require lets the request through when the user is signed in and their role allows action.
// Anonymous GETs are redirected to the sign-in page with the way back; other anonymous
// requests too, without it.
func (s *Server) require(action auth.Action, h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u := currentUser(r)
		if u == nil {
			target := "/signin"
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				if next := SafeNext(r.URL.RequestURI()); next != "/" {
					target += "?next=" + url.QueryEscape(next)
				}
			}
			return seeOther(w, r, target)
		}
		if !auth.Can(u.Role, action) {
			return forbidden("Your role (" + string(u.Role) + ") does not allow this page.")
		}
		return h(w, r)
	}
}

// startSession signs u in: a new token (the old one, if any, is deleted), the user id, the
// role the token is issued for, and the sign-in time for step-up.
func (s *Server) startSession(ctx context.Context, u *auth.User, method string) error {
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	s.sessions.Put(ctx, keyUserID, u.ID)
	s.sessions.Put(ctx, keySignedInAt, s.now().UnixNano())
	s.sessions.Put(ctx, keyRole, string(u.Role))
	s.sessions.Put(ctx, keyMethod, method)
	return nil
}

// endSession deletes the session row and expires the cookie; the old token is dead. A flash
// message, when given, is shown on the next page.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request, fl *flash) {
	if err := s.sessions.Destroy(r.Context()); err != nil {
		s.logger(r.Context()).Warn("end session", "err", err)
	}
	if fl != nil {
		s.flash(w, r, fl.Kind, fl.Text)
	}
}

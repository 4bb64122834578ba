package web

import (
	"encoding/gob"
	"net/http"

	"github.com/gorilla/sessions"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/web/templates"
)

// The pre-sign-in cookie (gorilla/sessions, signed and encrypted, ten minutes) holds only
// short-lived state that must survive one redirect: flash messages, and during an OIDC round
// trip the state, nonce, PKCE verifier and return path. It never says who is signed in.

type flash struct {
	Kind string
	Text string
}

type oidcPending struct {
	Flow auth.OIDCFlow
	Next string
}

func init() {
	gob.Register(flash{})
	gob.Register(oidcPending{})
}

const keyOIDC = "oidc"

// preSession returns the pre-sign-in cookie's session. A cookie that fails to verify (an old
// key, tampering) gives a fresh empty session.
func (s *Server) preSession(r *http.Request) *sessions.Session {
	sess, err := s.pre.Get(r, s.preName)
	if err != nil {
		sess, _ = s.pre.New(r, s.preName)
	}
	return sess
}

// savePre writes the cookie back, or deletes it when nothing is left in it.
func (s *Server) savePre(w http.ResponseWriter, r *http.Request, sess *sessions.Session) {
	if len(sess.Values) == 0 {
		opts := *s.pre.Options
		opts.MaxAge = -1
		sess.Options = &opts
	}
	if err := sess.Save(r, w); err != nil {
		s.logger(r.Context()).Warn("save pre-sign-in cookie", "err", err)
	}
}

// flash adds a message shown once on the next page. Kind is "info", "success" or "error".
// Call it before writing the response (before seeOther).
func (s *Server) flash(w http.ResponseWriter, r *http.Request, kind, text string) {
	sess := s.preSession(r)
	sess.AddFlash(flash{Kind: kind, Text: text})
	s.savePre(w, r, sess)
}

// popFlashes returns and clears the pending flash messages.
func (s *Server) popFlashes(w http.ResponseWriter, r *http.Request) []templates.Flash {
	if c, err := r.Cookie(s.preName); err != nil || c.Value == "" {
		return nil
	}
	sess := s.preSession(r)
	raw := sess.Flashes()
	if len(raw) == 0 {
		return nil
	}
	s.savePre(w, r, sess)
	out := make([]templates.Flash, 0, len(raw))
	for _, v := range raw {
		if f, ok := v.(flash); ok {
			out = append(out, templates.Flash{Kind: f.Kind, Text: f.Text})
		}
	}
	return out
}

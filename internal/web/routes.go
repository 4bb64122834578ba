package web

import (
	"net/http"

	"github.com/tombstone-console/tombstone/internal/auth"
)

// routes registers every route and returns the whole application. Static files and health
// checks skip sessions; everything else runs with cross-origin protection, the session and
// the signed-in user. Pages that need a signed-in user go through s.page with the action
// their role must allow; public ones through s.public.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.mux = mux

	s.public("GET /signin", s.signInForm)
	s.public("POST /signin", s.signIn)
	s.public("POST /signout", s.signOut)
	s.public("GET /auth/oidc/start", s.oidcStart)
	s.public("GET /auth/oidc/callback", s.oidcCallback)

	// "GET /{$}" is the home page only; every other unmatched path falls to notFoundPage.
	s.page("GET /{$}", auth.Search, s.home)

	s.page("GET /admin/users", auth.Administer, s.adminUsers)
	s.page("POST /admin/users", auth.Administer, s.adminUserAdd)
	s.page("POST /admin/users/{id}/role", auth.Administer, s.adminUserRole)
	s.page("POST /admin/users/{id}/disable", auth.Administer, s.adminUserDisable)
	s.page("GET /admin/policy", auth.Administer, s.adminPolicy)
	s.page("GET /admin/targets", auth.Administer, s.adminTargets)
	s.requestRoutes()
	s.previewRoutes()

	s.public("/", s.notFoundPage)

	top := http.NewServeMux()
	top.HandleFunc("GET /static/{file}", s.assets.serve)
	top.HandleFunc("GET /healthz", s.healthz)
	top.HandleFunc("GET /readyz", s.readyz)
	top.Handle("/", s.crossOrigin(s.sessions.LoadAndSave(s.loadUser(mux))))
	return withRequestID(s.securityHeaders(s.accessLog(s.recoverPanics(top))))
}

// public registers a handler that anonymous visitors may reach.
func (s *Server) public(pattern string, h handlerFunc) {
	s.mux.Handle(pattern, s.adapt(h))
}

// page registers a handler for signed-in users whose role allows action. Anonymous visitors
// are sent to the sign-in page with the path to come back to; others get 403.
func (s *Server) page(pattern string, action auth.Action, h handlerFunc) {
	s.mux.Handle(pattern, s.adapt(s.require(action, h)))
}

func (s *Server) notFoundPage(w http.ResponseWriter, r *http.Request) error {
	return notFound("There is no page at this address.")
}

// Package web is the console's HTTP layer: routes, middleware, sessions and thin handlers.
//
// # Adding a page
//
// A handler has the shape func(w, r) error and is registered in routes with a permission:
//
//	s.page("GET /requests/{id}", auth.Search, s.requestShow)
//
// Inside it, currentUser(r) is the signed-in user (never nil behind page), s.pageFor(w, r,
// title, nav) builds the layout's props (user, flash messages, assets), and s.render(w, r,
// status, component) renders a templ component into a buffer and writes it. To fail, return
// an error: notFound("…"), conflict("…"), forbidden("…"), or a domain error the adapter
// knows (auth.ErrNotFound, pg.ErrConflict, …); it becomes a safe error page in the layout,
// and anything unknown becomes a 500 that shows only the request id. To re-render a form
// with its errors, render it yourself with http.StatusUnprocessableEntity. After a
// successful POST, call s.flash and redirect with 303 (s.seeOther).
package web

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/static"
)

// Targets gives /readyz the target databases by name; *pg.Pools implements it. DB may
// connect lazily; an error means the target is down.
type Targets interface {
	Names() []string
	DB(ctx context.Context, name string) (*pg.DB, error)
}

// Deps is what the web server is built from.
type Deps struct {
	Config *config.Config
	// DB is the console database.
	DB *pg.DB
	// Targets are the application databases, for /readyz; nil means none.
	Targets Targets
	Logger  *slog.Logger
	// TLS says the console is reached over HTTPS (directly or behind a proxy): cookies become
	// Secure with the __Host- prefix, and HSTS is sent. An https base_url implies it.
	TLS bool
	// Limits bound failed sign-ins; zero fields take auth.DefaultLimits.
	Limits auth.Limits
	// Finder searches roots; nil until the preview engine is connected.
	Finder Finder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Engine evaluates previews: search results, the preview page and the request page's
	// "Check for changes". nil leaves search and previews unavailable (and hides the check).
	Engine *preview.Engine
	// Approval applies the two-person rule; nil means approval.New(Config) on the Now clock.
	Approval *approval.Service
	// ExactWait is how long the preview page waits for exact counts before it shows planner
	// estimates and lets htmx fetch the exact preview; zero means DefaultExactWait, negative
	// means never wait.
	ExactWait time.Duration
}

// Finder looks up roots of a kind for the search page. The preview engine implements it.
type Finder interface {
	// FindRoots returns up to limit roots of kind matching query (its primary key, or its
	// search columns), in a stable order.
	FindRoots(ctx context.Context, kind, query string, limit int) ([]Root, error)
}

// Root is one search hit.
type Root struct {
	Key         string // the primary key as text, used in /kinds/{kind}/{key}
	Label       string
	Tombstoned  bool // already soft-deleted
	OpenRequest bool // a pending or approved request exists for it
}

// Server is the console web application.
type Server struct {
	cfg      *config.Config
	db       *pg.DB
	targets  Targets
	log      *slog.Logger
	tls      bool
	now      func() time.Time
	finder   Finder
	engine   *preview.Engine
	approval *approval.Service
	chain    chainCache
	previews *previewCache
	// views holds rendered HTML that depends only on its key (see cachedTree); frozen the
	// previews frozen into requests, which never change.
	views    *lru[string, string]
	frozen   *lru[int64, frozenPreview]
	sessions *scs.SessionManager
	store    *auth.SessionStore
	pre      *sessions.CookieStore
	preName  string
	authn    *auth.Authenticator
	oidc     *auth.OIDC
	assets   *assets
	handler  http.Handler
	mux      *http.ServeMux
}

// New builds the server. It does not contact the OIDC provider or the targets.
func New(d Deps) (*Server, error) {
	if d.Config == nil || d.DB == nil {
		return nil, errors.New("web.New: Config and DB are required")
	}
	s := &Server{
		cfg:     d.Config,
		db:      d.DB,
		targets: d.Targets,
		log:     d.Logger,
		tls:     d.TLS || strings.HasPrefix(d.Config.BaseURL, "https://"),
		now:     d.Now,
		finder:  d.Finder,
		engine:  d.Engine,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.previews = newPreviewCache(d.ExactWait, s.now)
	s.views = newLRU[string, string](viewCacheBytes, func(html string) int { return len(html) })
	s.frozen = newLRU[int64, frozenPreview](frozenCacheEntries, nil)
	if s.finder == nil && s.engine != nil {
		s.finder = engineFinder{engine: s.engine, db: d.DB}
	}
	if s.approval = d.Approval; s.approval == nil {
		s.approval = approval.New(d.Config)
		s.approval.Clock = s.now
	}
	var err error
	if s.assets, err = newAssets(static.FS()); err != nil {
		return nil, fmt.Errorf("web.New: static files: %w", err)
	}

	s.store = auth.NewSessionStore(d.DB.Bun, auth.SessionValues{})
	s.store.Now = s.now
	s.sessions = scs.New()
	s.sessions.Store = s.store
	s.sessions.Codec = auth.SessionValues{}
	s.sessions.HashTokenInStore = true
	s.sessions.IdleTimeout = d.Config.Sessions.IdleTimeout
	s.sessions.Lifetime = d.Config.Sessions.AbsoluteTimeout
	s.sessions.Cookie.Name = s.cookieName("tombstone")
	s.sessions.Cookie.HttpOnly = true
	s.sessions.Cookie.SameSite = http.SameSiteLaxMode
	s.sessions.Cookie.Secure = s.tls
	s.sessions.Cookie.Path = "/"
	s.sessions.Cookie.Persist = false // a browser session cookie; the server enforces the timeouts
	s.sessions.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		s.serveError(w, r, fmt.Errorf("session: %w", err))
	}

	hashKey, encKey, err := preAuthKeys(d.Config.Sessions.Secret)
	if err != nil {
		return nil, fmt.Errorf("web.New: %w", err)
	}
	s.pre = sessions.NewCookieStore(hashKey, encKey)
	s.pre.Options = &sessions.Options{
		Path: "/", MaxAge: int(preAuthLifetime / time.Second),
		HttpOnly: true, Secure: s.tls, SameSite: http.SameSiteLaxMode,
	}
	s.pre.MaxAge(s.pre.Options.MaxAge)
	s.preName = s.cookieName("tombstone-pre")

	s.authn = auth.NewAuthenticator(d.DB.Bun, d.Limits)
	s.authn.Now = s.now
	if o := d.Config.OIDC; o != nil {
		redirect := o.RedirectURL
		if redirect == "" && d.Config.BaseURL != "" {
			redirect = d.Config.BaseURL + "/auth/oidc/callback"
		}
		if redirect == "" {
			return nil, errors.New("web.New: oidc needs redirect_url, or base_url to derive it from")
		}
		if s.oidc, err = auth.NewOIDC(auth.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: redirect}); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the whole application, middleware included.
func (s *Server) Handler() http.Handler { return s.handler }

// SessionManager exposes the scs manager (tests and tools read tokens through it).
func (s *Server) SessionManager() *scs.SessionManager { return s.sessions }

// Sweep deletes expired sessions and forgotten sign-in failures every interval until ctx
// ends. Run it in one goroutine per process; concurrent sweepers on several replicas are
// harmless.
func (s *Server) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := s.store.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "sweep sessions", "err", err)
		} else if n > 0 {
			s.log.DebugContext(ctx, "swept expired sessions", "count", n)
		}
		if _, err := s.authn.ForgetFailures(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "sweep sign-in failures", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cookieName adds the __Host- prefix under TLS, which makes browsers refuse the cookie unless
// it is Secure, host-only and for path /.
func (s *Server) cookieName(base string) string {
	if s.tls {
		return "__Host-" + base
	}
	return base
}

// preAuthLifetime bounds the pre-sign-in cookie: an OIDC round trip or one redirect.
const preAuthLifetime = 10 * time.Minute

// preAuthKeys derives the signing and encryption keys of the pre-sign-in cookie from the
// configured secret, or makes random ones (then the cookie does not survive a restart or
// work across replicas).
func preAuthKeys(secret string) (hashKey, encKey []byte, err error) {
	if secret == "" {
		hashKey, encKey = make([]byte, 32), make([]byte, 32)
		_, _ = rand.Read(hashKey)
		_, _ = rand.Read(encKey)
		return hashKey, encKey, nil
	}
	if hashKey, err = hkdf.Key(sha256.New, []byte(secret), nil, "tombstone pre-auth cookie signing", 32); err != nil {
		return nil, nil, err
	}
	if encKey, err = hkdf.Key(sha256.New, []byte(secret), nil, "tombstone pre-auth cookie encryption", 32); err != nil {
		return nil, nil, err
	}
	return hashKey, encKey, nil
}

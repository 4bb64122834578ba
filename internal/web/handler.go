package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/web/templates"
)

// handlerFunc is the shape of every page handler: it writes a response, or returns an error
// that adapt turns into an error page. It must not write anything before returning an error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// adapt turns a handlerFunc into an http.Handler with the one error mapping.
func (s *Server) adapt(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.serveError(w, r, err)
		}
	})
}

// Error is an error with a status and a message that is safe to show. Err, when set, is
// logged but never shown.
type Error struct {
	Status  int
	Message string
	Err     error
	// RetryAfter sets the Retry-After header (429, 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

func notFound(msg string) error  { return &Error{Status: http.StatusNotFound, Message: msg} }
func forbidden(msg string) error { return &Error{Status: http.StatusForbidden, Message: msg} }
func conflict(msg string) error  { return &Error{Status: http.StatusConflict, Message: msg} }
func badRequest(msg string) error {
	return &Error{Status: http.StatusBadRequest, Message: msg}
}

// classify maps an error to a status and a safe message. Only messages written for users
// (Error.Message, auth's ConflictError and ValidationError) are shown; everything else gets a
// generic text.
func classify(err error) (status int, msg string, retry time.Duration) {
	var e *Error
	var ce *auth.ConflictError
	var ve *auth.ValidationError
	var te *auth.ThrottledError
	switch {
	case errors.As(err, &e):
		return e.Status, e.Message, e.RetryAfter
	case errors.As(err, &te):
		return http.StatusTooManyRequests, "Too many failed attempts. Try again in " + waitText(te.Wait) + ".", te.Wait
	case errors.As(err, &ce):
		return http.StatusConflict, ce.Message, 0
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, "The " + ve.Field + " " + ve.Message + ".", 0
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, "Your role does not allow this.", 0
	case errors.Is(err, auth.ErrNotFound), errors.Is(err, pg.ErrNotFound):
		return http.StatusNotFound, "That does not exist, or no longer exists.", 0
	case errors.Is(err, pg.ErrConflict), errors.Is(err, pg.ErrReferenced):
		return http.StatusConflict, "That conflicts with a change made meanwhile. Reload the page and try again.", 0
	case errors.Is(err, pg.ErrInvalid), errors.Is(err, auth.ErrInvalid):
		return http.StatusUnprocessableEntity, "A value was not accepted. Check the form and try again.", 0
	case errors.Is(err, pg.ErrUnavailable), errors.Is(err, auth.ErrOIDCUnavailable):
		return http.StatusServiceUnavailable, "A service the console depends on is unavailable. Try again shortly.", 30 * time.Second
	}
	return http.StatusInternalServerError, "The console hit an unexpected error. It has been logged.", 0
}

// serveError logs err with the request id and renders the matching error page.
func (s *Server) serveError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // the client went away
	}
	status, msg, retry := classify(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.logger(ctx).Log(ctx, level, "request failed", "status", status, "err", err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	}
	s.errorPage(w, r, status, msg)
}

// errorPage renders an error page in the layout. It never fails: when even the page cannot
// be rendered, it falls back to plain text.
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := s.pageFor(w, r, http.StatusText(status), "")
	back := "/"
	if p.User == nil {
		back = ""
	}
	c := templates.ErrorPage(p, templates.Error{Status: status, Message: msg, RequestID: requestID(r.Context()), Back: back})
	if err := s.render(w, r, status, c); err != nil {
		s.logger(r.Context()).Error("render error page", "err", err)
		http.Error(w, http.StatusText(status)+" (request "+requestID(r.Context())+")", status)
	}
}

// render renders c into a buffer, then writes the status and the body, so that a failing
// component never leaves a half-written page behind a 200.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) error {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		return fmt.Errorf("render: %w", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
	return nil
}

// pageFor builds the layout's props for this request. It consumes the flash messages, so
// call it once per response, before anything is written.
func (s *Server) pageFor(w http.ResponseWriter, r *http.Request, title, nav string) templates.Page {
	p := templates.Page{
		Title:   title,
		Nav:     nav,
		Query:   r.URL.Query().Get("q"),
		Flashes: s.popFlashes(w, r),
		Assets:  s.assets.urls,
		Now:     s.now(),
	}
	if u := currentUser(r); u != nil {
		p.User = &templates.Viewer{Name: u.Name, Label: u.Label(), Role: string(u.Role), Admin: u.Role == auth.Admin}
		// The Requests badge; a failure only hides it.
		n, err := approval.CountAwaiting(r.Context(), s.db.Bun, u.ID)
		if err != nil {
			s.logger(r.Context()).Warn("count requests awaiting the user", "err", err)
		}
		p.Awaiting = n
	}
	return p
}

// seeOther redirects after a POST (303), so that reloading does not resubmit.
func seeOther(w http.ResponseWriter, r *http.Request, path string) error {
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

func waitText(d time.Duration) string {
	switch {
	case d <= time.Minute:
		n := int((d + time.Second - 1) / time.Second)
		return strconv.Itoa(n) + " " + plural(n, "second", "seconds")
	default:
		n := int((d + time.Minute - 1) / time.Minute)
		return strconv.Itoa(n) + " " + plural(n, "minute", "minutes")
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

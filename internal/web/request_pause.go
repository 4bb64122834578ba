package web

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/web/templates"
)

// requestPause pauses a running batched request: the executor stops after the batch it is in,
// and the root stays hidden. Admins only (the route and approval.Pause both check).
func (s *Server) requestPause(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	rq, err := approval.Get(r.Context(), s.db.Bun, id)
	if err != nil {
		return s.pauseError(id, err)
	}
	if _, err := approval.Pause(r.Context(), s.db.Bun, s.actor(r), id, s.batched(rq)); err != nil {
		return s.pauseError(id, err)
	}
	s.logger(r.Context()).Info("batched request paused", "request", id, "by", currentUser(r).Name)
	s.flash(w, r, "success", "Request #"+strconv.FormatInt(id, 10)+" will pause after the batch in progress. Its root stays hidden until it is resumed and finishes.")
	return seeOther(w, r, requestURL(id))
}

// requestResumeBatches puts a paused batched request back to running; the worker's sweeper
// queues it within seconds and it continues from its last checkpoint.
func (s *Server) requestResumeBatches(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	if _, err := approval.Resume(r.Context(), s.db.Bun, s.actor(r), id); err != nil {
		return s.pauseError(id, err)
	}
	s.logger(r.Context()).Info("batched request resumed", "request", id, "by", currentUser(r).Name)
	s.flash(w, r, "success", "Request #"+strconv.FormatInt(id, 10)+" will resume shortly from its last finished batch.")
	return seeOther(w, r, requestURL(id))
}

func (s *Server) pauseError(id int64, err error) error {
	n := strconv.FormatInt(id, 10)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return notFound("There is no request #" + n + ".")
	case errors.Is(err, approval.ErrAdminOnly):
		return forbidden("Only an admin can pause or resume a batched run.")
	case errors.Is(err, approval.ErrNotPausable):
		return conflict("Request #" + n + " is not a running batched request (to pause) or a paused one (to resume). Reload it to see where it is.")
	}
	return err
}

// batched reports whether the request's kind runs in batches (execution: batched).
func (s *Server) batched(rq *approval.Request) bool {
	k := s.cfg.Kinds[rq.Kind]
	return k != nil && k.Execution == config.ExecBatched && rq.Operation == approval.Delete
}

// batchProgress adds a batched run's state to its progress panel: batches committed, the
// estimated time left, the error that paused it, and the Pause or Resume form for admins.
func (s *Server) batchProgress(ctx context.Context, pr *templates.Progress, rq *approval.Request) {
	if !s.batched(rq) {
		return
	}
	pr.Batched = true
	for _, ts := range s.targetStatus(ctx, rq) {
		pr.Batches += ts.Batches
		if ts.LeftSeconds > 0 && rq.State == approval.Running {
			pr.Left = (time.Duration(ts.LeftSeconds) * time.Second).String()
		}
	}
	if rq.State == approval.Paused {
		pr.Error = rq.Error
	}
	me := CurrentUser(ctx)
	if me == nil || me.Role != auth.Admin {
		return
	}
	switch rq.State {
	case approval.Running:
		pr.PauseURL = requestURL(rq.ID) + "/pause"
	case approval.Paused:
		pr.ResumeURL = requestURL(rq.ID) + "/continue"
	}
}

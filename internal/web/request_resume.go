package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// requestResume asks for a partly executed request (partial) to run its unfinished targets,
// under the approval it already has. The route takes the approve action, so approvers and
// admins may resume; the executor then runs it (the sweeper queues it within seconds).
func (s *Server) requestResume(w http.ResponseWriter, r *http.Request) error {
	id, err := pathRequestID(r)
	if err != nil {
		return err
	}
	err = exec.Resume(r.Context(), s.db.Bun, s.actor(r), id)
	switch {
	case errors.Is(err, pg.ErrNotFound):
		return notFound("There is no request #" + strconv.FormatInt(id, 10) + ".")
	case errors.Is(err, exec.ErrNotPartial):
		return conflict("Request #" + strconv.FormatInt(id, 10) + " is not partly executed, so there is nothing to resume. Reload it to see where it is.")
	case err != nil:
		return err
	}
	s.logger(r.Context()).Info("request resumed", "request", id, "by", currentUser(r).Name)
	s.flash(w, r, "success", "Request #"+strconv.FormatInt(id, 10)+" will resume shortly: the targets that are not done yet run again.")
	return seeOther(w, r, requestURL(id))
}

package web

import "github.com/tombstone-console/tombstone/internal/auth"

// requestRoutes registers the requests list, the request page with its decisions, progress
// and drift check, and the audit log.
//
// Every signed-in user may open a request and post a decision: the approval service, not the
// route, decides who may approve, reject or cancel, so that a refused attempt (self-approval,
// a missing role) reaches it and is recorded in the audit log. GETs never change anything:
// link scanners and unfurlers fetch every URL they see.
func (s *Server) requestRoutes() {
	s.page("GET /requests", auth.Search, s.requestsList)
	s.page("GET /requests/{id}", auth.Search, s.requestShow)
	s.page("GET /requests/{id}/progress", auth.Search, s.requestProgress)
	s.page("GET /requests/{id}/drift", auth.Search, s.requestDrift)
	s.page("POST /requests/{id}/approve", auth.Search, s.requestApprove)
	s.page("POST /requests/{id}/reject", auth.Search, s.requestReject)
	s.page("POST /requests/{id}/cancel", auth.Search, s.requestCancel)
	s.page("POST /requests/{id}/resume", auth.Approve, s.requestResume)
	s.page("POST /requests/{id}/pause", auth.Administer, s.requestPause)
	s.page("POST /requests/{id}/continue", auth.Administer, s.requestResumeBatches)
	s.page("POST /requests/{id}/restore", auth.Request, s.requestRestore)

	s.page("GET /audit", auth.ViewAudit, s.auditPage)
	s.page("GET /audit/export.csv", auth.ViewAudit, s.auditExport)
	s.page("GET /audit/export.jsonl", auth.ViewAudit, s.auditExport)
}

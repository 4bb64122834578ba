package web

import "github.com/tombstone-console/tombstone/internal/auth"

// previewRoutes registers the preview of a root and the request form under it.
//
//	GET  /kinds/{kind}                    the kind's search tab
//	GET  /kinds/{kind}/{key}              the preview page (exact, or estimates first)
//	GET  /kinds/{kind}/{key}/exact        the exact preview region (htmx), else the page
//	GET  /kinds/{kind}/{key}/node/{id}    one branch of the tree (htmx), else its own page
//	POST /kinds/{kind}/{key}/request      open a request for the preview the form showed
//
// {key} is the root's primary key (composite keys comma-separated), or any term that finds
// exactly one root; the page then redirects to the key.
func (s *Server) previewRoutes() {
	s.page("GET /kinds/{kind}", auth.Search, s.kindHome)
	s.page("GET /kinds/{kind}/{key}", auth.Search, s.previewPage)
	s.page("GET /kinds/{kind}/{key}/exact", auth.Search, s.previewExact)
	s.page("GET /kinds/{kind}/{key}/node/{id}", auth.Search, s.previewBranch)
	s.page("POST /kinds/{kind}/{key}/request", auth.Request, s.previewRequest)
}

package web

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/web/templates"
)

// searchLimit caps the results shown for one query.
const searchLimit = 50

// home is the search page: a tab per kind, and the roots of the active kind that match q.
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	query := strings.TrimSpace(q.Get("q"))
	names := s.cfg.KindNames()
	kind := q.Get("kind")
	if _, ok := s.cfg.Kinds[kind]; !ok && len(names) > 0 {
		kind = names[0]
	}
	sp := templates.Search{Kind: kind, Query: query, Ready: s.finder != nil}
	for _, name := range names {
		v := url.Values{"kind": {name}}
		if query != "" {
			v.Set("q", query)
		}
		sp.Kinds = append(sp.Kinds, templates.KindTab{
			Name: name, Label: kindLabel(name), URL: "/?" + v.Encode(),
			Columns: s.cfg.Kinds[name].Search, Active: name == kind,
		})
	}
	if query != "" && kind != "" && s.finder != nil {
		roots, err := s.finder.FindRoots(r.Context(), kind, query, searchLimit+1)
		if err != nil {
			return err
		}
		if len(roots) > searchLimit {
			roots, sp.More = roots[:searchLimit], true
		}
		for _, root := range roots {
			res := templates.Result{Label: root.Label, Key: root.Key, URL: "/kinds/" + url.PathEscape(kind) + "/" + url.PathEscape(root.Key)}
			if root.Tombstoned {
				res.Badges = append(res.Badges, templates.Badge{Text: "tombstoned", Class: "action-soft"})
			}
			if root.OpenRequest {
				res.Badges = append(res.Badges, templates.Badge{Text: "open request", Class: "badge-muted"})
			}
			sp.Results = append(sp.Results, res)
		}
	}
	p := s.pageFor(w, r, "Search", "search")
	return s.render(w, r, http.StatusOK, templates.SearchPage(p, sp))
}

// kindLabel is a tab's title: the kind name with a capital letter.
func kindLabel(name string) string {
	r, n := utf8.DecodeRuneInString(name)
	return string(unicode.ToUpper(r)) + name[n:]
}

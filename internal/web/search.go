package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/templates"
)

// searchLimit caps the results shown for one query.
const searchLimit = 50

// home is the search page: a tab per kind, and the roots of the active kind that match q.
// An htmx request (search as you type) gets only the results region; a plain GET, or htmx
// restoring a page from history, gets the whole page. A target that cannot be reached is named
// in the results region (503 for the page, 200 for htmx, which swaps only 2xx answers).
func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	query := strings.TrimSpace(q.Get("q"))
	if len(query) > maxKeyLength || !utf8.ValidString(query) {
		return badRequest(fmt.Sprintf("The search text must be valid UTF-8 and at most %d bytes long.", maxKeyLength))
	}
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
	status := http.StatusOK
	if query != "" && kind != "" && s.finder != nil {
		roots, err := s.finder.FindRoots(r.Context(), kind, query, searchLimit+1)
		var te *preview.TargetError
		switch {
		case errors.As(err, &te):
			s.logger(r.Context()).Warn("search: target unreachable", "kind", kind, "target", te.Target, "err", err)
			sp.Problem = targetProblem(te.Target, s.cfg.Kinds[kind].Target, kind)
			status = http.StatusServiceUnavailable
		case err != nil:
			return err
		}
		if len(roots) > searchLimit {
			roots, sp.More = roots[:searchLimit], true
		}
		for _, root := range roots {
			res := templates.Result{Label: root.Label, Key: root.Key, URL: previewURL(kind, root.Key)}
			if root.Tombstoned {
				res.Badges = append(res.Badges, templates.Badge{Text: "tombstoned", Class: "action-soft"})
			}
			if root.OpenRequest {
				res.Badges = append(res.Badges, templates.Badge{Text: "open request", Class: "badge-open"})
			}
			sp.Results = append(sp.Results, res)
		}
	}
	w.Header().Add("Vary", "HX-Request")
	if isFragment(r) {
		return s.render(w, r, http.StatusOK, templates.SearchResults(sp))
	}
	p := s.pageFor(w, r, "Search", "search")
	return s.render(w, r, status, templates.SearchPage(p, sp))
}

// isFragment reports whether htmx asked for a part of a page. htmx restoring a page from its
// history (it keeps no cache of its own) needs the whole page.
func isFragment(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-History-Restore-Request") != "true"
}

// targetProblem says, in words fit for the page, that a target could not be reached.
func targetProblem(target, rootTarget, kind string) string {
	if target == rootTarget || rootTarget == "" {
		return fmt.Sprintf("The target database %q cannot be reached, so %ss cannot be searched or previewed right now. Try again shortly; if it persists, check the target's connection settings.", target, kind)
	}
	return fmt.Sprintf("The target database %q, which %ss reach, cannot be reached. Try again shortly; if it persists, check the target's connection settings.", target, kind)
}

// previewURL is the address of a root's preview page.
func previewURL(kind, key string) string {
	return "/kinds/" + url.PathEscape(kind) + "/" + url.PathEscape(key)
}

// kindLabel is a tab's title: the kind name with a capital letter.
func kindLabel(name string) string {
	r, n := utf8.DecodeRuneInString(name)
	return string(unicode.ToUpper(r)) + name[n:]
}

// engineFinder searches roots with the preview engine and marks those that have an open
// request (one query for the whole page of results).
type engineFinder struct {
	engine *preview.Engine
	db     *pg.DB
}

func (f engineFinder) FindRoots(ctx context.Context, kind, query string, limit int) ([]Root, error) {
	cs, err := f.engine.Search(ctx, kind, query, limit)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(cs))
	for i, c := range cs {
		keys[i] = c.KeyString()
	}
	open, err := approval.OpenIDs(ctx, f.db.Bun, kind, f.engine.Config().Kinds[kind].Target, keys)
	if err != nil {
		return nil, err
	}
	roots := make([]Root, len(cs))
	for i, c := range cs {
		_, isOpen := open[keys[i]]
		roots[i] = Root{Key: keys[i], Label: c.Label, Tombstoned: c.Tombstoned, OpenRequest: isOpen}
	}
	return roots, nil
}

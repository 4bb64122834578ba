package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tombstone-console/tombstone/internal/config"

	"github.com/tombstone-console/tombstone/web/templates"
)

// adminPolicy shows the policy as declared in the file: each kind's target, table, root action
// and links. The resolved plan per kind (the tables reached with their actions) and the lint
// findings of `console policy check` belong on this page too, from the policy package.
func (s *Server) adminPolicy(w http.ResponseWriter, r *http.Request) error {
	props := templates.Policy{
		Hash: s.cfg.PolicyHash(),
		Defaults: []string{
			"under_delete: " + s.cfg.Defaults.UnderDelete,
			"under_soft: " + s.cfg.Defaults.UnderSoft,
		},
	}
	for _, name := range s.cfg.KindNames() {
		k := s.cfg.Kinds[name]
		pk := templates.PolicyKind{Name: name, Target: k.Target, Table: k.Table, Root: k.Root, Search: k.Search, Owns: k.Owns}
		if k.Archive > 0 {
			pk.Archive = durationText(k.Archive)
		}
		for _, a := range k.Also {
			pk.Also = append(pk.Also, a.Target+"."+a.Table+"."+a.Column)
		}
		props.Kinds = append(props.Kinds, pk)
	}
	return s.render(w, r, http.StatusOK, templates.PolicyPage(s.pageFor(w, r, "Policy", "admin"), props))
}

// durationText writes whole days as "30d" and anything else in Go's form ("36h0m0s").
func durationText(d config.Duration) string {
	td := time.Duration(d)
	if td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	return td.String()
}

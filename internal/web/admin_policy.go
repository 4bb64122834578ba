package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
	"github.com/tombstone-console/tombstone/web/templates"
)

// adminPolicy shows the policy: each kind as declared, its plan resolved against the live
// schemas (the tables it reaches, with their actions and tombstone columns) and the findings
// of `console policy check`, strict ones marked. A target whose schema cannot be read is
// named on the page; the kinds that reach it are shown unchecked, and the rest still are.
func (s *Server) adminPolicy(w http.ResponseWriter, r *http.Request) error {
	props := templates.Policy{
		Hash: s.cfg.PolicyHash(),
		Defaults: []string{
			"under_delete: " + s.cfg.Defaults.UnderDelete,
			"under_soft: " + s.cfg.Defaults.UnderSoft,
		},
		Checked: s.engine != nil,
	}
	schemas := map[string]*schema.Schema{}
	down := map[string]bool{}
	if s.engine != nil {
		for _, t := range s.cfg.TargetNames() {
			sch, err := s.engine.Schema(r.Context(), t)
			if err != nil {
				s.logger(r.Context()).Warn("policy page: target schema", "target", t, "err", err)
				down[t] = true
				props.Unreachable = append(props.Unreachable, templates.PolicyTarget{Name: t, Problem: "its schema could not be read (the database is unreachable or refused the connection)"})
				continue
			}
			schemas[t] = sch
		}
	}

	// Lint only the kinds whose targets could all be read; the others would only report
	// their target as missing.
	checked := *s.cfg
	checked.Kinds = map[string]*config.Kind{}
	unchecked := map[string]string{}
	for name, k := range s.cfg.Kinds {
		if t := firstDown(k, down); t != "" {
			unchecked[name] = "Not checked: target " + strconv.Quote(t) + " is unreachable."
			continue
		}
		checked.Kinds[name] = k
	}
	var (
		findings []policy.Finding
		strict   = map[string]bool{}
		inv      = map[string]policy.Inventory{}
	)
	if s.engine != nil {
		var all []policy.Finding
		var invs []policy.Inventory
		findings, invs = policy.Lint(&checked, schemas, false)
		all, _ = policy.Lint(&checked, schemas, true)
		plain := map[string]bool{}
		for _, f := range findings {
			plain[f.String()] = true
		}
		for _, f := range all {
			if !plain[f.String()] {
				strict[f.String()] = true
				findings = append(findings, f)
			}
		}
		for _, i := range invs {
			inv[i.Kind] = i
		}
	}
	byKind := map[string][]templates.PolicyFinding{}
	for _, f := range findings {
		if f.Kind == "" && len(down) > 0 && (f.Code == "unknown_table" || f.Code == "unknown_edge") {
			continue // the table or edge may live in the target that could not be read
		}
		pf := templates.PolicyFinding{Code: f.Code, Where: f.Where, Subject: f.Edge, Message: f.Msg, Fix: f.Fix, Strict: strict[f.String()]}
		if pf.Subject == "" {
			pf.Subject = f.Table
		}
		if f.Kind == "" {
			props.Findings = append(props.Findings, pf)
		} else {
			byKind[f.Kind] = append(byKind[f.Kind], pf)
		}
	}
	props.RulesUnchecked = len(down) > 0

	for _, name := range s.cfg.KindNames() {
		k := s.cfg.Kinds[name]
		pk := templates.PolicyKind{Name: name, Target: k.Target, Table: k.Table, Root: k.Root, Search: k.Search, Owns: k.Owns,
			Findings: byKind[name], Unchecked: unchecked[name]}
		if k.Archive > 0 {
			pk.Archive = durationText(k.Archive)
		}
		for _, a := range k.Also {
			pk.Also = append(pk.Also, a.Target+"."+a.Table+"."+a.Column)
		}
		if i, ok := inv[name]; ok {
			pk.Targets = i.Targets
			for _, t := range i.Tables {
				pk.Tables = append(pk.Tables, templates.PolicyTable{Target: t.Target, Table: t.Table, Actions: t.Actions, Tombstone: t.Tombstone, Edges: t.Edges})
			}
		}
		props.Kinds = append(props.Kinds, pk)
	}
	return s.render(w, r, http.StatusOK, templates.PolicyPage(s.pageFor(w, r, "Policy", "admin"), props))
}

// firstDown returns the first target the kind reaches that could not be read, or "".
func firstDown(k *config.Kind, down map[string]bool) string {
	if down[k.Target] {
		return k.Target
	}
	for _, a := range k.Also {
		if down[a.Target] {
			return a.Target
		}
	}
	return ""
}

// durationText writes whole days as "30d" and anything else in Go's form ("36h0m0s").
func durationText(d config.Duration) string {
	td := time.Duration(d)
	if td%(24*time.Hour) == 0 {
		return strconv.Itoa(int(td/(24*time.Hour))) + "d"
	}
	return td.String()
}

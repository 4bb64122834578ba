package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tombstone-console/tombstone/web/templates"
)

// adminTargets shows each target's reachability, server version and support for prepared
// transactions (the same probe as /readyz), its schema fingerprint when the preview engine
// can read it (from the schema cache, so usually without a catalog load), and how each kind
// that spans targets will commit: atomically with two-phase commit, or in order and
// resumably.
func (s *Server) adminTargets(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	status := s.probeTargets(ctx)

	kindsOf := map[string][]string{}
	var props templates.Targets
	for _, name := range s.cfg.KindNames() {
		k := s.cfg.Kinds[name]
		targets := []string{k.Target}
		for _, a := range k.Also {
			if !slices.Contains(targets, a.Target) {
				targets = append(targets, a.Target)
			}
		}
		for _, t := range targets {
			kindsOf[t] = append(kindsOf[t], name)
		}
		if len(targets) > 1 {
			props.Spanning = append(props.Spanning, spanOf(name, targets, status))
		}
	}

	for _, name := range s.cfg.TargetNames() {
		st, probed := status[name]
		th := templates.TargetHealth{Name: name, Reachable: st.OK, Problem: st.Error, ServerVersion: st.ServerVersion,
			MaxPreparedTransactions: st.MaxPreparedTransactions, Kinds: kindsOf[name]}
		if !probed {
			th.Problem = "not probed: no connection to the targets is configured"
		}
		if st.OK && s.engine != nil {
			sch, err := s.engine.Schema(ctx, name)
			if err != nil {
				s.logger(r.Context()).Warn("targets page: target schema", "target", name, "err", err)
			} else {
				th.Fingerprint = sch.Fingerprint
			}
		}
		props.Targets = append(props.Targets, th)
	}
	return s.render(w, r, http.StatusOK, templates.TargetsPage(s.pageFor(w, r, "Targets", "admin"), props))
}

// spanOf says how a kind reaching several targets commits, given their probes: atomically
// only when every one of them allows prepared transactions, as the executor decides.
func spanOf(kind string, targets []string, status map[string]DBStatus) templates.TargetSpan {
	span := templates.TargetSpan{Kind: kind, Targets: targets, Mode: "atomic"}
	var down, noPrepared []string
	for _, t := range targets {
		st := status[t]
		switch {
		case !st.OK:
			down = append(down, t)
		case st.MaxPreparedTransactions == 0:
			noPrepared = append(noPrepared, t)
		}
	}
	switch {
	case len(noPrepared) > 0:
		span.Mode = "ordered"
		span.Reason = "max_prepared_transactions is 0 on " + strings.Join(noPrepared, ", ")
	case len(down) > 0:
		span.Mode = "unknown"
		span.Reason = "unreachable: " + strings.Join(down, ", ")
	default:
		span.Reason = "every target allows prepared transactions"
	}
	return span
}

package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/templates"
)

// The preview page paints at once: when the exact preview is ready within the cache's wait
// (DefaultExactWait), or was computed in the last previewTTL, it is shown directly. Otherwise
// the page shows planner estimates (engine.Estimate) and, with JavaScript, htmx fetches the
// exact region from /exact as soon as the page has loaded; the evaluation started by the
// page keeps running, and that request joins it. Without JavaScript the estimate notice links
// to ?exact=1, which waits for the exact preview. Deep nodes of the tree (below lazyDepth)
// load on demand: with htmx when opened, without it through a link to the branch's page, and
// ?tree=full renders the whole tree.

const (
	// lazyDepth is the deepest level of the tree rendered with the page.
	lazyDepth = 3
	// confirmRows is the number of changed rows above which the operator must type the
	// root's label to request the deletion.
	confirmRows = 1000
	// maxKeyLength bounds the key or term in a preview URL.
	maxKeyLength = 1024
)

// rootRef is the root a preview URL names: the kind's plan and the matching row.
type rootRef struct {
	kind string
	plan *policy.Plan
	root preview.Candidate
	// key is the root's primary key as URLs write it; url its preview page.
	key string
	url string
}

// cacheKey is the key of the root's exact preview in the preview cache.
func (ref *rootRef) cacheKey() string { return previewKey(ref.plan, ref.root.Key) }

// resolveRoot finds the plan of {kind} and the root {key} names. The key reaches SQL only as
// a bound parameter; one that cannot be a key or a search term (control characters, invalid
// UTF-8, too long) matches nothing.
func (s *Server) resolveRoot(r *http.Request) (*rootRef, error) {
	if s.engine == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Message: "Previews are not available on this server: no preview engine is connected."}
	}
	kind, term := r.PathValue("kind"), r.PathValue("key")
	if _, ok := s.cfg.Kinds[kind]; !ok {
		return nil, &policy.UnknownKindError{Kind: kind, Known: s.cfg.KindNames()}
	}
	if !plausibleTerm(term) {
		return nil, &preview.NotFoundError{Kind: kind}
	}
	plan, err := s.engine.Plan(r.Context(), kind)
	if err != nil {
		return nil, err
	}
	root, err := s.engine.FindRoot(r.Context(), plan, term)
	if err != nil {
		return nil, err
	}
	key := root.KeyString()
	return &rootRef{kind: kind, plan: plan, root: root, key: key, url: previewURL(kind, key)}, nil
}

func plausibleTerm(s string) bool {
	return strings.TrimSpace(s) != "" && len(s) <= maxKeyLength && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// exact starts (or joins) the evaluation of the root's exact preview.
func (s *Server) exact(ctx context.Context, ref *rootRef, fresh bool) *previewEntry {
	plan, key := ref.plan, ref.root.Key
	return s.previews.start(ctx, ref.cacheKey(), fresh, func(ctx context.Context) (*preview.Preview, error) {
		return s.engine.Run(ctx, plan, key)
	})
}

// estimate is the preview with planner estimates, its root filled in from the search row.
func (s *Server) estimate(ctx context.Context, ref *rootRef) (*preview.Preview, error) {
	p, err := s.engine.Estimate(ctx, ref.plan)
	if err != nil {
		return nil, err
	}
	p.Root = preview.Root{Table: ref.plan.Root.Table.Name.String(), Key: ref.key, Keys: ref.root.Key, Label: ref.root.Label, Tombstoned: ref.root.Tombstoned}
	return p, nil
}

// kindHome sends /kinds/{kind} to the kind's search tab.
func (s *Server) kindHome(w http.ResponseWriter, r *http.Request) error {
	kind := r.PathValue("kind")
	if _, ok := s.cfg.Kinds[kind]; !ok {
		return s.previewProblem(w, r, &policy.UnknownKindError{Kind: kind, Known: s.cfg.KindNames()})
	}
	http.Redirect(w, r, "/?kind="+url.QueryEscape(kind), http.StatusFound)
	return nil
}

// previewPage is the preview of one root with the request form: exact when it is ready in
// time, planner estimates otherwise (see the comment at the top of this file).
func (s *Server) previewPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ref, err := s.resolveRoot(r)
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	if ref.key != r.PathValue("key") {
		// Found by a search column: the page lives at the key.
		target := ref.url
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	wait := s.previews.wait
	if r.URL.Query().Get("exact") == "1" {
		wait = previewTimeout
	}
	e := s.exact(ctx, ref, false)
	var p *preview.Preview
	if e.waitFor(ctx, wait) {
		if p, err = e.result(ctx); err != nil {
			return s.previewProblem(w, r, err)
		}
	} else if err := ctx.Err(); err != nil {
		return err
	} else if p, err = s.estimate(ctx, ref); err != nil {
		return s.previewProblem(w, r, err)
	}
	lp := s.livePreview(r, ref, p)
	return s.render(w, r, http.StatusOK, templates.PreviewPage(s.pageFor(w, r, p.Root.Label, "search"), lp))
}

// previewExact answers htmx with the exact preview region, waiting for the evaluation. A
// browser without JavaScript is sent to the page that waits for it.
func (s *Server) previewExact(w http.ResponseWriter, r *http.Request) error {
	ref, err := s.resolveRoot(r)
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	if !isFragment(r) {
		http.Redirect(w, r, ref.url+"?exact=1", http.StatusSeeOther)
		return nil
	}
	p, err := s.exact(r.Context(), ref, false).result(r.Context())
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	w.Header().Add("Vary", "HX-Request")
	return s.render(w, r, http.StatusOK, templates.PreviewRegion(s.livePreview(r, ref, p)))
}

// previewBranch is one node of the exact tree with its subtree: for htmx, the node opened in
// place; otherwise a page of its own.
func (s *Server) previewBranch(w http.ResponseWriter, r *http.Request) error {
	ref, err := s.resolveRoot(r)
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 {
		return notFound("There is no such node in this preview.")
	}
	p, err := s.exact(r.Context(), ref, false).result(r.Context())
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	v := previewProps(p, true, s.now())
	v.BatchNote = preview.BatchNote(s.cfg.Kinds[p.Kind], p)
	v.URL = ref.url
	n := findNode(v.Tree, id)
	if n == nil {
		return notFound("There is no such node in this preview. The schema may have changed: reload the preview.")
	}
	if isFragment(r) {
		v.LazyBelow = n.Depth + lazyDepth
		w.Header().Add("Vary", "HX-Request")
		return s.render(w, r, http.StatusOK, templates.TreeNode(v, n, true))
	}
	page := s.pageFor(w, r, n.Table+" · "+p.Root.Label, "search")
	return s.render(w, r, http.StatusOK, templates.BranchPage(page, templates.Branch{View: v, Node: n}))
}

func findNode(n *templates.PreviewNode, id int) *templates.PreviewNode {
	if n == nil {
		return nil
	}
	if n.ID == id {
		return n
	}
	for _, c := range n.Children {
		if m := findNode(c, id); m != nil {
			return m
		}
	}
	return nil
}

// previewRequest opens a request for the preview the form showed. The preview frozen into the
// request is the cached one when its digest is the posted digest, else a fresh evaluation;
// when that no longer matches the posted digest, the page is shown again with the new preview
// (409), so the operator asks only for what they have seen.
func (s *Server) previewRequest(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ref, err := s.resolveRoot(r)
	if err != nil {
		return s.previewProblem(w, r, err)
	}
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	digest := r.PostForm.Get("digest")
	form := templates.RequestForm{
		Reason: r.PostForm.Get("reason"), TicketURL: strings.TrimSpace(r.PostForm.Get("ticket_url")),
		Confirm: r.PostForm.Get("confirm"), Errors: map[string]string{},
	}
	p := s.previews.cached(ref.cacheKey())
	if p == nil || p.Digest != digest {
		if p, err = s.exact(ctx, ref, true).result(ctx); err != nil {
			return s.previewProblem(w, r, err)
		}
	}
	again := func(status int, problem string) error {
		lp := s.livePreview(r, ref, p)
		lp.Problem = problem
		f := &lp.Form
		f.Reason, f.TicketURL, f.Confirm, f.Errors = form.Reason, form.TicketURL, form.Confirm, form.Errors
		return s.render(w, r, status, templates.PreviewPage(s.pageFor(w, r, p.Root.Label, "search"), lp))
	}
	if p.Digest != digest {
		return again(http.StatusConflict, "The data changed since you loaded this page; review the new preview below and send the request again.")
	}
	if p.Totals.Changed() > confirmRows && strings.TrimSpace(form.Confirm) != p.Root.Label {
		form.Errors["confirm"] = fmt.Sprintf("Type %s exactly as shown to confirm this request.", p.Root.Label)
		if n := utf8.RuneCountInString(strings.TrimSpace(form.Reason)); n < approval.MinReasonLength {
			form.Errors["reason"] = fmt.Sprintf("Give a reason of at least %d characters.", approval.MinReasonLength)
		}
		return again(http.StatusUnprocessableEntity, "")
	}
	req, err := s.approval.Create(ctx, s.db.Bun, approval.CreateInput{
		Actor: s.actor(r), Preview: p, Reason: form.Reason, TicketURL: form.TicketURL,
	})
	var ve *approval.ValidationError
	var open *approval.OpenRequestError
	switch {
	case errors.As(err, &ve):
		problem := ""
		for _, f := range ve.Fields {
			msg := sentence(f.Message)
			switch f.Field {
			case "reason", "ticket_url":
				form.Errors[f.Field] = msg
			default:
				problem = msg
			}
		}
		return again(http.StatusUnprocessableEntity, problem)
	case errors.As(err, &open):
		return s.renderProblem(w, r, templates.Problem{
			Status: http.StatusConflict, Title: "Already requested",
			Message:    fmt.Sprintf("%s already has an open request (#%d, %s). A root can have one open request at a time.", p.Root.Label, open.ID, open.State),
			LinksTitle: "The open request",
			Links:      []templates.ProblemLink{{Text: "Request #" + strconv.FormatInt(open.ID, 10), URL: requestURL(open.ID), Note: string(open.State)}},
		})
	case errors.Is(err, approval.ErrForbidden):
		return forbidden("Your role does not allow requesting deletions.")
	case err != nil:
		return err
	}
	s.logger(ctx).Info("deletion requested", "request", req.ID, "kind", ref.kind, "root", ref.key, "rows", p.Totals.Changed())
	msg := fmt.Sprintf("Request #%d for %s is open. It needs %d %s from someone else before it runs.",
		req.ID, p.Root.Label, req.ApprovalsRequired, plural(req.ApprovalsRequired, "approval", "approvals"))
	s.flash(w, r, "success", msg)
	return seeOther(w, r, requestURL(req.ID))
}

// sentence capitalises a message and ends it with a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// livePreview builds the preview page's props: the preview and the request form as this user
// may see it.
func (s *Server) livePreview(r *http.Request, ref *rootRef, p *preview.Preview) templates.LivePreview {
	v := previewHead(p, true, s.now())
	v.BatchNote = preview.BatchNote(s.cfg.Kinds[p.Kind], p)
	v.URL = ref.url
	if r.URL.Query().Get("tree") != "full" {
		v.LazyBelow = lazyDepth
	}
	if p.Exact {
		s.withCachedDetails(r.Context(), liveDetailsKey(ref, p, v), &v, p)
	} else {
		addDetails(&v, p)
	}
	return templates.LivePreview{View: v, Form: s.requestForm(r, ref, p)}
}

// requestForm says what the request panel offers this user for p.
func (s *Server) requestForm(r *http.Request, ref *rootRef, p *preview.Preview) templates.RequestForm {
	u := currentUser(r)
	f := templates.RequestForm{
		State: "ready", Action: ref.url + "/request", Digest: p.Digest, Changed: p.Totals.Changed(),
		ConfirmRows: confirmRows, Role: string(u.Role), MinReason: approval.MinReasonLength,
	}
	if f.Changed > confirmRows {
		f.ConfirmLabel = p.Root.Label
	}
	switch {
	case !auth.Can(u.Role, auth.Request):
		f.State = "role"
	case s.approval == nil:
		f.State = "unavailable"
	case p.Blocked():
		f.State = "blocked"
	default:
		id, err := approval.OpenID(r.Context(), s.db.Bun, ref.kind, ref.plan.Root.Target, ref.key)
		switch {
		case err == nil:
			f.State, f.OpenID, f.OpenURL = "open", id, requestURL(id)
		case !errors.Is(err, approval.ErrNotFound):
			s.logger(r.Context()).Warn("look up the open request", "err", err)
		}
		if f.State == "ready" && !p.Exact {
			f.State, f.Digest = "estimate", ""
		}
	}
	return f
}

// previewProblem renders what stops a preview: an unknown kind (404, with the kinds), a root
// that is not found (404, with the closest matches), several matches (300, with the matches)
// or an unreachable target (503, naming it). htmx gets the problem as the preview region,
// with 200 so that it is swapped in. Any other error goes to the generic error page.
func (s *Server) previewProblem(w http.ResponseWriter, r *http.Request, err error) error {
	kind := r.PathValue("kind")
	var (
		unknown *policy.UnknownKindError
		missing *preview.NotFoundError
		several *preview.AmbiguousError
		down    *preview.TargetError
		bad     *policy.Error
	)
	var pr templates.Problem
	switch {
	case errors.As(err, &unknown):
		pr = templates.Problem{Status: http.StatusNotFound, Title: "Unknown kind",
			Message:    fmt.Sprintf("The policy declares no kind %q.", unknown.Kind),
			LinksTitle: "Kinds you can search"}
		for _, k := range unknown.Known {
			pr.Links = append(pr.Links, templates.ProblemLink{Text: kindLabel(k), URL: "/?kind=" + url.QueryEscape(k), Note: "table " + s.cfg.Kinds[k].Table})
		}
	case errors.As(err, &missing):
		if gone := s.alreadyDeleted(r.Context(), kind, missing.Term); gone != nil {
			pr = *gone
			break
		}
		pr = templates.Problem{Status: http.StatusNotFound, Title: "Not found", LinksTitle: "Closest matches"}
		if missing.Term == "" {
			pr.Message = fmt.Sprintf("No %s has that key.", kind)
		} else {
			pr.Message = fmt.Sprintf("No %s matches %q by key or by %s.", kind, missing.Term, strings.Join(s.cfg.Kinds[kind].Search, ", "))
		}
		pr.Links = candidateLinks(kind, missing.Closest)
		if len(pr.Links) == 0 {
			pr.LinksTitle, pr.Links = "", nil
			pr.Message += " Search for it instead."
		}
	case errors.Is(err, preview.ErrRootNotFound):
		pr = templates.Problem{Status: http.StatusNotFound, Title: "Not found",
			Message: fmt.Sprintf("This %s no longer exists: it was deleted while the preview was being computed.", kind)}
	case errors.As(err, &several):
		pr = templates.Problem{Status: http.StatusMultipleChoices, Title: "Several matches",
			Message:    fmt.Sprintf("%q matches %d %ss. Pick one:", several.Term, len(several.Matches), kind),
			LinksTitle: "Matches", Links: candidateLinks(kind, several.Matches)}
	case errors.As(err, &down):
		w.Header().Set("Retry-After", "30")
		pr = templates.Problem{Status: http.StatusServiceUnavailable, Title: "Target unavailable",
			Message: targetProblem(down.Target, s.cfg.Kinds[kind].Target, kind)}
	case errors.As(err, &bad):
		return &Error{Status: http.StatusInternalServerError, Err: err,
			Message: fmt.Sprintf("The policy for %ss does not fit the target's schema, so no preview can be made. An admin can see why on the policy page.", kind)}
	default:
		return err
	}
	s.logger(r.Context()).Info("preview refused", "status", pr.Status, "err", err)
	return s.renderProblem(w, r, pr)
}

// renderProblem renders a problem page, or for htmx the problem in place of the preview.
func (s *Server) renderProblem(w http.ResponseWriter, r *http.Request, pr templates.Problem) error {
	pr.RequestID = requestID(r.Context())
	if isFragment(r) {
		return s.render(w, r, http.StatusOK, templates.ProblemFragment(pr))
	}
	return s.render(w, r, pr.Status, templates.ProblemPage(s.pageFor(w, r, pr.Title, "search"), pr))
}

func candidateLinks(kind string, cs []preview.Candidate) []templates.ProblemLink {
	var links []templates.ProblemLink
	for _, c := range cs {
		note := "key " + c.KeyString()
		if c.Tombstoned {
			note += ", tombstoned"
		}
		links = append(links, templates.ProblemLink{Text: c.Label, URL: previewURL(kind, c.KeyString()), Note: note})
	}
	return links
}

// previewProps converts a preview for templates.PreviewView. live is true on the preview page;
// the request page passes false for the frozen preview (the whole tree is rendered, nothing
// loads later, and URL stays empty). now is for relative times.
func previewProps(p *preview.Preview, live bool, now time.Time) templates.PreviewProps {
	v := previewHead(p, live, now)
	addDetails(&v, p)
	return v
}

// previewHead is previewProps without the details (the per-table summary and the tree), for a
// page that shows them from the view cache (see withCachedDetails).
func previewHead(p *preview.Preview, live bool, now time.Time) templates.PreviewProps {
	v := templates.PreviewProps{
		Kind: p.Kind, Target: p.Target, Action: p.Action,
		Root:  templates.PreviewRoot{Label: p.Root.Label, Table: p.Root.Table, Key: p.Root.Key, Tombstoned: p.Root.Tombstoned},
		Exact: p.Exact, Live: live, At: p.At, Took: p.Took, Now: now, Digest: p.Digest,
		Totals: totalsProps(p.Totals),
	}
	for _, t := range p.Targets {
		v.Targets = append(v.Targets, templates.PreviewTarget{Target: t.Target, Totals: totalsProps(t.Totals)})
	}
	for _, b := range p.Blockers {
		v.Blockers = append(v.Blockers, templates.PreviewBlocker{Target: b.Target, Table: b.Table, Path: b.Path, Reason: b.Reason, Rows: b.Rows, Sample: rowProps(b.Sample)})
	}
	for _, w := range p.Warnings {
		v.Warnings = append(v.Warnings, templates.PreviewWarning{Code: w.Code, Message: w.Message})
	}
	return v
}

// addDetails fills the per-table summary and the tree of v from p.
func addDetails(v *templates.PreviewProps, p *preview.Preview) {
	v.Tree = nodeProps(p.Tree, 0)
	for _, l := range p.Summary {
		v.Summary = append(v.Summary, templates.PreviewLine{Target: l.Target, Table: l.Table, Action: l.Action, Rows: l.Rows, AlreadyTombstoned: l.AlreadyTombstoned})
	}
	if !p.Exact && len(p.Summary) == 0 {
		estimateTables(v)
	}
}

func totalsProps(t preview.Totals) templates.PreviewTotals {
	return templates.PreviewTotals{Changed: t.Changed(), Delete: t.Delete, Soft: t.Soft, Detach: t.Detach, Keep: t.Keep, Block: t.Block, Tables: t.Tables}
}

func nodeProps(n *preview.Node, depth int) *templates.PreviewNode {
	if n == nil {
		return nil
	}
	out := &templates.PreviewNode{
		ID: n.ID, Depth: depth, Target: n.Target, Table: n.Table, Via: n.Via, Action: n.Action, Rule: n.Rule,
		Reason: n.Reason, Rows: n.Rows, Estimate: n.Estimate, Recursive: n.Recursive, Sample: rowProps(n.Sample),
	}
	for _, c := range n.Children {
		child := nodeProps(c, depth+1)
		out.Descendants += 1 + child.Descendants
		out.Children = append(out.Children, child)
	}
	return out
}

func rowProps(rows []preview.Row) []templates.PreviewRow {
	var out []templates.PreviewRow
	for _, r := range rows {
		row := templates.PreviewRow{Key: r.Key, Label: r.Label}
		for _, c := range r.Values {
			row.Values = append(row.Values, templates.PreviewColumn{Name: c.Name, Value: c.Value})
		}
		out = append(out, row)
	}
	return out
}

// estimateTables fills an estimate's per-table summary and per-target totals from its tree:
// the planner knows rows per node, not distinct rows per table, so a row reached on two
// paths counts twice. The page marks them as estimates.
func estimateTables(v *templates.PreviewProps) {
	type lineKey struct{ target, table, action string }
	idx := map[lineKey]int{}
	targets := map[string]int{}
	tables := map[string]bool{}
	var walk func(n *templates.PreviewNode)
	walk = func(n *templates.PreviewNode) {
		k := lineKey{n.Target, n.Table, n.Action}
		i, ok := idx[k]
		if !ok {
			i = len(v.Summary)
			idx[k] = i
			v.Summary = append(v.Summary, templates.PreviewLine{Target: n.Target, Table: n.Table, Action: n.Action})
		}
		v.Summary[i].Rows += n.Rows
		t, ok := targets[n.Target]
		if !ok {
			t = len(v.Targets)
			targets[n.Target] = t
			v.Targets = append(v.Targets, templates.PreviewTarget{Target: n.Target})
		}
		addEstimate(&v.Targets[t].Totals, n.Action, n.Rows)
		if n.Rows > 0 && n.Action != "keep" {
			tables[n.Target+"\x00"+n.Table] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	if v.Tree != nil {
		walk(v.Tree)
	}
	v.Totals.Tables = len(tables)
}

func addEstimate(t *templates.PreviewTotals, action string, rows int64) {
	switch action {
	case "delete":
		t.Delete += rows
	case "soft":
		t.Soft += rows
	case "detach":
		t.Detach += rows
	case "keep":
		t.Keep += rows
	case "block":
		t.Block += rows
	}
	t.Changed = t.Delete + t.Soft + t.Detach
}

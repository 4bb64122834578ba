package web

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/web/templates"
)

// auditPageSize is the number of events on one page of the audit log.
const auditPageSize = 100

// auditPage lists audit events, newest first, with filters and keyset paging (?before=seq),
// the chain's status and export links carrying the same filters. Invalid filters re-render
// the form with messages (422).
func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	form, f, errs := parseAuditFilter(q)
	var before int64
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return badRequest("The page link is not valid.")
		}
		before = n
	}
	page := templates.Audit{Filter: form, Errors: errs, Kinds: s.cfg.KindNames()}
	for _, a := range audit.Actions() {
		page.Actions = append(page.Actions, string(a))
	}
	if form.Kind != "" && !slices.Contains(page.Kinds, form.Kind) {
		page.Kinds = append(page.Kinds, form.Kind) // a kind since removed from the policy
	}
	page.Chain = s.chainStatus(ctx)
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	} else {
		events, next, err := audit.ListBrief(ctx, s.db.Bun, f, before, auditPageSize)
		if err != nil {
			return err
		}
		for _, e := range events {
			ev := templates.AuditEvent{
				Seq: e.Seq, At: e.At, Actor: e.ActorName, Action: string(e.Action), Kind: e.Kind,
				Root: e.RootLabel, Reason: e.Reason, Hash: e.Hash,
			}
			if ev.Root == "" {
				ev.Root = e.RootKey
			}
			if e.RequestID != nil {
				ev.RequestID, ev.RequestURL = *e.RequestID, requestURL(*e.RequestID)
			}
			page.Events = append(page.Events, ev)
		}
		filters := auditQuery(form)
		if next > 0 {
			v := auditQuery(form)
			v.Set("before", strconv.FormatInt(next, 10))
			page.Older = "/audit?" + v.Encode()
		}
		if before > 0 {
			page.Newest = withQuery("/audit", filters)
		}
		page.ExportCSV = withQuery("/audit/export.csv", filters)
		page.ExportJSONL = withQuery("/audit/export.jsonl", filters)
	}
	p := s.pageFor(w, r, "Audit log", "audit")
	return s.render(w, r, status, templates.AuditPage(p, page))
}

// auditExport streams the events matching the page's filters as CSV or JSON Lines, oldest
// first, as a download. audit.Export records the export in the log before it streams. A HEAD
// request gets the headers only and exports nothing.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	format := audit.FormatCSV
	if strings.HasSuffix(r.URL.Path, ".jsonl") {
		format = audit.FormatJSONL
	}
	_, f, errs := parseAuditFilter(r.URL.Query())
	if len(errs) > 0 {
		return &Error{Status: http.StatusUnprocessableEntity, Message: "The export's filters are not valid: " + strings.Join(sortedValues(errs), " ")}
	}
	name := "tombstone-audit-" + s.now().UTC().Format("20060102-150405") + "." + string(format)
	ew := &exportWriter{w: w, header: func() {
		h := w.Header()
		if format == audit.FormatCSV {
			h.Set("Content-Type", "text/csv; charset=utf-8")
		} else {
			h.Set("Content-Type", "application/jsonl; charset=utf-8")
		}
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Cache-Control", "no-store")
	}}
	if r.Method == http.MethodHead {
		ew.start()
		w.WriteHeader(http.StatusOK)
		return nil
	}
	u := currentUser(r)
	id := u.ID
	n, err := audit.Export(r.Context(), s.db.Bun, ew, format, f, audit.Actor{ID: &id, Name: u.Name, ClientIP: clientIP(r)})
	if err != nil {
		if !ew.started {
			return err
		}
		// The status is sent: cut the connection, so the client sees a failed download
		// rather than a file that merely looks short.
		s.logger(r.Context()).Error("audit export failed mid-stream", "format", format, "events", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	if !ew.started {
		ew.start()
		w.WriteHeader(http.StatusOK)
	}
	s.logger(r.Context()).Info("audit exported", "by", u.Name, "format", format, "events", n)
	return nil
}

// exportWriter sets the download's headers on the first write, so that an export failing
// before it writes anything can still answer with an error page.
type exportWriter struct {
	w       http.ResponseWriter
	header  func()
	started bool
}

func (e *exportWriter) start() {
	if !e.started {
		e.started = true
		e.header()
	}
}

func (e *exportWriter) Write(b []byte) (int, error) {
	e.start()
	return e.w.Write(b)
}

// parseAuditFilter reads the audit filters from a query: the form's values as typed, the
// filter, and per-field messages for invalid values. Dates are whole UTC days, both ends
// included.
func parseAuditFilter(q url.Values) (templates.AuditFilter, audit.Filter, map[string]string) {
	form := templates.AuditFilter{
		From: strings.TrimSpace(q.Get("from")), To: strings.TrimSpace(q.Get("to")),
		Actor: strings.TrimSpace(q.Get("actor")), Action: q.Get("action"), Kind: q.Get("kind"),
		Request: strings.TrimPrefix(strings.TrimSpace(q.Get("request")), "#"),
	}
	f := audit.Filter{Actor: form.Actor, Action: audit.Action(form.Action), Kind: form.Kind}
	errs := map[string]string{}
	if form.From != "" {
		t, err := time.Parse(time.DateOnly, form.From)
		if err != nil {
			errs["from"] = "Give the date as yyyy-mm-dd."
		}
		f.From = t
	}
	if form.To != "" {
		t, err := time.Parse(time.DateOnly, form.To)
		if err != nil {
			errs["to"] = "Give the date as yyyy-mm-dd."
		} else {
			f.To = t.AddDate(0, 0, 1)
		}
	}
	if errs["from"] == "" && errs["to"] == "" && !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		errs["to"] = "The end date is before the start date."
	}
	if form.Action != "" && !f.Action.Valid() {
		errs["action"] = "Choose one of the actions."
	}
	if form.Request != "" {
		n, err := strconv.ParseInt(form.Request, 10, 64)
		if err != nil || n <= 0 {
			errs["request"] = "Give a request number, like 42."
		}
		f.RequestID = n
	}
	return form, f, errs
}

// auditQuery encodes the filters for links (paging, exports).
func auditQuery(form templates.AuditFilter) url.Values {
	v := url.Values{}
	for k, x := range map[string]string{
		"from": form.From, "to": form.To, "actor": form.Actor, "action": form.Action, "kind": form.Kind, "request": form.Request,
	} {
		if x != "" {
			v.Set(k, x)
		}
	}
	return v
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func sortedValues(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

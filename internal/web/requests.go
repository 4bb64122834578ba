package web

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/web/templates"
)

// requestsPage is the number of requests on one page of the list.
const requestsPage = 50

// requestTabs are the list's tabs, in order.
var requestTabs = []struct {
	tab   approval.Tab
	label string
	empty string
}{
	{approval.TabAwaiting, "Awaiting me", "Nothing is waiting for your approval."},
	{approval.TabMine, "Mine", "You have not requested anything yet."},
	{approval.TabAll, "All", "There are no requests yet."},
}

// requestsList is the requests list: a tab (awaiting me, mine, all), optional state and kind
// filters, and keyset paging on the request id (?before=).
func (s *Server) requestsList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	me := currentUser(r)
	q := r.URL.Query()
	tab := approval.Tab(q.Get("tab"))
	if tab == "" {
		tab = approval.TabAll
		if me.Role == auth.Approver {
			tab = approval.TabAwaiting
		}
	}
	known := false
	for _, t := range requestTabs {
		known = known || t.tab == tab
	}
	if !known {
		return notFound("There is no such tab of requests.")
	}
	state := approval.State(q.Get("state"))
	if state != "" && !state.Valid() {
		state = ""
	}
	kind := q.Get("kind")
	if _, ok := s.cfg.Kinds[kind]; !ok {
		kind = ""
	}
	var before int64
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return badRequest("The page link is not valid.")
		}
		before = n
	}

	rows, err := approval.List(ctx, s.db.Bun, approval.ListFilter{
		Tab: tab, UserID: me.ID, State: state, Kind: kind, Limit: requestsPage + 1, Before: before,
	})
	if err != nil {
		return err
	}
	p := s.pageFor(w, r, "Requests", "requests")

	page := templates.Requests{Tab: string(tab), State: string(state), Kind: kind, Kinds: s.cfg.KindNames()}
	for _, st := range approval.States() {
		page.States = append(page.States, string(st))
	}
	link := func(t approval.Tab, before int64) string {
		v := url.Values{"tab": {string(t)}}
		if state != "" {
			v.Set("state", string(state))
		}
		if kind != "" {
			v.Set("kind", kind)
		}
		if before > 0 {
			v.Set("before", strconv.FormatInt(before, 10))
		}
		return "/requests?" + v.Encode()
	}
	for _, t := range requestTabs {
		rt := templates.RequestTab{Name: string(t.tab), Label: t.label, URL: link(t.tab, 0), Active: t.tab == tab}
		if t.tab == approval.TabAwaiting {
			rt.Count = p.Awaiting
		}
		if rt.Active {
			page.Empty = t.empty
		}
		page.Tabs = append(page.Tabs, rt)
	}
	if state != "" || kind != "" {
		page.Empty = "No requests match these filters."
	}
	if len(rows) > requestsPage {
		rows = rows[:requestsPage]
		page.Older = link(tab, rows[len(rows)-1].ID)
	}
	if before > 0 {
		page.Newest = link(tab, 0)
	}
	for _, rq := range rows {
		page.Rows = append(page.Rows, templates.RequestRow{
			ID: rq.ID, URL: requestURL(rq.ID), Kind: rq.Kind, Restore: rq.Operation == approval.Restore,
			RootLabel: rq.RootLabel, RootKey: rq.RootKey, State: string(shownState(&rq, s.now())),
			Rows: rq.RowsTotal, Requester: rq.RequesterName, Created: rq.CreatedAt,
			Approvals: rq.ApprovalsGiven, Required: rq.ApprovalsRequired,
		})
	}
	return s.render(w, r, http.StatusOK, templates.RequestsPage(p, page))
}

// requestURL is a request's page.
func requestURL(id int64) string { return "/requests/" + strconv.FormatInt(id, 10) }

// shownState is the state a reader should see: a pending request past its deadline is
// expired, even before the sweep moves it.
func shownState(r *approval.Request, now time.Time) approval.State {
	if r.ExpiredAt(now) {
		return approval.Expired
	}
	return r.State
}

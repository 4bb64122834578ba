package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
)

// auditAppend writes n events by actor with action and kind, for request id when not 0.
func (a *app) auditAppend(n int, actor string, action audit.Action, kind string, request int64) {
	a.t.Helper()
	for i := range n {
		e := audit.Event{ActorName: actor, Action: action, Kind: kind, RootKey: strconv.Itoa(i), RootLabel: "root " + strconv.Itoa(i), Reason: "test event"}
		if request != 0 {
			e.RequestID = &request
		}
		_, err := audit.Append(context.Background(), a.db.Bun, e)
		require.NoError(a.t, err)
	}
}

func auditSeqs(r *response) []string {
	var seqs []string
	r.testid("audit-event").Each(func(_ int, s *goquery.Selection) { seqs = append(seqs, s.AttrOr("data-seq", "")) })
	return seqs
}

func TestAuditPageFiltersAndPaging(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	vera, _ := a.signedIn("vera", auth.Viewer)
	_, aliceU := a.signedIn("alice", auth.Requester)
	rq := a.rqCreate(aliceU, "tenant", "1", "Acme Corporation (acme)") // event 1
	a.auditAppend(2, "bob", audit.ActionRejected, "repo", 0)           // 2, 3
	a.auditAppend(1, "carol", audit.ActionApproved, "tenant", rq.ID)   // 4

	r := vera.get("/audit")
	require.Equal(t, http.StatusOK, r.StatusCode)
	checkHeaders(t, r, "audit page")
	require.Equal(t, []string{"4", "3", "2", "1"}, auditSeqs(r))
	first := r.doc().Find(`[data-testid="audit-event"][data-seq="1"]`)
	require.Equal(t, "requested", first.AttrOr("data-action", ""))
	require.Equal(t, reqPath(rq.ID, ""), first.Find(`[data-testid="event-request"]`).AttrOr("href", ""))
	require.Contains(t, first.Text(), "Acme Corporation (acme)")
	require.Contains(t, first.Text(), "alice")
	require.Equal(t, "/audit/export.csv", r.testid("export-csv").AttrOr("href", ""))
	require.Equal(t, len(audit.Actions())+1, r.testid("filter-action").Find("option").Length())

	for q, want := range map[string][]string{
		"?actor=bob":                   {"3", "2"},
		"?action=approved":             {"4"},
		"?kind=tenant":                 {"4", "1"},
		"?request=" + rqItoa(rq.ID):    {"4", "1"},
		"?request=%23" + rqItoa(rq.ID): {"4", "1"},
		"?kind=tenant&actor=alice":     {"1"},
		"?from=" + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly):                                 {"4", "3", "2", "1"},
		"?to=" + time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly):                                   nil,
		"?from=" + time.Now().UTC().Format(time.DateOnly) + "&to=" + time.Now().UTC().Format(time.DateOnly): {"4", "3", "2", "1"},
	} {
		r := vera.get("/audit" + q)
		require.Equal(t, http.StatusOK, r.StatusCode, q)
		require.Equal(t, want, auditSeqs(r), q)
	}
	r = vera.get("/audit?actor=bob&kind=repo")
	require.Equal(t, "/audit/export.csv?actor=bob&kind=repo", r.testid("export-csv").AttrOr("href", ""))
	require.Equal(t, "/audit/export.jsonl?actor=bob&kind=repo", r.testid("export-jsonl").AttrOr("href", ""))
	require.Equal(t, "bob", r.testid("filter-actor").AttrOr("value", ""))
	require.Equal(t, 1, r.testid("filter-clear").Length())

	// Invalid filters re-render the form with messages.
	for q, field := range map[string]string{
		"?from=yesterday":                "from",
		"?from=2025-02-03&to=2025-02-01": "to",
		"?request=abc":                   "request",
		"?action=deleted_everything":     "action",
	} {
		r := vera.get("/audit" + q)
		require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode, q)
		require.Equal(t, 1, r.testid("error-"+field).Length(), q)
		require.Empty(t, auditSeqs(r), q)
	}
	require.Equal(t, http.StatusUnprocessableEntity, vera.get("/audit/export.csv?from=nope").StatusCode)

	// Keyset paging: 100 per page, newest first.
	a.auditAppend(150, "system", audit.ActionExpired, "", 0) // 5..154
	r = vera.get("/audit")
	seqs := auditSeqs(r)
	require.Len(t, seqs, 100)
	require.Equal(t, "154", seqs[0])
	require.Equal(t, "55", seqs[99])
	older := r.testid("pager-older").AttrOr("href", "")
	require.Equal(t, "/audit?before=55", older)
	r = vera.get(older)
	seqs = auditSeqs(r)
	require.Len(t, seqs, 54)
	require.Equal(t, "54", seqs[0])
	require.Equal(t, "1", seqs[53])
	require.Zero(t, r.testid("pager-older").Length())
	require.Equal(t, "/audit", r.testid("pager-newest").AttrOr("href", ""))
	r = vera.get("/audit?actor=system&before=100")
	seqs = auditSeqs(r)
	require.Len(t, seqs, 95)
	require.Equal(t, "99", seqs[0])
	require.Equal(t, "5", seqs[94])
	require.Zero(t, r.testid("pager-older").Length())
	require.Equal(t, "/audit?actor=system", r.testid("pager-newest").AttrOr("href", ""))

	// Anonymous visitors are sent to sign in.
	require.Equal(t, http.StatusSeeOther, a.client().get("/audit").StatusCode)
}

func TestAuditChainBadge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	vera, _ := a.signedIn("vera", auth.Viewer)
	badge := func(c *client) (ok, text string) {
		t.Helper()
		s := c.get("/audit").testid("chain-status")
		return s.AttrOr("data-ok", ""), strings.TrimSpace(s.Text())
	}
	ok, text := badge(vera)
	require.Equal(t, "true", ok)
	require.Equal(t, "No events yet", text)

	a.auditAppend(5, "bob", audit.ActionApproved, "tenant", 0)
	ok, text = badge(vera)
	require.Equal(t, "true", ok)
	require.Equal(t, "Verified through #5", text)
	a.auditAppend(3, "bob", audit.ActionApproved, "tenant", 0)
	_, text = badge(vera)
	require.Equal(t, "Verified through #8", text, "verified incrementally")

	tamper := func(sql string) {
		t.Helper()
		for _, st := range []string{"ALTER TABLE audit_events DISABLE TRIGGER ALL", sql, "ALTER TABLE audit_events ENABLE TRIGGER ALL"} {
			_, err := a.db.Pool.Exec(ctx, st)
			require.NoError(t, err, st)
		}
	}
	// A superuser edits event 3. A server that has not verified yet finds it.
	tamper("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3")
	fresh := newApp(t, onDB(a.db))
	vic, _ := fresh.signedIn("vic", auth.Viewer)
	ok, text = badge(vic)
	require.Equal(t, "false", ok)
	require.Equal(t, "Broken at #3", text)
	// Undoing the edit does not mend it: broken stays broken.
	tamper("UPDATE audit_events SET reason = 'test event' WHERE seq = 3")
	_, text = badge(vic)
	require.Equal(t, "Broken at #3", text)

	// The first server verified through #8: rewriting that event is caught incrementally.
	tamper("UPDATE audit_events SET hash = repeat('0', 64) WHERE seq = 8")
	ok, text = badge(vera)
	require.Equal(t, "false", ok)
	require.Equal(t, "Broken at #8", text)
}

func TestAuditExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newApp(t)
	vera, veraU := a.signedIn("vera", auth.Viewer)
	_, aliceU := a.signedIn("alice", auth.Requester)
	a.rqCreate(aliceU, "tenant", "1", "=HYPERLINK(\"http://evil\")")
	a.auditAppend(3, "bob", audit.ActionRejected, "repo", 0)

	r := vera.get("/audit/export.csv")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Equal(t, "text/csv; charset=utf-8", r.Header.Get("Content-Type"))
	require.Regexp(t, `^attachment; filename="tombstone-audit-\d{8}-\d{6}\.csv"$`, r.Header.Get("Content-Disposition"))
	line, _, err := bufio.NewReader(bytes.NewReader(r.body)).ReadLine()
	require.NoError(t, err)
	require.Equal(t, strings.Join(audit.CSVHeader, ","), string(line))
	res, err := audit.VerifyCSV(bytes.NewReader(r.body), audit.CSVOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(5), res.Count, "the export's own event is recorded before the rows are read, so it ends the file")
	require.NotContains(t, string(r.body), ",=HYPERLINK", "formula cells are escaped")

	// The export is itself audited, with the filters.
	evs, _, err := audit.List(ctx, a.db.Bun, audit.Filter{Action: audit.ActionExported}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, "vera", evs[0].ActorName)
	require.Equal(t, veraU.ID, *evs[0].ActorID)

	// JSON Lines with a filter.
	r = vera.get("/audit/export.jsonl?actor=bob")
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.Regexp(t, `filename="tombstone-audit-\d{8}-\d{6}\.jsonl"`, r.Header.Get("Content-Disposition"))
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	require.Len(t, lines, 3)
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		require.Equal(t, "bob", m["actor_name"])
		require.NotEmpty(t, m["hash"])
	}
	evs, _, err = audit.List(ctx, a.db.Bun, audit.Filter{Action: audit.ActionExported}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	require.Equal(t, map[string]any{"actor": "bob"}, evs[0].Details["filter"])

	// An empty export still answers with the header row, and HEAD exports nothing.
	r = vera.get("/audit/export.csv?actor=nobody")
	require.Equal(t, strings.Join(audit.CSVHeader, ",")+"\r\n", string(r.body))
	h := vera.rqFetch(http.MethodHead, "/audit/export.csv")
	require.Equal(t, http.StatusOK, h.StatusCode)
	require.Contains(t, h.Header.Get("Content-Disposition"), "attachment")
	evs, _, err = audit.List(ctx, a.db.Bun, audit.Filter{Action: audit.ActionExported}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3, "the HEAD request exported nothing")
}

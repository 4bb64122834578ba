package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
)

func words(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestBatchedRequestPauseAndResumeAreForAdmins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newAppWith(t, policy, func(cfg *config.Config, _ string) {
		cfg.Kinds["tenant"].Execution = config.ExecBatched
		cfg.Kinds["tenant"].BatchRows = 500
	})
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, bobU := a.signedIn("bob", auth.Approver)
	carol, _ := a.signedIn("carol", auth.Admin)
	_, rq := a.rqRunning(aliceU, bobU, "1")
	status := []exec.TargetStatus{{Target: "app", Phase: exec.PhaseBatches, Batched: true, Batches: 7, LeftSeconds: 95,
		Tables: []exec.TableProgress{{Table: "public.users", Action: "delete", Done: 350, Planned: 1200}}}}
	require.NoError(t, approval.Progress(ctx, a.db.Bun, rq.ID, rqJSON(t, status)))

	// Everyone sees the batches and the time left; only the admin gets the Pause form.
	for _, c := range []*client{alice, bob} {
		r := c.get(reqPath(rq.ID, ""))
		require.Equal(t, http.StatusOK, r.StatusCode)
		require.Equal(t, "7 batches committed", words(r.testid("batch-count").Text()))
		require.Equal(t, "· about 1m35s left", words(r.testid("batch-left").Text()))
		require.Zero(t, r.testid("pause-form").Length())
	}
	r := carol.get(reqPath(rq.ID, ""))
	require.Equal(t, "Runs in about 3 batches of at most 500 rows; not atomic; the root is hidden first.", r.testid("batch-note").Text(),
		"1,204 rows changed, in batches of 500")
	form := r.testid("pause-form")
	require.Equal(t, 1, form.Length())
	require.Equal(t, "post", form.AttrOr("method", ""))
	require.Equal(t, reqPath(rq.ID, "/pause"), form.AttrOr("action", ""))
	require.Equal(t, 1, form.Find(`button[type="submit"]`).Length(), "a plain form: no JavaScript needed")
	frag := carol.get(reqPath(rq.ID, "/progress"), "HX-Request", "true")
	require.Equal(t, 1, frag.testid("pause-button").Length(), "the polled panel keeps the form")

	// Nobody but an admin pauses, whatever they post.
	for _, c := range []*client{alice, bob} {
		require.Equal(t, http.StatusForbidden, c.post(reqPath(rq.ID, "/pause"), url.Values{}).StatusCode)
	}
	require.Equal(t, approval.Running, a.rqGet(rq.ID).State)

	r = carol.post(reqPath(rq.ID, "/pause"), url.Values{})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.text())
	require.Equal(t, reqPath(rq.ID, ""), r.location())
	require.Equal(t, approval.Paused, a.rqGet(rq.ID).State)
	require.Equal(t, http.StatusConflict, carol.post(reqPath(rq.ID, "/pause"), url.Values{}).StatusCode, "already paused")

	r = carol.get(reqPath(rq.ID, ""))
	require.Equal(t, "paused", r.testid("progress").AttrOr("data-state", ""))
	require.Empty(t, r.testid("progress").AttrOr("hx-get", ""), "a paused run is not polled")
	require.Equal(t, 1, r.testid("batch-paused").Length())
	require.Zero(t, r.testid("pause-form").Length())
	require.Equal(t, reqPath(rq.ID, "/continue"), r.testid("resume-batches-form").AttrOr("action", ""))
	require.Zero(t, alice.get(reqPath(rq.ID, "")).testid("resume-batches-form").Length())
	require.Equal(t, http.StatusForbidden, bob.post(reqPath(rq.ID, "/continue"), url.Values{}).StatusCode)

	r = carol.post(reqPath(rq.ID, "/continue"), url.Values{})
	require.Equal(t, http.StatusSeeOther, r.StatusCode, r.text())
	require.Equal(t, approval.Running, a.rqGet(rq.ID).State)
	for _, act := range []audit.Action{audit.ActionPaused, audit.ActionResumed} {
		evs := a.rqEvents(rq.ID, act)
		require.Len(t, evs, 1, act)
		require.Equal(t, "carol", evs[0].ActorName)
	}
}

func TestSingleTransactionRequestHasNoPause(t *testing.T) {
	t.Parallel()
	a := newApp(t)
	_, aliceU := a.signedIn("alice", auth.Requester)
	bobU, _ := a.user("bob", auth.Approver)
	carol, _ := a.signedIn("carol", auth.Admin)
	_, rq := a.rqRunning(aliceU, bobU, "1")
	r := carol.get(reqPath(rq.ID, ""))
	require.Zero(t, r.testid("batch-status").Length())
	require.Zero(t, r.testid("batch-note").Length())
	require.Zero(t, r.testid("pause-form").Length())
	require.Equal(t, http.StatusConflict, carol.post(reqPath(rq.ID, "/pause"), url.Values{}).StatusCode,
		"one transaction cannot stop half-way")
	require.Equal(t, approval.Running, a.rqGet(rq.ID).State)
}

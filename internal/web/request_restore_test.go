package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

const restoreTargetDDL = `
CREATE TABLE tenants (id bigint PRIMARY KEY, slug text NOT NULL UNIQUE, name text);
CREATE TABLE sites (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, subdomain text);
INSERT INTO tenants VALUES (1, 'acme', 'Acme'), (2, 'other', 'Other');
INSERT INTO sites VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c');
`

func TestRequestRestoreFromTheRequestPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	target, targetURL := pgtest.Empty(t)
	_, err := target.Pool.Exec(ctx, restoreTargetDDL)
	require.NoError(t, err)
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(`database: postgres://unused/db
targets:
  app: {dsn: %q}
kinds:
  tenant: {target: app, table: tenants, search: [slug], archive: 30d}
`, targetURL)), nil)
	require.NoError(t, err)
	a := newEngineApp(t, cfg)
	alice, aliceU := a.signedIn("alice", auth.Requester)
	bob, bobU := a.signedIn("bob", auth.Approver)
	viewer, _ := a.signedIn("vic", auth.Viewer)

	// A done deletion with an archive.
	pools := pg.NewPools(map[string]string{"app": targetURL}, pg.Options{MaxConns: 4})
	t.Cleanup(pools.Close)
	ex := &exec.Executor{Config: cfg, DB: a.db, Targets: pools, Engine: preview.NewEngine(cfg, pools, schema.NewCache(0)), Approval: approval.New(cfg)}
	svc := ex.Approval
	p := a.exact("tenant", "1")
	del, err := svc.Create(ctx, a.db.Bun, approval.CreateInput{Actor: approval.Actor{ID: aliceU.ID, Name: aliceU.Name}, Preview: p, Reason: "the customer left us"})
	require.NoError(t, err)
	_, err = svc.Approve(ctx, a.db.Bun, approval.ApproveInput{Actor: approval.Actor{ID: bobU.ID, Name: bobU.Name}, RequestID: del.ID, Digest: del.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.NoError(t, ex.Run(ctx, del.ID))
	require.Equal(t, approval.Done, a.rqGet(del.ID).State)

	// Previewing the deleted root says it is already deleted, and by which request.
	gone := alice.get("/kinds/tenant/1")
	require.Equal(t, http.StatusGone, gone.StatusCode)
	require.Contains(t, gone.text(), "Already deleted")
	require.Contains(t, gone.text(), reqPath(del.ID, ""))

	// The deletion's page offers the restore to requesters, with what it would do.
	page := alice.get(reqPath(del.ID, ""))
	require.Equal(t, http.StatusOK, page.StatusCode)
	panel := page.testid("restore")
	require.Equal(t, "false", panel.AttrOr("data-blocked", ""))
	require.Equal(t, 1, page.testid("restore-form").Length())
	require.Equal(t, reqPath(del.ID, "/restore"), page.testid("restore-form").AttrOr("action", ""))
	require.Equal(t, "2", page.doc().Find(`[data-testid="restore-line"][data-table="public.sites"] [data-testid="restore-rows"]`).Text())
	require.Equal(t, 1, page.testid("restore-window").Length())
	require.Zero(t, viewer.get(reqPath(del.ID, "")).testid("restore-form").Length(), "viewers cannot request")
	require.Equal(t, http.StatusForbidden, viewer.post(reqPath(del.ID, "/restore"), map[string][]string{"reason": {"put it back please"}}).StatusCode)

	// A short reason comes back with the error.
	r := alice.post(reqPath(del.ID, "/restore"), map[string][]string{"reason": {"oops"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.StatusCode)
	require.Equal(t, 1, r.testid("error-reason").Length())
	require.Equal(t, "oops", r.testid("restore-reason").Text())

	r = alice.post(reqPath(del.ID, "/restore"), map[string][]string{"reason": {"deleted the wrong tenant"}})
	require.Equal(t, http.StatusSeeOther, r.StatusCode)
	id, err := strconv.ParseInt(strings.TrimPrefix(r.location(), "/requests/"), 10, 64)
	require.NoError(t, err)
	restore := a.rqGet(id)
	require.Equal(t, approval.Restore, restore.Operation)
	require.Equal(t, del.ID, restore.RestoresRequestID)

	// The restore request page: the live restore, no deletion drift check; bob may approve.
	page = bob.get(reqPath(restore.ID, ""))
	require.True(t, strings.HasPrefix(strings.TrimSpace(page.testid("request-what").Text()), "Restore"))
	require.Zero(t, page.testid("drift-form").Length(), "the deletion's drift check does not apply")
	require.Equal(t, 1, page.testid("approve-form").Length())
	require.Equal(t, 2, page.testid("restore-line").Length(), "tenants and sites")
	require.Zero(t, page.testid("restore-form").Length())
	require.Zero(t, page.testid("restore-conflicts").Length())

	// A unique value taken since shows as a conflict, in red.
	_, err = target.Pool.Exec(ctx, "INSERT INTO tenants VALUES (7, 'acme', 'New Acme')")
	require.NoError(t, err)
	page = bob.get(reqPath(restore.ID, ""))
	require.Equal(t, "true", page.testid("restore").AttrOr("data-blocked", ""))
	conflict := page.doc().Find(`[data-testid="restore-conflict"][data-table="public.tenants"]`)
	require.Equal(t, 1, conflict.Length())
	require.Contains(t, conflict.Text(), "unique (slug) taken")
	require.Equal(t, 1, conflict.Closest(".banner-block").Length())
}

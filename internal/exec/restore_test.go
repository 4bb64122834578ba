package exec_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
)

// restoreDDL has composite keys, a self-referencing tree, a detached foreign key, a child that
// was already soft-deleted, identity and generated columns, values of awkward types, a parent
// outside the cascade, and hostile identifiers.
const restoreDDL = `
CREATE SCHEMA "we""ird";
CREATE TABLE "we""ird"."Ten ants" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, slug text NOT NULL UNIQUE,
    "na'me" text, deleted_at timestamptz);
CREATE TABLE "we""ird".users (id bigint PRIMARY KEY, email text UNIQUE);
CREATE TABLE "we""ird".projects (tenant_id bigint NOT NULL REFERENCES "we""ird"."Ten ants" ON DELETE CASCADE,
    n int NOT NULL, "Title; --" text, shout text GENERATED ALWAYS AS (upper("Title; --")) STORED,
    PRIMARY KEY (tenant_id, n), UNIQUE (tenant_id, "Title; --"));
CREATE TABLE "we""ird".tasks (id bigint PRIMARY KEY, tenant_id bigint NOT NULL, n int NOT NULL,
    assignee_id bigint REFERENCES "we""ird".users ON DELETE SET NULL,
    tags text[], meta jsonb, amount numeric(10,2), data bytea, due timestamptz,
    FOREIGN KEY (tenant_id, n) REFERENCES "we""ird".projects ON DELETE CASCADE);
CREATE TABLE "we""ird".comments (id bigint PRIMARY KEY, task_id bigint NOT NULL REFERENCES "we""ird".tasks ON DELETE CASCADE,
    body text, is_deleted boolean NOT NULL DEFAULT false);
CREATE TABLE "we""ird".folders (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES "we""ird"."Ten ants" ON DELETE CASCADE,
    parent_id bigint REFERENCES "we""ird".folders ON DELETE CASCADE, name text, deleted_at timestamptz);
CREATE TABLE "we""ird"."Link s" (id bigint PRIMARY KEY, "task id" bigint REFERENCES "we""ird".tasks ON DELETE SET NULL, url text);
CREATE TABLE "we""ird".notes (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES "we""ird"."Ten ants" ON DELETE CASCADE,
    body text, deleted_at timestamp);

INSERT INTO "we""ird"."Ten ants" (slug, "na'me") VALUES ('acme', 'x''); DROP TABLE y;--'), ('other', 'Other');
INSERT INTO "we""ird".users VALUES (1, 'ann@example.com'), (2, 'bo@example.com');
INSERT INTO "we""ird".projects VALUES (1, 1, 'alpha'), (1, 2, 'beta'), (2, 1, 'alpha');
INSERT INTO "we""ird".tasks VALUES
    (1, 1, 1, 1, '{a,"b c"}', '{"k": [1, 2.50, null], "s": "x\"y"}', 12.30, '\x00ff', '2024-02-29 12:34:56.789012+00'),
    (2, 1, 2, 2, NULL, NULL, NULL, NULL, NULL),
    (3, 2, 1, 1, '{}', '{}', 0, '', NULL);
INSERT INTO "we""ird".comments VALUES (1, 1, 'first', false), (2, 1, 'hidden', true), (3, 2, 'e''s', false), (4, 3, 'theirs', false);
INSERT INTO "we""ird".folders VALUES (1, 1, NULL, 'root', NULL), (2, 1, 1, 'child', NULL), (3, 1, 2, 'grandchild', NULL),
    (4, 1, 1, 'trashed', '2023-01-01 00:00:00+00'), (5, 2, NULL, 'theirs', NULL);
INSERT INTO "we""ird"."Link s" VALUES (1, 1, 'https://a'), (2, 3, 'https://theirs'), (3, 2, 'https://b');
INSERT INTO "we""ird".notes VALUES (1, 1, 'one', NULL), (2, 1, 'two', NULL), (3, 1, 'gone', '2023-01-01 00:00:00'), (4, 2, 'theirs', NULL);
`

const restorePolicy = `kinds:
  tenant: {table: '"we""ird"."Ten ants"', archive: 30d}
  archived: {table: '"we""ird"."Ten ants"', root: soft, archive: 30d}
`

var restoreTables = []string{`"we""ird"."Ten ants"`, `"we""ird".users`, `"we""ird".projects`, `"we""ird".tasks`,
	`"we""ird".comments`, `"we""ird".folders`, `"we""ird"."Link s"`, `"we""ird".notes`}

// contents hashes every table's rows over all columns.
func (b *bundle) contents(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range restoreTables {
		var h string
		require.NoError(t, b.target.Pool.QueryRow(context.Background(),
			"SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+tbl+" x").Scan(&h))
		out[tbl] = h
	}
	return out
}

// deleted runs an approved deletion of the root to done.
func (b *bundle) deleted(t *testing.T, kind, key string) *approval.Request {
	t.Helper()
	r := b.approved(t, kind, key)
	require.NoError(t, b.exec.Run(context.Background(), r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	return got
}

func (b *bundle) restoreRequest(t *testing.T, del *approval.Request) (*approval.Request, *exec.RestorePlan, error) {
	t.Helper()
	return exec.RequestRestore(context.Background(), b.svc, b.console.Bun, b.exec.Targets, exec.RestoreInput{
		Actor: b.alice, RequestID: del.ID, Reason: "deleted the wrong tenant by mistake",
	})
}

func lines(p *exec.RestorePlan) map[string]int64 {
	out := map[string]int64{}
	for _, l := range p.Lines {
		out[l.Table+" "+l.Action] = l.Rows
	}
	return out
}

func TestRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	before := b.contents(t)
	del := b.deleted(t, "tenant", "1")
	require.Zero(t, b.count(t, `SELECT count(*) FROM "we""ird"."Ten ants" WHERE id = 1`))
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM "we""ird"."Link s" WHERE "task id" IS NULL AND id = 1`))

	by, err := exec.DeletedBy(ctx, b.console.Bun, "tenant", "1")
	require.NoError(t, err)
	require.Equal(t, del.ID, by.ID)

	plan, err := exec.RestorePreview(ctx, b.exec.Targets, del)
	require.NoError(t, err)
	require.Empty(t, plan.Conflicts)
	require.Equal(t, map[string]int64{
		`we"ird.Ten ants restore`: 1, `we"ird.projects restore`: 2, `we"ird.tasks restore`: 2,
		`we"ird.comments restore`: 3, `we"ird.folders restore`: 4, `we"ird.Link s reattach`: 2,
		`we"ird.notes restore`: 3,
	}, lines(plan))
	require.True(t, plan.ExpiresAt.After(time.Now().Add(29*24*time.Hour)))

	r, _, err := b.restoreRequest(t, del)
	require.NoError(t, err)
	require.Equal(t, approval.Restore, r.Operation)
	require.Equal(t, del.ID, r.RestoresRequestID)
	require.Equal(t, plan.Digest, r.Digest)
	require.Len(t, b.events(t, r.ID, audit.ActionRestoreRequested), 1)

	// The two-person rule: the requester cannot approve, and nothing runs before approval.
	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.alice, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.ErrorIs(t, err, approval.ErrSelfApproval)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	require.Equal(t, approval.Pending, b.request(t, r.ID).State)
	require.Zero(t, b.count(t, `SELECT count(*) FROM "we""ird"."Ten ants" WHERE id = 1`))

	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.Equal(t, before, b.contents(t), "every table is back as it was")

	rep := report(t, got)
	require.Equal(t, int64(17), rep.Rows)
	evs := b.events(t, r.ID, audit.ActionRestored)
	require.Len(t, evs, 1)
	require.Equal(t, int64(17), evs[0].Details["rows"])
	require.Equal(t, del.ID, evs[0].Details["restores_request_id"])
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tombstone.ledger WHERE request_id = "+itoa(r.ID)))
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.archive WHERE restored_by IS NULL"))
	b.verified(t)

	_, err = exec.DeletedBy(ctx, b.console.Bun, "tenant", "1")
	require.ErrorIs(t, err, pg.ErrNotFound, "restored: no longer deleted")

	// A second restore of the same deletion is refused.
	_, err = exec.RestorePreview(ctx, b.exec.Targets, del)
	require.ErrorIs(t, err, exec.ErrAlreadyRestored)

	// The identity column goes on from where it was: a new tenant does not collide.
	_, err = b.target.Pool.Exec(ctx, `INSERT INTO "we""ird"."Ten ants" (slug) VALUES ('new')`)
	require.NoError(t, err)
}

func TestRestoreClearsOnlyTheTombstonesTheRequestSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	before := b.contents(t)
	del := b.deleted(t, "archived", "1")
	// The tenant, its live folders and notes 1 and 2 were tombstoned; note 3 already was and is
	// left alone, and so is folder 4.
	require.Equal(t, int64(3), b.count(t, `SELECT count(*) FROM "we""ird".notes WHERE tenant_id = 1 AND deleted_at IS NOT NULL`))
	// Since the deletion, someone cleared one tombstone by hand.
	_, err := b.target.Pool.Exec(ctx, `UPDATE "we""ird".notes SET deleted_at = NULL WHERE id = 2`)
	require.NoError(t, err)

	plan, err := exec.RestorePreview(ctx, b.exec.Targets, del)
	require.NoError(t, err)
	require.Empty(t, plan.Conflicts)
	require.Len(t, plan.Lines, 3)
	require.Equal(t, exec.RestoreLine{Target: "app", Table: `we"ird.Ten ants`, Action: exec.RestoreUntombstone, Rows: 1}, withoutHash(plan.Lines[0]))
	require.Equal(t, exec.RestoreLine{Target: "app", Table: `we"ird.folders`, Action: exec.RestoreUntombstone, Rows: 3}, withoutHash(plan.Lines[1]))
	require.Equal(t, exec.RestoreLine{Target: "app", Table: `we"ird.notes`, Action: exec.RestoreUntombstone, Rows: 1, Skipped: 1}, withoutHash(plan.Lines[2]))

	r, _, err := b.restoreRequest(t, del)
	require.NoError(t, err)
	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.Equal(t, before, b.contents(t))
	require.Equal(t, int64(5), report(t, got).Rows)
}

func withoutHash(l exec.RestoreLine) exec.RestoreLine {
	l.KeyHash = ""
	return l
}

func TestRestoreConflictsBlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	del := b.deleted(t, "tenant", "1")

	// Approved while the data allowed it; then the slug is taken and a parent and a detached
	// row go.
	r, _, err := b.restoreRequest(t, del)
	require.NoError(t, err)
	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	_, err = b.target.Pool.Exec(ctx, `INSERT INTO "we""ird"."Ten ants" (slug) VALUES ('acme');
		DELETE FROM "we""ird".users WHERE id = 2; DELETE FROM "we""ird"."Link s" WHERE id = 3`)
	require.NoError(t, err)

	plan, err := exec.RestorePreview(ctx, b.exec.Targets, del)
	require.NoError(t, err)
	require.True(t, plan.Blocked())
	reasons := map[string]int64{}
	for _, c := range plan.Conflicts {
		reasons[c.Table+": "+c.Reason] = c.Rows
	}
	require.Equal(t, map[string]int64{
		`we"ird.Ten ants: unique (slug) taken since the deletion: a row with the same value exists`:     1,
		`we"ird.tasks: the parent row no longer exists (we"ird.tasks.assignee_id → we"ird.users.id)`:    1,
		`we"ird.Link s: the detached rows no longer exist: their foreign-key values cannot be put back`: 1,
	}, reasons)
	require.True(t, plan.Preview().Blocked())

	before := b.contents(t)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "unique (slug) taken")
	require.Equal(t, before, b.contents(t), "nothing changed")
	require.Equal(t, int64(17), b.count(t, "SELECT count(*) FROM tombstone.archive WHERE restored_by IS NULL"))
	require.Len(t, b.events(t, r.ID, audit.ActionExecutionFailed), 1)
	require.Empty(t, b.events(t, r.ID, audit.ActionRestored))

	// A new restore request is refused while the conflicts stand.
	_, plan, err = b.restoreRequest(t, del)
	var ce *exec.ConflictError
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, err, exec.ErrRestoreConflict)
	require.Len(t, ce.Conflicts, 3)
	require.NotNil(t, plan)
	for _, c := range plan.Conflicts {
		if c.Table == `we"ird.Ten ants` {
			require.Equal(t, []string{`{"id": 1}`}, c.Sample)
		}
	}
	b.verified(t)
}

func TestRestoreDriftsWhenTheArchiveChanged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	del := b.deleted(t, "archived", "1")
	r, _, err := b.restoreRequest(t, del)
	require.NoError(t, err)
	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	_, err = b.target.Pool.Exec(ctx, `UPDATE "we""ird".notes SET deleted_at = NULL WHERE id = 2`)
	require.NoError(t, err)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Drifted, got.State, got.Error)
	require.Equal(t, []exec.Change{{Target: "app", Table: `we"ird.notes`, Action: exec.RestoreUntombstone, Approved: 2, Now: 1}}, report(t, got).Changes)
	require.Equal(t, int64(1), b.count(t, `SELECT count(*) FROM "we""ird"."Ten ants" WHERE id = 1 AND deleted_at IS NOT NULL`), "nothing changed")
	require.Len(t, b.events(t, r.ID, audit.ActionDrifted), 1)
}

func TestExpiredArchiveCannotBeRestored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	del := b.deleted(t, "tenant", "1")
	r, _, err := b.restoreRequest(t, del)
	require.NoError(t, err)
	_, err = b.svc.Approve(ctx, b.console.Bun, approval.ApproveInput{Actor: b.bob, RequestID: r.ID, Digest: r.Digest, SignedInAt: time.Now()})
	require.NoError(t, err)
	_, err = b.target.Pool.Exec(ctx, "UPDATE tombstone.archive SET expires_at = now() - interval '1 minute'")
	require.NoError(t, err)

	_, err = exec.RestorePreview(ctx, b.exec.Targets, del)
	require.ErrorIs(t, err, exec.ErrArchiveExpired)
	require.ErrorIs(t, err, exec.ErrNotRestorable)

	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Failed, got.State)
	require.Contains(t, got.Error, "archive window has passed")
	require.Zero(t, b.count(t, `SELECT count(*) FROM "we""ird"."Ten ants" WHERE slug = 'acme'`))

	// A deletion without an archive, and a request that has not run, cannot be restored.
	_, _, err = exec.RequestRestore(ctx, b.svc, b.console.Bun, b.exec.Targets, exec.RestoreInput{Actor: b.alice, RequestID: r.ID, Reason: "restore the restore"})
	require.ErrorIs(t, err, exec.ErrNotRestorable)
	pending := b.approved(t, "tenant", "2")
	_, err = exec.RestorePreview(ctx, b.exec.Targets, pending)
	require.ErrorIs(t, err, exec.ErrNotRestorable)
}

func TestPurgeRemovesOnlyExpiredArchives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, restoreDDL, restorePolicy, "")
	old := b.deleted(t, "tenant", "1")
	fresh := b.deleted(t, "archived", "2")
	_, err := b.target.Pool.Exec(ctx, "UPDATE tombstone.archive SET expires_at = now() - interval '1 second' WHERE request_id = $1", old.ID)
	require.NoError(t, err)
	oldRows := b.count(t, "SELECT count(*) FROM tombstone.archive WHERE request_id = "+itoa(old.ID))
	require.Equal(t, int64(17), oldRows)

	targets := pgPools(t, b)
	purged, err := exec.Purge(ctx, targets, b.console.Bun)
	require.NoError(t, err)
	require.Equal(t, []exec.Purged{{Target: "app", Rows: oldRows, Requests: map[int64]int64{old.ID: oldRows}}}, purged)
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.archive WHERE request_id = "+itoa(old.ID)))
	require.Equal(t, int64(3), b.count(t, "SELECT count(*) FROM tombstone.archive WHERE request_id = "+itoa(fresh.ID)))

	evs, _, err := audit.List(ctx, b.console.Bun, audit.Filter{Action: audit.ActionPurged}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, "app", evs[0].Target)
	require.Equal(t, audit.SystemActor, evs[0].ActorName)
	require.Equal(t, oldRows, evs[0].Details["rows"])
	require.Equal(t, map[string]any{itoa(old.ID): oldRows}, evs[0].Details["requests"])

	// Nothing left to purge: no event.
	purged, err = exec.Purge(ctx, targets, b.console.Bun)
	require.NoError(t, err)
	require.Empty(t, purged)
	evs, _, err = audit.List(ctx, b.console.Bun, audit.Filter{Action: audit.ActionPurged}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	b.verified(t)

	// The purged deletion can no longer be restored; the fresh one still can.
	_, err = exec.RestorePreview(ctx, b.exec.Targets, old)
	require.True(t, errors.Is(err, exec.ErrNoArchive), "%v", err)
	_, err = exec.RestorePreview(ctx, b.exec.Targets, fresh)
	require.NoError(t, err)

	// The periodic purger removes the fresh archive once its window passes, and stops with
	// its context.
	_, err = b.target.Pool.Exec(ctx, "UPDATE tombstone.archive SET expires_at = now()")
	require.NoError(t, err)
	loopCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.exec.RunPurger(loopCtx, 20*time.Millisecond) }()
	require.Eventually(t, func() bool {
		return b.count(t, "SELECT count(*) FROM tombstone.archive") == 0
	}, 10*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Error(t, b.exec.RunPurger(ctx, 0))
	evs, _, err = audit.List(ctx, b.console.Bun, audit.Filter{Action: audit.ActionPurged}, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 2)
	b.verified(t)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// pgPools are the bundle's targets by name, as console serve opens them.
func pgPools(t *testing.T, b *bundle) *pg.Pools {
	t.Helper()
	p := pg.NewPools(map[string]string{"app": b.urls[1]}, pg.Options{MaxConns: 2})
	t.Cleanup(p.Close)
	return p
}

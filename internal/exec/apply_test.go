package exec_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type oneTarget struct{ db *pg.DB }

func (o oneTarget) DB(context.Context, string) (*pg.DB, error) { return o.db, nil }

const ddl = `
CREATE TABLE tenants (id bigint PRIMARY KEY, name text, deleted_at timestamptz);
CREATE TABLE folders (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE,
    parent_id bigint REFERENCES folders ON DELETE RESTRICT, name text);
CREATE TABLE docs (tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, n int NOT NULL,
    folder_id bigint REFERENCES folders ON DELETE SET NULL, title text, PRIMARY KEY (tenant_id, n));
CREATE TABLE "Doc Tags" (tenant_id bigint, n int, tag text, FOREIGN KEY (tenant_id, n) REFERENCES docs ON DELETE CASCADE);
CREATE TABLE a (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, b_id bigint);
CREATE TABLE b (id bigint PRIMARY KEY, a_id bigint REFERENCES a ON DELETE CASCADE);
ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b ON DELETE CASCADE;
CREATE TABLE notes (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, is_deleted boolean NOT NULL DEFAULT false);

INSERT INTO tenants VALUES (1, 'acme', NULL), (2, 'other', NULL);
INSERT INTO folders VALUES (1, 1, NULL, 'root'), (2, 1, 1, 'child'), (3, 1, 2, 'grandchild'), (4, 2, NULL, 'theirs');
INSERT INTO docs VALUES (1, 1, 3, 'd1'), (1, 2, NULL, 'd2'), (2, 1, 4, 'x');
INSERT INTO docs VALUES (2, 2, 2, 'cross-tenant doc in acme folder');
INSERT INTO "Doc Tags" VALUES (1, 1, 't1'), (1, 1, 't2'), (2, 1, 'keep');
INSERT INTO a VALUES (1, 1, NULL), (2, 1, NULL);
INSERT INTO b VALUES (1, 1), (2, 2);
UPDATE a SET b_id = 2 WHERE id = 1;
INSERT INTO notes VALUES (1, 1, false), (2, 2, false);
`

type fixture struct {
	db     *pg.DB
	engine *preview.Engine
}

func setup(t *testing.T, policyYAML string) fixture {
	t.Helper()
	db, _ := pgtest.Empty(t)
	_, err := db.Pool.Exec(context.Background(), ddl)
	require.NoError(t, err)
	_, err = pg.Migrate(context.Background(), db.Bun, pg.TargetMigrations())
	require.NoError(t, err)
	cfg, err := config.Parse("t.yaml", []byte("database: postgres://x/y\ntargets:\n  app: {dsn: postgres://x/y}\n"+policyYAML), nil)
	require.NoError(t, err)
	return fixture{db: db, engine: preview.NewEngine(cfg, oneTarget{db}, schema.NewCache(0))}
}

const tenantPolicy = `kinds:
  tenant: {table: tenants, archive: 30d}
edges:
  "folders.parent_id": {under_delete: delete}
`

func (f fixture) preview(t *testing.T, kind, key string) (*preview.Preview, exec.Plan) {
	t.Helper()
	ctx := context.Background()
	plan, err := f.engine.Plan(ctx, kind)
	require.NoError(t, err)
	p, err := f.engine.Run(ctx, plan, []string{key})
	require.NoError(t, err)
	return p, exec.Plan{RequestID: 7, Plan: plan, RootKey: []string{key}, Digest: p.Digest, Approved: p.Summary, ArchiveUntil: time.Now().Add(time.Hour)}
}

func (f fixture) apply(t *testing.T, ep exec.Plan) (*exec.Result, error) {
	t.Helper()
	ctx := context.Background()
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	res, err := exec.ApplyTx(ctx, tx, "app", ep)
	if err != nil {
		require.NoError(t, tx.Rollback(ctx))
		return nil, err
	}
	require.NoError(t, tx.Commit(ctx))
	return res, nil
}

func (f fixture) count(t *testing.T, sql string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), sql).Scan(&n), sql)
	return n
}

func TestApplyDeletesExactlyThePreview(t *testing.T) {
	t.Parallel()
	f := setup(t, tenantPolicy)
	p, ep := f.preview(t, "tenant", "1")
	require.False(t, p.Blocked(), "%v", p.Blockers)

	var steps []exec.Step
	ep.Progress = func(s exec.Step) { steps = append(steps, s) }
	res, err := f.apply(t, ep)
	require.NoError(t, err)
	require.Equal(t, p.Digest, res.Digest)

	require.Zero(t, f.count(t, "SELECT count(*) FROM tenants WHERE id = 1"))
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM folders"), "the whole tree goes, children first")
	require.Equal(t, int64(2), f.count(t, "SELECT count(*) FROM docs"), "acme's docs go; the other tenant's stay")
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM docs WHERE tenant_id = 2 AND n = 2 AND folder_id IS NULL"), "a doc in a deleted folder is detached")
	require.Equal(t, int64(1), f.count(t, `SELECT count(*) FROM "Doc Tags"`))
	require.Zero(t, f.count(t, "SELECT count(*) FROM a")+f.count(t, "SELECT count(*) FROM b"), "a cycle across tables is deleted in one statement")
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM tenants"))

	var changed int64
	for _, l := range p.Summary {
		if l.Action != config.ActionKeep {
			changed += l.Rows
		}
	}
	require.Equal(t, changed, f.count(t, "SELECT count(*) FROM tombstone.archive WHERE request_id = 7"), "every changed row is archived")
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM tombstone.archive WHERE action = 'detach' AND row ? 'folder_id'"))
	led, err := exec.ReadLedger(context.Background(), f.db.Pool, "app", 7)
	require.NoError(t, err)
	require.Equal(t, p.Digest, led.Digest)
	require.Equal(t, int64(3), led.Counts["app public.folders delete"])
	require.NotEmpty(t, steps)

	// Executing again finds the root gone: drift, not a second deletion.
	_, err = f.apply(t, ep)
	require.ErrorIs(t, err, exec.ErrDrifted)
}

// A child added since approval is found, with the archive (every set built and checked before
// anything changes) and without it (the leaf, notes, checked after its delete): drift, and the
// rollback leaves everything in place.
func TestApplyDriftsOnANewChild(t *testing.T) {
	t.Parallel()
	for _, archive := range []bool{true, false} {
		t.Run(fmt.Sprintf("archive=%v", archive), func(t *testing.T) {
			t.Parallel()
			f := setup(t, tenantPolicy)
			_, ep := f.preview(t, "tenant", "1")
			if !archive {
				ep.ArchiveUntil = time.Time{}
			}
			_, err := f.db.Pool.Exec(context.Background(), "INSERT INTO notes VALUES (3, 1, false)")
			require.NoError(t, err)
			_, err = f.apply(t, ep)
			var drift *exec.DriftError
			require.ErrorAs(t, err, &drift)
			require.Equal(t, []exec.Change{{Target: "app", Table: "public.notes", Action: "delete", Approved: 1, Now: 2}}, drift.Changes)
			require.Equal(t, int64(2), f.count(t, "SELECT count(*) FROM tenants"), "nothing was deleted")
			require.Equal(t, int64(3), f.count(t, "SELECT count(*) FROM notes"))
			require.Zero(t, f.count(t, "SELECT count(*) FROM tombstone.ledger"))

			// The same count with another row: only the key hash tells.
			_, err = f.db.Pool.Exec(context.Background(), "DELETE FROM notes WHERE id = 1")
			require.NoError(t, err)
			_, err = f.apply(t, ep)
			require.ErrorAs(t, err, &drift)
			require.Contains(t, drift.Error(), "public.notes delete: approved 1, now 1")
			require.Equal(t, int64(2), f.count(t, "SELECT count(*) FROM notes"))
		})
	}
}

// Without an archive the leaves' sets are not built (notes here): they are deleted from their
// parents' locked sets and checked by the digest after their deletes. The result is the same.
func TestApplyWithoutArchive(t *testing.T) {
	t.Parallel()
	f := setup(t, tenantPolicy)
	p, ep := f.preview(t, "tenant", "1")
	ep.ArchiveUntil = time.Time{}
	res, err := f.apply(t, ep)
	require.NoError(t, err)
	require.Equal(t, p.Digest, res.Digest)
	require.Equal(t, p.Summary, res.Summary)
	require.Zero(t, f.count(t, "SELECT count(*) FROM notes WHERE tenant_id = 1"))
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM notes"))
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM folders"))
	require.Equal(t, int64(2), f.count(t, "SELECT count(*) FROM docs"))
	require.Zero(t, f.count(t, "SELECT count(*) FROM a")+f.count(t, "SELECT count(*) FROM b"))
	require.Zero(t, f.count(t, "SELECT count(*) FROM tombstone.archive"))
	led, err := exec.ReadLedger(context.Background(), f.db.Pool, "app", 7)
	require.NoError(t, err)
	for _, l := range p.Summary {
		if l.Action != config.ActionKeep {
			require.Equal(t, l.Rows, led.Counts["app "+l.Table+" "+l.Action], l.Table)
		}
	}
}

func TestApplySoft(t *testing.T) {
	t.Parallel()
	f := setup(t, "kinds:\n  tenant: {table: tenants, root: soft}\n")
	p, ep := f.preview(t, "tenant", "1")
	require.False(t, p.Blocked())
	ep.ArchiveUntil = time.Time{}
	_, err := f.apply(t, ep)
	require.NoError(t, err)
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM tenants WHERE id = 1 AND deleted_at IS NOT NULL"))
	require.Equal(t, int64(1), f.count(t, "SELECT count(*) FROM notes WHERE is_deleted"))
	require.Equal(t, int64(4), f.count(t, "SELECT count(*) FROM folders"), "kept: no tombstone column")

	// A second soft delete of the same root is a success that changes nothing.
	p2, ep2 := f.preview(t, "tenant", "1")
	require.True(t, p2.Root.Tombstoned)
	require.Zero(t, p2.Totals.Changed())
	ep2.RequestID = 8
	_, err = f.apply(t, ep2)
	require.NoError(t, err)
}

func TestConcurrentChildInsertWaitsForTheExecutor(t *testing.T) {
	t.Parallel()
	f := setup(t, tenantPolicy)
	_, ep := f.preview(t, "tenant", "1")
	ctx := context.Background()
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = exec.ApplyTx(ctx, tx, "app", ep)
	require.NoError(t, err)

	// While the executor's transaction is open, a child insert under the root waits on the
	// root's lock: it cannot slip in and be orphaned.
	conn, err := f.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "SET lock_timeout = '300ms'")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "INSERT INTO notes VALUES (9, 1, false)")
	require.Error(t, err)
	require.Equal(t, "55P03", pg.Code(err), "the insert waited for the lock: %v", err)
	require.NoError(t, tx.Commit(ctx))
	_, err = conn.Exec(ctx, "INSERT INTO notes VALUES (9, 1, false)")
	require.Equal(t, "23503", pg.Code(err), "after commit the parent is gone and the FK refuses the child")
}

func TestDiff(t *testing.T) {
	t.Parallel()
	a := []preview.SummaryLine{{Target: "app", Table: "t", Action: "delete", Rows: 2, KeyHash: "x"}}
	require.Empty(t, exec.Diff(a, a))
	b := []preview.SummaryLine{{Target: "app", Table: "t", Action: "delete", Rows: 2, KeyHash: "y"}}
	require.Len(t, exec.Diff(a, b), 1, "same count, other rows")
	require.True(t, errors.Is(&exec.DriftError{}, exec.ErrDrifted))
	_ = pgx.ReadCommitted
}

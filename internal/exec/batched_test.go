package exec_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
)

// batchDDL is a tenant with enough rows for dozens of batches: a detach (other tenants' tasks
// assigned to its members), a composite key, a table that refers to itself, and a RESTRICT
// foreign key (invoices) that blocks when the tenant has any.
const batchDDL = `
CREATE TABLE tenants (id bigint PRIMARY KEY, name text, deleted_at timestamptz);
CREATE TABLE members (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, name text);
CREATE TABLE projects (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE, name text);
CREATE TABLE tasks (id bigint PRIMARY KEY, project_id bigint NOT NULL REFERENCES projects ON DELETE CASCADE,
    assignee_id bigint REFERENCES members ON DELETE SET NULL, title text);
CREATE INDEX ON tasks (project_id);
CREATE INDEX ON tasks (assignee_id);
CREATE TABLE comments (task_id bigint NOT NULL REFERENCES tasks ON DELETE CASCADE, n int NOT NULL, body text, PRIMARY KEY (task_id, n));
CREATE TABLE folders (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE CASCADE,
    parent_id bigint REFERENCES folders ON DELETE CASCADE, name text);
CREATE TABLE invoices (id bigint PRIMARY KEY, tenant_id bigint NOT NULL REFERENCES tenants ON DELETE RESTRICT);

INSERT INTO tenants VALUES (1, 'acme', NULL), (2, 'other', NULL);
INSERT INTO members SELECT i, CASE WHEN i <= 30 THEN 1 ELSE 2 END, 'member ' || i FROM generate_series(1, 40) i;
INSERT INTO projects SELECT i, CASE WHEN i <= 20 THEN 1 ELSE 2 END, 'project ' || i FROM generate_series(1, 25) i;
INSERT INTO tasks SELECT i, 1 + (i - 1) % 25, 1 + (i - 1) % 40, 'task ' || i FROM generate_series(1, 500) i;
INSERT INTO comments SELECT t, n, 'comment ' || t || '/' || n FROM generate_series(1, 500) t, generate_series(1, 3) n;
INSERT INTO folders VALUES (1, 1, NULL, 'root'), (31, 2, NULL, 'theirs');
INSERT INTO folders SELECT i, 1, 1 + (i - 2) / 5, 'folder ' || i FROM generate_series(2, 30) i;
INSERT INTO invoices VALUES (1, 2);
`

var batchTables = []string{"tenants", "members", "projects", "tasks", "comments", "folders", "invoices"}

const singlePolicy = `kinds:
  tenant: {table: tenants, archive: 30d}
`

const batchedPolicy = `kinds:
  tenant: {table: tenants, archive: 30d, execution: batched, batch_rows: 50, max_batch_seconds: 5s}
`

// admin adds carol, an admin, to the bundle's console.
func (b *bundle) admin(t *testing.T) approval.Actor {
	t.Helper()
	var id int64
	require.NoError(t, b.console.Pool.QueryRow(context.Background(), "INSERT INTO users (name, role, email) VALUES ('carol', 'admin', '') RETURNING id").Scan(&id))
	return approval.Actor{ID: id, Name: "carol", ClientIP: "192.0.2.9"}
}

// hashes is the target's rows per table, and the archive's rows (without request ids), as
// MD5 over their text forms in order.
func (b *bundle) hashes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tbl := range batchTables {
		var h string
		require.NoError(t, b.target.Pool.QueryRow(context.Background(),
			"SELECT coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+tbl+" x").Scan(&h))
		out[tbl] = h
	}
	var h string
	require.NoError(t, b.target.Pool.QueryRow(context.Background(), `SELECT coalesce(md5(string_agg(
		concat_ws('|', table_schema, table_name, action, key::text, row::text, restored_by), ',' ORDER BY table_name, action, key::text)), '')
		FROM tombstone.archive`).Scan(&h))
	out["tombstone.archive"] = h
	return out
}

// requireCountsAddUp checks the report's per-table counts, less the rows that arrived during
// the run, against the approved plan.
func requireCountsAddUp(t *testing.T, r *approval.Request, rep exec.Report) {
	t.Helper()
	got := map[string]int64{}
	for _, tc := range rep.Tables {
		got[tc.Table+" "+tc.Action] += tc.Rows
	}
	for _, tc := range rep.Arrived {
		got[tc.Table+" "+tc.Action] -= tc.Rows
	}
	for _, tc := range rep.Missing {
		got[tc.Table+" "+tc.Action] += tc.Rows
	}
	want := map[string]int64{}
	var total int64
	for _, l := range r.Preview.Summary {
		switch l.Action {
		case config.ActionDelete, config.ActionSoft, config.ActionDetach:
			if l.Rows > 0 {
				want[l.Table+" "+l.Action] = l.Rows
				total += l.Rows
			}
		}
	}
	for k, n := range got {
		if n == 0 {
			delete(got, k)
		}
	}
	require.Equal(t, want, got)
	require.Greater(t, total, int64(1000), "the fixture is big enough for many batches")
}

func TestBatchedCrashAndResumeMatchesSingleTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	single := newBundle(t, batchDDL, singlePolicy, "")
	rs := single.approved(t, "tenant", "1")
	require.NoError(t, single.exec.Run(ctx, rs.ID))
	require.Equal(t, approval.Done, single.request(t, rs.ID).State)

	b := newBundle(t, batchDDL, batchedPolicy, "")
	carol := b.admin(t)
	r := b.approved(t, "tenant", "1")
	require.Contains(t, r.Preview.Summary, r.Preview.Summary[0])

	// First run: killed after 5 batches (the context ends, as when the worker stops).
	runCtx, cancel := context.WithCancel(ctx)
	hiddenMidRun := int64(-1)
	b.exec.SetAfterBatch(func(n int) {
		if n == 2 {
			hiddenMidRun = b.count(t, "SELECT count(*) FROM tenants WHERE id = 1 AND deleted_at IS NOT NULL")
		}
		if n == 5 {
			cancel()
		}
	})
	require.ErrorIs(t, b.exec.Run(runCtx, r.ID), context.Canceled)
	require.Equal(t, int64(1), hiddenMidRun, "the root is tombstoned before the first batch")
	require.Equal(t, approval.Running, b.request(t, r.ID).State, "an interrupted run stays running")
	require.Equal(t, int64(5), b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints"))
	require.NotEqual(t, single.hashes(t), b.hashes(t), "half done")

	// Second run (the job's retry): continues from the checkpoint, then is killed again.
	runCtx, cancel = context.WithCancel(ctx)
	b.exec.SetAfterBatch(func(n int) {
		if n == 9 {
			cancel()
		}
	})
	require.ErrorIs(t, b.exec.Run(runCtx, r.ID), context.Canceled)
	require.Equal(t, int64(9), b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints"))
	require.Equal(t, int64(9), b.count(t, "SELECT count(DISTINCT (step, to_seq)) FROM tombstone.batch_checkpoints"), "no batch ran twice")

	// Nobody runs it now: the reconciler pauses it (it cannot fail: part of it is done).
	_, err := b.exec.Reconcile(ctx)
	require.NoError(t, err)
	paused := b.request(t, r.ID)
	require.Equal(t, approval.Paused, paused.State)
	require.Contains(t, paused.Error, "resume it")
	require.NoError(t, b.exec.Run(ctx, r.ID), "a stray job does not resume a paused request")
	require.Equal(t, int64(9), b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints"))

	_, err = approval.Resume(ctx, b.console.Bun, carol, r.ID)
	require.NoError(t, err)
	b.exec.SetAfterBatch(nil)
	require.NoError(t, b.exec.Run(ctx, r.ID))

	rep := requireSameAsSingle(t, b, r, single, rs)
	require.Equal(t, exec.ModeBatched, rep.Mode)
	require.Equal(t, r.Digest, rep.Digest)
	require.Empty(t, rep.Arrived)
	require.Equal(t, int(b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints")), rep.Batches)
	require.Greater(t, rep.Batches, 20)
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints WHERE to_seq - from_seq > 50 AND step NOT IN (SELECT step FROM tombstone.batch_checkpoints c GROUP BY step HAVING count(*) = 1)"),
		"batches hold at most batch_rows keys")
	require.Zero(t, b.count(t, "SELECT count(*) FROM pg_tables WHERE schemaname = 'tombstone' AND tablename LIKE 'work%'"), "work tables are dropped")
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tombstone.ledger"))

	require.Len(t, b.events(t, r.ID, audit.ActionExecutionStarted), 1)
	require.Len(t, b.events(t, r.ID, audit.ActionExecuted), 1)
	require.Len(t, b.events(t, r.ID, audit.ActionPaused), 1)
	require.Len(t, b.events(t, r.ID, audit.ActionResumed), 1)
	b.verified(t)
}

// Without an archive, batches of leaf rows (comments here) are deleted straight from their
// work table; interrupted and continued, the run still leaves what one transaction leaves.
func TestBatchedWithoutArchiveMatchesSingleTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	single := newBundle(t, batchDDL, "kinds:\n  tenant: {table: tenants}\n", "")
	rs := single.approved(t, "tenant", "1")
	require.NoError(t, single.exec.Run(ctx, rs.ID))
	require.Equal(t, approval.Done, single.request(t, rs.ID).State)

	b := newBundle(t, batchDDL, "kinds:\n  tenant: {table: tenants, execution: batched, batch_rows: 50, max_batch_seconds: 5s}\n", "")
	r := b.approved(t, "tenant", "1")
	runCtx, cancel := context.WithCancel(ctx)
	b.exec.SetAfterBatch(func(n int) {
		if n == 7 {
			cancel()
		}
	})
	require.ErrorIs(t, b.exec.Run(runCtx, r.ID), context.Canceled)
	left := b.count(t, "SELECT count(*) FROM comments")
	require.Greater(t, left, int64(0))
	require.Less(t, left, int64(1500), "some comments are gone")
	require.Equal(t, 1500-left, b.count(t, `SELECT sum(rows) FROM tombstone.batch_checkpoints c JOIN tombstone.batch_steps s USING (request_id, target, step) WHERE s.table_name = 'comments'`),
		"the checkpoints count what the batches deleted")
	b.exec.SetAfterBatch(nil)
	require.NoError(t, b.exec.Run(ctx, r.ID))

	requireSameAsSingle(t, b, r, single, rs)
}

// requireSameAsSingle checks that batched request r is done and left (and archived) what the
// single-transaction request rs left, with the same per-table counts adding up to the plan,
// and returns r's report.
func requireSameAsSingle(t *testing.T, b *bundle, r *approval.Request, single *bundle, rs *approval.Request) exec.Report {
	t.Helper()
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	require.Equal(t, single.hashes(t), b.hashes(t), "the same rows are left and archived as by one transaction")
	rep := report(t, got)
	requireCountsAddUp(t, r, rep)
	require.Equal(t, report(t, single.request(t, rs.ID)).Tables, rep.Tables)
	require.Empty(t, rep.Missing)
	return rep
}

func TestBatchedPauseAndResumeAreAudited(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, batchDDL, batchedPolicy, "")
	carol := b.admin(t)
	r := b.approved(t, "tenant", "1")
	b.exec.SetAfterBatch(func(n int) {
		if n == 3 {
			_, err := approval.Pause(ctx, b.console.Bun, carol, r.ID, true)
			require.NoError(t, err)
		}
	})
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Paused, got.State)
	require.Equal(t, int64(3), b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints"), "the executor stops after the batch in flight")
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tenants WHERE id = 1 AND deleted_at IS NOT NULL"), "the root stays hidden")

	require.NoError(t, b.exec.Run(ctx, r.ID), "a paused request does not run")
	require.Equal(t, int64(3), b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints"))
	require.NoError(t, exec.MigrateJobs(ctx, b.console.Pool, nil))
	jobs, err := exec.NewJobs(b.exec, exec.JobOptions{Workers: -1})
	require.NoError(t, err)
	n, err := jobs.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "the sweeper leaves a paused request alone")

	_, err = approval.Resume(ctx, b.console.Bun, carol, r.ID)
	require.NoError(t, err)
	n, err = jobs.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "the sweeper queues a resumed request")
	b.exec.SetAfterBatch(nil)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got = b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	requireCountsAddUp(t, r, report(t, got))
	require.Zero(t, b.count(t, "SELECT count(*) FROM tenants WHERE id = 1"))

	for _, a := range []audit.Action{audit.ActionPaused, audit.ActionResumed} {
		evs := b.events(t, r.ID, a)
		require.Len(t, evs, 1, a)
		require.Equal(t, "carol", evs[0].ActorName)
		require.Equal(t, "192.0.2.9", evs[0].ClientIP)
	}
	b.verified(t)
}

func TestBatchedRowsArrivingUnderTheHiddenRootAreDeletedAndReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, batchDDL, batchedPolicy, "")
	r := b.approved(t, "tenant", "1")
	b.exec.SetAfterBatch(func(n int) {
		if n == 2 {
			_, err := b.target.Pool.Exec(ctx, `INSERT INTO projects VALUES (100, 1, 'late');
				INSERT INTO tasks VALUES (1000, 100, NULL, 'late task');
				INSERT INTO comments VALUES (1000, 1, 'late comment'), (1, 9, 'late comment on an old task')`)
			require.NoError(t, err)
		}
	})
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	rep := report(t, got)
	require.ElementsMatch(t, []exec.TableCount{
		{Target: "app", Table: "public.projects", Action: "delete", Rows: 1},
		{Target: "app", Table: "public.tasks", Action: "delete", Rows: 1},
		{Target: "app", Table: "public.comments", Action: "delete", Rows: 2},
	}, rep.Arrived)
	requireCountsAddUp(t, r, rep)
	require.Zero(t, b.count(t, "SELECT count(*) FROM projects WHERE tenant_id = 1"))
	require.Zero(t, b.count(t, "SELECT count(*) FROM comments WHERE body LIKE 'late%'"))
	require.Equal(t, int64(4), b.count(t, "SELECT count(*) FROM tombstone.archive WHERE row->>'name' = 'late' OR row->>'title' = 'late task' OR row->>'body' LIKE 'late%'"),
		"the arrivals are archived too")
	b.verified(t)
}

func TestBatchedArrivalThatBlocksPausesTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newBundle(t, batchDDL, batchedPolicy, "")
	carol := b.admin(t)
	r := b.approved(t, "tenant", "1")
	b.exec.SetAfterBatch(func(n int) {
		if n == 1 {
			_, err := b.target.Pool.Exec(ctx, "INSERT INTO invoices VALUES (7, 1)")
			require.NoError(t, err)
		}
	})
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Paused, got.State)
	require.Contains(t, got.Error, "public.invoices")
	require.Equal(t, int64(1), b.count(t, "SELECT count(*) FROM tenants WHERE id = 1 AND deleted_at IS NOT NULL"), "the root stays, hidden")
	require.Zero(t, b.count(t, "SELECT count(*) FROM tasks WHERE project_id <= 20"), "the batches are done")
	paused := b.events(t, r.ID, audit.ActionPaused)
	require.Len(t, paused, 1)
	require.Equal(t, audit.SystemActor, paused[0].ActorName)

	_, err := b.target.Pool.Exec(ctx, "DELETE FROM invoices WHERE id = 7")
	require.NoError(t, err)
	_, err = approval.Resume(ctx, b.console.Bun, carol, r.ID)
	require.NoError(t, err)
	b.exec.SetAfterBatch(nil)
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got = b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	requireCountsAddUp(t, r, report(t, got))
}

func TestBatchedNoBatchOutlastsMaxBatchSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Deleting a comment takes 4ms: 400 of them would take 1.6s, past the 1s limit.
	slow := batchDDL + `
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.004); RETURN OLD; END $$;
CREATE TRIGGER slow BEFORE DELETE ON comments FOR EACH ROW EXECUTE FUNCTION slow();
`
	policy := strings.Replace(batchedPolicy, "batch_rows: 50, max_batch_seconds: 5s", "batch_rows: 400, max_batch_seconds: 1s", 1)
	b := newBundle(t, slow, policy, "")
	r := b.approved(t, "tenant", "1")
	started := time.Now()
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	rep := report(t, got)
	requireCountsAddUp(t, r, rep)
	require.LessOrEqual(t, rep.LongestTransaction, int64(1000), "longest transaction %dms", rep.LongestTransaction)
	require.Zero(t, b.count(t, "SELECT count(*) FROM tombstone.batch_checkpoints WHERE took_ms > 1000"))
	require.Less(t, b.count(t, `SELECT max(to_seq - from_seq) FROM tombstone.batch_checkpoints c JOIN tombstone.batch_runs USING (request_id)
		WHERE c.step = (SELECT min(step) FROM tombstone.batch_checkpoints WHERE rows > 0 AND took_ms > 300)`), int64(400),
		"the comments' batches were shrunk")
	t.Logf("batches %d, longest transaction %dms, collect %dms, total %s", rep.Batches, rep.LongestTransaction, rep.CollectMillis, time.Since(started))
}

// cycleDDL mirrors the demo's branches and commits: each commit belongs to a branch (CASCADE)
// and each branch points at its head commit (SET NULL), so the two tables are deleted as one
// group, and each one's rows are the other's children.
const cycleDDL = `
CREATE TABLE repos (id bigint PRIMARY KEY, name text);
CREATE TABLE branches (id bigint PRIMARY KEY, repo_id bigint NOT NULL REFERENCES repos ON DELETE CASCADE,
    head_commit_id bigint, name text);
CREATE TABLE commits (id bigint PRIMARY KEY, branch_id bigint NOT NULL REFERENCES branches ON DELETE CASCADE, sha text);
ALTER TABLE branches ADD FOREIGN KEY (head_commit_id) REFERENCES commits ON DELETE SET NULL;
CREATE INDEX ON branches (repo_id);
CREATE INDEX ON branches (head_commit_id);
CREATE INDEX ON commits (branch_id);

INSERT INTO repos VALUES (1, 'ours'), (2, 'theirs');
INSERT INTO branches SELECT i, CASE WHEN i <= 8 THEN 1 ELSE 2 END, NULL, 'b' || i FROM generate_series(1, 10) i;
INSERT INTO commits SELECT i, 1 + (i - 1) % 10, md5(i::text) FROM generate_series(1, 3000) i;
UPDATE branches SET head_commit_id = id + 2990;
`

// TestBatchedGroupOfTablesReferringToEachOther deletes a cycle of foreign keys in one batch:
// the commits under the batch's branches are planned rows of the same batch, not arrivals.
func TestBatchedGroupOfTablesReferringToEachOther(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const policy = `kinds:
  repo: {table: repos, archive: 30d, execution: batched, batch_rows: 50, max_batch_seconds: 5s}
`
	b := newBundle(t, cycleDDL, policy, "")
	r := b.approved(t, "repo", "1")
	require.NoError(t, b.exec.Run(ctx, r.ID))
	got := b.request(t, r.ID)
	require.Equal(t, approval.Done, got.State, got.Error)
	rep := report(t, got)
	require.Empty(t, rep.Arrived)
	requireCountsAddUp(t, r, rep)
	require.Zero(t, b.count(t, "SELECT count(*) FROM commits WHERE branch_id <= 8"))
	require.Equal(t, int64(2), b.count(t, "SELECT count(*) FROM branches"))
	require.Equal(t, int64(600), b.count(t, "SELECT count(*) FROM commits"))
}

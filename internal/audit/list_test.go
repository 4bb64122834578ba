package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	var all []Event
	for i := range 12 {
		e, err := Append(ctx, tx, event(Actions()[i%3], func(e *Event) {
			e.ActorName = []string{"alice", "bob"}[i%2]
			e.Kind = []string{"tenant", "site", "repo"}[i%3]
			e.RequestID = ptr(int64(100 + i%4))
		}))
		require.NoError(t, err)
		all = append(all, e)
	}
	seqs := func(evs []Event) []int64 {
		var out []int64
		for _, e := range evs {
			out = append(out, e.Seq)
		}
		return out
	}

	// Keyset pages, newest first.
	var got []int64
	before := int64(0)
	for range 10 {
		page, next, err := List(ctx, tx, Filter{}, before, 5)
		require.NoError(t, err)
		got = append(got, seqs(page)...)
		if next == 0 {
			break
		}
		before = next
	}
	require.Equal(t, []int64{12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, got)

	// ListBrief is the same page without details.
	full, fullNext, err := List(ctx, tx, Filter{Actor: "bob"}, 0, 4)
	require.NoError(t, err)
	brief, briefNext, err := ListBrief(ctx, tx, Filter{Actor: "bob"}, 0, 4)
	require.NoError(t, err)
	require.Equal(t, fullNext, briefNext)
	require.Len(t, brief, len(full))
	for i := range full {
		require.NotNil(t, full[i].Details)
		require.Nil(t, brief[i].Details)
		f := full[i]
		f.Details = nil
		require.Equal(t, f, brief[i])
	}

	for name, tc := range map[string]struct {
		f    Filter
		want []int64
	}{
		"actor":   {Filter{Actor: "bob"}, []int64{12, 10, 8, 6, 4, 2}},
		"action":  {Filter{Action: Actions()[1]}, []int64{11, 8, 5, 2}},
		"kind":    {Filter{Kind: "repo"}, []int64{12, 9, 6, 3}},
		"request": {Filter{RequestID: 101}, []int64{10, 6, 2}},
		"both":    {Filter{Actor: "alice", Kind: "tenant"}, []int64{7, 1}},
		"from":    {Filter{From: all[9].At}, []int64{12, 11, 10}},
		"to":      {Filter{To: all[2].At}, []int64{2, 1}},
		"none":    {Filter{Actor: "carol"}, nil},
	} {
		page, next, err := List(ctx, tx, tc.f, 0, 50)
		require.NoError(t, err, name)
		require.Zero(t, next, name)
		require.Equal(t, tc.want, seqs(page), name)
	}

	_, _, err = List(ctx, tx, Filter{}, 0, 0)
	require.ErrorIs(t, err, pg.ErrInvalid)
	_, _, err = List(ctx, tx, Filter{Action: "nope"}, 0, 5)
	require.ErrorIs(t, err, pg.ErrInvalid)
	_, _, err = List(ctx, tx, Filter{From: all[5].At, To: all[1].At}, 0, 5)
	require.ErrorIs(t, err, pg.ErrInvalid)
}

// syncBuffer is a log destination safe for the checkpoint goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunCheckpointsSignsOnlyNewHeads(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := pgtest.Fresh(t)
	key := testKey(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	count := func() int {
		var n int
		require.NoError(t, db.Bun.QueryRowContext(ctx, "SELECT count(*) FROM audit_checkpoints").Scan(&n))
		return n
	}

	done := make(chan error, 1)
	go func() { done <- RunCheckpoints(ctx, db.Bun, key, 20*time.Millisecond, logger) }()
	time.Sleep(100 * time.Millisecond)
	require.Zero(t, count(), "an empty log has nothing to sign")

	// Two events in one transaction, so that no checkpoint can fall between them.
	require.NoError(t, db.Bun.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		appendN(t, tx, 2)
		return nil
	}))
	require.Eventually(t, func() bool { return count() == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 1, count(), "no new events, no new checkpoint")

	appendN(t, db.Bun, 1)
	require.Eventually(t, func() bool { return count() == 2 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.Contains(t, logs.String(), "audit checkpoint")
	require.Contains(t, logs.String(), "signature=")
	res, err := Verify(context.Background(), db.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(5), res.Last, "2 events, a checkpoint, 1 event, a checkpoint")
}

func TestGrantsLeaveTheRuntimeRoleInsertAndSelectOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	admin := pgtest.Admin(t)
	role := fmt.Sprintf(`tomb "runtime" %d`, time.Now().UnixNano()%1e9)
	_, err := admin.Pool.Exec(ctx, "CREATE ROLE "+pg.QuoteIdent(role)+" LOGIN")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+pg.QuoteIdent(role))
		_, _ = admin.Pool.Exec(context.Background(), "DROP ROLE "+pg.QuoteIdent(role))
	})

	g, err := PlanGrants(ctx, db.Bun, role)
	require.NoError(t, err)
	require.Empty(t, g.Warnings)
	q := pg.QuoteIdent(role)
	require.Contains(t, g.Statements, `GRANT SELECT, INSERT ON "public"."audit_events" TO `+q)
	require.Contains(t, g.Statements, `GRANT SELECT, INSERT ON "public"."audit_checkpoints" TO `+q)
	require.Contains(t, g.Statements, `GRANT SELECT, INSERT, UPDATE, DELETE ON "public"."users" TO `+q)
	require.Contains(t, g.Statements, `GRANT SELECT ON "public"."bun_migrations" TO `+q)
	require.NoError(t, ApplyGrants(ctx, db.Bun, g))
	require.NoError(t, ApplyGrants(ctx, db.Bun, g), "idempotent")

	u, err := url.Parse(pgtest.URLOf(db))
	require.NoError(t, err)
	u.User = url.User(role)
	rt, err := pg.Open(ctx, u.String(), pg.Options{MaxConns: 2})
	require.NoError(t, err)
	defer rt.Close()

	_, err = Append(ctx, rt.Bun, event(ActionUserAdded))
	require.NoError(t, err)
	_, err = NewCheckpoint(ctx, rt.Bun, testKey(t))
	require.NoError(t, err)
	res, err := Verify(ctx, rt.Bun, 1)
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	for _, st := range []string{
		"UPDATE audit_events SET reason = 'x'",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
		"TRUNCATE audit_checkpoints",
		"ALTER TABLE audit_events DISABLE TRIGGER ALL",
		"INSERT INTO bun_migrations (name, group_id) VALUES ('x', 1)",
	} {
		_, err := rt.Pool.Exec(ctx, st)
		require.Error(t, err, st)
		require.Equal(t, "42501", pg.Code(err), "%s: %v", st, err)
		require.NotContains(t, err.Error(), "append-only", "%s is refused by the grants, before the trigger", st)
	}
	_, err = rt.Pool.Exec(ctx, "UPDATE users SET display_name = display_name")
	require.NoError(t, err)

	// The owner is warned about.
	var owner string
	require.NoError(t, db.Pool.QueryRow(ctx, "SELECT current_user").Scan(&owner))
	g, err = PlanGrants(ctx, db.Bun, owner)
	require.NoError(t, err)
	require.True(t, strings.Contains(strings.Join(g.Warnings, "\n"), "superuser"))
	require.True(t, strings.Contains(strings.Join(g.Warnings, "\n"), "owns audit_events"))

	g, err = PlanGrants(ctx, db.Bun, "no such role here")
	require.NoError(t, err)
	require.Contains(t, g.Warnings[0], "does not exist")
	require.Error(t, ApplyGrants(ctx, db.Bun, g))

}

func TestNumberedPlaceholders(t *testing.T) {
	t.Parallel()
	require.Equal(t, "SELECT x FROM t WHERE a = $1 AND b < $2 LIMIT $3", numbered("SELECT x FROM t WHERE a = ? AND b < ? LIMIT ?"))
	require.Equal(t, "SELECT 1", numbered("SELECT 1"))
}

func TestFilterRefusesInvalidText(t *testing.T) {
	t.Parallel()
	for _, f := range []Filter{{Actor: "bob\xff"}, {Kind: "\xc3"}} {
		_, _, err := ListBrief(context.Background(), pgtest.Tx(t), f, 0, 10)
		require.ErrorIs(t, err, pg.ErrInvalid)
		require.Contains(t, err.Error(), "not valid UTF-8")
	}
}

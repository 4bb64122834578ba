package pg_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestMigrateConsoleIsIdempotentAndConcurrentSafe(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	applied := make([][]string, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations())
		}()
	}
	wg.Wait()
	total := 0
	for i, err := range errs {
		require.NoError(t, err, "migrator %d", i)
		total += len(applied[i])
	}
	pending, err := pg.Pending(ctx, db.Bun, pg.ConsoleMigrations())
	require.NoError(t, err)
	require.Empty(t, pending)
	var n int
	require.NoError(t, db.Bun.NewRaw("SELECT count(*) FROM bun_migrations").Scan(ctx, &n))
	require.Equal(t, n, total, "each migration applied exactly once across the racing migrators")
}

func TestBrokenMigrationFailsLoudly(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	ctx := context.Background()
	set := pg.MigrationSet{
		Name: "broken", Table: "m", LocksTable: "m_locks", LockKey: 42,
		FS: fstest.MapFS{
			"0001_ok.tx.up.sql":     {Data: []byte("CREATE TABLE a (id int);")},
			"0002_broken.tx.up.sql": {Data: []byte("CREATE TABLE b (id int);\nSELEC oops;")},
		},
	}
	_, err := pg.Migrate(ctx, db.Bun, set)
	require.Error(t, err)
	require.Contains(t, err.Error(), "0002")
	require.Contains(t, err.Error(), "syntax error")

	// The failed migration's transaction rolled back and it is not marked applied.
	var b, a bool
	require.NoError(t, db.Bun.NewRaw("SELECT to_regclass('b') IS NOT NULL, to_regclass('a') IS NOT NULL").Scan(ctx, &b, &a))
	require.False(t, b, "table from the broken migration must not exist")
	require.True(t, a)
	pending, err := pg.Pending(ctx, db.Bun, set)
	require.NoError(t, err)
	require.Equal(t, []string{"0002_broken"}, pending)
}

func TestTargetMigrationsLiveInTombstoneSchema(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	ctx := context.Background()
	_, err := pg.Migrate(ctx, db.Bun, pg.TargetMigrations())
	require.NoError(t, err)
	var n int
	require.NoError(t, db.Bun.NewRaw("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(ctx, &n))
	require.Zero(t, n, "target migrations must not touch the application's public schema")
	require.NoError(t, db.Bun.NewRaw("SELECT count(*) FROM tombstone.ledger").Scan(ctx, &n))
}

func TestInterpret(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	ctx := context.Background()
	_, err := tx.ExecContext(ctx, "CREATE TEMP TABLE x (id int PRIMARY KEY, v int NOT NULL)")
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, "INSERT INTO x VALUES (1, 1)")
	require.NoError(t, err)

	_, err = tx.ExecContext(ctx, "SAVEPOINT s; INSERT INTO x VALUES (1, 1)")
	err = pg.Interpret(err)
	require.ErrorIs(t, err, pg.ErrConflict)
	require.Equal(t, "23505", pg.Code(err))
	_, _ = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT s")

	var v int
	err = pg.Interpret(tx.QueryRowContext(ctx, "SELECT v FROM x WHERE id = 2").Scan(&v))
	require.ErrorIs(t, err, pg.ErrNotFound)
	require.Nil(t, pg.Interpret(nil))
}

// A connection the driver has closed (the server went away while it sat in the pool) reads as
// the database being unavailable, whether the error passes through Interpret or only Wrap.
func TestClosedConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	_, err = conn.Exec(ctx, "SELECT 1")
	require.ErrorIs(t, err, pgconn.ErrConnClosed)
	require.ErrorIs(t, pg.Interpret(err), pg.ErrUnavailable)
	wrapped := err
	pg.Wrap(&wrapped, "Op(%d)", 1)
	require.ErrorIs(t, wrapped, pg.ErrUnavailable)
	require.Contains(t, wrapped.Error(), "Op(1): database unavailable")
}

func TestOpenUnreachableNamesHostAndPort(t *testing.T) {
	t.Parallel()
	_, err := pg.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable", pg.Options{})
	require.Error(t, err)
	require.ErrorIs(t, err, pg.ErrUnavailable)
	var ue *pg.UnreachableError
	require.True(t, errors.As(err, &ue))
	require.Contains(t, err.Error(), "127.0.0.1:1")
	require.NotContains(t, err.Error(), "\n")

	_, err = pg.Open(context.Background(), "postgres://u:secret@[bad", pg.Options{})
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "secret"), "passwords never appear in errors: %v", err)
}

func TestTableQuoting(t *testing.T) {
	t.Parallel()
	tbl := pg.Table{Schema: "public", Name: `a"; drop table x;--`}
	require.Equal(t, `"public"."a""; drop table x;--"`, tbl.Quoted())
	require.Equal(t, `public.a"; drop table x;--`, tbl.String())
}

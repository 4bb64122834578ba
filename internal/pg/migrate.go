package pg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// MigrationSet names a set of embedded migrations and the tables that record them.
type MigrationSet struct {
	Name       string // for messages: "console", "target"
	FS         fs.FS
	Table      string // migrations table, e.g. bun_migrations
	LocksTable string // bun's lock table
	// LockKey is the advisory lock that serialises migrators of this set on one database.
	LockKey int64
	// Schema, when set, is created before the migrations table (which may live in it).
	Schema string
}

// Migrate applies the unapplied migrations of set and returns their names.
//
// Two processes starting at once must not race. Each migrator first takes a session-level
// advisory lock on a dedicated connection (the second waits), then bun's own lock row. A lock
// row found while holding the advisory lock was left by a migrator that crashed, and is cleared.
// Each file runs in its own transaction and is marked applied only when it succeeds, so a
// failing migration leaves the database at the previous version and the error names the file.
func Migrate(ctx context.Context, db *bun.DB, set MigrationSet) (applied []string, err error) {
	defer wrap(&err, "migrate %s database", set.Name)

	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, Interpret(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", set.LockKey); err != nil {
		return nil, Interpret(err)
	}
	defer func() {
		// Use a fresh context: the lock must be released even when ctx was cancelled.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", set.LockKey)
	}()

	if set.Schema != "" {
		if _, err := conn.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+QuoteIdent(set.Schema)); err != nil {
			return nil, Interpret(err)
		}
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(set.FS); err != nil {
		return nil, err
	}
	m := migrate.NewMigrator(db, ms,
		migrate.WithMarkAppliedOnSuccess(true),
		migrate.WithTableName(set.Table),
		migrate.WithLocksTableName(set.LocksTable),
	)
	if err := m.Init(ctx); err != nil {
		return nil, Interpret(err)
	}
	// Holding the advisory lock, any bun lock row is stale.
	if err := m.Unlock(ctx); err != nil {
		return nil, Interpret(err)
	}
	if err := m.Lock(ctx); err != nil {
		return nil, err
	}
	defer func() {
		if uerr := m.Unlock(context.WithoutCancel(ctx)); uerr != nil && err == nil {
			err = uerr
		}
	}()
	group, err := m.Migrate(ctx)
	if err != nil {
		return nil, err
	}
	for _, mig := range group.Migrations {
		applied = append(applied, mig.Name+"_"+mig.Comment)
	}
	return applied, nil
}

// Pending lists migrations not yet applied (for /readyz and `console migrate --status`).
func Pending(ctx context.Context, db *bun.DB, set MigrationSet) ([]string, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(set.FS); err != nil {
		return nil, err
	}
	m := migrate.NewMigrator(db, ms, migrate.WithTableName(set.Table), migrate.WithLocksTableName(set.LocksTable))
	missing, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, Interpret(err)
	}
	var out []string
	for _, mig := range missing.Unapplied() {
		out = append(out, mig.Name+"_"+mig.Comment)
	}
	return out, nil
}

// wrap prefixes a non-nil error with the operation's name.
func wrap(errp *error, format string, args ...any) {
	if *errp != nil {
		err := *errp
		// A connection lost under database/sql (bun) reaches here untranslated.
		if !errors.Is(err, ErrUnavailable) && isConnError(err) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		*errp = fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
}

// Wrap is the exported form of wrap for other packages: defer pg.Wrap(&err, "Op(%q)", x).
func Wrap(errp *error, format string, args ...any) { wrap(errp, format, args...) }

package pg

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/uptrace/bun"
)

// Direct runs statements written with PostgreSQL's own $n parameters on the database/sql
// handle under a bun handle.
//
// bun writes its arguments into the SQL text, so each of its statements with a new argument
// (a session token, a user id, the current time) is a new statement to the server: parsed,
// planned, prepared and later deallocated, in two round trips. The few statements every page
// runs (the session, the user, the Requests badge) use Direct instead: one text per
// statement, prepared once per connection, then one round trip each.
type Direct interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// DirectOf returns the Direct handle of db: the pool of a *bun.DB, or the transaction or
// connection of a bun.Tx or bun.Conn, so that statements stay inside them.
func DirectOf(db bun.IDB) Direct {
	switch d := db.(type) {
	case *bun.DB:
		return d.DB
	case bun.Tx:
		return d.Tx
	case *bun.Tx:
		return d.Tx
	case bun.Conn:
		return d.Conn
	case *bun.Conn:
		return d.Conn
	}
	panic(fmt.Sprintf("pg.DirectOf: unsupported bun handle %T", db))
}

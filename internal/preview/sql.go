package preview

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// Querier runs SQL on one target: a pgx.Tx, *pgx.Conn or *pgxpool.Pool.
//
// Target SQL goes through pgx with server-side parameters ($1), never through bun's formatter:
// catalog identifiers may legally contain "?", which bun would take for a placeholder.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ctidKey names the key column of sets over tables without a primary key.
const ctidKey = "tomb_ctid"

// KeyColumns are the columns that identify a row of t in a set: its primary key, or the ctid
// (stable within one snapshot and one locking transaction) when it has none.
func KeyColumns(t *schema.Table) []string {
	if len(t.PrimaryKey) > 0 {
		return t.PrimaryKey
	}
	return []string{ctidKey}
}

// keySelect is the select list of t's key under alias a: a."id", or a.ctid AS tomb_ctid.
func keySelect(t *schema.Table, alias string) string {
	if len(t.PrimaryKey) == 0 {
		return alias + ".ctid AS " + ctidKey
	}
	return qualified(alias, t.PrimaryKey)
}

// keyRef is the key of t under alias a for comparisons: (a."x", a."y") or a.ctid.
func keyRef(t *schema.Table, alias string) string {
	if len(t.PrimaryKey) == 0 {
		return alias + ".ctid"
	}
	return "(" + qualified(alias, t.PrimaryKey) + ")"
}

func qualified(alias string, cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = alias + "." + pg.QuoteIdent(c)
	}
	return strings.Join(parts, ", ")
}

// sameColumns reports whether a and b hold the same column names, in any order.
func sameColumns(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}

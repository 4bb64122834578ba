package pg

import (
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// Table is a schema-qualified table name exactly as the catalog stores it.
type Table struct {
	Schema string
	Name   string
}

// String is the human form, e.g. public.orders (unquoted; for display and JSON, never for SQL).
func (t Table) String() string { return t.Schema + "." + t.Name }

// Quoted returns the SQL form, with both parts quoted as identifiers.
func (t Table) Quoted() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// AppendQuery lets a Table be passed to bun as a ? argument.
func (t Table) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	return append(b, t.Quoted()...), nil
}

var _ schema.QueryAppender = Table{}

// QuoteIdent quotes one identifier.
func QuoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// QuoteIdents quotes a list of identifiers and joins them with ", ".
func QuoteIdents(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = QuoteIdent(n)
	}
	return strings.Join(q, ", ")
}

// Ident is bun.Ident, re-exported so that callers quote identifiers one way.
func Ident(name string) bun.Ident { return bun.Ident(name) }

// QuoteLiteral quotes a string as an SQL literal. Use placeholders for values wherever the driver
// allows; this exists for the few statements that cannot take parameters (SET LOCAL, PREPARE TRANSACTION).
func QuoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

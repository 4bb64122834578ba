// Package schema reads a target database's catalog: tables, keys, foreign keys, tombstone
// columns and indexes, with identifiers exactly as PostgreSQL stores them.
//
// Load reads one consistent snapshot of the catalog; Cache keeps one Schema per target and
// reloads it only when the catalog's shape changes. A Schema is never modified after Load:
// policy declarations are applied with WithTombstone, which returns a copy.
package schema

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Errors returned by lookups and overrides; test with errors.Is. Their messages name the table or
// column and list close matches.
var (
	ErrUnknownTable   = errors.New("unknown table")
	ErrAmbiguousTable = errors.New("ambiguous table name")
	ErrUnknownColumn  = errors.New("unknown column")
	ErrTombstoneType  = errors.New("wrong type for a tombstone column")
)

// Schema is one target's catalog at one moment. It is immutable once loaded and safe to share.
type Schema struct {
	// Tables by schema-qualified name. Partitions are not listed: a partitioned table is one
	// table, and its partitions' rows are its rows.
	Tables map[pg.Table]*Table
	// FKs are every foreign key between listed tables (an FK declared on a partition is
	// attributed to its partitioned parent), sorted by (child table, name).
	FKs []*FK
	// Fingerprint is a hash of everything above except row estimates; it changes exactly when
	// the shape of the schema does. It identifies the catalog as loaded: WithTombstone copies it
	// unchanged (the policy's own hash covers declarations).
	Fingerprint string
	// ServerVersion is the server's version number (e.g. 150020).
	ServerVersion int
	// MaxPreparedTransactions is the server's max_prepared_transactions setting.
	MaxPreparedTransactions int

	// stamp is the cheap catalog checksum taken in the same snapshot as the load (see Cache).
	stamp string
}

// Table is one ordinary or partitioned table.
type Table struct {
	Name       pg.Table
	Columns    []*Column // in attnum order, without dropped or system columns
	PrimaryKey []string  // column names in key order; empty when the table has none
	// Uniques are the unique constraints and the unique indexes without predicate or
	// expressions, each in key order, besides the primary key; sorted, without duplicates.
	Uniques     [][]string
	Partitioned bool
	// Estimate is the planner's row estimate (reltuples, summed over partitions); -1 if never analysed.
	Estimate int64
	// Tombstone is the detected tombstone column (deleted_at timestamp[tz] or is_deleted
	// boolean); nil when there is none. Policy declarations may override it (WithTombstone).
	Tombstone *Column
	// TombstoneDeclared reports that Tombstone comes from a policy declaration, not detection.
	TombstoneDeclared bool
	// Indexes lists each index's leading key columns, used to tell whether an FK is covered.
	// Only valid, non-partial btree and hash indexes are listed (the ones a lookup by equality
	// on the columns can use), each cut at its first expression; on a partitioned table these
	// are its partitioned indexes. Sorted.
	Indexes [][]string
}

// Column is one column.
type Column struct {
	Name       string
	Type       string // format_type(atttypid, atttypmod), e.g. "timestamp with time zone"
	TypeOID    uint32
	NotNull    bool
	HasDefault bool // a DEFAULT expression, or a generated column's expression
	Generated  bool // GENERATED ALWAYS AS (…) STORED: it cannot be set, so never detached
}

// FK is one foreign key constraint: Child.Columns references Parent.RefColumns.
type FK struct {
	Name       string
	Child      pg.Table
	Columns    []string // in constraint order
	Parent     pg.Table
	RefColumns []string // the referenced key (the PK or a unique constraint), same order
	// OnDelete is one of "CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION".
	OnDelete string
	// SetColumns is the column list of ON DELETE SET NULL (cols) / SET DEFAULT (cols) (PG 15);
	// empty means all of Columns.
	SetColumns []string
	Deferrable bool
	Deferred   bool // INITIALLY DEFERRED
	// Indexed reports whether some index on Child has Columns as its leading columns (in any order).
	Indexed bool
	// Nullable reports whether any of Columns may be NULL.
	Nullable bool
	// ChildPartition is set when the constraint is declared on one partition of Child rather
	// than on Child itself; it then constrains only that partition's rows. Zero otherwise.
	ChildPartition pg.Table
	// ParentPartition is set when the constraint references one partition of Parent rather
	// than Parent itself. Zero otherwise.
	ParentPartition pg.Table
}

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for _, c := range t.Columns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// labelColumns are the columns shown next to a row's key in samples, in display order.
var labelColumns = []string{"name", "title", "slug", "email", "subdomain", "label", "login", "username"}

// LabelColumns returns the label-like columns the table has, in the order name, title, slug,
// email, subdomain, label, login, username. Names match exactly (a column "Name" is not one).
func (t *Table) LabelColumns() []string {
	var out []string
	for _, n := range labelColumns {
		if t.Column(n) != nil {
			out = append(out, n)
		}
	}
	return out
}

// IndexedOn reports whether some index on t has columns as its leading key columns, in any
// order, so that a lookup by equality on them need not scan the table.
func (t *Table) IndexedOn(columns []string) bool {
	if len(columns) == 0 {
		return false
	}
	want := slices.Sorted(slices.Values(columns))
	for _, ix := range t.Indexes {
		if len(ix) < len(columns) {
			continue
		}
		if slices.Equal(slices.Sorted(slices.Values(ix[:len(columns)])), want) {
			return true
		}
	}
	return false
}

// String describes the edge for messages, e.g. "public.orders.customer_id → public.customers.id"
// or, for a composite key, "public.lines(order_id, shop_id) → public.orders(id, shop_id)".
func (fk *FK) String() string {
	side := func(t pg.Table, cols []string) string {
		if len(cols) == 1 {
			return t.String() + "." + cols[0]
		}
		return t.String() + "(" + strings.Join(cols, ", ") + ")"
	}
	return side(fk.Child, fk.Columns) + " → " + side(fk.Parent, fk.RefColumns)
}

// Children returns the FKs that reference t (t is their Parent), in FKs order.
func (s *Schema) Children(t pg.Table) []*FK {
	var out []*FK
	for _, fk := range s.FKs {
		if fk.Parent == t {
			out = append(out, fk)
		}
	}
	return out
}

// Parents returns the FKs declared on t (t is their Child), in FKs order.
func (s *Schema) Parents(t pg.Table) []*FK {
	var out []*FK
	for _, fk := range s.FKs {
		if fk.Child == t {
			out = append(out, fk)
		}
	}
	return out
}

// Table resolves a table name as written in a policy or typed by an operator:
//   - "name": the table of that name in public, else the only table of that name in any schema;
//   - "schema.name": the table name in schema (a dot inside a name is tried as part of the name first);
//   - SQL-quoted forms such as `"Order Items"` or `app."a""b"`.
//
// Names match exactly, without case folding. The error wraps ErrUnknownTable (listing close
// matches) or ErrAmbiguousTable (listing the candidates).
func (s *Schema) Table(name string) (*Table, error) {
	if t := s.Tables[pg.Table{Schema: "public", Name: name}]; t != nil {
		return t, nil
	}
	var found []*Table
	for _, t := range s.Tables {
		if t.Name.Name == name {
			found = append(found, t)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	if len(found) > 1 {
		names := make([]string, len(found))
		for i, t := range found {
			names[i] = t.Name.String()
		}
		slices.Sort(names)
		return nil, fmt.Errorf("%w %q: it exists in several schemas (%s); qualify it with the schema",
			ErrAmbiguousTable, name, strings.Join(names, ", "))
	}
	for i := range len(name) {
		if name[i] == '.' {
			if t := s.Tables[pg.Table{Schema: name[:i], Name: name[i+1:]}]; t != nil {
				return t, nil
			}
		}
	}
	if strings.Contains(name, `"`) {
		if parts, ok := parseQualified(name); ok {
			switch len(parts) {
			case 1:
				if t, err := s.Table(parts[0]); err == nil {
					return t, nil
				}
			case 2:
				if t := s.Tables[pg.Table{Schema: parts[0], Name: parts[1]}]; t != nil {
					return t, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w %q%s", ErrUnknownTable, name, suggest(name, s.tableNames()))
}

func (s *Schema) tableNames() []string {
	names := make([]string, 0, len(s.Tables))
	for k := range s.Tables {
		if k.Schema == "public" {
			names = append(names, k.Name)
		} else {
			names = append(names, k.String())
		}
	}
	return names
}

// parseQualified splits an SQL-style identifier chain such as `app."Order Items"` into its
// parts, unquoting quoted parts and taking unquoted ones as written.
func parseQualified(s string) ([]string, bool) {
	var parts []string
	for {
		var part strings.Builder
		if strings.HasPrefix(s, `"`) {
			s = s[1:]
			for {
				i := strings.IndexByte(s, '"')
				if i < 0 {
					return nil, false
				}
				part.WriteString(s[:i])
				s = s[i+1:]
				if !strings.HasPrefix(s, `"`) {
					break
				}
				part.WriteByte('"')
				s = s[1:]
			}
		} else {
			i := strings.IndexByte(s, '.')
			if i < 0 {
				i = len(s)
			}
			if strings.Contains(s[:i], `"`) {
				return nil, false
			}
			part.WriteString(s[:i])
			s = s[i:]
		}
		if part.Len() == 0 {
			return nil, false
		}
		parts = append(parts, part.String())
		if s == "" {
			return parts, true
		}
		if s[0] != '.' {
			return nil, false
		}
		s = s[1:]
	}
}

// WithTombstone returns a copy of s in which table t's tombstone column is column, as a policy
// declaration. s is not modified (a cached Schema is shared between requests); the copy shares
// every other Table and FK with s, and keeps s's Fingerprint. An empty column declares that the
// table has no tombstone column. A declared column must exist and be timestamp, timestamp with
// time zone or boolean; the error wraps ErrUnknownTable, ErrUnknownColumn or ErrTombstoneType.
func (s *Schema) WithTombstone(t pg.Table, column string) (*Schema, error) {
	tbl := s.Tables[t]
	if tbl == nil {
		return nil, fmt.Errorf("tombstone column %s.%s: %w %s%s", t, column, ErrUnknownTable, t, suggest(t.String(), s.tableNames()))
	}
	var col *Column
	if column != "" {
		col = tbl.Column(column)
		if col == nil {
			var usable []string
			for _, c := range tbl.Columns {
				if tombstoneType(c.TypeOID) {
					usable = append(usable, c.Name+" ("+c.Type+")")
				}
			}
			hint := "; it has no timestamp, timestamptz or boolean column to use"
			if len(usable) > 0 {
				hint = "; columns that could be one: " + strings.Join(usable, ", ")
			}
			return nil, fmt.Errorf("tombstone column %s.%s: %w %q in %s%s", t, column, ErrUnknownColumn, column, t, hint)
		}
		if !tombstoneType(col.TypeOID) {
			return nil, fmt.Errorf("tombstone column %s.%s: %w: it is %s; a tombstone column must be timestamp, timestamp with time zone or boolean",
				t, column, ErrTombstoneType, col.Type)
		}
	}
	nt := *tbl
	nt.Tombstone = col
	nt.TombstoneDeclared = true
	ns := *s
	ns.Tables = make(map[pg.Table]*Table, len(s.Tables))
	for k, v := range s.Tables {
		ns.Tables[k] = v
	}
	ns.Tables[t] = &nt
	return &ns, nil
}

// Type OIDs a tombstone column may have.
const (
	oidBool        = 16
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
)

func tombstoneType(oid uint32) bool {
	return oid == oidBool || oid == oidTimestamp || oid == oidTimestampTZ
}

// detectTombstone applies the naming convention: deleted_at (timestamp or timestamptz), else
// is_deleted (boolean).
func detectTombstone(t *Table) *Column {
	if c := t.Column("deleted_at"); c != nil && (c.TypeOID == oidTimestamp || c.TypeOID == oidTimestampTZ) {
		return c
	}
	if c := t.Column("is_deleted"); c != nil && c.TypeOID == oidBool {
		return c
	}
	return nil
}

// suggest formats up to five names close to name, for "not found" messages.
func suggest(name string, names []string) string {
	type scored struct {
		name string
		d    int
	}
	q := strings.ToLower(name)
	limit := max(2, len([]rune(q))/3)
	var close []scored
	for _, n := range names {
		l := strings.ToLower(n)
		d := levenshtein(q, l)
		if d <= limit || (len(q) >= 3 && strings.Contains(l, q)) {
			close = append(close, scored{n, d})
		}
	}
	if len(close) == 0 {
		return ""
	}
	slices.SortFunc(close, func(a, b scored) int {
		if a.d != b.d {
			return a.d - b.d
		}
		return strings.Compare(a.name, b.name)
	})
	out := make([]string, 0, 5)
	for i := 0; i < len(close) && i < 5; i++ {
		out = append(out, close[i].name)
	}
	return " (did you mean " + strings.Join(out, ", ") + "?)"
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

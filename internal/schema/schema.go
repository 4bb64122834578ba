// Package schema reads a target database's catalog: tables, keys, foreign keys, tombstone
// columns and indexes, with identifiers exactly as PostgreSQL stores them.
package schema

import "github.com/tombstone-console/tombstone/internal/pg"

// Schema is one target's catalog at one moment. It is immutable once loaded and safe to share.
type Schema struct {
	// Tables by schema-qualified name. Partitions are not listed: a partitioned table is one
	// table, and its partitions' rows are its rows.
	Tables map[pg.Table]*Table
	// FKs are every foreign key between listed tables (an FK declared on a partition is
	// attributed to its partitioned parent), sorted by (child table, name).
	FKs []*FK
	// Fingerprint is a hash of everything above except row estimates; it changes exactly when
	// the shape of the schema does.
	Fingerprint string
	// ServerVersion is the server's version number (e.g. 150020).
	ServerVersion int
	// MaxPreparedTransactions is the server's max_prepared_transactions setting.
	MaxPreparedTransactions int
}

// Table is one ordinary or partitioned table.
type Table struct {
	Name        pg.Table
	Columns     []*Column  // in attnum order, without dropped or system columns
	PrimaryKey  []string   // column names in key order; empty when the table has none
	Uniques     [][]string // unique constraints and unique indexes without predicates, key order
	Partitioned bool
	// Estimate is the planner's row estimate (reltuples, summed over partitions); -1 if never analysed.
	Estimate int64
	// Tombstone is the detected tombstone column (deleted_at timestamp[tz] or is_deleted
	// boolean); nil when there is none. Policy declarations may override it.
	Tombstone *Column
	// Indexes lists each index's leading key columns, used to tell whether an FK is covered.
	Indexes [][]string
}

// Column is one column.
type Column struct {
	Name       string
	Type       string // format_type(atttypid, atttypmod), e.g. "timestamp with time zone"
	TypeOID    uint32
	NotNull    bool
	HasDefault bool
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

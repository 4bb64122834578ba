package schema

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// MinServerVersion is the oldest PostgreSQL Load supports (pg_partition_root and
// pg_partition_tree appeared in 12).
const MinServerVersion = 120000

// Load reads the catalog of every user schema of the database behind db: all schemas except
// pg_catalog, information_schema, pg_toast*, temporary schemas and Tombstone's own "tombstone"
// schema.
//
// Given a *bun.DB (or a bun.Conn), Load runs all its queries in one REPEATABLE READ READ ONLY
// transaction, so the result is one consistent snapshot. Given a bun.Tx, it runs in the caller's
// transaction and sees exactly what that transaction sees (including its own uncommitted DDL);
// the snapshot is then only consistent if the caller's transaction is REPEATABLE READ or
// SERIALIZABLE. Load takes no locks beyond the catalog reads of ordinary queries.
func Load(ctx context.Context, db bun.IDB) (s *Schema, err error) {
	defer pg.Wrap(&err, "schema.Load")
	err = inSnapshot(ctx, db, func(ctx context.Context, tx bun.IDB) error {
		var err error
		s, err = load(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// inSnapshot runs fn in db's transaction when db is one, else in a new REPEATABLE READ READ ONLY
// transaction.
func inSnapshot(ctx context.Context, db bun.IDB, fn func(context.Context, bun.IDB) error) error {
	switch db.(type) {
	case bun.Tx, *bun.Tx:
		return fn(ctx, db)
	}
	return db.RunInTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
		func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx) })
}

// userSchemas is the predicate on pg_namespace n that selects the schemas Load reads.
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'tombstone')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// listedCTE names the oids of the tables Load lists: ordinary and partitioned tables that are
// not partitions, in user schemas.
const listedCTE = `WITH listed AS (
	SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ` + userSchemas + `
)
`

const settingsSQL = `SELECT current_setting('server_version_num')::int AS version,
	current_setting('max_prepared_transactions')::int AS max_prepared`

// The estimate of a partitioned table sums its leaf partitions; leaves never analysed count
// for nothing, and when none has been analysed the estimate is unknown (-1).
const tablesSQL = `SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name,
	c.relkind = 'p' AS partitioned,
	CASE WHEN c.relkind = 'p' THEN (
		SELECT CASE WHEN count(*) = 0 THEN 0
			WHEN bool_or(l.reltuples >= 0) THEN sum(greatest(l.reltuples, 0))::int8
			ELSE -1 END
		FROM pg_partition_tree(c.oid) p JOIN pg_class l ON l.oid = p.relid
		WHERE p.isleaf)
	ELSE c.reltuples::int8 END AS estimate
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ` + userSchemas

const columnsSQL = listedCTE + `SELECT a.attrelid::int8 AS rel, a.attname::text AS name,
	format_type(a.atttypid, a.atttypmod) AS type, a.atttypid::int8 AS type_oid,
	a.attnotnull AS not_null, a.atthasdef AS has_default, a.attgenerated <> '' AS generated
FROM pg_attribute a JOIN listed t ON t.oid = a.attrelid
WHERE a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// keysSQL lists primary keys, unique constraints and unique indexes (key columns only, in key
// order). An expression position has no attribute and yields a null name.
const keysSQL = listedCTE + `SELECT co.conrelid::int8 AS rel, co.contype::text AS kind,
	(SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY k(num, ord)
		JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num) AS columns
FROM pg_constraint co JOIN listed t ON t.oid = co.conrelid
WHERE co.contype IN ('p', 'u')`

const indexesSQL = listedCTE + `SELECT i.indrelid::int8 AS rel, i.indisunique AS is_unique,
	i.indpred IS NULL AS whole, i.indexprs IS NULL AS plain, am.amname::text AS method,
	(SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, ord)
		LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
		WHERE k.ord <= i.indnkeyatts) AS columns
FROM pg_index i JOIN listed t ON t.oid = i.indrelid
	JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indisvalid`

// fkSQL lists foreign keys that are not per-partition clones of another FK (conparentid = 0).
// A side that is a partition is attributed to its partition root; Go keeps only FKs whose both
// sides are listed. Column names are resolved on the relation the constraint really names.
func fkSQL(version int) string {
	setCols := `NULL::int2[]`
	if version >= 150000 {
		setCols = `co.confdelsetcols`
	}
	return `SELECT co.conname::text AS name,
	CASE WHEN cc.relispartition THEN pg_partition_root(cc.oid) ELSE cc.oid END::int8 AS child,
	CASE WHEN cc.relispartition THEN cn.nspname::text END AS child_part_schema,
	CASE WHEN cc.relispartition THEN cc.relname::text END AS child_part_name,
	CASE WHEN pc.relispartition THEN pg_partition_root(pc.oid) ELSE pc.oid END::int8 AS parent,
	CASE WHEN pc.relispartition THEN pn.nspname::text END AS parent_part_schema,
	CASE WHEN pc.relispartition THEN pc.relname::text END AS parent_part_name,
	(SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY k(num, ord)
		JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num) AS columns,
	(SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(co.confkey) WITH ORDINALITY k(num, ord)
		JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.num) AS ref_columns,
	(SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(` + setCols + `) WITH ORDINALITY k(num, ord)
		JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num) AS set_columns,
	(SELECT bool_or(NOT a.attnotnull) FROM unnest(co.conkey) k(num)
		JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.num) AS nullable,
	co.confdeltype::text AS on_delete, co.condeferrable AS deferrable, co.condeferred AS deferred
FROM pg_constraint co
	JOIN pg_class cc ON cc.oid = co.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
	JOIN pg_class pc ON pc.oid = co.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE co.contype = 'f' AND co.conparentid = 0`
}

// stampSQL is the Cache's change detector: an md5 over every catalog row Load's result depends
// on, except row estimates, for relations in user schemas (partitions and indexes included).
// It is one query and moves no per-column data to the client, so it is much cheaper than Load;
// it may change when the shape does not (a renamed index), never the reverse.
func stampSQL(version int) string {
	setCols := `NULL::int2[]`
	if version >= 150000 {
		setCols = `co.confdelsetcols`
	}
	return `WITH rels AS (
	SELECT c.oid, c.relname, c.relkind, c.relispartition, c.relam, n.nspname
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'i', 'I') AND ` + userSchemas + `
), catalog_rows AS (
	SELECT ROW('c', r.oid, r.nspname, r.relname, r.relkind, r.relispartition, r.relam)::text AS x FROM rels r
	UNION ALL
	SELECT ROW('a', a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid,
		a.attnotnull, a.atthasdef, a.attgenerated, a.attisdropped)::text
	FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
	WHERE r.relkind IN ('r', 'p') AND a.attnum > 0
	UNION ALL
	SELECT ROW('k', co.oid, co.conname, co.contype, co.conrelid, co.confrelid, co.conparentid, co.conkey,
		co.confkey, co.confdeltype, ` + setCols + `, co.condeferrable, co.condeferred)::text
	FROM pg_constraint co JOIN rels r ON r.oid = co.conrelid
	WHERE co.contype IN ('p', 'u', 'f')
	UNION ALL
	SELECT ROW('i', i.indexrelid, i.indrelid, i.indkey, i.indnkeyatts, i.indisunique, i.indisvalid,
		i.indpred IS NULL, i.indexprs IS NULL)::text
	FROM pg_index i JOIN rels r ON r.oid = i.indrelid
)
SELECT md5(coalesce(string_agg(x, E'\n' ORDER BY x), '')) FROM catalog_rows`
}

type settingsRow struct {
	Version     int `bun:"version"`
	MaxPrepared int `bun:"max_prepared"`
}

type tableRow struct {
	OID         int64  `bun:"oid"`
	Schema      string `bun:"schema"`
	Name        string `bun:"name"`
	Partitioned bool   `bun:"partitioned"`
	Estimate    int64  `bun:"estimate"`
}

type columnRow struct {
	Rel        int64  `bun:"rel"`
	Name       string `bun:"name"`
	Type       string `bun:"type"`
	TypeOID    int64  `bun:"type_oid"`
	NotNull    bool   `bun:"not_null"`
	HasDefault bool   `bun:"has_default"`
	Generated  bool   `bun:"generated"`
}

type keyRow struct {
	Rel     int64    `bun:"rel"`
	Kind    string   `bun:"kind"`
	Columns []string `bun:"columns"`
}

type indexRow struct {
	Rel      int64     `bun:"rel"`
	IsUnique bool      `bun:"is_unique"`
	Whole    bool      `bun:"whole"`
	Plain    bool      `bun:"plain"`
	Method   string    `bun:"method"`
	Columns  []*string `bun:"columns"`
}

type fkRow struct {
	Name             string         `bun:"name"`
	Child            int64          `bun:"child"`
	ChildPartSchema  sql.NullString `bun:"child_part_schema"`
	ChildPartName    sql.NullString `bun:"child_part_name"`
	Parent           int64          `bun:"parent"`
	ParentPartSchema sql.NullString `bun:"parent_part_schema"`
	ParentPartName   sql.NullString `bun:"parent_part_name"`
	Columns          []string       `bun:"columns"`
	RefColumns       []string       `bun:"ref_columns"`
	SetColumns       []string       `bun:"set_columns"`
	Nullable         bool           `bun:"nullable"`
	OnDelete         string         `bun:"on_delete"`
	Deferrable       bool           `bun:"deferrable"`
	Deferred         bool           `bun:"deferred"`
}

var onDeleteActions = map[string]string{
	"a": "NO ACTION",
	"r": "RESTRICT",
	"c": "CASCADE",
	"n": "SET NULL",
	"d": "SET DEFAULT",
}

func query[T any](ctx context.Context, db bun.IDB, what, q string) ([]T, error) {
	var rows []T
	if err := db.NewRaw(q).Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, pg.Interpret(err))
	}
	return rows, nil
}

// load reads the catalog through db, which must already be the snapshot to read.
func load(ctx context.Context, db bun.IDB) (*Schema, error) {
	var set settingsRow
	if err := db.NewRaw(settingsSQL).Scan(ctx, &set); err != nil {
		return nil, fmt.Errorf("read server settings: %w", pg.Interpret(err))
	}
	if set.Version < MinServerVersion {
		return nil, fmt.Errorf("PostgreSQL %d.%d is not supported; version 12 or later is required", set.Version/10000, set.Version%10000)
	}
	s := &Schema{
		Tables:                  map[pg.Table]*Table{},
		ServerVersion:           set.Version,
		MaxPreparedTransactions: set.MaxPrepared,
	}

	tables, err := query[tableRow](ctx, db, "tables", tablesSQL)
	if err != nil {
		return nil, err
	}
	byOID := make(map[int64]*Table, len(tables))
	for _, r := range tables {
		t := &Table{Name: pg.Table{Schema: r.Schema, Name: r.Name}, Partitioned: r.Partitioned, Estimate: r.Estimate}
		byOID[r.OID] = t
		s.Tables[t.Name] = t
	}

	columns, err := query[columnRow](ctx, db, "columns", columnsSQL)
	if err != nil {
		return nil, err
	}
	for _, r := range columns {
		if t := byOID[r.Rel]; t != nil {
			t.Columns = append(t.Columns, &Column{
				Name: r.Name, Type: r.Type, TypeOID: uint32(r.TypeOID),
				NotNull: r.NotNull, HasDefault: r.HasDefault, Generated: r.Generated,
			})
		}
	}

	keys, err := query[keyRow](ctx, db, "keys", keysSQL)
	if err != nil {
		return nil, err
	}
	for _, r := range keys {
		t := byOID[r.Rel]
		if t == nil {
			continue
		}
		if r.Kind == "p" {
			t.PrimaryKey = r.Columns
		} else {
			t.Uniques = append(t.Uniques, r.Columns)
		}
	}

	indexes, err := query[indexRow](ctx, db, "indexes", indexesSQL)
	if err != nil {
		return nil, err
	}
	for _, r := range indexes {
		t := byOID[r.Rel]
		if t == nil {
			continue
		}
		var lead []string
		for _, c := range r.Columns {
			if c == nil {
				break
			}
			lead = append(lead, *c)
		}
		if r.IsUnique && r.Whole && r.Plain {
			t.Uniques = append(t.Uniques, lead)
		}
		if r.Whole && len(lead) > 0 && (r.Method == "btree" || r.Method == "hash") {
			t.Indexes = append(t.Indexes, lead)
		}
	}
	for _, t := range s.Tables {
		t.Uniques = canonicalKeys(t.Uniques, t.PrimaryKey)
		slices.SortFunc(t.Indexes, slices.Compare)
		t.Tombstone = detectTombstone(t)
	}

	fks, err := query[fkRow](ctx, db, "foreign keys", fkSQL(set.Version))
	if err != nil {
		return nil, err
	}
	for _, r := range fks {
		child, parent := byOID[r.Child], byOID[r.Parent]
		if child == nil || parent == nil {
			continue // one side is outside the user schemas (e.g. the tombstone schema)
		}
		fk := &FK{
			Name:       r.Name,
			Child:      child.Name,
			Columns:    r.Columns,
			Parent:     parent.Name,
			RefColumns: r.RefColumns,
			OnDelete:   onDeleteActions[r.OnDelete],
			SetColumns: r.SetColumns,
			Deferrable: r.Deferrable,
			Deferred:   r.Deferred,
			Nullable:   r.Nullable,
		}
		if fk.OnDelete == "" {
			return nil, fmt.Errorf("foreign key %s on %s: unknown confdeltype %q", r.Name, child.Name, r.OnDelete)
		}
		if r.ChildPartName.Valid {
			fk.ChildPartition = pg.Table{Schema: r.ChildPartSchema.String, Name: r.ChildPartName.String}
		}
		if r.ParentPartName.Valid {
			fk.ParentPartition = pg.Table{Schema: r.ParentPartSchema.String, Name: r.ParentPartName.String}
		}
		fk.Indexed = child.IndexedOn(fk.Columns)
		s.FKs = append(s.FKs, fk)
	}
	slices.SortFunc(s.FKs, compareFKs)

	if s.stamp, err = readStamp(ctx, db, set.Version); err != nil {
		return nil, err
	}
	s.Fingerprint = s.ComputeFingerprint()
	return s, nil
}

// canonicalKeys sorts keys, drops duplicates and the primary key.
func canonicalKeys(keys [][]string, pk []string) [][]string {
	var out [][]string
	for _, k := range keys {
		if len(k) == 0 || slices.Equal(k, pk) {
			continue
		}
		out = append(out, k)
	}
	slices.SortFunc(out, slices.Compare)
	return slices.CompactFunc(out, slices.Equal)
}

func compareTables(a, b pg.Table) int {
	return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
}

// compareFKs orders by (child, name); two FKs can share both only when one is declared on a
// partition, so the partition and the columns break the tie.
func compareFKs(a, b *FK) int {
	return cmp.Or(
		compareTables(a.Child, b.Child),
		strings.Compare(a.Name, b.Name),
		compareTables(a.ChildPartition, b.ChildPartition),
		slices.Compare(a.Columns, b.Columns),
		compareTables(a.Parent, b.Parent),
		compareTables(a.ParentPartition, b.ParentPartition),
	)
}

func readStamp(ctx context.Context, db bun.IDB, version int) (string, error) {
	var stamp string
	if err := db.NewRaw(stampSQL(version)).Scan(ctx, &stamp); err != nil {
		return "", fmt.Errorf("read catalog checksum: %w", pg.Interpret(err))
	}
	return stamp, nil
}

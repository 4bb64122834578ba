package schema_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/schema"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ddlTx runs statements in tx through database/sql, so that "?" and "$1" inside quoted
// identifiers reach the server untouched.
func ddlTx(t testing.TB, tx bun.Tx, sql string) {
	t.Helper()
	_, err := tx.Tx.ExecContext(context.Background(), sql)
	require.NoError(t, err)
}

func ddlDB(t testing.TB, db *pg.DB, sql string) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql)
	require.NoError(t, err)
}

func load(t testing.TB, db bun.IDB) *schema.Schema {
	t.Helper()
	s, err := schema.Load(context.Background(), db)
	require.NoError(t, err)
	return s
}

func tbl(schemaName, name string) pg.Table { return pg.Table{Schema: schemaName, Name: name} }

func fkNamed(t testing.TB, s *schema.Schema, child pg.Table, name string) *schema.FK {
	t.Helper()
	var found *schema.FK
	for _, fk := range s.FKs {
		if fk.Child == child && fk.Name == name {
			require.Nil(t, found, "FK %s on %s listed twice", name, child)
			found = fk
		}
	}
	require.NotNil(t, found, "FK %s on %s", name, child)
	return found
}

func fksOf(s *schema.Schema, schemaName string) []*schema.FK {
	var out []*schema.FK
	for _, fk := range s.FKs {
		if fk.Child.Schema == schemaName {
			out = append(out, fk)
		}
	}
	return out
}

func TestKeysAndForeignKeys(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	ddlTx(t, tx, `
CREATE SCHEMA kf;
CREATE TABLE kf.shops (id int PRIMARY KEY, code text NOT NULL UNIQUE, name text, region text);
CREATE UNIQUE INDEX shops_lower_name ON kf.shops (lower(name));
CREATE UNIQUE INDEX shops_region ON kf.shops (region) WHERE region IS NOT NULL;
CREATE TABLE kf.orders (
	shop_id int NOT NULL CONSTRAINT orders_shop REFERENCES kf.shops,
	id int NOT NULL,
	note text,
	PRIMARY KEY (shop_id, id),
	CONSTRAINT orders_note_id UNIQUE (note, id));
CREATE UNIQUE INDEX orders_note_id_again ON kf.orders (note, id);
CREATE TABLE kf.lines (
	order_id int NOT NULL, shop_id int NOT NULL, n int NOT NULL,
	PRIMARY KEY (order_id, shop_id, n),
	CONSTRAINT lines_order FOREIGN KEY (shop_id, order_id) REFERENCES kf.orders (shop_id, id) ON DELETE CASCADE);
CREATE UNIQUE INDEX lines_n ON kf.lines (n) INCLUDE (order_id);
CREATE TABLE kf.by_code (
	shop_code text CONSTRAINT by_code_shop REFERENCES kf.shops (code) ON DELETE RESTRICT);
CREATE TABLE kf.notes (
	shop_id int NOT NULL, order_id int, body text,
	CONSTRAINT notes_order FOREIGN KEY (shop_id, order_id) REFERENCES kf.orders ON DELETE SET NULL (order_id));
CREATE INDEX notes_order_idx ON kf.notes (order_id, shop_id, body);
CREATE TABLE kf.tags (
	shop_id int DEFAULT 0 CONSTRAINT tags_shop REFERENCES kf.shops ON DELETE SET DEFAULT,
	order_id int,
	CONSTRAINT tags_order FOREIGN KEY (shop_id, order_id) REFERENCES kf.orders ON DELETE SET DEFAULT (order_id)
		DEFERRABLE INITIALLY DEFERRED);
CREATE INDEX tags_order_expr ON kf.tags ((order_id + 1), shop_id);
CREATE INDEX tags_shop_partial ON kf.tags (shop_id) WHERE order_id IS NULL;
CREATE TABLE kf.flags (
	shop_id int NOT NULL CONSTRAINT flags_shop REFERENCES kf.shops ON DELETE SET NULL DEFERRABLE,
	order_id int CONSTRAINT flags_order_id REFERENCES kf.shops ON DELETE NO ACTION);
CREATE INDEX flags_shop_hash ON kf.flags USING hash (shop_id);
`)
	s := load(t, tx)

	shops := s.Tables[tbl("kf", "shops")]
	require.NotNil(t, shops)
	require.Equal(t, []string{"id"}, shops.PrimaryKey)
	require.Equal(t, [][]string{{"code"}}, shops.Uniques, "expression and partial unique indexes are not keys")
	require.Equal(t, [][]string{{"code"}, {"id"}}, shops.Indexes, "a partial index cannot serve an FK lookup; an expression-only index has no leading column")

	orders := s.Tables[tbl("kf", "orders")]
	require.Equal(t, []string{"shop_id", "id"}, orders.PrimaryKey, "composite key in key order, not column order")
	require.Equal(t, [][]string{{"note", "id"}}, orders.Uniques, "a constraint and an identical unique index are one key")
	require.Equal(t, []string{"shop_id", "id", "note"}, []string{orders.Columns[0].Name, orders.Columns[1].Name, orders.Columns[2].Name})
	require.Equal(t, "integer", orders.Columns[0].Type)
	require.True(t, orders.Columns[0].NotNull)
	require.False(t, orders.Columns[2].NotNull)

	lines := s.Tables[tbl("kf", "lines")]
	require.Equal(t, [][]string{{"n"}}, lines.Uniques, "INCLUDE columns are not part of the key")

	tags := s.Tables[tbl("kf", "tags")]
	require.True(t, tags.Column("shop_id").HasDefault)
	require.False(t, tags.Column("order_id").HasDefault)
	require.Empty(t, tags.Indexes, "an index led by an expression, and a partial index, do not count")

	want := []*schema.FK{
		{Name: "by_code_shop", Child: tbl("kf", "by_code"), Columns: []string{"shop_code"}, Parent: tbl("kf", "shops"),
			RefColumns: []string{"code"}, OnDelete: "RESTRICT", Indexed: false, Nullable: true},
		{Name: "flags_order_id", Child: tbl("kf", "flags"), Columns: []string{"order_id"}, Parent: tbl("kf", "shops"),
			RefColumns: []string{"id"}, OnDelete: "NO ACTION", Indexed: false, Nullable: true},
		{Name: "flags_shop", Child: tbl("kf", "flags"), Columns: []string{"shop_id"}, Parent: tbl("kf", "shops"),
			RefColumns: []string{"id"}, OnDelete: "SET NULL", Deferrable: true, Indexed: true, Nullable: false},
		{Name: "lines_order", Child: tbl("kf", "lines"), Columns: []string{"shop_id", "order_id"}, Parent: tbl("kf", "orders"),
			RefColumns: []string{"shop_id", "id"}, OnDelete: "CASCADE", Indexed: true, Nullable: false},
		{Name: "notes_order", Child: tbl("kf", "notes"), Columns: []string{"shop_id", "order_id"}, Parent: tbl("kf", "orders"),
			RefColumns: []string{"shop_id", "id"}, OnDelete: "SET NULL", SetColumns: []string{"order_id"}, Indexed: true, Nullable: true},
		{Name: "orders_shop", Child: tbl("kf", "orders"), Columns: []string{"shop_id"}, Parent: tbl("kf", "shops"),
			RefColumns: []string{"id"}, OnDelete: "NO ACTION", Indexed: true, Nullable: false},
		{Name: "tags_order", Child: tbl("kf", "tags"), Columns: []string{"shop_id", "order_id"}, Parent: tbl("kf", "orders"),
			RefColumns: []string{"shop_id", "id"}, OnDelete: "SET DEFAULT", SetColumns: []string{"order_id"},
			Deferrable: true, Deferred: true, Indexed: false, Nullable: true},
		{Name: "tags_shop", Child: tbl("kf", "tags"), Columns: []string{"shop_id"}, Parent: tbl("kf", "shops"),
			RefColumns: []string{"id"}, OnDelete: "SET DEFAULT", Indexed: false, Nullable: true},
	}
	require.Equal(t, want, fksOf(s, "kf"), "sorted by (child, name)")

	require.Equal(t, "kf.lines(shop_id, order_id) → kf.orders(shop_id, id)", fkNamed(t, s, tbl("kf", "lines"), "lines_order").String())
	require.Equal(t, "kf.orders.shop_id → kf.shops.id", fkNamed(t, s, tbl("kf", "orders"), "orders_shop").String())

	var children []string
	for _, fk := range s.Children(tbl("kf", "orders")) {
		children = append(children, fk.Name)
	}
	require.Equal(t, []string{"lines_order", "notes_order", "tags_order"}, children)
	var parents []string
	for _, fk := range s.Parents(tbl("kf", "tags")) {
		parents = append(parents, fk.Name)
	}
	require.Equal(t, []string{"tags_order", "tags_shop"}, parents)
	require.Empty(t, s.Parents(tbl("kf", "shops")))

	require.GreaterOrEqual(t, s.ServerVersion, 150000)
	var maxPrepared int
	require.NoError(t, tx.NewRaw("SELECT current_setting('max_prepared_transactions')::int").Scan(context.Background(), &maxPrepared))
	require.Equal(t, maxPrepared, s.MaxPreparedTransactions)
}

func TestPartitionedTableIsOneNode(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	ddlTx(t, tx, `
CREATE SCHEMA pt;
CREATE TABLE pt.tenants (id int PRIMARY KEY);
CREATE TABLE pt.events (
	tenant_id int NOT NULL CONSTRAINT events_tenant REFERENCES pt.tenants ON DELETE CASCADE,
	at date NOT NULL, id int NOT NULL,
	PRIMARY KEY (tenant_id, at, id)) PARTITION BY RANGE (at);
CREATE TABLE pt.events_2024 PARTITION OF pt.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE pt.events_2025 PARTITION OF pt.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE pt.events_2026 PARTITION OF pt.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY HASH (id);
CREATE TABLE pt.events_2026_0 PARTITION OF pt.events_2026 FOR VALUES WITH (MODULUS 1, REMAINDER 0);
CREATE TABLE pt.event_notes (
	tenant_id int, at date, event_id int,
	CONSTRAINT notes_event FOREIGN KEY (tenant_id, at, event_id) REFERENCES pt.events ON DELETE SET NULL);
ALTER TABLE pt.events_2025 ADD CONSTRAINT only_2025 FOREIGN KEY (id) REFERENCES pt.tenants (id);
CREATE UNIQUE INDEX ON pt.events_2024 (id);
CREATE TABLE pt.audits (event_id int CONSTRAINT audits_2024 REFERENCES pt.events_2024 (id));
`)

	s := load(t, tx)
	var listed []string
	for name := range s.Tables {
		if name.Schema == "pt" {
			listed = append(listed, name.Name)
		}
	}
	require.ElementsMatch(t, []string{"tenants", "events", "event_notes", "audits"}, listed, "partitions are not tables")
	events := s.Tables[tbl("pt", "events")]
	require.True(t, events.Partitioned)
	require.False(t, s.Tables[tbl("pt", "tenants")].Partitioned)
	require.Equal(t, []string{"tenant_id", "at", "id"}, events.PrimaryKey)
	require.Equal(t, int64(-1), events.Estimate, "never analysed")

	fks := fksOf(s, "pt")
	var names []string
	for _, fk := range fks {
		names = append(names, fk.Child.Name+"/"+fk.Name)
	}
	require.Equal(t, []string{"audits/audits_2024", "event_notes/notes_event", "events/events_tenant", "events/only_2025"}, names,
		"each FK once: the per-partition clones are not listed")

	tenantFK := fkNamed(t, s, tbl("pt", "events"), "events_tenant")
	require.Equal(t, tbl("pt", "tenants"), tenantFK.Parent)
	require.True(t, tenantFK.Indexed, "the partitioned primary key index leads with tenant_id")
	require.Equal(t, pg.Table{}, tenantFK.ChildPartition)

	notesFK := fkNamed(t, s, tbl("pt", "event_notes"), "notes_event")
	require.Equal(t, tbl("pt", "events"), notesFK.Parent, "an FK to a partitioned table references the table, not its partitions")
	require.Equal(t, pg.Table{}, notesFK.ParentPartition)

	only := fkNamed(t, s, tbl("pt", "events"), "only_2025")
	require.Equal(t, tbl("pt", "events_2025"), only.ChildPartition, "declared on one partition, attributed to the partitioned table")
	require.False(t, only.Indexed)

	audits := fkNamed(t, s, tbl("pt", "audits"), "audits_2024")
	require.Equal(t, tbl("pt", "events"), audits.Parent)
	require.Equal(t, tbl("pt", "events_2024"), audits.ParentPartition)

	ddlTx(t, tx, `
INSERT INTO pt.tenants SELECT g FROM generate_series(1, 40) g;
INSERT INTO pt.events SELECT 1, '2024-03-01', g FROM generate_series(1, 10) g;
INSERT INTO pt.events SELECT 1, '2025-03-01', g FROM generate_series(1, 20) g;
INSERT INTO pt.events SELECT 1, '2026-03-01', g FROM generate_series(1, 7) g;
ANALYZE pt.events;
ANALYZE pt.tenants;`)
	s2 := load(t, tx)
	require.Equal(t, int64(37), s2.Tables[tbl("pt", "events")].Estimate, "summed over the leaf partitions, two levels deep")
	require.Equal(t, int64(40), s2.Tables[tbl("pt", "tenants")].Estimate)
	require.Equal(t, s.Fingerprint, s2.Fingerprint, "estimates are not part of the fingerprint")
}

func TestTombstoneDetectionAndOverrides(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	ddlTx(t, tx, `
CREATE SCHEMA ts;
CREATE TABLE ts.a (id int PRIMARY KEY, deleted_at timestamptz);
CREATE TABLE ts.b (id int PRIMARY KEY, deleted_at timestamp(3));
CREATE TABLE ts.c (id int PRIMARY KEY, is_deleted boolean NOT NULL DEFAULT false, removed_on timestamp, note text);
CREATE TABLE ts.d (id int PRIMARY KEY, deleted_at text);
CREATE TABLE ts.e (id int PRIMARY KEY, deleted_at text, is_deleted boolean);
CREATE TABLE ts.f (id int PRIMARY KEY, is_deleted boolean, deleted_at timestamptz);
CREATE TABLE ts.g (id int PRIMARY KEY, is_deleted int, "Deleted_At" timestamptz);
CREATE TABLE ts.h (id int PRIMARY KEY, note text);
`)
	s := load(t, tx)
	detected := func(s *schema.Schema, name string) string {
		c := s.Tables[tbl("ts", name)].Tombstone
		if c == nil {
			return ""
		}
		return c.Name + " " + c.Type
	}
	require.Equal(t, "deleted_at timestamp with time zone", detected(s, "a"))
	require.Equal(t, "deleted_at timestamp(3) without time zone", detected(s, "b"))
	require.Equal(t, "is_deleted boolean", detected(s, "c"))
	require.Equal(t, "", detected(s, "d"), "a text deleted_at is not a tombstone")
	require.Equal(t, "is_deleted boolean", detected(s, "e"))
	require.Equal(t, "deleted_at timestamp with time zone", detected(s, "f"), "deleted_at wins over is_deleted")
	require.Equal(t, "", detected(s, "g"), "names match exactly and is_deleted must be boolean")
	require.False(t, s.Tables[tbl("ts", "a")].TombstoneDeclared)

	o, err := s.WithTombstone(tbl("ts", "c"), "removed_on")
	require.NoError(t, err)
	require.Equal(t, "removed_on timestamp without time zone", detected(o, "c"))
	require.True(t, o.Tables[tbl("ts", "c")].TombstoneDeclared)
	require.Equal(t, "is_deleted boolean", detected(s, "c"), "the original is unchanged")
	require.Same(t, s.Tables[tbl("ts", "a")], o.Tables[tbl("ts", "a")], "other tables are shared")
	require.Equal(t, s.Fingerprint, o.Fingerprint, "the fingerprint identifies the catalog")

	o2, err := o.WithTombstone(tbl("ts", "a"), "")
	require.NoError(t, err)
	require.Equal(t, "", detected(o2, "a"), "an empty column declares no tombstone")
	require.Equal(t, "removed_on timestamp without time zone", detected(o2, "c"), "earlier overrides carry over")
	require.Equal(t, "deleted_at timestamp with time zone", detected(o, "a"))

	_, err = s.WithTombstone(tbl("ts", "d"), "deleted_at")
	require.ErrorIs(t, err, schema.ErrTombstoneType)
	require.Contains(t, err.Error(), "ts.d.deleted_at")
	require.Contains(t, err.Error(), "it is text")

	_, err = s.WithTombstone(tbl("ts", "c"), "gone")
	require.ErrorIs(t, err, schema.ErrUnknownColumn)
	require.Contains(t, err.Error(), `"gone"`)
	require.Contains(t, err.Error(), "is_deleted (boolean), removed_on (timestamp without time zone)")

	_, err = s.WithTombstone(tbl("ts", "h"), "deleted_at")
	require.ErrorIs(t, err, schema.ErrUnknownColumn)
	require.Contains(t, err.Error(), "no timestamp, timestamptz or boolean column")

	_, err = s.WithTombstone(tbl("ts", "cc"), "is_deleted")
	require.ErrorIs(t, err, schema.ErrUnknownTable)
	require.Contains(t, err.Error(), "did you mean ts.c")
}

func TestHostileIdentifiersAreReadExactly(t *testing.T) {
	t.Parallel()
	tx := pgtest.Tx(t)
	ddlTx(t, tx, `
CREATE SCHEMA "Hostile ""Schema"".x";
CREATE TABLE "Hostile ""Schema"".x"."Order Items" ("Id" int PRIMARY KEY, "select" text, "a""b" int, "größe" numeric(10,2), "$1" text, "?" int, "name" text, "Name" text);
CREATE TABLE "Hostile ""Schema"".x"."select" ("from" int, "a""b" int, "größe" text, PRIMARY KEY ("from", "a""b"));
CREATE TABLE "Hostile ""Schema"".x"."a""b" ("$1" int CONSTRAINT "fk ""quoted"" $1 ?" REFERENCES "Hostile ""Schema"".x"."Order Items" ON DELETE CASCADE,
	"?" int, "x""y" int,
	CONSTRAINT "Composite; DROP TABLE x;--" FOREIGN KEY ("?", "x""y") REFERENCES "Hostile ""Schema"".x"."select" ON DELETE SET NULL ("x""y"));
CREATE INDEX ON "Hostile ""Schema"".x"."a""b" ("x""y", "?");
CREATE TABLE "Hostile ""Schema"".x"."größe" (id int PRIMARY KEY, "deleted_at" timestamptz);
CREATE TABLE "Hostile ""Schema"".x"."$1" (id int PRIMARY KEY);
CREATE TABLE "Hostile ""Schema"".x"."?" (id int PRIMARY KEY, "Ü" int REFERENCES "Hostile ""Schema"".x"."$1");
`)
	s := load(t, tx)
	const sch = `Hostile "Schema".x`
	var listed []string
	for name := range s.Tables {
		if name.Schema == sch {
			listed = append(listed, name.Name)
		}
	}
	require.ElementsMatch(t, []string{"Order Items", "select", `a"b`, "größe", "$1", "?"}, listed)

	items := s.Tables[tbl(sch, "Order Items")]
	var cols []string
	for _, c := range items.Columns {
		cols = append(cols, c.Name)
	}
	require.Equal(t, []string{"Id", "select", `a"b`, "größe", "$1", "?", "name", "Name"}, cols)
	require.Equal(t, "numeric(10,2)", items.Column("größe").Type)
	require.Equal(t, []string{"Id"}, items.PrimaryKey)
	require.Equal(t, []string{"name"}, items.LabelColumns(), `"Name" is not the label column name`)

	sel := s.Tables[tbl(sch, "select")]
	require.Equal(t, []string{"from", `a"b`}, sel.PrimaryKey)
	require.Equal(t, "deleted_at", s.Tables[tbl(sch, "größe")].Tombstone.Name)

	ab := tbl(sch, `a"b`)
	one := fkNamed(t, s, ab, `fk "quoted" $1 ?`)
	require.Equal(t, []string{"$1"}, one.Columns)
	require.Equal(t, tbl(sch, "Order Items"), one.Parent)
	require.Equal(t, []string{"Id"}, one.RefColumns)
	require.Equal(t, "CASCADE", one.OnDelete)
	require.False(t, one.Indexed)

	comp := fkNamed(t, s, ab, "Composite; DROP TABLE x;--")
	require.Equal(t, []string{"?", `x"y`}, comp.Columns)
	require.Equal(t, tbl(sch, "select"), comp.Parent)
	require.Equal(t, []string{"from", `a"b`}, comp.RefColumns)
	require.Equal(t, []string{`x"y`}, comp.SetColumns)
	require.True(t, comp.Indexed, "the index on (x\"y, ?) covers (?, x\"y)")

	q := fkNamed(t, s, tbl(sch, "?"), "?_Ü_fkey")
	require.Equal(t, []string{"Ü"}, q.Columns)
	require.Equal(t, tbl(sch, "$1"), q.Parent)

	// The names work as SQL when quoted the usual way.
	var n int
	require.NoError(t, tx.NewRaw("SELECT count(*) FROM ? JOIN ? ON true", items.Name, sel.Name).Scan(context.Background(), &n))
	require.Zero(t, n)
}

func TestTableLookup(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	ddlDB(t, db, `
CREATE SCHEMA billing;
CREATE SCHEMA crm;
CREATE SCHEMA a;
CREATE TABLE public.orders (id int PRIMARY KEY, title text, email text, slug text, name text, username text, label text, login text, subdomain text);
CREATE TABLE billing.orders (id int PRIMARY KEY);
CREATE TABLE billing.invoices (id int PRIMARY KEY);
CREATE TABLE crm.invoices (id int PRIMARY KEY);
CREATE TABLE crm.contacts (id int PRIMARY KEY);
CREATE TABLE public."a.b" (id int PRIMARY KEY);
CREATE TABLE a.b (id int PRIMARY KEY);
CREATE TABLE a.c (id int PRIMARY KEY);
CREATE TABLE public."Order Items" (id int PRIMARY KEY);
CREATE TABLE crm."x""y" (id int PRIMARY KEY);
`)
	s := load(t, db.Bun)
	resolve := func(name string) string {
		t.Helper()
		tb, err := s.Table(name)
		require.NoError(t, err, name)
		return tb.Name.String()
	}
	require.Equal(t, "public.orders", resolve("orders"), "public first")
	require.Equal(t, "billing.orders", resolve("billing.orders"))
	require.Equal(t, "crm.contacts", resolve("contacts"), "the only table of that name")
	require.Equal(t, "public.a.b", resolve("a.b"), "a dotted name is tried as a name first")
	require.Equal(t, "a.c", resolve("a.c"))
	require.Equal(t, "a.b", resolve(`a."b"`))
	require.Equal(t, "public.Order Items", resolve("Order Items"))
	require.Equal(t, "public.Order Items", resolve(`"Order Items"`))
	require.Equal(t, `crm.x"y`, resolve(`crm."x""y"`))
	require.Equal(t, `crm.x"y`, resolve(`x"y`))

	_, err := s.Table("invoices")
	require.ErrorIs(t, err, schema.ErrAmbiguousTable)
	require.Contains(t, err.Error(), "billing.invoices, crm.invoices")

	_, err = s.Table("ordres")
	require.ErrorIs(t, err, schema.ErrUnknownTable)
	require.Contains(t, err.Error(), `"ordres"`)
	require.Contains(t, err.Error(), "did you mean orders")

	_, err = s.Table("ORDERS")
	require.ErrorIs(t, err, schema.ErrUnknownTable, "no case folding")
	require.Contains(t, err.Error(), "orders")

	_, err = s.Table("nothing_like_it")
	require.ErrorIs(t, err, schema.ErrUnknownTable)
	require.NotContains(t, err.Error(), "did you mean")

	orders, err := s.Table("orders")
	require.NoError(t, err)
	require.Equal(t, []string{"name", "title", "slug", "email", "subdomain", "label", "login", "username"}, orders.LabelColumns())
	contacts, err := s.Table("contacts")
	require.NoError(t, err)
	require.Empty(t, contacts.LabelColumns())
}

func TestSystemAndTombstoneSchemasAreExcluded(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.Empty(t)
	ctx := context.Background()
	_, err := pg.Migrate(ctx, db.Bun, pg.TargetMigrations())
	require.NoError(t, err)
	ddlDB(t, db, `
CREATE TABLE public.sites (id int PRIMARY KEY, body text);
CREATE TABLE tombstone.watch (site_id int REFERENCES public.sites);
CREATE TABLE public.watchers (id int PRIMARY KEY, note_id int);
`)
	var tombstoneTables int
	require.NoError(t, db.Bun.NewRaw("SELECT count(*) FROM pg_tables WHERE schemaname = 'tombstone'").Scan(ctx, &tombstoneTables))
	require.Greater(t, tombstoneTables, 1, "the target migrations made the tombstone schema")

	tx, err := db.Bun.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	ddlTx(t, tx, `CREATE TEMP TABLE scratch_parent (id int PRIMARY KEY);
CREATE TEMP TABLE scratch (id int REFERENCES scratch_parent);`)
	s := load(t, tx)

	var listed []string
	for name := range s.Tables {
		listed = append(listed, name.String())
	}
	require.ElementsMatch(t, []string{"public.sites", "public.watchers"}, listed,
		"no pg_catalog, information_schema, toast, temporary or tombstone tables")
	require.Empty(t, s.FKs, "FKs from excluded schemas are not edges")
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The same schema built in two different orders has the same fingerprint.
	build := func(stmts []string) string {
		tx, err := pgtest.DB(t).Bun.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		ddlTx(t, tx, "CREATE SCHEMA fp_order;")
		for _, st := range stmts {
			ddlTx(t, tx, st)
		}
		return load(t, tx).Fingerprint
	}
	stmts := []string{
		`CREATE TABLE fp_order.a (id int PRIMARY KEY, code text UNIQUE, deleted_at timestamptz)`,
		`CREATE TABLE fp_order.b (id int PRIMARY KEY, a_id int, x int, y int)`,
		`CREATE TABLE fp_order.c (id int PRIMARY KEY, a_id int)`,
		`CREATE INDEX ON fp_order.b (x)`,
		`CREATE INDEX ON fp_order.b (y, x)`,
		`ALTER TABLE fp_order.b ADD CONSTRAINT b_a FOREIGN KEY (a_id) REFERENCES fp_order.a`,
		`ALTER TABLE fp_order.c ADD CONSTRAINT c_a FOREIGN KEY (a_id) REFERENCES fp_order.a ON DELETE CASCADE`,
		`ALTER TABLE fp_order.c ADD CONSTRAINT c_b FOREIGN KEY (a_id) REFERENCES fp_order.b`,
		`CREATE UNIQUE INDEX ON fp_order.c (a_id, id)`,
		`CREATE UNIQUE INDEX ON fp_order.b (x, y)`,
	}
	forward := build(stmts)
	reversed := build([]string{stmts[2], stmts[1], stmts[0], stmts[9], stmts[8], stmts[7], stmts[6], stmts[5], stmts[4], stmts[3]})
	require.Equal(t, forward, reversed, "catalog order does not matter")

	db, _ := pgtest.Empty(t)
	ddlDB(t, db, `
CREATE TABLE parents (id int PRIMARY KEY, name text);
CREATE TABLE kids (id int PRIMARY KEY, parent_id int);
`)
	s1 := load(t, db.Bun)
	s2 := load(t, db.Bun)
	require.Len(t, s1.Fingerprint, 64)
	require.Equal(t, s1.Fingerprint, s2.Fingerprint, "stable across loads")
	require.NotSame(t, s1, s2)

	ddlDB(t, db, `INSERT INTO parents SELECT g, 'p' || g FROM generate_series(1, 500) g;
INSERT INTO kids SELECT g, g FROM generate_series(1, 500) g;
ANALYZE;`)
	s3 := load(t, db.Bun)
	require.Equal(t, int64(500), s3.Tables[tbl("public", "kids")].Estimate)
	require.Equal(t, s1.Fingerprint, s3.Fingerprint, "rows and ANALYZE do not change the shape")

	// Each change gives a new fingerprint, and the Cache's cheap check notices every one.
	cache := schema.NewCache(0)
	cached, err := cache.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	seen := map[string]string{s1.Fingerprint: "initial"}
	step := func(what, sql string) {
		t.Helper()
		ddlDB(t, db, sql)
		fp := load(t, db.Bun).Fingerprint
		prev, dup := seen[fp]
		require.False(t, dup, "%s gave the fingerprint of %s", what, prev)
		seen[fp] = what
		next, err := cache.Get(ctx, "app", db.Bun)
		require.NoError(t, err)
		require.NotSame(t, cached, next, "the cache missed %s", what)
		require.Equal(t, fp, next.Fingerprint)
		cached = next
	}
	step("adding an FK", `ALTER TABLE kids ADD CONSTRAINT kids_parent FOREIGN KEY (parent_id) REFERENCES parents`)
	step("changing ON DELETE", `ALTER TABLE kids DROP CONSTRAINT kids_parent;
ALTER TABLE kids ADD CONSTRAINT kids_parent FOREIGN KEY (parent_id) REFERENCES parents ON DELETE CASCADE`)
	step("adding a column", `ALTER TABLE kids ADD COLUMN note text`)
	step("adding an index", `CREATE INDEX kids_parent_idx ON kids (parent_id)`)
	step("making a column NOT NULL", `UPDATE kids SET note = '';
ALTER TABLE kids ALTER COLUMN note SET NOT NULL`)
	step("adding a tombstone column", `ALTER TABLE parents ADD COLUMN deleted_at timestamptz`)
	step("changing a column type", `ALTER TABLE parents ALTER COLUMN name TYPE varchar(100)`)
	step("making an FK deferrable", `ALTER TABLE kids ALTER CONSTRAINT kids_parent DEFERRABLE`)
	step("adding a unique constraint", `ALTER TABLE parents ADD CONSTRAINT parents_name UNIQUE (name)`)
	step("dropping a column", `ALTER TABLE kids DROP COLUMN note`)
	step("renaming a column", `ALTER TABLE parents RENAME COLUMN name TO title`)
	step("renaming a table", `ALTER TABLE kids RENAME TO children`)
	step("partitioning", `CREATE TABLE logs (at date NOT NULL, parent_id int REFERENCES parents) PARTITION BY RANGE (at)`)

	ddlDB(t, db, `CREATE TABLE logs_2025 PARTITION OF logs FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`)
	withPartition, err := cache.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, cached, withPartition, "a new partition is not a new table")
}

func TestCacheKeepsPointerUntilShapeChanges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := pgtest.Empty(t)
	ddlDB(t, db, `CREATE TABLE sites (id int PRIMARY KEY, subdomain text);
CREATE INDEX sites_subdomain ON sites (subdomain);`)

	c := schema.NewCache(0)
	s1, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	s2, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, s1, s2)

	ddlDB(t, db, `INSERT INTO sites SELECT g, 's' || g FROM generate_series(1, 100) g; ANALYZE sites;`)
	s3, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, s1, s3, "rows and statistics are not a change")

	ddlDB(t, db, `ALTER INDEX sites_subdomain RENAME TO sites_subdomain_idx; GRANT SELECT ON sites TO PUBLIC;`)
	s4, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, s1, s4, "a renamed index is not a change of shape")

	ddlDB(t, db, `ALTER TABLE sites ADD COLUMN deleted_at timestamptz`)
	s5, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.NotSame(t, s1, s5)
	require.NotEqual(t, s1.Fingerprint, s5.Fingerprint)
	require.NotNil(t, s5.Tables[tbl("public", "sites")].Tombstone)
	require.Nil(t, s1.Tables[tbl("public", "sites")].Tombstone, "the old Schema is untouched")

	s6, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, s5, s6)

	// Targets are cached separately.
	other, err := c.Get(ctx, "other", db.Bun)
	require.NoError(t, err)
	require.NotSame(t, s5, other)
	require.Equal(t, s5.Fingerprint, other.Fingerprint)

	// Concurrent Gets after a change all see one new Schema.
	ddlDB(t, db, `CREATE TABLE stores (id int PRIMARY KEY, site_id int REFERENCES sites)`)
	var wg sync.WaitGroup
	got := make([]*schema.Schema, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = c.Get(ctx, "app", db.Bun) })
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.Same(t, got[0], got[i])
	}
	require.NotSame(t, s5, got[0])
	require.Len(t, got[0].FKs, 1)
}

func TestCacheMinInterval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := pgtest.Empty(t)
	ddlDB(t, db, `CREATE TABLE sites (id int PRIMARY KEY)`)

	c := schema.NewCache(time.Hour)
	s1, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	ddlDB(t, db, `ALTER TABLE sites ADD COLUMN name text`)
	s2, err := c.Get(ctx, "app", db.Bun)
	require.NoError(t, err)
	require.Same(t, s1, s2, "within the interval the catalog is not checked")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = schema.NewCache(0).Get(cancelled, "app", db.Bun)
	require.ErrorIs(t, err, context.Canceled)
}

func BenchmarkLoad(b *testing.B) {
	db, _ := pgtest.Empty(b)
	var ddl strings.Builder
	ddl.WriteString("CREATE TABLE t0 (id bigint PRIMARY KEY, name text, deleted_at timestamptz);\n")
	for i := 1; i < 200; i++ {
		fmt.Fprintf(&ddl, `CREATE TABLE t%d (id bigint PRIMARY KEY, parent_id bigint REFERENCES t%d ON DELETE CASCADE,
	root_id bigint REFERENCES t0, title text, slug text UNIQUE, created_at timestamptz NOT NULL DEFAULT now(), is_deleted boolean);
CREATE INDEX ON t%d (parent_id);
`, i, i-1, i)
	}
	ddlDB(b, db, ddl.String())
	ctx := context.Background()
	b.Run("Load", func(b *testing.B) {
		for b.Loop() {
			if _, err := schema.Load(ctx, db.Bun); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CacheCheck", func(b *testing.B) {
		c := schema.NewCache(0)
		if _, err := c.Get(ctx, "app", db.Bun); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := c.Get(ctx, "app", db.Bun); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package demo

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// The SQL lives in files so that it reads as SQL. For each target: <target>_tables.sql creates
// bare tables, <target>_data.sql fills them, <target>_keys.sql adds keys, indexes and foreign
// keys. plan.sql runs first and finish.sql last in every database.
//
//go:embed sql/*.sql
var scripts embed.FS

// step is one statement of a data script, run with the generator's named parameters.
type step struct {
	name string
	sql  string
}

// steps splits a data script at its "-- step: name" lines. Text before the first marker is a
// comment and is dropped.
func steps(file string) ([]step, error) {
	b, err := scripts.ReadFile("sql/" + file)
	if err != nil {
		return nil, err
	}
	var out []step
	var cur *step
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.sql = strings.TrimSpace(body.String())
			out = append(out, *cur)
		}
		body.Reset()
	}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-- step:"); ok {
			flush()
			cur = &step{name: strings.TrimSpace(name)}
			continue
		}
		body.WriteString(line)
	}
	flush()
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no steps", file)
	}
	return out, nil
}

// build creates one target's schema and data on a single session (the generator's helper
// functions and plan table are temporary, so they live in that session only) and returns the
// row count of every table.
func build(ctx context.Context, target, dbURL string, args map[string]any) (counts map[string]int64, err error) {
	defer pg.Wrap(&err, "build %s", target)
	db, err := pg.Open(ctx, dbURL, pg.Options{MaxConns: 1, ApplicationName: "tombstone demo " + target})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()

	// Timestamps are rendered in UTC so that row text (and content hashes) do not depend on the
	// server's time zone. The data can be rebuilt, so a lost commit on a crash does not matter.
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'; SET synchronous_commit = off; SET maintenance_work_mem = '256MB'; SET work_mem = '64MB'; SET jit = off"); err != nil {
		return nil, err
	}
	if err := runScript(ctx, conn, target+"_tables.sql"); err != nil {
		return nil, err
	}
	for _, file := range []string{"plan.sql", target + "_data.sql"} {
		ss, err := steps(file)
		if err != nil {
			return nil, err
		}
		for _, s := range ss {
			if _, err := conn.Exec(ctx, s.sql, pgx.NamedArgs(args)); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", file, s.name, pg.Interpret(err))
			}
		}
	}
	for _, file := range []string{target + "_keys.sql", "finish.sql"} {
		if err := runScript(ctx, conn, file); err != nil {
			return nil, err
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("analyze: %w", pg.Interpret(err))
	}
	return countRows(ctx, conn, target)
}

// runScript runs a whole file of parameterless statements in one round trip.
func runScript(ctx context.Context, conn *pgxpool.Conn, file string) error {
	b, err := scripts.ReadFile("sql/" + file)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, string(b)); err != nil {
		return fmt.Errorf("%s: %w", file, pg.Interpret(err))
	}
	return nil
}

// countRows counts every ordinary table outside the system schemas exactly.
func countRows(ctx context.Context, conn *pgxpool.Conn, target string) (map[string]int64, error) {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pg.Table, error) {
		var t pg.Table
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t.Quoted()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		counts[target+"."+t.String()] = n
	}
	return counts, nil
}

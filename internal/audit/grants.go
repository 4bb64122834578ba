package audit

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// appendOnly are the tables the runtime role may only read and insert into.
var appendOnly = map[string]bool{"audit_events": true, "audit_checkpoints": true}

// readOnly are the migration bookkeeping tables: the runtime role reads them to report pending
// migrations; only the owner role, which runs migrations, writes them.
var readOnly = map[string]bool{
	pg.ConsoleMigrations().Table:      true,
	pg.ConsoleMigrations().LocksTable: true,
}

// Grants is the least-privilege grant set for the console's runtime role.
type Grants struct {
	Role   string
	Schema string
	// Statements, in order; idempotent, so they can be applied again after every migration.
	Statements []string
	// Warnings are conditions that defeat the grants, e.g. the role owning the audit tables.
	Warnings []string
}

// PlanGrants computes the grants for role over the console tables in the current schema: the
// audit tables get SELECT and INSERT only (no UPDATE, DELETE or TRUNCATE), the migration tables
// SELECT, every other table SELECT, INSERT, UPDATE and DELETE, and sequences USAGE. It first
// revokes everything, so that privileges granted by hand earlier do not survive. Tables created
// by later migrations need the grants applied again.
func PlanGrants(ctx context.Context, db bun.IDB, role string) (g Grants, err error) {
	defer pg.Wrap(&err, "audit.PlanGrants(%q)", role)
	if role == "" {
		return g, fmt.Errorf("%w: role name is empty", pg.ErrInvalid)
	}
	g.Role = role
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&g.Schema); err != nil {
		return g, pg.Interpret(err)
	}
	r, s := pg.QuoteIdent(role), pg.QuoteIdent(g.Schema)

	var exists, super bool
	if err := db.QueryRowContext(ctx, "SELECT count(*) > 0, coalesce(bool_or(rolsuper), false) FROM pg_roles WHERE rolname = ?", role).
		Scan(&exists, &super); err != nil {
		return g, pg.Interpret(err)
	}
	if !exists {
		g.Warnings = append(g.Warnings, fmt.Sprintf("role %s does not exist yet: CREATE ROLE %s LOGIN PASSWORD '…'", role, r))
	}
	if super {
		g.Warnings = append(g.Warnings, fmt.Sprintf("role %s is a superuser: grants do not restrict it and it can disable the audit triggers", role))
	}

	rows, err := db.QueryContext(ctx, `SELECT c.relname, c.relkind::text,
			CASE WHEN ? THEN pg_has_role(?, c.relowner, 'MEMBER') ELSE false END
		FROM pg_class AS c
		WHERE c.relnamespace = current_schema()::regnamespace
		  AND c.relkind IN ('r', 'p', 'S') AND NOT c.relispartition
		ORDER BY c.relkind DESC, c.relname`, exists, role)
	if err != nil {
		return g, pg.Interpret(err)
	}
	defer rows.Close()
	g.Statements = append(g.Statements,
		fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", s, r),
		fmt.Sprintf("REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s", s, r),
		fmt.Sprintf("REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %s", s, r),
	)
	for rows.Next() {
		var name, kind string
		var owns bool
		if err := rows.Scan(&name, &kind, &owns); err != nil {
			return g, pg.Interpret(err)
		}
		t := pg.Table{Schema: g.Schema, Name: name}.Quoted()
		if owns {
			g.Warnings = append(g.Warnings, fmt.Sprintf("role %s owns %s (or is a member of its owner): an owner can disable triggers; let a separate role own the schema and run migrations", role, name))
		}
		switch {
		case kind == "S":
			g.Statements = append(g.Statements, fmt.Sprintf("GRANT USAGE ON SEQUENCE %s TO %s", t, r))
		case appendOnly[name]:
			g.Statements = append(g.Statements, fmt.Sprintf("GRANT SELECT, INSERT ON %s TO %s", t, r))
		case readOnly[name]:
			g.Statements = append(g.Statements, fmt.Sprintf("GRANT SELECT ON %s TO %s", t, r))
		default:
			g.Statements = append(g.Statements, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %s", t, r))
		}
	}
	return g, pg.Interpret(rows.Err())
}

// ApplyGrants runs g's statements in one transaction.
func ApplyGrants(ctx context.Context, db bun.IDB, g Grants) (err error) {
	defer pg.Wrap(&err, "audit.ApplyGrants(%q)", g.Role)
	return inTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, st := range g.Statements {
			if _, err := tx.ExecContext(ctx, st); err != nil {
				return fmt.Errorf("%s: %w", st, pg.Interpret(err))
			}
		}
		return nil
	})
}

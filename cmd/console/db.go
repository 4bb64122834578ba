package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/tombstone-console/tombstone/internal/audit"
)

func init() {
	register(command{name: "db", summary: "console database administration (db grants)", run: cmdDB})
}

const dbUsage = `db <subcommand> [flags]

Subcommands:
  grants --role NAME [--apply]   print (or apply) least-privilege grants for the runtime role`

func cmdDB(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stdout, "Usage: console "+dbUsage)
		if len(args) == 0 {
			return &usageError{msg: "db: a subcommand is required (see 'console db --help')"}
		}
		return nil
	}
	if args[0] == "grants" {
		return dbGrants(ctx, args[1:], env)
	}
	return &usageError{msg: fmt.Sprintf("db: unknown subcommand %q (see 'console db --help')", args[0])}
}

func dbGrants(ctx context.Context, args []string, env Env) error {
	fs := newFlags("db grants", "db grants [--config FILE] --role NAME [--apply]\n\n"+
		"The runtime role gets SELECT and INSERT on the audit tables (never UPDATE, DELETE or TRUNCATE),\n"+
		"SELECT on the migration tables, SELECT, INSERT, UPDATE and DELETE on the other console tables,\n"+
		"and USAGE on sequences. Run migrations as a different role that owns the tables, and apply the\n"+
		"grants again after each migration.\n", env)
	cfgPath := configFlag(fs, env)
	role := fs.String("role", "", "the role the console runs as (required)")
	apply := fs.Bool("apply", false, "run the statements instead of printing them (needs a role that may grant)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role == "" || fs.NArg() > 0 {
		return &usageError{msg: "db grants: --role NAME is required (see 'console db grants --help')"}
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	db, err := openConsole(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	g, err := audit.PlanGrants(ctx, db.Bun, *role)
	if err != nil {
		return couldNotRun(err)
	}
	if !*apply {
		for _, w := range g.Warnings {
			fmt.Fprintln(env.Stdout, "-- warning: "+strings.ReplaceAll(w, "\n", " "))
		}
		for _, st := range g.Statements {
			fmt.Fprintln(env.Stdout, st+";")
		}
		return nil
	}
	for _, w := range g.Warnings {
		fmt.Fprintln(env.Stderr, "console: warning: "+w)
	}
	if err := audit.ApplyGrants(ctx, db.Bun, g); err != nil {
		return couldNotRun(err)
	}
	fmt.Fprintf(env.Stdout, "applied %d grant statements for role %q in schema %q\n", len(g.Statements), g.Role, g.Schema)
	return nil
}

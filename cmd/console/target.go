package main

import (
	"context"
	"fmt"

	"github.com/tombstone-console/tombstone/internal/pg"
)

func init() {
	register(command{name: "target", summary: "target database administration (target init)", run: cmdTarget})
}

const targetUsage = `target <subcommand> [flags]

Subcommands:
  init [--target NAME]   create or update the tombstone schema (execution ledger, archive) in the targets`

func cmdTarget(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stdout, "Usage: console "+targetUsage)
		if len(args) == 0 {
			return &usageError{msg: "target: a subcommand is required (see 'console target --help')"}
		}
		return nil
	}
	if args[0] == "init" {
		return targetInit(ctx, args[1:], env)
	}
	return &usageError{msg: fmt.Sprintf("target: unknown subcommand %q (see 'console target --help')", args[0])}
}

// targetInit applies the embedded target migrations. The executor also applies them on first
// use; running this ahead lets the runtime role of a target lack CREATE on the database.
func targetInit(ctx context.Context, args []string, env Env) error {
	fs := newFlags("target init", "target init [--config FILE] [--target NAME]\n\n"+
		"Creates or updates the tombstone schema (execution ledger and archive) in every target,\n"+
		"or only in the named one. Idempotent.\n", env)
	cfgPath := configFlag(fs, env)
	only := fs.String("target", "", "only this target")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	names := cfg.TargetNames()
	if *only != "" {
		if _, ok := cfg.Targets[*only]; !ok {
			return &usageError{msg: fmt.Sprintf("target init: unknown target %q (known: %v)", *only, names)}
		}
		names = []string{*only}
	}
	for _, name := range names {
		db, err := pg.Open(ctx, cfg.Targets[name].DSN, pg.Options{ApplicationName: "tombstone console", MaxConns: 2})
		if err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("target %s: %w", name, err)}
		}
		applied, err := pg.Migrate(ctx, db.Bun, pg.TargetMigrations())
		db.Close()
		if err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("target %s: %w", name, err)}
		}
		if len(applied) == 0 {
			fmt.Fprintf(env.Stdout, "%s: the tombstone schema is up to date\n", name)
		}
		for _, a := range applied {
			fmt.Fprintf(env.Stdout, "%s: applied %s\n", name, a)
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"

	"github.com/tombstone-console/tombstone/internal/pg"
)

func init() {
	register(command{name: "migrate", summary: "apply the console database migrations", run: cmdMigrate})
}

func cmdMigrate(ctx context.Context, args []string, env Env) error {
	fs := newFlags("migrate", "migrate [--config FILE] [--status]", env)
	cfgPath := configFlag(fs, env)
	status := fs.Bool("status", false, "list pending migrations without applying them")
	if err := parseFlags(fs, args); err != nil {
		return err
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
	if *status {
		pending, err := pg.Pending(ctx, db.Bun, pg.ConsoleMigrations())
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			fmt.Fprintln(env.Stdout, "console database is up to date")
		}
		for _, p := range pending {
			fmt.Fprintln(env.Stdout, "pending:", p)
		}
		return nil
	}
	applied, err := pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations())
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(env.Stdout, "console database is up to date")
	}
	for _, a := range applied {
		fmt.Fprintln(env.Stdout, "applied:", a)
	}
	return nil
}

// openConsole opens the console database; an unreachable server exits 2.
func openConsole(ctx context.Context, url string) (*pg.DB, error) {
	db, err := pg.Open(ctx, url, pg.Options{ApplicationName: "tombstone console"})
	if err != nil {
		return nil, &ExitError{Code: 2, Err: fmt.Errorf("console database: %w", err)}
	}
	return db, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/exec"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

func init() {
	register(command{name: "preview", summary: "show what deleting a root would touch", run: cmdPreview})
	register(command{name: "policy", summary: "lint the policy against the live schemas (policy check)", run: cmdPolicy})
}

// newEngine opens target pools lazily and returns a preview engine over them.
func newEngine(cfg *config.Config) (*preview.Engine, *pg.Pools) {
	dsns := map[string]string{}
	for name, t := range cfg.Targets {
		dsns[name] = t.DSN
	}
	pools := pg.NewPools(dsns, pg.Options{ApplicationName: "tombstone preview"})
	return preview.NewEngine(cfg, pools, schema.NewCache(2*time.Second)), pools
}

func cmdPreview(ctx context.Context, args []string, env Env) error {
	fs := newFlags("preview", "preview --kind KIND --root KEY|TERM [--config FILE] [--json] [--estimate]", env)
	cfgPath := configFlag(fs, env)
	kind := fs.String("kind", "", "kind of root (see the policy's kinds)")
	root := fs.String("root", "", "the root's primary key (comma-separated for a composite key) or a search term")
	asJSON := fs.Bool("json", false, "print JSON (shape documented in the README)")
	estimate := fs.Bool("estimate", false, "print planner estimates only (fast)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	if *kind == "" || *root == "" {
		return &usageError{msg: fmt.Sprintf("preview needs --kind and --root (kinds: %s)", strings.Join(cfg.KindNames(), ", "))}
	}
	engine, pools := newEngine(cfg)
	defer pools.Close()
	plan, err := engine.Plan(ctx, *kind)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	var p *preview.Preview
	if *estimate {
		p, err = engine.Estimate(ctx, plan)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		p.Root = preview.Root{Table: plan.Root.Table.Name.String(), Key: *root}
	} else {
		cand, err := engine.FindRoot(ctx, plan, *root)
		if err != nil {
			return &ExitError{Code: 2, Err: alreadyDeleted(ctx, cfg, *kind, *root, err)}
		}
		p, err = engine.Run(ctx, plan, cand.Key)
		if err != nil {
			if errors.Is(err, preview.ErrRootNotFound) {
				return &ExitError{Code: 2, Err: fmt.Errorf("the %s %s disappeared while previewing; try again", *kind, cand.KeyString())}
			}
			return &ExitError{Code: 2, Err: err}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(p); err != nil {
			return err
		}
	} else if err := preview.WriteText(env.Stdout, p, preview.BatchNote(cfg.Kinds[*kind], p)); err != nil {
		return err
	}
	if p.Blocked() {
		return &ExitError{Code: 3}
	}
	return nil
}

func cmdPolicy(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			fmt.Fprintln(env.Stdout, "Usage: console policy check [--config FILE] [--strict] [--json]")
			return nil
		}
		return &usageError{msg: "usage: console policy check [--config FILE] [--strict] [--json]"}
	}
	fs := newFlags("policy check", "policy check [--config FILE] [--strict] [--json]", env)
	cfgPath := configFlag(fs, env)
	strict := fs.Bool("strict", false, "also fail when a reachable edge has no explicit rule")
	asJSON := fs.Bool("json", false, "print findings and the per-kind inventory as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	engine, pools := newEngine(cfg)
	defer pools.Close()
	schemas := map[string]*schema.Schema{}
	for _, t := range cfg.TargetNames() {
		s, err := engine.Schema(ctx, t)
		if err != nil {
			return &ExitError{Code: 2, Err: err}
		}
		schemas[t] = s
	}
	findings, inv := policy.Lint(cfg, schemas, *strict)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if findings == nil {
			findings = []policy.Finding{}
		}
		if err := enc.Encode(map[string]any{"findings": findings, "kinds": inv}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(env.Stdout, f.String())
		}
		if len(findings) == 0 {
			fmt.Fprintf(env.Stdout, "policy clean: %d kinds checked against %d targets\n", len(cfg.Kinds), len(schemas))
		} else {
			fmt.Fprintf(env.Stdout, "%d findings\n", len(findings))
		}
	}
	if len(findings) > 0 {
		return &ExitError{Code: 1}
	}
	return nil
}

// alreadyDeleted turns "not found" into "already deleted by request #N" when the console
// database records a done deletion of that root. Any other error, or a console database that
// cannot be reached, leaves err as it is: the preview itself never needs the console.
func alreadyDeleted(ctx context.Context, cfg *config.Config, kind, term string, err error) error {
	if !errors.Is(err, preview.ErrRootNotFound) || cfg.Database == "" {
		return err
	}
	db, oerr := pg.Open(ctx, cfg.Database, pg.Options{ApplicationName: "tombstone preview", ConnectTimeout: 2 * time.Second})
	if oerr != nil {
		return err
	}
	defer db.Close()
	del, derr := exec.DeletedBy(ctx, db.Bun, kind, term)
	if derr != nil {
		return err
	}
	return fmt.Errorf("the %s %s is already deleted: request #%d deleted it (%s)", kind, term, del.ID, del.UpdatedAt.UTC().Format(time.RFC3339))
}

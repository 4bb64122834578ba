package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tombstone-console/tombstone/internal/audit"
	"github.com/tombstone-console/tombstone/internal/pg"
)

func init() {
	register(command{name: "audit", summary: "verify, export and checkpoint the audit log", run: cmdAudit})
}

const auditUsage = `audit <subcommand> [flags]

Subcommands:
  verify [--from N] [--checkpoint FILE]   recompute the hash chain in the console database
  verify --csv FILE [--allow-gaps]        verify an exported CSV file offline (no database)
  export --format csv|jsonl [filters] [--out FILE]
                                          stream events; the export itself is audited
  checkpoint [--out FILE]                 sign the head with audit.signing_key

Exit codes: 0 verified, 1 broken, 2 could not run.`

func cmdAudit(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stdout, "Usage: console "+auditUsage)
		if len(args) == 0 {
			return &usageError{msg: "audit: a subcommand is required (see 'console audit --help')"}
		}
		return nil
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], env)
	case "export":
		return auditExport(ctx, args[1:], env)
	case "checkpoint":
		return auditCheckpoint(ctx, args[1:], env)
	}
	return &usageError{msg: fmt.Sprintf("audit: unknown subcommand %q (see 'console audit --help')", args[0])}
}

// couldNotRun marks err as exit code 2.
func couldNotRun(err error) error {
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: 2, Err: err}
}

// report prints a verification result; a broken chain exits 1.
func report(env Env, res audit.Result) error {
	fmt.Fprintln(env.Stdout, res.String())
	if !res.OK {
		return &ExitError{Code: 1}
	}
	return nil
}

func auditVerify(ctx context.Context, args []string, env Env) error {
	fs := newFlags("audit verify", "audit verify [--config FILE] [--from N] [--checkpoint FILE] | --csv FILE [--allow-gaps]", env)
	cfgPath := configFlag(fs, env)
	from := fs.Int64("from", 1, "verify from event N to the head, trusting the stored hash of event N-1")
	csvPath := fs.String("csv", "", "verify an exported CSV file offline, without the database or config")
	allowGaps := fs.Bool("allow-gaps", false, "with --csv: accept missing events (an export filtered by actor, action, kind or request)")
	cpPath := fs.String("checkpoint", "", "also check that the chain still contains the head signed in this checkpoint file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "audit verify: unexpected arguments (see 'console audit verify --help')"}
	}
	if *csvPath != "" {
		if *cpPath != "" {
			return &usageError{msg: "audit verify: --csv and --checkpoint cannot be combined"}
		}
		f, err := os.Open(*csvPath)
		if err != nil {
			return couldNotRun(err)
		}
		defer f.Close()
		res, err := audit.VerifyCSV(f, audit.CSVOptions{AllowGaps: *allowGaps})
		if err != nil {
			return couldNotRun(fmt.Errorf("%s: %w", *csvPath, err))
		}
		return report(env, res)
	}
	if *allowGaps {
		return &usageError{msg: "audit verify: --allow-gaps applies to --csv only"}
	}

	var cp *audit.Checkpoint
	if *cpPath != "" {
		f, err := os.Open(*cpPath)
		if err != nil {
			return couldNotRun(err)
		}
		c, err := audit.ReadCheckpoint(f)
		f.Close()
		if err != nil {
			return couldNotRun(fmt.Errorf("%s: %w", *cpPath, err))
		}
		cp = &c
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	var trusted ed25519.PublicKey
	if cp != nil {
		if cfg.Audit.SigningKey == "" {
			fmt.Fprintln(env.Stderr, "console: no audit.signing_key in the config: the checkpoint is checked against the key it names")
		} else {
			key, err := audit.ParseSigningKey(cfg.Audit.SigningKey)
			if err != nil {
				return couldNotRun(err)
			}
			trusted = key.Public().(ed25519.PublicKey)
		}
	}
	db, err := openConsole(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := audit.Verify(ctx, db.Bun, *from)
	if err != nil {
		return couldNotRun(err)
	}
	if err := report(env, res); err != nil || cp == nil {
		return err
	}
	res, err = audit.VerifyCheckpoint(ctx, db.Bun, *cp, trusted)
	if err != nil {
		return couldNotRun(err)
	}
	if !res.OK {
		return report(env, res)
	}
	fmt.Fprintf(env.Stdout, "checkpoint matches: event %d, hash %s, signed %s by key %s\n",
		cp.Seq, cp.Hash, cp.At.Format(time.RFC3339), base64.StdEncoding.EncodeToString(cp.PublicKey))
	return nil
}

// parseWhen reads --from/--to: a date (UTC) or an RFC 3339 time. A date given to --to
// includes that whole day.
func parseWhen(s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	return t, nil
}

func auditExport(ctx context.Context, args []string, env Env) (err error) {
	fs := newFlags("audit export", "audit export [--config FILE] --format csv|jsonl [--from DATE] [--to DATE] [--actor NAME] [--action A] [--kind K] [--request ID] [--out FILE]", env)
	cfgPath := configFlag(fs, env)
	format := fs.String("format", "csv", "csv (RFC 4180, formula cells escaped with a leading ') or jsonl")
	fromS := fs.String("from", "", "events at or after this date (UTC) or RFC 3339 time")
	toS := fs.String("to", "", "events before this RFC 3339 time, or up to the end of this date (UTC)")
	actor := fs.String("actor", "", "only events by this actor name")
	action := fs.String("action", "", "only events with this action")
	kind := fs.String("kind", "", "only events about this kind")
	request := fs.Int64("request", 0, "only events about this request id")
	out := fs.String("out", "", "write to FILE (mode 0600) instead of standard output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "audit export: unexpected arguments (see 'console audit export --help')"}
	}
	f, err := audit.ParseFormat(*format)
	if err != nil {
		return &usageError{msg: "audit export: " + err.Error()}
	}
	filter := audit.Filter{Actor: *actor, Action: audit.Action(*action), Kind: *kind, RequestID: *request}
	if filter.From, err = parseWhen(*fromS, false); err != nil {
		return &usageError{msg: "audit export: --from: " + err.Error()}
	}
	if filter.To, err = parseWhen(*toS, true); err != nil {
		return &usageError{msg: "audit export: --to: " + err.Error()}
	}
	if filter.Action != "" && !filter.Action.Valid() {
		return &usageError{msg: fmt.Sprintf("audit export: --action: unknown action %q", *action)}
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

	w := env.Stdout
	if *out != "" {
		file, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return couldNotRun(err)
		}
		defer func() {
			if cerr := file.Close(); cerr != nil && err == nil {
				err = couldNotRun(cerr)
			}
			if err != nil {
				_ = os.Remove(*out)
			}
		}()
		w = file
	}
	user := env.Getenv("USER")
	if user == "" {
		user = "unknown"
	}
	n, err := audit.Export(ctx, db.Bun, w, f, filter, audit.Actor{Name: "cli:" + user})
	if err != nil {
		return couldNotRun(err)
	}
	if *out != "" {
		fmt.Fprintf(env.Stderr, "exported %d events to %s\n", n, *out)
	}
	return nil
}

func auditCheckpoint(ctx context.Context, args []string, env Env) error {
	fs := newFlags("audit checkpoint", "audit checkpoint [--config FILE] [--out FILE]", env)
	cfgPath := configFlag(fs, env)
	out := fs.String("out", "", "also write the signed checkpoint as JSON to FILE (keep it outside the database)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "audit checkpoint: unexpected arguments (see 'console audit checkpoint --help')"}
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	if cfg.Audit.SigningKey == "" {
		return couldNotRun(fmt.Errorf("%s: audit.signing_key is not set (base64 of a 32-byte Ed25519 seed)", cfg.Path))
	}
	key, err := audit.ParseSigningKey(cfg.Audit.SigningKey)
	if err != nil {
		return couldNotRun(err)
	}
	db, err := openConsole(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	cp, err := audit.NewCheckpoint(ctx, db.Bun, key)
	if err != nil {
		if errors.Is(err, pg.ErrNotFound) {
			return couldNotRun(audit.ErrEmptyLog)
		}
		return couldNotRun(err)
	}
	if *out != "" {
		b, err := json.MarshalIndent(cp, "", "  ")
		if err != nil {
			return couldNotRun(err)
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return couldNotRun(err)
		}
	}
	fmt.Fprintf(env.Stdout, "checkpoint %d: event %d, head %s, signed %s by key %s\n",
		cp.ID, cp.Seq, cp.Hash, cp.At.Format(time.RFC3339), base64.StdEncoding.EncodeToString(cp.PublicKey))
	return nil
}

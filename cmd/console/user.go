package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/pg"
)

func init() {
	register(command{name: "user", summary: "manage console users: add, set-role, passwd, disable, enable, list", run: cmdUser})
}

const userUsage = `user <subcommand> [flags]

Subcommands:
  add NAME --role ROLE [--password-stdin] [--display-name TEXT] [--oidc-subject SUB]
                              add a user; prints a generated password unless one is read from stdin
  set-role NAME ROLE          change a role (viewer, requester, approver, admin)
  passwd NAME [--password-stdin]
                              set a new password (generated and printed unless read from stdin); ends the user's sessions
  disable NAME                stop a user from signing in and end their sessions
  enable NAME                 let a disabled user sign in again
  list                        list users`

func cmdUser(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stdout, "Usage: console "+userUsage)
		if len(args) == 0 {
			return &usageError{msg: "user: a subcommand is required (see 'console user --help')"}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "add":
		return userAdd(ctx, rest, env)
	case "set-role":
		return userSetRole(ctx, rest, env)
	case "passwd":
		return userPasswd(ctx, rest, env)
	case "disable":
		return userDisable(ctx, rest, env)
	case "enable":
		return userEnable(ctx, rest, env)
	case "list":
		return userList(ctx, rest, env)
	}
	return &usageError{msg: fmt.Sprintf("user: unknown subcommand %q (see 'console user --help')", sub)}
}

// parseArgs parses flags that may come before, between or after the positional arguments
// ("add alice --role admin"), and checks the number of positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != len(names) {
		return nil, &usageError{msg: fmt.Sprintf("%s: want %s (see 'console %s --help')", fs.Name(), strings.Join(names, " "), strings.Fields(fs.Name())[0])}
	}
	return pos, nil
}

// withConsole loads the config, opens and migrates the console database, and runs f.
func withConsole(ctx context.Context, cfgPath string, env Env, f func(db *pg.DB) error) error {
	cfg, err := loadConfig(cfgPath, env)
	if err != nil {
		return err
	}
	db, err := openConsole(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations()); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	return f(db)
}

// readPassword reads a password from stdin: everything up to the end, without the final
// newline.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", errors.New("no password on stdin")
	}
	return p, nil
}

func userAdd(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user add", "user add NAME --role ROLE [--password-stdin] [--display-name TEXT] [--oidc-subject SUB]", env)
	cfgPath := configFlag(fs, env)
	role := fs.String("role", "", "viewer, requester, approver or admin (required)")
	fromStdin := fs.Bool("password-stdin", false, "read the password from stdin instead of generating one")
	display := fs.String("display-name", "", "name shown in the console")
	subject := fs.String("oidc-subject", "", "link the user to this single sign-on subject (the ID token's sub claim)")
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return &usageError{msg: "user add: --role " + err.(*auth.ValidationError).Message}
	}
	password, generated := "", false
	if *fromStdin {
		if password, err = readPassword(env.Stdin); err != nil {
			return err
		}
	} else {
		password, generated = auth.GeneratePassword(), true
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		u, err := auth.CreateUser(ctx, db.Bun, auth.NewUser{Name: pos[0], DisplayName: *display, Role: r, Password: password, OIDCSubject: *subject})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "added %s (%s)\n", u.Name, u.Role)
		if generated {
			fmt.Fprintf(env.Stdout, "password: %s\n", password)
		}
		return nil
	})
}

func userSetRole(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user set-role", "user set-role NAME ROLE", env)
	cfgPath := configFlag(fs, env)
	pos, err := parseArgs(fs, args, "NAME", "ROLE")
	if err != nil {
		return err
	}
	r, err := auth.ParseRole(pos[1])
	if err != nil {
		return &usageError{msg: "user set-role: ROLE " + err.(*auth.ValidationError).Message}
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		u, err := auth.UserByName(ctx, db.Bun, pos[0])
		if err != nil {
			return err
		}
		if u, err = auth.SetRole(ctx, db.Bun, u.ID, r); err != nil {
			return err
		}
		// The console reads the role on every request and renews the session token when it
		// has changed, so open sessions pick this up at once.
		fmt.Fprintf(env.Stdout, "%s is now %s\n", u.Name, u.Role)
		return nil
	})
}

func userPasswd(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user passwd", "user passwd NAME [--password-stdin]", env)
	cfgPath := configFlag(fs, env)
	fromStdin := fs.Bool("password-stdin", false, "read the password from stdin instead of generating one")
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	password, generated := "", false
	if *fromStdin {
		if password, err = readPassword(env.Stdin); err != nil {
			return err
		}
	} else {
		password, generated = auth.GeneratePassword(), true
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		u, err := auth.UserByName(ctx, db.Bun, pos[0])
		if err != nil {
			return err
		}
		if err := auth.SetPassword(ctx, db.Bun, u.ID, password); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "password of %s changed; their sessions were ended\n", u.Name)
		if generated {
			fmt.Fprintf(env.Stdout, "password: %s\n", password)
		}
		return nil
	})
}

func userDisable(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user disable", "user disable NAME", env)
	cfgPath := configFlag(fs, env)
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		u, err := auth.UserByName(ctx, db.Bun, pos[0])
		if err != nil {
			return err
		}
		if u, err = auth.Disable(ctx, db.Bun, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s is disabled and signed out everywhere\n", u.Name)
		return nil
	})
}

func userEnable(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user enable", "user enable NAME", env)
	cfgPath := configFlag(fs, env)
	pos, err := parseArgs(fs, args, "NAME")
	if err != nil {
		return err
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		u, err := auth.UserByName(ctx, db.Bun, pos[0])
		if err != nil {
			return err
		}
		if u, err = auth.Enable(ctx, db.Bun, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s is enabled\n", u.Name)
		return nil
	})
}

func userList(ctx context.Context, args []string, env Env) error {
	fs := newFlags("user list", "user list", env)
	cfgPath := configFlag(fs, env)
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	return withConsole(ctx, *cfgPath, env, func(db *pg.DB) error {
		users, err := auth.ListUsers(ctx, db.Bun)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSTATUS\tSIGN-IN\tLAST SIGNED IN")
		for _, u := range users {
			status := "active"
			if u.Disabled() {
				status = "disabled"
			}
			var how []string
			if u.HasPassword() {
				how = append(how, "password")
			}
			if u.OIDCSubject.Valid {
				how = append(how, "sso")
			}
			last := "never"
			if !u.LastSignedInAt.IsZero() {
				last = u.LastSignedInAt.UTC().Format("2006-01-02 15:04 UTC")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, status, strings.Join(how, "+"), last)
		}
		return tw.Flush()
	})
}

// Command console is Tombstone: a web console and CLI for deleting data from PostgreSQL
// application databases safely. main only wires things together; see run.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], Env{
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Lookup: os.LookupEnv,
	})
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Env is everything a command may take from its surroundings, so that tests can run commands
// in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Lookup func(string) (string, bool)
}

// Getenv returns an environment variable or "".
func (e Env) Getenv(name string) string {
	if e.Lookup == nil {
		return ""
	}
	v, _ := e.Lookup(name)
	return v
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, env Env) error
}

var commands = map[string]command{}

// register adds a subcommand; each command file registers its own from init.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

// ExitError carries an exit code other than 1 (2: could not run, 3: blocked, ...).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// usageError is a mistake in the command line; it prints the usage and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, env)
		}
		printUsage(env.Stdout)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		printUsage(env.Stderr)
		return &ExitError{Code: 2, Err: fmt.Errorf("unknown command %q", args[0])}
	}
	return c.run(ctx, args[1:], env)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Tombstone: delete data from PostgreSQL application databases safely.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: console <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'console <command> --help' for a command's flags.")
}

// exitCode prints err (one line per problem, no stack trace) and picks the exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
		if ee.Err == nil {
			return code
		}
	}
	var ue *usageError
	if errors.As(err, &ue) {
		code = 2
	}
	msg := strings.TrimSpace(err.Error())
	if msg != "" {
		fmt.Fprintln(stderr, "console: "+strings.ReplaceAll(msg, "\n", "\n  "))
	}
	return code
}

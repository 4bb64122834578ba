package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
)

// newFlags makes a FlagSet whose --help prints the usage line and flags to stdout.
func newFlags(name, usage string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(env.Stdout)
		fmt.Fprintf(env.Stdout, "Usage: console %s\n", usage)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args; --help prints usage and returns errHelp (treated as success).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelp // Parse has printed the usage
	}
	if err != nil {
		return &usageError{msg: fmt.Sprintf("%s: %v (see 'console %s --help')", fs.Name(), err, strings.Fields(fs.Name())[0])}
	}
	return nil
}

var errHelp = &ExitError{Code: 0}

// configFlag adds --config, defaulting to $TOMBSTONE_CONFIG or tombstone.yaml.
func configFlag(fs *flag.FlagSet, env Env) *string {
	def := env.Getenv("TOMBSTONE_CONFIG")
	if def == "" {
		def = "tombstone.yaml"
	}
	return fs.String("config", def, "config and policy file (env TOMBSTONE_CONFIG)")
}

// loadConfig loads the file; errors exit 2.
func loadConfig(path string, env Env) (*config.Config, error) {
	c, err := config.Load(path, env.Lookup)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	return c, nil
}

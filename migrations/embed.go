// Package migrations holds Tombstone's SQL migrations, embedded in the binary.
//
// console/ migrates the console database (users, sessions, requests, jobs, audit). target/ creates
// the small "tombstone" schema inside each target database (execution ledger, archive).
// Files are named NNNN_name.tx.up.sql so that each runs in its own transaction.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed console/*.sql
var console embed.FS

//go:embed target/*.sql
var target embed.FS

// Console is the console database's migrations.
func Console() fs.FS { return sub(console, "console") }

// Target is the migrations for the tombstone schema inside a target database.
func Target() fs.FS { return sub(target, "target") }

func sub(f embed.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return s
}

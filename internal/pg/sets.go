package pg

import "github.com/tombstone-console/tombstone/migrations"

// ConsoleMigrations is the console database's migration set.
func ConsoleMigrations() MigrationSet {
	return MigrationSet{
		Name: "console", FS: migrations.Console(),
		Table: "bun_migrations", LocksTable: "bun_migration_locks",
		LockKey: 0x746f6d6273746f6e, // "tombston"
	}
}

// TargetMigrations is the set for the tombstone schema inside a target database.
func TargetMigrations() MigrationSet {
	return MigrationSet{
		Name: "target", FS: migrations.Target(),
		Table: "tombstone.migrations", LocksTable: "tombstone.migration_locks",
		LockKey: 0x746f6d6273746f6f, Schema: "tombstone",
	}
}

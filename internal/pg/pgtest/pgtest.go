// Package pgtest gives tests real PostgreSQL databases.
//
// Every test package gets its own database, cloned from a template that has the console
// migrations applied, and dropped when the package's tests end (call Main from TestMain). Tests
// that only read or write through one transaction use Tx, which is rolled back at cleanup; tests
// that need real commits or concurrency use Fresh. Empty gives a database with no migrations at
// all, for target-like schemas.
//
// The server is TOMBSTONE_TEST_DATABASE_URL, by default postgres://postgres@127.0.0.1:5432/postgres.
// When it is unreachable the tests fail with a one-line explanation; they never skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/migrations"
)

// DefaultURL is the server used when TOMBSTONE_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the maintenance database URL tests create their databases through.
func AdminURL() string {
	if u := os.Getenv("TOMBSTONE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// WithDatabase returns base with its database name replaced.
func WithDatabase(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(fmt.Sprintf("pgtest: bad URL %q: %v", base, err))
	}
	u.Path = "/" + name
	return u.String()
}

var (
	adminOnce sync.Once
	admin     *pg.DB
	adminErr  error

	pkgOnce sync.Once
	pkgDB   *pg.DB
	pkgName string
	pkgErr  error

	cleanupMu sync.Mutex
	dropAtEnd []string
)

// Admin returns a connection to the maintenance database, or fails the test with a hint.
func Admin(t testing.TB) *pg.DB {
	t.Helper()
	adminOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, adminErr = pg.Open(ctx, AdminURL(), pg.Options{MaxConns: 4, ApplicationName: "tombstone-test"})
	})
	if adminErr != nil {
		t.Fatalf("PostgreSQL is needed for these tests and is not usable (%v). Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or set TOMBSTONE_TEST_DATABASE_URL.", adminErr)
	}
	return admin
}

// Main runs the package's tests and then drops every database they created. Use it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	dropAll()
	os.Exit(code)
}

func dropAll() {
	cleanupMu.Lock()
	names := dropAtEnd
	dropAtEnd = nil
	cleanupMu.Unlock()
	if pkgDB != nil {
		pkgDB.Close()
	}
	if admin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range names {
		_, _ = admin.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(n)+" WITH (FORCE)")
	}
}

// DB returns the package's shared database, with the console migrations applied. Tests must not
// commit into it; use Tx for isolation or Fresh for commits.
func DB(t testing.TB) *pg.DB {
	t.Helper()
	a := Admin(t)
	pkgOnce.Do(func() {
		var tmpl string
		tmpl, pkgErr = template(a)
		if pkgErr != nil {
			return
		}
		pkgName = uniqueName(callerPackage())
		pkgDB, pkgErr = clone(a, tmpl, pkgName)
		cleanupMu.Lock()
		dropAtEnd = append(dropAtEnd, pkgName)
		cleanupMu.Unlock()
	})
	if pkgErr != nil {
		t.Fatalf("pgtest: package database: %v", pkgErr)
	}
	return pkgDB
}

// Tx begins a transaction on the package database that is rolled back when the test ends.
func Tx(t testing.TB) bun.Tx {
	t.Helper()
	db := DB(t)
	tx, err := db.Bun.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatalf("pgtest: begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// Fresh returns a new database with the console migrations applied, dropped at the end of the
// test. Use it for tests that commit or run concurrent transactions.
func Fresh(t testing.TB) *pg.DB {
	t.Helper()
	a := Admin(t)
	tmpl, err := template(a)
	if err != nil {
		t.Fatalf("pgtest: template: %v", err)
	}
	name := uniqueName(t.Name())
	db, err := clone(a, tmpl, name)
	if err != nil {
		t.Fatalf("pgtest: fresh database: %v", err)
	}
	t.Cleanup(func() { db.Close(); drop(a, name) })
	return db
}

// Empty returns a new database with nothing in it, dropped at the end of the test, and its URL.
func Empty(t testing.TB) (*pg.DB, string) {
	t.Helper()
	a := Admin(t)
	name := uniqueName(t.Name())
	ctx := context.Background()
	if _, err := a.Pool.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(name)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u := WithDatabase(AdminURL(), name)
	db, err := pg.Open(ctx, u, pg.Options{MaxConns: 8, Unprepared: true})
	if err != nil {
		drop(a, name)
		t.Fatalf("pgtest: open %s: %v", name, err)
	}
	t.Cleanup(func() { db.Close(); drop(a, name) })
	return db, u
}

// URLOf returns the connection URL of a database this package created.
func URLOf(db *pg.DB) string { return WithDatabase(AdminURL(), db.Name) }

func drop(a *pg.DB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = a.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(name)+" WITH (FORCE)")
}

var (
	tmplOnce sync.Once
	tmplName string
	tmplErr  error
)

// template returns the name of a database with the console migrations applied. Its name carries
// a hash of the migration files, so a changed migration gets a new template; concurrent test
// binaries build it once, serialised by an advisory lock.
func template(a *pg.DB) (string, error) {
	tmplOnce.Do(func() { tmplName, tmplErr = buildTemplate(a) })
	return tmplName, tmplErr
}

func buildTemplate(a *pg.DB) (string, error) {
	sum, err := hashFS(migrations.Console())
	if err != nil {
		return "", err
	}
	name := "tombstone_tmpl_" + sum[:12]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := a.Pool.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(7470746573740001)"); err != nil {
		return "", err
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock(7470746573740001)") }()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(building)+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(building)); err != nil {
		return "", err
	}
	db, err := pg.Open(ctx, WithDatabase(AdminURL(), building), pg.Options{MaxConns: 2})
	if err != nil {
		return "", err
	}
	_, err = pg.Migrate(ctx, db.Bun, pg.ConsoleMigrations())
	db.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pg.QuoteIdent(building)+" RENAME TO "+pg.QuoteIdent(name)); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pg.QuoteIdent(name)+" WITH is_template = true"); err != nil {
		return "", err
	}
	return name, nil
}

func clone(a *pg.DB, tmpl, name string) (*pg.DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		_, err = a.Pool.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(name)+" TEMPLATE "+pg.QuoteIdent(tmpl))
		// Another binary may be copying the template at this instant (55006); wait and retry.
		if err == nil || pg.Code(err) != "55006" {
			break
		}
		time.Sleep(time.Duration(50+attempt*50) * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	return pg.Open(ctx, WithDatabase(AdminURL(), name), pg.Options{MaxConns: 16})
}

func hashFS(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// uniqueName makes a database name from a hint: lower-case, at most 63 bytes, random suffix.
func uniqueName(hint string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(hint) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 30 {
		s = s[len(s)-30:]
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return "tombstone_t_" + s + "_" + hex.EncodeToString(rnd[:])
}

func callerPackage() string {
	for i := 2; i < 10; i++ {
		_, file, _, ok := runtime.Caller(i)
		if !ok {
			break
		}
		if !strings.Contains(file, "/pgtest/") {
			return filepath.Base(filepath.Dir(file))
		}
	}
	return "pkg"
}

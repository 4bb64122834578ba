// Package pg opens PostgreSQL databases, runs embedded migrations and translates driver errors
// into the domain errors the rest of Tombstone understands.
package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// DB is one PostgreSQL database reached through a single pgx pool. Bun, the session store and the
// job queue all share Pool, so one process holds one set of connections per database.
type DB struct {
	Pool *pgxpool.Pool
	Bun  *bun.DB
	// Addr is host:port of the server, for messages.
	Addr string
	// Name is the database name.
	Name string
}

// Options tune a pool. The zero value is fine.
type Options struct {
	// MaxConns caps the pool; 0 keeps pgx's default (max(4, cores)).
	MaxConns int32
	// ApplicationName is reported in pg_stat_activity.
	ApplicationName string
	// ConnectTimeout bounds the first connection; 0 means 5s.
	ConnectTimeout time.Duration
	// Unprepared runs every statement without server-side prepared statements. Use it for
	// target databases: their SQL is generated per plan and root, so caching prepared
	// statements (pgx's default) only holds plans in the server's memory until the pool closes.
	Unprepared bool
}

// Open connects to url, pings the server and returns the pool and bun handle over it. An
// unreachable server gives an *UnreachableError naming host and port.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %s", redactParseError(err))
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ApplicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = opts.ApplicationName
	}
	if opts.Unprepared {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	}
	timeout := opts.ConnectTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > timeout {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	addr := net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))
	if strings.HasPrefix(cfg.ConnConfig.Host, "/") {
		addr = fmt.Sprintf("%s (port %d)", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", addr, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, classifyConnectError(addr, cfg.ConnConfig.Database, err)
	}
	sqldb := stdlib.OpenDBFromPool(pool)
	db := bun.NewDB(sqldb, pgdialect.New())
	return &DB{Pool: pool, Bun: db, Addr: addr, Name: cfg.ConnConfig.Database}, nil
}

// Close releases the bun handle and the pool.
func (db *DB) Close() {
	if db == nil {
		return
	}
	_ = db.Bun.Close()
	db.Pool.Close()
}

// SQL returns the database/sql handle bun runs on (it shares the pgx pool).
func (db *DB) SQL() *sql.DB { return db.Bun.DB }

// UnreachableError says that no PostgreSQL server answered, or it refused us, with a hint.
type UnreachableError struct {
	Addr     string
	Database string
	Cause    error
}

func (e *UnreachableError) Error() string {
	msg := fmt.Sprintf("cannot reach PostgreSQL at %s", e.Addr)
	cause := e.Cause.Error()
	switch {
	case strings.Contains(cause, "connection refused"):
		msg += ": connection refused; is the server running? (Debian: pg_ctlcluster <version> main start)"
	case strings.Contains(cause, "does not exist") && strings.Contains(cause, "database"):
		msg = fmt.Sprintf("PostgreSQL at %s has no database %q; create it with: createdb -h <host> %s", e.Addr, e.Database, e.Database)
	case strings.Contains(cause, "password authentication failed"), strings.Contains(cause, "no pg_hba.conf entry"):
		msg += ": authentication failed; check the user and password in the URL"
	case strings.Contains(cause, "timeout"), errors.Is(e.Cause, context.DeadlineExceeded):
		msg += ": timed out; check the host, port and firewall"
	case strings.Contains(cause, "no such host"):
		msg += ": unknown host"
	default:
		msg += ": " + firstLine(cause)
	}
	return msg
}

func (e *UnreachableError) Unwrap() error { return ErrUnavailable }

func classifyConnectError(addr, database string, err error) error {
	return &UnreachableError{Addr: addr, Database: database, Cause: err}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// redactParseError keeps passwords out of messages about malformed URLs.
func redactParseError(err error) string {
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.Index(s[i:], "@"); j >= 0 {
			return s[:i+3] + "…" + s[i+j:]
		}
	}
	return s
}

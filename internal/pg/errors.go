package pg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Domain errors. Interpret maps driver errors onto these once, at the storage boundary; callers
// test with errors.Is and never look at SQLSTATEs themselves.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")          // unique or exclusion violation
	ErrReferenced  = errors.New("still referenced")  // foreign key violation
	ErrInvalid     = errors.New("invalid value")     // not-null, check, bad input syntax
	ErrRetryable   = errors.New("retryable")         // lock timeout, deadlock, serialization failure
	ErrTimeout     = errors.New("statement timeout") // statement or lock timeout
	ErrUnavailable = errors.New("database unavailable")
	ErrReadOnly    = errors.New("read-only or insufficient privilege")
)

// Error is a PostgreSQL error translated into a domain error. It keeps the SQLSTATE and the
// server's message for logs; Kind is what callers branch on.
type Error struct {
	Kind       error
	Code       string
	Message    string
	Constraint string
	Table      string
	cause      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
	if e.Constraint != "" {
		s += " constraint " + e.Constraint
	}
	return s
}

// Is makes errors.Is(err, ErrConflict) and friends work.
func (e *Error) Is(target error) bool {
	if e.Kind == target {
		return true
	}
	// Lock timeouts are both timeouts and retryable.
	return e.Code == "55P03" && target == ErrTimeout
}

func (e *Error) Unwrap() error { return e.cause }

// Interpret translates a driver error into a domain error. Nil stays nil; errors that are not
// from PostgreSQL pass through unchanged except sql.ErrNoRows, which becomes ErrNotFound.
func Interpret(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w", ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if pgconn.SafeToRetry(err) || isConnError(err) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	e := &Error{Code: pgErr.Code, Message: pgErr.Message, Constraint: pgErr.ConstraintName, Table: pgErr.TableName, cause: err}
	e.Kind = kindOf(pgErr.Code)
	return e
}

// Code returns the SQLSTATE of err, or "" when it is not a PostgreSQL error.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func kindOf(code string) error {
	switch {
	case code == "23505", code == "23P01":
		return ErrConflict
	case code == "23503":
		return ErrReferenced
	case code == "23502", code == "23514", code == "22P02", code == "22001", code == "22003", code == "22007", code == "22008":
		return ErrInvalid
	case code == "40001", code == "40P01", code == "55P03":
		return ErrRetryable
	case code == "57014":
		return ErrTimeout
	case code == "25006", code == "42501":
		return ErrReadOnly
	case len(code) == 2+3 && code[:2] == "08", code == "57P01", code == "57P02", code == "57P03", code == "53300":
		return ErrUnavailable
	}
	return errors.New("database error " + code)
}

func isConnError(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	// A connection lost in the middle of a statement: the server restarted or crashed, or
	// the network dropped it.
	var ne net.Error
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne) {
		return true
	}
	// The driver closed the connection after an earlier failure on it (the server went away
	// while it was idle in the pool, or a statement on it was cancelled).
	if errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	return pgconn.Timeout(err)
}

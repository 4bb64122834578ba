package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Limits bound failed sign-ins. A failure is counted against the account name as typed and
// against the client address; when either reaches its limit within Window, further attempts
// are refused, without checking the password, until the oldest counted failure leaves the
// window. There is no permanent lockout.
type Limits struct {
	Window     time.Duration
	PerAccount int
	PerIP      int
}

// DefaultLimits allow 5 failures per account and 50 per address in 15 minutes.
var DefaultLimits = Limits{Window: 15 * time.Minute, PerAccount: 5, PerIP: 50}

// Authenticator checks credentials. Failed attempts live in the console database, so every
// replica sees the same counts.
type Authenticator struct {
	db     *bun.DB
	limits Limits
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// NewAuthenticator returns an Authenticator on the console database. Zero fields of limits
// take their value from DefaultLimits.
func NewAuthenticator(db *bun.DB, limits Limits) *Authenticator {
	if limits.Window <= 0 {
		limits.Window = DefaultLimits.Window
	}
	if limits.PerAccount <= 0 {
		limits.PerAccount = DefaultLimits.PerAccount
	}
	if limits.PerIP <= 0 {
		limits.PerIP = DefaultLimits.PerIP
	}
	return &Authenticator{db: db, limits: limits, Now: time.Now}
}

// Authenticate checks a name and password from client address ip. It returns the user, or
// ErrBadCredentials, ErrDisabled (only after a correct password), or a *ThrottledError (also
// ErrThrottled) carrying the wait. The failure that reaches a limit is itself answered with a
// ThrottledError, so the client learns the wait at once.
//
// Attempts on one account are serialised by an advisory transaction lock, so parallel
// guesses cannot slip past the limit. On success the account's failures are forgotten and
// last_signed_in_at is set.
func (a *Authenticator) Authenticate(ctx context.Context, name, password, ip string) (_ *User, err error) {
	defer pg.Wrap(&err, "Authenticate(%q)", name)
	account := strings.ToLower(strings.TrimSpace(name))
	if account == "" || password == "" || len(password) > 4*MaxPasswordLen {
		return nil, ErrBadCredentials
	}
	now := a.Now().UTC()
	var user *User
	var outcome error
	err = a.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended(?, 7470))", "tombstone sign-in "+account); err != nil {
			return pg.Interpret(err)
		}
		wait, err := a.wait(ctx, tx, account, ip, now)
		if err != nil {
			return err
		}
		if wait > 0 {
			outcome = &ThrottledError{Wait: wait}
			return nil
		}
		u, err := UserByName(ctx, tx, account)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		hash := dummyHash()
		if u != nil && u.HasPassword() {
			hash = u.PasswordHash
		}
		ok, err := CheckPassword(hash, password)
		if err != nil {
			slog.WarnContext(ctx, "unusable password hash", "user", account, "err", err)
		}
		if ok && u != nil && u.HasPassword() {
			if u.Disabled() {
				outcome = ErrDisabled
				return nil
			}
			if _, err := tx.NewDelete().Table("sign_in_failures").Where("account = ?", account).Exec(ctx); err != nil {
				return pg.Interpret(err)
			}
			if err := markSignedIn(ctx, tx, u, now); err != nil {
				return err
			}
			user = u
			return nil
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO sign_in_failures (account, ip, failed_at) VALUES (?, ?, ?)", account, ip, now); err != nil {
			return pg.Interpret(err)
		}
		if wait, err = a.wait(ctx, tx, account, ip, now); err != nil {
			return err
		}
		if wait > 0 {
			outcome = &ThrottledError{Wait: wait}
		} else {
			outcome = ErrBadCredentials
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if outcome != nil {
		return nil, outcome
	}
	return user, nil
}

// wait returns how long until the account and the address are both under their limits.
// The limit is reached when the Nth most recent failure is still inside the window; the wait
// is the time until it leaves.
func (a *Authenticator) wait(ctx context.Context, db bun.IDB, account, ip string, now time.Time) (time.Duration, error) {
	since := now.Add(-a.limits.Window)
	var wait time.Duration
	for _, c := range []struct {
		col, val string
		limit    int
	}{{"account", account, a.limits.PerAccount}, {"ip", ip, a.limits.PerIP}} {
		var at []time.Time
		err := db.NewSelect().Table("sign_in_failures").Column("failed_at").
			Where("? = ? AND failed_at > ?", bun.Ident(c.col), c.val, since).
			OrderExpr("failed_at DESC").Offset(c.limit-1).Limit(1).Scan(ctx, &at)
		if err != nil {
			return 0, pg.Interpret(err)
		}
		if len(at) == 1 {
			wait = max(wait, at[0].Add(a.limits.Window).Sub(now))
		}
	}
	if wait > 0 && wait < time.Second {
		wait = time.Second
	}
	return wait, nil
}

// ForgetFailures deletes failed attempts that have left the window; the session sweeper
// calls it periodically.
func (a *Authenticator) ForgetFailures(ctx context.Context) (n int64, err error) {
	defer pg.Wrap(&err, "ForgetFailures")
	res, err := a.db.NewDelete().Table("sign_in_failures").
		Where("failed_at < ?", a.Now().UTC().Add(-a.limits.Window)).Exec(ctx)
	if err != nil {
		return 0, pg.Interpret(err)
	}
	return res.RowsAffected()
}

// AuthenticateOIDC finds the user linked to an identity the provider vouched for. An unknown
// subject is ErrUnknownSubject: SSO never creates users. A disabled user is ErrDisabled.
func (a *Authenticator) AuthenticateOIDC(ctx context.Context, id Identity) (_ *User, err error) {
	defer pg.Wrap(&err, "AuthenticateOIDC(%q)", id.Subject)
	u, err := UserByOIDCSubject(ctx, a.db, id.Subject)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnknownSubject
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled() {
		return nil, ErrDisabled
	}
	if err := markSignedIn(ctx, a.db, u, a.Now().UTC()); err != nil {
		return nil, err
	}
	return u, nil
}

func markSignedIn(ctx context.Context, db bun.IDB, u *User, now time.Time) error {
	_, err := db.NewUpdate().Model(u).Set("last_signed_in_at = ?", now).Where("id = ?", u.ID).
		Returning("last_signed_in_at").Exec(ctx)
	return pg.Interpret(err)
}

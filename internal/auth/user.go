package auth

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// User is one person who can sign in to the console.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID          int64  `bun:"id,pk,autoincrement"`
	Name        string `bun:"name"`
	DisplayName string `bun:"display_name"`
	Email       string `bun:"email"`
	Role        Role   `bun:"role"`
	// PasswordHash is the PHC argon2id hash, or "" for a user who signs in only through SSO.
	PasswordHash string `bun:"password_hash" json:"-"`
	// OIDCSubject links the user to the identity provider's stable subject ("sub" claim).
	OIDCSubject    sql.NullString `bun:"oidc_subject"`
	DisabledAt     bun.NullTime   `bun:"disabled_at"`
	LastSignedInAt bun.NullTime   `bun:"last_signed_in_at"`
	CreatedAt      time.Time      `bun:"created_at,nullzero,notnull,default:current_timestamp"`
	UpdatedAt      time.Time      `bun:"updated_at,nullzero,notnull,default:current_timestamp"`
}

// Disabled reports whether the user may no longer sign in.
func (u *User) Disabled() bool { return !u.DisabledAt.IsZero() }

// HasPassword reports whether the user can sign in with a password.
func (u *User) HasPassword() bool { return u.PasswordHash != "" }

// Label is how the user is shown: the display name when set, else the name.
func (u *User) Label() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// NewUser is what CreateUser needs. Password may be empty for a user who signs in only
// through SSO (then OIDCSubject should be set); it is validated with ValidatePassword.
type NewUser struct {
	Name        string
	DisplayName string
	Email       string
	Role        Role
	Password    string
	OIDCSubject string
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// ValidateName checks a user name: 1 to 64 letters, digits, '.', '_', '@' or '-'.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return &ValidationError{Field: "name", Message: "use 1 to 64 letters, digits, '.', '_', '@' or '-'"}
	}
	return nil
}

// CreateUser validates and inserts a user. A name taken in any letter case is a
// ConflictError; invalid input is a ValidationError.
func CreateUser(ctx context.Context, db bun.IDB, nu NewUser) (_ *User, err error) {
	defer pg.Wrap(&err, "CreateUser(%q)", nu.Name)
	if err := ValidateName(nu.Name); err != nil {
		return nil, err
	}
	if !nu.Role.Valid() {
		return nil, &ValidationError{Field: "role", Message: "must be one of viewer, requester, approver, admin"}
	}
	u := &User{
		Name:        nu.Name,
		DisplayName: strings.TrimSpace(nu.DisplayName),
		Email:       strings.TrimSpace(nu.Email),
		Role:        nu.Role,
	}
	if s := strings.TrimSpace(nu.OIDCSubject); s != "" {
		u.OIDCSubject = sql.NullString{String: s, Valid: true}
	}
	if nu.Password != "" {
		if err := ValidatePassword(nu.Password); err != nil {
			return nil, err
		}
		if u.PasswordHash, err = HashPassword(nu.Password); err != nil {
			return nil, err
		}
	} else if !u.OIDCSubject.Valid {
		return nil, &ValidationError{Field: "password", Message: "is required unless the user signs in through SSO"}
	}
	// A savepoint inside a caller's transaction: a taken name must not abort it.
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := tx.NewInsert().Model(u).
			ExcludeColumn("id", "created_at", "updated_at", "disabled_at", "last_signed_in_at").
			Returning("*").Exec(ctx)
		return err
	})
	if err = pg.Interpret(err); err != nil {
		if errors.Is(err, pg.ErrConflict) {
			if strings.Contains(constraintOf(err), "oidc") {
				return nil, &ConflictError{Field: "oidc_subject", Message: "another user is already linked to that SSO subject"}
			}
			return nil, &ConflictError{Field: "name", Message: "a user named " + nu.Name + " already exists"}
		}
		return nil, err
	}
	return u, nil
}

func constraintOf(err error) string {
	var e *pg.Error
	if errors.As(err, &e) {
		return e.Constraint
	}
	return ""
}

// UserByID returns the user with that id, or ErrNotFound.
//
// Every signed-in request reads its user, so this is one prepared statement (pg.Direct).
func UserByID(ctx context.Context, db bun.IDB, id int64) (_ *User, err error) {
	defer pg.Wrap(&err, "UserByID(%d)", id)
	u := new(User)
	err = pg.DirectOf(db).QueryRowContext(ctx, `SELECT id, name, display_name, email, role, password_hash,
		oidc_subject, disabled_at, last_signed_in_at, created_at, updated_at FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.Name, &u.DisplayName, &u.Email, &u.Role, &u.PasswordHash,
			&u.OIDCSubject, &u.DisabledAt, &u.LastSignedInAt, &u.CreatedAt, &u.UpdatedAt)
	if err = pg.Interpret(err); errors.Is(err, pg.ErrNotFound) {
		return nil, ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return u, nil
}

// UserByName returns the user whose name matches in any letter case, or ErrNotFound.
func UserByName(ctx context.Context, db bun.IDB, name string) (_ *User, err error) {
	defer pg.Wrap(&err, "UserByName(%q)", name)
	return oneUser(ctx, db.NewSelect().Model((*User)(nil)).Where("lower(name) = lower(?)", name))
}

// UserByOIDCSubject returns the user linked to an identity provider subject, or ErrNotFound.
func UserByOIDCSubject(ctx context.Context, db bun.IDB, subject string) (_ *User, err error) {
	defer pg.Wrap(&err, "UserByOIDCSubject(%q)", subject)
	return oneUser(ctx, db.NewSelect().Model((*User)(nil)).Where("oidc_subject = ?", subject))
}

func oneUser(ctx context.Context, q *bun.SelectQuery) (*User, error) {
	u := new(User)
	if err := q.Model(u).Limit(1).Scan(ctx); err != nil {
		if err = pg.Interpret(err); errors.Is(err, pg.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return u, nil
}

// ListUsers returns every user, enabled ones first, then by name.
func ListUsers(ctx context.Context, db bun.IDB) (_ []User, err error) {
	defer pg.Wrap(&err, "ListUsers")
	var users []User
	err = db.NewSelect().Model(&users).OrderExpr("disabled_at IS NOT NULL, lower(name)").Scan(ctx)
	return users, pg.Interpret(err)
}

// SetRole changes a user's role and returns the updated user. Demoting or the last enabled
// admin is refused with a ConflictError, so the console always keeps an administrator; the
// check and the change run in one transaction (a savepoint inside the caller's) that locks
// the admin rows, so two admins demoting each other cannot both succeed.
//
// Sessions are not ended: the console re-reads the role on every request, so a demotion takes
// effect at once, and renews the session token when it sees the role has changed.
func SetRole(ctx context.Context, db bun.IDB, id int64, role Role) (_ *User, err error) {
	defer pg.Wrap(&err, "SetRole(%d, %q)", id, role)
	if !role.Valid() {
		return nil, &ValidationError{Field: "role", Message: "must be one of viewer, requester, approver, admin"}
	}
	var u *User
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		cur, err := lockForAdminChange(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Role == Admin && role != Admin && !cur.Disabled() {
			if err := keepAnAdmin(ctx, tx, id, "demote"); err != nil {
				return err
			}
		}
		u = new(User)
		_, err = tx.NewUpdate().Model(u).Set("role = ?", role).Set("updated_at = now()").
			Where("id = ?", id).Returning("*").Exec(ctx)
		return pg.Interpret(err)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Disable stops a user from signing in and ends all of their sessions, in one transaction.
// Disabling the last enabled admin is refused with a ConflictError. Disabling a user who is
// already disabled changes nothing and is not an error.
func Disable(ctx context.Context, db bun.IDB, id int64) (_ *User, err error) {
	defer pg.Wrap(&err, "Disable(%d)", id)
	var u *User
	err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		cur, err := lockForAdminChange(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Disabled() {
			u = cur
			return nil
		}
		if cur.Role == Admin {
			if err := keepAnAdmin(ctx, tx, id, "disable"); err != nil {
				return err
			}
		}
		u = new(User)
		_, err = tx.NewUpdate().Model(u).Set("disabled_at = now()").Set("updated_at = now()").
			Where("id = ?", id).Returning("*").Exec(ctx)
		if err = pg.Interpret(err); err != nil {
			return err
		}
		_, err = EndSessions(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// SetPassword replaces a user's password and ends all of their sessions, in one transaction:
// whoever held the old password is signed out everywhere.
func SetPassword(ctx context.Context, db bun.IDB, id int64, password string) (err error) {
	defer pg.Wrap(&err, "SetPassword(%d)", id)
	if err := ValidatePassword(password); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewUpdate().Model((*User)(nil)).Set("password_hash = ?", hash).Set("updated_at = now()").
			Where("id = ?", id).Exec(ctx)
		if err = pg.Interpret(err); err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		_, err = EndSessions(ctx, tx, id)
		return err
	})
}

// lockForAdminChange locks every enabled admin row and the target row, in id order, so that
// concurrent role changes and disables see each other's effect on the admin count.
func lockForAdminChange(ctx context.Context, tx bun.Tx, id int64) (*User, error) {
	if _, err := tx.NewSelect().Model((*User)(nil)).Column("id").
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("role = ? AND disabled_at IS NULL", Admin).WhereOr("id = ?", id)
		}).
		Order("id").For("UPDATE").Exec(ctx); err != nil {
		return nil, pg.Interpret(err)
	}
	return oneUser(ctx, tx.NewSelect().Model((*User)(nil)).Where("id = ?", id))
}

func keepAnAdmin(ctx context.Context, tx bun.Tx, id int64, verb string) error {
	n, err := tx.NewSelect().Model((*User)(nil)).
		Where("role = ? AND disabled_at IS NULL AND id <> ?", Admin, id).Count(ctx)
	if err != nil {
		return pg.Interpret(err)
	}
	if n == 0 {
		return &ConflictError{Message: "cannot " + verb + " the last enabled admin; make someone else an admin first"}
	}
	return nil
}

// Enable lets a disabled user sign in again. Their old sessions stay ended.
func Enable(ctx context.Context, db bun.IDB, id int64) (_ *User, err error) {
	defer pg.Wrap(&err, "Enable(%d)", id)
	u := new(User)
	res, err := db.NewUpdate().Model(u).Set("disabled_at = NULL").Set("updated_at = now()").
		Where("id = ?", id).Returning("*").Exec(ctx)
	if err = pg.Interpret(err); err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return u, nil
}

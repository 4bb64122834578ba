package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/auth/oidctest"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPasswordHash(t *testing.T) {
	t.Parallel()
	h, err := auth.HashPassword("correct horse battery staple")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)
	require.Len(t, strings.Split(h, "$"), 6)

	ok, err := auth.CheckPassword(h, "correct horse battery staple")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = auth.CheckPassword(h, "correct horse battery stapl")
	require.NoError(t, err)
	require.False(t, ok)

	h2, err := auth.HashPassword("correct horse battery staple")
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")

	ok, err = auth.CheckPassword("", "anything")
	require.NoError(t, err)
	require.False(t, ok)
	for _, bad := range []string{"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "plain"} {
		ok, err = auth.CheckPassword(bad, "x")
		require.Error(t, err, bad)
		require.False(t, ok)
	}
	require.ErrorIs(t, auth.ValidatePassword("short"), auth.ErrInvalid)
	require.NoError(t, auth.ValidatePassword(auth.GeneratePassword()))
}

func TestRoles(t *testing.T) {
	t.Parallel()
	cases := map[auth.Role][]auth.Action{
		auth.Viewer:    {auth.Search, auth.ViewAudit},
		auth.Requester: {auth.Search, auth.ViewAudit, auth.Request},
		auth.Approver:  {auth.Search, auth.ViewAudit, auth.Request, auth.Approve},
		auth.Admin:     {auth.Search, auth.ViewAudit, auth.Request, auth.Approve, auth.Administer},
	}
	all := []auth.Action{auth.Search, auth.ViewAudit, auth.Request, auth.Approve, auth.Administer}
	for role, allowed := range cases {
		for _, a := range all {
			want := false
			for _, x := range allowed {
				want = want || x == a
			}
			require.Equal(t, want, auth.Can(role, a), "%s %s", role, a)
		}
	}
	require.False(t, auth.Can("root", auth.Search))
	require.False(t, auth.Can(auth.Admin, "launch"))
	_, err := auth.ParseRole("owner")
	require.ErrorIs(t, err, auth.ErrInvalid)
	require.True(t, auth.Approver.AtLeast(auth.Requester))
	require.False(t, auth.Requester.AtLeast(auth.Approver))
}

func TestStepUp(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, auth.StepUp(now.Add(-10*time.Minute), now, 15*time.Minute))
	require.ErrorIs(t, auth.StepUp(now.Add(-16*time.Minute), now, 15*time.Minute), auth.ErrStepUp)
	require.ErrorIs(t, auth.StepUp(time.Time{}, now, 15*time.Minute), auth.ErrStepUp)
}

func mkUser(t *testing.T, db bun.IDB, name string, role auth.Role) *auth.User {
	t.Helper()
	u, err := auth.CreateUser(context.Background(), db, auth.NewUser{Name: name, Role: role, Password: "password-of-" + name})
	require.NoError(t, err)
	return u
}

func TestUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)

	alice := mkUser(t, tx, "alice", auth.Admin)
	require.NotZero(t, alice.ID)
	require.False(t, alice.CreatedAt.IsZero())
	require.True(t, alice.HasPassword())

	_, err := auth.CreateUser(ctx, tx, auth.NewUser{Name: "ALICE", Role: auth.Viewer, Password: "another-password"})
	var ce *auth.ConflictError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "name", ce.Field)

	_, err = auth.CreateUser(ctx, tx, auth.NewUser{Name: "bad name", Role: auth.Viewer, Password: "another-password"})
	var ve *auth.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "name", ve.Field)
	_, err = auth.CreateUser(ctx, tx, auth.NewUser{Name: "nopass", Role: auth.Viewer})
	require.ErrorAs(t, err, &ve)
	require.Equal(t, "password", ve.Field)

	sso, err := auth.CreateUser(ctx, tx, auth.NewUser{Name: "sso", Role: auth.Viewer, OIDCSubject: "sub-1"})
	require.NoError(t, err)
	require.False(t, sso.HasPassword())
	_, err = auth.CreateUser(ctx, tx, auth.NewUser{Name: "sso2", Role: auth.Viewer, OIDCSubject: "sub-1"})
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "oidc_subject", ce.Field)

	got, err := auth.UserByName(ctx, tx, "Alice")
	require.NoError(t, err)
	require.Equal(t, alice.ID, got.ID)
	got, err = auth.UserByOIDCSubject(ctx, tx, "sub-1")
	require.NoError(t, err)
	require.Equal(t, "sso", got.Name)
	_, err = auth.UserByID(ctx, tx, 999999)
	require.ErrorIs(t, err, auth.ErrNotFound)

	// The last admin can be neither demoted nor disabled.
	_, err = auth.SetRole(ctx, tx, alice.ID, auth.Viewer)
	require.ErrorIs(t, err, auth.ErrConflict)
	_, err = auth.Disable(ctx, tx, alice.ID)
	require.ErrorIs(t, err, auth.ErrConflict)

	bob := mkUser(t, tx, "bob", auth.Viewer)
	bob, err = auth.SetRole(ctx, tx, bob.ID, auth.Admin)
	require.NoError(t, err)
	require.Equal(t, auth.Admin, bob.Role)
	alice, err = auth.SetRole(ctx, tx, alice.ID, auth.Approver)
	require.NoError(t, err)
	require.Equal(t, auth.Approver, alice.Role)

	users, err := auth.ListUsers(ctx, tx)
	require.NoError(t, err)
	require.Len(t, users, 3)
}

func TestDisableAndPasswordEndSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	store := auth.NewSessionStore(tx, scs.GobCodec{})
	carol := mkUser(t, tx, "carol", auth.Requester)
	dave := mkUser(t, tx, "dave", auth.Requester)
	exp := time.Now().Add(time.Hour)
	commit := func(token string, userID int64) {
		b, err := scs.GobCodec{}.Encode(exp, map[string]any{auth.SessionUserKey: userID})
		require.NoError(t, err)
		require.NoError(t, store.CommitCtx(ctx, token, b, exp))
	}
	commit("c1", carol.ID)
	commit("c2", carol.ID)
	commit("d1", dave.ID)

	_, err := auth.Disable(ctx, tx, carol.ID)
	require.NoError(t, err)
	for tok, want := range map[string]bool{"c1": false, "c2": false, "d1": true} {
		_, found, err := store.FindCtx(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, want, found, tok)
	}
	u, err := auth.UserByID(ctx, tx, carol.ID)
	require.NoError(t, err)
	require.True(t, u.Disabled())

	require.NoError(t, auth.SetPassword(ctx, tx, dave.ID, "a brand new password"))
	_, found, err := store.FindCtx(ctx, "d1")
	require.NoError(t, err)
	require.False(t, found)
}

func TestSessionStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tx := pgtest.Tx(t)
	store := auth.NewSessionStore(tx, scs.GobCodec{})
	erin := mkUser(t, tx, "erin", auth.Viewer)
	now := time.Now()

	b, err := scs.GobCodec{}.Encode(now.Add(time.Hour), map[string]any{auth.SessionUserKey: erin.ID, "x": "y"})
	require.NoError(t, err)
	require.NoError(t, store.CommitCtx(ctx, "tok", b, now.Add(time.Hour)))
	got, found, err := store.FindCtx(ctx, "tok")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, b, got)
	var userID int64
	require.NoError(t, tx.NewSelect().Table("sessions").Column("user_id").Where("token = 'tok'").Scan(ctx, &userID))
	require.Equal(t, erin.ID, userID)

	// Overwrite: an anonymous session has no user.
	b2, err := scs.GobCodec{}.Encode(now.Add(time.Hour), map[string]any{})
	require.NoError(t, err)
	require.NoError(t, store.CommitCtx(ctx, "tok", b2, now.Add(time.Hour)))
	var nullable *int64
	require.NoError(t, tx.NewSelect().Table("sessions").Column("user_id").Where("token = 'tok'").Scan(ctx, &nullable))
	require.Nil(t, nullable)

	require.NoError(t, store.CommitCtx(ctx, "old", b, now.Add(-time.Second)))
	_, found, err = store.FindCtx(ctx, "old")
	require.NoError(t, err)
	require.False(t, found, "expired")
	n, err := store.DeleteExpired(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	require.NoError(t, store.DeleteCtx(ctx, "tok"))
	require.NoError(t, store.DeleteCtx(ctx, "tok"), "deleting twice is fine")
	_, found, err = store.FindCtx(ctx, "tok")
	require.NoError(t, err)
	require.False(t, found)
}

func TestAuthenticateThrottles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	mkUser(t, db.Bun, "frank", auth.Viewer)
	a := auth.NewAuthenticator(db.Bun, auth.Limits{Window: 10 * time.Minute, PerAccount: 3, PerIP: 5})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { return now }

	u, err := a.Authenticate(ctx, "Frank", "password-of-frank", "10.0.0.1")
	require.NoError(t, err)
	require.Equal(t, "frank", u.Name)
	require.Equal(t, now, u.LastSignedInAt.Time.UTC())

	_, err = a.Authenticate(ctx, "frank", "wrong", "10.0.0.1")
	require.ErrorIs(t, err, auth.ErrBadCredentials)
	now = now.Add(time.Minute)
	_, err = a.Authenticate(ctx, "frank", "wrong", "10.0.0.2")
	require.ErrorIs(t, err, auth.ErrBadCredentials)
	now = now.Add(time.Minute)
	// The third failure reaches the limit and says how long to wait: until the first
	// failure (two minutes ago) leaves the ten-minute window.
	_, err = a.Authenticate(ctx, "frank", "wrong", "10.0.0.3")
	var te *auth.ThrottledError
	require.ErrorAs(t, err, &te)
	require.Equal(t, 8*time.Minute, te.Wait)
	// Even the right password is refused while throttled.
	_, err = a.Authenticate(ctx, "frank", "password-of-frank", "10.0.0.4")
	require.ErrorIs(t, err, auth.ErrThrottled)

	// No permanent lockout: once the oldest failure leaves the window, sign-in works.
	now = now.Add(8*time.Minute + time.Second)
	_, err = a.Authenticate(ctx, "frank", "password-of-frank", "10.0.0.4")
	require.NoError(t, err)

	// Per address: unknown names count too, and the limit holds across accounts.
	for i := range 4 {
		_, err = a.Authenticate(ctx, "nobody"+string(rune('a'+i)), "x", "192.0.2.9")
		require.ErrorIs(t, err, auth.ErrBadCredentials, i)
	}
	_, err = a.Authenticate(ctx, "nobodye", "x", "192.0.2.9")
	require.ErrorIs(t, err, auth.ErrThrottled)
	_, err = a.Authenticate(ctx, "frank", "password-of-frank", "192.0.2.9")
	require.ErrorIs(t, err, auth.ErrThrottled)
	_, err = a.Authenticate(ctx, "frank", "password-of-frank", "192.0.2.10")
	require.NoError(t, err)

	now = now.Add(time.Hour)
	n, err := a.ForgetFailures(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
}

func TestAuthenticateParallelGuessesStayUnderLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	mkUser(t, db.Bun, "gina", auth.Viewer)
	a := auth.NewAuthenticator(db.Bun, auth.Limits{Window: time.Hour, PerAccount: 3, PerIP: 100})
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked := 0
	for range 8 {
		wg.Go(func() {
			_, err := a.Authenticate(ctx, "gina", "guess", "10.1.1.1")
			mu.Lock()
			defer mu.Unlock()
			var te *auth.ThrottledError
			if errors.Is(err, auth.ErrBadCredentials) || errors.As(err, &te) && te.Wait > 59*time.Minute {
				checked++ // the password was checked (and failed)
			}
		})
	}
	wg.Wait()
	var failures int
	require.NoError(t, db.Bun.NewSelect().Table("sign_in_failures").ColumnExpr("count(*)").Scan(ctx, &failures))
	require.Equal(t, 3, failures, "exactly the limit of guesses was checked")
}

func TestAuthenticateDisabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	mkUser(t, db.Bun, "admin", auth.Admin)
	h := mkUser(t, db.Bun, "hank", auth.Viewer)
	_, err := auth.Disable(ctx, db.Bun, h.ID)
	require.NoError(t, err)
	a := auth.NewAuthenticator(db.Bun, auth.Limits{})
	_, err = a.Authenticate(ctx, "hank", "wrong", "10.0.0.1")
	require.ErrorIs(t, err, auth.ErrBadCredentials)
	_, err = a.Authenticate(ctx, "hank", "password-of-hank", "10.0.0.1")
	require.ErrorIs(t, err, auth.ErrDisabled)
}

func TestOIDC(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	is := oidctest.New(t, "tombstone", "s3cret")
	const redirect = "http://console.test/auth/oidc/callback"
	o, err := auth.NewOIDC(auth.OIDCConfig{Issuer: is.URL, ClientID: "tombstone", ClientSecret: "s3cret", RedirectURL: redirect})
	require.NoError(t, err)
	_, err = auth.CreateUser(ctx, db.Bun, auth.NewUser{Name: "ivy", Role: auth.Approver, OIDCSubject: "idp|ivy"})
	require.NoError(t, err)
	a := auth.NewAuthenticator(db.Bun, auth.Limits{})

	// authorize drives the browser leg: follow the auth URL until the redirect to the console.
	authorize := func(f auth.OIDCFlow) (code, state string) {
		u, err := o.AuthCodeURL(ctx, f)
		require.NoError(t, err)
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		loc, err := resp.Location()
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(loc.String(), redirect))
		return loc.Query().Get("code"), loc.Query().Get("state")
	}

	is.SignInAs("idp|ivy", "ivy@example.com")
	f := auth.NewOIDCFlow()
	code, state := authorize(f)
	require.Equal(t, f.State, state)
	id, err := o.Exchange(ctx, f, code)
	require.NoError(t, err)
	require.Equal(t, "idp|ivy", id.Subject)
	require.Equal(t, "ivy@example.com", id.Email)
	u, err := a.AuthenticateOIDC(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "ivy", u.Name)

	// A code is good once, and only with its own PKCE verifier.
	_, err = o.Exchange(ctx, f, code)
	require.ErrorIs(t, err, auth.ErrOIDCRejected)
	f2 := auth.NewOIDCFlow()
	code, _ = authorize(f2)
	f2.Verifier = auth.NewOIDCFlow().Verifier
	_, err = o.Exchange(ctx, f2, code)
	require.ErrorIs(t, err, auth.ErrOIDCRejected)

	// A token whose nonce is not ours is refused.
	is.ForgeNonce("someone-elses")
	f3 := auth.NewOIDCFlow()
	code, _ = authorize(f3)
	_, err = o.Exchange(ctx, f3, code)
	require.ErrorIs(t, err, auth.ErrOIDCRejected)
	is.ForgeNonce("")

	// Unknown subjects are refused: SSO never creates users.
	is.SignInAs("idp|mallory", "mallory@example.com")
	f4 := auth.NewOIDCFlow()
	code, _ = authorize(f4)
	id, err = o.Exchange(ctx, f4, code)
	require.NoError(t, err)
	_, err = a.AuthenticateOIDC(ctx, id)
	require.ErrorIs(t, err, auth.ErrUnknownSubject)
}

func TestOIDCProviderDown(t *testing.T) {
	t.Parallel()
	o, err := auth.NewOIDC(auth.OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "c", RedirectURL: "http://x/cb"})
	require.NoError(t, err)
	_, err = o.AuthCodeURL(context.Background(), auth.NewOIDCFlow())
	require.ErrorIs(t, err, auth.ErrOIDCUnavailable)
}

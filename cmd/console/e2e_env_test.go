package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/examples"
	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/internal/demo"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// e2eScale keeps the demo small (five tenants; acme is the same size at any scale), so that
// the whole suite runs in a couple of minutes.
const e2eScale = 0.1

// e2e is a console started by the real `serve` wiring (web, executor worker, notifications)
// over a demo built for this test alone: its own three target databases (a unique prefix), its
// own console database, the example policy, the demo users, and an in-process SMTP server
// that receives the approval emails.
type e2e struct {
	t    *testing.T
	base string
	// cfgPath is the config file the console was started from (the example policy with the
	// demo's URLs and the SMTP server filled in).
	cfgPath string
	// targets are direct connections to the demo databases, for checks by SQL.
	targets map[string]*pg.DB
	mail    *mailbox
	log     *syncBuffer
}

// demoPassword is the password `console demo` gives each demo user.
func demoPassword(name string) string { return "demo-" + name + "-password" }

func startE2E(t *testing.T) *e2e {
	t.Helper()
	ctx := context.Background()
	console := pgtest.Fresh(t)

	prefix := "e2e_" + randomHex(t, 5)
	adminURL := pgtest.AdminURL()
	t.Cleanup(func() {
		if err := demo.Drop(context.Background(), adminURL, prefix); err != nil {
			t.Errorf("drop the demo databases: %v", err)
		}
	})
	res, err := demo.Setup(ctx, demo.Options{AdminURL: adminURL, Prefix: prefix, Seed: 1, Scale: e2eScale})
	require.NoError(t, err)

	box, smtpURL := startSMTP(t)
	addr := freeAddr(t)
	vars := res.EnvVars()
	vars["TOMBSTONE_DATABASE_URL"] = pgtest.URLOf(console)
	vars["TOMBSTONE_BASE_URL"] = "http://" + addr
	policy := string(examples.Policy()) + "\nnotify:\n  email: {smtp: \"" + smtpURL + "\", from: tombstone@example.com}\n"
	cfgPath := filepath.Join(t.TempDir(), "tombstone.yaml")
	require.NoError(t, writeDemoConfig(cfgPath, policy, vars))

	e := &e2e{t: t, base: "http://" + addr, cfgPath: cfgPath, targets: map[string]*pg.DB{}, mail: box, log: &syncBuffer{}}
	env := e.env()
	var out bytes.Buffer
	require.NoError(t, run(ctx, []string{"target", "init", "--config", cfgPath}, Env{Stdout: &out, Stderr: &out, Lookup: env.Lookup}), out.String())
	for _, u := range demoUsers {
		_, err := auth.CreateUser(ctx, console.Bun, auth.NewUser{Name: u.name, DisplayName: u.display, Email: u.email, Role: u.role, Password: demoPassword(u.name)})
		require.NoError(t, err)
	}
	for _, target := range demo.Targets {
		db, err := pg.Open(ctx, res.Databases[target], pg.Options{MaxConns: 4, ApplicationName: "tombstone e2e check"})
		require.NoError(t, err)
		t.Cleanup(db.Close)
		e.targets[target] = db
	}

	cfg, err := loadConfig(cfgPath, env)
	require.NoError(t, err)
	srvCtx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serve(srvCtx, cfg, serveOptions{Listen: addr, Ready: func(net.Addr) { close(ready) }}, env)
	}()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("serve did not stop within 90s")
		}
		if t.Failed() {
			t.Logf("console log (last 20 kB):\n%s", e.log.tail(20<<10))
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve stopped before it was ready: %v\n%s", err, e.log.tail(20<<10))
	case <-time.After(60 * time.Second):
		t.Fatalf("serve was not ready within 60s\n%s", e.log.tail(20<<10))
	}
	return e
}

// env is the environment the console commands of the test run with: its config file, and its
// output in the test's log buffer.
func (e *e2e) env() Env {
	return Env{Stdout: e.log, Stderr: e.log, Lookup: func(k string) (string, bool) {
		if k == "TOMBSTONE_CONFIG" {
			return e.cfgPath, true
		}
		return "", false
	}}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// freeAddr returns a local address nobody listens on. The console's base_url (for links in
// emails) must be known before it starts, so the port is chosen first.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// syncBuffer collects the console's output from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// mailbox is an in-process SMTP server's store of received messages.
type mailbox struct {
	mu   sync.Mutex
	msgs []email
}

// email is one received message: its recipients, subject and plain-text body.
type email struct {
	To      []string
	Subject string
	Text    string
}

type smtpSession struct {
	box *mailbox
	to  []string
}

func (s *smtpSession) Reset()                                    { s.to = nil }
func (s *smtpSession) Logout() error                             { return nil }
func (s *smtpSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.to = append(s.to, to); return nil }

func (s *smtpSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := parseEmail(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: err.Error()}
	}
	m.To = s.to
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, m)
	s.box.mu.Unlock()
	return nil
}

// parseEmail reads the subject and the text/plain part (quoted-printable decoded) of a
// message, as a mail client shows them.
func parseEmail(raw []byte) (email, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return email{}, fmt.Errorf("parse the message: %w", err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return email{}, fmt.Errorf("decode the subject: %w", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return email{}, fmt.Errorf("content type: %w", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := io.ReadAll(msg.Body)
		return email{Subject: subject, Text: string(body)}, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return email{}, errors.New("no text/plain part")
		}
		if err != nil {
			return email{}, fmt.Errorf("read a part: %w", err)
		}
		if pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); pt == "text/plain" {
			body, err := io.ReadAll(p)
			return email{Subject: subject, Text: string(body)}, err
		}
	}
}

// startSMTP runs an SMTP server on a free local port and returns its mailbox and smtp:// URL.
func startSMTP(t *testing.T) (*mailbox, string) {
	t.Helper()
	box := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{box: box}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return box, "smtp://" + l.Addr().String()
}

// requestLink waits (up to a minute: the console delivers its outbox every few seconds) for
// an email to rcpt that links to a request page, and returns that link.
func (e *e2e) requestLink(rcpt string, requestID int64) string {
	e.t.Helper()
	want := regexp.MustCompile(regexp.QuoteMeta(e.base) + `/requests/` + strconv.FormatInt(requestID, 10) + `\b`)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		e.mail.mu.Lock()
		msgs := append([]email(nil), e.mail.msgs...)
		e.mail.mu.Unlock()
		for _, m := range msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, rcpt) {
					if link := want.FindString(m.Text); link != "" {
						return link
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("no email to %s with a link to request #%d within a minute", rcpt, requestID)
	return ""
}

// tableState is what a target table holds, for comparing before and after a run.
type tableState struct {
	Rows       int64
	Tombstoned int64
	// Hash is the MD5 of every row's text, sorted: equal hashes mean equal contents.
	Hash string
}

// snapshot reads every table of the demo targets' public schema: row counts, tombstoned rows
// (deleted_at set or is_deleted true) and a hash of the contents. Keys are "target
// schema.table", as the preview's summary names them.
func (e *e2e) snapshot() map[string]tableState {
	e.t.Helper()
	ctx := context.Background()
	out := map[string]tableState{}
	for target, db := range e.targets {
		rows, err := db.Pool.Query(ctx, `
			SELECT c.table_name,
			       bool_or(c.column_name = 'deleted_at'),
			       bool_or(c.column_name = 'is_deleted' AND c.data_type = 'boolean')
			FROM information_schema.columns AS c
			JOIN information_schema.tables AS t USING (table_schema, table_name)
			WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
			GROUP BY c.table_name ORDER BY c.table_name`)
		require.NoError(e.t, err)
		type tbl struct {
			name             string
			deletedAt, isDel bool
		}
		var tables []tbl
		for rows.Next() {
			var x tbl
			require.NoError(e.t, rows.Scan(&x.name, &x.deletedAt, &x.isDel))
			tables = append(tables, x)
		}
		require.NoError(e.t, rows.Err())
		for _, x := range tables {
			tomb := "false"
			switch {
			case x.deletedAt && x.isDel:
				tomb = "t.deleted_at IS NOT NULL OR t.is_deleted"
			case x.deletedAt:
				tomb = "t.deleted_at IS NOT NULL"
			case x.isDel:
				tomb = "t.is_deleted"
			}
			name := pgx.Identifier{"public", x.name}.Sanitize()
			var st tableState
			err := db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE `+tomb+`),
				md5(coalesce(string_agg(t::text, E'\n' ORDER BY t::text), '')) FROM `+name+` AS t`).
				Scan(&st.Rows, &st.Tombstoned, &st.Hash)
			require.NoError(e.t, err, x.name)
			out[target+" public."+x.name] = st
		}
	}
	return out
}

// scalar runs a query returning one number on a target.
func (e *e2e) scalar(target, query string, args ...any) int64 {
	e.t.Helper()
	var n int64
	require.NoError(e.t, e.targets[target].Pool.QueryRow(context.Background(), query, args...).Scan(&n), query)
	return n
}

// screenshotDir is where the key pages are written for the README: $TOMBSTONE_SCREENSHOTS,
// a relative path being taken from the module root (go test runs in the package directory).
// Empty means the screenshots are not wanted.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TOMBSTONE_SCREENSHOTS")
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	wd, err := os.Getwd()
	require.NoError(t, err)
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, dir)
		}
		if filepath.Dir(d) == d {
			t.Fatalf("TOMBSTONE_SCREENSHOTS=%s is relative, and no go.mod is above %s", dir, wd)
		}
	}
}

// lockRow holds a row of a target locked (FOR UPDATE) until the returned func is called, or
// the test ends.
func (e *e2e) lockRow(target, table string, id int64) func() {
	e.t.Helper()
	ctx := context.Background()
	tx, err := e.targets[target].Pool.Begin(ctx)
	require.NoError(e.t, err)
	var once sync.Once
	release := func() { once.Do(func() { require.NoError(e.t, tx.Commit(ctx)) }) }
	e.t.Cleanup(func() { once.Do(func() { _ = tx.Rollback(ctx) }) })
	_, err = tx.Exec(ctx, "SELECT 1 FROM "+pgx.Identifier{"public", table}.Sanitize()+" WHERE id = $1 FOR UPDATE", id)
	require.NoError(e.t, err)
	return release
}

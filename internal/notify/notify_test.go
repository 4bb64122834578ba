package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// mailbox is an in-process SMTP server's store.
type mailbox struct {
	mu     sync.Mutex
	msgs   []received
	reject atomic.Bool // answer RCPT with 550
}

type received struct {
	From string
	To   []string
	Data []byte
}

type smtpSession struct {
	box *mailbox
	cur received
}

func (s *smtpSession) Reset()        { s.cur = received{} }
func (s *smtpSession) Logout() error { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.cur = received{From: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.box.reject.Load() {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}

func (b *mailbox) all() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
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

// slackHook is an httptest Slack webhook that records bodies and can be made to fail.
type slackHook struct {
	mu     sync.Mutex
	bodies [][]byte
	fail   atomic.Bool
	srv    *httptest.Server
}

func startSlack(t *testing.T) *slackHook {
	h := &slackHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if h.fail.Load() {
			http.Error(w, "invalid_token", http.StatusInternalServerError)
			return
		}
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		h.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *slackHook) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

// secretPath stands for the secret part of a real webhook URL.
const secretPath = "/services/T000/B000/s3cr3tT0k3n"

func (h *slackHook) url() string { return h.srv.URL + secretPath }

func addUser(t *testing.T, db bun.IDB, name, role, email string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRowContext(context.Background(),
		"INSERT INTO users (name, role, email) VALUES (?, ?, ?) RETURNING id", name, role, email).Scan(&id))
	return id
}

// addRequest inserts a bare pending request for outbox rows to point at.
func addRequest(t *testing.T, db bun.IDB, requesterID int64) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.QueryRowContext(context.Background(), `INSERT INTO requests (kind, target, root_table,
		root_key, root_keys, digest, preview, rows_total, tables_total, requester_id, reason, approvals_required,
		created_at, updated_at, expires_at)
		VALUES ('tenant', 'app', 'public.tenants', ?, ARRAY[?], repeat('a', 64), '{}', 12, 3, ?,
		'cleanup after churn', 1, now(), now(), now() + interval '1 day') RETURNING id`,
		fmt.Sprint(requesterID), fmt.Sprint(requesterID), requesterID).Scan(&id))
	return id
}

func notice(requestID, requesterID int64) Notice {
	return Notice{
		RequestID: requestID, Kind: "tenant", Target: "app", RootKey: "42", RootLabel: "Acme <b>Corp</b> (acme)",
		RequesterID: requesterID, Requester: "alice", Reason: "customer asked <script>alert(1)</script> & left",
		TicketURL: "https://tickets.example.com/T-1", ApprovalsRequired: 2,
		Totals:    preview.Totals{Delete: 1234567, Soft: 3, Detach: 1, Tables: 5},
		ExpiresAt: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
	}
}

// part is one decoded MIME part.
type part struct {
	contentType string
	body        string
}

// parseMail splits a received message into its headers and decoded text parts.
func parseMail(t *testing.T, data []byte) (*mail.Message, []part) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts = append(parts, part{contentType: ct, body: string(b)})
	}
	return msg, parts
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for attempts, want := range map[int]time.Duration{
		0: 0, 1: 30 * time.Second, 2: time.Minute, 3: 2 * time.Minute, 7: 32 * time.Minute,
		8: time.Hour, 10: time.Hour, 1000: time.Hour,
	} {
		require.Equal(t, want, Backoff(attempts), "after %d attempts", attempts)
	}
}

func TestAwaitingGoesToApproversByEmailAndOnceToSlack(t *testing.T) {
	db := pgtest.Fresh(t).Bun
	ctx := context.Background()
	box, smtpURL := startSMTP(t)
	hook := startSlack(t)

	alice := addUser(t, db, "alice", "approver", "alice@example.com") // the requester: not told
	addUser(t, db, "bob", "approver", "bob@example.com")
	addUser(t, db, "carol", "approver", "OPS@example.com") // same address as notify.email.to
	addUser(t, db, "dave", "approver", "")                 // no address
	addUser(t, db, "erin", "requester", "erin@example.com")
	frank := addUser(t, db, "frank", "approver", "frank@example.com")
	_, err := db.ExecContext(ctx, "UPDATE users SET disabled_at = now() WHERE id = ?", frank)
	require.NoError(t, err)
	id := addRequest(t, db, alice)

	cfg := config.Notify{
		Email: &config.Email{SMTP: smtpURL, From: "tombstone@example.com", To: []string{"ops@example.com"}},
		Slack: &config.Slack{Webhook: hook.url()},
	}
	n := &Notifier{BaseURL: "https://tombstone.example.com/", Email: cfg.Email, Slack: cfg.Slack}
	require.NoError(t, n.Notify(ctx, db, Awaiting, notice(id, alice)))

	queued, err := Messages(ctx, db, id)
	require.NoError(t, err)
	var recipients []string
	for _, m := range queued {
		recipients = append(recipients, string(m.Channel)+":"+m.Recipient)
		require.True(t, m.SentAt.IsZero())
	}
	require.Equal(t, []string{"email:ops@example.com", "email:bob@example.com", "slack:webhook"}, recipients)

	sender, err := NewSender(cfg)
	require.NoError(t, err)
	st, err := Deliver(ctx, db, sender)
	require.NoError(t, err)
	require.Equal(t, 3, st.Sent)
	require.Empty(t, st.Failed)

	// Email: multipart text and HTML, user text escaped in the HTML, the only link is the page.
	link := fmt.Sprintf("https://tombstone.example.com/requests/%d", id)
	mails := box.all()
	require.Len(t, mails, 2)
	require.Equal(t, "tombstone@example.com", mails[0].From)
	require.Equal(t, []string{"ops@example.com"}, mails[0].To)
	require.Equal(t, []string{"bob@example.com"}, mails[1].To)
	msg, parts := parseMail(t, mails[1].Data)
	require.Contains(t, msg.Header.Get("Subject"), fmt.Sprintf("request #%d", id))
	require.Equal(t, "auto-generated", msg.Header.Get("Auto-Submitted"))
	require.Len(t, parts, 2)
	require.Equal(t, "text/plain", parts[0].contentType)
	require.Equal(t, "text/html", parts[1].contentType)
	text, html := parts[0].body, parts[1].body
	require.Contains(t, text, "alice asks to delete tenant")
	require.Contains(t, text, "1,234,567 deleted, 3 tombstoned, 1 detached in 5 tables")
	require.Contains(t, text, "It needs 2 approvals.")
	require.Contains(t, text, link)
	require.Contains(t, html, `href="`+link+`"`)
	require.Contains(t, html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; left")
	require.NotContains(t, html, "<script>")
	require.NotContains(t, html, "<b>Corp</b>")
	hrefs := regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(html, -1)
	require.Len(t, hrefs, 2)
	require.Equal(t, "https://tickets.example.com/T-1", hrefs[0][1])
	require.Equal(t, link, hrefs[1][1])

	// Slack: one post with a blocks layout.
	posts := hook.received()
	require.Len(t, posts, 1)
	var body struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Fields []struct {
				Text string `json:"text"`
			} `json:"fields"`
			Elements []struct {
				Type string `json:"type"`
				URL  string `json:"url"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	require.NoError(t, json.Unmarshal(posts[0], &body))
	require.Equal(t, "header", body.Blocks[0].Type)
	require.Contains(t, body.Blocks[0].Text.Text, `Acme <b>Corp</b> (acme)`) // plain_text: shown as typed
	var all []string
	for _, b := range body.Blocks {
		if b.Text != nil {
			all = append(all, b.Text.Text)
		}
		for _, f := range b.Fields {
			all = append(all, f.Text)
		}
	}
	joined := strings.Join(all, "\n")
	require.Contains(t, joined, "*Kind*\ntenant")
	require.Contains(t, joined, "*Requester*\nalice")
	require.Contains(t, joined, "*Rows*\n1,234,567 deleted, 3 tombstoned, 1 detached in 5 tables")
	require.Contains(t, joined, "*Reason*\ncustomer asked &lt;script&gt;alert(1)&lt;/script&gt; &amp; left")
	last := body.Blocks[len(body.Blocks)-1]
	require.Equal(t, "actions", last.Type)
	require.Equal(t, link, last.Elements[0].URL)

	// Nothing is left to send, and nothing failed.
	st, err = Deliver(ctx, db, sender)
	require.NoError(t, err)
	require.Zero(t, st.Sent)
	fs, err := Failures(ctx, db, id)
	require.NoError(t, err)
	require.Empty(t, fs)
}

func TestRequesterHearsOfDecisionsByEmailOnly(t *testing.T) {
	tx := pgtest.Tx(t)
	ctx := context.Background()
	alice := addUser(t, tx, "alice", "requester", "alice@example.com")
	nomail := addUser(t, tx, "nomail", "requester", "")
	id := addRequest(t, tx, alice)
	id2 := addRequest(t, tx, nomail)
	n := &Notifier{BaseURL: "https://t.example.com",
		Email: &config.Email{SMTP: "smtp://127.0.0.1:1", From: "t@example.com", To: []string{"ops@example.com"}},
		Slack: &config.Slack{Webhook: "https://hooks.example.com/x"}}

	for _, e := range []Event{Approved, Rejected, Done, Failed, Drifted} {
		a := notice(id, alice)
		a.DecidedBy, a.DecisionReason, a.Error = "bob", "not <this> one", "lock timeout"
		require.NoError(t, n.Notify(ctx, tx, e, a))
		require.NoError(t, n.Notify(ctx, tx, e, notice(id2, nomail)))
	}
	ms, err := Messages(ctx, tx, id)
	require.NoError(t, err)
	require.Len(t, ms, 5)
	for _, m := range ms {
		require.Equal(t, Email, m.Channel)
		require.Equal(t, "alice@example.com", m.Recipient)
	}
	require.Contains(t, ms[0].Subject, "Approved:")
	require.Contains(t, ms[1].BodyText, "Rejection reason: not <this> one")
	require.Contains(t, ms[1].BodyHTML, "not &lt;this&gt; one")
	require.Contains(t, ms[3].BodyText, "Error:")
	require.Contains(t, ms[4].Subject, "the data changed")
	none, err := Messages(ctx, tx, id2)
	require.NoError(t, err)
	require.Empty(t, none, "a requester without an address gets no email")

	// A notifier without channels, and a nil one, queue nothing.
	require.NoError(t, (&Notifier{BaseURL: "x"}).Notify(ctx, tx, Awaiting, notice(id2, nomail)))
	require.NoError(t, (*Notifier)(nil).Notify(ctx, tx, Awaiting, notice(id2, nomail)))
	none, err = Messages(ctx, tx, id2)
	require.NoError(t, err)
	require.Empty(t, none)
}

// secondsUntil is how far in the future (database clock) a time is.
func secondsUntil(t *testing.T, db bun.IDB, at time.Time) float64 {
	t.Helper()
	var s float64
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT extract(epoch FROM ?::timestamptz - now())", at).Scan(&s))
	return s
}

func TestFailingSlackIsRetriedWithBackoffAndShown(t *testing.T) {
	tx := pgtest.Tx(t)
	ctx := context.Background()
	hook := startSlack(t)
	hook.fail.Store(true)
	alice := addUser(t, tx, "alice", "requester", "")
	id := addRequest(t, tx, alice)
	n := &Notifier{BaseURL: "https://t.example.com", Slack: &config.Slack{Webhook: hook.url()}}
	require.NoError(t, n.Notify(ctx, tx, Awaiting, notice(id, alice)))
	sender := Channels{Slack: NewSlack(n.Slack)}

	st, err := Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Zero(t, st.Sent)
	require.Len(t, st.Failed, 1)
	f := st.Failed[0]
	require.Equal(t, 1, f.Attempts)
	require.False(t, f.GaveUp)
	require.Contains(t, f.LastError, "500 Internal Server Error")
	require.Contains(t, f.LastError, "invalid_token")
	require.NotContains(t, f.LastError, "s3cr3t", "the webhook URL is a secret")
	require.InDelta(t, 30, secondsUntil(t, tx, f.NextAttemptAt), 2)

	// Not due yet: the next round leaves it alone.
	st, err = Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Zero(t, st.Sent)
	require.Empty(t, st.Failed)

	// The request page sees it.
	fs, err := Failures(ctx, tx, id)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Equal(t, Slack, fs[0].Channel)
	require.Equal(t, f.LastError, fs[0].LastError)

	// Due again and still failing: the wait doubles.
	makeDue := func() {
		_, err := tx.ExecContext(ctx, "UPDATE outbox SET next_attempt_at = now() - interval '1 second' WHERE request_id = ?", id)
		require.NoError(t, err)
	}
	makeDue()
	st, err = Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Len(t, st.Failed, 1)
	require.Equal(t, 2, st.Failed[0].Attempts)
	require.InDelta(t, 60, secondsUntil(t, tx, st.Failed[0].NextAttemptAt), 2)

	// The endpoint recovers: the retry goes out and the failure is gone from the page.
	hook.fail.Store(false)
	makeDue()
	st, err = Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Equal(t, 1, st.Sent)
	require.Len(t, hook.received(), 1)
	fs, err = Failures(ctx, tx, id)
	require.NoError(t, err)
	require.Empty(t, fs)
}

func TestGivesUpAfterMaxAttemptsButKeepsTheRowVisible(t *testing.T) {
	tx := pgtest.Tx(t)
	ctx := context.Background()
	box, smtpURL := startSMTP(t)
	box.reject.Store(true)
	alice := addUser(t, tx, "alice", "requester", "alice@example.com")
	id := addRequest(t, tx, alice)
	email := &config.Email{SMTP: smtpURL, From: "t@example.com"}
	n := &Notifier{BaseURL: "https://t.example.com", Email: email}
	require.NoError(t, n.Notify(ctx, tx, Approved, notice(id, alice)))
	s, err := NewSMTP(email)
	require.NoError(t, err)
	sender := Channels{Email: s}

	_, err = tx.ExecContext(ctx, "UPDATE outbox SET attempts = ? WHERE request_id = ?", MaxAttempts-1, id)
	require.NoError(t, err)
	st, err := Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Len(t, st.Failed, 1)
	require.True(t, st.Failed[0].GaveUp)
	require.Contains(t, st.Failed[0].LastError, "550")

	// Due, but given up: never picked again, still shown.
	_, err = tx.ExecContext(ctx, "UPDATE outbox SET next_attempt_at = now() - interval '1 hour' WHERE request_id = ?", id)
	require.NoError(t, err)
	box.reject.Store(false)
	st, err = Deliver(ctx, tx, sender)
	require.NoError(t, err)
	require.Zero(t, st.Sent)
	require.Empty(t, box.all())
	fs, err := Failures(ctx, tx, id)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.True(t, fs[0].GaveUp)
	require.Equal(t, "alice@example.com", fs[0].Recipient)
}

func TestUnreachableSMTPAndUnconfiguredChannelsFail(t *testing.T) {
	tx := pgtest.Tx(t)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	email := &config.Email{SMTP: "smtp://user:hunter2@" + addr, From: "t@example.com"}
	s, err := NewSMTP(email)
	require.NoError(t, err)
	_, err = Enqueue(ctx, tx, Message{Event: Done, Channel: Email, Recipient: "x@example.com", Subject: "s", BodyText: "b"})
	require.NoError(t, err)
	_, err = Enqueue(ctx, tx, Message{Event: Awaiting, Channel: Slack, Recipient: SlackRecipient, Payload: json.RawMessage(`{"text":"x"}`)})
	require.NoError(t, err)
	st, err := Deliver(ctx, tx, Channels{Email: s})
	require.NoError(t, err)
	require.Len(t, st.Failed, 2)
	require.Contains(t, st.Failed[0].LastError, "email to x@example.com")
	require.NotContains(t, st.Failed[0].LastError, "hunter2")
	require.Contains(t, st.Failed[1].LastError, "slack channel is not configured")

	_, err = NewSMTP(&config.Email{SMTP: "http://mail:25", From: "t@example.com"})
	require.Error(t, err)
	_, err = NewSMTP(&config.Email{SMTP: "smtp://mail:25", From: "not an address"})
	require.Error(t, err)
}

func TestEnqueueValidates(t *testing.T) {
	tx := pgtest.Tx(t)
	ctx := context.Background()
	for _, m := range []Message{
		{Event: Done, Channel: "pigeon", Recipient: "x"},
		{Event: Done, Channel: Email, Recipient: "  "},
		{Event: Awaiting, Channel: Slack, Recipient: SlackRecipient, Payload: json.RawMessage(`{`)},
	} {
		_, err := Enqueue(ctx, tx, m)
		require.ErrorIs(t, err, pg.ErrInvalid)
	}
}

// TestConcurrentDeliverersSendEachMessageOnce runs two deliverers on one outbox with a slow
// sender: SKIP LOCKED splits the rows between them and nothing is sent twice.
func TestConcurrentDeliverersSendEachMessageOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t).Bun
	ctx := context.Background()
	const n = 20
	for i := range n {
		_, err := Enqueue(ctx, db, Message{Event: Done, Channel: Email, Recipient: fmt.Sprintf("u%d@example.com", i), Subject: "s"})
		require.NoError(t, err)
	}
	var mu sync.Mutex
	sent := map[string]int{}
	slow := senderFunc(func(ctx context.Context, m Message) error {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		sent[m.Recipient]++
		mu.Unlock()
		return nil
	})
	var wg sync.WaitGroup
	totals := make([]int, 2)
	errs := make([]error, 2)
	for w := range totals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Deliver(ctx, db, Channels{Email: slow})
			totals[w], errs[w] = st.Sent, err
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, n, totals[0]+totals[1])
	require.Len(t, sent, n)
	for r, c := range sent {
		require.Equal(t, 1, c, r)
	}
}

type senderFunc func(context.Context, Message) error

func (f senderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

func TestRunDelivererStopsWithContext(t *testing.T) {
	t.Parallel()
	db := pgtest.Fresh(t).Bun
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Enqueue(ctx, db, Message{Event: Done, Channel: Email, Recipient: "x@example.com"})
	require.NoError(t, err)
	got := make(chan Message, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunDeliverer(ctx, db, Channels{Email: senderFunc(func(_ context.Context, m Message) error {
			got <- m
			return nil
		})}, 20*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	select {
	case m := <-got:
		require.Equal(t, "x@example.com", m.Recipient)
	case <-time.After(5 * time.Second):
		t.Fatal("RunDeliverer sent nothing")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("RunDeliverer did not stop")
	}
}

// Package notify tells people about requests: approvers that a request awaits them, requesters
// that theirs was approved, rejected, done or failed.
//
// Notifications go through an outbox. Notify and Enqueue write rows inside the caller's
// transaction, so a state change and its messages commit or roll back together, and a slow or
// broken mail server never holds up the workflow. Deliver, run periodically by RunDeliverer,
// sends due rows by email (SMTP) or Slack (an incoming webhook) and records each failure with
// an exponential backoff; Failures lists what has not gone out yet, for the request page.
//
// Every link in a message goes to {base_url}/requests/{id}, a page that only shows the request:
// link unfurlers and mail scanners fetch every URL, so no link may change anything. Approving
// is a POST from a signed-in session.
package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Channel is how a message travels.
type Channel string

// The channels.
const (
	Email Channel = "email"
	Slack Channel = "slack"
)

// SlackRecipient is the recipient of every Slack message: the configured webhook's channel.
const SlackRecipient = "webhook"

// Retry schedule: a failed message is tried again after 30s, 1m, 2m, … up to 1h between
// attempts, and is given up after MaxAttempts. A row that was given up stays in the outbox, and
// Failures keeps showing it.
const (
	MaxAttempts  = 10
	firstBackoff = 30 * time.Second
	maxBackoff   = time.Hour
)

// Backoff is the wait before the next attempt after a message has failed attempts times.
func Backoff(attempts int) time.Duration {
	if attempts < 1 {
		return 0
	}
	d := firstBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= maxBackoff {
			return maxBackoff
		}
	}
	return d
}

// Message is one outbox row: one message to one recipient on one channel.
type Message struct {
	bun.BaseModel `bun:"table:outbox"`

	ID int64 `bun:"id,pk,autoincrement"`
	// RequestID is the request the message is about; 0 for none.
	RequestID int64   `bun:"request_id,nullzero"`
	Event     Event   `bun:"event"`
	Channel   Channel `bun:"channel"`
	// Recipient is an email address, or SlackRecipient.
	Recipient string `bun:"recipient"`
	Subject   string `bun:"subject"`
	BodyText  string `bun:"body_text"`
	BodyHTML  string `bun:"body_html"`
	// Payload is the channel's own document; for Slack, the JSON body that is posted.
	Payload       json.RawMessage `bun:"payload,type:jsonb,nullzero"`
	Attempts      int             `bun:"attempts"`
	NextAttemptAt time.Time       `bun:"next_attempt_at"`
	LastError     string          `bun:"last_error"`
	SentAt        time.Time       `bun:"sent_at,nullzero"`
	CreatedAt     time.Time       `bun:"created_at"`
}

// Enqueue writes m to the outbox, due now, and returns it as stored. Given a bun.Tx it writes
// inside that transaction: the message exists only if the caller commits.
func Enqueue(ctx context.Context, db bun.IDB, m Message) (_ Message, err error) {
	defer pg.Wrap(&err, "notify.Enqueue(%s %s)", m.Channel, m.Event)
	if m.Channel != Email && m.Channel != Slack {
		return Message{}, fmt.Errorf("%w: unknown channel %q", pg.ErrInvalid, m.Channel)
	}
	if strings.TrimSpace(m.Recipient) == "" {
		return Message{}, fmt.Errorf("%w: a message needs a recipient", pg.ErrInvalid)
	}
	if m.Channel == Slack && !json.Valid(m.Payload) {
		return Message{}, fmt.Errorf("%w: a Slack message needs a JSON payload", pg.ErrInvalid)
	}
	var payload any
	if len(m.Payload) > 0 {
		payload = string(m.Payload)
	}
	err = db.NewRaw(`INSERT INTO outbox (request_id, event, channel, recipient, subject, body_text, body_html, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?::jsonb) RETURNING *`,
		nullID(m.RequestID), m.Event, m.Channel, m.Recipient, m.Subject, m.BodyText, m.BodyHTML, payload).
		Scan(ctx, &m)
	return m, pg.Interpret(err)
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Sender delivers one message on its channel. An error means the message was not delivered
// and will be retried; its text is stored and shown on the request page, so it must not carry
// secrets (webhook URLs, passwords).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Channels routes each message to the sender of its channel. A nil sender means the channel is
// not configured; its messages fail (and are retried) rather than vanish.
type Channels struct {
	Email Sender
	Slack Sender
}

// Send implements Sender.
func (c Channels) Send(ctx context.Context, m Message) error {
	var s Sender
	switch m.Channel {
	case Email:
		s = c.Email
	case Slack:
		s = c.Slack
	}
	if s == nil {
		return fmt.Errorf("the %s channel is not configured (notify.%s)", m.Channel, m.Channel)
	}
	return s.Send(ctx, m)
}

// Stats is what one Deliver round did.
type Stats struct {
	Sent int
	// Failed are the messages that failed in this round, with their new schedule.
	Failed []Failure
}

// deliverBatch bounds one Deliver round, so that a long backlog does not starve shutdown.
const deliverBatch = 100

// Deliver sends the messages that are due, one transaction per message: the row is picked with
// FOR UPDATE SKIP LOCKED and stays locked while it is sent, so several replicas may deliver at
// once and none sends a row another is sending. A success sets sent_at; a failure increments
// attempts, stores the error and moves next_attempt_at by Backoff (database time), so the row is
// not tried again in the same round. Rows with MaxAttempts attempts are no longer picked.
//
// A message can still go out twice if the process dies between the send and the commit; mail
// and Slack have no way to make a send idempotent. Deliver returns early, without error, when
// ctx is done.
func Deliver(ctx context.Context, db bun.IDB, s Sender) (st Stats, err error) {
	defer pg.Wrap(&err, "notify.Deliver")
	for range deliverBatch {
		if ctx.Err() != nil {
			return st, nil
		}
		var (
			picked bool
			failed *Failure
		)
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			picked, failed = false, nil
			var m Message
			err := tx.NewRaw(`SELECT * FROM outbox
				WHERE sent_at IS NULL AND attempts < ? AND next_attempt_at <= now()
				ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, MaxAttempts).Scan(ctx, &m)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return pg.Interpret(err)
			}
			picked = true
			if sendErr := s.Send(ctx, m); sendErr != nil {
				if ctx.Err() != nil {
					return ctx.Err() // shutting down: leave the row as it was
				}
				f := Failure{ID: m.ID, Event: m.Event, Channel: m.Channel, Recipient: m.Recipient}
				err := tx.NewRaw(`UPDATE outbox SET attempts = attempts + 1, last_error = ?,
						next_attempt_at = now() + ? * interval '1 second'
					WHERE id = ? RETURNING attempts, last_error, next_attempt_at`,
					errorText(sendErr), int64(Backoff(m.Attempts+1)/time.Second), m.ID).
					Scan(ctx, &f.Attempts, &f.LastError, &f.NextAttemptAt)
				f.GaveUp = f.Attempts >= MaxAttempts
				failed = &f
				return pg.Interpret(err)
			}
			_, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = '', sent_at = now() WHERE id = ?`, m.ID)
			return pg.Interpret(err)
		})
		switch {
		case err != nil && ctx.Err() != nil:
			return st, nil
		case err != nil:
			return st, err
		case !picked:
			return st, nil
		case failed != nil:
			st.Failed = append(st.Failed, *failed)
		default:
			st.Sent++
		}
	}
	return st, nil
}

// maxErrorText bounds the stored error.
const maxErrorText = 1000

func errorText(err error) string {
	s := strings.ToValidUTF8(strings.ReplaceAll(err.Error(), "\x00", ""), "?")
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// RunDeliverer calls Deliver now and then every interval until ctx is done, logging each failed
// message. Several replicas may run it. Errors are logged and retried at the next tick; it
// returns nil when ctx is done. A nil logger means slog.Default().
func RunDeliverer(ctx context.Context, db *bun.DB, s Sender, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("notify.RunDeliverer: interval must be positive")
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		st, err := Deliver(ctx, db, s)
		if err != nil && ctx.Err() == nil {
			logger.Error("notification delivery failed", "err", err)
		}
		for _, f := range st.Failed {
			logger.Warn("notification not delivered", "outbox_id", f.ID, "channel", string(f.Channel),
				"recipient", f.Recipient, "attempts", f.Attempts, "gave_up", f.GaveUp,
				"next_attempt_at", f.NextAttemptAt, "err", f.LastError)
		}
		if st.Sent > 0 {
			logger.Info("notifications sent", "count", st.Sent)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Failure is a message that has not been delivered and has failed at least once.
type Failure struct {
	ID        int64
	Event     Event
	Channel   Channel
	Recipient string
	Attempts  int
	LastError string
	// NextAttemptAt is when it will be tried again, unless GaveUp.
	NextAttemptAt time.Time
	// GaveUp is true after MaxAttempts: the message will not be tried again.
	GaveUp bool
}

// Failures returns the request's undelivered messages that have failed at least once, oldest
// first, so the request page can say "email to x failed: …, retrying at …".
func Failures(ctx context.Context, db bun.IDB, requestID int64) (fs []Failure, err error) {
	defer pg.Wrap(&err, "notify.Failures(%d)", requestID)
	rows, err := db.QueryContext(ctx, `SELECT id, event, channel, recipient, attempts, last_error, next_attempt_at
		FROM outbox WHERE request_id = ? AND sent_at IS NULL AND attempts > 0 ORDER BY id`, requestID)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer rows.Close()
	for rows.Next() {
		var f Failure
		if err := rows.Scan(&f.ID, &f.Event, &f.Channel, &f.Recipient, &f.Attempts, &f.LastError, &f.NextAttemptAt); err != nil {
			return nil, pg.Interpret(err)
		}
		f.GaveUp = f.Attempts >= MaxAttempts
		fs = append(fs, f)
	}
	return fs, pg.Interpret(rows.Err())
}

// Messages returns every message about a request, oldest first, sent or not.
func Messages(ctx context.Context, db bun.IDB, requestID int64) (ms []Message, err error) {
	defer pg.Wrap(&err, "notify.Messages(%d)", requestID)
	err = db.NewSelect().Model(&ms).Where("request_id = ?", requestID).Order("id").Scan(ctx)
	return ms, pg.Interpret(err)
}

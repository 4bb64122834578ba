package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/tombstone-console/tombstone/internal/config"
)

// NewSender returns the senders for the configured channels; channels that are off stay nil.
func NewSender(cfg config.Notify) (Channels, error) {
	var c Channels
	if cfg.Email != nil {
		s, err := NewSMTP(cfg.Email)
		if err != nil {
			return Channels{}, err
		}
		c.Email = s
	}
	if cfg.Slack != nil {
		c.Slack = NewSlack(cfg.Slack)
	}
	return c, nil
}

// SMTP sends email, each message as multipart/alternative text and HTML, over a connection of
// its own.
//
// The URL is smtp://[user:password@]host[:port] (port 25 by default; STARTTLS is used when the
// server offers it) or smtps://[user:password@]host[:port] (implicit TLS, port 465 by default).
// With a user, the client authenticates with the strongest mechanism the server offers, and
// never sends a cleartext password (PLAIN, LOGIN) over an unencrypted connection.
type SMTP struct {
	host    string
	from    string
	options []mail.Option
}

// smtpTimeout bounds connecting and each SMTP command.
const smtpTimeout = 30 * time.Second

// NewSMTP parses the channel's URL. Its errors never include the password.
func NewSMTP(cfg *config.Email) (*SMTP, error) {
	u, err := url.Parse(cfg.SMTP)
	if err != nil {
		return nil, fmt.Errorf("notify.email.smtp: not a URL")
	}
	s := &SMTP{host: u.Hostname(), from: cfg.From, options: []mail.Option{mail.WithTimeout(smtpTimeout)}}
	if s.host == "" {
		return nil, fmt.Errorf("notify.email.smtp: the URL has no host")
	}
	port := 0
	switch u.Scheme {
	case "smtp":
		port = mail.DefaultPort
		s.options = append(s.options, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case "smtps":
		port = mail.DefaultPortSSL
		s.options = append(s.options, mail.WithSSL())
	default:
		return nil, fmt.Errorf("notify.email.smtp: must be a smtp or smtps URL")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("notify.email.smtp: bad port %q", p)
		}
	}
	s.options = append(s.options, mail.WithPort(port))
	if u.User != nil && u.User.Username() != "" {
		password, _ := u.User.Password()
		s.options = append(s.options, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(u.User.Username()), mail.WithPassword(password))
	}
	if _, err := mail.NewClient(s.host, s.options...); err != nil {
		return nil, fmt.Errorf("notify.email.smtp: %w", err)
	}
	if err := mail.NewMsg().From(cfg.From); err != nil {
		return nil, fmt.Errorf("notify.email.from: %w", err)
	}
	return s, nil
}

// Send implements Sender for email messages.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := mail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(m.Recipient); err != nil {
		return fmt.Errorf("recipient %q: %w", m.Recipient, err)
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	// RFC 3834: out-of-office responders must not answer.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, m.BodyText)
	if m.BodyHTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.BodyHTML)
	}
	c, err := mail.NewClient(s.host, s.options...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("email to %s via %s: %w", m.Recipient, s.host, err)
	}
	return nil
}

// SlackWebhook posts messages to a Slack incoming webhook.
type SlackWebhook struct {
	webhook string
	client  *http.Client
}

// slackTimeout bounds one post, including reading the answer.
const slackTimeout = 10 * time.Second

// NewSlack returns a sender for the channel's webhook.
func NewSlack(cfg *config.Slack) *SlackWebhook {
	return &SlackWebhook{webhook: cfg.Webhook, client: &http.Client{Timeout: slackTimeout}}
}

// Send implements Sender for Slack messages: it posts the payload as JSON. Any answer but 2xx
// is a failure. The webhook URL is a secret, so errors name only its host.
func (s *SlackWebhook) Send(ctx context.Context, m Message) error {
	host := "the webhook"
	if u, err := url.Parse(s.webhook); err == nil && u.Host != "" {
		host = u.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.webhook, bytes.NewReader(m.Payload))
	if err != nil {
		return fmt.Errorf("the Slack webhook is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL
		}
		return fmt.Errorf("post to Slack (%s): %w", host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		detail := strings.TrimSpace(string(body))
		if detail != "" {
			detail = ": " + detail
		}
		return fmt.Errorf("post to Slack (%s): %s%s", host, resp.Status, detail)
	}
	return nil
}

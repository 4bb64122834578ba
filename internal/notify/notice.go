package notify

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/preview"
)

// Event is what a notice announces.
type Event string

// The events. Approvers hear of Awaiting; the requester hears of everything else.
const (
	Awaiting Event = "awaiting" // a new request needs approval
	Approved Event = "approved"
	Rejected Event = "rejected"
	Done     Event = "done"
	Failed   Event = "failed" // failed, or stopped part-way across targets
	Drifted  Event = "drifted"
)

// Notice is what a message says about a request. It is a plain value, so that callers build it
// from their own types.
type Notice struct {
	RequestID int64
	// Restore is true for a restore request (undoing a deletion).
	Restore     bool
	Kind        string
	Target      string
	RootKey     string
	RootLabel   string
	RequesterID int64
	Requester   string
	Reason      string
	TicketURL   string
	Totals      preview.Totals
	// ApprovalsRequired is the number of approvers the request needs.
	ApprovalsRequired int
	ExpiresAt         time.Time
	// Approvers are the names of those who approved (Approved).
	Approvers []string
	// DecidedBy and DecisionReason say who rejected the request and why (Rejected).
	DecidedBy      string
	DecisionReason string
	// State is the request's final state and Error its failure (Done, Failed, Drifted).
	State string
	Error string
}

// Notifier turns events into outbox rows for the configured channels.
type Notifier struct {
	// BaseURL is the console's public address; links go to BaseURL/requests/{id}.
	BaseURL string
	// Email and Slack are the channels; nil means off.
	Email *config.Email
	Slack *config.Slack
}

// NewNotifier returns the notifier cfg describes.
func NewNotifier(cfg *config.Config) *Notifier {
	return &Notifier{BaseURL: cfg.BaseURL, Email: cfg.Notify.Email, Slack: cfg.Notify.Slack}
}

// Link is the request page's address. Opening it changes nothing.
func (n *Notifier) Link(requestID int64) string {
	return strings.TrimRight(n.BaseURL, "/") + "/requests/" + strconv.FormatInt(requestID, 10)
}

// Notify enqueues the messages for event e about a request, inside the caller's transaction
// (give it the bun.Tx that makes the state change).
//
// Awaiting goes by email to notify.email.to and to every enabled user with the approver role
// who has an email address, except the requester, and once to Slack. Every other event goes by
// email to the requester, when they have an address. A nil Notifier, or one with no channels,
// enqueues nothing.
func (n *Notifier) Notify(ctx context.Context, db bun.IDB, e Event, about Notice) (err error) {
	if n == nil {
		return nil
	}
	defer pg.Wrap(&err, "notify.Notify(%s, request %d)", e, about.RequestID)
	c, err := n.compose(e, about)
	if err != nil {
		return err
	}
	var to []string
	if n.Email != nil {
		if to, err = n.emailRecipients(ctx, db, e, about); err != nil {
			return err
		}
	}
	for _, addr := range to {
		if _, err := Enqueue(ctx, db, Message{
			RequestID: about.RequestID, Event: e, Channel: Email, Recipient: addr,
			Subject: c.subject, BodyText: c.text, BodyHTML: c.html,
		}); err != nil {
			return err
		}
	}
	if n.Slack != nil && e == Awaiting {
		if _, err := Enqueue(ctx, db, Message{
			RequestID: about.RequestID, Event: e, Channel: Slack, Recipient: SlackRecipient,
			Subject: c.subject, BodyText: c.text, Payload: c.slack,
		}); err != nil {
			return err
		}
	}
	return nil
}

// emailRecipients lists the addresses for e, each once (compared without case).
func (n *Notifier) emailRecipients(ctx context.Context, db bun.IDB, e Event, about Notice) ([]string, error) {
	var found []string
	if e == Awaiting {
		found = append(found, n.Email.To...)
		var approvers []string
		err := db.NewRaw(`SELECT email FROM users
			WHERE role = 'approver' AND disabled_at IS NULL AND email <> '' AND id <> ?
			ORDER BY id`, about.RequesterID).Scan(ctx, &approvers)
		if err != nil {
			return nil, pg.Interpret(err)
		}
		found = append(found, approvers...)
	} else {
		var emails []string
		err := db.NewRaw(`SELECT email FROM users WHERE id = ? AND email <> ''`, about.RequesterID).Scan(ctx, &emails)
		if err != nil {
			return nil, pg.Interpret(err)
		}
		found = append(found, emails...)
	}
	var out []string
	seen := map[string]bool{}
	for _, a := range found {
		a = strings.TrimSpace(a)
		if a == "" || seen[strings.ToLower(a)] {
			continue
		}
		seen[strings.ToLower(a)] = true
		out = append(out, a)
	}
	return slices.Clip(out), nil
}

// verb is what the request does to its root.
func (a Notice) verb() string {
	if a.Restore {
		return "restore"
	}
	return "delete"
}

// what names the root: `tenant "Acme (acme)"`.
func (a Notice) what() string {
	label := a.RootLabel
	if label == "" {
		label = a.RootKey
	}
	return fmt.Sprintf("%s %q", a.Kind, label)
}

// rows describes the rows per action: "12 deleted, 3 tombstoned, 1 detached in 5 tables".
func (a Notice) rows() string {
	var parts []string
	for _, p := range []struct {
		n    int64
		verb string
	}{{a.Totals.Delete, "deleted"}, {a.Totals.Soft, "tombstoned"}, {a.Totals.Detach, "detached"}} {
		if p.n > 0 {
			parts = append(parts, preview.Thousands(p.n)+" "+p.verb)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "no rows changed")
	}
	s := strings.Join(parts, ", ")
	if a.Totals.Tables > 0 {
		s += " in " + preview.Thousands(int64(a.Totals.Tables)) + " table"
		if a.Totals.Tables != 1 {
			s += "s"
		}
	}
	return s
}

// thousands formats n with comma separators: 1234567 → 1,234,567.

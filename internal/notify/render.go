package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"unicode/utf8"
)

// composed is one notice rendered for every channel.
type composed struct {
	subject string
	text    string
	html    string
	slack   json.RawMessage
}

// field is one labelled line of a message.
type field struct {
	Label string
	Value string
	// URL, when set, makes Value a link (only http and https URLs are linked).
	URL string
}

// view is what every channel renders.
type view struct {
	Title    string // short: the Slack header and the HTML heading
	Headline string // one sentence
	Fields   []field
	Link     string
	LinkText string
}

const footer = "This link only opens the request page; nothing changes until a signed-in person acts there."

func (n *Notifier) compose(e Event, a Notice) (composed, error) {
	v, err := n.view(e, a)
	if err != nil {
		return composed{}, err
	}
	var c composed
	c.subject = fmt.Sprintf("[Tombstone] %s (request #%d)", v.Title, a.RequestID)
	c.text = renderText(v)
	if c.html, err = renderHTML(v); err != nil {
		return composed{}, err
	}
	if c.slack, err = renderSlack(v); err != nil {
		return composed{}, err
	}
	return c, nil
}

func (n *Notifier) view(e Event, a Notice) (view, error) {
	v := view{Link: n.Link(a.RequestID), LinkText: fmt.Sprintf("Open request #%d", a.RequestID)}
	request := fmt.Sprintf("%s %s", a.verb(), a.what())
	yours := "Your request to " + request
	switch e {
	case Awaiting:
		v.Title = "Approval needed: " + request
		v.Headline = fmt.Sprintf("%s asks to %s on target %s. It needs %s.",
			a.Requester, request, a.Target, plural(a.ApprovalsRequired, "approval", "approvals"))
		v.LinkText = fmt.Sprintf("Review request #%d", a.RequestID)
	case Approved:
		v.Title = "Approved: " + request
		v.Headline = yours + " was approved"
		if len(a.Approvers) > 0 {
			v.Headline += " by " + strings.Join(a.Approvers, ", ")
		}
		v.Headline += ". It will run shortly."
	case Rejected:
		v.Title = "Rejected: " + request
		v.Headline = yours + " was rejected"
		if a.DecidedBy != "" {
			v.Headline += " by " + a.DecidedBy
		}
		v.Headline += "."
	case Done:
		v.Title = "Done: " + request
		v.Headline = yours + " has run."
	case Failed:
		v.Title = "Failed: " + request
		v.Headline = yours + " failed. Nothing was changed."
		if a.State == "partial" {
			v.Title = "Stopped part-way: " + request
			v.Headline = yours + " stopped part-way: some targets are done. The request page shows which, and can resume it."
		}
	case Drifted:
		v.Title = "Not run, the data changed: " + request
		v.Headline = yours + " was not run: the rows it reaches changed after it was approved. Make a new request from a fresh preview."
	default:
		return view{}, fmt.Errorf("unknown event %q", e)
	}
	if e == Rejected && a.DecisionReason != "" {
		v.Fields = append(v.Fields, field{Label: "Rejection reason", Value: a.DecisionReason})
	}
	if (e == Failed || e == Drifted) && a.Error != "" {
		v.Fields = append(v.Fields, field{Label: "Error", Value: a.Error})
	}
	v.Fields = append(v.Fields,
		field{Label: "Kind", Value: a.Kind},
		field{Label: "Target", Value: a.Target},
		field{Label: "Root", Value: rootText(a)},
		field{Label: "Rows", Value: a.rows()},
		field{Label: "Requester", Value: a.Requester},
		field{Label: "Reason", Value: a.Reason},
	)
	if a.TicketURL != "" {
		f := field{Label: "Ticket", Value: a.TicketURL}
		if linkable(a.TicketURL) {
			f.URL = a.TicketURL
		}
		v.Fields = append(v.Fields, f)
	}
	if e == Awaiting && !a.ExpiresAt.IsZero() {
		v.Fields = append(v.Fields, field{Label: "Expires", Value: a.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")})
	}
	return v, nil
}

func rootText(a Notice) string {
	if a.RootLabel == "" || a.RootLabel == a.RootKey {
		return a.RootKey
	}
	return fmt.Sprintf("%s (key %s)", a.RootLabel, a.RootKey)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// linkable reports whether u may be rendered as a link: http and https only, never javascript:.
func linkable(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

func renderText(v view) string {
	var b strings.Builder
	b.WriteString(v.Headline + "\n\n")
	width := 0
	for _, f := range v.Fields {
		width = max(width, utf8.RuneCountInString(f.Label))
	}
	for _, f := range v.Fields {
		pad := strings.Repeat(" ", width-utf8.RuneCountInString(f.Label))
		value := strings.ReplaceAll(f.Value, "\n", "\n"+strings.Repeat(" ", width+2))
		b.WriteString(f.Label + ":" + pad + " " + value + "\n")
	}
	b.WriteString("\n" + v.LinkText + ": " + v.Link + "\n\n" + footer + "\n")
	return b.String()
}

var htmlTemplate = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 14px; color: #1f2328;">
<h2 style="font-size: 16px;">{{.Title}}</h2>
<p>{{.Headline}}</p>
<table cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
{{- range .Fields}}
<tr><th align="left" valign="top" style="color: #57606a; font-weight: normal;">{{.Label}}</th><td style="white-space: pre-wrap;">{{if .URL}}<a href="{{.URL}}">{{.Value}}</a>{{else}}{{.Value}}{{end}}</td></tr>
{{- end}}
</table>
<p><a href="{{.Link}}" style="font-weight: bold;">{{.LinkText}}</a></p>
<p style="color: #57606a; font-size: 12px;">{{.Footer}}</p>
</body></html>
`))

func renderHTML(v view) (string, error) {
	var b bytes.Buffer
	err := htmlTemplate.Execute(&b, struct {
		view
		Footer string
	}{v, footer})
	return b.String(), err
}

// Slack limits: header text 150 characters, section text 3000, field text 2000.
const (
	slackHeaderMax = 150
	slackFieldMax  = 2000
)

// renderSlack builds the incoming-webhook body: a header, the short fields side by side, the
// long ones (reason, errors) as sections of their own, and a button that links to the page.
func renderSlack(v view) (json.RawMessage, error) {
	type text struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type element struct {
		Type string `json:"type"`
		Text text   `json:"text"`
		URL  string `json:"url"`
	}
	type block struct {
		Type     string    `json:"type"`
		Text     *text     `json:"text,omitempty"`
		Fields   []text    `json:"fields,omitempty"`
		Elements []element `json:"elements,omitempty"`
	}
	blocks := []block{
		{Type: "header", Text: &text{Type: "plain_text", Text: clip(v.Title, slackHeaderMax)}},
		{Type: "section", Text: &text{Type: "mrkdwn", Text: clip(slackEscape(v.Headline), slackFieldMax)}},
	}
	var short []text
	for _, f := range v.Fields {
		value := slackEscape(f.Value)
		if f.URL != "" {
			value = "<" + slackEscape(f.URL) + "|" + slackEscape(f.Value) + ">"
		}
		t := text{Type: "mrkdwn", Text: clip("*"+f.Label+"*\n"+value, slackFieldMax)}
		switch f.Label {
		case "Reason", "Rejection reason", "Error":
			blocks = append(blocks, block{Type: "section", Text: &t})
		default:
			short = append(short, t)
		}
	}
	// A section holds at most 10 fields.
	for len(short) > 0 {
		n := min(len(short), 10)
		blocks = append(blocks, block{Type: "section", Fields: short[:n]})
		short = short[n:]
	}
	blocks = append(blocks, block{Type: "actions", Elements: []element{{
		Type: "button", Text: text{Type: "plain_text", Text: v.LinkText}, URL: v.Link,
	}}})
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Text   string  `json:"text"`
		Blocks []block `json:"blocks"`
	}{Text: slackEscape(v.Title) + ": " + v.Link, Blocks: blocks})
	return json.RawMessage(bytes.TrimSpace(b.Bytes())), err
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to, so that user text
// can neither form links nor mentions.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clip shortens s to at most n characters, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

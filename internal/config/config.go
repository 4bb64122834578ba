// Package config loads tombstone.yaml: the console's settings and the deletion policy.
//
// Loading expands ${NAME} (and ${NAME:-default}) from the environment, applies defaults and
// validates everything that can be checked without a database. Every error names the file, line
// and column and the key path, e.g. tombstone.yaml:14:5: kinds.tenant.root: must be delete or
// soft, got "hard". Unknown keys are errors, so that a typo never silently disables a rule.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"time"
)

// Actions a row can get.
const (
	ActionDelete = "delete"
	ActionSoft   = "soft"
	ActionDetach = "detach"
	ActionKeep   = "keep"
	ActionBlock  = "block"
)

// Rule values.
const (
	Follow = "follow" // under_delete: do what the FK's ON DELETE says
	Auto   = "auto"   // under_soft: soft where a tombstone column exists, else keep
)

// Execution modes of a kind.
const (
	ExecSingle  = "single"
	ExecBatched = "batched"
)

// Config is the whole file. It is a value: nothing keeps it in a global.
type Config struct {
	// Path is the file it was loaded from.
	Path string `json:"-"`

	Database string `json:"-"` // console database URL
	BaseURL  string `json:"-"` // for links in email and Slack
	Listen   string `json:"-"` // address console serve listens on

	Approvals Approvals `json:"-"`
	Notify    Notify    `json:"-"`
	Sessions  Sessions  `json:"-"`
	Audit     Audit     `json:"-"`
	OIDC      *OIDC     `json:"-"`

	Targets map[string]*Target `json:"-"`

	// The policy: everything below is covered by PolicyHash.
	Kinds    map[string]*Kind      `json:"kinds"`
	Defaults Defaults              `json:"defaults"`
	Tables   map[string]*TableRule `json:"tables"`
	Edges    map[string]*EdgeRule  `json:"edges"`

	// Positions maps key paths (kinds.tenant.also[0].table) to where they were written, so that
	// checks against the live schema can point at the line.
	Positions map[string]Pos `json:"-"`
}

// Approvals configures the two-person rule.
type Approvals struct {
	Required     int            // approvers besides the requester, >= 1
	ExpiresAfter time.Duration  // pending requests expire after this
	StepUp       time.Duration  // an approver must have signed in within this window
	Escalate     []EscalateRule // raise Required for large deletions
}

// EscalateRule raises the approvals needed when a request reaches more than RowsOver rows or
// TablesOver tables (0 means that bound is not used).
type EscalateRule struct {
	RowsOver   int64
	TablesOver int
	Required   int
}

// Notify configures where approval messages go. Nil channels are off.
type Notify struct {
	Email *Email
	Slack *Slack
}

// Email is an SMTP channel.
type Email struct {
	SMTP string // smtp://user:pass@host:port
	From string
	To   []string
}

// Slack is an incoming webhook.
type Slack struct {
	Webhook string
}

// Sessions configures signed-in sessions.
type Sessions struct {
	IdleTimeout     time.Duration
	AbsoluteTimeout time.Duration
	// Secret keys the pre-authentication cookie (signing and encryption); at least 32 bytes.
	// When empty a random one is made at start, so such cookies do not survive a restart.
	Secret string
}

// Audit configures the audit log.
type Audit struct {
	// SigningKey is a base64 Ed25519 seed or private key for signed checkpoints; optional.
	SigningKey         string
	CheckpointInterval time.Duration
}

// OIDC configures optional single sign-on.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string
}

// Target is one application database Tombstone deletes from.
type Target struct {
	Name             string
	DSN              string
	LockTimeout      time.Duration
	StatementTimeout time.Duration
}

// Kind is a kind of root operators search for.
type Kind struct {
	Name    string   `json:"name"`
	Target  string   `json:"target"`
	Table   string   `json:"table"` // "table" or "schema.table"
	Label   string   `json:"label"` // "{name} ({slug})"; empty: the first label-like column
	Search  []string `json:"search"`
	Root    string   `json:"root"` // delete | soft
	Archive Duration `json:"archive"`
	Also    []Also   `json:"also"`
	Owns    []string `json:"owns"`

	Execution       string   `json:"execution"` // single | batched
	BatchRows       int      `json:"batch_rows"`
	MaxBatchSeconds Duration `json:"max_batch_seconds"`
}

// Also is a declared link into a table that refers to the root without a foreign key, possibly
// in another target.
type Also struct {
	Target  string `json:"target"`
	Table   string `json:"table"`
	Column  string `json:"column"`
	Matches string `json:"matches,omitempty"` // root column the value equals; default: the root's primary key
}

// Defaults are the rules used when no edge or table rule applies.
type Defaults struct {
	UnderDelete string `json:"under_delete"` // follow | delete | detach | block
	UnderSoft   string `json:"under_soft"`   // auto | soft | keep | delete
}

// TableRule is a per-table rule.
type TableRule struct {
	Soft        string `json:"soft,omitempty"`         // tombstone column (deleted_at or is_deleted style)
	UnderDelete string `json:"under_delete,omitempty"` // delete | detach | block
	UnderSoft   string `json:"under_soft,omitempty"`   // soft | keep | delete
	Protect     bool   `json:"protect,omitempty"`      // reaching any row blocks the request
}

// EdgeRule is a per-edge rule; the key is "table.column" (the FK's first column) or
// "schema.table.column".
type EdgeRule struct {
	UnderDelete string `json:"under_delete,omitempty"`
	UnderSoft   string `json:"under_soft,omitempty"`
}

// Duration is a time.Duration that marshals as a string in the policy hash.
type Duration time.Duration

// MarshalJSON writes the duration as Go's string form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Pos is a place in the file.
type Pos struct {
	Line, Col int
}

// KindNames returns the kinds in a stable order (sorted by name).
func (c *Config) KindNames() []string { return sortedKeys(c.Kinds) }

// TargetNames returns the targets sorted by name.
func (c *Config) TargetNames() []string { return sortedKeys(c.Targets) }

// Where returns "file:line:col" for a key path, or just the file when it is unknown.
func (c *Config) Where(path string) string {
	if p, ok := c.Positions[path]; ok {
		return posString(c.Path, p)
	}
	return c.Path
}

// PolicyHash is the SHA-256 of the canonical JSON of the policy part of the file (kinds,
// defaults, tables, edges). It changes exactly when the rules do, not when secrets or
// settings change.
func (c *Config) PolicyHash() string {
	b, err := json.Marshal(struct {
		Kinds    map[string]*Kind      `json:"kinds"`
		Defaults Defaults              `json:"defaults"`
		Tables   map[string]*TableRule `json:"tables"`
		Edges    map[string]*EdgeRule  `json:"edges"`
	}{c.Kinds, c.Defaults, c.Tables, c.Edges}) // encoding/json sorts map keys
	if err != nil {
		panic(err) // only plain values
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var (
	rootActions        = []string{ActionDelete, ActionSoft}
	underDeleteDefault = []string{Follow, ActionDelete, ActionDetach, ActionBlock}
	underDeleteRule    = []string{ActionDelete, ActionDetach, ActionBlock}
	underSoftDefault   = []string{Auto, ActionSoft, ActionKeep, ActionDelete}
	underSoftRule      = []string{ActionSoft, ActionKeep, ActionDelete}
	executionModes     = []string{ExecSingle, ExecBatched}
)

func oneOf(v string, allowed []string) bool { return slices.Contains(allowed, v) }

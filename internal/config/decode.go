package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults applied when the file leaves a setting out.
const (
	DefaultListen           = "127.0.0.1:8080"
	DefaultRequired         = 1
	DefaultExpiresAfter     = 72 * time.Hour
	DefaultStepUp           = 15 * time.Minute
	DefaultIdleTimeout      = 30 * time.Minute
	DefaultAbsoluteTimeout  = 12 * time.Hour
	DefaultLockTimeout      = 5 * time.Second
	DefaultStatementTimeout = 10 * time.Minute
	DefaultBatchRows        = 10000
	DefaultMaxBatchTime     = 5 * time.Second
	DefaultCheckpoint       = time.Hour
)

func (d *decoder) config(n *yaml.Node, c *Config) {
	c.Listen = DefaultListen
	c.Approvals = Approvals{Required: DefaultRequired, ExpiresAfter: DefaultExpiresAfter, StepUp: DefaultStepUp}
	c.Sessions = Sessions{IdleTimeout: DefaultIdleTimeout, AbsoluteTimeout: DefaultAbsoluteTimeout}
	c.Audit = Audit{CheckpointInterval: DefaultCheckpoint}
	c.Defaults = Defaults{UnderDelete: Follow, UnderSoft: Auto}
	c.Targets = map[string]*Target{}
	c.Kinds = map[string]*Kind{}
	c.Tables = map[string]*TableRule{}
	c.Edges = map[string]*EdgeRule{}
	var haveDatabase bool

	d.fields(n, "", map[string]func(*yaml.Node, string){
		"database": func(v *yaml.Node, p string) { c.Database = d.str(v, p); haveDatabase = true },
		"base_url": func(v *yaml.Node, p string) { c.BaseURL = strings.TrimRight(d.str(v, p), "/") },
		"listen":   func(v *yaml.Node, p string) { c.Listen = d.str(v, p) },
		"approvals": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]func(*yaml.Node, string){
				"required":      func(v *yaml.Node, p string) { c.Approvals.Required = d.positive(v, p) },
				"expires_after": func(v *yaml.Node, p string) { c.Approvals.ExpiresAfter = d.positiveDuration(v, p) },
				"step_up":       func(v *yaml.Node, p string) { c.Approvals.StepUp = d.positiveDuration(v, p) },
				"escalate":      func(v *yaml.Node, p string) { c.Approvals.Escalate = d.escalate(v, p) },
			})
		},
		"notify":   func(v *yaml.Node, p string) { d.notify(v, p, &c.Notify) },
		"sessions": func(v *yaml.Node, p string) { d.sessions(v, p, &c.Sessions) },
		"audit": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]func(*yaml.Node, string){
				"signing_key":         func(v *yaml.Node, p string) { c.Audit.SigningKey = d.str(v, p) },
				"checkpoint_interval": func(v *yaml.Node, p string) { c.Audit.CheckpointInterval = d.positiveDuration(v, p) },
			})
		},
		"oidc": func(v *yaml.Node, p string) { c.OIDC = d.oidc(v, p) },
		"targets": func(v *yaml.Node, p string) {
			d.entries(v, p, func(name string, k, v *yaml.Node, p string) {
				c.Targets[name] = d.target(name, k, v, p)
			})
		},
		"kinds": func(v *yaml.Node, p string) {
			d.entries(v, p, func(name string, k, v *yaml.Node, p string) {
				c.Kinds[name] = d.kind(name, k, v, p)
			})
		},
		"defaults": func(v *yaml.Node, p string) {
			d.fields(v, p, map[string]func(*yaml.Node, string){
				"under_delete": func(v *yaml.Node, p string) { c.Defaults.UnderDelete = d.choice(v, p, underDeleteDefault) },
				"under_soft":   func(v *yaml.Node, p string) { c.Defaults.UnderSoft = d.choice(v, p, underSoftDefault) },
			})
		},
		"tables": func(v *yaml.Node, p string) {
			d.entries(v, p, func(name string, k, v *yaml.Node, p string) {
				r := &TableRule{}
				d.fields(v, p, map[string]func(*yaml.Node, string){
					"soft":         func(v *yaml.Node, p string) { r.Soft = d.str(v, p) },
					"under_delete": func(v *yaml.Node, p string) { r.UnderDelete = d.choice(v, p, underDeleteRule) },
					"under_soft":   func(v *yaml.Node, p string) { r.UnderSoft = d.choice(v, p, underSoftRule) },
					"protect":      func(v *yaml.Node, p string) { r.Protect = d.boolean(v, p) },
				})
				c.Tables[name] = r
			})
		},
		"edges": func(v *yaml.Node, p string) {
			d.entries(v, p, func(name string, k, v *yaml.Node, p string) {
				if !edgeKeyRE.MatchString(name) {
					d.errorf(k, p, "an edge is named table.column (the foreign key's column, or its columns joined by commas), optionally schema.table.column")
				}
				r := &EdgeRule{}
				d.fields(v, p, map[string]func(*yaml.Node, string){
					"under_delete": func(v *yaml.Node, p string) { r.UnderDelete = d.choice(v, p, underDeleteRule) },
					"under_soft":   func(v *yaml.Node, p string) { r.UnderSoft = d.choice(v, p, underSoftRule) },
				})
				c.Edges[name] = r
			})
		},
	})
	if !haveDatabase && len(d.errs) == 0 {
		d.errorf(n, "database", "is required: the console database URL, e.g. ${TOMBSTONE_DATABASE_URL}")
	}
}

var edgeKeyRE = regexp.MustCompile(`^[^.]+(\.[^.]+)?\.[^.]+$`)

func (d *decoder) positive(n *yaml.Node, path string) int {
	v := d.integer(n, path)
	if v < 1 {
		d.errorf(n, path, "must be at least 1, got %d", v)
	}
	return int(v)
}

func (d *decoder) positiveDuration(n *yaml.Node, path string) time.Duration {
	v := d.duration(n, path)
	if v <= 0 && len(d.errs) == 0 {
		d.errorf(n, path, "must be longer than zero")
	}
	return v
}

func (d *decoder) escalate(n *yaml.Node, path string) []EscalateRule {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list of {rows_over: N, required: M}, got %s", describe(n))
		return nil
	}
	var out []EscalateRule
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		var r EscalateRule
		d.fields(item, p, map[string]func(*yaml.Node, string){
			"rows_over":   func(v *yaml.Node, p string) { r.RowsOver = d.integer(v, p) },
			"tables_over": func(v *yaml.Node, p string) { r.TablesOver = int(d.integer(v, p)) },
			"required":    func(v *yaml.Node, p string) { r.Required = d.positive(v, p) },
		})
		if r.Required == 0 && item.Kind == yaml.MappingNode {
			d.errorf(item, p, "needs required: N")
		}
		if r.RowsOver <= 0 && r.TablesOver <= 0 && item.Kind == yaml.MappingNode {
			d.errorf(item, p, "needs rows_over or tables_over greater than zero")
		}
		out = append(out, r)
	}
	return out
}

func (d *decoder) notify(n *yaml.Node, path string, nt *Notify) {
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"email": func(v *yaml.Node, p string) {
			e := &Email{}
			d.fields(v, p, map[string]func(*yaml.Node, string){
				"smtp": func(v *yaml.Node, p string) {
					e.SMTP = d.str(v, p)
					if e.SMTP != "" {
						if err := validURL(e.SMTP, "smtp", "smtps"); err != nil {
							d.errorf(v, p, "%v", err)
						}
					}
				},
				"from": func(v *yaml.Node, p string) { e.From = d.str(v, p) },
				"to":   func(v *yaml.Node, p string) { e.To = d.strList(v, p) },
			})
			if e.SMTP == "" || e.From == "" {
				d.errorf(v, p, "needs smtp and from")
			}
			nt.Email = e
		},
		"slack": func(v *yaml.Node, p string) {
			s := &Slack{}
			d.fields(v, p, map[string]func(*yaml.Node, string){
				"webhook": func(v *yaml.Node, p string) {
					s.Webhook = d.str(v, p)
					if err := validURL(s.Webhook, "https", "http"); err != nil {
						d.errorf(v, p, "%v", err)
					}
				},
			})
			nt.Slack = s
		},
	})
}

func (d *decoder) sessions(n *yaml.Node, path string, s *Sessions) {
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"idle_timeout":     func(v *yaml.Node, p string) { s.IdleTimeout = d.positiveDuration(v, p) },
		"absolute_timeout": func(v *yaml.Node, p string) { s.AbsoluteTimeout = d.positiveDuration(v, p) },
		"secret": func(v *yaml.Node, p string) {
			s.Secret = d.str(v, p)
			if len(s.Secret) < 32 {
				d.errorf(v, p, "must be at least 32 characters")
			}
		},
	})
}

func (d *decoder) oidc(n *yaml.Node, path string) *OIDC {
	o := &OIDC{}
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"issuer":        func(v *yaml.Node, p string) { o.Issuer = d.str(v, p) },
		"client_id":     func(v *yaml.Node, p string) { o.ClientID = d.str(v, p) },
		"client_secret": func(v *yaml.Node, p string) { o.ClientSecret = d.str(v, p) },
		"redirect_url":  func(v *yaml.Node, p string) { o.RedirectURL = d.str(v, p) },
	})
	if o.Issuer == "" || o.ClientID == "" {
		d.errorf(n, path, "needs issuer and client_id")
	}
	return o
}

func (d *decoder) target(name string, k, n *yaml.Node, path string) *Target {
	t := &Target{Name: name, LockTimeout: DefaultLockTimeout, StatementTimeout: DefaultStatementTimeout}
	if !nameRE.MatchString(name) {
		d.errorf(k, path, "a target name uses letters, digits, - and _ only")
	}
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"dsn": func(v *yaml.Node, p string) {
			t.DSN = d.str(v, p)
		},
		"lock_timeout":      func(v *yaml.Node, p string) { t.LockTimeout = d.positiveDuration(v, p) },
		"statement_timeout": func(v *yaml.Node, p string) { t.StatementTimeout = d.positiveDuration(v, p) },
	})
	if t.DSN == "" && n.Kind == yaml.MappingNode && !d.hasErrorAt(path+".dsn") {
		d.errorf(n, path, "needs dsn: the target database URL")
	}
	return t
}

func (d *decoder) hasErrorAt(path string) bool {
	for _, e := range d.errs {
		if e.Path == path {
			return true
		}
	}
	return false
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (d *decoder) kind(name string, k, n *yaml.Node, path string) *Kind {
	kd := &Kind{Name: name, Root: ActionDelete, Execution: ExecSingle}
	if !nameRE.MatchString(name) {
		d.errorf(k, path, "a kind name uses letters, digits, - and _ only")
	}
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"target":  func(v *yaml.Node, p string) { kd.Target = d.str(v, p) },
		"table":   func(v *yaml.Node, p string) { kd.Table = d.str(v, p) },
		"label":   func(v *yaml.Node, p string) { kd.Label = d.str(v, p) },
		"search":  func(v *yaml.Node, p string) { kd.Search = d.strList(v, p) },
		"root":    func(v *yaml.Node, p string) { kd.Root = d.choice(v, p, rootActions) },
		"archive": func(v *yaml.Node, p string) { kd.Archive = Duration(d.positiveDuration(v, p)) },
		"owns":    func(v *yaml.Node, p string) { kd.Owns = d.strList(v, p) },
		"also": func(v *yaml.Node, p string) {
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, p, "must be a list of {target, table, column}, got %s", describe(v))
				return
			}
			for i, item := range v.Content {
				ip := fmt.Sprintf("%s[%d]", p, i)
				d.positions[ip] = Pos{item.Line, item.Column}
				var a Also
				d.fields(item, ip, map[string]func(*yaml.Node, string){
					"target":  func(v *yaml.Node, p string) { a.Target = d.str(v, p) },
					"table":   func(v *yaml.Node, p string) { a.Table = d.str(v, p) },
					"column":  func(v *yaml.Node, p string) { a.Column = d.str(v, p) },
					"matches": func(v *yaml.Node, p string) { a.Matches = d.str(v, p) },
				})
				if item.Kind == yaml.MappingNode && (a.Table == "" || a.Column == "") {
					d.errorf(item, ip, "needs table and column")
				}
				kd.Also = append(kd.Also, a)
			}
		},
		"execution":         func(v *yaml.Node, p string) { kd.Execution = d.choice(v, p, executionModes) },
		"batch_rows":        func(v *yaml.Node, p string) { kd.BatchRows = d.positive(v, p) },
		"max_batch_seconds": func(v *yaml.Node, p string) { kd.MaxBatchSeconds = Duration(d.positiveDuration(v, p)) },
	})
	if kd.Table == "" && n.Kind == yaml.MappingNode {
		d.errorf(n, path, "needs table")
	}
	if kd.Execution == ExecBatched {
		if kd.BatchRows == 0 {
			kd.BatchRows = DefaultBatchRows
		}
		if kd.MaxBatchSeconds == 0 {
			kd.MaxBatchSeconds = Duration(DefaultMaxBatchTime)
		}
	}
	return kd
}

// validate checks references between sections, once each section decoded cleanly.
func (d *decoder) validate(c *Config) {
	at := func(path string) *yaml.Node {
		p := c.Positions[path]
		return &yaml.Node{Line: p.Line, Column: p.Col}
	}
	if c.Database != "" {
		if err := validURL(c.Database, "postgres", "postgresql"); err != nil {
			d.errorf(at("database"), "database", "%v", err)
		}
	}
	for _, name := range c.TargetNames() {
		t := c.Targets[name]
		if t.DSN != "" {
			if err := validURL(t.DSN, "postgres", "postgresql"); err != nil {
				d.errorf(at("targets."+name+".dsn"), "targets."+name+".dsn", "%v", err)
			}
		}
	}
	if len(c.Kinds) > 0 && len(c.Targets) == 0 {
		d.errorf(at("kinds"), "targets", "at least one target is needed for the kinds to delete from")
	}
	for _, name := range c.KindNames() {
		k := c.Kinds[name]
		p := "kinds." + name
		if k.Target == "" {
			if len(c.Targets) == 1 {
				k.Target = c.TargetNames()[0]
			} else {
				d.errorf(at(p), p+".target", "is required when there are several targets (%s)", strings.Join(c.TargetNames(), ", "))
			}
		} else if _, ok := c.Targets[k.Target]; !ok {
			d.errorf(at(p+".target"), p+".target", "unknown target %q%s (targets: %s)", k.Target, suggest(k.Target, c.TargetNames()), strings.Join(c.TargetNames(), ", "))
		}
		for i, a := range k.Also {
			ap := fmt.Sprintf("%s.also[%d]", p, i)
			if a.Target == "" {
				k.Also[i].Target = k.Target
			} else if _, ok := c.Targets[a.Target]; !ok {
				d.errorf(at(ap+".target"), ap+".target", "unknown target %q%s (targets: %s)", a.Target, suggest(a.Target, c.TargetNames()), strings.Join(c.TargetNames(), ", "))
			}
		}
		if k.Label != "" {
			if err := checkLabel(k.Label); err != nil {
				d.errorf(at(p+".label"), p+".label", "%v", err)
			}
		}
	}
	for i, r := range c.Approvals.Escalate {
		if r.Required < c.Approvals.Required {
			p := fmt.Sprintf("approvals.escalate[%d].required", i)
			d.errorf(at(p), p, "must be at least approvals.required (%d), got %d", c.Approvals.Required, r.Required)
		}
	}
	if c.Sessions.AbsoluteTimeout < c.Sessions.IdleTimeout {
		d.errorf(at("sessions.absolute_timeout"), "sessions.absolute_timeout", "must be at least sessions.idle_timeout (%s)", c.Sessions.IdleTimeout)
	}
}

var labelFieldRE = regexp.MustCompile(`\{([^{}]*)\}`)

// LabelColumns returns the column names a label template uses, in order.
func LabelColumns(label string) []string {
	var cols []string
	for _, m := range labelFieldRE.FindAllStringSubmatch(label, -1) {
		cols = append(cols, m[1])
	}
	return cols
}

func checkLabel(label string) error {
	cols := LabelColumns(label)
	if len(cols) == 0 {
		return fmt.Errorf("must name at least one column in braces, e.g. \"{name} ({slug})\"")
	}
	for _, c := range cols {
		if c == "" {
			return fmt.Errorf("has an empty {} placeholder")
		}
	}
	return nil
}

package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in the file, with its place and key path.
type Error struct {
	File string
	Pos  Pos
	Path string // kinds.tenant.root
	Msg  string
}

func (e *Error) Error() string {
	loc := posString(e.File, e.Pos)
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func posString(file string, p Pos) string {
	if p.Line == 0 {
		return file
	}
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Col)
}

// Env looks up an environment variable. os.LookupEnv fits.
type Env func(string) (string, bool)

// Load reads and validates the file at path.
func Load(path string, env Env) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config file %s does not exist (pass --config FILE or set TOMBSTONE_CONFIG)", path)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b, env)
}

// Parse validates a file's contents; path is used in messages only.
func Parse(path string, data []byte, env Env) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlSyntaxError(path, data, err)}
	}
	d := &decoder{file: path, env: env, positions: map[string]Pos{}}
	c := &Config{Path: path, Positions: d.positions}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: path, Msg: "the file is empty"}}
	}
	d.config(doc.Content[0], c)
	if len(d.errs) == 0 {
		d.validate(c)
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return c, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlSyntaxError(path string, data []byte, err error) *Error {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: path, Pos: Pos{Line: line, Col: 1}, Msg: "YAML syntax: " + m[2]}
	}
	// The YAML parser names no line for bytes it cannot read (invalid UTF-8, control
	// characters) nor for a problem on the first line; find the unreadable byte, or point at
	// line 1.
	return &Error{File: path, Pos: unreadableAt(data), Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// unreadableAt is the place of the first character YAML does not allow in a file, or 1:1.
func unreadableAt(data []byte) Pos {
	p := Pos{Line: 1, Col: 1}
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		printable := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
			r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd && (r != 0xfeff || i == 0) || r >= 0x10000 && r <= 0x10ffff
		if r == utf8.RuneError && n <= 1 || !printable {
			return p
		}
		if r == '\n' {
			p.Line, p.Col = p.Line+1, 1
		} else {
			p.Col++
		}
		i += n
	}
	return Pos{Line: 1, Col: 1}
}

type decoder struct {
	file      string
	env       Env
	errs      Errors
	positions map[string]Pos
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Pos: Pos{n.Line, n.Column}, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields walks a mapping, calling the handler of each known key and reporting unknown keys.
func (d *decoder) fields(n *yaml.Node, path string, handlers map[string]func(v *yaml.Node, path string)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.errorf(k, p, "duplicate key")
			continue
		}
		seen[k.Value] = true
		h, ok := handlers[k.Value]
		if !ok {
			d.errorf(k, p, "unknown key%s (known keys: %s)", suggest(k.Value, keysOf(handlers)), strings.Join(sortedKeys(handlers), ", "))
			continue
		}
		d.positions[p] = Pos{v.Line, v.Column}
		h(v, p)
	}
}

// entries walks a mapping whose keys are names (targets, kinds, tables, edges).
func (d *decoder) entries(n *yaml.Node, path string, each func(key string, k, v *yaml.Node, path string)) {
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return
		}
		d.errorf(n, path, "must be a mapping, got %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if seen[k.Value] {
			d.errorf(k, p, "duplicate key")
			continue
		}
		seen[k.Value] = true
		d.positions[p] = Pos{k.Line, k.Column}
		each(k.Value, k, v, p)
	}
}

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// str reads a scalar string, expanding ${NAME} and ${NAME:-default}.
func (d *decoder) str(n *yaml.Node, path string) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		if isNull(n) {
			return ""
		}
		d.errorf(n, path, "must be a string, got %s", describe(n))
		return ""
	}
	var missing []string
	out := envRE.ReplaceAllStringFunc(n.Value, func(m string) string {
		sub := envRE.FindStringSubmatch(m)
		if v, ok := d.env(sub[1]); ok && v != "" {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		missing = append(missing, sub[1])
		return ""
	})
	for _, name := range missing {
		d.errorf(n, path, "environment variable %s is not set", name)
	}
	return out
}

func (d *decoder) strList(n *yaml.Node, path string) []string {
	if isNull(n) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []string{d.str(n, path)}
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list of strings, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		out = append(out, d.str(item, fmt.Sprintf("%s[%d]", path, i)))
	}
	return out
}

func (d *decoder) choice(n *yaml.Node, path string, allowed []string) string {
	v := d.str(n, path)
	if v != "" && !oneOf(v, allowed) {
		d.errorf(n, path, "must be %s, got %q", orList(allowed), v)
	}
	return v
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s := d.str(n, path)
	if s == "" {
		return 0
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return 0
	}
	return v
}

func (d *decoder) integer(n *yaml.Node, path string) int64 {
	s := d.str(n, path)
	v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
	if err != nil {
		d.errorf(n, path, "must be a whole number, got %q", s)
	}
	return v
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	s := d.str(n, path)
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	d.errorf(n, path, "must be true or false, got %q", s)
	return false
}

// ParseDuration accepts Go durations plus days: "72h", "15m", "30d", "1d12h".
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err == nil {
			days = n
			s = s[i+1:]
		}
	}
	var rest time.Duration
	if s != "" {
		var err error
		rest, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("must be a duration such as 90s, 15m, 72h or 30d, got %q", orig)
		}
	}
	total := time.Duration(days)*24*time.Hour + rest
	if total < 0 {
		return 0, fmt.Errorf("must not be negative, got %q", orig)
	}
	return total, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if isNull(n) {
		return "nothing"
	}
	return fmt.Sprintf("%q", n.Value)
}

func orList(xs []string) string {
	if len(xs) == 1 {
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " or " + xs[len(xs)-1]
}

func keysOf[V any](m map[string]V) []string { return sortedKeys(m) }

// suggest returns ` (did you mean "x"?)` for a near miss.
func suggest(got string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dist := levenshtein(got, k); dist < bestD {
			best, bestD = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func validURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("must be a URL: %v", err)
	}
	for _, sc := range schemes {
		if u.Scheme == sc {
			return nil
		}
	}
	return fmt.Errorf("must be a %s URL, got %q", orList(schemes), redact(s))
}

// redact hides a URL's password in messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

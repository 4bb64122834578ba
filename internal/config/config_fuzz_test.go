package config_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/tombstone-console/tombstone/internal/config"
)

// fuzzEnv answers ${DB} and ${EMPTY}, so that expansion is exercised with and without values.
func fuzzEnv(name string) (string, bool) {
	switch name {
	case "DB":
		return "postgres://h/d", true
	case "EMPTY":
		return "", true
	}
	return "", false
}

// placeRE is the start of every message the loader produces: file:line:col.
var placeRE = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*:[1-9][0-9]*: `)

// FuzzParse feeds arbitrary files to the policy loader. It must never panic, and every problem
// it reports must name the file, line and column, so that an operator can find it; the only
// exception is a file with no document at all ("the file is empty").
func FuzzParse(f *testing.F) {
	f.Add([]byte(valid))
	f.Add([]byte("database: postgres://h/d\ntargets:\n  app: {dsn: postgres://h/a}\nkinds:\n  t: {table: x, root: hard}\n"))
	f.Add([]byte("database: ${NOPE}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("# only a comment\n"))
	f.Add([]byte("database: [unclosed\n"))
	f.Add([]byte("approvals: {required: -1, expires_after: 3x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data, fuzzEnv)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		if c != nil {
			t.Fatalf("Parse returned a config and an error: %v", err)
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is not a list of config.Error: %T %v", err, err)
		}
		for _, e := range es {
			msg := e.Error()
			if msg == "fuzz.yaml: the file is empty" && len(es) == 1 {
				// The one whole-file error: a file with no document has no line to point at.
				continue
			}
			if !placeRE.MatchString(msg) {
				t.Errorf("error without file:line:col: %q", msg)
			}
			if strings.TrimSpace(strings.TrimPrefix(msg, placeRE.FindString(msg))) == "" {
				t.Errorf("error without a message: %q", msg)
			}
		}
	})
}

// TestYAMLSyntaxErrorPlace covers the syntax errors the YAML parser reports without a line:
// on the first line, and unreadable bytes further down, which the loader locates itself.
func TestYAMLSyntaxErrorPlace(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"\"":              "fuzz.yaml:1:1: YAML syntax: found unexpected end of stream",
		"a: [":            "fuzz.yaml:1:1: YAML syntax: did not find expected node content",
		"a: 1\nb: \x01\n": "fuzz.yaml:2:4: YAML syntax: control characters are not allowed",
		"a: 1\nb: \xff\n": "fuzz.yaml:2:4: YAML syntax: invalid leading UTF-8 octet",
	} {
		_, err := config.Parse("fuzz.yaml", []byte(src), nil)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", src, err, want)
		}
	}
}

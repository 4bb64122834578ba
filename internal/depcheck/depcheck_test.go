package depcheck

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// direct reads a go.mod and returns the module paths required without "// indirect" and the
// tool packages, in file order. It understands the subset of the go.mod syntax a module file
// uses: single-line and parenthesised require and tool directives, and // comments.
func direct(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	defer f.Close()
	var out []string
	block := "" // the directive of the open ( … ) block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		code, comment, _ := strings.Cut(line, "//")
		fields := strings.Fields(code)
		switch {
		case len(fields) == 0:
			continue
		case block != "" && fields[0] == ")":
			block = ""
			continue
		case block == "" && len(fields) == 2 && fields[1] == "(":
			block = fields[0]
			continue
		}
		directive := block
		if directive == "" {
			directive, fields = fields[0], fields[1:]
		}
		switch directive {
		case "require":
			if len(fields) != 2 {
				t.Fatalf("go.mod:%d: cannot read the require %q", n, line)
			}
			if strings.TrimSpace(comment) != "indirect" {
				out = append(out, fields[0])
			}
		case "tool":
			if len(fields) != 1 {
				t.Fatalf("go.mod:%d: cannot read the tool %q", n, line)
			}
			out = append(out, fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read go.mod: %v", err)
	}
	return out
}

// listRow is a row of the tables in docs/dependencies.md: | `module` | reason |.
var listRow = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|([^|]*)\\|")

// listed reads docs/dependencies.md and returns each listed module with its reason.
func listed(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the dependency list: %v", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := listRow.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			out[m[1]] = strings.TrimSpace(m[2])
		}
	}
	return out
}

// TestDirectDependenciesAreListed fails when go.mod gains a direct dependency or a tool that
// docs/dependencies.md does not list with a reason, and when the list names one go.mod no
// longer has.
func TestDirectDependenciesAreListed(t *testing.T) {
	root := filepath.Join("..", "..")
	deps := direct(t, filepath.Join(root, "go.mod"))
	if len(deps) == 0 {
		t.Fatal("go.mod has no direct dependencies: the parser is out of step with the file")
	}
	list := listed(t, filepath.Join(root, "docs", "dependencies.md"))
	for _, d := range deps {
		reason, ok := list[d]
		switch {
		case !ok:
			t.Errorf("%s is a direct dependency in go.mod but is not listed in docs/dependencies.md: add a row | `%s` | why it is needed |", d, d)
		case len(reason) < 10:
			t.Errorf("docs/dependencies.md lists %s without a reason", d)
		}
	}
	for d := range list {
		if !slices.Contains(deps, d) {
			t.Errorf("docs/dependencies.md lists %s, which is not a direct dependency in go.mod: remove the row", d)
		}
	}
}

func TestDirectParsesGoModSyntax(t *testing.T) {
	p := filepath.Join(t.TempDir(), "go.mod")
	src := "module example.com/m\n\ngo 1.26.0\n\nrequire example.com/single v1.0.0\n" +
		"require (\n\texample.com/a v1.2.3\n\texample.com/b v0.1.0 // indirect\n\texample.com/c v0.0.0-2020 // why: tests\n)\n" +
		"tool example.com/a/cmd/x\ntool (\n\texample.com/d/cmd/y\n)\n"
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/single", "example.com/a", "example.com/c", "example.com/a/cmd/x", "example.com/d/cmd/y"}
	if got := direct(t, p); !slices.Equal(got, want) {
		t.Fatalf("direct = %q, want %q", got, want)
	}
}

package preview_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// FuzzRootTerm looks up arbitrary search terms and composite keys against a real database:
// a kind with a bigint key and one with a composite (integer, uuid) key, whose search
// columns hold LIKE wildcards, quotes and backslashes. A term is only ever a bound parameter,
// so every lookup ends in a root, "not found" or "ambiguous", never in an SQL error; a root
// found by any term is found again by its key; and a search matches only rows whose key is
// the term or whose search columns contain it (so % and _ in a term are literal).
func FuzzRootTerm(f *testing.F) {
	for _, s := range []string{
		"1", "acme", "ACME", "%", "_", "\\", "50%_off", "o'brien", "x' OR 1=1; --", "$1",
		"7,3f2504e0-4f89-11d3-9a0c-0305e82c3301", "7, 3F2504E04F8911D39A0C0305E82C3301", "7,", ",", "1,2,3",
		"99999999999999999999", "-1", "1e3", " 1 ", "é",
	} {
		f.Add(s)
	}
	db, _ := pgtest.Empty(f)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
		CREATE TABLE tenants (id bigint PRIMARY KEY, slug text UNIQUE, name text);
		CREATE TABLE pairs (a int, b uuid, name text, PRIMARY KEY (a, b));
		INSERT INTO tenants VALUES (1, 'acme', 'Acme Inc'), (2, '50%_off', 'Fifty'), (3, 'o''brien', 'back\slash'), (4, 'ACME-eu', 'x'' OR 1=1; --');
		INSERT INTO pairs VALUES (7, '3f2504e0-4f89-11d3-9a0c-0305e82c3301', 'first'), (7, '00000000-0000-0000-0000-000000000001', 'second');`)
	if err != nil {
		f.Fatal(err)
	}
	cfg, err := config.Parse("fuzz.yaml", []byte("database: postgres://x/y\ntargets:\n  db: {dsn: postgres://x/y}\n"+
		"kinds:\n  tenant: {table: tenants, search: [slug, name]}\n  pair: {table: pairs, search: [name]}\n"), nil)
	if err != nil {
		f.Fatal(err)
	}
	e := preview.NewEngine(cfg, singleTarget{db}, schema.NewCache(0))
	f.Fuzz(func(t *testing.T, term string) {
		if !utf8.ValidString(term) || strings.ContainsRune(term, 0) {
			return // PostgreSQL text cannot hold these; the web layer refuses them first
		}
		for _, kind := range []string{"tenant", "pair"} {
			plan, err := e.Plan(ctx, kind)
			if err != nil {
				t.Fatal(err)
			}
			root, err := e.FindRoot(ctx, plan, term)
			switch {
			case err == nil:
				again, err := e.FindRoot(ctx, plan, root.KeyString())
				if err != nil || again.KeyString() != root.KeyString() {
					t.Fatalf("%s %q found key %q, which finds %q, %v", kind, term, root.KeyString(), again.KeyString(), err)
				}
			case errors.Is(err, preview.ErrRootNotFound), errors.Is(err, preview.ErrAmbiguous):
			default:
				t.Fatalf("%s %q: %v", kind, term, err)
			}
			found, err := e.Search(ctx, kind, term, 10)
			if err != nil {
				t.Fatalf("search %s %q: %v", kind, term, err)
			}
			for _, c := range found {
				if !matches(c, strings.TrimSpace(term)) {
					t.Fatalf("search %s %q matched %q (%v)", kind, term, c.KeyString(), c.Values)
				}
			}
		}
	})
}

// matches reports whether a search hit is explained by the term: its key, or (for an ASCII
// term, where Go and PostgreSQL agree on case) a search column containing it.
func matches(c preview.Candidate, term string) bool {
	if term == "" {
		return false
	}
	for _, v := range c.Values {
		if v.Value == term || strings.EqualFold(v.Value, term) {
			return true
		}
		for i := 0; i < len(term); i++ {
			if term[i] >= utf8.RuneSelf {
				return true // non-ASCII case folding is the database's; not judged here
			}
		}
		if strings.Contains(strings.ToLower(v.Value), strings.ToLower(term)) {
			return true
		}
	}
	return len(c.Key) > 0 && strings.Contains(term, c.Key[0])
}

package preview

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// Candidate is a row that matches a search.
type Candidate struct {
	Key        []string
	Label      string
	Values     []Column // key and search columns
	Tombstoned bool
}

// KeyString joins the key values with commas, as URLs and the CLI write them.
func (c Candidate) KeyString() string { return strings.Join(c.Key, ",") }

// NotFoundError says no root matched; Closest holds near matches.
type NotFoundError struct {
	Kind    string
	Term    string
	Closest []Candidate
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("no %s matches %q", e.Kind, e.Term)
	if len(e.Closest) > 0 {
		msg += "; closest: " + listCandidates(e.Closest)
	}
	return msg
}

// Is makes errors.Is(err, ErrRootNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrRootNotFound }

// AmbiguousError says several rows matched.
type AmbiguousError struct {
	Kind    string
	Term    string
	Matches []Candidate
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q matches %d %ss: %s; give the key instead", e.Term, len(e.Matches), e.Kind, listCandidates(e.Matches))
}

// ErrAmbiguous is matched by errors.Is for an *AmbiguousError.
var ErrAmbiguous = errors.New("ambiguous root")

// Is makes errors.Is(err, ErrAmbiguous) true.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }

func listCandidates(cs []Candidate) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s (key %s)", c.Label, c.KeyString())
	}
	return strings.Join(parts, ", ")
}

// FindRoot resolves a term to exactly one root: by primary key (comma-separated values in key
// order for a composite key), else by an exact, case-insensitive match on the kind's search
// columns. The term is only ever a bound parameter.
func (e *Engine) FindRoot(ctx context.Context, plan *policy.Plan, term string) (Candidate, error) {
	term = strings.TrimSpace(term)
	if term == "" {
		return Candidate{}, &NotFoundError{Kind: plan.Kind.Name, Term: term}
	}
	db, err := e.targets.DB(ctx, plan.Root.Target)
	if err != nil {
		return Candidate{}, &TargetError{Target: plan.Root.Target, Err: err}
	}
	f := finder{kind: plan.Kind, t: plan.Root.Table, q: db.Pool, tomb: plan.Root.Tombstone}
	if f.tomb == nil {
		f.tomb = f.t.Tombstone
	}
	if cs, err := f.byKey(ctx, term); err != nil || len(cs) == 1 {
		if err != nil {
			return Candidate{}, err
		}
		return cs[0], nil
	}
	cs, err := f.search(ctx, term, true, 20)
	if err != nil {
		return Candidate{}, err
	}
	switch len(cs) {
	case 1:
		return cs[0], nil
	case 0:
		closest, err := f.search(ctx, term, false, 5)
		if err != nil {
			return Candidate{}, err
		}
		return Candidate{}, &NotFoundError{Kind: plan.Kind.Name, Term: term, Closest: closest}
	}
	return Candidate{}, &AmbiguousError{Kind: plan.Kind.Name, Term: term, Matches: cs}
}

// Search lists roots of a kind whose key equals the term or whose search columns contain it,
// exact matches first, for search-as-you-type.
func (e *Engine) Search(ctx context.Context, kind, term string, limit int) ([]Candidate, error) {
	k, ok := e.cfg.Kinds[kind]
	if !ok {
		return nil, &policy.UnknownKindError{Kind: kind, Known: e.cfg.KindNames()}
	}
	sch, err := e.Schema(ctx, k.Target)
	if err != nil {
		return nil, err
	}
	t, err := sch.Table(k.Table)
	if err != nil {
		return nil, fmt.Errorf("kind %s: %w", kind, err)
	}
	db, err := e.targets.DB(ctx, k.Target)
	if err != nil {
		return nil, &TargetError{Target: k.Target, Err: err}
	}
	f := finder{kind: k, t: t, q: db.Pool, tomb: t.Tombstone}
	if tr := policy.TableRuleFor(e.cfg, t.Name); tr != nil && tr.Soft != "" {
		f.tomb = t.Column(tr.Soft)
	}
	term = strings.TrimSpace(term)
	byKey, err := f.byKey(ctx, term)
	if err != nil {
		return nil, err
	}
	rest, err := f.search(ctx, term, false, limit)
	if err != nil {
		return nil, err
	}
	out := byKey
	for _, c := range rest {
		if len(byKey) == 1 && c.KeyString() == byKey[0].KeyString() {
			continue
		}
		out = append(out, c)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

type finder struct {
	kind *config.Kind
	t    *schema.Table
	q    Querier
	tomb *schema.Column
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// keyLooksValid checks a value against a key column's type without asking the server, so a
// search term never causes a cast error.
func keyLooksValid(c *schema.Column, v string) bool {
	switch c.Type {
	case "bigint", "integer", "smallint":
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	case "uuid":
		return uuidRE.MatchString(v)
	case "numeric":
		_, err := strconv.ParseFloat(v, 64)
		return err == nil
	}
	return true
}

func (f finder) selectList() (string, []string) {
	cols := append([]string{}, f.t.PrimaryKey...)
	labelCols := labelColumns(f.kind, f.t)
	extra := append(append([]string{}, labelCols...), f.kind.Search...)
	seen := map[string]bool{}
	for _, c := range cols {
		seen[c] = true
	}
	for _, c := range extra {
		if !seen[c] && f.t.Column(c) != nil {
			seen[c] = true
			cols = append(cols, c)
		}
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "t." + pg.QuoteIdent(c) + "::text"
	}
	tomb := "false"
	if f.tomb != nil {
		tomb = tombstonedExpr("t", f.tomb)
	}
	return strings.Join(sel, ", ") + ", " + tomb, cols
}

// scan runs a root lookup. Its SQL depends only on the kind, so unlike the cascade's SQL it
// is worth preparing once per connection: it runs as a cached prepared statement whatever the
// pool's default (target pools prepare nothing).
func (f finder) scan(ctx context.Context, sql string, args []any, cols []string) ([]Candidate, error) {
	rows, err := f.q.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheStatement}, args...)...)
	if err != nil {
		return nil, pg.Interpret(err)
	}
	defer rows.Close()
	labelCols := labelColumns(f.kind, f.t)
	var out []Candidate
	for rows.Next() {
		vals := make([]*string, len(cols))
		dest := make([]any, 0, len(cols)+1)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var tomb bool
		dest = append(dest, &tomb)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		c := Candidate{Tombstoned: tomb}
		byName := map[string]string{}
		for i, name := range cols {
			v := deref(vals[i])
			byName[name] = v
			c.Values = append(c.Values, Column{Name: name, Value: v})
		}
		for _, k := range f.t.PrimaryKey {
			c.Key = append(c.Key, byName[k])
		}
		lv := make([]string, len(labelCols))
		for i, l := range labelCols {
			lv[i] = byName[l]
		}
		c.Label = FormatLabel(f.kind, f.t, labelCols, lv, c.Key)
		out = append(out, c)
	}
	return out, pg.Interpret(rows.Err())
}

func (f finder) byKey(ctx context.Context, term string) ([]Candidate, error) {
	pk := f.t.PrimaryKey
	parts := []string{term}
	if len(pk) > 1 {
		parts = strings.Split(term, ",")
	}
	if len(parts) != len(pk) {
		return nil, nil
	}
	conds := make([]string, len(pk))
	args := make([]any, len(pk))
	for i, c := range pk {
		col := f.t.Column(c)
		v := strings.TrimSpace(parts[i])
		if !keyLooksValid(col, v) {
			return nil, nil
		}
		conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), i+1, col.Type)
		args[i] = v
	}
	sel, cols := f.selectList()
	cs, err := f.scan(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE %s", sel, f.t.Name.Quoted(), strings.Join(conds, " AND ")), args, cols)
	if pg.Code(err) == "22P02" || pg.Code(err) == "22003" {
		return nil, nil // not a key of this type after all
	}
	return cs, err
}

// search matches the kind's search columns: exactly (case-insensitive) or by substring.
func (f finder) search(ctx context.Context, term string, exact bool, limit int) ([]Candidate, error) {
	var conds []string
	for _, c := range f.kind.Search {
		if f.t.Column(c) == nil {
			continue
		}
		if exact {
			conds = append(conds, fmt.Sprintf("lower(t.%s::text) = lower($1)", pg.QuoteIdent(c)))
		} else {
			conds = append(conds, fmt.Sprintf("t.%s::text ILIKE '%%' || $1 || '%%'", pg.QuoteIdent(c)))
		}
	}
	if len(conds) == 0 || term == "" {
		return nil, nil
	}
	arg := term
	if !exact {
		arg = likeEscape(term)
	}
	order := "1"
	if len(f.kind.Search) > 0 && f.t.Column(f.kind.Search[0]) != nil {
		order = fmt.Sprintf("length(t.%s::text), t.%s::text", pg.QuoteIdent(f.kind.Search[0]), pg.QuoteIdent(f.kind.Search[0]))
	}
	sel, cols := f.selectList()
	sql := fmt.Sprintf("SELECT %s FROM %s t WHERE %s ORDER BY %s LIMIT %d", sel, f.t.Name.Quoted(), strings.Join(conds, " OR "), order, limit)
	return f.scan(ctx, sql, []any{arg}, cols)
}

func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// Package preview evaluates a kind's plan for one root: which rows of which tables a deletion
// reaches, what happens to each, with counts, samples, blockers, warnings and a digest.
//
// Sets are computed in SQL as temp tables of primary keys, inside one REPEATABLE READ
// transaction per target that is always rolled back. Go holds only counts and samples, so
// memory stays flat whether a root reaches ten rows or ten million.
package preview

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/policy"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// SampleSize is the number of sample rows shown per node.
const SampleSize = 5

// rowsPerSecond is the deletion rate used for the estimated duration (measured on the demo
// data: about 4–5 s per million cascaded rows).
const rowsPerSecond = 220000

// Preview is a plan evaluated for one root. Its JSON form is the stable shape documented in
// the README.
type Preview struct {
	Kind     string        `json:"kind"`
	Target   string        `json:"target"`
	Root     Root          `json:"root"`
	Action   string        `json:"action"` // the root's action: delete or soft
	Summary  []SummaryLine `json:"summary"`
	Totals   Totals        `json:"totals"`
	Tree     *Node         `json:"tree"`
	Blockers []Blocker     `json:"blockers"`
	Warnings []Warning     `json:"warnings"`
	Digest   string        `json:"digest"`

	PolicyHash   string            `json:"policy_hash"`
	Fingerprints map[string]string `json:"schema_fingerprints"`
	// Targets lists the targets in evaluation order, with per-target totals.
	Targets []TargetTotal `json:"targets"`
	// Exact is false for a planner estimate (counts are estimates, no samples, no digest).
	Exact bool          `json:"exact"`
	Took  time.Duration `json:"-"`
	At    time.Time     `json:"at"`
}

// Root is the root row.
type Root struct {
	Table string   `json:"table"` // schema-qualified, e.g. public.tenants
	Key   string   `json:"key"`   // primary key values joined by commas
	Keys  []string `json:"-"`
	Label string   `json:"label"`
	// Tombstoned is true when the root already carries a tombstone.
	Tombstoned bool `json:"tombstoned,omitempty"`
}

// SummaryLine is one (target, table, action) with its distinct row count.
type SummaryLine struct {
	Target            string `json:"target"`
	Table             string `json:"table"`
	Action            string `json:"action"`
	Rows              int64  `json:"rows"`
	AlreadyTombstoned int64  `json:"already_tombstoned,omitempty"`
	KeyHash           string `json:"-"`
}

// Totals counts distinct rows per action across every target.
type Totals struct {
	Delete int64 `json:"delete"`
	Soft   int64 `json:"soft"`
	Detach int64 `json:"detach"`
	Keep   int64 `json:"keep"`
	Block  int64 `json:"block"`
	Tables int   `json:"tables"`
}

// Changed is the number of rows the deletion changes (deleted, tombstoned or detached).
func (t Totals) Changed() int64 { return t.Delete + t.Soft + t.Detach }

// TargetTotal is one target's share.
type TargetTotal struct {
	Target string `json:"target"`
	Totals Totals `json:"totals"`
}

// Node is one (table, edge path) of the tree.
type Node struct {
	ID        int     `json:"id"`
	Target    string  `json:"target"`
	Table     string  `json:"table"`
	Via       string  `json:"via,omitempty"`
	Edge      string  `json:"edge,omitempty"`
	Action    string  `json:"action"`
	Rule      string  `json:"rule"`
	Rows      int64   `json:"rows"`
	Estimate  bool    `json:"estimate,omitempty"`
	Recursive bool    `json:"recursive,omitempty"`
	Reason    string  `json:"reason,omitempty"` // why a block node blocks
	Sample    []Row   `json:"sample,omitempty"`
	Children  []*Node `json:"children,omitempty"`
}

// Row is a sample row: its key and label-like columns.
type Row struct {
	Key    string   `json:"key"`
	Label  string   `json:"label,omitempty"`
	Values []Column `json:"values,omitempty"`
}

// Column is one named value of a sample row.
type Column struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Blocker is a set of rows that stop the request.
type Blocker struct {
	Target string `json:"target"`
	Table  string `json:"table"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Rows   int64  `json:"rows"`
	Sample []Row  `json:"sample,omitempty"`
}

// Warning is something an operator should know before asking.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Blocked reports whether the preview cannot be requested.
func (p *Preview) Blocked() bool { return len(p.Blockers) > 0 }

// Engine evaluates previews against live targets.
type Engine struct {
	cfg     *config.Config
	targets Targets
	cache   *schema.Cache

	// plans keeps each kind's last resolved plan with the schemas it was resolved against.
	// A plan is never changed once resolved, and the schema cache hands out the same
	// *schema.Schema until a target's fingerprint changes, so a plan whose schemas are the
	// current ones is the plan Resolve would return again.
	mu    sync.Mutex
	plans map[string]resolvedPlan
}

type resolvedPlan struct {
	schemas map[string]*schema.Schema // what Resolve was given
	plan    *policy.Plan
}

// Targets gives access to each target's database; *pg.Pools fits.
type Targets interface {
	DB(ctx context.Context, target string) (*pg.DB, error)
}

// NewEngine returns an engine for cfg. The schema cache is shared across previews.
func NewEngine(cfg *config.Config, targets Targets, cache *schema.Cache) *Engine {
	return &Engine{cfg: cfg, targets: targets, cache: cache}
}

// Config returns the engine's config.
func (e *Engine) Config() *config.Config { return e.cfg }

// Plan resolves the kind's plan against the current schemas of every target it reaches.
func (e *Engine) Plan(ctx context.Context, kind string) (*policy.Plan, error) {
	k, ok := e.cfg.Kinds[kind]
	if !ok {
		return nil, &policy.UnknownKindError{Kind: kind, Known: e.cfg.KindNames()}
	}
	targets := []string{k.Target}
	for _, a := range k.Also {
		targets = append(targets, a.Target)
	}
	schemas := map[string]*schema.Schema{}
	for _, t := range targets {
		if schemas[t] != nil {
			continue
		}
		s, err := e.Schema(ctx, t)
		if err != nil {
			return nil, err
		}
		schemas[t] = s
	}
	e.mu.Lock()
	cached, ok := e.plans[kind]
	e.mu.Unlock()
	if ok && sameSchemas(cached.schemas, schemas) {
		return cached.plan, nil
	}
	plan, err := policy.Resolve(e.cfg, kind, schemas)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.plans == nil {
		e.plans = map[string]resolvedPlan{}
	}
	e.plans[kind] = resolvedPlan{schemas: schemas, plan: plan}
	e.mu.Unlock()
	return plan, nil
}

// sameSchemas reports whether two sets of schemas are the same objects.
func sameSchemas(had, now map[string]*schema.Schema) bool {
	if len(had) != len(now) {
		return false
	}
	for t, s := range now {
		if had[t] != s {
			return false
		}
	}
	return true
}

// Schema returns a target's current schema.
func (e *Engine) Schema(ctx context.Context, target string) (*schema.Schema, error) {
	db, err := e.targets.DB(ctx, target)
	if err != nil {
		return nil, &TargetError{Target: target, Err: err}
	}
	s, err := e.cache.Get(ctx, target, db.Bun)
	if err != nil {
		return nil, &TargetError{Target: target, Err: err}
	}
	return s, nil
}

// TargetError names the target that failed.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return fmt.Sprintf("target %s: %v", e.Target, e.Err) }
func (e *TargetError) Unwrap() error { return e.Err }

// Run evaluates the plan for the root with the given key exactly, in one REPEATABLE READ
// snapshot per target, and rolls every transaction back.
func (e *Engine) Run(ctx context.Context, plan *policy.Plan, rootKey []string) (*Preview, error) {
	start := time.Now()
	txs := map[string]Querier{}
	var opened []pgx.Tx
	defer func() {
		for _, tx := range opened {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, t := range plan.Targets {
		db, err := e.targets.DB(ctx, t)
		if err != nil {
			return nil, &TargetError{Target: t, Err: err}
		}
		tx, err := db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return nil, &TargetError{Target: t, Err: pg.Interpret(err)}
		}
		opened = append(opened, tx)
		txs[t] = tx
	}
	var p *Preview
	var err error
	if Inlineable(plan) {
		p, err = EvaluateInline(ctx, txs, plan, rootKey)
	} else {
		var sets *Sets
		if sets, err = Evaluate(ctx, txs, plan, rootKey); err == nil {
			p, err = Describe(ctx, sets)
		}
	}
	if err != nil {
		return nil, err
	}
	p.Took = time.Since(start)
	return p, nil
}

// Describe turns evaluated sets into a preview: tree with samples, summary, blockers, warnings
// and digest. It reads from the sets' transactions.
func Describe(ctx context.Context, s *Sets) (*Preview, error) {
	f, err := s.facts(ctx, true)
	if err != nil {
		return nil, err
	}
	return assemble(ctx, s.q[s.Plan.Root.Target], s.Plan, s.RootKey, f)
}

// Summarize is Describe without sample rows (the tree and the blockers have none). The digest,
// summary, totals, blocker counts and warnings are the same. The executor checks the digest
// with it: reading samples of every set would only slow the transaction that holds the locks.
func Summarize(ctx context.Context, s *Sets) (*Preview, error) {
	f, err := s.facts(ctx, false)
	if err != nil {
		return nil, err
	}
	return assemble(ctx, s.q[s.Plan.Root.Target], s.Plan, s.RootKey, f)
}

// facts are the numbers a preview is made of, however they were computed.
type facts struct {
	nodeRows []int64
	samples  [][]Row
	tables   []tableFact
	blockers []Blocker
	kept     []KeptOwned
}

type tableFact struct {
	spec    tableSpec
	rows    int64
	already int64
	hash    string
}

// facts reads counts, key hashes and, with samples, sample rows from the sets' temp tables.
func (s *Sets) facts(ctx context.Context, samples bool) (*facts, error) {
	f := &facts{nodeRows: make([]int64, len(s.nodes)), samples: make([][]Row, len(s.nodes)), kept: s.Kept}
	for _, n := range s.Plan.Nodes {
		f.nodeRows[n.ID] = s.nodes[n.ID].rows
		if s.nodes[n.ID].rows == 0 || !samples {
			continue
		}
		sample, err := querySample(ctx, s.q[n.Target], n.Table, s.nodes[n.ID].rel)
		if err != nil {
			return nil, err
		}
		f.samples[n.ID] = sample
	}
	for _, ts := range s.Tables {
		tf := tableFact{spec: tableSpec{target: ts.Target, table: ts.Table, action: ts.Action, nodes: ts.Nodes}, rows: ts.Rows, already: ts.AlreadyTombstoned, hash: emptyKeyHash}
		if ts.Rows > 0 {
			h, err := s.tableHash(ctx, ts)
			if err != nil {
				return nil, err
			}
			tf.hash = h
		}
		f.tables = append(f.tables, tf)
		if ts.Action != config.ActionBlock || ts.Rows == 0 {
			continue
		}
		for _, n := range ts.Nodes {
			both := blockedOf(s.nodes[n.ID].rel, ts.Rel)
			var rows int64
			if err := s.q[n.Target].QueryRow(ctx, "SELECT count(*) FROM "+both).Scan(&rows); err != nil {
				return nil, pg.Interpret(err)
			}
			if rows == 0 {
				continue
			}
			var sample []Row
			if samples {
				var err error
				if sample, err = querySample(ctx, s.q[n.Target], n.Table, both); err != nil {
					return nil, err
				}
			}
			f.blockers = append(f.blockers, Blocker{Target: n.Target, Table: n.Table.Name.String(), Path: n.Path(), Reason: n.BlockReason, Rows: rows, Sample: sample})
		}
	}
	return f, nil
}

// blockedOf is the relation of a block node's rows that stay blocked.
func blockedOf(nodeRel, blockRel string) string {
	return fmt.Sprintf("(SELECT * FROM %s INTERSECT SELECT * FROM %s) b", nodeRel, blockRel)
}

// assemble builds the preview from facts.
func assemble(ctx context.Context, rq Querier, plan *policy.Plan, rootKey []string, f *facts) (*Preview, error) {
	root := plan.Root
	p := &Preview{
		Kind: plan.Kind.Name, Target: root.Target, Action: root.Action,
		PolicyHash: plan.PolicyHash, Fingerprints: plan.Fingerprints, Exact: true,
		At: time.Now().UTC(), Blockers: f.blockers, Warnings: []Warning{},
	}
	if p.Blockers == nil {
		p.Blockers = []Blocker{}
	}
	label, tomb, err := rootInfo(ctx, rq, plan, rootKey)
	if err != nil {
		return nil, err
	}
	p.Root = Root{Table: root.Table.Name.String(), Key: strings.Join(rootKey, ","), Keys: rootKey, Label: label, Tombstoned: tomb}

	perTarget := map[string]*Totals{}
	tables := map[string]bool{}
	for _, tf := range f.tables {
		sp := tf.spec
		if tf.rows > 0 || tf.already > 0 {
			// Tables reached with no rows stay visible in the tree; the summary lists rows.
			p.Summary = append(p.Summary, SummaryLine{Target: sp.target, Table: sp.table.Name.String(), Action: sp.action, Rows: tf.rows, AlreadyTombstoned: tf.already, KeyHash: tf.hash})
		}
		if perTarget[sp.target] == nil {
			perTarget[sp.target] = &Totals{}
		}
		addTotals(perTarget[sp.target], sp.action, tf.rows)
		addTotals(&p.Totals, sp.action, tf.rows)
		if tf.rows > 0 && sp.action != config.ActionKeep {
			tables[sp.target+"\x00"+sp.table.Name.String()] = true
		}
	}
	p.Totals.Tables = len(tables)
	for _, t := range plan.Targets {
		tt := TargetTotal{Target: t}
		if perTarget[t] != nil {
			tt.Totals = *perTarget[t]
		}
		p.Targets = append(p.Targets, tt)
	}
	nodes := make([]*Node, len(plan.Nodes))
	for _, n := range plan.Nodes {
		out := treeNode(n, f.nodeRows[n.ID], false)
		out.Recursive = n.Recursive(plan)
		out.Sample = f.samples[n.ID]
		nodes[n.ID] = out
		if n.Parent != nil {
			nodes[n.Parent.ID].Children = append(nodes[n.Parent.ID].Children, out)
		}
	}
	p.Tree = nodes[0]
	p.Warnings = warnings(plan, f, p)
	p.Digest = Digest(p)
	return p, nil
}

func addTotals(t *Totals, action string, rows int64) {
	switch action {
	case config.ActionDelete:
		t.Delete += rows
	case config.ActionSoft:
		t.Soft += rows
	case config.ActionDetach:
		t.Detach += rows
	case config.ActionKeep:
		t.Keep += rows
	case config.ActionBlock:
		t.Block += rows
	}
}

func treeNode(n *policy.Node, rows int64, estimate bool) *Node {
	out := &Node{ID: n.ID, Target: n.Target, Table: n.Table.Name.String(), Action: n.Action, Rule: n.Rule, Rows: rows, Estimate: estimate, Reason: n.BlockReason}
	if n.Edge != nil {
		out.Via, out.Edge = n.Edge.Via(), n.Edge.Name()
	}
	return out
}

func warnings(plan *policy.Plan, f *facts, p *Preview) []Warning {
	ws := []Warning{}
	if p.Root.Tombstoned {
		if plan.Root.Action == config.ActionSoft {
			ws = append(ws, Warning{Code: "root_already_deleted", Message: fmt.Sprintf("%s is already tombstoned; the request will only tombstone rows that are not", p.Root.Label)})
		} else {
			ws = append(ws, Warning{Code: "root_already_deleted", Message: fmt.Sprintf("%s is already tombstoned; this request deletes it for good", p.Root.Label)})
		}
	}
	seen := map[string]bool{}
	for _, n := range plan.Nodes {
		if n.Edge == nil || n.Edge.FK == nil || n.Edge.Kind != policy.EdgeFK || n.Edge.FK.Indexed || f.nodeRows[n.ID] == 0 {
			continue
		}
		if n.Action == config.ActionKeep {
			continue
		}
		name := n.Edge.Name()
		if seen[name] {
			continue
		}
		seen[name] = true
		ws = append(ws, Warning{Code: "unindexed_fk", Message: fmt.Sprintf("%s has no index on %s: each cascade step scans the table (CREATE INDEX ON %s (%s))", n.Edge.FK.Child, strings.Join(n.Edge.FK.Columns, ", "), n.Edge.FK.Child.Quoted(), pg.QuoteIdents(n.Edge.FK.Columns))})
	}
	for _, tf := range f.tables {
		if tf.already > 0 {
			ws = append(ws, Warning{Code: "already_tombstoned", Message: fmt.Sprintf("%s: %s rows are already tombstoned and are left untouched", tf.spec.table.Name, Thousands(tf.already))})
		}
	}
	for _, k := range f.kept {
		ws = append(ws, Warning{Code: "owned_still_referenced", Message: fmt.Sprintf("%s: %s owned rows are kept because other rows still refer to them", k.Node.Table.Name, Thousands(k.Rows))})
	}
	if changed := p.Totals.Changed(); changed > 0 {
		d := time.Duration(float64(changed) / rowsPerSecond * float64(time.Second))
		if d < time.Second {
			d = time.Second
		}
		ws = append(ws, Warning{Code: "estimated_duration", Message: fmt.Sprintf("about %s to execute (%s rows)", d.Round(time.Second), Thousands(changed))})
	}
	return ws
}

// Digest is SHA-256 over the canonical preview: kind, root key, policy hash, schema
// fingerprints, and per (target, table, action) the count and the hash of the key set.
// Any change to what the deletion would touch changes it.
func Digest(p *Preview) string {
	type line struct {
		Target  string `json:"target"`
		Table   string `json:"table"`
		Action  string `json:"action"`
		Rows    int64  `json:"rows"`
		KeyHash string `json:"key_hash"`
	}
	lines := make([]line, 0, len(p.Summary))
	for _, s := range p.Summary {
		lines = append(lines, line{s.Target, s.Table, s.Action, s.Rows, s.KeyHash})
	}
	sort.Slice(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		if a.Target != b.Target {
			return a.Target < b.Target
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Action < b.Action
	})
	b, err := json.Marshal(struct {
		Kind         string            `json:"kind"`
		Root         string            `json:"root"`
		PolicyHash   string            `json:"policy_hash"`
		Fingerprints map[string]string `json:"schema_fingerprints"`
		Tables       []line            `json:"tables"`
	}{p.Kind, p.Target + ":" + p.Root.Table + ":" + p.Root.Key, p.PolicyHash, p.Fingerprints, lines})
	if err != nil {
		panic(err) // plain values only
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// emptyKeyHash is keyHash of an empty set: SHA-256 of the empty string.
const emptyKeyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// keyHashSQL hashes a set's keys in SQL, so the keys never travel to Go. The hash does not
// depend on the order rows come in: it is SHA-256 over two sums of 64-bit key hashes with
// different seeds, so a set reached through several paths can be hashed piece by piece
// (keyHashPieces) and gives the same value as the materialized set. Both evaluations build the
// same expressions, so their digests agree.
func keyHashSQL(t *schema.Table, rel string) string {
	return fmt.Sprintf("(SELECT %s FROM %s s)", keyHashOf(fmt.Sprintf("sum(%s)", keyHashExpr(t, "s", keySeed1)), fmt.Sprintf("sum(%s)", keyHashExpr(t, "s", keySeed2))), rel)
}

// Seeds of the two key hash sums.
const (
	keySeed1 = 1
	keySeed2 = 2
)

// keyHashOf is the key hash of a non-empty set from its two sums (numeric or bigint).
func keyHashOf(sum1, sum2 string) string {
	return fmt.Sprintf("encode(sha256(convert_to(coalesce(%s, 0)::text || ',' || coalesce(%s, 0)::text, 'UTF8')), 'hex')", sum1, sum2)
}

// keyHashExpr is the 64-bit hash of one row's key under alias. Integer keys use the integer hash
// (several times cheaper than hashing text); other keys hash their text, and composite keys the
// text of the row value, which quotes its fields, so (1, '2,3') and (12, '3') differ.
func keyHashExpr(t *schema.Table, alias string, seed int) string {
	cols := KeyColumns(t)
	if len(cols) == 1 {
		ref := alias + "." + pg.QuoteIdent(cols[0])
		if col := t.Column(cols[0]); col != nil && isInteger(col.Type) {
			return fmt.Sprintf("hashint8extended(%s::bigint, %d)", ref, seed)
		}
		return fmt.Sprintf("hashtextextended(%s::text, %d)", ref, seed)
	}
	return fmt.Sprintf("hashtextextended(ROW(%s)::text, %d)", qualified(alias, cols), seed)
}

// isInteger reports whether a column type is one of PostgreSQL's integer types.
func isInteger(typ string) bool {
	return typ == "bigint" || typ == "integer" || typ == "smallint"
}

// sampleSQL is a scalar subquery returning up to SampleSize rows of a set as a JSON array of
// arrays of text: key columns, then label-like columns. from is a relation name or an aliased
// subquery.
func sampleSQL(t *schema.Table, from string) string {
	keys := KeyColumns(t)
	sel := make([]string, 0, len(keys)+4)
	order := make([]string, len(keys))
	for i, k := range keys {
		if k == ctidKey {
			sel = append(sel, "t.ctid::text")
		} else {
			sel = append(sel, "t."+pg.QuoteIdent(k)+"::text")
		}
		order[i] = pg.QuoteIdent(k)
	}
	for _, l := range t.LabelColumns() {
		sel = append(sel, "t."+pg.QuoteIdent(l)+"::text")
	}
	return fmt.Sprintf("(SELECT coalesce(json_agg(json_build_array(%s) ORDER BY %s), '[]') FROM %s t WHERE %s IN (SELECT * FROM (SELECT * FROM %s ORDER BY %s LIMIT %d) s))",
		strings.Join(sel, ", "), keyRefList(t, "t"), t.Name.Quoted(), keyRef(t, "t"), from, strings.Join(order, ", "), SampleSize)
}

// parseSample turns sampleSQL's JSON into rows.
func parseSample(t *schema.Table, raw []byte) ([]Row, error) {
	var vals [][]*string
	if err := json.Unmarshal(raw, &vals); err != nil {
		return nil, fmt.Errorf("sample of %s: %w", t.Name, err)
	}
	keys := KeyColumns(t)
	labels := t.LabelColumns()
	var out []Row
	for _, v := range vals {
		if len(v) != len(keys)+len(labels) {
			return nil, fmt.Errorf("sample of %s: %d values, want %d", t.Name, len(v), len(keys)+len(labels))
		}
		r := Row{}
		kv := make([]string, len(keys))
		for i := range keys {
			kv[i] = deref(v[i])
		}
		r.Key = strings.Join(kv, ",")
		for i, l := range labels {
			x := v[len(keys)+i]
			if x == nil {
				continue
			}
			r.Values = append(r.Values, Column{Name: l, Value: *x})
			if r.Label == "" {
				r.Label = *x
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func querySample(ctx context.Context, q Querier, t *schema.Table, from string) ([]Row, error) {
	var raw []byte
	if err := q.QueryRow(ctx, "SELECT "+sampleSQL(t, from)).Scan(&raw); err != nil {
		return nil, pg.Interpret(err)
	}
	return parseSample(t, raw)
}

func keyRefList(t *schema.Table, alias string) string {
	if len(t.PrimaryKey) == 0 {
		return alias + ".ctid"
	}
	return qualified(alias, t.PrimaryKey)
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// rootInfo reads the root's label and whether it is tombstoned.
func rootInfo(ctx context.Context, q Querier, plan *policy.Plan, key []string) (string, bool, error) {
	t := plan.Root.Table
	cols := labelColumns(plan.Kind, t)
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "coalesce(t." + pg.QuoteIdent(c) + "::text, '')"
	}
	tomb := "false"
	if col := plan.Root.Tombstone; col != nil {
		tomb = tombstonedExpr("t", col)
	} else if t.Tombstone != nil {
		tomb = tombstonedExpr("t", t.Tombstone)
	}
	conds := make([]string, len(t.PrimaryKey))
	args := make([]any, len(key))
	for i, c := range t.PrimaryKey {
		conds[i] = fmt.Sprintf("t.%s = CAST($%d::text AS %s)", pg.QuoteIdent(c), i+1, t.Column(c).Type)
		args[i] = key[i]
	}
	selList := tomb
	if len(sel) > 0 {
		selList = strings.Join(sel, ", ") + ", " + tomb
	}
	row := q.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s t WHERE %s", selList, t.Name.Quoted(), strings.Join(conds, " AND ")), args...)
	vals := make([]string, len(cols))
	dest := make([]any, 0, len(cols)+1)
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	var tombstoned bool
	dest = append(dest, &tombstoned)
	if err := row.Scan(dest...); err != nil {
		if err == pgx.ErrNoRows {
			return "", false, ErrRootNotFound
		}
		return "", false, pg.Interpret(err)
	}
	return FormatLabel(plan.Kind, t, cols, vals, key), tombstoned, nil
}

func tombstonedExpr(alias string, col *schema.Column) string {
	if policy.IsBoolean(col) {
		return "coalesce(" + alias + "." + pg.QuoteIdent(col.Name) + ", false)"
	}
	return "(" + alias + "." + pg.QuoteIdent(col.Name) + " IS NOT NULL)"
}

// labelColumns are the columns a kind's label uses: its template's, else the table's first
// label-like column.
func labelColumns(k *config.Kind, t *schema.Table) []string {
	if k.Label != "" {
		var cols []string
		for _, c := range config.LabelColumns(k.Label) {
			if t.Column(c) != nil {
				cols = append(cols, c)
			}
		}
		return cols
	}
	if lc := t.LabelColumns(); len(lc) > 0 {
		return lc[:1]
	}
	return nil
}

// FormatLabel renders a root's label from its template and values.
func FormatLabel(k *config.Kind, t *schema.Table, cols, vals []string, key []string) string {
	if k.Label != "" && len(cols) > 0 {
		out := k.Label
		for i, c := range cols {
			out = strings.ReplaceAll(out, "{"+c+"}", vals[i])
		}
		return out
	}
	if len(vals) > 0 && vals[0] != "" {
		return vals[0]
	}
	return t.Name.Name + " " + strings.Join(key, ",")
}

// Thousands formats n with thousands separators: 1,234,567.
func Thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

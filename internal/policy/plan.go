// Package policy resolves the deletion policy over live schemas into a plan per kind, and lints
// the policy against those schemas.
//
// A plan is a tree of nodes, one per (table, edge path), each with the action its rows get:
// delete, soft, detach, keep or block. An action is chosen by the edge rule, then the table rule,
// then the defaults (see DESIGN.md "Policy"). Where the cascade would reach a table it is already
// cascading through with the same action (a self-reference, or a cycle across tables), the plan
// records a back edge instead of a new node; the preview evaluates such a group to a fixpoint.
package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// MaxNodes bounds a plan's tree. Schemas with many diamonds grow a node per path; past this the
// policy should cut the cascade with keep or block rules.
const MaxNodes = 5000

// Plan is the resolved policy for one kind over the current schemas, independent of any root.
type Plan struct {
	Kind       *config.Kind
	Root       *Node
	PolicyHash string
	// Fingerprints of the schemas the plan was resolved against, by target.
	Fingerprints map[string]string
	// Schemas the plan was resolved against, by target.
	Schemas map[string]*schema.Schema
	// Nodes lists every node in depth-first order; Nodes[i].ID == i.
	Nodes []*Node
	// Targets involved, root target first, then the others sorted.
	Targets []string
}

// EdgeKind says where an edge comes from.
type EdgeKind string

// Edge kinds.
const (
	EdgeFK   EdgeKind = "fk"   // a foreign key from the child table to the parent
	EdgeOwns EdgeKind = "owns" // the root's FK pointing up to a row it owns
	EdgeAlso EdgeKind = "also" // a declared link without an FK, possibly into another target
)

// Edge reaches rows of To from rows of From: To.ToColumns = From.FromColumns.
type Edge struct {
	Kind        EdgeKind
	FK          *schema.FK // for fk and owns
	From        pg.Table
	FromColumns []string
	To          pg.Table
	ToColumns   []string
	// ToTarget differs from the parent's target only for also links into another database.
	ToTarget string
}

// Name is the edge as operators write it: "orders.customer_id → customers.id".
func (e *Edge) Name() string {
	switch e.Kind {
	case EdgeOwns:
		return fmt.Sprintf("%s.%s → %s.%s (owns)", e.From.Name, colList(e.FromColumns), e.To.Name, colList(e.ToColumns))
	case EdgeAlso:
		return fmt.Sprintf("%s.%s → %s.%s (also)", e.To.Name, colList(e.ToColumns), e.From.Name, colList(e.FromColumns))
	}
	return fmt.Sprintf("%s.%s → %s.%s", e.To.Name, colList(e.ToColumns), e.From.Name, colList(e.FromColumns))
}

// Via is the short form shown in the tree: "via orders.store_id".
func (e *Edge) Via() string {
	if e.Kind == EdgeOwns {
		return fmt.Sprintf("owned via %s.%s", e.From.Name, colList(e.FromColumns))
	}
	return fmt.Sprintf("via %s.%s", e.To.Name, colList(e.ToColumns))
}

func colList(cols []string) string {
	if len(cols) == 1 {
		return cols[0]
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

// Node is one (table, edge path) in the plan.
type Node struct {
	ID       int
	Target   string
	Table    *schema.Table
	Action   string
	Edge     *Edge // nil for the root
	Parent   *Node
	Children []*Node
	// Back edges lead from this node to an ancestor (or itself) with the same table and action:
	// rows they reach join the ancestor's set, to a fixpoint.
	Back []BackEdge
	// Rule says where the action came from, for the preview and the policy page.
	Rule string
	// Explicit is true when an edge or table rule (not a default) chose the action.
	Explicit bool
	// Tombstone is the column a soft action sets (nil unless Action is soft).
	Tombstone *schema.Column
	// DetachColumns are the columns a detach action sets to NULL or their default.
	DetachColumns []string
	// DetachDefault is true for ON DELETE SET DEFAULT.
	DetachDefault bool
	// BlockReason explains a block action.
	BlockReason string
	// Depth is 0 for the root.
	Depth int
}

// BackEdge is a recursive edge to an ancestor node.
type BackEdge struct {
	Edge *Edge
	To   *Node
}

// Path is the node's path from the root: "tenants › repos.tenant_id › issues.repo_id".
func (n *Node) Path() string {
	var parts []string
	for m := n; m != nil; m = m.Parent {
		if m.Edge == nil {
			parts = append(parts, m.Table.Name.Name)
		} else {
			parts = append(parts, m.Edge.To.Name+"."+colList(m.Edge.ToColumns))
		}
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, " › ")
}

// Recursive reports whether some descendant (or the node itself) has a back edge to it.
func (n *Node) Recursive(p *Plan) bool {
	for _, m := range p.Nodes {
		for _, b := range m.Back {
			if b.To == n {
				return true
			}
		}
	}
	return false
}

// Error is a policy problem found while resolving against a schema (unknown table or column).
type Error struct {
	Where string // file:line:col
	Path  string // key path in the file
	Msg   string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.Where, e.Path, e.Msg) }

// Resolve builds the plan for one kind. schemas holds every target the kind reaches.
func Resolve(cfg *config.Config, kindName string, schemas map[string]*schema.Schema) (*Plan, error) {
	kind, ok := cfg.Kinds[kindName]
	if !ok {
		return nil, &UnknownKindError{Kind: kindName, Known: cfg.KindNames()}
	}
	r := &resolver{cfg: cfg, kind: kind, schemas: schemas}
	sch, ok := schemas[kind.Target]
	if !ok {
		return nil, fmt.Errorf("no schema loaded for target %q", kind.Target)
	}
	rootTable, err := sch.Table(kind.Table)
	if err != nil {
		return nil, &Error{Where: cfg.Where("kinds." + kindName + ".table"), Path: "kinds." + kindName + ".table", Msg: err.Error()}
	}
	if len(rootTable.PrimaryKey) == 0 {
		return nil, &Error{Where: cfg.Where("kinds." + kindName + ".table"), Path: "kinds." + kindName + ".table", Msg: fmt.Sprintf("table %s has no primary key; a root must be addressable by its key", rootTable.Name)}
	}
	plan := &Plan{Kind: kind, PolicyHash: cfg.PolicyHash(), Fingerprints: map[string]string{}, Schemas: map[string]*schema.Schema{}}
	r.plan = plan
	root := &Node{Target: kind.Target, Table: rootTable, Action: kind.Root, Rule: "kind root: " + kind.Root, Explicit: true}
	if kind.Root == config.ActionSoft {
		col, err := r.tombstone(kind.Target, rootTable)
		if err != nil {
			return nil, err
		}
		if col == nil {
			return nil, &Error{Where: cfg.Where("kinds." + kindName + ".root"), Path: "kinds." + kindName + ".root", Msg: fmt.Sprintf("root: soft needs a tombstone column on %s (deleted_at timestamptz or is_deleted boolean), or declare one under tables.%s.soft", rootTable.Name, rootTable.Name.Name)}
		}
		root.Tombstone = col
	}
	plan.Root = root
	r.add(root)
	if err := r.rootEdges(root); err != nil {
		return nil, err
	}
	if err := r.expand(root); err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for _, n := range plan.Nodes {
		targets[n.Target] = true
	}
	plan.Targets = []string{kind.Target}
	others := []string{}
	for t := range targets {
		if t != kind.Target {
			others = append(others, t)
		}
	}
	sort.Strings(others)
	plan.Targets = append(plan.Targets, others...)
	for _, t := range plan.Targets {
		plan.Fingerprints[t] = schemas[t].Fingerprint
		plan.Schemas[t] = schemas[t]
	}
	return plan, nil
}

// UnknownKindError names the kinds that exist.
type UnknownKindError struct {
	Kind  string
	Known []string
}

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("unknown kind %q (known kinds: %s)", e.Kind, strings.Join(e.Known, ", "))
}

type resolver struct {
	cfg     *config.Config
	kind    *config.Kind
	schemas map[string]*schema.Schema
	plan    *Plan
	// pending root edges (owns, also) attached to the root before FK expansion.
	rootExtra []*Edge
}

func (r *resolver) add(n *Node) {
	n.ID = len(r.plan.Nodes)
	r.plan.Nodes = append(r.plan.Nodes, n)
}

// rootEdges resolves owns and also links declared on the kind.
func (r *resolver) rootEdges(root *Node) error {
	kp := "kinds." + r.kind.Name
	for i, col := range r.kind.Owns {
		p := fmt.Sprintf("%s.owns[%d]", kp, i)
		var fk *schema.FK
		for _, f := range r.schemas[root.Target].Parents(root.Table.Name) {
			if len(f.Columns) == 1 && f.Columns[0] == col || strings.Join(f.Columns, ",") == col {
				fk = f
				break
			}
		}
		if fk == nil {
			return &Error{Where: r.cfg.Where(p), Path: p, Msg: fmt.Sprintf("%s has no foreign key on column %q to own through", root.Table.Name, col)}
		}
		r.rootExtra = append(r.rootExtra, &Edge{Kind: EdgeOwns, FK: fk, From: root.Table.Name, FromColumns: fk.Columns, To: fk.Parent, ToColumns: fk.RefColumns, ToTarget: root.Target})
	}
	for i, a := range r.kind.Also {
		p := fmt.Sprintf("%s.also[%d]", kp, i)
		sch, ok := r.schemas[a.Target]
		if !ok {
			return fmt.Errorf("no schema loaded for target %q", a.Target)
		}
		t, err := sch.Table(a.Table)
		if err != nil {
			return &Error{Where: r.cfg.Where(p), Path: p + ".table", Msg: fmt.Sprintf("target %s: %v", a.Target, err)}
		}
		if t.Column(a.Column) == nil {
			return &Error{Where: r.cfg.Where(p), Path: p + ".column", Msg: fmt.Sprintf("table %s in target %s has no column %q", t.Name, a.Target, a.Column)}
		}
		from := root.Table.PrimaryKey
		if a.Matches != "" {
			if root.Table.Column(a.Matches) == nil {
				return &Error{Where: r.cfg.Where(p), Path: p + ".matches", Msg: fmt.Sprintf("root table %s has no column %q", root.Table.Name, a.Matches)}
			}
			from = []string{a.Matches}
		} else if len(from) != 1 {
			return &Error{Where: r.cfg.Where(p), Path: p, Msg: fmt.Sprintf("root table %s has a composite key; name the root column the link matches with matches:", root.Table.Name)}
		}
		r.rootExtra = append(r.rootExtra, &Edge{Kind: EdgeAlso, From: root.Table.Name, FromColumns: from, To: t.Name, ToColumns: []string{a.Column}, ToTarget: a.Target})
	}
	return nil
}

// expand adds n's children, depth first.
func (r *resolver) expand(n *Node) error {
	if n.Action != config.ActionDelete && n.Action != config.ActionSoft {
		return nil // detach, keep and block stop the cascade
	}
	var edges []*Edge
	if n.Parent == nil {
		edges = append(edges, r.rootExtra...)
	}
	for _, fk := range r.schemas[n.Target].Children(n.Table.Name) {
		edges = append(edges, &Edge{Kind: EdgeFK, FK: fk, From: fk.Parent, FromColumns: fk.RefColumns, To: fk.Child, ToColumns: fk.Columns, ToTarget: n.Target})
	}
	for _, e := range edges {
		sch := r.schemas[e.ToTarget]
		child := sch.Tables[e.To]
		if child == nil {
			return fmt.Errorf("edge %s leads to unknown table %s", e.Name(), e.To)
		}
		c := &Node{Target: e.ToTarget, Table: child, Edge: e, Parent: n, Depth: n.Depth + 1}
		if err := r.decide(n, c); err != nil {
			return err
		}
		if c.Action == config.ActionDelete || c.Action == config.ActionSoft {
			if a := ancestor(n, c); a != nil {
				n.Back = append(n.Back, BackEdge{Edge: e, To: a})
				continue
			}
		}
		if len(r.plan.Nodes) >= MaxNodes {
			return fmt.Errorf("kind %s: the cascade has more than %d paths; cut it with keep or block rules (tables: or edges: in the policy)", r.kind.Name, MaxNodes)
		}
		n.Children = append(n.Children, c)
		r.add(c)
		if err := r.expand(c); err != nil {
			return err
		}
	}
	return nil
}

// ancestor finds an ancestor of n (or n) in c's target with c's table and action.
func ancestor(n, c *Node) *Node {
	for a := n; a != nil; a = a.Parent {
		if a.Target == c.Target && a.Table == c.Table && a.Action == c.Action {
			return a
		}
	}
	return nil
}

// decide sets c's action from its parent's action and the rules: edge rule, then table rule,
// then defaults; protect:true tables always block.
func (r *resolver) decide(parent, c *Node) error {
	e := c.Edge
	tableRule := r.tableRule(c.Table.Name)
	edgeRule := r.edgeRule(e)
	switch parent.Action {
	case config.ActionDelete:
		switch {
		case edgeRule != nil && edgeRule.UnderDelete != "":
			c.Action, c.Rule, c.Explicit = edgeRule.UnderDelete, "edge rule: under_delete: "+edgeRule.UnderDelete, true
		case tableRule != nil && tableRule.UnderDelete != "":
			c.Action, c.Rule, c.Explicit = tableRule.UnderDelete, "table rule: under_delete: "+tableRule.UnderDelete, true
		case e.Kind == EdgeOwns:
			c.Action, c.Rule, c.Explicit = config.ActionDelete, "owns: deleted with its owner unless still referenced", true
		case e.Kind == EdgeAlso:
			c.Action, c.Rule, c.Explicit = config.ActionDelete, "also link: deleted with the root", true
		case r.cfg.Defaults.UnderDelete == config.Follow:
			c.Action = followAction(e.FK.OnDelete)
			c.Rule = "default follow: ON DELETE " + e.FK.OnDelete
		default:
			c.Action = r.cfg.Defaults.UnderDelete
			c.Rule = "default under_delete: " + c.Action
		}
	case config.ActionSoft:
		rule := ""
		switch {
		case edgeRule != nil && edgeRule.UnderSoft != "":
			rule, c.Rule, c.Explicit = edgeRule.UnderSoft, "edge rule: under_soft: "+edgeRule.UnderSoft, true
		case tableRule != nil && tableRule.UnderSoft != "":
			rule, c.Rule, c.Explicit = tableRule.UnderSoft, "table rule: under_soft: "+tableRule.UnderSoft, true
		default:
			rule, c.Rule = r.cfg.Defaults.UnderSoft, "default under_soft: "+r.cfg.Defaults.UnderSoft
		}
		col, err := r.tombstone(c.Target, c.Table)
		if err != nil {
			return err
		}
		switch rule {
		case config.Auto:
			if col != nil {
				c.Action = config.ActionSoft
			} else {
				c.Action = config.ActionKeep
				c.Rule += " (no tombstone column)"
			}
		case config.ActionSoft:
			if col == nil {
				c.Action = config.ActionBlock
				c.BlockReason = fmt.Sprintf("under_soft: soft, but %s has no tombstone column", c.Table.Name)
			} else {
				c.Action = config.ActionSoft
			}
		default:
			c.Action = rule
		}
	}
	switch c.Action {
	case config.ActionSoft:
		col, err := r.tombstone(c.Target, c.Table)
		if err != nil {
			return err
		}
		c.Tombstone = col
	case config.ActionDetach:
		r.detachColumns(c)
	case config.ActionBlock:
		if c.BlockReason == "" {
			if e.FK != nil && e.Kind == EdgeFK {
				c.BlockReason = fmt.Sprintf("%s is ON DELETE %s", e.FK.Name, e.FK.OnDelete)
			} else {
				c.BlockReason = c.Rule
			}
		}
	}
	if tableRule != nil && tableRule.Protect && c.Action != config.ActionKeep {
		c.Action, c.Explicit = config.ActionBlock, true
		c.Rule = "table rule: protect: true"
		c.BlockReason = fmt.Sprintf("%s is protected", c.Table.Name)
	}
	return nil
}

func (r *resolver) detachColumns(c *Node) {
	e := c.Edge
	cols := e.ToColumns
	if e.FK != nil && e.Kind == EdgeFK {
		if len(e.FK.SetColumns) > 0 {
			cols = e.FK.SetColumns
		}
		c.DetachDefault = e.FK.OnDelete == "SET DEFAULT" && !c.Explicit
	}
	c.DetachColumns = cols
	if c.DetachDefault {
		return
	}
	for _, name := range cols {
		if col := c.Table.Column(name); col != nil && col.NotNull {
			c.Action = config.ActionBlock
			c.BlockReason = fmt.Sprintf("cannot detach: %s.%s is NOT NULL", c.Table.Name.Name, name)
			return
		}
	}
}

func followAction(onDelete string) string {
	switch onDelete {
	case "CASCADE":
		return config.ActionDelete
	case "SET NULL", "SET DEFAULT":
		return config.ActionDetach
	}
	return config.ActionBlock
}

// tableRule finds the rule for a table, by "schema.table" or by bare name.
func (r *resolver) tableRule(t pg.Table) *config.TableRule {
	return TableRuleFor(r.cfg, t)
}

// TableRuleFor finds the rule for a table, by "schema.table" or by bare name.
func TableRuleFor(cfg *config.Config, t pg.Table) *config.TableRule {
	if tr, ok := cfg.Tables[t.String()]; ok {
		return tr
	}
	return cfg.Tables[t.Name]
}

// edgeRule finds the rule for an edge: "table.col", "table.col1,col2", with optional schema.
func (r *resolver) edgeRule(e *Edge) *config.EdgeRule {
	if e.Kind == EdgeOwns {
		return nil
	}
	for _, k := range EdgeKeys(e) {
		if er, ok := r.cfg.Edges[k]; ok {
			return er
		}
	}
	return nil
}

// EdgeKeys are the names an edge rule may use for e, most specific first.
func EdgeKeys(e *Edge) []string {
	cols := strings.Join(e.ToColumns, ",")
	keys := []string{e.To.String() + "." + cols, e.To.Name + "." + cols}
	if len(e.ToColumns) > 1 {
		keys = append(keys, e.To.String()+"."+e.ToColumns[0], e.To.Name+"."+e.ToColumns[0])
	}
	return keys
}

// tombstone returns the table's tombstone column: the declared one (tables.X.soft), else the
// detected one, else nil.
func (r *resolver) tombstone(target string, t *schema.Table) (*schema.Column, error) {
	tr := r.tableRule(t.Name)
	if tr == nil || tr.Soft == "" {
		return t.Tombstone, nil
	}
	col := t.Column(tr.Soft)
	key := "tables." + t.Name.Name
	if _, ok := r.cfg.Tables[t.Name.String()]; ok {
		key = "tables." + t.Name.String()
	}
	if col == nil {
		return nil, &Error{Where: r.cfg.Where(key + ".soft"), Path: key + ".soft", Msg: fmt.Sprintf("table %s (target %s) has no column %q", t.Name, target, tr.Soft)}
	}
	if !TombstoneType(col) {
		return nil, &Error{Where: r.cfg.Where(key + ".soft"), Path: key + ".soft", Msg: fmt.Sprintf("tombstone column %s.%s is %s; it must be timestamp, timestamptz or boolean", t.Name.Name, col.Name, col.Type)}
	}
	return col, nil
}

// TombstoneType reports whether a column can hold a tombstone.
func TombstoneType(c *schema.Column) bool {
	switch c.Type {
	case "timestamp with time zone", "timestamp without time zone", "boolean":
		return true
	}
	return false
}

// IsBoolean reports whether a tombstone column is a flag (set true) rather than a time.
func IsBoolean(c *schema.Column) bool { return c.Type == "boolean" }

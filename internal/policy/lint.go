package policy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tombstone-console/tombstone/internal/config"
	"github.com/tombstone-console/tombstone/internal/schema"
)

// Finding is one problem `console policy check` reports.
type Finding struct {
	Kind  string `json:"kind,omitempty"`
	Code  string `json:"code"`
	Edge  string `json:"edge,omitempty"`
	Table string `json:"table,omitempty"`
	Where string `json:"where,omitempty"` // file:line:col of the rule, when one is involved
	Msg   string `json:"message"`
	Fix   string `json:"fix,omitempty"`
}

func (f Finding) String() string {
	var b strings.Builder
	if f.Where != "" {
		b.WriteString(f.Where + ": ")
	}
	if f.Kind != "" {
		b.WriteString("kind " + f.Kind + ": ")
	}
	if f.Edge != "" {
		b.WriteString(f.Edge + ": ")
	} else if f.Table != "" {
		b.WriteString(f.Table + ": ")
	}
	b.WriteString(f.Msg)
	if f.Fix != "" {
		b.WriteString(" (fix: " + f.Fix + ")")
	}
	return b.String()
}

// Inventory is, per kind, which tables get which action, and which tables carry tombstone
// columns: the always-current answer to "where do we still hard-delete?".
type Inventory struct {
	Kind    string           `json:"kind"`
	Target  string           `json:"target"`
	Root    string           `json:"root"`
	Tables  []InventoryTable `json:"tables"`
	Targets []string         `json:"targets"`
}

// InventoryTable is one table a kind reaches.
type InventoryTable struct {
	Target    string   `json:"target"`
	Table     string   `json:"table"`
	Actions   []string `json:"actions"`
	Tombstone string   `json:"tombstone_column,omitempty"`
	Edges     []string `json:"edges"`
}

// Lint resolves every kind and reports problems. A kind that cannot be resolved at all (unknown
// table, column) gives one finding for that and nothing else.
func Lint(cfg *config.Config, schemas map[string]*schema.Schema, strict bool) ([]Finding, []Inventory) {
	var out []Finding
	var inv []Inventory
	for _, name := range cfg.KindNames() {
		plan, err := Resolve(cfg, name, schemas)
		if err != nil {
			f := Finding{Kind: name, Code: "unresolved", Msg: err.Error()}
			if pe, ok := err.(*Error); ok {
				f.Where, f.Msg = pe.Where, pe.Path+": "+pe.Msg
			}
			out = append(out, f)
			continue
		}
		out = append(out, lintPlan(cfg, plan, strict)...)
		inv = append(inv, inventory(plan))
	}
	out = append(out, lintRules(cfg, schemas)...)
	return out, inv
}

func lintPlan(cfg *config.Config, plan *Plan, strict bool) []Finding {
	var out []Finding
	kind := plan.Kind.Name
	seen := map[string]bool{}
	add := func(f Finding) {
		key := f.Code + "\x00" + f.Edge + "\x00" + f.Table
		if seen[key] {
			return
		}
		seen[key] = true
		f.Kind = kind
		out = append(out, f)
	}
	nullable := map[*schema.FK]bool{}
	for _, n := range plan.Nodes {
		if n.Edge == nil {
			continue
		}
		e := n.Edge
		where := ""
		for _, k := range EdgeKeys(e) {
			if _, ok := cfg.Edges[k]; ok {
				where = cfg.Where("edges." + k)
			}
		}
		switch n.Action {
		case config.ActionBlock:
			add(Finding{Code: "block", Edge: e.Name(), Where: where, Msg: "reaching rows here blocks the request: " + n.BlockReason,
				Fix: fmt.Sprintf("if these rows should go with the %s, add edges: {%q: {under_delete: delete}} (or detach)", kind, EdgeKeys(e)[1])})
		}
		if strings.HasPrefix(n.BlockReason, "cannot detach") {
			add(Finding{Code: "detach_not_null", Edge: e.Name(), Where: where, Msg: n.BlockReason, Fix: "delete these rows instead (under_delete: delete), or make the column nullable"})
		}
		if e.Kind == EdgeFK && !e.FK.Indexed && n.Action != config.ActionKeep {
			add(Finding{Code: "unindexed_fk", Edge: e.Name(), Msg: "the FK columns have no index, so each cascade step scans " + e.To.String(),
				Fix: fmt.Sprintf("CREATE INDEX ON %s (%s)", e.To.Quoted(), strings.Join(e.ToColumns, ", "))})
		}
		if e.Kind == EdgeAlso {
			if from, to := plan.Root.Table.Column(e.FromColumns[0]), n.Table.Column(e.ToColumns[0]); from != nil && to != nil && !compatibleTypes(from.Type, to.Type) {
				add(Finding{Code: "also_type", Edge: e.Name(), Msg: fmt.Sprintf("the linked column %s is %s but the root's %s is %s: the root's value is cast to %s, which fails or never matches",
					e.ToColumns[0], to.Type, e.FromColumns[0], from.Type, to.Type),
					Fix: fmt.Sprintf("link a column of the root's type (%s), or name the root column it matches with matches:", from.Type)})
			}
			if !n.Table.IndexedOn(e.ToColumns) {
				add(Finding{Code: "unindexed_also", Edge: e.Name(), Msg: "the linked column has no index, so finding the root's rows scans " + e.To.String(),
					Fix: fmt.Sprintf("CREATE INDEX ON %s (%s)", e.To.Quoted(), strings.Join(e.ToColumns, ", "))})
			}
		}
		if n.Parent != nil && n.Parent.Action == config.ActionSoft && n.Action == config.ActionKeep && !n.Explicit && n.Table.Tombstone == nil {
			add(Finding{Code: "missing_tombstone", Table: n.Table.Name.String(), Edge: e.Name(),
				Msg: "under a soft delete this table is kept because it has no tombstone column, so its rows stay visible",
				Fix: fmt.Sprintf("add a deleted_at timestamptz column to %s, or say so explicitly with tables: {%s: {under_soft: keep}}", n.Table.Name, n.Table.Name.Name)})
		}
		if strict && !n.Explicit && e.Kind == EdgeFK {
			add(Finding{Code: "no_explicit_rule", Edge: e.Name(), Msg: fmt.Sprintf("reached with action %s by %s, not by an explicit rule", n.Action, n.Rule),
				Fix: fmt.Sprintf("add edges: {%q: {%s: %s}} or a tables: rule", EdgeKeys(e)[1], underKey(n.Parent.Action), n.Action)})
		}
		if e.FK != nil {
			nullable[e.FK] = e.FK.Nullable
		}
	}
	for _, n := range plan.Nodes {
		for _, b := range n.Back {
			if b.Edge.FK == nil {
				continue
			}
			// A cycle whose edges are all NOT NULL cannot have its rows inserted or deleted one
			// at a time without deferrable constraints.
			allNotNull := !b.Edge.FK.Nullable
			for m := n; m != b.To && m != nil && allNotNull; m = m.Parent {
				if m.Edge != nil && m.Edge.FK != nil && m.Edge.FK.Nullable {
					allNotNull = false
				}
			}
			if allNotNull && !b.Edge.FK.Deferrable {
				add(Finding{Code: "cycle_not_null", Edge: b.Edge.Name(), Msg: "this cycle has no nullable edge, so its rows can only be deleted all at once",
					Fix: "make one FK of the cycle nullable or DEFERRABLE"})
			}
		}
	}
	return out
}

func underKey(parentAction string) string {
	if parentAction == config.ActionSoft {
		return "under_soft"
	}
	return "under_delete"
}

// lintRules checks table and edge rules that name things the schemas do not have.
func lintRules(cfg *config.Config, schemas map[string]*schema.Schema) []Finding {
	var out []Finding
	tables := sortedTableRules(cfg)
	for _, name := range tables {
		r := cfg.Tables[name]
		found := false
		for _, s := range schemas {
			t, err := s.Table(name)
			if err != nil {
				continue
			}
			found = true
			if r.Soft != "" {
				col := t.Column(r.Soft)
				switch {
				case col == nil:
					out = append(out, Finding{Code: "unknown_column", Table: name, Where: cfg.Where("tables." + name + ".soft"), Msg: fmt.Sprintf("no column %q", r.Soft)})
				case !TombstoneType(col):
					out = append(out, Finding{Code: "tombstone_type", Table: name, Where: cfg.Where("tables." + name + ".soft"),
						Msg: fmt.Sprintf("tombstone column %s is %s", r.Soft, col.Type), Fix: "use timestamptz (set to now()) or boolean (set to true)"})
				}
			}
		}
		if !found {
			out = append(out, Finding{Code: "unknown_table", Table: name, Where: cfg.Where("tables." + name), Msg: "no such table in any target"})
		}
	}
	for _, key := range edgeRuleKeys(cfg) {
		if !edgeExists(key, schemas) {
			out = append(out, Finding{Code: "unknown_edge", Edge: key, Where: cfg.Where("edges." + key), Msg: "no foreign key or link matches this edge rule"})
		}
	}
	return out
}

func sortedTableRules(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Tables))
	for n := range cfg.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func edgeRuleKeys(cfg *config.Config) []string {
	keys := make([]string, 0, len(cfg.Edges))
	for k := range cfg.Edges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func edgeExists(key string, schemas map[string]*schema.Schema) bool {
	for _, s := range schemas {
		for _, fk := range s.FKs {
			e := &Edge{Kind: EdgeFK, To: fk.Child, ToColumns: fk.Columns}
			for _, k := range EdgeKeys(e) {
				if k == key {
					return true
				}
			}
		}
	}
	return false
}

func inventory(plan *Plan) Inventory {
	inv := Inventory{Kind: plan.Kind.Name, Target: plan.Root.Target, Root: plan.Root.Action, Targets: plan.Targets}
	idx := map[string]*InventoryTable{}
	for _, n := range plan.Nodes {
		key := n.Target + "\x00" + n.Table.Name.String()
		it := idx[key]
		if it == nil {
			it = &InventoryTable{Target: n.Target, Table: n.Table.Name.String()}
			if n.Table.Tombstone != nil {
				it.Tombstone = n.Table.Tombstone.Name
			}
			if n.Tombstone != nil {
				it.Tombstone = n.Tombstone.Name
			}
			idx[key] = it
			inv.Tables = append(inv.Tables, InventoryTable{})
		}
		if !contains(it.Actions, n.Action) {
			it.Actions = append(it.Actions, n.Action)
		}
		if n.Edge != nil {
			it.Edges = append(it.Edges, n.Edge.Name()+" → "+n.Action)
		} else {
			it.Edges = append(it.Edges, "root → "+n.Action)
		}
	}
	inv.Tables = inv.Tables[:0]
	for _, n := range plan.Nodes {
		key := n.Target + "\x00" + n.Table.Name.String()
		if it, ok := idx[key]; ok {
			inv.Tables = append(inv.Tables, *it)
			delete(idx, key)
		}
	}
	return inv
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// compatibleTypes reports whether a linked column of type to can hold the root's values of
// type from: the same type (lengths and precisions aside), or both integers or numerics, or
// both text. The executor finds linked rows with to = ANY(root values cast to to), so any
// other pair either fails the cast or compares values that never match.
func compatibleTypes(from, to string) bool {
	f, t := typeFamily(from), typeFamily(to)
	if f == t {
		return true
	}
	return (f == "integer" && t == "numeric") || (f == "numeric" && t == "integer")
}

func typeFamily(typ string) string {
	base := typ
	if i := strings.IndexByte(base, '('); i >= 0 {
		base = strings.TrimSpace(base[:i]) + base[strings.IndexByte(base, ')')+1:]
	}
	switch base {
	case "smallint", "integer", "bigint":
		return "integer"
	case "numeric":
		return "numeric"
	case "text", "character varying", "character", "citext", "name":
		return "text"
	}
	return base
}

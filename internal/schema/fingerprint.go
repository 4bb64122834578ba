package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// fingerprintVersion starts the hashed text, so that a change of the canonical form below can
// never be mistaken for the same schema.
const fingerprintVersion = "tombstone-schema-fingerprint-v1\n"

type fpColumn struct {
	Name       string `json:"n"`
	Type       string `json:"t"`
	NotNull    bool   `json:"nn"`
	HasDefault bool   `json:"d"`
	Generated  bool   `json:"g"`
}

type fpTable struct {
	Schema      string     `json:"s"`
	Name        string     `json:"n"`
	Partitioned bool       `json:"p"`
	Columns     []fpColumn `json:"c"`
	PrimaryKey  []string   `json:"pk"`
	Uniques     [][]string `json:"u"`
	Indexes     [][]string `json:"i"`
	Tombstone   string     `json:"ts"`
	Declared    bool       `json:"tsd"`
}

type fpFK struct {
	Name            string   `json:"n"`
	Child           pg.Table `json:"c"`
	ChildPartition  pg.Table `json:"cp"`
	Columns         []string `json:"cc"`
	Parent          pg.Table `json:"p"`
	ParentPartition pg.Table `json:"pp"`
	RefColumns      []string `json:"pc"`
	OnDelete        string   `json:"od"`
	SetColumns      []string `json:"sc"`
	Deferrable      bool     `json:"df"`
	Deferred        bool     `json:"dd"`
	Indexed         bool     `json:"ix"`
	Nullable        bool     `json:"nl"`
}

// ComputeFingerprint returns the SHA-256 (hex) of a canonical serialisation of s: its tables
// with their columns, keys, indexes and tombstone columns, and its FKs, each in a fixed order
// independent of catalog order. Row estimates, the server version and settings are left out.
// Load sets Fingerprint to this value; it is exported for schemas assembled by hand.
func (s *Schema) ComputeFingerprint() string {
	names := slices.SortedFunc(maps.Keys(s.Tables), compareTables)
	doc := struct {
		Tables []fpTable `json:"t"`
		FKs    []fpFK    `json:"f"`
	}{Tables: make([]fpTable, 0, len(names))}
	for _, n := range names {
		t := s.Tables[n]
		ft := fpTable{
			Schema: n.Schema, Name: n.Name, Partitioned: t.Partitioned,
			PrimaryKey: t.PrimaryKey,
			Uniques:    slices.SortedFunc(slices.Values(t.Uniques), slices.Compare),
			Indexes:    slices.SortedFunc(slices.Values(t.Indexes), slices.Compare),
			Declared:   t.TombstoneDeclared,
		}
		for _, c := range t.Columns {
			ft.Columns = append(ft.Columns, fpColumn{c.Name, c.Type, c.NotNull, c.HasDefault, c.Generated})
		}
		if t.Tombstone != nil {
			ft.Tombstone = t.Tombstone.Name
		}
		doc.Tables = append(doc.Tables, ft)
	}
	fks := slices.Clone(s.FKs)
	slices.SortFunc(fks, compareFKs)
	for _, fk := range fks {
		doc.FKs = append(doc.FKs, fpFK{
			Name: fk.Name, Child: fk.Child, ChildPartition: fk.ChildPartition, Columns: fk.Columns,
			Parent: fk.Parent, ParentPartition: fk.ParentPartition, RefColumns: fk.RefColumns,
			OnDelete: fk.OnDelete, SetColumns: fk.SetColumns, Deferrable: fk.Deferrable,
			Deferred: fk.Deferred, Indexed: fk.Indexed, Nullable: fk.Nullable,
		})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic("schema: fingerprint: " + err.Error()) // only strings, bools and slices of them
	}
	h := sha256.New()
	h.Write([]byte(fingerprintVersion))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

package audit

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// formulaStart reports whether a spreadsheet would read a cell as a formula (or strip a
// leading control character): the characters EscapeCell guards.
func formulaStart(c string) bool {
	return c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0]))
}

// FuzzCSVExport writes an event with arbitrary text through the CSV export (eventCells and
// writeCSVRecord) and reads it back with encoding/csv and with the verifier's strict reader.
// Every cell as a spreadsheet sees it is either plain text or starts with the ' escape; the
// unescaped cells are the event's values (encoding/csv turns CRLF inside a field into LF, as
// it documents; the strict reader keeps every byte), and the event parses back unchanged.
func FuzzCSVExport(f *testing.F) {
	f.Add("alice", "=HYPERLINK(\"https://evil.example\",\"x\")", "+1", "-2", "@SUM(A1)")
	f.Add("'quoted", "\tTab", "\rCR", "line\r\nbreak", "a,b\"c")
	f.Add("", "", "", "", "")
	f.Add("''", "'=", "=", "é=", "\u2028")
	f.Fuzz(func(t *testing.T, actor, reason, label, key, ip string) {
		for _, c := range []string{actor, reason, label, key} {
			if c != "" && EscapeCell(c) != c && !formulaStart(c) && c[0] != '\'' {
				t.Fatalf("EscapeCell(%q) escaped a harmless cell", c)
			}
		}
		for _, v := range []string{actor, reason, label, key, ip} {
			esc := EscapeCell(v)
			if formulaStart(esc) {
				t.Fatalf("EscapeCell(%q) = %q starts a formula", v, esc)
			}
			back, err := UnescapeCell(esc)
			if err != nil || back != v {
				t.Fatalf("UnescapeCell(EscapeCell(%q)) = %q, %v", v, back, err)
			}
		}
		for _, v := range []string{actor, reason, label, key, ip} {
			if !utf8.ValidString(v) {
				return // events hold PostgreSQL text, always valid UTF-8
			}
		}
		id := int64(7)
		e := Event{
			Seq: 42, At: time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC), ActorID: &id, ActorName: actor,
			Action: ActionApproved, RequestID: &id, Kind: "tenant", Target: "app", RootKey: key, RootLabel: label,
			Reason: reason, PlanDigest: "-1", PolicyHash: "=1", ClientIP: ip, PrevHash: GenesisHash, Hash: "h",
		}
		cells := make([]string, len(CSVHeader))
		if err := eventCells(e, cells); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		writeCSVRecord(&b, CSVHeader)
		writeCSVRecord(&b, cells)

		recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
		if err != nil {
			t.Fatalf("encoding/csv cannot read the export: %v\n%q", err, b.String())
		}
		if len(recs) != 2 || !slices.Equal(recs[0], CSVHeader) {
			t.Fatalf("encoding/csv read %d records: %q", len(recs), recs)
		}
		for i, c := range recs[1] {
			if formulaStart(c) {
				t.Errorf("%s cell %q starts a formula", CSVHeader[i], c)
			}
			want := strings.ReplaceAll(cells[i], "\r\n", "\n")
			if c != want {
				t.Errorf("%s: encoding/csv read %q, want %q", CSVHeader[i], c, want)
			}
		}
		cr := &csvReader{r: bufio.NewReader(bytes.NewReader(b.Bytes()))}
		if _, err := cr.read(nil); err != nil {
			t.Fatalf("strict reader, header: %v", err)
		}
		rec, err := cr.read(nil)
		if err != nil {
			t.Fatalf("strict reader: %v", err)
		}
		if !slices.Equal(rec, cells) {
			t.Fatalf("strict reader read %q, want %q", rec, cells)
		}
		if _, err := cr.read(nil); err != io.EOF {
			t.Fatalf("strict reader: trailing data: %v", err)
		}
		got, err := parseCells(rec)
		if err != nil {
			t.Fatalf("parseCells: %v", err)
		}
		e.Details = nil
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", got, e)
		}
	})
}

// FuzzCanonicalJSON decodes arbitrary JSON as audit details and checks the canonical form:
// it is valid JSON with the same meaning as the input, it is a fixed point (decoding and
// encoding it again gives the same bytes), and it does not depend on the order of members in
// the input or on Go's map iteration order, so the event hash does not either.
func FuzzCanonicalJSON(f *testing.F) {
	f.Add([]byte(`{"b":1,"a":[true,null,"x"],"c":{"é":"\u2028","ä":-5}}`))
	f.Add([]byte(`{"tables":{"public.users":1200,"public.tenants":1},"errors":[]}`))
	f.Add([]byte(`{"\ud83d\ude00":1,"\uffff":2,"a\u0000":"\b\f\n\r\t\"\\"}`))
	f.Add([]byte(`{"n":9007199254740991,"m":-9007199254740991}`))
	f.Add([]byte(`{"dup":1,"dup":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := decodeDetails(raw)
		if err != nil {
			return // not details: not an object, a float, out of range
		}
		if m == nil { // null or {}: no details
			if canon, err := detailsJSON(m); err != nil || canon != "{}" {
				t.Fatalf("no details encode as %q, %v", canon, err)
			}
			return
		}
		canon, err := detailsJSON(m)
		if err != nil {
			return // too deep
		}
		if !json.Valid([]byte(canon)) {
			t.Fatalf("canonical form is not JSON: %q", canon)
		}
		if want, got := decodeAny(t, raw), decodeAny(t, []byte(canon)); !reflect.DeepEqual(want, got) {
			t.Fatalf("canonical form changed the value:\n in %q\nout %q", raw, canon)
		}
		for range 3 { // Go randomises map iteration on every range
			if again, _ := detailsJSON(m); again != canon {
				t.Fatalf("canonical form is not stable: %q then %q", canon, again)
			}
		}
		m2, err := decodeDetails([]byte(canon))
		if err != nil {
			t.Fatalf("canonical form does not decode: %v", err)
		}
		if again, _ := detailsJSON(m2); again != canon {
			t.Fatalf("canonical form is not a fixed point: %q then %q", canon, again)
		}
		var rev bytes.Buffer
		writeReversed(&rev, m)
		m3, err := decodeDetails(rev.Bytes())
		if err != nil {
			t.Fatalf("members in reverse order do not decode: %v\n%q", err, rev.String())
		}
		if again, _ := detailsJSON(m3); again != canon {
			t.Fatalf("canonical form depends on member order: %q, reversed %q", canon, again)
		}
		e := Event{Seq: 1, ActorName: "a", Action: ActionApproved, PrevHash: GenesisHash, Details: m}
		h1, err1 := computeHash(e)
		e.Details = m3
		h2, err2 := computeHash(e)
		if err1 != nil || err2 != nil || h1 != h2 {
			t.Fatalf("event hash depends on member order: %s %v, %s %v", h1, err1, h2, err2)
		}
	})
}

// decodeAny decodes JSON with numbers kept as text.
func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

// writeReversed writes a normalised value as JSON with object members in reverse key order.
func writeReversed(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		slices.Reverse(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
			writeReversed(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeReversed(b, x)
		}
		b.WriteByte(']')
	default:
		vb, _ := json.Marshal(v)
		b.Write(vb)
	}
}

package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tombstone-console/tombstone/internal/pg"
	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

// formulaCases covers every character that triggers escaping, the escape character itself, and
// values that must be left alone.
var formulaCases = []struct {
	value   string
	escaped string
}{
	{"=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"},
	{"+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"},
	{"-2+3", "'-2+3"},
	{"@SUM(A1:A9)", "'@SUM(A1:A9)"},
	{"\t=1", "'\t=1"},
	{"\r=1", "'\r=1"},
	{"\r\n=1", "'\r\n=1"},
	{"'=1", "''=1"},
	{"'", "''"},
	{"''", "'''"},
	{"=", "'="},
	{"-", "'-"},
	{"plain", "plain"},
	{"a=b", "a=b"},
	{" =1", " =1"},
	{"\n=1", "\n=1"},
	{"", ""},
	{"é=1", "é=1"},
}

func TestFormulaInjectionEscape(t *testing.T) {
	t.Parallel()
	for _, tc := range formulaCases {
		got := EscapeCell(tc.value)
		require.Equal(t, tc.escaped, got, "%q", tc.value)
		if got != "" {
			require.NotContains(t, "=+-@\t\r", got[:1], "%q still starts with a trigger", tc.value)
		}
		back, err := UnescapeCell(got)
		require.NoError(t, err)
		require.Equal(t, tc.value, back)

		// Through a standard CSV reader and writer, as a spreadsheet import would see it.
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		require.NoError(t, w.Write([]string{got, "x"}))
		w.Flush()
		rec, err := csv.NewReader(&b).Read()
		require.NoError(t, err)
		if !strings.Contains(tc.value, "\r\n") { // encoding/csv turns a quoted CRLF into LF
			back, err = UnescapeCell(rec[0])
			require.NoError(t, err)
			require.Equal(t, tc.value, back, "%q via encoding/csv", tc.value)
		}

		// Through this package's writer and strict reader, byte for byte.
		b.Reset()
		writeCSVRecord(&b, []string{got, "x"})
		rec, err = (&csvReader{r: bufio.NewReader(&b)}).read(nil)
		require.NoError(t, err)
		back, err = UnescapeCell(rec[0])
		require.NoError(t, err)
		require.Equal(t, tc.value, back)
	}
	for _, c := range []string{"'plain", "'", "=1", "'\n"} {
		_, err := UnescapeCell(c)
		require.Error(t, err, "%q is not something EscapeCell writes", c)
	}
}

// nastyEvents appends events whose values exercise quoting, escaping and Unicode.
func nastyEvents(t *testing.T, db *pg.DB) {
	t.Helper()
	ctx := context.Background()
	for _, tc := range formulaCases {
		_, err := Append(ctx, db.Bun, event(ActionRequested, func(e *Event) {
			e.Reason = tc.value
			e.RootLabel = tc.value + `, "quoted", and more`
			e.Details = map[string]any{"note": tc.value, "n": -1, "list": []any{"=x", nil}}
		}))
		require.NoError(t, err)
	}
	_, err := Append(ctx, db.Bun, event(ActionUserAdded, func(e *Event) {
		e.ActorID, e.RequestID, e.Details, e.ClientIP = nil, nil, nil, ""
		e.Reason = "line one\r\nline two\nthree\rfour, \"five\" 😀 \u2028"
		e.ActorName = SystemActor
	}))
	require.NoError(t, err)
}

func TestExportCSVVerifiesOffline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	nastyEvents(t, db)

	var out bytes.Buffer
	n, err := Export(ctx, db.Bun, &out, FormatCSV, Filter{}, Actor{ID: ptr(9), Name: "bob", ClientIP: "198.51.100.7"})
	require.NoError(t, err)
	headSeq, headHash, err := Head(ctx, db.Bun)
	require.NoError(t, err)
	require.Equal(t, headSeq, n, "the export includes its own event")
	file := out.Bytes()
	require.True(t, bytes.HasPrefix(file, []byte(strings.Join(CSVHeader, ",")+"\r\n")))

	// The export's own event is the last row, with who and which filters.
	last, _, err := List(ctx, db.Bun, Filter{Action: ActionExported}, 0, 1)
	require.NoError(t, err)
	require.Equal(t, headSeq, last[0].Seq)
	require.Equal(t, "bob", last[0].ActorName)
	require.Equal(t, map[string]any{"format": "csv", "filter": map[string]any{}}, last[0].Details)

	// No cell begins with a trigger character.
	r := csv.NewReader(bytes.NewReader(file))
	r.FieldsPerRecord = len(CSVHeader)
	recs, err := r.ReadAll()
	require.NoError(t, err)
	for _, rec := range recs {
		for _, c := range rec {
			if c != "" {
				require.NotContains(t, "=+-@\t\r", c[:1], "cell %q", c)
			}
		}
	}

	res, err := VerifyCSV(bytes.NewReader(file), CSVOptions{})
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, "verified events 1.."+itoa(headSeq)+", head "+headHash, res.String())

	// Every single changed byte is caught.
	headerLen := len(strings.Join(CSVHeader, ",")) + 2
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 0x01
		res, err := VerifyCSV(bytes.NewReader(bad), CSVOptions{})
		if i < headerLen {
			if err == nil {
				require.False(t, res.OK, "byte %d of the header", i)
			}
			continue
		}
		require.NoError(t, err, "byte %d", i)
		require.False(t, res.OK, "flipping byte %d (%q) went unnoticed", i, file[i])
	}

	// A file cut after a row verifies as far as it goes (a checkpoint catches a short tail);
	// a removed row in the middle is a gap.
	cut := bytes.LastIndex(file[:len(file)-2], []byte("\r\n")) + 2
	res, err = VerifyCSV(bytes.NewReader(file[:cut]), CSVOptions{})
	require.NoError(t, err)
	require.True(t, res.OK)
	require.Equal(t, headSeq-1, res.Last)
	var rows bytes.Buffer
	w := csv.NewWriter(&rows)
	w.UseCRLF = true
	require.NoError(t, w.Write(CSVHeader))
	for _, rec := range recs[1:] {
		if rec[0] != "3" {
			require.NoError(t, w.Write(rec))
		}
	}
	w.Flush()
	res, err = VerifyCSV(&rows, CSVOptions{})
	require.NoError(t, err)
	require.False(t, res.OK)
	require.Equal(t, int64(3), res.BrokenAt)
}

func TestExportFiltered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	appendN(t, db.Bun, 3)
	_, err := Append(ctx, db.Bun, event(ActionRejected))
	require.NoError(t, err)
	appendN(t, db.Bun, 2)

	var out bytes.Buffer
	n, err := Export(ctx, db.Bun, &out, FormatCSV, Filter{Action: ActionApproved}, Actor{Name: "bob"})
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	res, err := VerifyCSV(bytes.NewReader(out.Bytes()), CSVOptions{})
	require.NoError(t, err)
	require.Equal(t, "broken at event 4: event is missing (the next event is 5)", res.String())
	res, err = VerifyCSV(bytes.NewReader(out.Bytes()), CSVOptions{AllowGaps: true})
	require.NoError(t, err)
	require.True(t, res.OK, res.String())
	require.Equal(t, int64(1), res.Gaps)
	require.Contains(t, res.String(), "verified 5 events between 1..6 (1 gaps")

	_, err = Export(ctx, db.Bun, &out, "xlsx", Filter{}, Actor{Name: "bob"})
	require.ErrorIs(t, err, pg.ErrInvalid)
	_, err = Export(ctx, db.Bun, &out, FormatCSV, Filter{Action: "nope"}, Actor{Name: "bob"})
	require.ErrorIs(t, err, pg.ErrInvalid)
}

func TestExportJSONL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Fresh(t)
	nastyEvents(t, db)
	var out bytes.Buffer
	n, err := Export(ctx, db.Bun, &out, FormatJSONL, Filter{RequestID: 42}, Actor{Name: "bob"})
	require.NoError(t, err)
	require.Equal(t, int64(len(formulaCases)), n)
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	var rows int
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		hash := m["hash"].(string)
		delete(m, "hash")
		// Re-encoding without the hash and hashing gives the stored hash.
		e, err := eventFromJSON(m)
		require.NoError(t, err)
		h, err := computeHash(e)
		require.NoError(t, err)
		require.Equal(t, hash, h)
		rows++
	}
	require.Equal(t, int(n), rows)
}

func TestVerifyCSVRejectsOtherFiles(t *testing.T) {
	t.Parallel()
	_, err := VerifyCSV(strings.NewReader("a,b\r\n1,2\r\n"), CSVOptions{})
	require.ErrorContains(t, err, "not a Tombstone audit export")
	_, err = VerifyCSV(strings.NewReader(""), CSVOptions{})
	require.Error(t, err)
	res, err := VerifyCSV(strings.NewReader(strings.Join(CSVHeader, ",")+"\r\n"), CSVOptions{})
	require.NoError(t, err)
	require.Equal(t, "no events to verify", res.String())
}

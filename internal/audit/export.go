package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Format is an export format.
type Format string

const (
	// FormatCSV is RFC 4180 CSV in UTF-8 with CRLF line ends and a header row (CSVHeader).
	FormatCSV Format = "csv"
	// FormatJSONL is JSON Lines: per event, its canonical JSON with the hash member added.
	FormatJSONL Format = "jsonl"
)

// ParseFormat accepts "csv" and "jsonl".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatCSV, FormatJSONL:
		return Format(s), nil
	}
	return "", fmt.Errorf("%w: unknown export format %q (csv or jsonl)", pg.ErrInvalid, s)
}

// CSVHeader is the CSV export's header row, in column order.
var CSVHeader = []string{
	"seq", "at", "actor_id", "actor_name", "action", "request_id", "kind", "target", "root_key",
	"root_label", "reason", "plan_digest", "policy_hash", "details", "client_ip", "prev_hash", "hash",
}

// Export writes the events matching f to w, oldest first, and returns how many it wrote.
//
// It first appends and commits an ActionExported event naming by and the filters, so that an
// export is on record even if the stream is cut off; the rows are then read in a new
// REPEATABLE READ snapshot through a server-side cursor (constant memory, no LIMIT/OFFSET), so an
// export whose filters match its own event ends with it. Output is buffered; a write error stops
// the export. Export needs a *bun.DB because the exported event must commit on its own.
func Export(ctx context.Context, db *bun.DB, w io.Writer, format Format, f Filter, by Actor) (n int64, err error) {
	defer pg.Wrap(&err, "audit.Export(%s)", format)
	if _, err := ParseFormat(string(format)); err != nil {
		return 0, err
	}
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	_, err = Append(ctx, db, Event{
		ActorID:   by.ID,
		ActorName: by.Name,
		ClientIP:  by.ClientIP,
		Action:    ActionExported,
		Details:   map[string]any{"format": string(format), "filter": f.details()},
	})
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var line bytes.Buffer
	if format == FormatCSV {
		writeCSVRecord(&line, CSVHeader)
		if _, err := bw.Write(line.Bytes()); err != nil {
			return 0, err
		}
	}
	cells := make([]string, len(CSVHeader))
	err = stream(ctx, db, where, args, func(e Event) error {
		line.Reset()
		switch format {
		case FormatCSV:
			if err := eventCells(e, cells); err != nil {
				return err
			}
			writeCSVRecord(&line, cells)
		case FormatJSONL:
			if err := writeEventObject(&line, e, true); err != nil {
				return err
			}
			line.WriteByte('\n')
		}
		n++
		_, err := bw.Write(line.Bytes())
		return err
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// eventCells fills cells (len(CSVHeader)) with e's escaped CSV cells.
func eventCells(e Event, cells []string) error {
	d, err := detailsJSON(e.Details)
	if err != nil {
		return err
	}
	opt := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	raw := [...]string{
		strconv.FormatInt(e.Seq, 10), formatTime(e.At), opt(e.ActorID), e.ActorName, string(e.Action),
		opt(e.RequestID), e.Kind, e.Target, e.RootKey, e.RootLabel, e.Reason, e.PlanDigest,
		e.PolicyHash, d, e.ClientIP, e.PrevHash, e.Hash,
	}
	for i, v := range raw {
		cells[i] = EscapeCell(v)
	}
	return nil
}

// EscapeCell guards a CSV cell against formula injection: a value that begins with = + - @
// TAB (U+0009) or CR (U+000D), or with a single quote, gets one single quote (') in front.
// Quoting the quote too makes the escape reversible: UnescapeCell removes exactly one leading
// quote. Every cell of the export is escaped this way, including numeric ones.
func EscapeCell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + v
	}
	return v
}

// UnescapeCell reverses EscapeCell. It fails on a cell that EscapeCell could not have produced
// (a leading quote not followed by a character that needed escaping), so that an edited file
// cannot carry two spellings of one value.
func UnescapeCell(c string) (string, error) {
	if c == "" || c[0] != '\'' {
		if EscapeCell(c) != c {
			return "", fmt.Errorf("cell %q should have been escaped", truncate(c))
		}
		return c, nil
	}
	v := c[1:]
	if EscapeCell(v) != c {
		return "", fmt.Errorf("cell %q has a leading quote that is not an escape", truncate(c))
	}
	return v, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// writeCSVRecord appends one RFC 4180 record ending in CRLF. A field is quoted when it holds a
// comma, double quote, CR or LF; quotes inside are doubled. Nothing else is changed, so CR and
// LF inside values survive byte for byte.
func writeCSVRecord(b *bytes.Buffer, fields []string) {
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			b.WriteString(f)
			continue
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(f, `"`, `""`))
		b.WriteByte('"')
	}
	b.WriteString("\r\n")
}

// csvReader is a strict RFC 4180 reader: records end in CRLF, unquoted fields hold no quote,
// CR or LF, and quoted fields are kept byte for byte (encoding/csv turns CRLF inside a quoted
// field into LF, which would change hashed values).
type csvReader struct {
	r      *bufio.Reader
	record int
}

var errMalformed = errors.New("malformed CSV")

// read returns the next record, or io.EOF at the end of the input.
func (c *csvReader) read(fields []string) ([]string, error) {
	fields = fields[:0]
	if _, err := c.r.Peek(1); err == io.EOF {
		return nil, io.EOF
	}
	c.record++
	var f []byte
	for {
		b, err := c.next()
		if err != nil {
			return nil, err
		}
		f = f[:0]
		if b == '"' {
			if f, err = c.quoted(f); err != nil {
				return nil, err
			}
			if b, err = c.next(); err != nil {
				return nil, err
			}
		} else {
			for b != ',' && b != '\r' {
				if b == '"' || b == '\n' {
					return nil, fmt.Errorf("%w: record %d: stray %q in an unquoted field", errMalformed, c.record, b)
				}
				f = append(f, b)
				if b, err = c.next(); err != nil {
					return nil, err
				}
			}
		}
		fields = append(fields, string(f))
		switch b {
		case ',':
		case '\r':
			if nl, err := c.next(); err != nil || nl != '\n' {
				return nil, fmt.Errorf("%w: record %d: CR not followed by LF", errMalformed, c.record)
			}
			return fields, nil
		default:
			return nil, fmt.Errorf("%w: record %d: text after a closing quote", errMalformed, c.record)
		}
	}
}

// next reads one byte; the end of the input inside a record is malformed.
func (c *csvReader) next() (byte, error) {
	b, err := c.r.ReadByte()
	if err == io.EOF {
		return 0, fmt.Errorf("%w: record %d: the file ends inside a record", errMalformed, c.record)
	}
	return b, err
}

// quoted reads a quoted field after its opening quote, up to and including the closing quote.
func (c *csvReader) quoted(f []byte) ([]byte, error) {
	for {
		b, err := c.next()
		if err != nil {
			return nil, err
		}
		if b != '"' {
			f = append(f, b)
			continue
		}
		if nb, err := c.r.Peek(1); err == nil && nb[0] == '"' {
			_, _ = c.r.ReadByte()
			f = append(f, '"')
			continue
		}
		return f, nil
	}
}

// CSVOptions tune VerifyCSV.
type CSVOptions struct {
	// AllowGaps accepts missing runs of events, as in an export filtered by actor, action, kind
	// or request. Each event's own hash is still checked, and the link between consecutive
	// events, but deleted rows can no longer be told from filtered ones.
	AllowGaps bool
}

// VerifyCSV verifies an exported CSV file offline, without the database: the header, each
// event's hash over its (unescaped) cells, and the prev_hash links. The events must be
// contiguous unless opts.AllowGaps; the first event's prev_hash is trusted unless it is event 1.
// A file that is not a Tombstone audit export is an error; damage inside it is a broken Result
// naming the first event affected.
func VerifyCSV(r io.Reader, opts CSVOptions) (Result, error) {
	cr := &csvReader{r: bufio.NewReaderSize(r, 64<<10)}
	fields := make([]string, 0, len(CSVHeader))
	head, err := cr.read(fields)
	if err != nil {
		return Result{}, fmt.Errorf("audit.VerifyCSV: header: %w", err)
	}
	if strings.Join(head, ",") != strings.Join(CSVHeader, ",") {
		return Result{}, fmt.Errorf("audit.VerifyCSV: not a Tombstone audit export: the header is %q", truncate(strings.Join(head, ",")))
	}
	c := &chain{allowGaps: opts.AllowGaps}
	for {
		rec, err := cr.read(fields)
		if err == io.EOF {
			return c.result(), nil
		}
		if err != nil {
			if errors.Is(err, errMalformed) {
				c.broken(c.res.Last+1, "%v", err)
				return c.res, nil
			}
			return Result{}, fmt.Errorf("audit.VerifyCSV: %w", err)
		}
		e, err := parseCells(rec)
		if err != nil {
			c.broken(max(e.Seq, c.res.Last+1), "record %d: %v", cr.record, err)
			return c.res, nil
		}
		if !c.add(e) {
			return c.res, nil
		}
	}
}

// parseCells turns one CSV record back into an event. Every value must be in its canonical
// spelling; e.Seq is set as soon as it is known, for error reports.
func parseCells(rec []string) (e Event, err error) {
	if len(rec) != len(CSVHeader) {
		return e, fmt.Errorf("%d fields, want %d", len(rec), len(CSVHeader))
	}
	v := make([]string, len(rec))
	for i, c := range rec {
		if !utf8.ValidString(c) {
			return e, fmt.Errorf("%s: not valid UTF-8", CSVHeader[i])
		}
		if v[i], err = UnescapeCell(c); err != nil {
			return e, fmt.Errorf("%s: %w", CSVHeader[i], err)
		}
	}
	parseInt := func(name, s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			return 0, fmt.Errorf("%s: %q is not an integer", name, s)
		}
		return n, nil
	}
	optInt := func(name, s string) (*int64, error) {
		if s == "" {
			return nil, nil
		}
		n, err := parseInt(name, s)
		return &n, err
	}
	if e.Seq, err = parseInt("seq", v[0]); err != nil {
		return e, err
	}
	if e.At, err = parseTime(v[1]); err != nil {
		return e, fmt.Errorf("at: %w", err)
	}
	if e.ActorID, err = optInt("actor_id", v[2]); err != nil {
		return e, err
	}
	e.ActorName, e.Action = v[3], Action(v[4])
	if e.RequestID, err = optInt("request_id", v[5]); err != nil {
		return e, err
	}
	e.Kind, e.Target, e.RootKey, e.RootLabel = v[6], v[7], v[8], v[9]
	e.Reason, e.PlanDigest, e.PolicyHash = v[10], v[11], v[12]
	if e.Details, err = decodeDetails([]byte(v[13])); err != nil {
		return e, fmt.Errorf("details: %w", err)
	}
	if d, _ := detailsJSON(e.Details); d != v[13] {
		return e, fmt.Errorf("details are not canonical JSON")
	}
	e.ClientIP, e.PrevHash, e.Hash = v[14], v[15], v[16]
	return e, nil
}

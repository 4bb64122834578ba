package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// GenesisHash is the prev_hash of event 1.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// TimeLayout is how times appear in the canonical JSON, CSV and JSON Lines: UTC, microseconds.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// maxSafeInt is 2^53−1: larger integers do not survive a round trip through JavaScript or
// RFC 8785, so details may not hold them.
const maxSafeInt = 1<<53 - 1

// maxDepth bounds the nesting of details.
const maxDepth = 32

// formatTime renders t as the canonical UTC timestamp.
func formatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// parseTime accepts only the canonical form, so that a file cannot carry an equivalent but
// different spelling of a hashed value.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(TimeLayout, s)
	if err != nil || t.Format(TimeLayout) != s {
		return time.Time{}, fmt.Errorf("time %q is not in the form %s", s, TimeLayout)
	}
	return t, nil
}

// canonicalEvent returns the canonical JSON of e without its hash (see the package doc).
func canonicalEvent(e Event) ([]byte, error) {
	var b bytes.Buffer
	if err := writeEventObject(&b, e, false); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeEventObject writes the event's canonical object; withHash adds the hash member (JSON
// Lines export), still in sorted position.
func writeEventObject(b *bytes.Buffer, e Event, withHash bool) error {
	b.WriteByte('{')
	member := func(name string, first bool) {
		if !first {
			b.WriteByte(',')
		}
		writeString(b, name)
		b.WriteByte(':')
	}
	optInt := func(p *int64) {
		if p == nil {
			b.WriteString("null")
			return
		}
		b.WriteString(strconv.FormatInt(*p, 10))
	}
	// Members in sorted order; the names are ASCII, so byte order is RFC 8785 order.
	member("action", true)
	writeString(b, string(e.Action))
	member("actor_id", false)
	optInt(e.ActorID)
	member("actor_name", false)
	writeString(b, e.ActorName)
	member("at", false)
	writeString(b, formatTime(e.At))
	member("client_ip", false)
	writeString(b, e.ClientIP)
	member("details", false)
	if err := writeValue(b, mapOrEmpty(e.Details), 0); err != nil {
		return fmt.Errorf("details: %w", err)
	}
	if withHash {
		member("hash", false)
		writeString(b, e.Hash)
	}
	member("kind", false)
	writeString(b, e.Kind)
	member("plan_digest", false)
	writeString(b, e.PlanDigest)
	member("policy_hash", false)
	writeString(b, e.PolicyHash)
	member("prev_hash", false)
	writeString(b, e.PrevHash)
	member("reason", false)
	writeString(b, e.Reason)
	member("request_id", false)
	optInt(e.RequestID)
	member("root_key", false)
	writeString(b, e.RootKey)
	member("root_label", false)
	writeString(b, e.RootLabel)
	member("seq", false)
	b.WriteString(strconv.FormatInt(e.Seq, 10))
	member("target", false)
	writeString(b, e.Target)
	b.WriteByte('}')
	return nil
}

func mapOrEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// computeHash returns hex(SHA-256(prev_hash || canonical JSON)) for e.
func computeHash(e Event) (string, error) {
	doc, err := canonicalEvent(e)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(doc)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// detailsJSON is the canonical JSON of a normalised details map.
func detailsJSON(m map[string]any) (string, error) {
	var b bytes.Buffer
	if err := writeValue(&b, mapOrEmpty(m), 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

// writeValue writes a normalised value: nil, bool, string, int64, []any or map[string]any.
func writeValue(b *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested more than %d levels", maxDepth)
	}
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("string is not valid UTF-8")
		}
		writeString(b, v)
	case int64:
		if v > maxSafeInt || v < -maxSafeInt {
			return fmt.Errorf("integer %d is outside ±(2^53−1)", v)
		}
		b.WriteString(strconv.FormatInt(v, 10))
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, x, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			if !utf8.ValidString(k) {
				return fmt.Errorf("key is not valid UTF-8")
			}
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeValue(b, v[k], depth+1); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unsupported value of type %T", v)
	}
	return nil
}

// lessUTF16 orders strings by UTF-16 code units, as RFC 8785 sorts object members.
func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

const hexDigits = "0123456789abcdef"

// writeString writes s as an RFC 8785 string. s must be valid UTF-8.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// normalizeDetails turns caller-supplied details into the normalised form that is hashed and
// stored: maps, slices, strings, bools, nil and int64 only. Go floating-point values are
// rejected even when they hold whole numbers, so that a count never silently becomes a float;
// values with their own JSON encoding must encode to integers, strings, bools, null, arrays
// and objects.
func normalizeDetails(d map[string]any) (map[string]any, error) {
	if len(d) == 0 {
		return nil, nil
	}
	if err := rejectFloats(reflect.ValueOf(d), 0); err != nil {
		return nil, fmt.Errorf("%w: details: %w", pg.ErrInvalid, err)
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("%w: details: %w", pg.ErrInvalid, err)
	}
	m, err := decodeDetails(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: details: %w", pg.ErrInvalid, err)
	}
	// Encoding also checks depth, UTF-8 and the integer range.
	if _, err := detailsJSON(m); err != nil {
		return nil, fmt.Errorf("%w: details: %w", pg.ErrInvalid, err)
	}
	return m, nil
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// rejectFloats walks v and fails on any float or complex value, and on strings that are not
// valid UTF-8 (encoding/json would silently replace their bytes).
func rejectFloats(v reflect.Value, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested more than %d levels", maxDepth)
	}
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(jsonMarshaler) || v.Type().Implements(textMarshaler) {
		return nil // its encoding is checked after marshalling
	}
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		return fmt.Errorf("floating-point value %v: use an integer or a string", v.Float())
	case reflect.Complex64, reflect.Complex128:
		return fmt.Errorf("complex value: use an integer or a string")
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("string is not valid UTF-8")
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return rejectFloats(v.Elem(), depth+1)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte encodes as a base64 string
		}
		for i := 0; i < v.Len(); i++ {
			if err := rejectFloats(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			if err := rejectFloats(it.Key(), depth+1); err != nil {
				return err
			}
			if err := rejectFloats(it.Value(), depth+1); err != nil {
				return fmt.Errorf("%v: %w", it.Key(), err)
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if err := rejectFloats(v.Field(i), depth+1); err != nil {
				return fmt.Errorf("%s: %w", v.Type().Field(i).Name, err)
			}
		}
	}
	return nil
}

// decodeDetails parses a JSON object into the normalised form. Numbers must be integers.
func decodeDetails(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the object")
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be a JSON object")
	}
	out, err := normalizeNumbers(m)
	if err != nil {
		return nil, err
	}
	if len(out.(map[string]any)) == 0 {
		return nil, nil
	}
	return out.(map[string]any), nil
}

func normalizeNumbers(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		s := string(v)
		if strings.ContainsAny(s, ".eE") {
			return nil, fmt.Errorf("number %s is not an integer (floats are not allowed)", s)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > maxSafeInt || n < -maxSafeInt {
			return nil, fmt.Errorf("integer %s is outside ±(2^53−1)", s)
		}
		if n == 0 && s != "0" {
			return nil, fmt.Errorf("number %s is not canonical", s)
		}
		return n, nil
	case []any:
		for i := range v {
			x, err := normalizeNumbers(v[i])
			if err != nil {
				return nil, err
			}
			v[i] = x
		}
		return v, nil
	case map[string]any:
		for k, x := range v {
			y, err := normalizeNumbers(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v[k] = y
		}
		return v, nil
	}
	return v, nil
}

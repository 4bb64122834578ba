package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func storedLike(e Event) Event {
	e.Seq = 5
	e.At = time.Date(2025, 3, 9, 14, 30, 1, 123456000, time.FixedZone("CET", 3600))
	e.PrevHash = strings.Repeat("ab", 32)
	return e
}

func TestCanonicalEventGolden(t *testing.T) {
	t.Parallel()
	e := storedLike(event(ActionExecuted))
	d, err := normalizeDetails(e.Details)
	require.NoError(t, err)
	e.Details = d
	doc, err := canonicalEvent(e)
	require.NoError(t, err)
	want := `{"action":"executed","actor_id":7,"actor_name":"alice","at":"2025-03-09T13:30:01.123456Z",` +
		`"client_ip":"192.0.2.1","details":{"tables":{"public.orders":12,"public.tenants":1}},"kind":"tenant",` +
		`"plan_digest":"ab12","policy_hash":"cd34","prev_hash":"` + strings.Repeat("ab", 32) + `",` +
		`"reason":"customer asked, ticket #123","request_id":42,"root_key":"17","root_label":"Acme (acme)",` +
		`"seq":5,"target":"app"}`
	require.Equal(t, want, string(doc))

	// An outside verifier: sorted-key JSON from encoding/json (HTML escaping off) is the same
	// document for this ASCII event, and the hash is SHA-256 over prev_hash then the document.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(map[string]any{
		"action": "executed", "actor_id": 7, "actor_name": "alice", "at": "2025-03-09T13:30:01.123456Z",
		"client_ip": "192.0.2.1", "details": map[string]any{"tables": map[string]any{"public.orders": 12, "public.tenants": 1}},
		"kind": "tenant", "plan_digest": "ab12", "policy_hash": "cd34", "prev_hash": strings.Repeat("ab", 32),
		"reason": "customer asked, ticket #123", "request_id": 42, "root_key": "17", "root_label": "Acme (acme)",
		"seq": 5, "target": "app",
	}))
	require.Equal(t, strings.TrimSuffix(b.String(), "\n"), string(doc))
	sum := sha256.Sum256(append([]byte(strings.Repeat("ab", 32)), doc...))
	h, err := computeHash(e)
	require.NoError(t, err)
	require.Equal(t, hex.EncodeToString(sum[:]), h)
}

func TestCanonicalJSONIsStableUnderMapOrder(t *testing.T) {
	t.Parallel()
	var first string
	for i := range 50 {
		m := map[string]any{}
		for j := range 40 {
			k := (j*7 + i) % 40
			m[fmt.Sprintf("k%02d", k)] = map[string]any{"b": int64(k), "a": []any{"x", int64(k), nil, true}}
		}
		s, err := detailsJSON(m)
		require.NoError(t, err)
		if i == 0 {
			first = s
		}
		require.Equal(t, first, s)
	}
	require.True(t, strings.HasPrefix(first, `{"k00":{"a":["x",0,null,true],"b":0},"k01":`), first)
}

func TestCanonicalStrings(t *testing.T) {
	t.Parallel()
	m, err := normalizeDetails(map[string]any{
		"s": "q\" b\\ \b\t\n\f\r \x01\x1f \x7f </a>&amp; \u2028\u2029 é 😀 /",
	})
	require.NoError(t, err)
	s, err := detailsJSON(m)
	require.NoError(t, err)
	require.Equal(t, `{"s":"q\" b\\ \b\t\n\f\r \u0001\u001f `+"\x7f"+` </a>&amp; `+"\u2028\u2029"+` é 😀 /"}`, s)
}

func TestCanonicalKeyOrderIsUTF16(t *testing.T) {
	t.Parallel()
	// U+E000 sorts before U+1F600 in UTF-8 bytes, after it in UTF-16 code units (RFC 8785).
	s, err := detailsJSON(map[string]any{"\ue000": int64(1), "😀": int64(2), "a": int64(3)})
	require.NoError(t, err)
	require.Equal(t, `{"a":3,"😀":2,"`+"\ue000"+`":1}`, s)
}

func TestDetailsNumbers(t *testing.T) {
	t.Parallel()
	type counts struct {
		Orders int    `json:"orders"`
		Name   string `json:"name"`
	}
	m, err := normalizeDetails(map[string]any{
		"int": 1, "int8": int8(-2), "uint64": uint64(3), "struct": counts{Orders: 4, Name: "n"},
		"max": int64(maxSafeInt), "min": int64(-maxSafeInt), "ok": true, "nil": nil,
		"map": map[string]int64{"b": 2, "a": 1}, "list": []int{1, 2},
	})
	require.NoError(t, err)
	s, err := detailsJSON(m)
	require.NoError(t, err)
	require.Equal(t, `{"int":1,"int8":-2,"list":[1,2],"map":{"a":1,"b":2},"max":9007199254740991,`+
		`"min":-9007199254740991,"nil":null,"ok":true,"struct":{"name":"n","orders":4},"uint64":3}`, s)

	for name, v := range map[string]any{
		"float64":        1.0,
		"float32":        float32(2),
		"nested float":   map[string]any{"a": []any{map[string]any{"b": 0.5}}},
		"pointer float":  ptrFloat(3),
		"complex":        complex(1, 2),
		"too big":        int64(maxSafeInt + 1),
		"too small":      int64(-maxSafeInt - 1),
		"uint too big":   uint64(1) << 63,
		"exponent":       json.Number("1e3"),
		"raw float JSON": json.RawMessage(`{"a":1.0}`),
	} {
		_, err := normalizeDetails(map[string]any{"v": v})
		require.Error(t, err, name)
	}
}

func ptrFloat(f float64) *float64 { return &f }

func TestStoredDetailsRoundTrip(t *testing.T) {
	t.Parallel()
	in := map[string]any{"b": []any{int64(1), "two", nil, false, map[string]any{}}, "a": map[string]any{"x": "é\n"}}
	s, err := detailsJSON(in)
	require.NoError(t, err)
	// PostgreSQL's jsonb output adds spaces and reorders keys; decoding and re-encoding is stable.
	back, err := decodeDetails([]byte(`{"a": {"x": "\u00e9\n"}, "b": [1, "two", null, false, {}]}`))
	require.NoError(t, err)
	s2, err := detailsJSON(back)
	require.NoError(t, err)
	require.Equal(t, s, s2)
}

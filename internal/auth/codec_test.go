package auth_test

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/tombstone-console/tombstone/internal/auth"
)

func TestSessionValuesRoundTrip(t *testing.T) {
	deadline := time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC)
	values := map[string]any{
		"user_id": int64(42), "signed_in_at": int64(time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC).UnixNano()),
		"role": "approver", "method": "password", "": "empty key", "ünïcode": "välue ✓",
		"flag": true, "off": false, "at": time.Unix(0, 1764090000123456789), "ratio": 0.25, "neg": int64(-7),
	}
	var c auth.SessionValues
	b, err := c.Encode(deadline, values)
	if err != nil {
		t.Fatal(err)
	}
	gotDeadline, got, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !gotDeadline.Equal(deadline) {
		t.Errorf("deadline %v, want %v", gotDeadline, deadline)
	}
	if len(got) != len(values) {
		t.Fatalf("decoded %d values, want %d: %v", len(got), len(values), got)
	}
	for k, want := range values {
		switch w := want.(type) {
		case time.Time:
			if g, ok := got[k].(time.Time); !ok || !g.Equal(w) {
				t.Errorf("%q = %#v, want %v", k, got[k], w)
			}
		default:
			if got[k] != want {
				t.Errorf("%q = %#v (%T), want %#v (%T)", k, got[k], got[k], want, want)
			}
		}
	}
	// The same data encodes to the same bytes, whatever the map's order.
	again, err := c.Encode(deadline, maps.Clone(values))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Error("encoding the same values twice gave different bytes")
	}
	// int is stored as int64, which is what the session manager's GetInt64 reads.
	b, err = c.Encode(deadline, map[string]any{"n": 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Decode(b); err != nil || got["n"] != int64(5) {
		t.Errorf("int: got %#v, %v; want int64(5)", got["n"], err)
	}
}

func TestSessionValuesReadsGob(t *testing.T) {
	deadline := time.Now().Add(time.Hour).Round(0)
	b, err := scs.GobCodec{}.Encode(deadline, map[string]any{"user_id": int64(7), "role": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	gotDeadline, got, err := auth.SessionValues{}.Decode(b)
	if err != nil {
		t.Fatalf("decode gob data: %v", err)
	}
	if !gotDeadline.Equal(deadline) || got["user_id"] != int64(7) || got["role"] != "admin" {
		t.Errorf("got %v %v, want %v user_id=7 role=admin", gotDeadline, got, deadline)
	}
}

func TestSessionValuesRejects(t *testing.T) {
	var c auth.SessionValues
	if _, err := c.Encode(time.Now(), map[string]any{"x": []string{"a"}}); err == nil {
		t.Error("a slice value was encoded; want an error naming the key")
	}
	good, err := c.Encode(time.Now(), map[string]any{"user_id": int64(1), "role": "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation and a trailing byte must fail, never panic or decode to something else.
	for n := len("TSv1"); n < len(good); n++ {
		if _, _, err := c.Decode(good[:n]); err == nil {
			t.Errorf("decoding the first %d of %d bytes succeeded", n, len(good))
		}
	}
	if _, _, err := c.Decode(append(append([]byte{}, good...), 0)); err == nil {
		t.Error("decoding with a trailing byte succeeded")
	}
	bad := append([]byte{}, good...)
	at := bytes.Index(bad, []byte("\x06viewer"))
	if at < 1 {
		t.Fatalf("the role's value is not in %q", good)
	}
	bad[at-1] = 'z' // the role's type byte
	if _, _, err := c.Decode(bad); err == nil {
		t.Error("decoding an unknown type byte succeeded")
	}
	huge := append([]byte("TSv1"), make([]byte, 8)...)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff, 0x0f) // a count larger than the data
	if _, _, err := c.Decode(huge); err == nil {
		t.Error("decoding an impossible value count succeeded")
	}
}

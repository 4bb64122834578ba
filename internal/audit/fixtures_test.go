package audit

import (
	"bytes"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"testing"
)

var sqlTxRepeatableRead = sql.TxOptions{Isolation: sql.LevelRepeatableRead}

func jsonNumber(s string) json.Number { return json.Number(s) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func b64(b []byte) string    { return base64.StdEncoding.EncodeToString(b) }
func rawURL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func testKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	seed := bytes.Repeat([]byte{0x5a}, ed25519.SeedSize)
	return ed25519.NewKeyFromSeed(seed)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// eventFromJSON rebuilds an event from a JSON Lines object (without its hash), as an outside
// verifier would.
func eventFromJSON(m map[string]any) (Event, error) {
	b, err := json.Marshal(m["details"])
	if err != nil {
		return Event{}, err
	}
	d, err := decodeDetails(b)
	if err != nil {
		return Event{}, err
	}
	at, err := parseTime(m["at"].(string))
	if err != nil {
		return Event{}, err
	}
	optInt := func(v any) *int64 {
		if v == nil {
			return nil
		}
		n := int64(v.(float64))
		return &n
	}
	return Event{
		Seq: int64(m["seq"].(float64)), At: at, ActorID: optInt(m["actor_id"]), ActorName: m["actor_name"].(string),
		Action: Action(m["action"].(string)), RequestID: optInt(m["request_id"]), Kind: m["kind"].(string),
		Target: m["target"].(string), RootKey: m["root_key"].(string), RootLabel: m["root_label"].(string),
		Reason: m["reason"].(string), PlanDigest: m["plan_digest"].(string), PolicyHash: m["policy_hash"].(string),
		Details: d, ClientIP: m["client_ip"].(string), PrevHash: m["prev_hash"].(string),
	}, nil
}

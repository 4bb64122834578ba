package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// StatementType names what a checkpoint signature covers, so that the key's signatures cannot
// be replayed as anything else.
const StatementType = "tombstone.audit.checkpoint.v1"

// Checkpoint is a signed statement that event Seq of the log had hash Hash at time At.
type Checkpoint struct {
	// ID is the row in audit_checkpoints.
	ID        int64
	Seq       int64
	Hash      string
	At        time.Time
	PublicKey ed25519.PublicKey
	Signature []byte
}

// Statement returns the signed bytes: the RFC 8785 canonical JSON of
// {"at": <TimeLayout>, "hash": <hex>, "seq": <integer>, "type": StatementType}.
func (c Checkpoint) Statement() []byte {
	var b bytes.Buffer
	b.WriteString(`{"at":`)
	writeString(&b, formatTime(c.At))
	b.WriteString(`,"hash":`)
	writeString(&b, c.Hash)
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatInt(c.Seq, 10))
	b.WriteString(`,"type":`)
	writeString(&b, StatementType)
	b.WriteByte('}')
	return b.Bytes()
}

// checkpointFile is the JSON form of a checkpoint (files and log sinks).
type checkpointFile struct {
	Type      string `json:"type"`
	ID        int64  `json:"id,omitempty"`
	Seq       int64  `json:"seq"`
	Hash      string `json:"hash"`
	At        string `json:"at"`
	PublicKey string `json:"public_key"`
	Signature string `json:"signature"`
}

// MarshalJSON writes the checkpoint with base64 (standard, padded) key and signature.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkpointFile{
		Type: StatementType, ID: c.ID, Seq: c.Seq, Hash: c.Hash, At: formatTime(c.At),
		PublicKey: base64.StdEncoding.EncodeToString(c.PublicKey),
		Signature: base64.StdEncoding.EncodeToString(c.Signature),
	})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var f checkpointFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return err
	}
	if f.Type != StatementType {
		return fmt.Errorf("not a Tombstone audit checkpoint (type %q)", f.Type)
	}
	at, err := parseTime(f.At)
	if err != nil {
		return err
	}
	pub, err := base64.StdEncoding.DecodeString(f.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public_key must be %d bytes of base64", ed25519.PublicKeySize)
	}
	sig, err := base64.StdEncoding.DecodeString(f.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("signature must be %d bytes of base64", ed25519.SignatureSize)
	}
	*c = Checkpoint{ID: f.ID, Seq: f.Seq, Hash: f.Hash, At: at, PublicKey: pub, Signature: sig}
	return nil
}

// ReadCheckpoint reads a checkpoint file written with json.Marshal.
func ReadCheckpoint(r io.Reader) (Checkpoint, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<16))
	if err != nil {
		return Checkpoint{}, err
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return Checkpoint{}, fmt.Errorf("audit.ReadCheckpoint: %w", err)
	}
	return c, nil
}

// ParseSigningKey decodes audit.signing_key: base64 (standard or URL alphabet, padded or not)
// of a 32-byte Ed25519 seed or a 64-byte private key (seed followed by public key).
func ParseSigningKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("audit.signing_key: not base64")
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(key, raw) {
			return nil, fmt.Errorf("audit.signing_key: the public half does not belong to the seed")
		}
		return key, nil
	}
	return nil, fmt.Errorf("audit.signing_key: %d bytes; want a %d-byte seed or a %d-byte private key", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// ErrEmptyLog is returned by Checkpoint when there is no event to sign.
var ErrEmptyLog = fmt.Errorf("the audit log is empty: %w", pg.ErrNotFound)

// NewCheckpoint signs the current head with key, stores the checkpoint in audit_checkpoints and
// appends an ActionCheckpoint event that records it, in one transaction (db's, when it is one)
// under the audit writers' lock.
func NewCheckpoint(ctx context.Context, db bun.IDB, key ed25519.PrivateKey) (Checkpoint, error) {
	cp, _, err := checkpoint(ctx, db, key, false)
	return cp, err
}

// checkpoint signs the head. With onlyIfNew it does nothing (wrote false) when the head is
// already a checkpoint event, that is when nothing happened since the last checkpoint.
func checkpoint(ctx context.Context, db bun.IDB, key ed25519.PrivateKey, onlyIfNew bool) (cp Checkpoint, wrote bool, err error) {
	defer pg.Wrap(&err, "audit.Checkpoint")
	if len(key) != ed25519.PrivateKeySize {
		return cp, false, fmt.Errorf("%w: no Ed25519 signing key", pg.ErrInvalid)
	}
	err = inTx(ctx, db, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := lock(ctx, tx); err != nil {
			return err
		}
		h, err := readHead(ctx, tx)
		if err != nil {
			return err
		}
		if h.seq == 0 {
			if onlyIfNew {
				return nil
			}
			return ErrEmptyLog
		}
		if onlyIfNew && h.action == ActionCheckpoint {
			return nil
		}
		cp = Checkpoint{Seq: h.seq, Hash: h.hash, At: h.now, PublicKey: key.Public().(ed25519.PublicKey)}
		cp.Signature = ed25519.Sign(key, cp.Statement())
		pub, sig := base64.StdEncoding.EncodeToString(cp.PublicKey), base64.StdEncoding.EncodeToString(cp.Signature)
		if err := tx.QueryRowContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, at, public_key, signature)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, cp.Seq, cp.Hash, cp.At, pub, sig).Scan(&cp.ID); err != nil {
			return pg.Interpret(err)
		}
		e, err := prepare(Event{
			ActorName: SystemActor,
			Action:    ActionCheckpoint,
			Details: map[string]any{
				"checkpoint_id": cp.ID, "seq": cp.Seq, "hash": cp.Hash, "at": formatTime(cp.At),
				"public_key": pub, "signature": sig,
			},
		})
		if err != nil {
			return err
		}
		_, err = appendLocked(ctx, tx, e)
		wrote = err == nil
		return err
	})
	if err != nil || !wrote {
		return Checkpoint{}, false, err
	}
	return cp, true, nil
}

// RunCheckpoints signs a checkpoint now and then every interval until ctx is done, skipping
// rounds in which nothing was appended. Each checkpoint is logged in full (statement, key and
// signature), so that a log sink outside the database keeps a copy. Several replicas may run
// it: the audit lock serialises them and the skip rule keeps them from signing the same head
// twice. Errors are logged and retried at the next tick; it returns nil when ctx is done. A
// nil logger means slog.Default().
func RunCheckpoints(ctx context.Context, db *bun.DB, key ed25519.PrivateKey, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("audit.RunCheckpoints: interval must be positive")
	}
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("audit.RunCheckpoints: no Ed25519 signing key")
	}
	if logger == nil {
		logger = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cp, wrote, err := checkpoint(ctx, db, key, true)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("audit checkpoint failed", "err", err)
		case wrote:
			logger.Info("audit checkpoint", "id", cp.ID, "seq", cp.Seq, "hash", cp.Hash, "at", formatTime(cp.At),
				"public_key", base64.StdEncoding.EncodeToString(cp.PublicKey),
				"signature", base64.StdEncoding.EncodeToString(cp.Signature),
				"statement", string(cp.Statement()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// VerifyCheckpoint checks cp's signature and that the log still holds event cp.Seq with hash
// cp.Hash. When trusted is not nil the checkpoint must be signed by that key; otherwise the key
// in cp is used, which proves only that the file is internally consistent. Run Verify as well:
// it proves the stored hashes match the events, and together they prove that events 1..cp.Seq
// are the ones that were signed. A failed check is a Result with OK false.
func VerifyCheckpoint(ctx context.Context, db bun.IDB, cp Checkpoint, trusted ed25519.PublicKey) (res Result, err error) {
	defer pg.Wrap(&err, "audit.VerifyCheckpoint(seq %d)", cp.Seq)
	res = Result{BrokenAt: cp.Seq}
	if trusted != nil && !bytes.Equal(trusted, cp.PublicKey) {
		res.Reason = fmt.Sprintf("the checkpoint is signed by key %s, not by the configured key %s",
			base64.StdEncoding.EncodeToString(cp.PublicKey), base64.StdEncoding.EncodeToString(trusted))
		return res, nil
	}
	if len(cp.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(cp.PublicKey, cp.Statement(), cp.Signature) {
		res.Reason = "the checkpoint's signature is invalid"
		return res, nil
	}
	var hash string
	err = db.QueryRowContext(ctx, "SELECT hash FROM audit_events WHERE seq = ?", cp.Seq).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		headSeq, _, err := Head(ctx, db)
		if err != nil {
			return Result{}, err
		}
		res.Reason = fmt.Sprintf("the signed event is missing (the log ends at event %d)", headSeq)
		return res, nil
	}
	if err != nil {
		return Result{}, pg.Interpret(err)
	}
	if hash != cp.Hash {
		res.Reason = "the event's hash differs from the signed checkpoint"
		return res, nil
	}
	return Result{OK: true, First: cp.Seq, Last: cp.Seq, Count: 1, Head: cp.Hash}, nil
}

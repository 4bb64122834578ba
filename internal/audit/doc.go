// Package audit is Tombstone's append-only, hash-chained audit log.
//
// Every state change that matters (requests, approvals, executions, restores, purges, user and
// role changes, exports, checkpoints) is written with Append, inside the transaction that makes
// the change: when the caller rolls back, the event is gone too. PostgreSQL, not this package,
// keeps the log immutable: a trigger enabled with ENABLE ALWAYS rejects UPDATE, DELETE and
// TRUNCATE on audit_events and audit_checkpoints, even for the tables' owner, and the runtime
// role is granted INSERT and SELECT only (see Grants).
//
// # The chain
//
// Events are numbered 1, 2, 3, … with no gaps. Each event stores the hash of the event before it
// (prev_hash; the first event's prev_hash is GenesisHash, 64 zeros) and its own hash:
//
//	hash = lowercase hex( SHA-256( prev_hash || canonical JSON of the event ) )
//
// where prev_hash is the 64 ASCII characters of the previous hash and || is byte concatenation.
// The canonical JSON includes seq and prev_hash, so reordering, renumbering and splicing are all
// caught. Writers are serialised with pg_advisory_xact_lock, which is held until the writing
// transaction ends; the next seq is max(seq)+1 read under that lock, so a rolled-back event
// leaves no gap.
//
// # Canonical JSON of an event
//
// The hashed document is one JSON object with exactly these 16 members (every field except
// hash): action, actor_id, actor_name, at, client_ip, details, kind, plan_digest, policy_hash,
// prev_hash, reason, request_id, root_key, root_label, seq, target.
//
//   - seq is an integer; actor_id and request_id are integers or null.
//   - at is a string: the UTC time with exactly six fractional digits,
//     2006-01-02T15:04:05.000000Z (PostgreSQL's timestamptz precision).
//   - details is an object (an empty object {} when there are none) whose leaves are strings,
//     integers, true, false or null. Floating-point numbers are rejected when the event is
//     written; integers must lie in ±(2^53−1).
//   - every other member is a string, "" when empty.
//
// The serialisation is RFC 8785 (JSON Canonicalization Scheme) restricted to such documents:
// no whitespace; object members sorted by their names compared as UTF-16 code units (for the
// ASCII names above, plain byte order), recursively; integers in shortest decimal form with a
// leading "-" for negatives and no "+", exponent or fraction; strings in UTF-8 with only these
// escapes: \" and \\, \b \t \n \f \r, and \u00xx (lowercase hex) for the other code points
// below U+0020. Nothing else is escaped: not "/", not "<", ">" or "&", not U+2028 or U+2029.
// Any RFC 8785 implementation therefore reproduces the hashed bytes.
//
// # Exports and offline verification
//
// Export streams events as CSV (RFC 4180, UTF-8, CRLF line ends, a header row) or JSON Lines,
// from a server-side cursor. CSV cells that begin with = + - @ TAB or CR, or with a single
// quote, get one extra single quote (') in front, so that spreadsheets never evaluate them;
// VerifyCSV removes exactly one leading quote from a cell that begins with one. The export is
// itself audited: its "exported" event is committed before the first row is read, so an export
// without filters ends with its own event.
//
// # Checkpoints
//
// A checkpoint is an Ed25519 signature over a statement of the head (seq, hash, time). It is
// kept in audit_checkpoints, logged, and can be saved to a file. A superuser can disable the
// trigger and rewrite or truncate the tail so that the chain still verifies; VerifyCheckpoint
// then finds that the signed head is no longer in the chain.
//
// docs/audit.md describes the same rules for operators and outside verifiers.
package audit

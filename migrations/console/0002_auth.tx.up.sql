-- Console database: sign-in state (sessions, throttling) and user bookkeeping.

-- Names are unique regardless of case, so that "Alice" and "alice" cannot both exist and
-- sign-in (which matches case-insensitively) always finds at most one user.
CREATE UNIQUE INDEX users_name_lower_key ON users (lower(name));
ALTER TABLE users ADD COLUMN last_signed_in_at timestamptz;

-- Signed-in sessions (scs). token is the SHA-256 of the cookie value, never the value itself.
-- user_id is copied out of the session data on every commit, so that disabling a user or
-- changing their password ends all of their sessions with a single DELETE.
CREATE TABLE sessions (
    token   text PRIMARY KEY,
    data    bytea NOT NULL,
    expiry  timestamptz NOT NULL,
    user_id bigint REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE user_id IS NOT NULL;

-- Failed sign-in attempts, shared by every console replica. Throttling counts the rows of an
-- account (lower-cased name as typed, whether or not such a user exists) and of a client IP
-- within a sliding window; rows older than the window are swept periodically.
CREATE TABLE sign_in_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account   text NOT NULL,
    ip        text NOT NULL,
    failed_at timestamptz NOT NULL
);
CREATE INDEX sign_in_failures_account_idx ON sign_in_failures (account, failed_at);
CREATE INDEX sign_in_failures_ip_idx ON sign_in_failures (ip, failed_at);

-- The embedded store (SQLite) as first shipped. Every table holds what its PostgreSQL + Redis
-- counterpart does; times are Unix seconds unless the column says _us (microseconds) or _ms.
CREATE TABLE IF NOT EXISTS users (
    id                 TEXT PRIMARY KEY,
    username           TEXT    NOT NULL,
    username_key       TEXT    NOT NULL UNIQUE,
    email              TEXT,
    password_hash      TEXT    NOT NULL,
    roles              TEXT    NOT NULL,
    disabled           INTEGER NOT NULL DEFAULT 0,
    tokens_not_before  INTEGER NOT NULL DEFAULT 0,
    created_at_us      INTEGER NOT NULL,
    updated_at_us      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS users_created ON users (created_at_us, id);
CREATE TABLE IF NOT EXISTS signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT    NOT NULL DEFAULT 'RS256',
    format_version  INTEGER NOT NULL,
    private_key     BLOB    NOT NULL,
    public_jwk      TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at_us   INTEGER NOT NULL,
    retired_at_us   INTEGER
);
CREATE TABLE IF NOT EXISTS service_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    sid         TEXT PRIMARY KEY,
    sub         TEXT    NOT NULL,
    rt          TEXT    NOT NULL,
    auth_time   INTEGER NOT NULL,
    abs_exp     INTEGER NOT NULL,
    last_used   INTEGER NOT NULL,
    client_id   TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    ua          TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_sub ON sessions (sub);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti         TEXT PRIMARY KEY,
    sid         TEXT    NOT NULL,
    sub         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    spent_at    INTEGER,
    expires_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    type        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    exp         INTEGER NOT NULL,
    iat_before  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (type, value)
);
CREATE TABLE IF NOT EXISTS revocation_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ms          INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    exp         INTEGER NOT NULL,
    iat_before  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT    NOT NULL,
    event       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user_id, id);
CREATE TABLE IF NOT EXISTS rate_limits (
    key         TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
    client_id                   TEXT PRIMARY KEY,
    name                        TEXT    NOT NULL,
    secret_hash                 BLOB    NOT NULL,
    previous_secret_hash        BLOB,
    previous_secret_expires_at  INTEGER,
    scopes                      TEXT    NOT NULL,
    audiences                   TEXT    NOT NULL,
    disabled                    INTEGER NOT NULL DEFAULT 0,
    deleted                     INTEGER NOT NULL DEFAULT 0,
    tokens_not_before           INTEGER NOT NULL,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gates (
    key         TEXT PRIMARY KEY,
    failures    INTEGER NOT NULL,
    next_ms     INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL
);

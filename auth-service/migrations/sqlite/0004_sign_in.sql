-- Browser sign-in: a session may be a browser's sign-in session (found by its cookie's digest,
-- no refresh token), or be issued through one (`parent`: it ends with that one). `amr` says how
-- the user authenticated. Authorization codes are stored by digest until taken; a taken code
-- stays, `used`, with what its exchange issued under, so that a second use can revoke it.
ALTER TABLE sessions ADD COLUMN parent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN browser TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_parent ON sessions (parent) WHERE parent <> '';
CREATE UNIQUE INDEX sessions_browser ON sessions (browser) WHERE browser <> '';
CREATE TABLE authorization_codes (
    digest      TEXT PRIMARY KEY,
    grant_json  TEXT    NOT NULL,
    code_exp    INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0,
    jti         TEXT,
    sid         TEXT,
    expires_at  INTEGER NOT NULL
);
-- What each user has consented to share with each third-party client (scopes as a JSON list).
CREATE TABLE consents (
    user_id     TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    granted_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

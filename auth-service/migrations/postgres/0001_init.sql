-- Users: case-insensitively unique usernames, PHC Argon2id hashes, roles, and the earliest `iat`
-- a new token for the user may carry (raised on every change that revokes the user's tokens).
CREATE TABLE users (
    id                 uuid PRIMARY KEY,
    username           text        NOT NULL CHECK (length(username) BETWEEN 3 AND 64),
    email              text,
    password_hash      text        NOT NULL,
    roles              text[]      NOT NULL DEFAULT '{}',
    disabled           boolean     NOT NULL DEFAULT false,
    tokens_not_before  bigint      NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_ci ON users (lower(username));
CREATE INDEX users_created_at_id ON users (created_at, id);

-- Signing keys, with a storage format version so that encryption at rest can be added without
-- breaking stored keys. `state`: current (signs) or retired (published for verification only).
CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    alg             text        NOT NULL DEFAULT 'RS256',
    format_version  integer     NOT NULL,
    private_key     bytea       NOT NULL,
    public_jwk      jsonb       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    retired_at      timestamptz
);

-- One-shot facts about this deployment (e.g. that the bootstrap admin was created once).
CREATE TABLE service_state (
    key         text PRIMARY KEY,
    value       text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

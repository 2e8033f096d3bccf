-- Registered clients (client credentials, introspection). Secrets are 256-bit random values,
-- stored as SHA-256 digests; after a rotation the previous digest works until its expiry.
-- Times are Unix seconds. A deleted client stays as a tombstone (no secret, `deleted`), so that
-- its `tokens_not_before` only ever grows: a client registered again under the id never has
-- tokens covered by the revocation that its predecessor's deletion left behind.
CREATE TABLE clients (
    client_id                   text PRIMARY KEY,
    name                        text    NOT NULL DEFAULT '',
    secret_hash                 bytea   NOT NULL,
    previous_secret_hash        bytea,
    previous_secret_expires_at  bigint,
    scopes                      text[]  NOT NULL DEFAULT '{}',
    audiences                   text[]  NOT NULL DEFAULT '{}',
    disabled                    boolean NOT NULL DEFAULT false,
    deleted                     boolean NOT NULL DEFAULT false,
    tokens_not_before           bigint  NOT NULL DEFAULT 0,
    created_at                  bigint  NOT NULL,
    updated_at                  bigint  NOT NULL
);

-- What each user has consented to share with each third-party client (scopes), remembered so
-- that the consent page is shown once; listed and withdrawn on the account page. A user's
-- consents go with the user.
CREATE TABLE consents (
    user_id     uuid    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id   text    NOT NULL,
    scopes      text[]  NOT NULL,
    granted_at  bigint  NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

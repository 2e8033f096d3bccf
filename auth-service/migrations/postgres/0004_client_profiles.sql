-- A client's part in browser sign-in (type, first party, grant types, redirect and logout URIs),
-- as one JSON document. `{}` reads as a confidential client-credentials client: what every
-- client registered before sign-in existed is.
ALTER TABLE clients ADD COLUMN profile jsonb NOT NULL DEFAULT '{}';

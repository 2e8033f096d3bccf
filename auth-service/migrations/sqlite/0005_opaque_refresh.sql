-- Opaque refresh tokens carry no expiry of their own: the record keeps it. Records made before
-- (for signed refresh tokens, whose JWT carries `exp`) have none.
ALTER TABLE refresh_tokens ADD COLUMN exp INTEGER;

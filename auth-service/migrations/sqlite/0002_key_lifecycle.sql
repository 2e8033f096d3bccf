-- Publish-before-use rotation: when a key started signing, when a next key may start, and when a
-- retired key is removed.
ALTER TABLE signing_keys ADD COLUMN activated_at_us INTEGER;
ALTER TABLE signing_keys ADD COLUMN activate_after INTEGER;
ALTER TABLE signing_keys ADD COLUMN remove_after INTEGER;

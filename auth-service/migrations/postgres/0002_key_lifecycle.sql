-- Key lifecycle: a rotation adds a `next` key (published, not signing) that becomes `current` at
-- `activate_after`; the previous current key is `retired` (still published) until
-- `remove_after`, when every token it signed has expired and its row is deleted. Unix seconds.
ALTER TABLE signing_keys ADD COLUMN activate_after bigint;
ALTER TABLE signing_keys ADD COLUMN remove_after bigint;
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((state)) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys ((state)) WHERE state = 'next';

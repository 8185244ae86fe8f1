-- Crypto-shredding: each case's personal data is sealed under a data key of its own, kept here
-- wrapped by a master key (data_key_id). Erasure destroys it with the fields. Rows sealed before
-- (fields directly under a master key) have none until the scheduled re-wrap moves them.
ALTER TABLE vault
    ADD COLUMN data_key    bytea,
    ADD COLUMN data_key_id text;
-- what the re-wrap looks for: live rows not under the current master key
CREATE INDEX vault_to_rewrap ON vault (data_key_id) WHERE erased_at IS NULL;

-- A signing key withdrawn at once after a compromise: never signs, is not
-- published, and tokens it signed no longer verify.
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;

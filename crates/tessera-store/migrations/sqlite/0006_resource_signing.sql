-- Per-resource signing: an algorithm other than the server's, and for HS256 a
-- shared secret sealed with the key-encryption key (it must be recoverable to
-- sign, so it cannot be a digest). secret_version counts the secrets a
-- resource has had and names the current one in the kid of its tokens.
ALTER TABLE resources ADD COLUMN signing_alg TEXT;
ALTER TABLE resources ADD COLUMN secret_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE resources ADD COLUMN sealed_secret BLOB;

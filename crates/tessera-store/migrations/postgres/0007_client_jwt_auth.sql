-- Client authentication with JWTs (RFC 7523 §2.2): the public keys of a
-- private_key_jwt client, inline (a JWK Set) or where it publishes them; and
-- for client_secret_jwt clients only, the secret sealed with the
-- key-encryption key, since an HMAC cannot be checked against a digest.
ALTER TABLE clients ADD COLUMN sealed_secret BYTEA;
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;

-- The jti of every client assertion accepted, until it would expire: an
-- assertion is accepted once (RFC 7523 §3 item 7).
CREATE TABLE client_assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

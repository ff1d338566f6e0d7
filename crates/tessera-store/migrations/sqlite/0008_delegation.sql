-- Client settings added from now on live in one JSON document (see
-- ClientMetadata): a new setting needs no migration.
ALTER TABLE clients ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

-- Issuers of JWTs whose assertions (RFC 7523) and subject tokens (RFC 8693)
-- are accepted: their keys inline (a JWK Set) or where they publish them.
CREATE TABLE trusted_issuers (
    issuer     TEXT PRIMARY KEY,
    jwks       TEXT,
    jwks_uri   TEXT,
    created_at BIGINT NOT NULL
);

-- SAML 2.0 identity providers whose signed assertions are accepted (RFC 7522).
CREATE TABLE saml_idps (
    entity_id       TEXT PRIMARY KEY,
    certificate_pem TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- The ID of every assertion accepted, until it would expire: each is
-- accepted once (RFC 7523 §3 item 7, RFC 7522 §3 item 9).
CREATE TABLE assertion_ids (
    kind       TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    id         TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, issuer, id)
);
CREATE INDEX assertion_ids_expires_at ON assertion_ids (expires_at);

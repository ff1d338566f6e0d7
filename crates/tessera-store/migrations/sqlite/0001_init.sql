-- Times are Unix seconds; lists are JSON arrays; secrets are stored only as digests
-- and private keys only sealed with the key-encryption key.

CREATE TABLE clients (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    secret_digest    BLOB,
    auth_method      TEXT,
    grants           TEXT NOT NULL,
    redirect_uris    TEXT NOT NULL,
    scopes           TEXT NOT NULL,
    audiences        TEXT NOT NULL,
    token_format     TEXT,
    access_token_ttl BIGINT,
    introspection    TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);

CREATE TABLE resources (
    audience     TEXT PRIMARY KEY NOT NULL,
    scopes       TEXT NOT NULL,
    token_format TEXT,
    accepts      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    alg                TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    created_at         BIGINT NOT NULL,
    activates_at       BIGINT NOT NULL
);

CREATE TABLE reference_tokens (
    digest     BLOB PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL,
    claims     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX reference_tokens_expires_at ON reference_tokens (expires_at);
CREATE INDEX reference_tokens_client_id ON reference_tokens (client_id);

CREATE TABLE revoked_jtis (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_jtis_expires_at ON revoked_jtis (expires_at);

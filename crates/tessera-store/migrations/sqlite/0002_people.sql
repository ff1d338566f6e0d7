-- People: users, login sessions, consent, authorization codes, refresh tokens
-- and login throttling. Same conventions as 0001: Unix seconds, JSON lists,
-- secrets only as digests. No foreign keys, as in 0001: deletes that cascade
-- are explicit, in one transaction, in the store code.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    -- Lower-cased copies: uniqueness and login lookup are case-insensitive.
    username_key  TEXT NOT NULL UNIQUE,
    email         TEXT,
    email_key     TEXT UNIQUE,
    name          TEXT,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest     BLOB PRIMARY KEY NOT NULL,
    sid        TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE consents (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents (client_id);

CREATE TABLE authorization_codes (
    digest            BLOB PRIMARY KEY NOT NULL,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    redirect_uri      TEXT NOT NULL,
    code_challenge    TEXT,
    scope             TEXT NOT NULL,
    nonce             TEXT,
    audiences         TEXT NOT NULL,
    auth_time         BIGINT NOT NULL,
    sid               TEXT,
    expires_at        BIGINT NOT NULL,
    consumed_at       BIGINT,
    access_jti        TEXT,
    access_expires_at BIGINT,
    family_id         TEXT
);
CREATE INDEX authorization_codes_user_id ON authorization_codes (user_id);
CREATE INDEX authorization_codes_client_id ON authorization_codes (client_id);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    jti               TEXT PRIMARY KEY NOT NULL,
    family_id         TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    scope             TEXT NOT NULL,
    audiences         TEXT NOT NULL,
    auth_time         BIGINT NOT NULL,
    sid               TEXT,
    offline           BOOLEAN NOT NULL,
    issued_at         BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    family_expires_at BIGINT NOT NULL,
    access_jti        TEXT,
    access_expires_at BIGINT,
    rotated_at        BIGINT,
    revoked           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_client_id ON refresh_tokens (user_id, client_id);
CREATE INDEX refresh_tokens_client_id ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_sid ON refresh_tokens (sid);
CREATE INDEX refresh_tokens_family_expires_at ON refresh_tokens (family_expires_at);

CREATE TABLE login_failures (
    key      TEXT PRIMARY KEY NOT NULL,
    count    BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);

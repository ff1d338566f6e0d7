-- Initial access tokens for dynamic client registration (RFC 7591 §3), stored
-- under the SHA-256 digest of their value, like every other secret here.
CREATE TABLE registration_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    digest     BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

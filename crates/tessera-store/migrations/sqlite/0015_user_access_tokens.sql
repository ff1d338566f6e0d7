-- Access tokens issued to a person that no refresh family or code records:
-- the password grant without refresh tokens, token exchange, implicit. Kept
-- until they expire, so that ending the grant (deleting the user, a new
-- password, withdrawing consent) revokes them as well.
CREATE TABLE user_access_tokens (
    jti TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX user_access_tokens_user ON user_access_tokens (user_id, client_id);
CREATE INDEX user_access_tokens_expires_at ON user_access_tokens (expires_at);

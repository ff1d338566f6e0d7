-- The SHA-256 of the refresh token as issued: the token presented back is
-- recognised by it, without checking its signature again. Tokens issued
-- before this column, and tokens issued again within the grace window, have
-- none and are checked by their signature.
ALTER TABLE refresh_tokens ADD COLUMN token_digest BLOB;

-- A rotated refresh token names its successor, so that a retried rotation
-- within the configured grace window (`refresh_reuse_grace`) can answer with
-- the same successor instead of reading as reuse.
ALTER TABLE refresh_tokens ADD COLUMN successor_jti TEXT;

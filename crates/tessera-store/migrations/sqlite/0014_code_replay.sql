-- When a consumed code was presented again. Marked in the statement that
-- reads the code for the replay, so that an exchange still under way cannot
-- record its tokens unseen afterwards: it revokes them instead (RFC 6749
-- §4.1.2).
ALTER TABLE authorization_codes ADD COLUMN replayed_at BIGINT;

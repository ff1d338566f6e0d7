-- Initial access tokens become one purpose of the bearer tokens an operator
-- hands out; admin API credentials are the other. A token is accepted only
-- for its own purpose.
ALTER TABLE registration_tokens RENAME TO operator_tokens;
ALTER TABLE operator_tokens ADD COLUMN purpose TEXT NOT NULL DEFAULT 'registration';

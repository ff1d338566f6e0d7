-- Device authorization grant (RFC 8628).
CREATE TABLE device_authorizations (
    digest         BLOB PRIMARY KEY NOT NULL,
    user_code      TEXT NOT NULL UNIQUE,
    client_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    audiences      TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    poll_interval  BIGINT NOT NULL,
    last_polled_at BIGINT,
    status         TEXT NOT NULL,
    user_id        TEXT,
    auth_time      BIGINT
);
CREATE INDEX device_authorizations_expires_at ON device_authorizations (expires_at);

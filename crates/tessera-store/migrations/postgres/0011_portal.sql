-- What a person may do beyond signing in: space-separated role names
-- ("developer", "admin"); unknown names are ignored by older binaries.
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '';

-- Each client's recent authorization and token requests, for its developer
-- (the portal's trace). The event is a JSON document; it never holds a
-- secret, code or token. Bounded per client by the writer, and in age by the
-- purge.
CREATE TABLE trace_events (
    id        BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL,
    at        BIGINT NOT NULL,
    event     TEXT NOT NULL
);
CREATE INDEX trace_events_by_client ON trace_events (client_id, id);
CREATE INDEX trace_events_by_age ON trace_events (at);

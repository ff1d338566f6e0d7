-- One counter that every change to the catalogue (clients, resources, trusted
-- issuers, SAML identity providers) moves forward, whoever makes it: a running
-- server, the CLI in another process, or another instance. Servers keep the
-- catalogue in memory and poll this one row to know when to drop their copy.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

CREATE FUNCTION bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER resources_changed AFTER INSERT OR UPDATE OR DELETE ON resources
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER trusted_issuers_changed AFTER INSERT OR UPDATE OR DELETE ON trusted_issuers
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER saml_idps_changed AFTER INSERT OR UPDATE OR DELETE ON saml_idps
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

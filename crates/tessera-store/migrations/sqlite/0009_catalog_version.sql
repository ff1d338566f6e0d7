-- One counter that every change to the catalogue (clients, resources, trusted
-- issuers, SAML identity providers) moves forward, whoever makes it: a running
-- server, the CLI in another process, or another instance. Servers keep the
-- catalogue in memory and poll this one row to know when to drop their copy.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO catalog_version (id, version) VALUES (1, 0);

CREATE TRIGGER clients_inserted AFTER INSERT ON clients
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER clients_updated AFTER UPDATE ON clients
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER clients_deleted AFTER DELETE ON clients
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER resources_inserted AFTER INSERT ON resources
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER resources_updated AFTER UPDATE ON resources
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER resources_deleted AFTER DELETE ON resources
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER trusted_issuers_inserted AFTER INSERT ON trusted_issuers
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER trusted_issuers_updated AFTER UPDATE ON trusted_issuers
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER trusted_issuers_deleted AFTER DELETE ON trusted_issuers
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;

CREATE TRIGGER saml_idps_inserted AFTER INSERT ON saml_idps
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER saml_idps_updated AFTER UPDATE ON saml_idps
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER saml_idps_deleted AFTER DELETE ON saml_idps
BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END;

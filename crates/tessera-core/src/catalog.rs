//! The catalogue in memory: clients, resources, trusted issuers and SAML
//! identity providers, read on almost every request and changed rarely.
//!
//! A lookup that hits costs a hash-map read and no round trip to the
//! database. Staleness is bounded: the store keeps a version that every
//! change to these tables moves forward, whoever makes it (this process, the
//! CLI, another instance on the same database), and [`Catalog::sync`] compares
//! it with the one the copy was filled under, dropping the copy when they
//! differ. The server calls `sync` every [`SYNC_INTERVAL`]. The copy is used
//! only while the last successful sync began less than [`MAX_STALENESS`] ago;
//! otherwise every lookup goes to the store, so a stalled poller or an
//! unreachable database never stretches the bound, and an embedding that
//! never syncs simply reads through.
//!
//! Writes made through the catalogue drop the copy at once; writes made
//! elsewhere are seen within `MAX_STALENESS`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::crypto::SecretDigest;
use crate::model::{Client, Resource, SealedSecret};
use crate::store::{
    AssertionKind, ClientStore, ResourceStore, SamlIdp, SecretUpdate, Store, StoreResult,
    TrustStore, TrustedIssuer,
};

/// How often the server compares the store's catalogue version with its copy.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// The longest a change made elsewhere can go unseen: the copy is used only
/// while the last successful sync began less than this long ago.
pub const MAX_STALENESS: Duration = Duration::from_secs(1);

/// Entries kept per table before the table's copy is dropped and refilled: a
/// bound on what lookups of unknown IDs (which are remembered as absent) can
/// make the process hold.
const MAX_ENTRIES: usize = 20_000;

/// Clients, resources, trusted issuers and SAML identity providers, read
/// through an in-memory copy; see the module documentation.
pub struct Catalog {
    store: Arc<dyn Store>,
    /// When the copy was last confirmed current: milliseconds after `origin`
    /// at which the last successful sync began, or `i64::MIN` for never.
    confirmed_at: AtomicI64,
    origin: Instant,
    copy: RwLock<Tables>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let copy = self.read();
        f.debug_struct("Catalog")
            .field("version", &copy.version)
            .field("clients", &copy.clients.len())
            .field("resources", &copy.resources.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tables {
    /// The store's catalogue version this copy was filled under.
    version: Option<i64>,
    /// Moved at every drop of the copy. A lookup notes it before it reads the
    /// store and files what it read only if it has not moved since: a read
    /// that raced with a change is never filed after the drop that followed.
    epoch: u64,
    clients: HashMap<Box<str>, Option<Arc<Client>>>,
    resources: HashMap<Box<str>, Option<Arc<Resource>>>,
    issuers: HashMap<Box<str>, Option<Arc<TrustedIssuer>>>,
    idps: HashMap<Box<str>, Option<Arc<SamlIdp>>>,
}

impl Tables {
    fn drop_all(&mut self) {
        self.epoch += 1;
        self.clients.clear();
        self.resources.clear();
        self.issuers.clear();
        self.idps.clear();
    }
}

/// A kind of catalogue entry, and which table of the copy holds it.
trait Entry: Clone + Send + Sync + 'static {
    fn table(copy: &Tables) -> &HashMap<Box<str>, Option<Arc<Self>>>;
    fn table_mut(copy: &mut Tables) -> &mut HashMap<Box<str>, Option<Arc<Self>>>;
}

macro_rules! entry {
    ($type:ty, $field:ident) => {
        impl Entry for $type {
            fn table(copy: &Tables) -> &HashMap<Box<str>, Option<Arc<Self>>> {
                &copy.$field
            }
            fn table_mut(copy: &mut Tables) -> &mut HashMap<Box<str>, Option<Arc<Self>>> {
                &mut copy.$field
            }
        }
    };
}

entry!(Client, clients);
entry!(Resource, resources);
entry!(TrustedIssuer, issuers);
entry!(SamlIdp, idps);

impl Catalog {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Catalog {
            store,
            confirmed_at: AtomicI64::new(i64::MIN),
            origin: Instant::now(),
            copy: RwLock::new(Tables::default()),
        }
    }

    /// Compares the store's catalogue version with the copy's and drops the
    /// copy if it changed. Returns whether it did.
    pub async fn sync(&self) -> StoreResult<bool> {
        let began = self.millis_since_origin();
        let version = self.store.catalog_version().await?;
        let changed = {
            let mut copy = self.write();
            let changed = copy.version != Some(version);
            if changed {
                copy.drop_all();
                copy.version = Some(version);
            }
            changed
        };
        // The version was read after `began`: the copy, as now filed, is
        // current as of then at least.
        self.confirmed_at.store(began, Ordering::Release);
        Ok(changed)
    }

    /// Drops the copy: the next lookups read the store.
    pub fn invalidate(&self) {
        self.write().drop_all();
    }

    /// Whether the copy may answer: the last successful sync is recent enough.
    fn fresh(&self) -> bool {
        let confirmed = self.confirmed_at.load(Ordering::Acquire);
        let bound = i64::try_from(MAX_STALENESS.as_millis()).unwrap_or(i64::MAX);
        self.millis_since_origin().saturating_sub(confirmed) < bound
    }

    fn millis_since_origin(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.copy.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tables> {
        self.copy.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `key`: from the copy when it is fresh and holds it,
    /// otherwise from the store, filed for next time (absence included).
    /// `load` makes the store's (boxed) future only on a miss: a hit
    /// allocates nothing.
    async fn lookup<T, L, F>(&self, key: &str, load: L) -> StoreResult<Option<T>>
    where
        T: Entry,
        L: FnOnce() -> F,
        F: std::future::Future<Output = StoreResult<Option<T>>>,
    {
        if !self.fresh() {
            return load().await;
        }
        let epoch = {
            let copy = self.read();
            if let Some(hit) = T::table(&copy).get(key) {
                return Ok(hit.as_deref().cloned());
            }
            copy.epoch
        };
        let found = load().await?;
        let mut copy = self.write();
        if copy.epoch == epoch {
            let entries = T::table_mut(&mut copy);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key.into(), found.clone().map(Arc::new));
        }
        Ok(found)
    }

    /// Runs a write against the store and drops the copy, whatever its
    /// outcome: a failed statement may still have changed a row.
    async fn changing<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        let outcome = write.await;
        self.invalidate();
        outcome
    }
}

#[async_trait]
impl ClientStore for Catalog {
    async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.lookup(id, || self.store.client(id)).await
    }

    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        self.changing(self.store.insert_client(client)).await
    }

    async fn clients(&self) -> StoreResult<Vec<Client>> {
        self.store.clients().await
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        self.changing(self.store.delete_client(id)).await
    }

    async fn set_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        sealed: Option<&[u8]>,
    ) -> StoreResult<bool> {
        self.changing(self.store.set_client_secret(id, digest, sealed))
            .await
    }

    async fn update_client(&self, client: &Client, secret: SecretUpdate) -> StoreResult<bool> {
        self.changing(self.store.update_client(client, secret))
            .await
    }

    async fn update_client_if_unchanged(
        &self,
        client: &Client,
        secret: SecretUpdate,
        expected: &crate::model::ClientMetadata,
    ) -> StoreResult<bool> {
        self.changing(
            self.store
                .update_client_if_unchanged(client, secret, expected),
        )
        .await
    }

    async fn record_client_assertion(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool> {
        self.store
            .record_client_assertion(client_id, jti, expires_at, now)
            .await
    }
}

#[async_trait]
impl ResourceStore for Catalog {
    async fn resource(&self, audience: &str) -> StoreResult<Option<Resource>> {
        self.lookup(audience, || self.store.resource(audience))
            .await
    }

    async fn insert_resource(&self, resource: &Resource) -> StoreResult<()> {
        self.changing(self.store.insert_resource(resource)).await
    }

    async fn resources(&self) -> StoreResult<Vec<Resource>> {
        self.store.resources().await
    }

    async fn update_resource(&self, resource: &Resource, secret_version: i64) -> StoreResult<bool> {
        self.changing(self.store.update_resource(resource, secret_version))
            .await
    }

    async fn rotate_resource_secret(
        &self,
        audience: &str,
        from_version: i64,
        sealed: &SealedSecret,
    ) -> StoreResult<bool> {
        self.changing(
            self.store
                .rotate_resource_secret(audience, from_version, sealed),
        )
        .await
    }
}

#[async_trait]
impl TrustStore for Catalog {
    async fn trusted_issuer(&self, issuer: &str) -> StoreResult<Option<TrustedIssuer>> {
        self.lookup(issuer, || self.store.trusted_issuer(issuer))
            .await
    }

    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuer) -> StoreResult<()> {
        self.changing(self.store.insert_trusted_issuer(issuer))
            .await
    }

    async fn trusted_issuers(&self) -> StoreResult<Vec<TrustedIssuer>> {
        self.store.trusted_issuers().await
    }

    async fn delete_trusted_issuer(&self, issuer: &str) -> StoreResult<bool> {
        self.changing(self.store.delete_trusted_issuer(issuer))
            .await
    }

    async fn saml_idp(&self, entity_id: &str) -> StoreResult<Option<SamlIdp>> {
        self.lookup(entity_id, || self.store.saml_idp(entity_id))
            .await
    }

    async fn insert_saml_idp(&self, idp: &SamlIdp) -> StoreResult<()> {
        self.changing(self.store.insert_saml_idp(idp)).await
    }

    async fn saml_idps(&self) -> StoreResult<Vec<SamlIdp>> {
        self.store.saml_idps().await
    }

    async fn delete_saml_idp(&self, entity_id: &str) -> StoreResult<bool> {
        self.changing(self.store.delete_saml_idp(entity_id)).await
    }

    async fn record_assertion(
        &self,
        kind: AssertionKind,
        issuer: &str,
        id: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreResult<bool> {
        self.store
            .record_assertion(kind, issuer, id, expires_at, now)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::crypto::SecretDigest;
    use crate::model::{GrantType, IntrospectionPolicy};
    use crate::scope::Scope;
    use crate::testing::MemoryStore;

    fn client(id: &str, scope: &str) -> Client {
        Client {
            id: id.into(),
            name: "Test".into(),
            secret_digest: Some(SecretDigest::of("secret")),
            sealed_secret: None,
            auth_method: None,
            jwks: None,
            jwks_uri: None,
            grants: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            scopes: Scope::parse(scope).unwrap(),
            audiences: vec![],
            token_format: None,
            access_token_ttl: None,
            introspection: IntrospectionPolicy::Own,
            require_pkce: true,
            id_token_alg: None,
            post_logout_redirect_uris: vec![],
            metadata: Default::default(),
            created_at: 0,
        }
    }

    fn scope_of(found: Option<Client>) -> Option<String> {
        found.map(|c| c.scopes.to_string())
    }

    async fn world() -> (Arc<MemoryStore>, Catalog) {
        let store = Arc::new(MemoryStore::new());
        store.insert_client(&client("app", "a")).await.unwrap();
        let catalog = Catalog::new(Arc::clone(&store) as Arc<dyn Store>);
        (store, catalog)
    }

    /// A change made behind the catalogue's back (as by the CLI or another
    /// instance) goes unseen only until the next sync.
    #[tokio::test]
    async fn changes_made_elsewhere_are_seen_at_the_next_sync() {
        let (store, catalog) = world().await;
        catalog.sync().await.unwrap();
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("a".into())
        );

        store
            .update_client(&client("app", "b"), SecretUpdate::Keep)
            .await
            .unwrap();
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("a".into()),
            "served from the copy until the sync"
        );
        assert!(catalog.sync().await.unwrap(), "the sync sees the change");
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("b".into())
        );

        store.delete_client("app").await.unwrap();
        catalog.sync().await.unwrap();
        assert_eq!(catalog.client("app").await.unwrap(), None);
        assert!(!catalog.sync().await.unwrap(), "nothing changed since");
    }

    /// Absence is remembered too, and forgotten when the client appears.
    #[tokio::test]
    async fn unknown_ids_are_remembered_until_the_catalogue_changes() {
        let (store, catalog) = world().await;
        catalog.sync().await.unwrap();
        assert_eq!(catalog.client("late").await.unwrap(), None);
        store.insert_client(&client("late", "a")).await.unwrap();
        assert_eq!(catalog.client("late").await.unwrap(), None);
        catalog.sync().await.unwrap();
        assert!(catalog.client("late").await.unwrap().is_some());
    }

    /// Writes through the catalogue are seen by the next lookup, sync or not.
    #[tokio::test]
    async fn writes_through_the_catalogue_are_seen_at_once() {
        let (_store, catalog) = world().await;
        catalog.sync().await.unwrap();
        assert!(catalog.client("app").await.unwrap().is_some());
        catalog
            .set_client_secret("app", &SecretDigest::of("new"), None)
            .await
            .unwrap();
        let found = catalog.client("app").await.unwrap().unwrap();
        assert!(found.secret_digest.unwrap().matches("new"));
        assert!(catalog.delete_client("app").await.unwrap());
        assert_eq!(catalog.client("app").await.unwrap(), None);
    }

    /// Without a recent sync nothing is served from the copy: a poller that
    /// stopped, or a database that stopped answering, never stretches the
    /// staleness bound.
    #[tokio::test]
    async fn without_a_recent_sync_every_lookup_reads_the_store() {
        let (store, catalog) = world().await;
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("a".into())
        );
        store
            .update_client(&client("app", "b"), SecretUpdate::Keep)
            .await
            .unwrap();
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("b".into()),
            "never synced: read through"
        );

        catalog.sync().await.unwrap();
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("b".into())
        );
        store
            .update_client(&client("app", "c"), SecretUpdate::Keep)
            .await
            .unwrap();
        // The last sync began longer ago than the bound.
        let bound = i64::try_from(MAX_STALENESS.as_millis()).unwrap();
        catalog
            .confirmed_at
            .store(catalog.millis_since_origin() - bound, Ordering::Release);
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("c".into()),
            "stale copy: read through"
        );
    }

    /// A lookup that read the store before a change, and files its answer
    /// after the sync that saw the change, must not leave the old answer in
    /// the copy.
    #[tokio::test]
    async fn a_read_that_raced_a_change_is_not_filed() {
        let (store, catalog) = world().await;
        catalog.sync().await.unwrap();
        let raced = catalog
            .lookup("app", || async {
                let before = store.client("app").await;
                store.delete_client("app").await.unwrap();
                catalog.sync().await.unwrap();
                before
            })
            .await
            .unwrap();
        assert!(raced.is_some(), "the racing lookup answers what it read");
        assert_eq!(
            catalog.client("app").await.unwrap(),
            None,
            "and the next one sees the deletion"
        );
    }

    /// Many lookups of one unknown client at once, racing writes and syncs,
    /// end with the copy agreeing with the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_and_changes_settle_on_the_store() {
        let (store, catalog) = world().await;
        let catalog = Arc::new(catalog);
        catalog.sync().await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let catalog = Arc::clone(&catalog);
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for round in 0..20 {
                    if i == 0 {
                        let scope = format!("s{round}");
                        store
                            .update_client(&client("app", &scope), SecretUpdate::Keep)
                            .await
                            .unwrap();
                        catalog.sync().await.unwrap();
                    } else {
                        let _ = catalog.client("app").await.unwrap();
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        catalog.sync().await.unwrap();
        assert_eq!(
            scope_of(catalog.client("app").await.unwrap()),
            Some("s19".into())
        );
    }
}

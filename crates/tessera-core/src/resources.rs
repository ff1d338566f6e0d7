//! Registering and changing resources (the APIs tokens are for): the rules a
//! resource obeys, its shared secret, and the signing key its algorithm
//! needs. The command line calls these; any other entry point must call the
//! same, so that none can store a resource the others would refuse.

use tessera_jose::Algorithm;

use crate::keys::{KeyError, NewKey};
use crate::model::{AcceptedTokens, Resource, TokenFormat};
use crate::provider::Provider;
use crate::registration::check_audience;
use crate::scope::Scope;
use crate::shared_secret::{self, NewSecret};
use crate::store::ResourceStore as _;
use crate::store::StoreError;

/// The settings of a new resource.
#[derive(Debug, Clone)]
pub struct ResourceSettings {
    pub scopes: Scope,
    pub token_format: Option<TokenFormat>,
    pub accepts: AcceptedTokens,
    pub signing_alg: Option<Algorithm>,
}

/// A change to a resource's settings; `None` keeps a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct ResourceChange {
    pub scopes: Option<Scope>,
    /// `Some(None)`: back to the client's or the server's format.
    pub token_format: Option<Option<TokenFormat>>,
    pub accepts: Option<AcceptedTokens>,
    /// `Some(None)`: back to the server's `signing_alg`.
    pub signing_alg: Option<Option<Algorithm>>,
}

/// What a registration, change or rotation did.
#[derive(Debug)]
pub struct SavedResource {
    /// The resource as stored now.
    pub resource: Resource,
    /// A new shared secret, to show once: only its sealed form is stored.
    pub secret: Option<NewSecret>,
    /// A signing key made for the resource's algorithm, which had none.
    pub new_key: Option<NewKey>,
    /// The `kid` of a shared secret the change dropped (the resource left
    /// HS256): tokens signed with it are no longer accepted here.
    pub dropped_secret: Option<String>,
    /// Whether anything was written (a change may change nothing).
    pub changed: bool,
}

/// Why a resource was not registered or changed: a sentence for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// The resource would break a rule.
    #[error("{0}")]
    Invalid(String),
    #[error("resource {0:?} already exists")]
    Exists(String),
    #[error("no resource {0:?}")]
    NotFound(String),
    #[error(
        "resource {audience:?} signs with {alg}, so it has no shared secret; \
         `--signing-alg HS256` gives it one"
    )]
    NoSecret { audience: String, alg: String },
    /// Another command changed the resource between our read and our write.
    #[error("resource {0:?} was changed by another command meanwhile; run this one again")]
    Concurrent(String),
    #[error(
        "no {alg} key signs now{pending}. Run `tessera keys rotate --alg {alg} --now`, \
         then this command again"
    )]
    NoSigningKey { alg: Algorithm, pending: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a resource as it would be stored, after a registration and after
/// every change.
pub fn check_resource(resource: &Resource) -> Result<(), ResourceError> {
    check_audience(&resource.audience).map_err(|e| ResourceError::Invalid(e.message))?;
    if resource.token_format == Some(TokenFormat::Reference)
        && let Some(alg) = resource.signing_alg
    {
        return Err(ResourceError::Invalid(format!(
            "reference tokens are not signed, so a resource whose tokens are all reference \
             tokens has no signing algorithm (asked for {alg})"
        )));
    }
    let hs256 = resource.signing_alg == Some(Algorithm::HS256);
    if hs256 != resource.sealed_secret.is_some() {
        return Err(ResourceError::Invalid(format!(
            "resource {:?}: a shared secret goes with HS256 and only with it",
            resource.audience
        )));
    }
    if resource.secret_version < i64::from(hs256) {
        return Err(ResourceError::Invalid(format!(
            "resource {:?}: secret version {} is out of range",
            resource.audience, resource.secret_version
        )));
    }
    Ok(())
}

impl Provider {
    /// Registers a resource. An HS256 resource gets its first shared secret;
    /// an asymmetric algorithm without a key gets one, published at once (its
    /// tokens carry its `kid`, so a verifier's first unknown-`kid` refetch
    /// finds it).
    pub async fn create_resource(
        &self,
        audience: &str,
        settings: ResourceSettings,
    ) -> Result<SavedResource, ResourceError> {
        let mut resource = Resource {
            scopes: settings.scopes,
            token_format: settings.token_format,
            accepts: settings.accepts,
            signing_alg: settings.signing_alg,
            ..Resource::new(audience, self.clock().now())
        };
        let secret = (resource.signing_alg == Some(Algorithm::HS256))
            .then(|| self.new_secret(&mut resource));
        check_resource(&resource)?;
        // Before a key is made for it: a taken audience changes nothing.
        if self.catalog().resource(audience).await?.is_some() {
            return Err(ResourceError::Exists(audience.to_owned()));
        }
        let new_key = self.signing_key_for(resource.signing_alg).await?;
        self.catalog()
            .insert_resource(&resource)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ResourceError::Exists(audience.to_owned()),
                other => other.into(),
            })?;
        Ok(SavedResource {
            resource,
            secret,
            new_key,
            dropped_secret: None,
            changed: true,
        })
    }

    /// Changes a resource's settings, checked by the same rules as a new one.
    /// Moving to HS256 makes a new shared secret (never the one it may have had
    /// before); moving away from it drops the secret, so that tokens signed
    /// with it are no longer accepted here.
    pub async fn update_resource(
        &self,
        audience: &str,
        change: ResourceChange,
    ) -> Result<SavedResource, ResourceError> {
        let before = self
            .catalog()
            .resource(audience)
            .await?
            .ok_or_else(|| ResourceError::NotFound(audience.to_owned()))?;
        let mut resource = before.clone();
        if let Some(scopes) = change.scopes {
            resource.scopes = scopes;
        }
        if let Some(format) = change.token_format {
            resource.token_format = format;
        }
        if let Some(accepts) = change.accepts {
            resource.accepts = accepts;
        }
        let mut secret = None;
        if let Some(alg) = change.signing_alg
            && alg != before.signing_alg
        {
            resource.signing_alg = alg;
            if alg == Some(Algorithm::HS256) {
                secret = Some(self.new_secret(&mut resource));
            } else if resource.sealed_secret.take().is_some() {
                // The version moves on with the secret's removal too, so that a
                // concurrent update made from the row with the secret cannot
                // write it back.
                resource.secret_version += 1;
            }
        }
        check_resource(&resource)?;
        if resource == before {
            return Ok(SavedResource {
                resource,
                secret: None,
                new_key: None,
                dropped_secret: None,
                changed: false,
            });
        }
        let dropped_secret = before
            .secret_kid()
            .filter(|_| resource.sealed_secret.is_none());
        let new_key = if resource.signing_alg == before.signing_alg {
            None
        } else {
            self.signing_key_for(resource.signing_alg).await?
        };
        if !self
            .catalog()
            .update_resource(&resource, before.secret_version)
            .await?
        {
            return Err(ResourceError::Concurrent(audience.to_owned()));
        }
        Ok(SavedResource {
            resource,
            secret,
            new_key,
            dropped_secret,
            changed: true,
        })
    }

    /// Replaces an HS256 resource's shared secret. Tokens signed with the old
    /// one are no longer accepted here from this moment (their `kid` names a
    /// version that is no longer current), and the resource should switch to
    /// the new one at the same time.
    pub async fn rotate_resource_secret(
        &self,
        audience: &str,
    ) -> Result<SavedResource, ResourceError> {
        let before = self
            .catalog()
            .resource(audience)
            .await?
            .ok_or_else(|| ResourceError::NotFound(audience.to_owned()))?;
        if before.signing_alg != Some(Algorithm::HS256) {
            return Err(ResourceError::NoSecret {
                audience: audience.to_owned(),
                alg: before
                    .signing_alg
                    .unwrap_or(self.settings().signing_alg)
                    .to_string(),
            });
        }
        let mut resource = before.clone();
        let secret = self.new_secret(&mut resource);
        if !self
            .catalog()
            .rotate_resource_secret(audience, before.secret_version, &secret.sealed)
            .await?
        {
            return Err(ResourceError::Concurrent(audience.to_owned()));
        }
        Ok(SavedResource {
            resource,
            secret: Some(secret),
            new_key: None,
            dropped_secret: before.secret_kid(),
            changed: true,
        })
    }

    /// The next shared secret of `resource`, which it now holds sealed.
    fn new_secret(&self, resource: &mut Resource) -> NewSecret {
        resource.secret_version += 1;
        let secret = shared_secret::generate(
            self.keys().kek(),
            &resource.audience,
            resource.secret_version,
        );
        resource.sealed_secret = Some(secret.sealed.clone());
        secret
    }

    /// Makes sure a key of `alg` signs now, making the first one if there is
    /// none at all. One that exists but does not sign yet (or no longer does)
    /// is the operator's to resolve: the resource is refused rather than left
    /// with tokens that cannot be issued.
    async fn signing_key_for(
        &self,
        alg: Option<Algorithm>,
    ) -> Result<Option<NewKey>, ResourceError> {
        let Some(alg) = alg.filter(|a| !a.is_symmetric()) else {
            return Ok(None);
        };
        let made = self
            .keys()
            .ensure_key(self.store(), alg, self.clock())
            .await?;
        let now = self.clock().now();
        let ring = self.keys().ring();
        if ring.signing_key(alg, now).is_some() {
            return Ok(made);
        }
        let pending = ring
            .keys()
            .iter()
            .filter(|k| k.alg() == alg && k.revoked_at.is_none() && k.activates_at > now)
            .min_by_key(|k| k.activates_at)
            .map(|k| {
                format!(
                    " (key {} starts signing in {} s)",
                    k.kid(),
                    k.activates_at - now
                )
            })
            .unwrap_or_default();
        Err(ResourceError::NoSigningKey { alg, pending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyEncryptionKey;

    #[test]
    fn resources_are_checked_as_stored() {
        let plain = Resource::new("https://orders.example", 0);
        assert!(check_resource(&plain).is_ok());
        let mut rs256 = plain.clone();
        rs256.signing_alg = Some(Algorithm::RS256);
        assert!(check_resource(&rs256).is_ok());

        let mut bad_audience = plain.clone();
        bad_audience.audience = "orders".into();
        assert!(matches!(
            check_resource(&bad_audience),
            Err(ResourceError::Invalid(_))
        ));
        let mut fragment = plain.clone();
        fragment.audience = "https://orders.example#hs256-1".into();
        assert!(check_resource(&fragment).is_err());

        let mut reference = rs256.clone();
        reference.token_format = Some(TokenFormat::Reference);
        let refused = check_resource(&reference).expect_err("not signed");
        assert!(
            refused
                .to_string()
                .contains("reference tokens are not signed")
        );

        let (kek, _) = KeyEncryptionKey::generate();
        let mut hs256 = plain.clone();
        hs256.signing_alg = Some(Algorithm::HS256);
        assert!(check_resource(&hs256).is_err(), "HS256 without a secret");
        hs256.secret_version = 1;
        hs256.sealed_secret = Some(shared_secret::generate(&kek, &hs256.audience, 1).sealed);
        assert!(check_resource(&hs256).is_ok());
        let mut stray = hs256.clone();
        stray.signing_alg = Some(Algorithm::ES256);
        assert!(check_resource(&stray).is_err(), "a secret without HS256");
        let mut unversioned = hs256.clone();
        unversioned.secret_version = 0;
        assert!(check_resource(&unversioned).is_err());
    }
}

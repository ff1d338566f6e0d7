//! People: password login with brute-force protection, login sessions,
//! `/userinfo` (OIDC Core §5.3) and RP-initiated logout.

use serde_json::{Map, Value};

use crate::crypto::{SecretDigest, random_id, random_token};
use crate::error::{Error, Reason};
use crate::model::Client;
use crate::oidc::{self, IdTokenClaims};
use crate::password;
use crate::provider::Provider;
use crate::scope::Scope;
use crate::store::ClientStore as _;
use crate::store::{Session, User};
use crate::throttle;

/// A new login session: the cookie value (shown to the browser once) and the record.
#[derive(Debug)]
pub struct NewSession {
    pub cookie: String,
    pub session: Session,
}

/// A validated logout request.
#[derive(Debug)]
pub struct Logout {
    /// Where to send the browser afterwards, with `state`, if the client
    /// registered that URI.
    pub redirect: Option<String>,
    pub client: Option<Client>,
    /// The user the `id_token_hint` names: the session ends without asking only
    /// if it is theirs (RP-Initiated Logout 1.0 §2).
    pub hint_subject: Option<String>,
}

impl Provider {
    /// Checks a username (or email) and password. Throttled attempts are refused
    /// before the password is looked at; failures never say which part was wrong.
    ///
    /// The attempt is reserved under the account's and the address's counters
    /// before the slow hash, atomically, and given back only on success: parallel
    /// guesses cannot all pass on one old count. Checks for one account or one
    /// address also run one at a time on this instance.
    pub async fn authenticate_user(
        &self,
        login: &str,
        password: &str,
        client_address: Option<&str>,
    ) -> Result<User, Error> {
        let user = self.store().user_by_login(login.trim()).await?;
        let account = match &user {
            Some(user) => throttle::AccountKey::User(&user.id),
            None => throttle::AccountKey::Unknown(login),
        };
        let keys = throttle::keys(account, client_address);
        let mut held = Vec::with_capacity(3);
        for key in keys.all() {
            held.push(self.login_locks().lock(key).await);
        }
        let now = self.clock().now();
        if let Err(wait) = throttle::reserve(self.store(), &keys, now).await? {
            count_login("throttled");
            return Err(Error::throttled(wait));
        }
        // Off the async workers; an unknown user costs the same time.
        let stored_hash = user.as_ref().map(|u| u.password_hash.as_str());
        let verified = password::verify_off_worker(password, stored_hash)
            .await
            .map_err(|e| Error::server_error(&e))?;
        match user {
            Some(user) if verified => {
                throttle::release(self.store(), &keys).await?;
                count_login("success");
                Ok(user)
            }
            _ => {
                count_login("failure");
                Err(Error::new(
                    Reason::WrongCredentials,
                    "the username or password is wrong",
                ))
            }
        }
    }

    /// Starts a login session for a user who just signed in.
    pub async fn start_session(&self, user: &User) -> Result<NewSession, Error> {
        let now = self.clock().now();
        let cookie = random_token();
        let session = Session {
            digest: SecretDigest::of(&cookie),
            sid: random_id(),
            user_id: user.id.clone(),
            auth_time: now,
            last_seen: now,
            expires_at: now + self.settings().session_absolute_ttl,
        };
        self.store().insert_session(&session).await?;
        Ok(NewSession { cookie, session })
    }

    /// The live session behind a cookie value, with its user.
    pub async fn session(&self, cookie: &str) -> Result<Option<(Session, User)>, Error> {
        let now = self.clock().now();
        let idle_since = now - self.settings().session_idle_ttl;
        let Some(session) = self
            .store()
            .touch_session(&SecretDigest::of(cookie), now, idle_since)
            .await?
        else {
            return Ok(None);
        };
        let user = self.store().user(&session.user_id).await?;
        Ok(user.map(|user| (session, user)))
    }

    /// Ends the session behind a cookie, with the online refresh tokens (and
    /// their access tokens) it granted.
    pub async fn end_session(&self, cookie: &str) -> Result<(), Error> {
        self.store()
            .delete_session(&SecretDigest::of(cookie), self.clock().now())
            .await?;
        Ok(())
    }

    /// `/userinfo`: the claims of the user behind an access token that carries
    /// the `openid` scope (OIDC Core §5.3).
    pub async fn userinfo(&self, access_token: &str) -> Result<Map<String, Value>, Error> {
        let claims = match self.validate_access_token(access_token).await? {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::debug!(?reason, "userinfo with an inactive token");
                return Err(Error::new(
                    Reason::TokenInactive,
                    "the access token is invalid or expired",
                ));
            }
        };
        let scope = Scope::parse(claims.scope.as_deref().unwrap_or("")).unwrap_or_default();
        if !scope.contains("openid") || claims.auth_time.is_none() {
            return Err(Error::new(
                Reason::InsufficientScope,
                "the access token has no openid scope for a user",
            ));
        }
        let user = self
            .store()
            .user(&claims.sub)
            .await?
            .ok_or_else(|| Error::new(Reason::TokenInactive, "the user no longer exists"))?;
        let mut body = oidc::user_claims(&user, &scope);
        body.insert("sub".into(), Value::String(user.id));
        Ok(body)
    }

    /// Validates an RP-initiated logout request (OpenID Connect RP-Initiated
    /// Logout 1.0 §2): the ID token hint must be ours (it may have expired), and the
    /// post-logout redirect URI must be registered for that client.
    pub async fn logout_request(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Logout, Error> {
        let hint = match id_token_hint {
            Some(hint) => {
                let claims = self.verify_id_token_hint(hint).await?.ok_or_else(|| {
                    Error::new(
                        Reason::InvalidLogoutRequest,
                        "id_token_hint is not an ID token of this server",
                    )
                })?;
                if client_id.is_some_and(|c| c != claims.aud) {
                    return Err(Error::new(
                        Reason::InvalidLogoutRequest,
                        "client_id does not match id_token_hint",
                    ));
                }
                Some(claims)
            }
            None => None,
        };
        let hinted_client = match &hint {
            Some(claims) => Some(claims.aud.clone()),
            None => client_id.map(str::to_owned),
        };
        let client = match &hinted_client {
            Some(id) => self.catalog().client(id).await?,
            None => None,
        };
        let redirect = match post_logout_redirect_uri {
            None => None,
            Some(uri) => {
                let client = client.as_ref().ok_or_else(|| {
                    Error::new(
                        Reason::InvalidLogoutRequest,
                        "post_logout_redirect_uri needs id_token_hint or client_id",
                    )
                })?;
                if !client.post_logout_redirect_uris.iter().any(|r| r == uri) {
                    return Err(Error::new(
                        Reason::InvalidLogoutRequest,
                        "post_logout_redirect_uri is not registered",
                    ));
                }
                // As at the authorization endpoint: a stored URI that breaks
                // the registration rules is never followed.
                if let Err(e) = crate::registration::check_redirect_uri(uri) {
                    tracing::warn!(client_id = %client.id, error = %e, "refusing to redirect to a registered post-logout URI that breaks the registration rules; fix it with `tessera client update`");
                    return Err(Error::new(
                        Reason::InvalidLogoutRequest,
                        "post_logout_redirect_uri is not allowed by this server",
                    ));
                }
                let mut url = uri.to_owned();
                if let Some(state) = state {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("state=");
                    url.push_str(
                        &form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>(),
                    );
                }
                Some(url)
            }
        };
        Ok(Logout {
            redirect,
            client,
            hint_subject: hint.map(|claims| claims.sub),
        })
    }

    /// An ID token of this server, signature checked, expiry not (a hint may be old).
    async fn verify_id_token_hint(&self, token: &str) -> Result<Option<IdTokenClaims>, Error> {
        Ok(self.verify_own(token).await?.ok())
    }
}

/// Counts a password check's outcome (`tessera_logins_total`): `success`,
/// `failure` or `throttled`.
pub fn count_login(outcome: &'static str) {
    metrics::counter!("tessera_logins_total", "outcome" => outcome).increment(1);
}

//! What operators do to people's accounts: create one, change its roles,
//! delete it. The command line and the admin API call these, so both hold
//! usernames, emails, names and passwords to the same rules.

use crate::clock::UnixTime;
use crate::crypto::random_id;
use crate::password;
use crate::store::{Roles, StoreError, User, UserStore};

/// Why an account change was not made.
#[derive(Debug, thiserror::Error)]
pub enum UserAdminError {
    /// A value breaks a rule; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "username {0:?} or its email is already taken (compared case-insensitively; a username \
         may not be another user's email either, since both sign in)"
    )]
    Taken(String),
    #[error("no user {0:?}")]
    NotFound(String),
    /// The password could not be hashed (no thread could be started).
    #[error("{0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An account to create.
#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: String,
    pub roles: Roles,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password", &"[redacted]")
            .field("roles", &self.roles)
            .finish()
    }
}

/// Checks the new account, hashes its password (argon2id, off the async
/// workers) and stores it.
pub async fn create(
    store: &dyn UserStore,
    new: NewUser,
    now: UnixTime,
) -> Result<User, UserAdminError> {
    check_username(&new.username)?;
    if let Some(email) = &new.email {
        check_email(email)?;
    }
    if let Some(name) = &new.name {
        check_name(name)?;
    }
    password::check_strength(&new.password).map_err(UserAdminError::Invalid)?;
    let password_hash = password::hash_off_worker(&new.password)
        .await
        .map_err(|e| UserAdminError::Hashing(e.to_string()))?
        .map_err(UserAdminError::Hashing)?;
    let user = User {
        id: random_id(),
        username: new.username,
        email: new.email,
        name: new.name,
        password_hash,
        roles: new.roles,
        created_at: now,
    };
    store.insert_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => UserAdminError::Taken(user.username.clone()),
        other => other.into(),
    })?;
    Ok(user)
}

/// Replaces a user's roles; returns the user as now stored.
pub async fn set_roles(
    store: &dyn UserStore,
    id: &str,
    roles: Roles,
) -> Result<User, UserAdminError> {
    let mut user = store
        .user(id)
        .await?
        .ok_or_else(|| UserAdminError::NotFound(id.to_owned()))?;
    if !store.set_user_roles(id, roles).await? {
        return Err(UserAdminError::NotFound(id.to_owned()));
    }
    user.roles = roles;
    Ok(user)
}

/// Deletes a user with their sessions, consents, codes and refresh tokens.
pub async fn delete(store: &dyn UserStore, id: &str) -> Result<(), UserAdminError> {
    if store.delete_user(id).await? {
        Ok(())
    } else {
        Err(UserAdminError::NotFound(id.to_owned()))
    }
}

/// What a person types to sign in: 1 to 64 characters, no spaces.
pub fn check_username(username: &str) -> Result<(), UserAdminError> {
    let len = username.chars().count();
    if !(1..=64).contains(&len) {
        return Err(UserAdminError::Invalid(
            "a username needs 1 to 64 characters".into(),
        ));
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(UserAdminError::Invalid(format!(
            "username {username:?} must not contain spaces or control characters"
        )));
    }
    Ok(())
}

pub fn check_email(email: &str) -> Result<(), UserAdminError> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    };
    if !valid || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UserAdminError::Invalid(format!(
            "email {email:?} is not an address (one @ with text on both sides, no spaces)"
        )));
    }
    // RFC 5321 §4.5.3.1.3 limits a path to 256 octets, an address to 254.
    if email.len() > 254 {
        return Err(UserAdminError::Invalid(
            "an email address may have at most 254 bytes".into(),
        ));
    }
    Ok(())
}

/// A full name (the `name` claim): not blank, no control characters.
pub fn check_name(name: &str) -> Result<(), UserAdminError> {
    if name.trim().is_empty() {
        return Err(UserAdminError::Invalid("a name must not be empty".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(UserAdminError::Invalid(
            "a name must not contain control characters".into(),
        ));
    }
    Ok(())
}

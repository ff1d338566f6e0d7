//! Who may do what in the developer portal. The portal's pages call these
//! before every read and change, and [`crate::client_admin`] for the change
//! itself, so that the portal obeys the same registration rules as every
//! other entry point.

use crate::model::{Client, GrantType};
use crate::registration::{RegistrationError, RegistrationErrorKind};
use crate::settings::PortalAccess;
use crate::store::User;

/// Whether the person may use the portal at all.
pub fn may_use(user: &User, access: PortalAccess) -> bool {
    match access {
        PortalAccess::Everyone => true,
        PortalAccess::Developers => user.roles.developer || user.roles.admin,
    }
}

/// Whether the person may see and change the client: its owner, or an admin.
pub fn may_manage(user: &User, client: &Client) -> bool {
    user.roles.admin || client.metadata.owner.as_deref() == Some(user.id.as_str())
}

/// How many applications one person may register in the portal (an admin
/// is not counted): enough for any team, and a bound on what one account
/// can fill the client table with.
pub const MAX_APPS_PER_PERSON: usize = 50;

/// Checks that the person may register one more application, owning
/// `owned` already.
pub fn check_quota(user: &User, owned: usize) -> Result<(), RegistrationError> {
    if user.roles.admin || owned < MAX_APPS_PER_PERSON {
        return Ok(());
    }
    Err(refuse(format!(
        "you have {owned} applications, the most one person may register here; delete one first"
    )))
}

/// The grants anyone who may use the portal can give an application: those
/// where a person signs in and consents to what it gets, as with open
/// dynamic registration.
pub const PERSON_FACING: [GrantType; 3] = [
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
    GrantType::DeviceCode,
];

/// Checks the grants a person gives an application in the portal against
/// their roles. A service acting on its own (client credentials and the
/// delegation grants) needs the developer or admin role: when every user may
/// use the portal, it is the operator's decision, not any signed-in person's.
pub fn check_grants(user: &User, grants: &[GrantType]) -> Result<(), RegistrationError> {
    match grants.iter().find(|g| !PERSON_FACING.contains(g)) {
        Some(grant) if !(user.roles.developer || user.roles.admin) => Err(refuse(format!(
            "the {grant} grant needs the developer role; applications for people who sign in \
             (authorization code, refresh token, device) need none"
        ))),
        _ => Ok(()),
    }
}

/// Checks the APIs (audiences) a person asks for in the portal against their
/// roles: asking for any needs the developer or admin role.
pub fn check_audiences(user: &User, audiences: &[String]) -> Result<(), RegistrationError> {
    if audiences.is_empty() || user.roles.developer || user.roles.admin {
        return Ok(());
    }
    Err(refuse(
        "asking for APIs (audiences) needs the developer role; ask an administrator".into(),
    ))
}

fn refuse(message: String) -> RegistrationError {
    RegistrationError {
        kind: RegistrationErrorKind::InvalidClientMetadata,
        message,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::Roles;

    fn person(roles: Roles) -> User {
        User {
            id: "u1".into(),
            username: "dev".into(),
            email: None,
            name: None,
            password_hash: String::new(),
            roles,
            created_at: 0,
        }
    }

    #[test]
    fn roles_decide_access_and_what_may_be_asked_for() {
        let plain = person(Roles::default());
        let developer = person(Roles {
            developer: true,
            admin: false,
        });
        assert!(may_use(&plain, PortalAccess::Everyone));
        assert!(!may_use(&plain, PortalAccess::Developers));
        assert!(may_use(&developer, PortalAccess::Developers));

        let login_app = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        assert!(check_grants(&plain, &login_app).is_ok());
        assert!(check_grants(&plain, &[GrantType::ClientCredentials]).is_err());
        assert!(check_audiences(&plain, &[]).is_ok());
        assert!(check_audiences(&plain, &["https://api.example".into()]).is_err());
        assert!(check_grants(&developer, &[GrantType::ClientCredentials]).is_ok());
        assert!(check_audiences(&developer, &["https://api.example".into()]).is_ok());
        assert!(check_quota(&plain, MAX_APPS_PER_PERSON - 1).is_ok());
        assert!(check_quota(&plain, MAX_APPS_PER_PERSON).is_err());
        let admin = person(Roles {
            developer: false,
            admin: true,
        });
        assert!(check_quota(&admin, MAX_APPS_PER_PERSON).is_ok());
    }
}

//! The device authorization grant (RFC 8628): the device authorization endpoint,
//! user codes people can type, and the person's decision on the `/device` page.

use serde::Serialize;

use crate::crypto::{SecretDigest, random_bytes, random_token};
use crate::error::{Error, Reason};
use crate::model::{Client, GrantType};
use crate::params::Params;
use crate::provider::Provider;
use crate::store::ClientStore as _;
use crate::store::{DeviceAuthorization, DeviceStatus, StoreError, User};

/// Consonants without look-alikes (RFC 8628 §6.1): no vowels, so no words;
/// 20^8 ≈ 2^34.5 codes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Wrong user codes allowed per browser and per address within the window
/// before further attempts are refused (RFC 8628 §5.1: codes must not be
/// guessable in their lifetime).
pub const WRONG_CODES_ALLOWED: u32 = 10;
pub const WRONG_CODE_WINDOW: i64 = 600;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// A fresh user code, normalised (no dash).
pub fn new_user_code() -> String {
    let mut code = String::with_capacity(8);
    while code.len() < 8 {
        for byte in random_bytes::<16>() {
            // 256 is not a multiple of 20: dropping 240..=255 keeps the choice uniform.
            if byte < 240 && code.len() < 8 {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(byte % 20)]));
            }
        }
    }
    code
}

/// `WDJBMJHT` as people read it: `WDJB-MJHT`.
pub fn display_user_code(code: &str) -> String {
    if code.len() == 8 {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// What a person typed, as a normalised code: case-insensitive, with or without
/// the dash or spaces; `None` if it cannot be a code.
pub fn normalize_user_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

impl Provider {
    /// `POST /oauth2/device/code` (RFC 8628 §3.1). Public clients identify
    /// themselves with `client_id` alone.
    pub async fn device_authorization(
        &self,
        authorization: Option<&str>,
        params: &Params,
    ) -> Result<DeviceAuthorizationResponse, Error> {
        let client = self.authenticate_client(authorization, params).await?;
        if !client.allows(GrantType::DeviceCode) {
            return Err(Error::unauthorized_client(
                "the client may not use the device authorization grant",
            ));
        }
        let scope = client.requested_scope(params.get("scope"))?;
        crate::grants::Targets::resolve(self, &client, params.resources())
            .await?
            .check_policy(crate::grants::SubjectKind::User, &scope)?;
        let now = self.clock().now();
        let device_code = random_token();
        let settings = self.settings();
        // A collision with a live user code is possible but rare: try again.
        for _ in 0..5 {
            let user_code = new_user_code();
            let record = DeviceAuthorization {
                digest: SecretDigest::of(&device_code),
                user_code: user_code.clone(),
                client_id: client.id.clone(),
                scope: scope.clone(),
                audiences: params.resources().to_vec(),
                expires_at: now + settings.device_code_ttl,
                interval: settings.device_poll_interval,
                last_polled_at: None,
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
            };
            match self.store().insert_device_authorization(&record).await {
                Ok(()) => {
                    let base = settings.issuer.trim_end_matches('/');
                    let display = display_user_code(&user_code);
                    return Ok(DeviceAuthorizationResponse {
                        device_code,
                        verification_uri: format!("{base}/device"),
                        verification_uri_complete: format!("{base}/device?user_code={display}"),
                        user_code: display,
                        expires_in: settings.device_code_ttl,
                        interval: settings.device_poll_interval,
                    });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::server_error(
            &"could not allocate a unique user code",
        ))
    }

    /// Looks up a code typed on the `/device` page. Wrong codes count against the
    /// browser and the address; once too many, every attempt is refused for a
    /// while, even a right one. `throttle_keys` name the browser and address.
    pub async fn find_device(
        &self,
        typed: &str,
        throttle_keys: &[String],
    ) -> Result<Option<(DeviceAuthorization, Client)>, Error> {
        let now = self.clock().now();
        for key in throttle_keys {
            if let Some(failures) = self.store().login_failures(key).await?
                && failures.count >= WRONG_CODES_ALLOWED
                && failures.last_at > now - WRONG_CODE_WINDOW
            {
                return Err(Error::throttled(failures.last_at + WRONG_CODE_WINDOW - now));
            }
        }
        let found = match normalize_user_code(typed) {
            Some(code) => self.store().pending_device(&code, now).await?,
            None => None,
        };
        let client = match &found {
            Some(device) => self.catalog().client(&device.client_id).await?,
            None => None,
        };
        match (found, client) {
            (Some(device), Some(client)) => Ok(Some((device, client))),
            _ => {
                for key in throttle_keys {
                    self.store()
                        .record_login_failure(key, now, now - WRONG_CODE_WINDOW)
                        .await?;
                }
                Ok(None)
            }
        }
    }

    /// Records the signed-in person's decision on a pending device code.
    pub async fn decide_device(
        &self,
        user_code: &str,
        user: &User,
        auth_time: i64,
        approve: bool,
    ) -> Result<bool, Error> {
        let now = self.clock().now();
        Ok(self
            .store()
            .decide_device(user_code, &user.id, auth_time, approve, now)
            .await?)
    }
}

/// The keys wrong user codes are counted under.
pub fn throttle_keys(browser: Option<&str>, address: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(browser) = browser {
        keys.push(format!("device-browser:{browser}"));
    }
    if let Some(address) = address {
        keys.push(format!("device-addr:{address}"));
    }
    keys
}

/// The device's token request error for a record that is not (yet) approved.
pub fn poll_error(device: &DeviceAuthorization, now: i64) -> Option<Error> {
    if device.expires_at <= now {
        return Some(Error::new(
            Reason::DeviceCodeExpired,
            "the device code has expired",
        ));
    }
    match device.status {
        DeviceStatus::Pending => Some(Error::new(
            Reason::DeviceAuthorizationPending,
            "the user has not decided yet",
        )),
        DeviceStatus::Denied => Some(Error::new(
            Reason::DeviceAccessDenied,
            "the user denied the request",
        )),
        DeviceStatus::Consumed => Some(Error::new(
            Reason::DeviceCodeUsed,
            "the device code was already used",
        )),
        DeviceStatus::Approved => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_typeable() {
        for _ in 0..1_000 {
            let code = new_user_code();
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            // People pass the code on command lines too: never a leading dash.
            assert!(!display_user_code(&code).starts_with('-'));
            assert_eq!(
                normalize_user_code(&display_user_code(&code)).as_deref(),
                Some(code.as_str())
            );
        }
        assert_eq!(
            normalize_user_code("wdjb-mjht").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(
            normalize_user_code("WDJB MJHT").as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(
            normalize_user_code("WDJBMJHA"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalize_user_code("WDJB-MJH"), None);
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }
}

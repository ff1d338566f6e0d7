//! Request rate limits per client address, at the pages and endpoints that
//! anyone can reach (the token endpoint's, per client, is the core's). See
//! [`tessera_core::rate_limit`].

use std::num::NonZeroU32;

use tessera_core::error::Error;
use tessera_core::rate_limit::KeyedLimit;

/// Registrations without an initial access token one address may make in an
/// hour (`open_registration_per_hour`), in a burst or spread out.
pub const DEFAULT_OPEN_REGISTRATIONS_PER_HOUR: NonZeroU32 = NonZeroU32::new(10).expect("not 0");

/// The configured budgets; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub open_registration_per_hour: NonZeroU32,
    /// Every registration request, with an initial access token or not.
    pub registration_per_hour: Option<NonZeroU32>,
    /// Sign-in form submissions.
    pub login_per_minute: Option<NonZeroU32>,
    /// Device user-code submissions.
    pub device_entry_per_minute: Option<NonZeroU32>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            open_registration_per_hour: DEFAULT_OPEN_REGISTRATIONS_PER_HOUR,
            registration_per_hour: None,
            login_per_minute: None,
            device_entry_per_minute: None,
        }
    }
}

/// The budgets, per address, as they are being spent.
#[derive(Debug)]
pub struct RequestLimits {
    pub open_registrations: KeyedLimit,
    pub registrations: Option<KeyedLimit>,
    pub logins: Option<KeyedLimit>,
    pub device_entries: Option<KeyedLimit>,
}

impl RequestLimits {
    pub fn new(limits: &RateLimits) -> Self {
        RequestLimits {
            open_registrations: KeyedLimit::per_hour(limits.open_registration_per_hour),
            registrations: limits.registration_per_hour.map(KeyedLimit::per_hour),
            logins: limits.login_per_minute.map(KeyedLimit::per_minute),
            device_entries: limits.device_entry_per_minute.map(KeyedLimit::per_minute),
        }
    }
}

/// Takes one request from `address`'s budget under `limit`, if there is one.
pub fn take(limit: Option<&KeyedLimit>, address: Option<&str>) -> Result<(), Error> {
    match limit {
        Some(limit) => limit
            .take_for_address(address)
            .map_err(|wait| Error::rate_limited(wait, "from this address")),
        None => Ok(()),
    }
}

//! Request limits per client address, in memory on each instance.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Registrations without an initial access token one address may make in an
/// hour (`open_registration_per_hour`), in a burst or spread out.
pub const DEFAULT_OPEN_REGISTRATIONS_PER_HOUR: u32 = 10;

/// Past this many addresses, those whose allowance has refilled are dropped.
const TRACKED_ADDRESSES: usize = 10_000;

/// A budget of requests per address that refills evenly over the period.
#[derive(Debug)]
pub struct PerAddress {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl PerAddress {
    /// `count` requests an hour; at least one.
    pub fn per_hour(count: u32) -> Self {
        let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
        PerAddress {
            limiter: RateLimiter::keyed(Quota::per_hour(count)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `address`'s budget; `Err` with the time until
    /// the next is allowed when it is spent. Requests without an address
    /// share one budget.
    pub fn take(&self, address: Option<&str>) -> Result<(), Duration> {
        if self.limiter.len() > TRACKED_ADDRESSES {
            self.limiter.retain_recent();
        }
        let key = address.unwrap_or("unknown").to_owned();
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_budget() {
        let limits = PerAddress::per_hour(2);
        assert!(limits.take(Some("192.0.2.1")).is_ok());
        assert!(limits.take(Some("192.0.2.1")).is_ok());
        let wait = limits.take(Some("192.0.2.1")).expect_err("the third");
        // One request comes back every half hour.
        assert!(wait > Duration::from_secs(29 * 60) && wait <= Duration::from_secs(30 * 60));
        assert!(limits.take(Some("192.0.2.2")).is_ok());
    }
}

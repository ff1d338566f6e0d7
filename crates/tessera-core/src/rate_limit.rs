//! Request rate limits: a budget per key (a client, a client address) that
//! refills evenly over its period, in memory on each instance. With N
//! instances behind a load balancer, a key gets up to N times the budget.
//!
//! Unlike the login throttle ([`crate::throttle`]), which counts failures
//! and is shared through the store, these count every request and never
//! touch the database: they bound load, not guessing.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Past this many keys, those whose budget has refilled are dropped.
const TRACKED_KEYS: usize = 10_000;

/// A budget of requests per key.
#[derive(Debug)]
pub struct KeyedLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl KeyedLimit {
    /// `count` requests a second, all of them allowed in a burst.
    pub fn per_second(count: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_second(count))
    }

    /// `count` requests a minute, all of them allowed in a burst.
    pub fn per_minute(count: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_minute(count))
    }

    /// `count` requests an hour, all of them allowed in a burst.
    pub fn per_hour(count: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_hour(count))
    }

    fn with_quota(quota: Quota) -> Self {
        KeyedLimit {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `key`'s budget; `Err` with the time until the
    /// next is allowed when it is spent.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        if self.limiter.len() > TRACKED_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Takes one request from the budget of a client address; requests with
    /// no known address share one budget.
    pub fn take_for_address(&self, address: Option<&str>) -> Result<(), Duration> {
        self.take(address.unwrap_or("unknown"))
    }
}

/// Whole seconds to announce in `Retry-After` for a wait: rounded up, so that a
/// client retrying then is let in, and at least one.
pub fn retry_after_seconds(wait: Duration) -> i64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    i64::try_from(seconds).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limits = KeyedLimit::per_hour(NonZeroU32::new(2).unwrap());
        assert!(limits.take_for_address(Some("192.0.2.1")).is_ok());
        assert!(limits.take_for_address(Some("192.0.2.1")).is_ok());
        let wait = limits
            .take_for_address(Some("192.0.2.1"))
            .expect_err("the third");
        // One request comes back every half hour.
        assert!(wait > Duration::from_secs(29 * 60) && wait <= Duration::from_secs(30 * 60));
        assert!(limits.take_for_address(Some("192.0.2.2")).is_ok());
    }

    #[test]
    fn a_per_second_budget_allows_its_burst_then_refuses() {
        let limits = KeyedLimit::per_second(NonZeroU32::new(5).unwrap());
        let granted = (0..20).filter(|_| limits.take("client-a").is_ok()).count();
        // The refill during the loop is 200 ms a request: at most one more.
        assert!((5..=6).contains(&granted), "{granted}");
        assert!(limits.take("client-b").is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}

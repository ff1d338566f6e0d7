//! Brute-force protection for logins (the login page and the password grant):
//! per account and per client address, delays grow after 5 failures and a lock of
//! 15 minutes follows 20 (SPEC.md defaults). A throttled attempt is refused even
//! with the right password, so guessing gains nothing by going faster.

use crate::clock::UnixTime;
use crate::store::{LoginFailures, StoreResult, ThrottleStore};

/// Failures older than this no longer count.
pub const WINDOW: i64 = 15 * 60;
/// Failures before delays start.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failures that lock the key for [`LOCK`].
pub const LOCK_AFTER: u32 = 20;
pub const LOCK: i64 = 15 * 60;

/// The keys an attempt is counted under.
pub fn keys(login: &str, address: Option<&str>) -> Vec<String> {
    let mut keys = vec![format!("login:{}", login.trim().to_lowercase())];
    if let Some(address) = address {
        keys.push(format!("addr:{address}"));
    }
    keys
}

/// When the next attempt is allowed after these failures, if not now.
pub fn next_attempt(failures: &LoginFailures) -> Option<UnixTime> {
    if failures.count >= LOCK_AFTER {
        return Some(failures.last_at + LOCK);
    }
    if failures.count < FREE_ATTEMPTS {
        return None;
    }
    // 1, 2, 4 … seconds after the 5th, 6th, 7th … failure, at most a minute.
    let delay = 1i64 << (failures.count - FREE_ATTEMPTS).min(6);
    Some(failures.last_at + delay.min(60))
}

/// Seconds until an attempt is allowed under every key, or `None` if it is now.
pub async fn retry_after(
    store: &dyn ThrottleStore,
    keys: &[String],
    now: UnixTime,
) -> StoreResult<Option<i64>> {
    let mut wait = 0;
    for key in keys {
        if let Some(failures) = store.login_failures(key).await?
            && failures.last_at > now - WINDOW
            && let Some(at) = next_attempt(&failures)
        {
            // Times are whole seconds: a failure at 10.9 s is stored as 10, so
            // allowing the next attempt at `at` itself could make a 1 s delay
            // almost none. One more second makes every delay its full length.
            wait = wait.max(at + 1 - now);
        }
    }
    Ok((wait > 0).then_some(wait))
}

pub async fn record_failure(
    store: &dyn ThrottleStore,
    keys: &[String],
    now: UnixTime,
) -> StoreResult<()> {
    for key in keys {
        store.record_login_failure(key, now, now - WINDOW).await?;
    }
    Ok(())
}

/// A successful login clears the account's counter, not the address's: one
/// right password must not reset an attacker's budget for other accounts.
pub async fn record_success(store: &dyn ThrottleStore, keys: &[String]) -> StoreResult<()> {
    if let Some(account) = keys.first() {
        store.clear_login_failures(account).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(count: u32) -> LoginFailures {
        LoginFailures {
            count,
            first_at: 0,
            last_at: 100,
        }
    }

    #[test]
    fn delays_grow_then_lock() {
        assert_eq!(next_attempt(&failures(4)), None);
        assert_eq!(next_attempt(&failures(5)), Some(101));
        assert_eq!(next_attempt(&failures(7)), Some(104));
        assert_eq!(next_attempt(&failures(19)), Some(160));
        assert_eq!(next_attempt(&failures(20)), Some(100 + LOCK));
    }
}

//! Brute-force protection for logins (the login page and the password grant):
//! per account and per client address, delays grow after 5 failures and a lock of
//! 15 minutes follows 20 (SPEC.md defaults). A throttled attempt is refused even
//! with the right password, so guessing gains nothing by going faster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::UnixTime;
use crate::store::{LoginFailures, StoreResult, ThrottleStore};

/// Failures older than this no longer count.
pub const WINDOW: i64 = 15 * 60;
/// Failures before delays start.
pub const FREE_ATTEMPTS: u32 = 5;
/// Failures that lock the key for [`LOCK`].
pub const LOCK_AFTER: u32 = 20;
pub const LOCK: i64 = 15 * 60;

/// The keys an attempt is counted under: the account (its user ID when the
/// login names one, so that the username and the email share one budget;
/// otherwise what was typed, so that unknown names are throttled alike) and the
/// client address.
pub fn keys(account: AccountKey<'_>, address: Option<&str>) -> Vec<String> {
    let mut keys = vec![match account {
        AccountKey::User(id) => format!("user:{id}"),
        AccountKey::Unknown(login) => format!("login:{}", login.trim().to_lowercase()),
    }];
    if let Some(address) = address {
        keys.push(format!("addr:{address}"));
    }
    keys
}

/// Whom a login attempt is for.
#[derive(Debug, Clone, Copy)]
pub enum AccountKey<'a> {
    /// An existing user, by ID.
    User(&'a str),
    /// A login that names no user.
    Unknown(&'a str),
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

/// Seconds to wait before an attempt is allowed after `failures`, if any.
fn wait_after(failures: Option<&LoginFailures>, now: UnixTime) -> Option<i64> {
    let failures = failures.filter(|f| f.last_at > now - WINDOW)?;
    // Times are whole seconds: a failure at 10.9 s is stored as 10, so
    // allowing the next attempt at `at` itself could make a 1 s delay almost
    // none. One more second makes every delay its full length.
    let wait = next_attempt(failures)? + 1 - now;
    (wait > 0).then_some(wait)
}

/// Seconds until an attempt is allowed under every key, or `None` if it is now.
pub async fn retry_after(
    store: &dyn ThrottleStore,
    keys: &[String],
    now: UnixTime,
) -> StoreResult<Option<i64>> {
    let mut wait = 0;
    for key in keys {
        let failures = store.login_failures(key).await?;
        wait = wait.max(wait_after(failures.as_ref(), now).unwrap_or(0));
    }
    Ok((wait > 0).then_some(wait))
}

/// How often a reservation is retried after losing a race on its key.
const RESERVE_TRIES: usize = 8;

/// Reserves one attempt under every key before the password is checked: each
/// key's counter goes up by one, atomically and only if the policy allows an
/// attempt now, so that parallel guesses cannot all read the same old count.
/// The attempt counts as a failure unless [`release`] takes it back.
/// `Ok(Err(wait))` when some key is throttled; nothing is then reserved.
pub async fn reserve(
    store: &dyn ThrottleStore,
    keys: &[String],
    now: UnixTime,
) -> StoreResult<Result<(), i64>> {
    for (done, key) in keys.iter().enumerate() {
        let refused = match reserve_one(store, key, now).await {
            Ok(()) => continue,
            Err(refused) => refused,
        };
        for earlier in &keys[..done] {
            store.release_login_attempt(earlier).await?;
        }
        return refused.map(Err);
    }
    Ok(Ok(()))
}

/// `Err(Ok(wait))`: throttled; `Err(Err(e))`: the store failed.
async fn reserve_one(
    store: &dyn ThrottleStore,
    key: &str,
    now: UnixTime,
) -> Result<(), Result<i64, crate::store::StoreError>> {
    for _ in 0..RESERVE_TRIES {
        let current = store.login_failures(key).await.map_err(Err)?;
        if let Some(wait) = wait_after(current.as_ref(), now) {
            return Err(Ok(wait));
        }
        let next = match current {
            Some(f) if f.first_at >= now - WINDOW => LoginFailures {
                count: f.count + 1,
                first_at: f.first_at,
                last_at: now,
            },
            _ => LoginFailures {
                count: 1,
                first_at: now,
                last_at: now,
            },
        };
        if store
            .swap_login_failures(key, current.as_ref(), &next)
            .await
            .map_err(Err)?
        {
            return Ok(());
        }
    }
    // Lost every race: others are guessing under this key at this moment.
    Err(Ok(1))
}

/// Takes back a reservation after a successful login: the account's counter is
/// cleared, the address's loses the one reserved attempt (one right password
/// must not reset an attacker's budget for other accounts).
pub async fn release(store: &dyn ThrottleStore, keys: &[String]) -> StoreResult<()> {
    if let Some((account, others)) = keys.split_first() {
        store.clear_login_failures(account).await?;
        for key in others {
            store.release_login_attempt(key).await?;
        }
    }
    Ok(())
}

/// Per-key async locks, so that at most one password check runs at a time per
/// account and per address on this instance: parallel guesses queue instead of
/// each costing an argon2 hash. An entry lives only while someone holds or
/// awaits it.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds one key's lock; dropping it releases the lock.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    owner: &'a KeyedLocks,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let mutex = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        let guard = mutex.lock_owned().await;
        KeyGuard {
            owner: self,
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// Keys currently held or awaited (for tests).
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.owner.locks.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map's own reference left: nobody holds or awaits the key.
        if locks
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::MemoryStore;

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

    /// The key's counter as stored.
    async fn count(store: &MemoryStore, key: &str) -> u32 {
        store
            .login_failures(key)
            .await
            .unwrap()
            .map_or(0, |f| f.count)
    }

    #[tokio::test]
    async fn concurrent_reservations_get_exactly_the_free_attempts() {
        let store = Arc::new(MemoryStore::new());
        let keys = keys(AccountKey::User("u1"), Some("10.0.0.1"));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (store, keys) = (Arc::clone(&store), keys.clone());
            tasks.spawn(async move { reserve(store.as_ref(), &keys, 1_000).await.unwrap() });
        }
        let results = tasks.join_all().await;
        let granted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, FREE_ATTEMPTS as usize, "{results:?}");
        assert_eq!(count(&store, "user:u1").await, FREE_ATTEMPTS);
        assert_eq!(count(&store, "addr:10.0.0.1").await, FREE_ATTEMPTS);
        assert!(
            results.iter().all(|r| r.is_ok() || *r == Err(2)),
            "{results:?}"
        );
    }

    #[tokio::test]
    async fn a_success_clears_the_account_and_gives_back_the_address_attempt() {
        let store = MemoryStore::new();
        let alice = keys(AccountKey::User("alice"), Some("10.0.0.1"));
        let bob = keys(AccountKey::User("bob"), Some("10.0.0.1"));
        for _ in 0..3 {
            assert_eq!(reserve(&store, &alice, 1_000).await.unwrap(), Ok(()));
        }
        assert_eq!(reserve(&store, &bob, 1_000).await.unwrap(), Ok(()));
        release(&store, &bob).await.unwrap();
        assert_eq!(count(&store, "user:bob").await, 0);
        assert_eq!(
            count(&store, "user:alice").await,
            3,
            "another account's success changes nothing"
        );
        assert_eq!(
            count(&store, "addr:10.0.0.1").await,
            3,
            "the address keeps alice's failures only"
        );
    }

    #[tokio::test]
    async fn a_throttled_address_reserves_nothing_for_the_account() {
        let store = MemoryStore::new();
        for i in 0..FREE_ATTEMPTS {
            let other = keys(AccountKey::Unknown(&format!("user{i}")), Some("10.0.0.2"));
            assert_eq!(reserve(&store, &other, 1_000).await.unwrap(), Ok(()));
        }
        let carol = keys(AccountKey::User("carol"), Some("10.0.0.2"));
        assert_eq!(reserve(&store, &carol, 1_000).await.unwrap(), Err(2));
        assert_eq!(
            count(&store, "user:carol").await,
            0,
            "the account's reservation was taken back"
        );
        // After the delay, one more attempt; then the stale window starts over.
        assert_eq!(reserve(&store, &carol, 1_002).await.unwrap(), Ok(()));
        assert_eq!(
            reserve(&store, &carol, 1_002 + WINDOW + 1).await.unwrap(),
            Ok(())
        );
        assert_eq!(
            count(&store, "addr:10.0.0.2").await,
            1,
            "counted afresh after the window"
        );
    }

    #[test]
    fn the_account_key_is_the_user_whatever_was_typed() {
        assert_eq!(keys(AccountKey::User("id-1"), None), vec!["user:id-1"]);
        assert_eq!(
            keys(AccountKey::Unknown(" Mallory "), Some("::1")),
            vec!["login:mallory", "addr:::1"]
        );
    }

    #[tokio::test]
    async fn keyed_locks_serialise_one_key_and_forget_it_afterwards() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("user:a").await;
        // Another key is not held up.
        drop(locks.lock("addr:1").await);
        let waiter = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _second = locks.lock("user:a").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "the second holder waits for the first"
        );
        drop(first);
        waiter.await.expect("second holder");
        assert!(locks.is_empty(), "no key is kept once released");
    }
}

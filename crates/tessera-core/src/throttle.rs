//! Brute-force protection for logins (the login page and the password grant):
//! per account and per client address, delays grow after 5 failures and a lock of
//! 15 minutes follows 20 (SPEC.md defaults). A throttled attempt is refused even
//! with the right password, so guessing gains nothing by going faster.
//!
//! The account's own throttle must not let anyone lock a known user out: guesses
//! at an account from many addresses throttle the account, but an address that
//! has not itself failed on that account still gets its attempt, so the user
//! signs in from their own machine. Such an address is counted as usual, so
//! each one an attacker controls gets one guess per account while the account
//! is throttled, and its own address budget bounds it across accounts.

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

/// The counters one login attempt is kept under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptKeys {
    /// The account: its user ID when the login names one, so that the
    /// username and the email share one budget; otherwise what was typed, so
    /// that unknown names are throttled alike.
    account: String,
    /// The client address, and the account at that address.
    address: Option<(String, String)>,
}

/// The keys an attempt is counted under.
pub fn keys(account: AccountKey<'_>, address: Option<&str>) -> AttemptKeys {
    let account = match account {
        AccountKey::User(id) => format!("user:{id}"),
        AccountKey::Unknown(login) => format!("login:{}", login.trim().to_lowercase()),
    };
    let address =
        address.map(|address| (format!("addr:{address}"), format!("{account}@{address}")));
    AttemptKeys { account, address }
}

impl AttemptKeys {
    /// Every key, in the order their locks are taken: account first, then
    /// address, so that no two checks wait on each other in opposite orders.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.account.as_str()).chain(
            self.address
                .iter()
                .flat_map(|(address, pair)| [address.as_str(), pair.as_str()]),
        )
    }
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

/// How often a reservation is retried after losing a race on its key.
const RESERVE_TRIES: usize = 8;

/// Reserves one attempt under every key before the password is checked: each
/// key's counter goes up by one, atomically and only if the policy allows an
/// attempt now, so that parallel guesses cannot all read the same old count.
/// The attempt counts as a failure unless [`release`] takes it back.
/// `Ok(Err(wait))` when the attempt is throttled; nothing is then reserved.
pub async fn reserve(
    store: &dyn ThrottleStore,
    keys: &AttemptKeys,
    now: UnixTime,
) -> StoreResult<Result<(), i64>> {
    let mut reserved: Vec<&str> = Vec::with_capacity(2);
    // Whether this address has failed on this account in the window: the
    // account@address counter's count before this attempt.
    let mut address_is_clean = false;
    if let Some((address, pair)) = &keys.address {
        if let Err(refused) = reserve_one(store, address, now, Limit::Enforce).await {
            return undo(store, &reserved, refused).await;
        }
        reserved.push(address);
        match reserve_one(store, pair, now, Limit::Enforce).await {
            Ok(earlier_failures) => {
                reserved.push(pair);
                address_is_clean = earlier_failures == 0;
            }
            Err(refused) => return undo(store, &reserved, refused).await,
        }
    }
    // The account is throttled, but this address has not failed on it in the
    // window: the attempt goes ahead all the same, and is counted.
    let limit = if address_is_clean {
        Limit::CountOnly
    } else {
        Limit::Enforce
    };
    match reserve_one(store, &keys.account, now, limit).await {
        Ok(_) => Ok(Ok(())),
        Err(refused) => undo(store, &reserved, refused).await,
    }
}

/// Gives back the reservations made before one was refused.
async fn undo(
    store: &dyn ThrottleStore,
    reserved: &[&str],
    refused: Result<i64, crate::store::StoreError>,
) -> StoreResult<Result<(), i64>> {
    for key in reserved {
        store.release_login_attempt(key).await?;
    }
    refused.map(Err)
}

/// Whether a key's policy may refuse the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Enforce,
    CountOnly,
}

/// Reserves one attempt under `key`, returning how many failures it already
/// had in the window. `Err(Ok(wait))`: throttled; `Err(Err(e))`: the store
/// failed.
async fn reserve_one(
    store: &dyn ThrottleStore,
    key: &str,
    now: UnixTime,
    limit: Limit,
) -> Result<u32, Result<i64, crate::store::StoreError>> {
    for _ in 0..RESERVE_TRIES {
        let current = store.login_failures(key).await.map_err(Err)?;
        if let Some(wait) = wait_after(current.as_ref(), now)
            && limit == Limit::Enforce
        {
            return Err(Ok(wait));
        }
        let (earlier, next) = match current {
            Some(f) if f.first_at >= now - WINDOW => (
                f.count,
                LoginFailures {
                    count: f.count + 1,
                    first_at: f.first_at,
                    last_at: now,
                },
            ),
            _ => (
                0,
                LoginFailures {
                    count: 1,
                    first_at: now,
                    last_at: now,
                },
            ),
        };
        if store
            .swap_login_failures(key, current.as_ref(), &next)
            .await
            .map_err(Err)?
        {
            return Ok(earlier);
        }
    }
    // Lost every race: others are guessing under this key at this moment.
    Err(Ok(1))
}

/// Takes back a reservation after a successful login: the account's counters
/// (everywhere and at this address) are cleared, the address's loses the one
/// reserved attempt (one right password must not reset an attacker's budget
/// for other accounts).
pub async fn release(store: &dyn ThrottleStore, keys: &AttemptKeys) -> StoreResult<()> {
    store.clear_login_failures(&keys.account).await?;
    if let Some((address, pair)) = &keys.address {
        store.clear_login_failures(pair).await?;
        store.release_login_attempt(address).await?;
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
        let keys_of = |account, address| {
            keys(account, address)
                .all()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys_of(AccountKey::User("id-1"), None), vec!["user:id-1"]);
        assert_eq!(
            keys_of(AccountKey::Unknown(" Mallory "), Some("::1")),
            vec!["login:mallory", "addr:::1", "login:mallory@::1"]
        );
    }

    #[tokio::test]
    async fn guesses_from_elsewhere_do_not_lock_the_user_out() {
        let store = MemoryStore::new();
        // A botnet: each address one wrong guess at dave, until he is locked.
        for i in 0..LOCK_AFTER {
            let bot = keys(AccountKey::User("dave"), Some(&format!("203.0.113.{i}")));
            assert_eq!(reserve(&store, &bot, 1_000).await.unwrap(), Ok(()));
        }
        assert_eq!(count(&store, "user:dave").await, LOCK_AFTER);
        // A bot that has guessed before waits out the lock.
        let bot = keys(AccountKey::User("dave"), Some("203.0.113.0"));
        assert_eq!(reserve(&store, &bot, 1_000).await.unwrap(), Err(LOCK + 1));
        assert_eq!(
            count(&store, "addr:203.0.113.0").await,
            1,
            "nothing reserved"
        );
        // Dave's own address has not failed on his account: he gets his attempt
        // and, with the right password, clears the account.
        let dave = keys(AccountKey::User("dave"), Some("198.51.100.2"));
        assert_eq!(reserve(&store, &dave, 1_000).await.unwrap(), Ok(()));
        release(&store, &dave).await.unwrap();
        assert_eq!(count(&store, "user:dave").await, 0);
        assert_eq!(count(&store, "user:dave@198.51.100.2").await, 0);
        assert_eq!(count(&store, "addr:198.51.100.2").await, 0);
    }

    #[tokio::test]
    async fn a_fresh_address_gets_one_guess_at_a_throttled_account() {
        let store = MemoryStore::new();
        for i in 0..FREE_ATTEMPTS {
            let bot = keys(AccountKey::User("erin"), Some(&format!("203.0.113.{i}")));
            assert_eq!(reserve(&store, &bot, 1_000).await.unwrap(), Ok(()));
        }
        let fresh = keys(AccountKey::User("erin"), Some("192.0.2.50"));
        assert_eq!(reserve(&store, &fresh, 1_000).await.unwrap(), Ok(()));
        // Its guess failed: now it waits like everyone else, and the account
        // counted it (6 failures: 2 s, and the whole-second margin).
        assert_eq!(reserve(&store, &fresh, 1_000).await.unwrap(), Err(3));
        // Concurrent first guesses from one fresh address: one goes through.
        let store = Arc::new(store);
        let other = keys(AccountKey::User("erin"), Some("192.0.2.51"));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (store, other) = (Arc::clone(&store), other.clone());
            tasks.spawn(async move { reserve(store.as_ref(), &other, 1_000).await.unwrap() });
        }
        let granted = tasks.join_all().await.iter().filter(|r| r.is_ok()).count();
        assert_eq!(granted, 1);
        // Without an address there is nobody to tell apart: the account rules
        // (7 failures: 4 s).
        let nowhere = keys(AccountKey::User("erin"), None);
        assert_eq!(
            reserve(store.as_ref(), &nowhere, 1_000).await.unwrap(),
            Err(5)
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

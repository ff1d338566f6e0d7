//! User passwords: argon2id PHC strings. Only for people; client secrets are
//! high-entropy and stored as SHA-256 digests instead.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

/// Hashes a password with argon2id and a random salt (the crate's defaults follow
/// the OWASP recommendation: m=19 MiB, t=2, p=1).
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing failed: {e}"))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the time of one verification without a user, so that a login for an
/// unknown username takes as long as one with a wrong password.
pub fn verify_dummy(password: &str) {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("tessera-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

/// Checks `password` against `phc` (or, with `None`, spends the time of a
/// check without a user) on a thread of its own, never on the caller's: an
/// argon2id verification takes tens of milliseconds of CPU, and on an async
/// worker it would stall every request queued behind it. At most one check
/// runs per core; the others wait their turn, in order, so a burst of logins
/// slows logins and nothing else.
///
/// Fails only if no thread can be started (a process limit).
pub async fn verify_off_worker(password: &str, phc: Option<&str>) -> std::io::Result<bool> {
    let password = password.to_owned();
    let phc = phc.map(str::to_owned);
    off_worker(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            verify_dummy(&password);
            false
        }
    })
    .await
}

/// Hashes a new password off the async workers, like
/// [`verify_off_worker`]: the admin API sets passwords while tokens are served.
pub async fn hash_off_worker(password: &str) -> std::io::Result<Result<String, String>> {
    let password = password.to_owned();
    off_worker(move || hash(&password)).await
}

/// Runs slow, CPU-bound `work` on a new thread once one of the per-core slots
/// is free. Starting a thread costs microseconds next to the work's
/// milliseconds, and leaves no idle pool behind. The slot goes with the
/// thread: a caller that stops waiting does not free it before the work ends.
async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    use std::sync::{Arc, OnceLock};
    use tokio::sync::{Semaphore, oneshot};
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Semaphore::new(cores))
    });
    let slot = Arc::clone(slots)
        .acquire_owned()
        .await
        .expect("the slots are never closed");
    let (done, outcome) = oneshot::channel();
    std::thread::Builder::new()
        .name("tessera-password".into())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = done.send(work());
            drop(slot);
        })?;
    outcome
        .await
        .map_err(|_| std::io::Error::other("the password check stopped unfinished"))
}

/// Makes the calling thread yield the CPU to every normal-priority thread
/// (nice 19): a login then takes only what token requests leave. On Linux the
/// nice value belongs to the thread (setpriority(2), NPTL), and each check
/// runs on a thread of its own, so nothing else is slowed. Where it cannot be
/// lowered the check simply runs at normal priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::nice(19);
    }
}

/// The minimum a password must satisfy (NIST SP 800-63B §5.1.1: length, not
/// composition rules).
pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("a password needs at least 8 characters".into());
    }
    if password.len() > 1024 {
        return Err("a password may have at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Checks off the worker answer as checks on it do, all of them, when
    /// more are asked at once than there are slots.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_off_the_workers_answer_alike_and_all_finish() {
        let phc = super::hash("correct horse").expect("hash");
        let mut checks = Vec::new();
        for i in 0..6 {
            let phc = phc.clone();
            checks.push(tokio::spawn(async move {
                let (password, stored) = match i % 3 {
                    0 => ("correct horse", Some(phc.as_str())),
                    1 => ("correct horsE", Some(phc.as_str())),
                    _ => ("correct horse", None),
                };
                (
                    i,
                    super::verify_off_worker(password, stored)
                        .await
                        .expect("thread"),
                )
            }));
        }
        for check in checks {
            let (i, verified) = check.await.expect("task");
            assert_eq!(verified, i % 3 == 0, "check {i}");
        }
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let phc = super::hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &phc));
        assert!(!super::verify("correct horsE", &phc));
        assert!(!super::verify("correct horse", "not a phc string"));
        assert!(super::check_strength("short").is_err());
    }
}

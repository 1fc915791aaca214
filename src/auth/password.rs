//! Argon2id password hashing, off the async threads.
//!
//! Hashing is CPU- and memory-heavy by design, so it runs under `spawn_blocking` and behind a
//! semaphore that bounds how many hashes run at once (a login flood must not exhaust memory).
//! Unknown emails are verified against a dummy hash so they cost the same time as real ones.
//!
//! Accounts imported from another platform (`reelgraph admin import-users`) may carry that
//! platform's hash: bcrypt (`$2a$`, `$2b$`, `$2y$`) or Argon2 with other parameters. Such a
//! hash verifies as it is, and [`is_outdated`] tells sign-in to replace it with an Argon2id
//! hash of the same password once the password is known to be right.

use std::sync::{Arc, LazyLock};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

/// Hashing slots: two per core, each for one hash like ours (19 MiB of Argon2 memory).
static HASHING_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores * 2))
});

/// One more slot, for checking an imported Argon2 hash that needs more memory than ours (up to
/// [`MAX_ARGON2_M_COST`]): such checks run one at a time, besides a regular slot, so they
/// neither crowd out sign-ins with ordinary hashes nor take memory past
/// `slots × 19 MiB + 64 MiB`, however many of them come in.
static LARGE_HASH_SLOT: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(1)));

/// A hash of a random password with the same parameters as real ones.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut random = [0u8; 24];
    rand::fill(&mut random);
    Argon2::default()
        .hash_password(&random)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// A random password that meets the policy: 24 URL-safe characters (144 bits), for accounts
/// a command creates (`admin create`, `seed`). Never one that starts with `-`: typed back as
/// `--password -Ix…`, a command line would read it as a flag (one in 64 did).
pub fn generate_password() -> String {
    loop {
        let mut random = [0u8; 18];
        rand::fill(&mut random);
        let password =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random);
        if !password.starts_with('-') {
            return password;
        }
    }
}

/// Checks the password policy; the error names `field`.
pub fn validate_password(field: &str, password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(AppError::bad_input(
            field,
            format!("password must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// Runs `f` on the blocking pool once a hashing slot is free (and, when `large`, the one slot
/// for large imported hashes too).
async fn run_blocking<T: Send + 'static>(
    large: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let large = large.then(|| LARGE_HASH_SLOT.clone());
    run_in_slots(HASHING_SLOTS.clone(), large, f).await
}

/// Runs `f` on the blocking pool holding a permit of `slots` (and of `large`). The permits go
/// with the work, not with the caller: a client that hangs up (or a request that times out)
/// while its hash runs does not free a slot for another hash beside it.
async fn run_in_slots<T: Send + 'static>(
    slots: Arc<Semaphore>,
    large: Option<Arc<Semaphore>>,
    f: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let slot_failed = |e| AppError::internal("password hashing slots", e);
    let large_slot = match large {
        Some(large) => Some(large.acquire_owned().await.map_err(slot_failed)?),
        None => None,
    };
    let slot = slots.acquire_owned().await.map_err(slot_failed)?;
    tokio::task::spawn_blocking(move || {
        let _held = (slot, large_slot);
        f()
    })
    .await
    .map_err(|e| AppError::internal("password hashing task", e))
}

/// Hashes a password into a PHC string (`$argon2id$…`).
pub async fn hash(password: String) -> AppResult<String> {
    run_blocking(false, move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await?
    .map_err(|e| AppError::internal("hashing password", e))
}

/// Verifies `password` against `stored`, or against the dummy hash when there is no account,
/// so both paths take the same time. Returns true only for a real match.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    let has_account = stored.is_some();
    let hash = stored.unwrap_or_else(|| DUMMY_HASH.clone());
    let kind = Kind::of(&hash);
    let matched = run_blocking(is_large(kind), move || {
        match kind {
            Some(Kind::Bcrypt { cost }) if cost <= MAX_BCRYPT_COST => {
                bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
            }
            Some(Kind::Argon2 {
                m_cost,
                t_cost,
                p_cost,
                ..
            }) if m_cost <= MAX_ARGON2_M_COST
                && m_cost.saturating_mul(t_cost) <= MAX_ARGON2_WORK
                && p_cost <= MAX_ARGON2_P_COST =>
            {
                Argon2::default()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            }
            // Unknown or over the cost limits (which an import would have refused).
            _ => false,
        }
    })
    .await?;
    Ok(has_account && matched)
}

/// Whether checking a hash of this kind needs more memory than a hash of ours.
fn is_large(kind: Option<Kind>) -> bool {
    matches!(kind, Some(Kind::Argon2 { m_cost, .. }) if m_cost > argon2::Params::DEFAULT_M_COST)
}

/// Highest bcrypt cost accepted (2^12 rounds, a quarter of a second on one core). Refused
/// sign-ins are answered at the next whole second, which hides checks shorter than that: a
/// costlier hash would stand out, and tell which emails have accounts.
pub const MAX_BCRYPT_COST: u32 = 12;
/// Highest Argon2 memory cost accepted, in KiB (64 MiB, RFC 9106's second recommendation).
pub const MAX_ARGON2_M_COST: u32 = 64 * 1024;
/// Highest Argon2 work accepted, memory (KiB) × passes: four times ours (19 MiB × 2), so a
/// check stays well under a second — 64 MiB × 2 passes, say, but not × 3.
pub const MAX_ARGON2_WORK: u32 =
    4 * argon2::Params::DEFAULT_M_COST * argon2::Params::DEFAULT_T_COST;
/// Highest Argon2 parallelism accepted.
pub const MAX_ARGON2_P_COST: u32 = 16;

/// The kind of a stored hash, read from its text alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bcrypt {
        cost: u32,
    },
    Argon2 {
        id: bool,
        m_cost: u32,
        t_cost: u32,
        p_cost: u32,
    },
}

impl Kind {
    fn of(hash: &str) -> Option<Self> {
        if let Some(rest) = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .find_map(|prefix| hash.strip_prefix(prefix))
        {
            // `$2b$12$` + 22 characters of salt + 31 of hash, in bcrypt's base64 alphabet.
            let (cost, body) = rest.split_once('$')?;
            let valid = cost.len() == 2
                && body.len() == 53
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
            let cost: u32 = cost.parse().ok().filter(|c| (4..=31).contains(c))?;
            return valid.then_some(Self::Bcrypt { cost });
        }
        let parsed = argon2::password_hash::phc::PasswordHash::new(hash).ok()?;
        let algorithm = argon2::Algorithm::new(parsed.algorithm.as_str()).ok()?;
        let params = argon2::Params::try_from(&parsed).ok()?;
        parsed.salt?;
        parsed.hash?;
        Some(Self::Argon2 {
            id: algorithm == argon2::Algorithm::Argon2id,
            m_cost: params.m_cost(),
            t_cost: params.t_cost(),
            p_cost: params.p_cost(),
        })
    }
}

/// Whether `stored` should be replaced by a fresh Argon2id hash with today's parameters, once
/// the password has been verified: it is bcrypt, or Argon2 of another variant or cost.
pub fn is_outdated(stored: &str) -> bool {
    let current = argon2::Params::DEFAULT;
    match Kind::of(stored) {
        Some(Kind::Argon2 {
            id,
            m_cost,
            t_cost,
            p_cost,
        }) => {
            !id || m_cost != current.m_cost()
                || t_cost != current.t_cost()
                || p_cost != current.p_cost()
        }
        Some(Kind::Bcrypt { .. }) | None => true,
    }
}

/// Checks a password hash brought from another platform: bcrypt (`$2a$`, `$2b$` or `$2y$`, cost
/// at most [`MAX_BCRYPT_COST`]) or an Argon2 PHC string within the Argon2 limits. The error
/// names `field` and says what is wrong.
pub fn validate_imported_hash(field: &str, hash: &str) -> AppResult<()> {
    let bad = |message: String| Err(AppError::bad_input(field, message));
    match Kind::of(hash) {
        Some(Kind::Bcrypt { cost }) if cost > MAX_BCRYPT_COST => bad(format!(
            "bcrypt cost {cost} is above the highest accepted, {MAX_BCRYPT_COST}"
        )),
        Some(Kind::Argon2 { m_cost, .. }) if m_cost > MAX_ARGON2_M_COST => bad(format!(
            "Argon2 memory cost m={m_cost} KiB is above the highest accepted, {MAX_ARGON2_M_COST}"
        )),
        Some(Kind::Argon2 { m_cost, t_cost, .. })
            if m_cost.saturating_mul(t_cost) > MAX_ARGON2_WORK =>
        {
            bad(format!(
                "Argon2 work m×t = {m_cost}×{t_cost} is above the highest accepted, \
                 {MAX_ARGON2_WORK} (64 MiB × 2 passes, say)"
            ))
        }
        Some(Kind::Argon2 { p_cost, .. }) if p_cost > MAX_ARGON2_P_COST => bad(format!(
            "Argon2 parallelism p={p_cost} is above the highest accepted, {MAX_ARGON2_P_COST}"
        )),
        Some(_) => Ok(()),
        None => bad(
            "must be a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters) or an Argon2 PHC string \
             ($argon2id$v=19$m=…,t=…,p=…$salt$hash)"
                .to_owned(),
        ),
    }
}

/// Computes the dummy hash ahead of the first login, so that login is not the slow one.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
}

#[cfg(test)]
mod tests {
    use argon2::{Algorithm, Params, Version, password_hash::PasswordHasher};

    use super::*;

    /// A caller that gives up while its hash runs (a client hanging up) leaves the slot held
    /// until the hash is done: slots bound the hashes running, not the requests waiting.
    #[tokio::test]
    async fn a_slot_stays_taken_until_its_hash_is_done_even_if_the_caller_gives_up() {
        let slots = Arc::new(Semaphore::new(1));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let caller = tokio::spawn(run_in_slots(slots.clone(), None, move || {
            started_tx.send(()).expect("started");
            finish_rx.recv().expect("finish");
            let _ = done_tx.send(());
        }));
        tokio::task::spawn_blocking(move || started_rx.recv().expect("hash started"))
            .await
            .expect("join");
        caller.abort();
        assert!(caller.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(slots.available_permits(), 0, "the hash still runs");
        finish_tx.send(()).expect("finish");
        done_rx.await.expect("hash done");
        let freed = tokio::time::timeout(std::time::Duration::from_secs(10), slots.acquire())
            .await
            .expect("the slot comes back once the hash is done");
        drop(freed);
    }

    #[test]
    fn generated_passwords_never_start_like_a_flag() {
        // One in 64 would without the check: 10,000 tries all but surely meet one.
        for _ in 0..10_000 {
            let password = generate_password();
            assert!(!password.starts_with('-'), "{password}");
            assert_eq!(password.len(), 24);
        }
    }

    fn argon2_hash(algorithm: Algorithm, m: u32, t: u32, p: u32, password: &str) -> String {
        let params = Params::new(m, t, p, None).expect("params");
        Argon2::new(algorithm, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .expect("hash")
            .to_string()
    }

    #[tokio::test]
    async fn bcrypt_hashes_from_other_platforms_verify_and_are_outdated() {
        for prefix in ["2a", "2b", "2y"] {
            let hash = bcrypt::hash_with_result("correct horse", 4)
                .expect("bcrypt")
                .format_for_version(match prefix {
                    "2a" => bcrypt::Version::TwoA,
                    "2b" => bcrypt::Version::TwoB,
                    _ => bcrypt::Version::TwoY,
                });
            assert!(hash.starts_with(&format!("${prefix}$04$")), "{hash}");
            validate_imported_hash("passwordHash", &hash).expect("accepted");
            assert!(
                verify("correct horse".into(), Some(hash.clone()))
                    .await
                    .expect("verified")
            );
            assert!(
                !verify("correct hors".into(), Some(hash.clone()))
                    .await
                    .expect("verified")
            );
            assert!(is_outdated(&hash));
        }
    }

    #[tokio::test]
    async fn argon2_hashes_verify_with_their_own_parameters() {
        let current = hash("correct horse".into()).await.expect("verified");
        assert!(!is_outdated(&current), "today's hash is current: {current}");
        for (algorithm, m, t, p) in [
            (Algorithm::Argon2id, 8 * 1024, 3, 2),
            (Algorithm::Argon2i, 4096, 2, 1),
        ] {
            let other = argon2_hash(algorithm, m, t, p, "correct horse");
            validate_imported_hash("passwordHash", &other).expect("accepted");
            assert!(
                verify("correct horse".into(), Some(other.clone()))
                    .await
                    .expect("verified")
            );
            assert!(
                !verify("wrong horse!".into(), Some(other.clone()))
                    .await
                    .expect("verified")
            );
            assert!(is_outdated(&other), "{other}");
        }
    }

    #[tokio::test]
    async fn only_argon2_hashes_larger_than_ours_take_the_large_hash_slot() {
        let ours = hash("correct horse".into()).await.expect("hashed");
        assert!(!is_large(Kind::of(&ours)));
        let bcrypt = bcrypt::hash("correct horse", 4).expect("bcrypt");
        assert!(!is_large(Kind::of(&bcrypt)));
        let small = argon2_hash(Algorithm::Argon2id, 4096, 1, 1, "x");
        assert!(!is_large(Kind::of(&small)));
        let big = small.replace("m=4096", "m=65536");
        assert!(is_large(Kind::of(&big)));
    }

    #[test]
    fn imported_hashes_outside_the_limits_or_malformed_are_refused_with_the_reason() {
        let message = |hash: &str| match validate_imported_hash("users[3].passwordHash", hash) {
            Err(AppError::BadInput { field, message }) => {
                assert_eq!(field, "users[3].passwordHash");
                message
            }
            other => panic!("{hash}: {other:?}"),
        };
        let body = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        assert_eq!(body.len(), 53);
        validate_imported_hash("h", &format!("$2b$12${body}")).expect("cost 12 accepted");
        assert!(message(&format!("$2b$13${body}")).contains("bcrypt cost 13"));
        assert!(message(&format!("$2b$12${}", &body[1..])).contains("must be a bcrypt hash"));
        assert!(message(&format!("$2x$12${body}")).contains("must be a bcrypt hash"));
        assert!(message(&format!("$2b$12${}!", &body[1..])).contains("must be a bcrypt hash"));
        assert!(message("plain-text-password").contains("must be a bcrypt hash"));
        assert!(message("").contains("must be a bcrypt hash"));
        // 64 MiB × 2 passes is accepted, × 3 is not (read from the string, not hashed here).
        let small = argon2_hash(Algorithm::Argon2id, 4096, 2, 1, "x");
        let most = small.replace("m=4096", "m=65536");
        validate_imported_hash("h", &most).expect("64 MiB × 2 accepted");
        let heavy = most.replace("t=2", "t=3");
        assert!(message(&heavy).contains("work m×t = 65536×3"), "{heavy}");
        let parallel = argon2_hash(Algorithm::Argon2id, 8 * 17, 1, 17, "x");
        assert!(message(&parallel).contains("parallelism p=17"));
        // The memory limit is read from the string; hashing 65 MiB here is not needed.
        let big = argon2_hash(Algorithm::Argon2id, 4096, 1, 1, "x").replace("m=4096", "m=66560");
        assert!(message(&big).contains("memory cost m=66560"), "{big}");
        // A hash without its salt or output is no hash.
        let cut = argon2_hash(Algorithm::Argon2id, 4096, 1, 1, "x");
        let cut = &cut[..cut.rfind('$').expect("a $")];
        assert!(message(cut).contains("Argon2 PHC"));
    }
}

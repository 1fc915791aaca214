//! Throttling of the password endpoints, the ones worth guessing at and the ones that cost an
//! argon2 hash each: `login` per client address and account (10 a minute, in bursts of up to
//! 10), per address (60 a minute), failed sign-ins per account from one address (5, then one
//! every 3 minutes) and from anywhere (20, then one a minute: guesses spread over many
//! addresses add up — except from an address the account signed in from lately, so that such
//! guesses do not lock its owner out; one address alone cannot keep this count empty, and
//! sign-ins that succeed do not count), `register` per address (20 a minute,
//! counted once the input is valid, right before the hash), and `refreshSession` per session
//! (10 at once, then 6 a minute: a client refreshes once per access token, and a loop would
//! otherwise add a refresh-token row per call). Past a limit the answer is
//! `RATE_LIMITED` with the wait, before any password is hashed or compared. An IPv6 client
//! counts by its /64, the block one host usually has to itself. A sign-in's failure is taken
//! from its buckets when it arrives, and given back if the password was right: guesses sent
//! all at once count one by one, instead of all being checked before the first is counted.
//!
//! The counts live in this process (GCRA buckets from `governor`): behind a load balancer each
//! server counts its own share, so the limits are per server. The client address is the
//! peer's, or the proxy's `X-Forwarded-For` with `REELGRAPH_TRUST_PROXY=true`.

use std::{
    collections::HashMap,
    hash::Hash,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};

use crate::error::{AppError, AppResult};

/// Keys kept before the idle ones are dropped (a bucket that is full again is forgotten).
const PRUNE_ABOVE: usize = 10_000;

/// Token buckets a token can be given back to: a sign-in's failure is taken when it arrives
/// (so attempts at once are counted as they come, not after their hashes) and given back when
/// the password was right (only failures count).
struct Refundable<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    burst: f64,
    /// How long one token takes to come back.
    refill: Duration,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> Refundable<K> {
    fn new(burst: u32, refill: Duration) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst.max(1)),
            refill,
        }
    }

    /// `bucket` as of `now`.
    fn refilled(&self, bucket: &mut Bucket, now: Instant) {
        let back = now.duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64();
        bucket.tokens = (bucket.tokens + back).min(self.burst);
        bucket.at = now;
    }

    /// Takes a token of `key`'s; the wait for the next one when there is none.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            // Full buckets are as good as none.
            buckets.retain(|_, bucket| {
                self.refilled(bucket, now);
                bucket.tokens < self.burst
            });
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        self.refilled(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - bucket.tokens))
        }
    }

    /// Gives back a token taken from `key`'s bucket.
    fn give_back(&self, key: &K) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            self.refilled(bucket, now);
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

/// One sign-in attempt, counted as a failure from when it arrives: [`Self::succeeded`] (the
/// password was right) or [`Self::not_checked`] (refused before any check) give its tokens
/// back. Dropped without either — it failed, or its client went away while it was checked —
/// it stays counted.
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    account: (String, String),
    /// Taken from the account's failures from anywhere too.
    account_wide: bool,
}

impl Attempt<'_> {
    /// Counts this attempt among the account's failures from anywhere; refused when they are
    /// used up (see [`SignInThrottle::login`]).
    pub fn count_account_wide(&mut self) -> AppResult<()> {
        if self.account_wide {
            return Ok(());
        }
        self.throttle
            .failures_per_email
            .take(&self.account.1)
            .map_err(|wait| refused_for("sign-in attempts for this account", wait))?;
        self.account_wide = true;
        Ok(())
    }

    /// The password was right: nothing of this attempt counts.
    pub fn succeeded(self) {
        self.not_checked();
    }

    /// Refused before the password was checked: nothing of this attempt counts.
    pub fn not_checked(self) {
        self.throttle.failures_per_account.give_back(&self.account);
        if self.account_wide {
            self.throttle.failures_per_email.give_back(&self.account.1);
        }
    }
}

pub struct SignInThrottle {
    login_per_account: DefaultKeyedRateLimiter<(String, String)>,
    login_per_address: DefaultKeyedRateLimiter<String>,
    /// Failed sign-ins of an account from anywhere.
    failures_per_email: Refundable<String>,
    /// Failed sign-ins of an account from one address: one address alone cannot keep the
    /// account-wide count empty (it refills faster than this lets one address use it).
    failures_per_account: Refundable<(String, String)>,
    register_per_address: DefaultKeyedRateLimiter<String>,
    refresh_per_session: DefaultKeyedRateLimiter<uuid::Uuid>,
    team_adds_per_user: DefaultKeyedRateLimiter<uuid::Uuid>,
    clock: DefaultClock,
}

/// Accounts one user may try to add to teams in an hour (`addCreatorMember`): its answer tells
/// whether an email has an account, so it is not a free way to find out which do.
pub const TEAM_ADDS_PER_HOUR: u32 = 60;

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl SignInThrottle {
    pub fn new() -> Self {
        Self {
            login_per_account: DefaultKeyedRateLimiter::keyed(per_minute(10)),
            login_per_address: DefaultKeyedRateLimiter::keyed(per_minute(60)),
            failures_per_email: Refundable::new(FAILURES, Duration::from_secs(60)),
            failures_per_account: Refundable::new(FAILURES_PER_ADDRESS, FAILURE_REFILL),
            register_per_address: DefaultKeyedRateLimiter::keyed(per_minute(20)),
            refresh_per_session: DefaultKeyedRateLimiter::keyed(
                per_minute(6).allow_burst(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN)),
            ),
            team_adds_per_user: DefaultKeyedRateLimiter::keyed(Quota::per_hour(
                NonZeroU32::new(TEAM_ADDS_PER_HOUR).unwrap_or(NonZeroU32::MIN),
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Counts an `addCreatorMember` by `user` (administrators are not counted).
    pub fn team_add(&self, user: uuid::Uuid) -> AppResult<()> {
        self.prune();
        self.team_adds_per_user
            .check_key(&user)
            .map_err(|wait| self.refusal("additions to teams", &wait))
    }

    /// Counts a sign-in attempt for `email` from `address`: per address, and per address and
    /// account; and as a failure of the account's from this address ([`FAILURES_PER_ADDRESS`]
    /// at once then one every [`FAILURE_REFILL`]), refused when those are used up. Count it
    /// among the account's failures from anywhere ([`FAILURES`] at once, then one a minute)
    /// with [`Attempt::count_account_wide`]; past those, an address the account has recently
    /// signed in from may still try (`auth::login` checks that): guesses from elsewhere must
    /// not lock its owner out.
    pub fn login(&self, address: Option<&str>, email: &str) -> AppResult<Attempt<'_>> {
        let address = client_key(address);
        self.prune();
        if let Err(wait) = self.login_per_address.check_key(&address) {
            return Err(self.refusal("sign-in attempts from this address", &wait));
        }
        let account = (address, email.trim().to_lowercase());
        self.login_per_account
            .check_key(&account)
            .map_err(|wait| self.refusal("sign-in attempts for this account", &wait))?;
        self.failures_per_account.take(&account).map_err(|wait| {
            refused_for("wrong passwords for this account from this address", wait)
        })?;
        Ok(Attempt {
            throttle: self,
            account,
            account_wide: false,
        })
    }

    /// Counts a password reset (`resetPassword`) from `address`: per address only, as the
    /// token is what is guessed, and one bucket for every account would let anyone hold up
    /// everyone's resets.
    pub fn reset(&self, address: Option<&str>) -> AppResult<()> {
        let address = client_key(address);
        self.prune();
        if let Err(wait) = self.login_per_address.check_key(&address) {
            return Err(self.refusal("sign-in attempts from this address", &wait));
        }
        self.login_per_account
            .check_key(&(address, "#password-reset".to_owned()))
            .map_err(|wait| self.refusal("password resets from this address", &wait))
    }

    /// Counts a registration from `address`.
    pub fn register(&self, address: Option<&str>) -> AppResult<()> {
        self.prune();
        self.register_per_address
            .check_key(&client_key(address))
            .map_err(|wait| self.refusal("registrations from this address", &wait))
    }

    /// Counts a refresh of `session`'s tokens.
    pub fn refresh(&self, session: uuid::Uuid) -> AppResult<()> {
        self.prune();
        self.refresh_per_session
            .check_key(&session)
            .map_err(|wait| self.refusal("session refreshes", &wait))
    }
}

/// Failed sign-ins of one account from anywhere before it is held (then one a minute).
pub const FAILURES: u32 = 20;
/// Failed sign-ins of one account from one address before that address is held for it.
pub const FAILURES_PER_ADDRESS: u32 = 5;
/// How often one more failure from one address is allowed past [`FAILURES_PER_ADDRESS`]: slower
/// than the account-wide count refills, so one address cannot keep it empty.
pub const FAILURE_REFILL: Duration = Duration::from_secs(180);

fn refused_for(what: &str, wait: Duration) -> AppError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    AppError::rate_limited(
        format!("too many {what}; try again in {secs} s"),
        Some(secs),
    )
}

impl SignInThrottle {
    fn refusal(
        &self,
        what: &str,
        wait: &governor::NotUntil<<DefaultClock as Clock>::Instant>,
    ) -> AppError {
        refused_for(what, wait.wait_time_from(self.clock.now()))
    }

    fn prune(&self) {
        let kept = [
            self.login_per_address.len(),
            self.login_per_account.len(),
            self.register_per_address.len(),
            self.refresh_per_session.len(),
            self.team_adds_per_user.len(),
        ];
        if kept.iter().any(|&n| n > PRUNE_ABOVE) {
            self.login_per_address.retain_recent();
            self.login_per_account.retain_recent();
            self.register_per_address.retain_recent();
            self.refresh_per_session.retain_recent();
            self.team_adds_per_user.retain_recent();
        }
    }
}

/// What a client address counts as: itself, or for IPv6 its /64 (a host is handed a whole
/// /64 and can pick any address in it).
pub fn client_key(address: Option<&str>) -> String {
    let Some(address) = address else {
        return "unknown".to_owned();
    };
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(|| address.to_owned(), |v4| v4.to_string()),
        _ => address.to_owned(),
    }
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused_per_account_and_address() {
        let throttle = SignInThrottle::new();
        for _ in 0..10 {
            throttle
                .login(Some("10.0.0.1"), "a@example.com")
                .expect("allowed")
                .succeeded();
        }
        let err = throttle
            .login(Some("10.0.0.1"), " A@example.com")
            .err()
            .expect("the 11th for the account");
        assert_eq!(err.code(), "RATE_LIMITED");
        assert!(
            err.public_message().contains("try again in"),
            "{}",
            err.public_message()
        );
        // Another account from the same address, and the same account from elsewhere, go on.
        throttle
            .login(Some("10.0.0.1"), "b@example.com")
            .expect("other account")
            .succeeded();
        throttle
            .login(Some("10.0.0.2"), "a@example.com")
            .expect("other address")
            .succeeded();
        // An address is cut off at 60 a minute whatever the accounts.
        let throttle = SignInThrottle::new();
        for i in 0..60 {
            throttle
                .login(Some("10.0.0.3"), &format!("u{i}@example.com"))
                .expect("allowed")
                .succeeded();
        }
        let err = throttle
            .login(Some("10.0.0.3"), "new@example.com")
            .err()
            .expect("61st");
        assert_eq!(err.code(), "RATE_LIMITED");
        for _ in 0..20 {
            throttle.register(Some("10.0.0.4")).expect("allowed");
        }
        assert!(throttle.register(Some("10.0.0.4")).is_err());
        throttle.register(Some("10.0.0.5")).expect("other address");
    }

    #[test]
    fn failed_guesses_spread_over_addresses_add_up_per_account() {
        let throttle = SignInThrottle::new();
        // Sign-ins that succeed take nothing.
        for _ in 0..10 {
            let mut attempt = throttle
                .login(Some("10.1.1.1"), "victim@example.com")
                .expect("allowed");
            attempt.count_account_wide().expect("allowed");
            attempt.succeeded();
        }
        // Twenty failures from twenty addresses, counted as they arrive (none has been checked
        // yet when the next comes): the twenty-first is refused before any check.
        let mut guesses = Vec::new();
        for n in 0..20 {
            let mut attempt = throttle
                .login(Some(&format!("10.0.{n}.1")), "victim@example.com")
                .expect("allowed");
            attempt.count_account_wide().expect("allowed");
            guesses.push(attempt);
        }
        let mut attempt = throttle
            .login(Some("10.9.9.9"), " Victim@example.com")
            .expect("a new address");
        let err = attempt
            .count_account_wide()
            .expect_err("past 20 failures from anywhere");
        assert_eq!(err.code(), "RATE_LIMITED");
        attempt.not_checked();
        // One that turns out right gives its place back.
        guesses.pop().expect("a guess").succeeded();
        let mut attempt = throttle
            .login(Some("10.9.9.9"), "victim@example.com")
            .expect("a new address");
        attempt.count_account_wide().expect("a place given back");
        let mut other = throttle
            .login(Some("10.9.9.9"), "someone-else@example.com")
            .expect("other accounts go on");
        other.count_account_wide().expect("other accounts go on");
    }

    #[test]
    fn one_address_is_held_after_its_failures_for_an_account() {
        let throttle = SignInThrottle::new();
        // Five at once: each is counted as it arrives, before any is checked.
        let guesses: Vec<_> = (0..FAILURES_PER_ADDRESS)
            .map(|_| {
                throttle
                    .login(Some("10.2.2.2"), "mine@example.com")
                    .expect("allowed")
            })
            .collect();
        let err = throttle
            .login(Some("10.2.2.2"), "Mine@example.com")
            .err()
            .expect("held");
        assert_eq!(err.code(), "RATE_LIMITED");
        assert!(
            err.public_message()
                .contains("wrong passwords for this account from this address"),
            "{}",
            err.public_message()
        );
        drop(guesses);
        throttle
            .login(Some("10.2.2.3"), "mine@example.com")
            .expect("another address")
            .count_account_wide()
            .expect("5 failures are not the account's 20");
        throttle
            .login(Some("10.2.2.2"), "yours@example.com")
            .expect("another account");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let throttle = SignInThrottle::new();
        for n in 0..10 {
            throttle
                .login(Some(&format!("2001:db8:1:2::{n:x}")), "a@example.com")
                .expect("allowed")
                .succeeded();
        }
        let err = throttle
            .login(Some("2001:db8:1:2:ffff::1"), "a@example.com")
            .err()
            .expect("the same /64");
        assert_eq!(err.code(), "RATE_LIMITED");
        throttle
            .login(Some("2001:db8:1:3::1"), "a@example.com")
            .expect("another /64")
            .succeeded();
        assert_eq!(client_key(Some("::ffff:10.0.0.1")), "10.0.0.1");
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_a_token_given_back_counts_once() {
        let bucket = Refundable::new(2, Duration::from_secs(60));
        bucket.take(&"k").expect("first");
        bucket.take(&"k").expect("second");
        let wait = bucket.take(&"k").expect_err("empty");
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        bucket.give_back(&"k");
        bucket.give_back(&"k");
        bucket.give_back(&"k");
        bucket.take(&"k").expect("given back");
        bucket.take(&"k").expect("given back");
        assert!(bucket.take(&"k").is_err(), "no more than the burst");
        let quick = Refundable::new(1, Duration::from_millis(50));
        quick.take(&"k").expect("first");
        std::thread::sleep(Duration::from_millis(120));
        quick.take(&"k").expect("refilled");
    }

    #[test]
    fn password_resets_count_per_address_not_for_every_account_together() {
        let throttle = SignInThrottle::new();
        for n in 0..30 {
            throttle
                .reset(Some(&format!("10.1.{n}.1")))
                .expect("resets from many addresses");
        }
        for _ in 0..10 {
            throttle.reset(Some("10.2.0.1")).expect("allowed");
        }
        assert_eq!(
            throttle
                .reset(Some("10.2.0.1"))
                .expect_err("the 11th from one address")
                .code(),
            "RATE_LIMITED"
        );
    }
}

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
//! counts by its /64, the block one host usually has to itself.
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

/// Keys refused until an instant: set when a failure finds its bucket empty, so that only
/// failures are counted (a bucket is taken from by every check).
struct Held<K>(Mutex<HashMap<K, Instant>>);

impl<K: Hash + Eq> Held<K> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    /// How long `key` is still held, if it is.
    fn wait(&self, key: &K) -> Option<Duration> {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let until = *held.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    fn hold(&self, key: K, wait: Duration) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() > PRUNE_ABOVE {
            let now = Instant::now();
            held.retain(|_, until| *until > now);
        }
        held.insert(key, Instant::now() + wait);
    }
}

pub struct SignInThrottle {
    login_per_account: DefaultKeyedRateLimiter<(String, String)>,
    login_per_address: DefaultKeyedRateLimiter<String>,
    /// Failed sign-ins of an account from anywhere.
    login_per_email: DefaultKeyedRateLimiter<String>,
    email_held: Held<String>,
    /// Failed sign-ins of an account from one address: one address alone cannot keep the
    /// account-wide count empty (it refills faster than this lets one address use it).
    failures_per_account: DefaultKeyedRateLimiter<(String, String)>,
    account_held: Held<(String, String)>,
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
            login_per_email: DefaultKeyedRateLimiter::keyed(
                per_minute(1).allow_burst(NonZeroU32::new(FAILURES).unwrap_or(NonZeroU32::MIN)),
            ),
            email_held: Held::new(),
            failures_per_account: DefaultKeyedRateLimiter::keyed(
                Quota::with_period(FAILURE_REFILL)
                    .unwrap_or(per_minute(1))
                    .allow_burst(NonZeroU32::new(FAILURES_PER_ADDRESS).unwrap_or(NonZeroU32::MIN)),
            ),
            account_held: Held::new(),
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
    /// account; and refuses it while this address has failed too often for the account. The
    /// account's failures from anywhere are [`Self::login_account`]'s.
    pub fn login(&self, address: Option<&str>, email: &str) -> AppResult<()> {
        let address = client_key(address);
        self.prune();
        if let Err(wait) = self.login_per_address.check_key(&address) {
            return Err(self.refusal("sign-in attempts from this address", &wait));
        }
        let account = (address, email.trim().to_lowercase());
        if let Some(wait) = self.account_held.wait(&account) {
            return Err(refused_for(
                "wrong passwords for this account from this address",
                wait,
            ));
        }
        self.login_per_account
            .check_key(&account)
            .map_err(|wait| self.refusal("sign-in attempts for this account", &wait))
    }

    /// Refuses a sign-in for `email` while its failures from anywhere are over their limit.
    /// Past it, an address the account has recently signed in from may still try
    /// (`auth::login` checks that): guesses from elsewhere must not lock its owner out.
    pub fn login_account(&self, email: &str) -> AppResult<()> {
        match self.email_held.wait(&email.trim().to_lowercase()) {
            Some(wait) => Err(refused_for("sign-in attempts for this account", wait)),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in (a wrong password, or no such account) for `email` from
    /// `address`: from anywhere, [`FAILURES`] at once then one a minute; from one address,
    /// [`FAILURES_PER_ADDRESS`] at once then one every [`FAILURE_REFILL`]. Sign-ins that
    /// succeed take nothing from either.
    pub fn login_failed(&self, address: Option<&str>, email: &str) {
        let email = email.trim().to_lowercase();
        let account = (client_key(address), email.clone());
        if let Err(wait) = self.failures_per_account.check_key(&account) {
            let wait = wait.wait_time_from(self.clock.now());
            self.account_held.hold(account, wait);
        }
        if let Err(wait) = self.login_per_email.check_key(&email) {
            let wait = wait.wait_time_from(self.clock.now());
            self.email_held.hold(email, wait);
        }
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
    AppError::RateLimited(format!(
        "too many {what}; try again in {} s",
        wait.as_secs().max(1)
    ))
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
            self.login_per_email.len(),
            self.failures_per_account.len(),
            self.register_per_address.len(),
            self.refresh_per_session.len(),
            self.team_adds_per_user.len(),
        ];
        if kept.iter().any(|&n| n > PRUNE_ABOVE) {
            self.login_per_address.retain_recent();
            self.login_per_account.retain_recent();
            self.login_per_email.retain_recent();
            self.failures_per_account.retain_recent();
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
                .expect("allowed");
        }
        let err = throttle
            .login(Some("10.0.0.1"), " A@example.com")
            .expect_err("the 11th for the account");
        assert_eq!(err.code(), "RATE_LIMITED");
        assert!(
            err.public_message().contains("try again in"),
            "{}",
            err.public_message()
        );
        // Another account from the same address, and the same account from elsewhere, go on.
        throttle
            .login(Some("10.0.0.1"), "b@example.com")
            .expect("other account");
        throttle
            .login(Some("10.0.0.2"), "a@example.com")
            .expect("other address");
        // An address is cut off at 60 a minute whatever the accounts.
        let throttle = SignInThrottle::new();
        for i in 0..60 {
            throttle
                .login(Some("10.0.0.3"), &format!("u{i}@example.com"))
                .expect("allowed");
        }
        let err = throttle
            .login(Some("10.0.0.3"), "new@example.com")
            .expect_err("61st");
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
            throttle
                .login(Some("10.1.1.1"), "victim@example.com")
                .expect("allowed");
            throttle
                .login_account("victim@example.com")
                .expect("allowed");
        }
        for n in 0..21 {
            throttle
                .login(Some(&format!("10.0.{n}.1")), "victim@example.com")
                .expect("allowed");
            throttle
                .login_account("victim@example.com")
                .expect("allowed");
            throttle.login_failed(Some(&format!("10.0.{n}.1")), "victim@example.com");
        }
        throttle
            .login(Some("10.9.9.9"), "victim@example.com")
            .expect("a new address");
        let err = throttle
            .login_account(" Victim@example.com")
            .expect_err("past 20 failures from anywhere");
        assert_eq!(err.code(), "RATE_LIMITED");
        throttle
            .login_account("someone-else@example.com")
            .expect("other accounts go on");
    }

    #[test]
    fn one_address_is_held_after_its_failures_for_an_account() {
        let throttle = SignInThrottle::new();
        for _ in 0..=FAILURES_PER_ADDRESS {
            throttle
                .login(Some("10.2.2.2"), "mine@example.com")
                .expect("allowed");
            throttle.login_failed(Some("10.2.2.2"), "mine@example.com");
        }
        let err = throttle
            .login(Some("10.2.2.2"), "Mine@example.com")
            .expect_err("held");
        assert_eq!(err.code(), "RATE_LIMITED");
        throttle
            .login(Some("10.2.2.3"), "mine@example.com")
            .expect("another address");
        throttle
            .login(Some("10.2.2.2"), "yours@example.com")
            .expect("another account");
        throttle
            .login_account("mine@example.com")
            .expect("6 failures are not the account's 20");
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let throttle = SignInThrottle::new();
        for n in 0..10 {
            throttle
                .login(Some(&format!("2001:db8:1:2::{n:x}")), "a@example.com")
                .expect("allowed");
        }
        let err = throttle
            .login(Some("2001:db8:1:2:ffff::1"), "a@example.com")
            .expect_err("the same /64");
        assert_eq!(err.code(), "RATE_LIMITED");
        throttle
            .login(Some("2001:db8:1:3::1"), "a@example.com")
            .expect("another /64");
        assert_eq!(client_key(Some("::ffff:10.0.0.1")), "10.0.0.1");
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

//! Billing: render-minute usage, plans and credits.
//!
//! This module owns everything that decides whether a render may run and what it costs:
//!
//! - [`usage`]: the `render_usage` counters of a user per calendar month (`YYYY-MM`), and the
//!   quota check. A render first [`reserve`]s its estimated output minutes (atomically with the
//!   insert of its job), then either [`settle`]s them into consumption when it finishes or
//!   [`release`]s them when it fails or is cancelled.
//! - [`plans`]: which plan a user is on (their live subscription, FREE without one) and how an
//!   administrator changes it.
//! - [`credits`]: the prepaid credit balance (`users.credits`) and its append-only ledger
//!   (`credit_ledger`). Credits pay for render minutes past the plan's limits.
//! - [`graphql`]: `renderUsage`, and the admin mutations `grantCredits` and `setUserPlan`.
//!
//! Units: minutes are `f64` output minutes (`duration_secs / 60`), compared with [`EPSILON`]
//! so that float noise never flips a limit decision; credits are whole numbers, one per
//! started output minute past the limit.

pub mod credits;
pub mod graphql;
pub mod plans;
pub mod usage;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use credits::{REASON_OVERAGE, REASON_REFUND, grant_credits};
pub use graphql::{BillingMutation, BillingQuery};
pub use plans::{current_plan, set_user_plan};
pub use usage::{UsageSummary, release, reserve, settle, usage_summary};

/// Tolerance for comparing minutes (60 µs of output): sums of f64 durations (e.g. `0.1 + 0.2`)
/// must not turn an exact fit into an overflow that costs a credit. Counters are stored at full
/// precision (rounded at every change, they would drift past it) and shown rounded to it.
pub const EPSILON: f64 = 1e-6;

/// What was set aside for one render; stored in the job's input so it can be settled or given
/// back by whichever process finishes the job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub user_id: Uuid,
    /// Billing period the minutes were reserved in (`YYYY-MM`); settling or releasing always
    /// touches this period, even when the render ends in the next month.
    pub billing_period: String,
    /// Day the minutes count against for the daily cap (`YYYY-MM-DD`, UTC).
    pub day: String,
    /// Estimated output minutes set aside.
    pub minutes: f64,
    /// Credits deducted for the part past the plan's limit (refunded by [`release`]).
    pub credits: i64,
    /// The minutes those credits paid for (`minutes_paid`, see [`usage`]); 0 in a reservation
    /// made before they were recorded.
    #[serde(default)]
    pub paid_minutes: f64,
}

/// The billing period (`YYYY-MM`, UTC calendar month) that `now` falls in.
pub fn billing_period(now: DateTime<Utc>) -> String {
    now.format("%Y-%m").to_string()
}

/// The day (`YYYY-MM-DD`, UTC) that `now` falls in, as used by the daily cap.
pub fn billing_day(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

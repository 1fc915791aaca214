//! The billing API: `renderUsage` for the signed-in caller, and the admin mutations
//! `grantCredits` and `setUserPlan`. Resolvers only check access and translate; the rules live
//! in [`super::usage`], [`super::plans`] and [`super::credits`].

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use chrono::Utc;
use entity::{PlanCode, plan};

use super::{credits::grant_credits, plans::set_user_plan, usage::usage_summary};
use crate::{
    error::{AppError, AppResult},
    graphql::{parse_id, state, viewer},
};

/// One change of a user's render credits.
#[derive(SimpleObject)]
pub struct CreditLedgerEntry {
    pub id: ID,
    /// Credits added (positive) or spent (negative).
    pub delta: i64,
    /// Why: a render's reservation, its settlement or refund, or an administrator's grant.
    pub reason: String,
    /// The balance right after this change.
    pub balance_after: i64,
    /// The job the change was for, if any.
    pub job_id: Option<ID>,
    pub created_at: chrono::DateTime<Utc>,
}

impl From<entity::credit_ledger_entry::Model> for CreditLedgerEntry {
    fn from(m: entity::credit_ledger_entry::Model) -> Self {
        Self {
            id: m.id.into(),
            delta: m.delta,
            reason: m.reason,
            balance_after: m.balance_after,
            job_id: m.job_id.map(Into::into),
            created_at: m.created_at,
        }
    }
}

/// A billing plan and its render-minute limits.
pub struct Plan(pub plan::Model);

#[Object]
impl Plan {
    async fn code(&self) -> PlanCode {
        self.0.code
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Render minutes per billing period; null = unlimited.
    async fn monthly_minutes_limit(&self) -> Option<f64> {
        self.0.monthly_minutes_limit
    }
    /// Render minutes per day (UTC); null = no daily cap.
    async fn daily_minutes_limit(&self) -> Option<f64> {
        self.0.daily_minutes_limit
    }
    /// Monthly price in cents.
    async fn price_cents(&self) -> i32 {
        self.0.price_cents
    }
}

/// Render-minute usage of the caller in one billing period.
#[derive(SimpleObject)]
pub struct RenderUsage {
    /// The billing period, `YYYY-MM` (UTC calendar month).
    pub billing_period: String,
    /// Output minutes of renders finished in this period.
    pub minutes_consumed: f64,
    /// Estimated minutes of renders still in flight.
    pub minutes_reserved: f64,
    /// Of `minutesConsumed + minutesReserved`, the minutes paid with credits (past the daily or
    /// the monthly limit). The monthly limit holds the rest: minutes paid for past the daily
    /// cap do not use up the month's.
    pub minutes_paid: f64,
    /// The plan's monthly limit; null = unlimited.
    pub minutes_limit: Option<f64>,
    /// Minutes per day (UTC) as `{"YYYY-MM-DD": minutes}`, counting finished and in-flight
    /// renders; this is what the daily cap is checked against.
    pub daily_minutes: Json<serde_json::Value>,
    /// The plan's daily cap; null = no daily cap.
    pub daily_limit: Option<f64>,
    /// The plan that applies now.
    pub plan: Plan,
    /// Prepaid credits; past the plan's limits, each started output minute costs one credit.
    pub credits: i64,
}

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The caller's render-minute usage in the current billing period.
    async fn render_usage(&self, ctx: &Context<'_>) -> AppResult<RenderUsage> {
        let user = viewer(ctx)?.require_user()?;
        let summary = usage_summary(&state(ctx)?.db, user.id, Utc::now())
            .await
            .map_err(|e| match e {
                AppError::NotFound(_) => {
                    AppError::unauthenticated("account no longer exists or is disabled")
                }
                other => other,
            })?;
        Ok(RenderUsage {
            billing_period: summary.billing_period,
            minutes_consumed: summary.minutes_consumed,
            minutes_reserved: summary.minutes_reserved,
            minutes_paid: summary.minutes_paid,
            minutes_limit: summary.minutes_limit,
            daily_minutes: Json(summary.daily_minutes),
            daily_limit: summary.daily_limit,
            plan: Plan(summary.plan),
            credits: summary.credits,
        })
    }
}

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Adds credits to a user's balance, with a ledger entry saying why; returns the new
    /// balance. Administrators only.
    async fn grant_credits(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        #[graphql(
            desc = "How many credits to add (1–1000000000; the balance may hold at most 2147483647)."
        )]
        credits: i64,
        #[graphql(desc = "Why, for the ledger (1–200 characters).")] reason: String,
        #[graphql(
            desc = "Makes the grant once per user and key (1–255 characters): sent again with the same credits and reason it answers the balance the first one left and grants nothing; with others it is a CONFLICT. For retries after a timeout, and for payment hooks that deliver more than once."
        )]
        idempotency_key: Option<String>,
    ) -> AppResult<i64> {
        viewer(ctx)?.require_admin()?;
        let user_id = parse_id("userId", &user_id)?;
        grant_credits(
            &state(ctx)?.db,
            user_id,
            credits,
            &reason,
            idempotency_key.as_deref(),
        )
        .await
    }

    /// Puts a user on a plan: updates their live subscription (or creates one) as `ACTIVE` for
    /// the current month. Administrators only.
    async fn set_user_plan(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        plan: PlanCode,
    ) -> AppResult<Plan> {
        viewer(ctx)?.require_admin()?;
        let user_id = parse_id("userId", &user_id)?;
        Ok(Plan(
            set_user_plan(&state(ctx)?.db, user_id, plan, Utc::now()).await?,
        ))
    }
}

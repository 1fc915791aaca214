//! How many items of plain lists one request may return.
//!
//! Connections are paged (at most 100 nodes) and their cost is known before a query runs
//! (the complexity limit), but plain list fields (`Video.transcript`, `keyMoments`,
//! `highlights`, `captionTracks`, `Highlight.shorts`, `Creator.members`, `User.creators`)
//! return everything the row has: up to 10,000 transcript segments, 1,000 key moments. Each
//! alias of such a field is resolved again, so a small anonymous document
//! (`{ video(id: …) { a0: keyMoments { summary } … a2399: keyMoments { summary } } }`) could
//! build hundreds of megabytes of response. Every query and mutation therefore has a budget of
//! list items, counted as those fields resolve. Once a field would overrun it, the request is
//! over: every list field resolved after it fails at once (no more rows are read for it), and
//! a query's answer is that one `QUERY_TOO_COMPLEX` error with no data ([`collapse`]), not the
//! lists that fitted beside an error for each that did not (a nested document of lists of
//! lists answered 17,000 errors in 9 MB). A mutation's answer keeps what it wrote.
//!
//! Introspection's lists (`__Schema.types`, `__Type.fields`, …) count too ([`Introspection`]):
//! 1,249 aliases of `__schema { types { fields { description } } }`, 60 KB of query, answered
//! 37 MB, and a batch of ten 367 MB; nesting `fields { type { ofType { fields … } } }`
//! multiplies the lists at each level.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use async_graphql::{
    Context, Response, ServerResult, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};

use crate::error::{AppError, AppResult};

/// Items of plain lists one HTTP request (all the operations of a batch) or WebSocket query may
/// return: a page of twenty hour-long videos' transcripts is about 36,000.
pub const MAX_LIST_ITEMS: usize = 50_000;

/// The list items a request has left: in its data as an `Arc<ListBudget>`, shared by the
/// operations of an HTTP batch. A subscription has none (it is not limited: each of its
/// events is resolved afresh).
pub struct ListBudget {
    left: AtomicUsize,
    /// A spend was refused: every later one is too.
    overrun: AtomicBool,
}

impl ListBudget {
    pub fn new(items: usize) -> Self {
        Self {
            left: AtomicUsize::new(items),
            overrun: AtomicBool::new(false),
        }
    }

    /// Spends `items` if that many are left and no spend was refused before.
    fn spend(&self, items: usize) -> bool {
        if self.overrun.load(Ordering::Relaxed) {
            return false;
        }
        let spent = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(items)
            })
            .is_ok();
        if !spent {
            self.overrun.store(true, Ordering::Relaxed);
        }
        spent
    }
}

/// What a request over its budget is answered (`MAX_LIST_ITEMS` written out: a unit test
/// holds the two together).
const OVERRUN: &str = "this request returns more than 50000 items of lists (transcripts, key \
     moments, highlights, shorts, members): ask for fewer at once";

/// Counts the items of every introspection list against the request's [`ListBudget`], as
/// they resolve; once the budget is overrun, each introspection list left fails without
/// resolving (so the work done stays near the budget however the lists nest). On the schema
/// that runs documents reading `__schema` or `__type` only ([`super::Schemas`]): an
/// extension's hook wraps every field and list item it resolves, which the data path should
/// not pay for.
pub struct Introspection;

impl ExtensionFactory for Introspection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Introspection)
    }
}

#[async_trait::async_trait]
impl Extension for Introspection {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let budget = match ctx.data_opt::<Arc<ListBudget>>() {
            Some(budget) if info.parent_type.starts_with("__") => budget.clone(),
            _ => return next.run(ctx, info).await,
        };
        let at = info.field.name.pos;
        let over = move || {
            async_graphql::Error::from(AppError::TooComplex(OVERRUN.to_owned()))
                .into_server_error(at)
        };
        if budget.overrun.load(Ordering::Relaxed) {
            return Err(over());
        }
        let value = next.run(ctx, info).await?;
        if let Some(Value::List(items)) = &value
            && !budget.spend(items.len())
        {
            return Err(over());
        }
        Ok(value)
    }
}

impl Default for ListBudget {
    fn default() -> Self {
        Self::new(MAX_LIST_ITEMS)
    }
}

/// Counts `items` of a plain list field against the request's budget.
pub fn take(ctx: &Context<'_>, items: usize) -> AppResult<()> {
    let Ok(budget) = ctx.data::<Arc<ListBudget>>() else {
        return Ok(());
    };
    if budget.spend(items) {
        return Ok(());
    }
    Err(AppError::TooComplex(OVERRUN.to_owned()))
}

/// An answer that ran out of list items becomes that one error, with no data: what fitted
/// before is not half an answer a client can use, and each list refused after it would add an
/// error of its own. Not a mutation's (`mutation`): what it wrote is committed, and its
/// answer must say so, or the client would send it again.
pub fn collapse(response: &mut Response, mutation: bool) {
    if mutation {
        return;
    }
    let Some(overrun) = response
        .errors
        .iter()
        .find(|error| error.message == OVERRUN)
        .cloned()
    else {
        return;
    };
    response.data = Value::Null;
    response.errors = vec![async_graphql::ServerError {
        locations: Vec::new(),
        path: Vec::new(),
        ..overrun
    }];
}

/// [`take`] for a list about to be returned.
pub fn counted<T>(ctx: &Context<'_>, list: Vec<T>) -> AppResult<Vec<T>> {
    take(ctx, list.len())?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_and_stays_out() {
        let budget = ListBudget::new(10);
        let take = |n: usize| budget.spend(n);
        assert!(take(6));
        assert!(take(4));
        assert!(take(0));
        assert!(!take(1), "6 + 4 + 1 > 10");
        assert!(!take(0), "once refused, the request is over");

        let budget = ListBudget::new(10);
        assert!(budget.spend(6));
        assert!(!budget.spend(5));
        assert!(!budget.spend(4), "fits, but a spend was refused before");
    }

    #[test]
    fn the_overrun_message_names_the_budget() {
        assert!(
            OVERRUN.contains(&format!(" {MAX_LIST_ITEMS} ")),
            "{OVERRUN}"
        );
    }
}

//! How many items of plain lists one request may return.
//!
//! Connections are paged (at most 100 nodes) and their cost is known before a query runs
//! (the complexity limit), but plain list fields (`Video.transcript`, `keyMoments`,
//! `highlights`, `captionTracks`, `Highlight.shorts`, `Creator.members`, `User.creators`)
//! return everything the row has: up to 10,000 transcript segments, 1,000 key moments. Each
//! alias of such a field is resolved again, so a small anonymous document
//! (`{ video(id: …) { a0: keyMoments { summary } … a2399: keyMoments { summary } } }`) could
//! build hundreds of megabytes of response. Every query and mutation therefore has a budget of
//! list items, counted as those fields resolve; a field that would overrun it fails with
//! `QUERY_TOO_COMPLEX` (and its items are not returned).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_graphql::Context;

use crate::error::{AppError, AppResult};

/// Items of plain lists one HTTP request (all the operations of a batch) or WebSocket query may
/// return: a page of twenty hour-long videos' transcripts is about 36,000.
pub const MAX_LIST_ITEMS: usize = 50_000;

/// The list items a request has left: in its data as an `Arc<ListBudget>`, shared by the
/// operations of an HTTP batch. A subscription has none (it is not limited: each of its
/// events is resolved afresh).
pub struct ListBudget {
    left: AtomicUsize,
}

impl ListBudget {
    pub fn new(items: usize) -> Self {
        Self {
            left: AtomicUsize::new(items),
        }
    }

    /// Spends `items` if that many are left (a refused spend spends nothing).
    fn spend(&self, items: usize) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(items)
            })
            .is_ok()
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
    Err(AppError::TooComplex(format!(
        "this request returns more than {MAX_LIST_ITEMS} items of lists (transcripts, key \
         moments, highlights, shorts, members): ask for fewer at once"
    )))
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
        assert!(!take(5), "6 + 5 > 10");
        assert!(take(4), "a refused take spends nothing");
        assert!(!take(1));
        assert!(take(0));
    }
}

//! Relay connections over keyset pagination.
//!
//! Every list is ordered by `id`: ids are UUIDv7, so that is creation order, and an index on
//! `(parent, id)` serves any page without an OFFSET scan. Cursors are opaque (base64 of a
//! versioned tag and the id) so the ordering can change without breaking clients' code.

use std::{future::Future, pin::Pin, sync::Arc};

use async_graphql::{
    Context, Object, OutputType,
    connection::{
        Connection, ConnectionNameType, CursorType, DefaultConnectionName, DefaultEdgeName, Edge,
        EdgeNameType, EmptyFields,
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;
const CURSOR_TAG: &[u8] = b"k1:";

/// A Relay connection that offers `totalCount`; named `{Node}Connection` / `{Node}Edge`
/// unless the contract names it otherwise. Its cursors are kept as their parts (`C`) and
/// encoded only when the client reads `cursor`, `startCursor` or `endCursor`: most clients
/// read `nodes`, and a page would otherwise build a base64 string per row for nothing.
pub type RelayConnection<
    Node,
    Name = DefaultConnectionName,
    EdgeName = DefaultEdgeName,
    C = IdCursor,
> = Connection<C, Node, TotalCount, EmptyFields, Name, EdgeName>;

/// A position in `id` order; reads as [`encode_cursor`] of the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdCursor(pub Uuid);

impl CursorType for IdCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        decode_cursor("after", s)
            .map(Self)
            .map_err(|e| e.public_message())
    }

    fn encode_cursor(&self) -> String {
        encode_cursor(self.0)
    }
}

/// Which page to read, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageArgs {
    /// Page size (0–100).
    pub limit: u64,
    /// Read after (forward) or before (backward) this id.
    pub cursor: Option<Uuid>,
    /// `last`/`before` pagination.
    pub backward: bool,
}

impl PageArgs {
    /// Validates `first`/`after`/`last`/`before`; errors name the offending argument.
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Self> {
        Self::directions(first, after.is_some(), last, before.is_some())?;
        let size = |field: &str, n: Option<i32>| -> AppResult<u64> {
            match n {
                None => Ok(DEFAULT_PAGE_SIZE),
                Some(n) if (0..=MAX_PAGE_SIZE as i32).contains(&n) => Ok(n as u64),
                Some(_) => Err(AppError::bad_input(
                    field,
                    format!("must be between 0 and {MAX_PAGE_SIZE}"),
                )),
            }
        };
        let backward = last.is_some() || before.is_some();
        Ok(if backward {
            Self {
                limit: size("last", last)?,
                cursor: before
                    .as_deref()
                    .map(|c| decode_cursor("before", c))
                    .transpose()?,
                backward,
            }
        } else {
            Self {
                limit: size("first", first)?,
                cursor: after
                    .as_deref()
                    .map(|c| decode_cursor("after", c))
                    .transpose()?,
                backward,
            }
        })
    }

    /// One direction per page: forward (`first`, `after`) or backward (`last`, `before`).
    /// Relay allows mixing them but advises against it; mixed, they were read as one
    /// direction and the other argument was lost, so they are refused instead.
    pub fn directions(
        first: Option<i32>,
        after: bool,
        last: Option<i32>,
        before: bool,
    ) -> AppResult<()> {
        let refused = |field: &str, message: &str| Err(AppError::bad_input(field, message));
        if first.is_some() && last.is_some() {
            return refused("last", "pass either `first` or `last`, not both");
        }
        if after && before {
            return refused("before", "pass either `after` or `before`, not both");
        }
        if first.is_some() && before {
            return refused(
                "before",
                "`before` pages backward: pass it with `last` (or use `first` with `after`)",
            );
        }
        if last.is_some() && after {
            return refused(
                "after",
                "`after` pages forward: pass it with `first` (or use `last` with `before`)",
            );
        }
        Ok(())
    }

    /// The first page of `first` items, for nested lists.
    pub fn first(first: Option<i32>) -> AppResult<Self> {
        Self::new(first, None, None, None)
    }
}

pub fn encode_cursor(id: Uuid) -> String {
    let mut raw = CURSOR_TAG.to_vec();
    raw.extend_from_slice(id.as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(field: &str, cursor: &str) -> AppResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|raw| raw.strip_prefix(CURSOR_TAG).map(<[u8]>::to_vec))
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| AppError::bad_input(field, "is not a cursor returned by this API"))
}

/// One page of rows, in display order.
pub struct Page<M> {
    pub items: Vec<M>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<M> Page<M> {
    /// Cuts `rows` (fetched with `limit + 1`, in display order for forward pages and reversed
    /// for backward ones) into a page.
    pub fn from_rows(mut rows: Vec<M>, args: PageArgs) -> Self {
        let has_more = rows.len() as u64 > args.limit;
        rows.truncate(args.limit as usize);
        if args.backward {
            rows.reverse();
            Self {
                items: rows,
                has_next_page: args.cursor.is_some(),
                has_previous_page: has_more,
            }
        } else {
            Self {
                items: rows,
                has_next_page: has_more,
                has_previous_page: args.cursor.is_some(),
            }
        }
    }

    /// Turns the page into a Relay connection.
    pub fn into_connection<N: OutputType, Name: ConnectionNameType, EdgeName: EdgeNameType>(
        self,
        id: impl Fn(&M) -> Uuid,
        node: impl Fn(M) -> N,
        total: TotalCount,
    ) -> RelayConnection<N, Name, EdgeName> {
        let mut connection =
            Connection::with_additional_fields(self.has_previous_page, self.has_next_page, total);
        connection.edges.extend(
            self.items
                .into_iter()
                .map(|m| Edge::new(IdCursor(id(&m)), node(m))),
        );
        connection
    }
}

/// Reads one page of `select`, ordered by `id_col` (newest first when `newest_first`).
pub async fn fetch_page<E>(
    db: &DatabaseConnection,
    select: Select<E>,
    id_col: E::Column,
    newest_first: bool,
    args: PageArgs,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    let (query, _) = page_select(select, id_col, newest_first, args);
    let rows = query.limit(args.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, args))
}

/// Up to `args.limit + 1` rows of each `group` of `select` (the rows of one parent each),
/// from the page's cursor on and in the order the page is read, as [`fetch_page`] reads one
/// group's: one statement for the pages of every parent in a list. A window function numbers
/// each group's rows (both backends have them); [`Page::from_rows`] cuts each group's.
pub async fn fetch_pages_by<E>(
    db: &DatabaseConnection,
    select: Select<E>,
    group: E::Column,
    id_col: E::Column,
    newest_first: bool,
    args: PageArgs,
) -> AppResult<Vec<E::Model>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    use sea_orm::{
        FromQueryResult, IdenStatic, QueryTrait,
        sea_query::{Alias, Asterisk, Expr, ExprTrait, Query},
    };
    let (select, order) = page_select(select, id_col, newest_first, args);
    let direction = if order == Order::Desc { "DESC" } else { "ASC" };
    let table = E::default().table_name().to_owned();
    let window = format!(
        r#"ROW_NUMBER() OVER (PARTITION BY "{table}"."{}" ORDER BY "{table}"."{}" {direction})"#,
        group.as_str(),
        id_col.as_str()
    );
    let mut inner = select.expr_as(Expr::cust(window), "page_row");
    // The order is the outer query's (and the window's).
    QueryOrder::query(&mut inner).clear_order_by();
    let outer = Query::select()
        .column(Asterisk)
        .from_subquery(inner.into_query(), Alias::new("t"))
        .and_where(Expr::col(Alias::new("page_row")).lte(args.limit as i64 + 1))
        .order_by(Alias::new(id_col.as_str()), order)
        .to_owned();
    let statement = db.get_database_backend().build(&outer);
    Ok(E::Model::find_by_statement(statement).all(db).await?)
}

/// `select` from the page's cursor on, in the order the page is read; no limit (it reads
/// `args.limit + 1` rows, one extra to tell whether more exist). Reading backward walks the
/// index the other way ([`Page::from_rows`] reverses the rows afterwards).
pub fn page_select<E: EntityTrait>(
    select: Select<E>,
    id_col: E::Column,
    newest_first: bool,
    args: PageArgs,
) -> (Select<E>, Order) {
    let descending = newest_first != args.backward;
    let mut query = select;
    if let Some(cursor) = args.cursor {
        query = if descending {
            query.filter(id_col.lt(cursor))
        } else {
            query.filter(id_col.gt(cursor))
        };
    }
    let order = if descending { Order::Desc } else { Order::Asc };
    (query.order_by(id_col, order.clone()), order)
}

type CountFuture = Pin<Box<dyn Future<Output = AppResult<u64>> + Send>>;

/// `totalCount` of a connection, computed only when the client asks for it.
#[derive(Clone)]
pub struct TotalCount(Arc<dyn Fn() -> CountFuture + Send + Sync>);

impl TotalCount {
    /// Counts the rows of `select` (its filters, not its page).
    pub fn of<E>(db: &DatabaseConnection, select: Select<E>) -> Self
    where
        E: EntityTrait,
        E::Model: Send + Sync,
    {
        let db = db.clone();
        Self(Arc::new(move || {
            let db = db.clone();
            let select = select.clone();
            Box::pin(async move { Ok(select.count(&db).await?) })
        }))
    }

    /// A count computed some other way (a DataLoader, a known value).
    pub fn from_fn<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AppResult<u64>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(f())))
    }
}

#[Object]
impl TotalCount {
    /// Number of items in the whole list, across all pages.
    async fn total_count(&self, _ctx: &Context<'_>) -> AppResult<i64> {
        let count = (self.0)().await?;
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }
}

/// Complexity of a connection field: its page size times the cost of one node.
pub fn connection_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first.or(last).map_or(DEFAULT_PAGE_SIZE as usize, |n| {
        n.clamp(0, MAX_PAGE_SIZE as i32) as usize
    });
    1 + size.max(1) * child
}

//! Global object identification (the `Node` interface and `node(id:)`, as Relay specifies
//! it): any creator, video, highlight, short or job can be fetched again by its id alone,
//! which Relay's refetchable fragments and pagination need. Ids are UUIDs, unique across
//! tables, so they serve as global ids as they are.

use async_graphql::{Context, ID, Interface, Object};
use entity::{creator, highlight, job, short, video};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait,
    sea_query::{Alias, Expr, Query, SelectStatement, UnionType},
};
use uuid::Uuid;

use crate::{
    content::{ContentQuery, Highlight},
    creators::{Creator, CreatorQuery},
    error::{AppError, AppResult},
    graphql::{parse_id, state},
    jobs::graphql::{Job, JobQuery},
    shorts::{Short, ShortQuery},
    videos::{Video, VideoQuery},
};

/// An object with an id that `node(id:)` finds again.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID"))]
pub enum Node {
    Creator(Creator),
    Video(Video),
    Highlight(Highlight),
    Short(Short),
    Job(Job),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The creator, video, highlight, short or job with this id, when the caller may see
    /// it; `null` otherwise (whether it does not exist or is not visible is not told apart).
    async fn node(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
        // Boxed: this field's future holds each type's lookup (see `graphql::tests`).
        Box::pin(find(ctx, id)).await
    }
}

/// `SELECT '<kind>' AS kind FROM <entity> WHERE id = <id>`.
fn kind_of<E: EntityTrait>(kind: &str, entity: E, id: E::Column, value: Uuid) -> SelectStatement {
    Query::select()
        .expr_as(Expr::val(kind), Alias::new("kind"))
        .from(entity)
        .and_where(id.eq(value))
        .to_owned()
}

/// The object with `id`, read through its type's own query field, so that the same
/// visibility rules apply.
async fn find(ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Node>> {
    let Some(kind) = kind_of_id(ctx, parse_id("id", &id)?).await? else {
        return Ok(None);
    };
    Ok(match kind.as_str() {
        "creator" => settle(
            CreatorQuery.creator(ctx, Some(id), None).await,
            Node::Creator,
        )?,
        "video" => settle(VideoQuery.video(ctx, id).await, Node::Video)?,
        "highlight" => settle(ContentQuery.highlight(ctx, id).await, Node::Highlight)?,
        "short" => settle(ShortQuery.short(ctx, id).await, Node::Short)?,
        "job" => settle(JobQuery.job(ctx, id).await, Node::Job)?,
        _ => None,
    })
}

/// Which of the node types' tables holds `id`, in one statement.
async fn kind_of_id(ctx: &Context<'_>, id: Uuid) -> AppResult<Option<String>> {
    let db = &state(ctx)?.db;
    let mut select = kind_of("creator", creator::Entity, creator::Column::Id, id);
    select
        .union(
            UnionType::All,
            kind_of("video", video::Entity, video::Column::Id, id),
        )
        .union(
            UnionType::All,
            kind_of("highlight", highlight::Entity, highlight::Column::Id, id),
        )
        .union(
            UnionType::All,
            kind_of("short", short::Entity, short::Column::Id, id),
        )
        .union(
            UnionType::All,
            kind_of("job", job::Entity, job::Column::Id, id),
        );
    let statement = db.get_database_backend().build(&select);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    row.try_get("", "kind")
        .map(Some)
        .map_err(|err| AppError::internal("reading a node's kind", err))
}

/// A type's own lookup as a node: what the caller may not see is `null`, also where that
/// type's own field says "sign in" or "forbidden", since `node` does not tell an id's type
/// to a caller who may not see the object.
fn settle<T>(
    found: async_graphql::Result<AppResult<Option<T>>>,
    node: fn(T) -> Node,
) -> async_graphql::Result<Option<Node>> {
    match found? {
        Ok(found) => Ok(found.map(node)),
        Err(AppError::NotFound(_) | AppError::Unauthenticated(_) | AppError::Forbidden(_)) => {
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

//! Creator profiles: the public directory, membership, follows, and each creator's videos.

mod members;
mod mutations;
pub(crate) mod validate;

use std::collections::HashMap;

use async_graphql::{Context, ID, InputType, Json, Lookahead, Object, SelectionField, Value};
use chrono::{DateTime, Utc};
use entity::{VideoStatus, creator, creator_follow, video};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryResult, QuerySelect, QueryTrait,
    sea_query::{Expr, Order},
};

pub use members::{CreatorMember, CreatorMemberMutation};
pub use mutations::CreatorMutation;

use crate::{
    db::build_with_limit,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{
            CreatorById, CreatorVideoCount, CreatorVideos, FollowerCount, HighlightCount,
            PageVideo, VideoPage, ViewerFollows, creators_with_latest_videos,
        },
        narrow::{Skip, leave_out, select_without},
        node_fields, node_selects,
        pagination::{Page, PageArgs, RelayConnection, TotalCount, fetch_page, page_select},
        parse_id, rows, selects, state, viewer,
    },
    videos::Video,
};

/// A creator profile. Profiles are public; their private settings are shown to members only.
pub struct Creator(pub creator::Model);

// Fields that reach the database or storage run boxed: async-graphql sizes every field's
// future by the largest (see `graphql::tests::list_types_resolve_fields_with_small_futures`).
#[Object]
impl Creator {
    pub(crate) async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// URL-safe unique handle.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    async fn genres(&self) -> Vec<String> {
        serde_json::from_value(self.0.genres.clone()).unwrap_or_default()
    }
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }
    /// Platform name → profile URL.
    async fn social_links(&self) -> Json<serde_json::Value> {
        Json(self.0.social_links.clone())
    }
    /// Shown in the homepage spotlight.
    async fn featured(&self) -> bool {
        self.0.featured
    }
    /// The creator's voice and style as the platform's analysis describes it (a JSON
    /// object, e.g. `{"tone": "playful", "traits": […]}`), if one was set. Public, like the
    /// profile.
    async fn personality_profile(&self) -> Option<Json<serde_json::Value>> {
        self.0.personality_profile.clone().map(Json)
    }
    /// Intro/outro card settings for generated shorts; members and administrators only.
    async fn shorts_template(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<Json<serde_json::Value>>> {
        Box::pin(async move {
            if !viewer(ctx)?
                .manages_creator(&state(ctx)?.db, self.0.id)
                .await?
            {
                return Ok(None);
            }
            Ok(self.0.shorts_template.clone().map(Json))
        })
        .await
    }
    async fn follower_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        Box::pin(async move {
            Ok(loaders(ctx)?
                .load_one(FollowerCount(self.0.id))
                .await?
                .unwrap_or(0))
        })
        .await
    }
    /// Whether the signed-in user follows this creator (false when signed out).
    async fn viewer_is_following(&self, ctx: &Context<'_>) -> AppResult<bool> {
        Box::pin(async move {
            Ok(loaders(ctx)?
                .load_one(ViewerFollows(self.0.id))
                .await?
                .unwrap_or(false))
        })
        .await
    }
    /// The creator's team, owners first; for its members and administrators (null otherwise).
    async fn members(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<CreatorMember>>> {
        Box::pin(async move {
            crate::graphql::budget::take(ctx, 0)?;
            let db = &state(ctx)?.db;
            if !viewer(ctx)?.manages_creator(db, self.0.id).await? {
                return Ok(None);
            }
            let team = loaders(ctx)?
                .load_one(crate::graphql::loaders::CreatorTeam(self.0.id))
                .await?
                .unwrap_or_default();
            Ok(Some(crate::graphql::budget::counted(
                ctx,
                team.into_iter().map(CreatorMember).collect(),
            )?))
        })
        .await
    }
    /// Whether the signed-in user manages this creator (member or administrator).
    async fn viewer_can_manage(&self, ctx: &Context<'_>) -> AppResult<bool> {
        Box::pin(async move {
            viewer(ctx)?
                .manages_creator(&state(ctx)?.db, self.0.id)
                .await
        })
        .await
    }
    /// The creator's videos the caller may see, newest first.
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    async fn videos(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        status: Option<VideoStatus>,
    ) -> AppResult<RelayConnection<Video>> {
        Box::pin(async move {
            let args = PageArgs::new(first, after, last, before)?;
            let loaders = loaders(ctx)?.clone();
            let creator_id = self.0.id;
            let total = {
                let loaders = loaders.clone();
                TotalCount::from_fn(move || {
                    let loaders = loaders.clone();
                    async move {
                        Ok(loaders
                            .load_one(CreatorVideoCount { creator_id, status })
                            .await?
                            .unwrap_or(0))
                    }
                })
            };
            let page = if args.cursor.is_none() && !args.backward {
                // The common case — the first page of every creator in a list — is batched.
                // Highlight counts, when asked for, come in the same statement.
                let rows = loaders
                    .load_one(CreatorVideos {
                        creator_id,
                        page: VideoPage {
                            limit: args.limit,
                            status,
                            with_highlight_counts: node_selects(ctx, &["highlightCount"]),
                            skip: Skip::of::<video::Entity>(ctx),
                        },
                    })
                    .await?
                    .unwrap_or_default();
                let rows = rows
                    .into_iter()
                    .map(|row| {
                        if let Some(count) = row.highlight_count {
                            loaders.prime(HighlightCount(row.video.id), Some(count));
                        }
                        row.video
                    })
                    .collect();
                Page::from_rows(rows, args)
            } else {
                let state = state(ctx)?;
                let mut select = video::Entity::find()
                    .filter(video::Column::CreatorId.eq(creator_id))
                    .filter(viewer(ctx)?.visible_videos(&state.db).await?);
                if let Some(status) = status {
                    select = select.filter(video::Column::Status.eq(status));
                }
                fetch_page(&state.db, select, video::Column::Id, true, args).await?
            };
            Ok(page.into_connection(|v| v.id, Video, total))
        })
        .await
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct CreatorQuery;

#[Object]
impl CreatorQuery {
    /// The creator directory, newest first; `search` matches a case-insensitive substring of
    /// the name. `following: true` lists only the creators you follow, `false` only those
    /// you do not (signed in only).
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per GraphQL argument"
    )]
    async fn creators(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        featured: Option<bool>,
        search: Option<String>,
        following: Option<bool>,
    ) -> AppResult<RelayConnection<Creator>> {
        let args = PageArgs::new(first, after, last, before)?;
        let db = &state(ctx)?.db;
        let mut filter = Condition::all();
        if let Some(featured) = featured {
            filter = filter.add(creator::Column::Featured.eq(featured));
        }
        if let Some(following) = following {
            let me = viewer(ctx)?.require_user()?.id;
            let followed = sea_orm::sea_query::Query::select()
                .column(creator_follow::Column::CreatorId)
                .from(creator_follow::Entity)
                .and_where(creator_follow::Column::UserId.eq(me))
                .to_owned();
            filter = filter.add(if following {
                creator::Column::Id.in_subquery(followed)
            } else {
                creator::Column::Id.not_in_subquery(followed)
            });
        }
        if let Some(pattern) = crate::graphql::contains_pattern("search", search.as_deref())? {
            let backend = db.get_database_backend();
            filter = filter.add(pattern.matches(backend, (creator::Entity, creator::Column::Name)));
        }
        let mut select = creator::Entity::find().filter(filter);
        let total = TotalCount::of(db, select.clone());
        if db.get_database_backend() == DatabaseBackend::Postgres
            && let Some(videos) =
                first_video_page(ctx, &node_fields(&ctx.look_ahead(), &["videos"]))
        {
            let (select, order) = page_select(select, creator::Column::Id, true, args);
            let rows = read_with_videos(ctx, select, order, args.limit + 1, videos, false).await?;
            let page = Page::from_rows(rows, args);
            return Ok(page.into_connection(|c| c.id, Creator, total));
        }
        leave_out::<creator::Entity>(
            ctx,
            QueryTrait::query(&mut select),
            "",
            db.get_database_backend(),
        );
        let page = fetch_page(db, select, creator::Column::Id, true, args).await?;
        Ok(page.into_connection(|c| c.id, Creator, total))
    }

    /// One creator, by id or by slug (exactly one of them).
    pub(crate) async fn creator(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> AppResult<Option<Creator>> {
        let found = match (id, slug) {
            (Some(id), None) => {
                let id = parse_id("id", &id)?;
                let loaders = loaders(ctx)?;
                let with_followers = selects(ctx, &["followerCount"]);
                if state(ctx)?.db.get_database_backend() == DatabaseBackend::Postgres
                    && let Some(videos) = first_video_page(ctx, &[ctx.look_ahead().field("videos")])
                {
                    // The follower count and the first page of videos in the same statement.
                    // (`LIMIT 1` also keeps PostgreSQL from pulling the creator's subquery up
                    // into the join, which would count the followers again on every row.)
                    let select = creator::Entity::find_by_id(id);
                    read_with_videos(ctx, select, Order::Asc, 1, videos, with_followers)
                        .await?
                        .into_iter()
                        .next()
                } else if with_followers {
                    // The follower count comes in the same statement.
                    let found = creator::Entity::find_by_id(id)
                        .expr_as(follower_count_expr(), "follower_count")
                        .into_model::<CreatorWithFollowers>()
                        .one(&state(ctx)?.db)
                        .await?;
                    found.map(|row| {
                        loaders.prime(FollowerCount(id), Some(row.follower_count));
                        row.creator
                    })
                } else {
                    loaders.load_one(CreatorById(id)).await?
                }
            }
            (None, Some(slug)) => {
                creator::Entity::find()
                    .filter(creator::Column::Slug.eq(slug.trim().to_lowercase()))
                    .one(&state(ctx)?.db)
                    .await?
            }
            _ => {
                return Err(AppError::bad_input(
                    "id",
                    "pass exactly one of `id` and `slug`",
                ));
            }
        };
        found
            .map(Creator)
            .map(Some)
            .ok_or(AppError::NotFound("creator"))
    }
}

/// The first page of videos the client asks of a creator (the `videos` fields at `at`), as the
/// `videos` resolver would load it — when every such selection asks for the same one. `None`
/// when none does, when they differ, or when one reads past a cursor or backwards (the
/// resolver then reads those itself).
fn first_video_page(ctx: &Context<'_>, at: &[Lookahead<'_>]) -> Option<VideoPage> {
    let selections: Vec<SelectionField<'_>> =
        at.iter().flat_map(|l| l.selection_fields()).collect();
    let skip = Skip::of::<video::Entity>(ctx);
    let mut wanted: Option<VideoPage> = None;
    for selection in selections {
        let mut first = None;
        let mut status = None;
        for (name, value) in selection.arguments().ok()? {
            match name.as_str() {
                "first" => first = <Option<i32> as InputType>::parse(Some(value)).ok()?,
                "status" => status = <Option<VideoStatus> as InputType>::parse(Some(value)).ok()?,
                _ if value == Value::Null => {}
                _ => return None,
            }
        }
        let args = PageArgs::new(first, None, None, None).ok()?;
        let videos = Lookahead::from(selection);
        let page = VideoPage {
            limit: args.limit,
            status,
            // As the resolver's `node_selects(ctx, &["highlightCount"])` tells it.
            with_highlight_counts: node_fields(&videos, &["highlightCount"])
                .iter()
                .any(Lookahead::exists),
            skip,
        };
        if wanted.is_some_and(|w| w != page) {
            return None;
        }
        wanted = Some(page);
    }
    wanted
}

/// The creators `select` reads (in `order`, at most `limit`), each with its first page of
/// videos and, when `with_followers`, its follower count, in one statement (PostgreSQL). The
/// videos and counts reach their resolvers through the loader cache.
async fn read_with_videos(
    ctx: &Context<'_>,
    mut select: sea_orm::Select<creator::Entity>,
    order: Order,
    limit: u64,
    videos: VideoPage,
    with_followers: bool,
) -> AppResult<Vec<creator::Model>> {
    let state = state(ctx)?;
    let skip = select_without::<creator::Entity>(ctx, QueryTrait::query(&mut select), "");
    if with_followers {
        select = select.expr_as(follower_count_expr(), "follower_count");
    }
    let creators = build_with_limit(&select, DatabaseBackend::Postgres, limit);
    let visible = viewer(ctx)?.visible_videos(&state.db).await?;
    let statement = creators_with_latest_videos(creators, visible, videos);
    // Each row: the creator's columns (and follower count), then one of its videos' or the
    // LEFT JOIN's NULLs. A creator's columns repeat on each of its rows; they are decoded on
    // its first row only.
    let followers_at = skip.kept::<creator::Entity>();
    let videos_at = followers_at + usize::from(with_followers);
    let loaders = loaders(ctx)?;
    let mut creators: Vec<(creator::Model, Vec<PageVideo>)> = Vec::new();
    let mut index: HashMap<uuid::Uuid, usize> = HashMap::new();
    for row in state.db.query_all_raw(statement).await? {
        let id: uuid::Uuid = rows::value_at(&row, 0)?;
        let at = match index.get(&id) {
            Some(&at) => at,
            None => {
                if with_followers {
                    loaders.prime(FollowerCount(id), Some(rows::value_at(&row, followers_at)?));
                }
                creators.push((rows::creator_at(&row, 0, skip)?.0, Vec::new()));
                index.insert(id, creators.len() - 1);
                creators.len() - 1
            }
        };
        if rows::value_at::<Option<uuid::Uuid>>(&row, videos_at)?.is_some() {
            creators[at]
                .1
                .push(PageVideo::decode_at(&row, videos_at, videos.skip)?);
        }
    }
    creators.sort_by_key(|(creator, _)| creator.id);
    if order == Order::Desc {
        creators.reverse();
    }
    Ok(creators
        .into_iter()
        .map(|(creator, mut list)| {
            list.sort_by_key(|v| std::cmp::Reverse(v.video.id));
            loaders.prime(
                CreatorVideos {
                    creator_id: creator.id,
                    page: videos,
                },
                Some(list),
            );
            creator
        })
        .collect())
}

/// `(SELECT COUNT(*) FROM creator_follows WHERE creator_id = creators.id)`.
fn follower_count_expr() -> Expr {
    Expr::cust(
        r#"(SELECT COUNT(*) FROM "creator_follows" WHERE "creator_follows"."creator_id" = "creators"."id")"#,
    )
}

/// A creator row with its follower count.
struct CreatorWithFollowers {
    creator: creator::Model,
    follower_count: i64,
}

impl FromQueryResult for CreatorWithFollowers {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            creator: creator::Model::from_query_result(res, pre)?,
            follower_count: res.try_get(pre, "follower_count")?,
        })
    }
}

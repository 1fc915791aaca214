//! The read side of highlights: `highlight(id)` and `highlights`, best score first.
//!
//! The shared pagination orders by id only, so `highlights` has a small keyset of its own on
//! `(score DESC, id ASC)`: the cursor carries both, and the next page is "lower score, or the
//! same score and a later id" — served by the `(score, id)` index, stable when rows with other
//! scores are added, and never an OFFSET scan. Page sizes, argument validation and
//! `totalCount` are the shared ones.

use async_graphql::{
    Context, ID, Object,
    connection::{Connection, CursorType, DefaultConnectionName, DefaultEdgeName, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{HighlightStatus, creator, highlight, key_moment, video};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, EntityTrait, IdenStatic, Iterable,
    JoinType, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Statement,
    sea_query::{Alias, Expr, ExprTrait, SelectStatement},
};
use uuid::Uuid;

use super::types::Highlight;
use crate::{
    db::build_with_limit,
    error::{AppError, AppResult},
    graphql::{
        loaders,
        loaders::{CreatorById, VisibleVideoById},
        narrow::{Skip, select_without},
        node_selects,
        pagination::{Page, PageArgs, RelayConnection, TotalCount},
        parse_id, rows, state, viewer,
    },
};

/// Versions the cursor layout, so the ordering can change without breaking stored cursors
/// silently: an old cursor is rejected as foreign instead of being misread.
const CURSOR_TAG: &[u8] = b"hs1:";

/// Encoded only when the client reads a cursor (see [`RelayConnection`]).
impl CursorType for ScoreCursor {
    type Error = String;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        Self::decode("after", s).map_err(|e| e.public_message())
    }

    fn encode_cursor(&self) -> String {
        self.encode()
    }
}

/// A position in the `(score DESC, id ASC)` order.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScoreCursor {
    score: f64,
    id: Uuid,
}

impl ScoreCursor {
    fn of(row: &highlight::Model) -> Self {
        Self {
            score: row.score,
            id: row.id,
        }
    }

    /// Opaque: base64 of the tag, the score's exact bits and the id, so equality with the
    /// stored double is exact on both backends.
    fn encode(&self) -> String {
        let mut raw = CURSOR_TAG.to_vec();
        raw.extend_from_slice(&self.score.to_be_bytes());
        raw.extend_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(field: &str, cursor: &str) -> AppResult<Self> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok();
        raw.as_deref()
            .and_then(|raw| raw.strip_prefix(CURSOR_TAG))
            .filter(|rest| rest.len() == 24)
            .and_then(|rest| {
                let (score, id) = rest.split_at(8);
                let score = f64::from_be_bytes(score.try_into().ok()?);
                Some(Self {
                    score,
                    id: Uuid::from_slice(id).ok()?,
                })
            })
            .filter(|c| c.score.is_finite())
            .ok_or_else(|| AppError::bad_input(field, "is not a cursor returned by this API"))
    }
}

/// Validated page arguments of `highlights`.
struct ScorePageArgs {
    limit: u64,
    cursor: Option<ScoreCursor>,
    backward: bool,
}

impl ScorePageArgs {
    /// The shared rules (sizes, `first` xor `last`, `after` xor `before`), with this list's
    /// own cursors.
    fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> AppResult<Self> {
        PageArgs::directions(first, after.is_some(), last, before.is_some())?;
        // The shared sizes; this list decodes its own cursors.
        let sizes = PageArgs::new(first, None, last, None)?;
        let backward = last.is_some() || before.is_some();
        let cursor = match (&after, &before) {
            (Some(c), _) => Some(ScoreCursor::decode("after", c)?),
            (_, Some(c)) => Some(ScoreCursor::decode("before", c)?),
            _ => None,
        };
        Ok(Self {
            limit: sizes.limit,
            cursor,
            backward,
        })
    }
}

/// A page of highlights (joined to whatever the caller needs) in `(score DESC, id ASC)` order,
/// or the reverse for backward pages, one row more than the page to tell whether more exist.
fn ranked<S: QueryFilter + QueryOrder + QueryTrait>(
    select: S,
    filter: Condition,
    args: &ScorePageArgs,
    backend: DatabaseBackend,
) -> Statement {
    let (score, id) = if args.backward {
        (Order::Asc, Order::Desc)
    } else {
        (Order::Desc, Order::Asc)
    };
    let select = select
        .filter(filter)
        .order_by(highlight::Column::Score, score)
        .order_by(highlight::Column::Id, id);
    build_with_limit(&select, backend, args.limit + 1)
}

/// Adds each highlight's key moment to a highlights page: a left join (every highlight has
/// one) and its columns, aliased `D_{column}`, after the columns already selected; returns
/// the columns left out.
fn join_key_moments(ctx: &Context<'_>, query: &mut SelectStatement) -> Skip {
    query.join(
        JoinType::LeftJoin,
        key_moment::Entity,
        Expr::col((key_moment::Entity, key_moment::Column::Id))
            .equals((highlight::Entity, highlight::Column::KeyMomentId)),
    );
    for column in key_moment::Column::iter() {
        query.expr_as(
            Expr::col((key_moment::Entity, column)),
            Alias::new(format!("D_{}", column.as_str())),
        );
    }
    select_without::<key_moment::Entity>(ctx, query, "D_")
}

#[derive(Default)]
pub struct ContentQuery;

#[Object]
impl ContentQuery {
    /// A highlight of a video the caller may see.
    pub(crate) async fn highlight(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> AppResult<Option<Highlight>> {
        let id = parse_id("id", &id)?;
        let db = &state(ctx)?.db;
        let found = highlight::Entity::find_by_id(id)
            .find_also_related(video::Entity)
            .filter(viewer(ctx)?.visible_videos(db).await?)
            .one(db)
            .await?;
        match found {
            Some((highlight, Some(video))) => {
                loaders(ctx)?.prime(VisibleVideoById(video.id), Some(video));
                Ok(Some(Highlight(highlight, None)))
            }
            _ => Err(AppError::NotFound("highlight")),
        }
    }

    /// Highlights of the videos the caller may see, best score first (ties by id).
    #[graphql(
        complexity = "crate::graphql::pagination::connection_complexity(first, last, child_complexity)"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per GraphQL argument"
    )]
    async fn highlights(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        video_id: Option<ID>,
        creator_id: Option<ID>,
        status: Option<HighlightStatus>,
        #[graphql(desc = "Only highlights scoring at least this much (0 to 1).")] min_score: Option<
            f64,
        >,
    ) -> AppResult<RelayConnection<Highlight, DefaultConnectionName, DefaultEdgeName, ScoreCursor>>
    {
        let args = ScorePageArgs::new(first, after, last, before)?;
        let video_id = video_id.map(|id| parse_id("videoId", &id)).transpose()?;
        let creator_id = creator_id
            .map(|id| parse_id("creatorId", &id))
            .transpose()?;
        if let Some(min) = min_score
            && !(0.0..=1.0).contains(&min)
        {
            return Err(AppError::bad_input("minScore", "must be between 0 and 1"));
        }

        let db = &state(ctx)?.db;
        // Visibility is a join on the highlight's video (not `IN (visible videos)`), so the
        // page walks the rank index and checks each candidate's video by primary key; the
        // joined video rows (and their creators, when asked for) prime the loaders, so
        // `video { creator }` costs no further statement.
        let mut filter = Condition::all().add(viewer(ctx)?.visible_videos(db).await?);
        if let Some(creator_id) = creator_id {
            filter = filter.add(video::Column::CreatorId.eq(creator_id));
        }
        if let Some(video_id) = video_id {
            filter = filter.add(highlight::Column::VideoId.eq(video_id));
        }
        if let Some(status) = status {
            filter = filter.add(highlight::Column::Status.eq(status));
        }
        if let Some(min) = min_score {
            filter = filter.add(highlight::Column::Score.gte(min));
        }
        let total = TotalCount::of(
            db,
            highlight::Entity::find()
                .join(JoinType::InnerJoin, highlight::Relation::Video.def())
                .filter(filter.clone()),
        );

        // Reading backward walks the order the other way and reverses the rows afterwards.
        let (score, id) = (highlight::Column::Score, highlight::Column::Id);
        if let Some(c) = args.cursor {
            let (beyond_score, beyond_id) = if args.backward {
                (score.gt(c.score), id.lt(c.id))
            } else {
                (score.lt(c.score), id.gt(c.id))
            };
            filter = filter.add(
                Condition::any()
                    .add(beyond_score)
                    .add(Condition::all().add(score.eq(c.score)).add(beyond_id)),
            );
        }
        let loaders = loaders(ctx)?;
        let backend = db.get_database_backend();
        // The statement lists the highlight's columns, then its video's, then (when asked
        // for) the creator's and the key moment's, each in column order; the rows are decoded
        // by position.
        let with_creators = node_selects(ctx, &["video", "creator"]);
        let with_moments = node_selects(ctx, &["keyMoment"]);
        let mut skip_moment = Skip::NONE;
        let mut skip_creator = Skip::NONE;
        let (statement, skip_highlight, skip_video) = if with_creators {
            let mut select = highlight::Entity::find()
                .find_also_related(video::Entity)
                .and_also_related(creator::Entity);
            let query = QueryTrait::query(&mut select);
            let skip_highlight = select_without::<highlight::Entity>(ctx, query, "A_");
            let skip_video = select_without::<video::Entity>(ctx, query, "B_");
            skip_creator = select_without::<creator::Entity>(ctx, query, "C_");
            if with_moments {
                skip_moment = join_key_moments(ctx, query);
            }
            (
                ranked(select, filter, &args, backend),
                skip_highlight,
                skip_video,
            )
        } else {
            let mut select = highlight::Entity::find().find_also_related(video::Entity);
            let query = QueryTrait::query(&mut select);
            let skip_highlight = select_without::<highlight::Entity>(ctx, query, "A_");
            let skip_video = select_without::<video::Entity>(ctx, query, "B_");
            if with_moments {
                skip_moment = join_key_moments(ctx, query);
            }
            (
                ranked(select, filter, &args, backend),
                skip_highlight,
                skip_video,
            )
        };
        let mut rows: Vec<(highlight::Model, Option<key_moment::Model>)> = Vec::new();
        for row in db.query_all_raw(statement).await? {
            // The join is an inner one in effect (the filter reads the video's columns), and
            // every video has a creator and every highlight a key moment (foreign keys).
            let (highlight, next) = rows::highlight_at(&row, 0, skip_highlight)?;
            let (video, mut next) = rows::video_at(&row, next, skip_video)?;
            if with_creators {
                let (creator, after) = rows::creator_at(&row, next, skip_creator)?;
                next = after;
                loaders.prime(CreatorById(creator.id), Some(creator));
            }
            let moment = if with_moments {
                Some(rows::key_moment_at(&row, next, skip_moment)?.0)
            } else {
                None
            };
            loaders.prime(VisibleVideoById(video.id), Some(video));
            rows.push((highlight, moment));
        }

        let page = Page::from_rows(
            rows,
            PageArgs {
                limit: args.limit,
                cursor: args.cursor.map(|c| c.id),
                backward: args.backward,
            },
        );
        let mut connection =
            Connection::with_additional_fields(page.has_previous_page, page.has_next_page, total);
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|(h, moment)| Edge::new(ScoreCursor::of(&h), Highlight(h, moment))),
        );
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_ones() {
        let cursor = ScoreCursor {
            score: 0.1 + 0.2,
            id: Uuid::now_v7(),
        };
        let decoded = ScoreCursor::decode("after", &cursor.encode()).ok();
        assert_eq!(decoded, Some(cursor));
        let id_cursor = crate::graphql::pagination::encode_cursor(Uuid::now_v7());
        assert!(ScoreCursor::decode("after", &id_cursor).is_err());
        assert!(ScoreCursor::decode("after", "not base64 !").is_err());
    }
}

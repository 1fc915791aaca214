//! Decoding entity models by column position.
//!
//! SeaORM decodes a model column by column by name, and in a joined select (`A_id`, `B_id`,
//! …) it formats each prefixed name anew for every column of every row. On a page of 50
//! highlights joined to their videos and creators that was a quarter of the server's CPU
//! (`perf`, read benchmark Q3). A joined select lists each entity's columns in
//! `Column::iter()` order, which is the order of the model's fields, so the decoders below
//! read them by position instead. The tests compare them with SeaORM's own decoding.
//!
//! On PostgreSQL the values are read from the driver's row directly ([`PgValue`]): SeaORM
//! reads an optional column by trying the non-optional type and turning the "null" error it
//! formats for the column (`format!("{idx:?}")`) into `None`, one allocation and format per
//! NULL; a page of videos has about seven NULL columns a row (`perf`, read benchmark Q2: ~5 %
//! of the server's CPU).

use super::narrow::Skip;
use entity::{
    creator,
    enums::{HighlightStatus, KeyMomentContentType, ReviewStatus, VideoStatus},
    highlight, key_moment, video,
};
use sea_orm::{
    ActiveEnum, DbErr, QueryResult, TryGetable,
    prelude::{DateTimeUtc, Json, Uuid},
    sqlx::{Row, postgres::PgRow},
};

/// A value decoded from a column of a PostgreSQL row by position, as SeaORM decodes it.
pub trait PgValue: Sized {
    fn pg(row: &PgRow, index: usize) -> Result<Self, DbErr>;
}

macro_rules! pg_value {
    ($($ty:ty),* $(,)?) => {$(
        impl PgValue for $ty {
            fn pg(row: &PgRow, index: usize) -> Result<Self, DbErr> {
                row.try_get::<$ty, usize>(index).map_err(|e| DbErr::Type(e.to_string()))
            }
        }
        impl PgValue for Option<$ty> {
            fn pg(row: &PgRow, index: usize) -> Result<Self, DbErr> {
                row.try_get::<Option<$ty>, usize>(index).map_err(|e| DbErr::Type(e.to_string()))
            }
        }
    )*};
}

pg_value!(Uuid, String, i32, i64, f64, bool, DateTimeUtc, Json);

/// Enums are stored as their string values.
macro_rules! pg_enum {
    ($($ty:ty),* $(,)?) => {$(
        impl PgValue for $ty {
            fn pg(row: &PgRow, index: usize) -> Result<Self, DbErr> {
                <$ty as ActiveEnum>::try_from_value(&String::pg(row, index)?)
            }
        }
        impl PgValue for Option<$ty> {
            fn pg(row: &PgRow, index: usize) -> Result<Self, DbErr> {
                Option::<String>::pg(row, index)?
                    .map(|value| <$ty as ActiveEnum>::try_from_value(&value))
                    .transpose()
            }
        }
    )*};
}

pg_enum!(
    VideoStatus,
    HighlightStatus,
    KeyMomentContentType,
    ReviewStatus
);

/// The value of a field whose column a statement left out ([`Skip::remove`]): what the
/// constant [`Skip::apply`] reads in its place decodes to. Only nullable, text, JSON, integer,
/// floating-point and timestamp columns, and enums with a stand-in, can be left out.
///
/// [`Skip::remove`]: super::narrow::Skip::remove
/// [`Skip::apply`]: super::narrow::Skip::apply
pub trait LeftOut: Sized {
    fn left_out() -> Result<Self, DbErr>;
}

impl<T> LeftOut for Option<T> {
    fn left_out() -> Result<Self, DbErr> {
        Ok(None)
    }
}

macro_rules! left_out_as {
    ($($ty:ty => $value:expr),* $(,)?) => {$(
        impl LeftOut for $ty {
            fn left_out() -> Result<Self, DbErr> {
                Ok($value)
            }
        }
    )*};
}

left_out_as!(
    String => String::new(),
    i32 => 0,
    f64 => 0.0,
    HighlightStatus => HighlightStatus::Candidate,
    ReviewStatus => ReviewStatus::Pending,
    Json => Json::Null,
    DateTimeUtc => DateTimeUtc::UNIX_EPOCH,
);

macro_rules! never_left_out {
    ($($ty:ty),* $(,)?) => {$(
        impl LeftOut for $ty {
            fn left_out() -> Result<Self, DbErr> {
                Err(DbErr::Custom(format!("a {} column cannot be left out", stringify!($ty))))
            }
        }
    )*};
}

never_left_out!(Uuid, i64, bool, VideoStatus);

/// The column at `index`, from the PostgreSQL row directly when there is one.
pub fn value_at<T: PgValue + TryGetable>(res: &QueryResult, index: usize) -> Result<T, DbErr> {
    match res.try_as_pg_row() {
        Some(row) => T::pg(row, index),
        None => T::try_get_by_index(res, index).map_err(DbErr::from),
    }
}

/// One field's value: what [`LeftOut`] gives when `skip` left its column out, else the column
/// at `*index` (which then moves on), from the PostgreSQL row directly when there is one.
fn field<T: PgValue + TryGetable + LeftOut>(
    res: &QueryResult,
    pg: Option<&PgRow>,
    skip: Skip,
    column: usize,
    index: &mut usize,
) -> Result<T, DbErr> {
    if skip.has(column) {
        return T::left_out();
    }
    *index += 1;
    match pg {
        Some(row) => T::pg(row, *index - 1),
        None => T::try_get_by_index(res, *index - 1).map_err(DbErr::from),
    }
}

/// Reads the fields of `$module::Model` from consecutive columns starting at `$start`, the
/// columns `$skip` left out of the statement excepted; evaluates to the model and the index
/// after its last column.
macro_rules! model_at {
    ($res:expr, $start:expr, $skip:expr, $module:ident { $($field:ident),* $(,)? }) => {{
        let res: &QueryResult = $res;
        let pg = res.try_as_pg_row();
        let mut index: usize = $start;
        let mut column: usize = 0;
        let model = $module::Model {
            $($field: {
                column += 1;
                field(res, pg, $skip, column - 1, &mut index)?
            },)*
        };
        (model, index)
    }};
}

/// A highlight whose columns start at `start`, less those `skip` left out; also returns where
/// the next entity starts.
pub fn highlight_at(
    res: &QueryResult,
    start: usize,
    skip: Skip,
) -> Result<(highlight::Model, usize), DbErr> {
    Ok(model_at!(
        res,
        start,
        skip,
        highlight {
            id,
            key_moment_id,
            video_id,
            score,
            score_breakdown,
            duration_secs,
            status,
            trim_start,
            trim_end,
            created_at,
            updated_at,
        }
    ))
}

/// A video whose columns start at `start`, less those `skip` left out; also returns where the
/// next entity starts.
pub fn video_at(
    res: &QueryResult,
    start: usize,
    skip: Skip,
) -> Result<(video::Model, usize), DbErr> {
    Ok(model_at!(
        res,
        start,
        skip,
        video {
            id,
            creator_id,
            uploaded_by,
            title,
            original_filename,
            mime,
            size_bytes,
            sha256,
            storage_key,
            duration_secs,
            width,
            height,
            status,
            pipeline_stage,
            failure_reason,
            youtube_url,
            retention_class,
            retention_until,
            deleted_at,
            files_removed_at,
            created_at,
            updated_at,
        }
    ))
}

/// A creator whose columns start at `start`, less those `skip` left out; also returns where
/// the next entity starts.
pub fn creator_at(
    res: &QueryResult,
    start: usize,
    skip: Skip,
) -> Result<(creator::Model, usize), DbErr> {
    Ok(model_at!(
        res,
        start,
        skip,
        creator {
            id,
            name,
            slug,
            genres,
            bio,
            avatar_url,
            social_links,
            featured,
            personality_profile,
            shorts_template,
            created_at,
            updated_at,
        }
    ))
}

/// A key moment whose columns start at `start`, less those `skip` left out; also returns where
/// the next entity starts.
pub fn key_moment_at(
    res: &QueryResult,
    start: usize,
    skip: Skip,
) -> Result<(key_moment::Model, usize), DbErr> {
    Ok(model_at!(
        res,
        start,
        skip,
        key_moment {
            id,
            video_id,
            title,
            summary,
            start_time,
            end_time,
            topic_category,
            topic_tags,
            content_type,
            review_status,
            sort_order,
            created_at,
            updated_at,
        }
    ))
}

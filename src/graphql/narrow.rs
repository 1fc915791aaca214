//! Reading only the columns an operation can use.
//!
//! Rows are read whole by default, and on the read path that is most of the cost: a page of
//! 50 highlights with their videos and creators is 44 columns per row, JSON documents among
//! them, where the client asked for eight. Some columns are read by exactly one GraphQL field
//! (`Creator.genres` reads `creators.genres`, nothing else does); those are listed per entity
//! below. When none of a column's fields appears anywhere in the operation, a statement
//! decoded by position leaves the column out and its decoder fills the field with an empty
//! value ([`Skip::remove`], [`super::rows`]); one decoded by name reads a constant of the
//! column's type in its place ([`Skip::apply`]). Either way the row still becomes the
//! entity's model, with the same value in that field, and no code path can tell — except by
//! reading that column, which nothing in the operation does.
//!
//! "Anywhere in the operation", not "below this field": rows are shared through the
//! request's loader caches, so a row read for one part of the query may serve another.
//! Operations whose text is not at hand (WebSocket subscriptions) read whole rows, and so do
//! batches that hold a mutation, whose resolvers check and change rows read through the
//! same caches.

use std::{
    any::TypeId,
    sync::{Arc, Mutex, PoisonError},
};

use async_graphql::Context;
use entity::{creator, highlight, key_moment, video};
use sea_orm::{
    ColumnTrait, ColumnType, DatabaseBackend, EntityTrait, IdenStatic, Iterable,
    sea_query::{Alias, Expr, IntoIden, SelectExpr, SelectStatement, SimpleExpr},
};

use super::documents::ParsedDocument;

/// The field names a request selects anywhere (in any operation or fragment of any of its
/// documents: the operations of a batch share their loaders).
pub struct OperationFields {
    /// One per operation of the batch; `None` where the text does not parse.
    documents: Vec<Option<Arc<ParsedDocument>>>,
    /// Each entity's [`Skip`] once worked out (every page of a list asks again).
    skips: Mutex<Vec<(TypeId, Skip)>>,
}

impl OperationFields {
    pub fn new(documents: Vec<Option<Arc<ParsedDocument>>>) -> Self {
        Self {
            documents,
            skips: Mutex::new(Vec::new()),
        }
    }

    /// What `E` may leave out in this request.
    fn skip<E: Narrowable>(&self) -> Skip {
        let entity = TypeId::of::<E>();
        let mut skips = self.skips.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, skip)) = skips.iter().find(|(e, _)| *e == entity) {
            return *skip;
        }
        let skip = Skip::given::<E>(|name| self.selects(name));
        skips.push((entity, skip));
        skip
    }

    /// Whether `field` is selected somewhere; `true` when a document cannot be read or holds
    /// a mutation (mutations read rows through the same caches to check and change them: a
    /// batch with one reads whole rows).
    pub fn selects(&self, field: &str) -> bool {
        self.documents.iter().any(|document| {
            document
                .as_ref()
                .and_then(|d| d.query_fields.as_ref())
                .is_none_or(|names| names.contains(field))
        })
    }
}

/// An entity some of whose columns only particular GraphQL fields read.
pub trait Narrowable: EntityTrait {
    /// Each such column with the fields that read it (columns no field reads list none).
    fn optional_columns() -> &'static [(Self::Column, &'static [&'static str])];

    /// The text a left-out column reads in its place ([`Skip::apply`]) when its type's
    /// constant would not decode: the first value of an enum stored as text. It must be what
    /// the field's [`LeftOut`](super::rows::LeftOut) value is stored as.
    fn stand_in(_column: &Self::Column) -> Option<&'static str> {
        None
    }
}

impl Narrowable for video::Entity {
    fn optional_columns() -> &'static [(video::Column, &'static [&'static str])] {
        use video::Column::*;
        &[
            (UploadedBy, &["uploadedBy"]),
            (OriginalFilename, &["originalFilename"]),
            (Mime, &["mime"]),
            (SizeBytes, &["sizeBytes"]),
            (Sha256, &["sha256"]),
            (DurationSecs, &["durationSecs"]),
            (Width, &["width"]),
            (Height, &["height"]),
            (PipelineStage, &["pipelineStage"]),
            (FailureReason, &["failureReason"]),
            (YoutubeUrl, &["youtubeUrl"]),
            (RetentionUntil, &["retentionUntil"]),
            // Not exposed through the API: read by mutations and jobs, which read whole rows.
            (StorageKey, &[]),
            (RetentionClass, &[]),
            // `consent`: consent nobody set is dated from its video.
            (CreatedAt, &["createdAt", "consent"]),
            (UpdatedAt, &["updatedAt"]),
        ]
    }
}

impl Narrowable for creator::Entity {
    fn optional_columns() -> &'static [(creator::Column, &'static [&'static str])] {
        use creator::Column::*;
        &[
            (Genres, &["genres"]),
            (Bio, &["bio"]),
            (AvatarUrl, &["avatarUrl"]),
            (SocialLinks, &["socialLinks"]),
            (ShortsTemplate, &["shortsTemplate"]),
            (PersonalityProfile, &["personalityProfile"]),
            (CreatedAt, &["createdAt"]),
            (UpdatedAt, &["updatedAt"]),
        ]
    }
}

impl Narrowable for highlight::Entity {
    fn optional_columns() -> &'static [(highlight::Column, &'static [&'static str])] {
        use highlight::Column::*;
        &[
            (ScoreBreakdown, &["scoreBreakdown"]),
            (DurationSecs, &["durationSecs"]),
            (Status, &["status"]),
            (TrimStart, &["trimStart"]),
            (TrimEnd, &["trimEnd"]),
            (CreatedAt, &["createdAt"]),
            (UpdatedAt, &["updatedAt"]),
        ]
    }

    fn stand_in(column: &highlight::Column) -> Option<&'static str> {
        matches!(column, highlight::Column::Status).then_some("CANDIDATE")
    }
}

impl Narrowable for key_moment::Entity {
    fn optional_columns() -> &'static [(key_moment::Column, &'static [&'static str])] {
        use key_moment::Column::*;
        &[
            (Summary, &["summary"]),
            (StartTime, &["startTime"]),
            (EndTime, &["endTime"]),
            (TopicCategory, &["topicCategory"]),
            (TopicTags, &["topicTags"]),
            (ContentType, &["contentType"]),
            (ReviewStatus, &["reviewStatus"]),
            (SortOrder, &["sortOrder"]),
            (CreatedAt, &["createdAt"]),
            (UpdatedAt, &["updatedAt"]),
        ]
    }

    fn stand_in(column: &key_moment::Column) -> Option<&'static str> {
        matches!(column, key_moment::Column::ReviewStatus).then_some("PENDING")
    }
}

/// The optional columns of `E` the current operation does not read, one bit per column in
/// `E::Column::iter()` order. Part of loader keys, so it is small and hashable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Skip(u64);

impl Skip {
    /// Nothing left out.
    pub const NONE: Skip = Skip(0);

    /// What the operation of `ctx` lets `E` leave out.
    pub fn of<E: Narrowable>(ctx: &Context<'_>) -> Skip {
        match ctx.data_opt::<Arc<OperationFields>>() {
            Some(fields) => fields.skip::<E>(),
            None => Skip::NONE,
        }
    }

    /// What `E` may leave out when `selects` tells which field names the operation selects.
    pub fn given<E: Narrowable>(selects: impl Fn(&str) -> bool) -> Skip {
        let mut bits = 0;
        for (column, fields) in E::optional_columns() {
            if !fields.iter().any(|f| selects(f))
                && let Some(index) = E::Column::iter().position(|c| c.as_str() == column.as_str())
            {
                bits |= 1 << index;
            }
        }
        Skip(bits)
    }

    /// Whether the column at `index` (in `Column::iter()` order) is left out.
    pub fn has(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// How many columns of `E` a statement reads when this leaves the others out.
    pub fn kept<E: EntityTrait>(self) -> usize {
        (0..E::Column::iter().count())
            .filter(|index| !self.has(*index))
            .count()
    }

    /// Replaces the left-out columns of `E` in `query`'s select list with constants. The
    /// columns are found by name: `{prefix}{column}` as SeaORM aliases them in joined selects
    /// (`A_`, `B_`, …), or the bare column with no alias in a plain one.
    pub fn apply<E: Narrowable>(
        self,
        query: &mut SelectStatement,
        prefix: &str,
        backend: DatabaseBackend,
    ) {
        if self == Skip::NONE {
            return;
        }
        let skipped: Vec<(String, SimpleExpr)> = E::Column::iter()
            .enumerate()
            .filter(|(index, _)| self.has(*index))
            .filter_map(|(_, column)| {
                let constant = match E::stand_in(&column) {
                    Some(text) => Some(Expr::cust(format!("'{text}'"))),
                    None => constant_of(&column, backend),
                };
                constant.map(|c| (column.as_str().to_owned(), c))
            })
            .collect();
        query.exprs_mut_for_each(|select| {
            if let Some(name) = column_name(select, prefix)
                && let Some((_, constant)) = skipped.iter().find(|(n, _)| *n == name)
            {
                select.expr = constant.clone();
                select.alias = Some(Alias::new(format!("{prefix}{name}")).into_iden());
            }
        });
    }

    /// Removes the left-out columns of `E` from `query`'s select list (found as in
    /// [`Skip::apply`]). For rows decoded by position with the same `Skip`
    /// ([`super::rows`]), which fill those fields with the values `apply`'s constants decode
    /// to; PostgreSQL then neither builds nor sends them.
    pub fn remove<E: EntityTrait>(self, query: &mut SelectStatement, prefix: &str) {
        if self == Skip::NONE {
            return;
        }
        let skipped: Vec<&str> = E::Column::iter()
            .enumerate()
            .filter(|(index, _)| self.has(*index))
            .map(|(_, column)| column.as_str())
            .collect();
        let mut kept = Vec::new();
        query.exprs_mut_for_each(|select| {
            if !column_name(select, prefix).is_some_and(|name| skipped.contains(&name.as_str())) {
                kept.push(select.clone());
            }
        });
        query.clear_selects();
        query.exprs(kept);
    }
}

/// The column a select item reads: `{prefix}{column}` as SeaORM aliases columns in joined
/// selects (`A_`, `B_`, …), or the bare column with no alias in a plain one.
fn column_name(select: &SelectExpr, prefix: &str) -> Option<String> {
    match &select.alias {
        Some(alias) => alias.to_string().strip_prefix(prefix).map(str::to_owned),
        None if prefix.is_empty() => match &select.expr {
            SimpleExpr::Column(column) => column.column().map(|c| c.to_string()),
            _ => None,
        },
        None => None,
    }
}

/// Removes the columns of `E` the operation of `ctx` does not read from `query`, for rows
/// decoded by position with the returned `Skip` (see [`Skip::remove`]).
pub fn select_without<E: Narrowable>(
    ctx: &Context<'_>,
    query: &mut SelectStatement,
    prefix: &str,
) -> Skip {
    let skip = Skip::of::<E>(ctx);
    skip.remove::<E>(query, prefix);
    skip
}

/// Leaves the columns of `E` the operation of `ctx` does not read out of `query`, reading
/// constants in their place, for rows decoded by name (see [`Skip::apply`]).
pub fn leave_out<E: Narrowable>(
    ctx: &Context<'_>,
    query: &mut SelectStatement,
    prefix: &str,
    backend: DatabaseBackend,
) {
    Skip::of::<E>(ctx).apply::<E>(query, prefix, backend);
}

/// A constant that decodes as the column's type: SQL `NULL` (typed on PostgreSQL) for a
/// nullable column, else an empty text, a JSON `null`, zero or the epoch. `None` for other
/// types, which are then read as they are.
fn constant_of<C: ColumnTrait>(column: &C, backend: DatabaseBackend) -> Option<SimpleExpr> {
    let def = column.def();
    let ty = def.get_column_type();
    if def.is_null() {
        let pg_type = match ty {
            ColumnType::Json | ColumnType::JsonBinary => "jsonb",
            ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_) => "TEXT",
            ColumnType::Uuid => "uuid",
            ColumnType::Integer => "integer",
            ColumnType::BigInteger => "bigint",
            ColumnType::Double => "double precision",
            ColumnType::TimestampWithTimeZone => "timestamptz",
            _ => return None,
        };
        return Some(match backend {
            DatabaseBackend::Postgres => Expr::cust(format!("CAST(NULL AS {pg_type})")),
            _ => Expr::cust("NULL"),
        });
    }
    match ty {
        ColumnType::Json | ColumnType::JsonBinary => Some(match backend {
            DatabaseBackend::Postgres => Expr::cust("CAST('null' AS jsonb)"),
            _ => Expr::cust("'null'"),
        }),
        ColumnType::Text | ColumnType::String(_) | ColumnType::Char(_) => Some(Expr::cust("''")),
        ColumnType::Integer => Some(Expr::cust("0")),
        ColumnType::Double => Some(match backend {
            DatabaseBackend::Postgres => Expr::cust("CAST(0 AS double precision)"),
            _ => Expr::cust("0.0"),
        }),
        ColumnType::TimestampWithTimeZone => Some(match backend {
            DatabaseBackend::Postgres => {
                Expr::cust("CAST('1970-01-01 00:00:00+00' AS timestamptz)")
            }
            _ => Expr::cust("'1970-01-01T00:00:00+00:00'"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{QueryTrait, sea_query::PostgresQueryBuilder};

    use super::*;

    fn listed_columns_have_constants<E: Narrowable>() {
        for (column, _) in E::optional_columns() {
            assert!(
                E::stand_in(column).is_some()
                    || constant_of(column, DatabaseBackend::Postgres).is_some(),
                "{} has no constant",
                column.as_str()
            );
        }
    }

    #[test]
    fn every_listed_column_can_be_left_out() {
        listed_columns_have_constants::<video::Entity>();
        listed_columns_have_constants::<creator::Entity>();
        listed_columns_have_constants::<highlight::Entity>();
        listed_columns_have_constants::<key_moment::Entity>();
    }

    fn fields(queries: &[&str]) -> OperationFields {
        OperationFields::new(
            queries
                .iter()
                .map(|q| ParsedDocument::parse(q).map(Arc::new))
                .collect(),
        )
    }

    #[test]
    fn a_batch_selects_what_any_of_its_operations_selects() {
        let batch = fields(&[
            "query Q { creators { nodes { ...C ... on Creator { bio } } } } fragment C on Creator { genres }",
            "{ video(id: 1) { mime } }",
        ]);
        assert!(batch.selects("creators"));
        assert!(batch.selects("bio"));
        assert!(batch.selects("genres"));
        assert!(
            batch.selects("mime"),
            "from the second operation of the batch"
        );
        assert!(!batch.selects("socialLinks"));
        assert!(fields(&["{ a }", "{ not valid"]).selects("b"));
        assert!(
            fields(&["{ a }", "mutation { b { c } }"]).selects("d"),
            "a batch with a mutation reads whole rows"
        );
    }

    #[test]
    fn left_out_columns_become_constants_under_their_names() {
        let skip = Skip::given::<creator::Entity>(|f| f == "bio");
        let mut plain = creator::Entity::find().into_query();
        skip.apply::<creator::Entity>(&mut plain, "", DatabaseBackend::Postgres);
        let sql = plain.to_string(PostgresQueryBuilder);
        assert!(sql.contains(r#""creators"."bio""#), "{sql}");
        assert!(
            sql.contains(r#"CAST('null' AS jsonb) AS "genres""#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"CAST(NULL AS TEXT) AS "avatar_url""#),
            "{sql}"
        );
        assert!(sql.contains(r#""creators"."name""#), "{sql}");

        let mut videos = video::Entity::find().into_query();
        Skip::given::<video::Entity>(|f| f == "width").apply::<video::Entity>(
            &mut videos,
            "",
            DatabaseBackend::Postgres,
        );
        let sql = videos.to_string(PostgresQueryBuilder);
        for expected in [
            r#"CAST(NULL AS bigint) AS "size_bytes""#,
            r#"CAST(NULL AS double precision) AS "duration_secs""#,
            r#"CAST(NULL AS timestamptz) AS "retention_until""#,
            r#"CAST(NULL AS uuid) AS "uploaded_by""#,
            r#"0 AS "pipeline_stage""#,
            r#"'' AS "storage_key""#,
            r#""videos"."width""#,
            r#""videos"."deleted_at""#,
            r#""videos"."status""#,
            r#""videos"."creator_id""#,
        ] {
            assert!(sql.contains(expected), "{expected} in {sql}");
        }

        let mut joined = video::Entity::find()
            .find_also_related(creator::Entity)
            .into_query();
        skip.apply::<creator::Entity>(&mut joined, "B_", DatabaseBackend::Postgres);
        let sql = joined.to_string(PostgresQueryBuilder);
        assert!(
            sql.contains(r#"CAST('null' AS jsonb) AS "B_genres""#),
            "{sql}"
        );
        assert!(sql.contains(r#""creators"."bio" AS "B_bio""#), "{sql}");
        assert!(sql.contains(r#""videos"."mime" AS "A_mime""#), "{sql}");
    }
}

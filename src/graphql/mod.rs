//! The GraphQL schema: roots merged from the domain modules, limits, error codes, and the
//! helpers resolvers use to reach request data.

pub mod budget;
pub mod depth;
pub mod documents;
pub mod empty;
pub mod errors;
pub mod inputs;
pub mod loaders;
pub mod narrow;
pub mod node;
pub mod nulls;
pub mod order;
pub mod over_http;
pub mod overlap;
pub mod pagination;
pub mod persisted;
pub mod read_cache;
pub mod rows;
pub mod rules;
pub mod subscription_root;
pub mod variables;

use std::sync::Arc;

use async_graphql::{Context, Lookahead, MergedObject, MergedSubscription, Schema};

use crate::{
    access::{ClientInfo, Viewer},
    auth::graphql::AuthMutation,
    billing::{BillingMutation, BillingQuery},
    config::Config,
    creators::{CreatorMutation, CreatorQuery},
    error::{AppError, AppResult},
    jobs::graphql::{JobMutation, JobQuery, JobSubscription},
    render::graphql::RenderMutation,
    state::AppState,
    users::{UserMutation, UserQuery},
    videos::VideoQuery,
};

pub use loaders::Loaders;

#[derive(MergedObject, Default)]
pub struct QueryRoot(
    UserQuery,
    CreatorQuery,
    VideoQuery,
    JobQuery,
    BillingQuery,
    crate::shorts::ShortQuery,
    crate::content::ContentQuery,
    node::NodeQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "MutationRoot")]
pub struct Mutations(
    AuthMutation,
    UserMutation,
    CreatorMutation,
    crate::creators::CreatorMemberMutation,
    JobMutation,
    RenderMutation,
    BillingMutation,
    crate::media::MediaMutation,
    crate::consent::ConsentMutation,
    crate::shorts::ShortMutation,
    crate::content::ContentMutation,
);

/// The mutations, each run with fresh caches: what a request read before a mutation (earlier
/// operations of a batch, earlier root fields of the same mutation) is read again after it,
/// through the loaders and the caller's memberships, instead of served as it was. Root
/// mutation fields run one after another, so clearing around each is enough; queries keep
/// their caches for the whole request.
#[derive(Default)]
pub struct MutationRoot(Mutations);

impl async_graphql::OutputType for MutationRoot {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <Mutations as async_graphql::OutputType>::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <Mutations as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &async_graphql::ContextSelectionSet<'_>,
        _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<async_graphql::Value> {
        async_graphql::resolver_utils::resolve_container_serial(ctx, self).await
    }
}

impl async_graphql::ContainerType for MutationRoot {
    async fn resolve_field(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
        // A root field before this one failed where its type allows no null: the answer's
        // `data` is `null` ([`nulls`]), so this one must not run (GraphQL's serial execution
        // stops there, as graphql-js does), or the client, told nothing of it, would send it
        // again. Whatever this gives is dropped with `data`.
        if earlier_root_field_failed(ctx) {
            return Ok(Some(async_graphql::Value::Null));
        }
        forget_reads(ctx);
        let resolved = self.0.resolve_field(ctx).await;
        forget_reads(ctx);
        resolved
    }
}

/// Whether a field of the mutation `ctx` runs in has failed already where the answer's `data`
/// becomes null for it ([`nulls::nulls_data`]): a root field, or one under it, whose type and
/// every type above it allow no null.
fn earlier_root_field_failed(ctx: &Context<'_>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
    let paths: Vec<Vec<async_graphql::PathSegment>> = match ctx.query_env.errors.lock() {
        Ok(errors) => errors
            .iter()
            .filter(|e| !e.path.is_empty())
            .map(|e| e.path.clone())
            .collect(),
        Err(_) => return false,
    };
    if paths.is_empty() {
        return false;
    }
    // Rare (a mutation with a field error), and mutations are small: the document is put
    // back together from what async-graphql keeps of it.
    let document = ExecutableDocument {
        operations: DocumentOperations::Single(ctx.query_env.operation.clone()),
        fragments: ctx.query_env.fragments.clone(),
    };
    let operation = &ctx.query_env.operation.node;
    paths
        .iter()
        .any(|path| nulls::nulls_data(&document, operation, path))
}

impl async_graphql::ObjectType for MutationRoot {}

/// Drops what this request has read and cached (see [`MutationRoot`]).
fn forget_reads(ctx: &Context<'_>) {
    if let Ok(loaders) = ctx.data::<Loaders>() {
        loaders.clear();
    }
    if let Ok(viewer) = ctx.data::<Arc<Viewer>>() {
        viewer.forget_memberships();
    }
}

#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(JobSubscription);

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema. The server, the tests and `reelgraph schema` all use this one function,
/// so the committed SDL is exactly what is served.
pub fn build_schema(config: &Config, state: Option<AppState>) -> AppSchema {
    build(config, state).finish()
}

fn build(
    config: &Config,
    state: Option<AppState>,
) -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    // The configured depth is checked on the data a query reads (`depth`); this limit, on the
    // whole document, leaves room for the standard introspection query.
    .limit_depth(config.max_query_depth.max(depth::WHOLE_DOCUMENT_DEPTH))
    .limit_complexity(config.max_query_complexity)
    .limit_recursive_depth(64)
    // async-graphql's own words name a Rust type, which typed clients copy into their code.
    .override_output_type_description::<chrono::DateTime<chrono::Utc>>(
        "A date and time: an RFC 3339 string, sent in UTC (`2026-01-02T03:04:05.123456+00:00`, \
         with 0, 3, 6 or 9 digits of a second) and taken with any offset \
         (`2026-01-02T04:04:05+01:00`, `2026-01-02T03:04:05Z`).",
    );
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder
}

/// The schema as it runs each document: one that reads `__schema` or `__type` runs where
/// introspection lists count against the request's list budget ([`budget::Introspection`]);
/// every other runs without that hook on each field.
#[derive(Clone)]
pub struct Schemas {
    data: AppSchema,
    introspection: AppSchema,
}

impl Schemas {
    pub fn new(config: &Config, state: Option<AppState>) -> Self {
        Self {
            data: build_schema(config, state.clone()),
            introspection: build(config, state)
                .extension(budget::Introspection)
                .finish(),
        }
    }

    /// The schema to run documents of this shape: `introspects` when any of them (or one not
    /// measured) reads `__schema` or `__type`.
    pub fn running(&self, introspects: bool) -> &AppSchema {
        if introspects {
            &self.introspection
        } else {
            &self.data
        }
    }
}

/// The SDL of the schema, as committed in `schema.graphql`.
pub fn sdl() -> String {
    // With `@specifiedBy` on custom scalars, as introspection gives them (`specifiedByURL`).
    build_schema(&Config::embedded("."), None)
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}

fn missing(what: &str) -> AppError {
    AppError::internal(
        "request context",
        format!("{what} missing from the GraphQL context"),
    )
}

/// The application state.
pub fn state<'a>(ctx: &Context<'a>) -> AppResult<&'a AppState> {
    ctx.data::<AppState>().map_err(|_| missing("AppState"))
}

/// The caller of this request.
pub fn viewer<'a>(ctx: &Context<'a>) -> AppResult<&'a Arc<Viewer>> {
    ctx.data::<Arc<Viewer>>().map_err(|_| missing("Viewer"))
}

/// The DataLoaders of this request.
pub fn loaders<'a>(ctx: &Context<'a>) -> AppResult<&'a Loaders> {
    ctx.data::<Loaders>().map_err(|_| missing("Loaders"))
}

/// Whether the client selected `path` (field names, not aliases) below this field.
pub fn selects(ctx: &Context<'_>, path: &[&str]) -> bool {
    path.iter()
        .fold(ctx.look_ahead(), |look, name| look.field(name))
        .exists()
}

/// Whether the client selected `path` in the nodes of the connection this field returns,
/// through `nodes` or `edges { node }`.
pub fn node_selects(ctx: &Context<'_>, path: &[&str]) -> bool {
    node_fields(&ctx.look_ahead(), path)
        .iter()
        .any(Lookahead::exists)
}

/// The selections of `path` in the nodes of the connection `look` is at: through `nodes` and
/// through `edges { node }`.
pub fn node_fields<'a>(look: &Lookahead<'a>, path: &[&str]) -> [Lookahead<'a>; 2] {
    let walk = |start: Lookahead<'a>| path.iter().fold(start, |look, name| look.field(name));
    [
        walk(look.field("nodes")),
        walk(look.field("edges").field("node")),
    ]
}

/// `value` to the millionth: differences and sums of seconds or fractions carry float noise
/// (a moment from 12.0 to 19.99 s lasts 7.989999999999998 s), which clients would show.
pub fn to_millionths(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

/// Parses an `ID` argument; ids are UUIDs, anything else is a client error naming `field`.
pub fn parse_id(field: &str, id: &async_graphql::ID) -> AppResult<uuid::Uuid> {
    uuid::Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "is not a valid ID"))
}

/// A case-insensitive substring to search for, in each of the forms its accents may be
/// stored in: as typed, composed (NFC: how names are written now) and decomposed (NFD: how
/// macOS names files, and so folder-named creators and older rows may hold them).
pub struct Contains(Vec<String>);

impl Contains {
    /// On PostgreSQL `lower(column) LIKE lower('%…%')` (wildcards escaped; both sides folded
    /// by the database, since Rust's lower case differs from it: a final `Σ` becomes `ς`,
    /// `İ` gains a combining dot). SQLite's `lower` and
    /// `LIKE` fold ASCII letters only, so there the column is matched with `GLOB` and each
    /// letter of the search as a class of its cases (`Über` → `*[üÜ][bB][eE][rR]*`).
    pub fn matches(
        &self,
        backend: sea_orm::DatabaseBackend,
        column: impl sea_orm::sea_query::IntoColumnRef,
    ) -> sea_orm::sea_query::SimpleExpr {
        use sea_orm::sea_query::{Expr, ExprTrait};
        let column = column.into_column_ref();
        self.0
            .iter()
            .map(|form| contains(backend, column.clone(), form))
            .reduce(|any, form| any.or(form))
            .unwrap_or_else(|| Expr::val(false))
    }
}

/// Whether `column` contains `search` in any mix of letter cases (see [`Contains::matches`]).
fn contains(
    backend: sea_orm::DatabaseBackend,
    column: sea_orm::sea_query::ColumnRef,
    search: &str,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Func};
    if backend == sea_orm::DatabaseBackend::Sqlite {
        return Expr::col(column).binary(BinOper::Custom("GLOB"), glob_any_case(search));
    }
    // The backslash is PostgreSQL's default `LIKE` escape.
    let escaped = search
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::expr(Func::lower(Expr::col(column))).binary(
        BinOper::Like,
        Func::lower(Expr::val(format!("%{escaped}%"))),
    )
}

/// A `GLOB` pattern matching any text that contains `search` in any mix of letter cases.
fn glob_any_case(search: &str) -> String {
    // The one character a case mapping gives, if it gives one.
    fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
        let first = mapped.next()?;
        mapped.next().is_none().then_some(first)
    }
    // What PostgreSQL's `lower()` makes of a letter (glibc's `towlower`): Rust's mapping when
    // it is one character, and `İ` → `i`.
    fn lower(c: char) -> char {
        match c {
            'İ' => 'i',
            c => single(c.to_lowercase()).unwrap_or(c),
        }
    }
    // Letters that are not the upper case of their lower case, yet lower-case to it.
    const ALSO_LOWER_TO: [char; 5] = ['ẞ', '\u{212A}', '\u{212B}', '\u{2126}', 'İ'];
    let mut out = String::from("*");
    for c in search.chars() {
        // Every character whose lower case is the search character's lower case, as
        // `lower(column) LIKE lower(search)` matches on PostgreSQL.
        let folded = lower(c);
        let mut cases = vec![folded];
        let upper = single(folded.to_uppercase());
        for other in upper
            .into_iter()
            .chain(ALSO_LOWER_TO)
            .chain([c])
            .filter(|&x| lower(x) == folded)
        {
            if !cases.contains(&other) {
                cases.push(other);
            }
        }
        match cases.as_slice() {
            // GLOB's own characters stand for themselves inside a class.
            [only] if matches!(only, '*' | '?' | '[') => {
                out.push('[');
                out.push(*only);
                out.push(']');
            }
            [only] => out.push(*only),
            // Only letters have other cases, and no letter is special inside a class.
            many => {
                out.push('[');
                out.extend(many.iter());
                out.push(']');
            }
        }
    }
    out.push('*');
    out
}

/// The `search` argument `field` as a [`Contains`]: `None` when blank, a client error naming
/// `field` when longer than 100 characters.
pub fn contains_pattern(field: &str, search: Option<&str>) -> AppResult<Option<Contains>> {
    let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if search.chars().count() > 100 {
        return Err(AppError::bad_input(field, "must be at most 100 characters"));
    }
    use unicode_normalization::UnicodeNormalization;
    let mut forms = vec![search.to_owned()];
    for form in [search.nfc().collect::<String>(), search.nfd().collect()] {
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    Ok(Some(Contains(forms)))
}

/// Where the request came from (empty when unknown).
pub fn client_info(ctx: &Context<'_>) -> ClientInfo {
    ctx.data::<ClientInfo>().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use async_graphql::{ContainerType, Context};

    use crate::{
        content::{Highlight, KeyMoment},
        creators::Creator,
        videos::Video,
    };

    /// Size of the future `resolve` returns, without calling it.
    fn future_size<'a, T: 'a, F: Future + 'a>(_: impl Fn(&'a T, &'a Context<'a>) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// async-graphql's `#[Object]` puts every field of a type in one `resolve_field` future
    /// and boxes that future for each field it resolves (async-graphql#1842), so a type's
    /// largest field sets the cost of its `id`. Types that come in long lists keep their
    /// database and storage fields behind a `Box::pin`.
    #[test]
    fn glob_patterns_match_every_case_and_escape_globs_own_characters() {
        assert_eq!(super::glob_any_case("Über 2"), "*[üÜ][bB][eE][rR] 2*");
        assert_eq!(super::glob_any_case("a*b?[c]"), "*[aA][*][bB][?][[][cC]]*");
        // Letters that lower-case to another letter's lower case, as PostgreSQL's lower() has
        // them: ẞ, the Kelvin sign, İ.
        assert_eq!(super::glob_any_case("ß"), "*[ßẞ]*");
        assert_eq!(super::glob_any_case("\u{212A}"), "*[kK\u{212A}]*");
        assert_eq!(super::glob_any_case("i"), "*[iIİ]*");
        // Dotless ı lower-cases to itself only: `I` is not one of its cases.
        assert_eq!(super::glob_any_case("ı"), "*ı*");
    }

    #[test]
    fn list_types_resolve_fields_with_small_futures() {
        let sizes = [
            ("Video", future_size(|v: &Video, c| v.resolve_field(c))),
            ("Creator", future_size(|v: &Creator, c| v.resolve_field(c))),
            (
                "Highlight",
                future_size(|v: &Highlight, c| v.resolve_field(c)),
            ),
            (
                "KeyMoment",
                future_size(|v: &KeyMoment, c| v.resolve_field(c)),
            ),
        ];
        for (name, size) in sizes {
            assert!(
                size <= 1024,
                "{name}::resolve_field is a {size}-byte future: box the field that grew it"
            );
        }
    }
}

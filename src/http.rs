//! The HTTP surface: GraphQL over POST and GET, GraphiQL, health and metrics, and the routes
//! of GraphQL over WebSocket (the protocol itself lives in [`crate::ws`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_graphql::{
    BatchRequest, ErrorExtensions, ServerError, http::GraphiQLSource, parser::types::OperationType,
};
use async_graphql_axum::GraphQLBatchRequest;
use axum::{
    Router,
    extract::{ConnectInfo, FromRequest, Request, State},
    handler::Handler,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sea_orm::ConnectionTrait;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowHeaders, AllowOrigin, Any, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    access::ClientInfo,
    auth,
    error::AppError,
    graphql::{
        Schemas,
        documents::{DocumentCache, ParsedDocument},
        inputs,
        loaders::new_loaders,
        over_http::{self, Answer, MediaType},
        persisted::PersistedQueries,
        read_cache,
    },
    state::AppState,
    storage,
    ws::{self, WsSettings},
};

/// Most operations one batched HTTP request may carry.
const MAX_BATCH: usize = 10;

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: Schemas,
    /// Timings and limits of GraphQL over WebSocket.
    pub ws: WsSettings,
    /// Parsed documents by query text.
    pub documents: Arc<DocumentCache>,
    /// Automatic persisted queries' texts by hash.
    pub persisted: Arc<PersistedQueries>,
    /// The open WebSocket connections of each address and account.
    pub sockets: Arc<ws::sockets::Sockets>,
}

pub fn router(app: AppState, schema: Schemas) -> Router {
    let ws = WsSettings {
        max_sockets_per_account: app.config.ws_max_sockets_per_account,
        max_sockets_per_address: app.config.ws_max_sockets_per_address,
        ..WsSettings::default()
    };
    router_with(app, schema, ws)
}

/// The router with explicit WebSocket settings (tests shorten the timeouts).
pub fn router_with(app: AppState, schema: Schemas, ws: WsSettings) -> Router {
    let config = app.config.clone();
    let counters = app.metrics.clone();
    let listed = config.listed_origins();
    let cors = if listed.is_empty() || listed.contains(&"*") {
        CorsLayer::new().allow_origin(Any)
    } else {
        let origins: Vec<HeaderValue> = listed
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new().allow_origin(AllowOrigin::list(origins))
    }
    .allow_methods([Method::GET, Method::POST])
    // Whatever headers the client's preflight asks for: GraphQL clients add their own
    // (Apollo's `apollographql-client-name`, tracing headers), and no cookies are involved
    // (credentials are bearer tokens), so none needs to be kept out.
    .allow_headers(AllowHeaders::mirror_request())
    .max_age(Duration::from_secs(3600));

    // Presigned object URLs of the local storage backend: large bodies, long transfers, and
    // PUT from browsers, so they get their own limits and CORS.
    let objects = Router::new()
        .route(
            "/objects/{*key}",
            get(storage::routes::get_object).put(storage::routes::put_object),
        )
        .with_state(app.storage.clone())
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::PUT, Method::HEAD])
                .allow_headers([header::CONTENT_TYPE, header::RANGE])
                // Read by players and in-browser MP4 readers that fetch byte ranges.
                .expose_headers([
                    header::CONTENT_RANGE,
                    header::ACCEPT_RANGES,
                    header::CONTENT_LENGTH,
                ])
                .max_age(Duration::from_secs(3600)),
        );

    let state = HttpState {
        app,
        schema,
        ws,
        documents: Arc::new(DocumentCache::new()),
        persisted: Arc::new(PersistedQueries::new()),
        sockets: Arc::default(),
    };
    // For probes and scrapers, not browsers: outside the CORS layer, so that no web page
    // (of any origin) can read an open `/metrics` from a browser on the server's network.
    let operations = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .with_state(state.clone());

    Router::new()
        .route("/graphql", get(graphql_get).post(graphql))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/graphiql", get(graphiql))
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        // 504, not 408: a 408 says the client was slow to send, and browsers (Chromium on a
        // kept-alive connection) and OkHttp send such a request again by themselves, which
        // would run a mutation twice. Apollo Router answers its own timeout with 504 too.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(axum::middleware::map_response_with_state(
            config.request_timeout_ms,
            explain_bare_statuses,
        ))
        .layer(compression())
        // Inside CORS as well, so that a cross-origin page reads the `INTERNAL` answer of a
        // panic rather than an opaque network error.
        .layer(catch_panics())
        .layer(cors)
        .merge(objects)
        .merge(operations)
        .layer(catch_panics())
        // After `merge`, so it sees every route (and its matched pattern), and outside the
        // panic catcher, so it sees every refusal, the 500 of a panic included.
        .layer(axum::middleware::from_fn_with_state(
            counters,
            crate::metrics::track_http,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(trace_layer())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// A panic in a handler answers 500 with the plain `INTERNAL` error, not a dropped connection
/// (its message goes to stderr, by the standard panic hook).
fn catch_panics() -> CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response> {
    fn answer(_: Box<dyn std::any::Any + Send>) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(&AppError::Internal("panic".into())),
        )
            .into_response()
    }
    CatchPanicLayer::custom(answer as fn(Box<dyn std::any::Any + Send>) -> Response)
}

/// Each request's span, at INFO so that what is logged under it (an internal error, say)
/// carries the `x-request-id` a client reports: its method, its path (not its query, which
/// may hold GraphQL variables or a presigned link's signature) and its request id.
fn trace_layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request) -> tracing::Span,
> {
    fn span(request: &Request) -> tracing::Span {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %id,
        )
    }
    TraceLayer::new_for_http().make_span_with(span as fn(&Request) -> tracing::Span)
}

/// gzip for the clients that accept it, where it pays: successful JSON (GraphQL answers are
/// `application/graphql-response+json`) and HTML answers of more than 1 KiB, at the fastest
/// level (the standard introspection answer: 128,784 → 22,477 bytes). Not for WebSocket
/// upgrades, errors, tiny answers or the media under `/objects` (already compressed).
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::{
        CompressionLayer, CompressionLevel, Predicate, predicate::SizeAbove,
    };
    let textual = |status: StatusCode,
                   _: axum::http::Version,
                   headers: &HeaderMap,
                   _: &axum::http::Extensions| {
        status == StatusCode::OK
            && headers
                .get(header::CONTENT_TYPE)
                .and_then(|t| t.to_str().ok())
                .is_some_and(|t| {
                    // application/json, application/graphql-response+json, text/html
                    t.starts_with("application/") && t.contains("json")
                        || t.starts_with("text/html")
                })
    };
    CompressionLayer::new()
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(1024).and(textual))
}

/// The body limit and the timeout answer with a bare status; GraphQL clients get an error
/// with a code in the body, like every other refusal. A request stopped by the timeout is
/// dropped where it was: a transaction it had open rolls back.
async fn explain_bare_statuses(
    axum::extract::State(timeout_ms): axum::extract::State<u64>,
    response: Response,
) -> Response {
    let err = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::GATEWAY_TIMEOUT => AppError::TimedOut(format!(
            "the request was stopped after {}; what it had not committed was rolled back",
            human_duration(timeout_ms)
        )),
        _ => return response,
    };
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if json {
        return response;
    }
    (response.status(), error_body(&err)).into_response()
}

/// `60000` → "60 s", `1500` → "1500 ms".
pub(crate) fn human_duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

fn too_large() -> AppError {
    AppError::bad_input("", "the request body is larger than this server accepts")
}

/// A body that is not a GraphQL request (not JSON, not an object with a string `query`, too
/// deep, too large): `BAD_USER_INPUT` with what is wrong, instead of the extractor's debug text.
pub struct BadRequestBody(async_graphql::ParseRequestError);

impl From<async_graphql::ParseRequestError> for BadRequestBody {
    fn from(err: async_graphql::ParseRequestError) -> Self {
        Self(err)
    }
}

impl IntoResponse for BadRequestBody {
    fn into_response(self) -> Response {
        use async_graphql::ParseRequestError as E;
        let oversized = match &self.0 {
            E::PayloadTooLarge => true,
            // The body limit cuts a body without a Content-Length off mid-stream.
            E::Io(err) => err.to_string().contains("length limit exceeded"),
            _ => false,
        };
        if oversized {
            return (StatusCode::PAYLOAD_TOO_LARGE, error_body(&too_large())).into_response();
        }
        let message = match &self.0 {
            E::InvalidRequest(err) => {
                let detail = err.to_string();
                if detail.contains("did not match any variant") {
                    "the body must be a JSON object with a string `query` (and optional \
                     `variables` object and `operationName`), or a list of them"
                        .to_owned()
                } else {
                    format!("the body is not valid JSON: {detail}")
                }
            }
            E::Io(_) => "the request body could not be read".to_owned(),
            other => format!("not a GraphQL request: {other}"),
        };
        (
            StatusCode::BAD_REQUEST,
            error_body(&AppError::bad_input("", message)),
        )
            .into_response()
    }
}

/// A GraphQL response body holding one error, about the request as a whole (no location).
fn error_body(err: &AppError) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "errors": [err.clone().into_request_error()] }))
}

/// The client's address: the peer's, or behind a trusted proxy the last address in
/// `X-Forwarded-For` — the one that proxy appended. Addresses before it are whatever the
/// client sent (a fresh made-up one per request would escape the sign-in throttle).
pub(crate) fn client_info(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    let forwarded = state
        .config
        .trust_proxy
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()
                .map(|ip| ip.trim().to_owned())
        })
        .flatten()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    ClientInfo {
        ip: Some(forwarded.unwrap_or_else(|| peer.ip().to_string())),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    }
}

/// `GET /graphql` is a query, or a WebSocket when the request asks for an upgrade.
async fn graphql_get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if ws::is_upgrade_request(request.headers()) {
        return ws::upgrade.call(request, state).await;
    }
    let (parts, _) = request.into_parts();
    match over_http::request_from_query_string(parts.uri.query().unwrap_or_default()) {
        Ok(one) => {
            let batch = BatchRequest::Single(one);
            execute(state, Method::GET, peer, &parts.headers, batch).await
        }
        Err(err) => (StatusCode::BAD_REQUEST, error_body(&err)).into_response(),
    }
}

async fn graphql(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    if !over_http::is_graphql_content_type(request.headers()) {
        let err = AppError::bad_input(
            "",
            "send the GraphQL request as JSON, with `Content-Type: application/json`",
        );
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, error_body(&err)).into_response();
    }
    let headers = request.headers().clone();
    match GraphQLBatchRequest::<BadRequestBody>::from_request(request, &state).await {
        Ok(batch) => execute(state, Method::POST, peer, &headers, batch.into_inner()).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Runs a GraphQL request over HTTP, one operation or a batch. Each operation of a batch is
/// checked on its own: one that is refused (an unknown persisted query, NUL text, too deep)
/// gets its errors in its place in the answer, and the others run.
async fn execute(
    state: HttpState,
    method: Method,
    peer: SocketAddr,
    headers: &HeaderMap,
    batch: BatchRequest,
) -> Response {
    let media = MediaType::negotiate(headers);
    // A header that is there but cannot be read is a bad credential, not an absent one.
    let authorization = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        None => None,
    };
    // A bad credential (expired, revoked, malformed) refuses every operation but those that
    // get a new one (`refreshSession`, `login`, …), which run as anonymous: clients send
    // their stale token along when they refresh it. Never silently anonymous otherwise.
    let (viewer, bad_credential) = match auth::viewer_from_authorization(&state.app, authorization)
    {
        Ok(viewer) => (Arc::new(viewer), None),
        Err(err) => (Arc::new(crate::access::Viewer::anonymous()), Some(err)),
    };
    let (requests, single) = match batch {
        BatchRequest::Single(one) => (vec![one], true),
        BatchRequest::Batch(many) => (many, false),
    };
    // Refused whole, before any of it runs: 400 whatever the media type, as a body that is
    // not a GraphQL request (the batch itself cannot be answered operation by operation).
    if requests.len() > MAX_BATCH {
        let err = AppError::bad_input(
            "",
            format!("a batch may hold at most {MAX_BATCH} operations"),
        );
        return (StatusCode::BAD_REQUEST, error_body(&err)).into_response();
    }
    // Not a GraphQL request at all (GraphQL over HTTP: 400 whatever the media type).
    if single
        && let [only] = requests.as_slice()
        && missing_query(only)
    {
        return (StatusCode::BAD_REQUEST, error_body(&no_query())).into_response();
    }
    // An anonymous query may be answered from the read cache, and its answer kept there
    // (while the cache serves: no key is made for nothing).
    let may_cache = single && authorization.is_none() && state.app.read_cache.serving();
    let mut keep = None;
    let mut refused = Vec::with_capacity(requests.len());
    let mut runnable = Vec::with_capacity(requests.len());
    let mut documents = Vec::with_capacity(requests.len());
    for mut request in requests {
        let parsed = match prepare(&state, &mut request) {
            Ok(parsed) => parsed,
            Err(error) => {
                refused.push(Some(error));
                continue;
            }
        };
        if may_cache
            && is_query(parsed.as_deref(), request.operation_name.as_deref())
            && let Some(key) = read_cache::Key::of(&request)
        {
            match state.app.read_cache.lookup(key) {
                Some(read_cache::Lookup::Hit(body)) => {
                    state.app.metrics.graphql_operations.inc();
                    state.app.metrics.request_statements(0);
                    state.app.metrics.read_cache_lookup("hit");
                    return over_http::answered(StatusCode::OK, media, body);
                }
                Some(read_cache::Lookup::Miss(key, generation, looked_up)) => {
                    state.app.metrics.read_cache_lookup("miss");
                    keep = Some((key, generation, looked_up));
                }
                None => {}
            }
        }
        // Before the checks on what it holds: a mutation sent with GET is 405 whatever else
        // is wrong with it (GraphQL over HTTP).
        if method == Method::GET
            && let Some(refusal) = refuse_mutation_over_get(&request, parsed.as_deref())
        {
            return refusal;
        }
        if let Err(error) = admit(&state, &mut request, parsed.as_deref()) {
            refused.push(Some(error));
            continue;
        }
        if let Some(err) = &bad_credential
            && !only_session_mutations(parsed.as_deref(), request.operation_name.as_deref())
        {
            refused.push(Some(err.clone().into_request_error()));
            continue;
        }
        refused.push(None);
        runnable.push(request);
        documents.push(parsed);
    }
    let mut results = Vec::new();
    if !runnable.is_empty() {
        let running = run(&state, viewer, peer, headers, runnable, documents, single);
        let tally;
        (results, tally) = crate::db::counting_statements(running).await;
        state.app.metrics.request_statements(tally.count());
        if !tally.cacheable() {
            keep = None;
        }
        // What its statements changed has committed now: an anonymous answer kept meanwhile,
        // from rows read before the commit, must not be served until the announcement comes.
        if tally.wrote_content() {
            state.app.read_cache.changed();
        }
    } else {
        keep = None;
    }
    state.app.metrics.count_errors(
        results
            .iter()
            .flat_map(|response| &response.errors)
            .chain(refused.iter().flatten()),
    );
    let mut results = results.into_iter();
    let answers: Vec<Answer> = refused
        .into_iter()
        .filter_map(|refusal| match refusal {
            Some(error) => Some(Answer::RequestError(vec![error])),
            None => results.next().map(Answer::from_response),
        })
        .collect();
    if let Some((key, generation, looked_up)) = keep
        && let [Answer::Ran(response)] = answers.as_slice()
        && response.errors.is_empty()
    {
        match serde_json::to_vec(response) {
            Ok(body) => {
                let body = axum::body::Bytes::from(body);
                state
                    .app
                    .read_cache
                    .keep(key, generation, looked_up, body.clone());
                return over_http::answered(StatusCode::OK, media, body);
            }
            Err(err) => tracing::error!(error = %err, "an answer did not serialise"),
        }
    }
    over_http::respond(media, single, answers)
}

/// Whether the operation `name` of `parsed` is a query.
fn is_query(parsed: Option<&ParsedDocument>, name: Option<&str>) -> bool {
    parsed
        .and_then(|p| crate::graphql::nulls::pick(&p.document, name))
        .is_some_and(|operation| operation.ty == OperationType::Query)
}

/// The mutations that need no signed-in caller, and that a client whose access token no
/// longer works calls to get going again.
const SESSION_MUTATIONS: [&str; 5] = [
    "refreshSession",
    "login",
    "register",
    "logout",
    "resetPassword",
];

/// Whether the operation `name` of `parsed` is a mutation that selects only
/// [`SESSION_MUTATIONS`] (and `__typename`), directly.
fn only_session_mutations(parsed: Option<&ParsedDocument>, name: Option<&str>) -> bool {
    let Some(operation) = parsed.and_then(|p| crate::graphql::nulls::pick(&p.document, name))
    else {
        return false;
    };
    operation.ty == async_graphql::parser::types::OperationType::Mutation
        && operation
            .selection_set
            .node
            .items
            .iter()
            .all(|item| match &item.node {
                async_graphql::parser::types::Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    name == "__typename" || SESSION_MUTATIONS.contains(&name)
                }
                _ => false,
            })
}

/// Resolves a persisted query and parses the document (once per text). The error is the
/// operation's answer when it may not run.
fn prepare(
    state: &HttpState,
    request: &mut async_graphql::Request,
) -> Result<Option<Arc<ParsedDocument>>, ServerError> {
    state.persisted.resolve(request)?;
    if missing_query(request) {
        return Err(no_query().into_request_error());
    }
    // Before anything parses it: the parser recurses once a level.
    if crate::graphql::depth::text_nesting(&request.query) > crate::graphql::depth::MAX_TEXT_NESTING
    {
        return Err(crate::graphql::depth::text_too_nested());
    }
    Ok(state.documents.get(&request.query))
}

/// The checks before execution ([`inputs::refusal`]); the request then runs `parsed`.
fn admit(
    state: &HttpState,
    request: &mut async_graphql::Request,
    parsed: Option<&ParsedDocument>,
) -> Result<(), ServerError> {
    if let Some(parsed) = parsed {
        inputs::fill_variable_defaults(request, &parsed.document);
    }
    let facts = parsed.map(|p| p.facts());
    if let Some(error) = inputs::refusal(request, facts, state.app.config.max_query_depth) {
        return Err(error);
    }
    if let Some(parsed) = parsed {
        let run = parsed.kept.as_ref().unwrap_or(&parsed.document);
        let document =
            inputs::without_unsent_variables(request, run).unwrap_or_else(|| run.clone());
        request.set_parsed_query(document);
    }
    Ok(())
}

/// Whether the request has neither a query text nor a persisted query's hash.
fn missing_query(request: &async_graphql::Request) -> bool {
    request.query.trim().is_empty() && !request.extensions.contains_key("persistedQuery")
}

fn no_query() -> AppError {
    AppError::bad_input(
        "query",
        "the request has no `query` (nor a persisted query's hash)",
    )
}

/// Executes the operations that passed the checks, with the request data the resolvers need,
/// and completes their answers (error codes, `null`s where fields failed).
async fn run(
    state: &HttpState,
    viewer: Arc<crate::access::Viewer>,
    peer: SocketAddr,
    headers: &HeaderMap,
    requests: Vec<async_graphql::Request>,
    documents: Vec<Option<Arc<ParsedDocument>>>,
    single: bool,
) -> Vec<async_graphql::Response> {
    // Kept to repair answers with field errors (`graphql::nulls`).
    let executed: Vec<_> = requests
        .iter()
        .zip(&documents)
        .map(|(request, parsed)| {
            (
                parsed.clone(),
                request.operation_name.clone(),
                request.variables.clone(),
            )
        })
        .collect();
    let operations = requests.len() as u64;
    // async-graphql runs a batch's operations concurrently. With a mutation among them they
    // run in order instead, so that each sees what the ones before it wrote (Apollo's
    // BatchHttpLink sends a mutation and its refetches together).
    let in_order = documents
        .iter()
        .any(|parsed| parsed.as_ref().is_none_or(|p| p.query_fields.is_none()));
    let introspects = documents
        .iter()
        .any(|parsed| parsed.as_ref().is_none_or(|p| p.measured.shape.introspects));
    let mut requests = requests;
    let batch = if single && requests.len() == 1 {
        BatchRequest::Single(requests.remove(0))
    } else {
        BatchRequest::Batch(requests)
    };
    let loaders = new_loaders(state.app.db.clone(), viewer.clone());
    let content_loaders = Arc::new(crate::content::loaders::ContentLoaders::new(
        state.app.db.clone(),
    ));
    // Which columns the loaders may leave out depends on every operation of the batch,
    // since they share the loaders' caches.
    let fields = Arc::new(crate::graphql::narrow::OperationFields::new(documents));
    let batch = batch
        .data(fields)
        .data(Arc::new(crate::graphql::budget::ListBudget::default()))
        .data(viewer)
        .data(loaders)
        .data(content_loaders)
        .data(client_info(&state.app, headers, peer));
    let schema = state.schema.running(introspects);
    let mut responses = match batch {
        BatchRequest::Batch(requests) if in_order => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(schema.execute(request).await);
            }
            responses
        }
        batch => match schema.execute_batch(batch).await {
            async_graphql::BatchResponse::Single(one) => vec![one],
            async_graphql::BatchResponse::Batch(many) => many,
        },
    };
    state.app.metrics.graphql_operations.inc_by(operations);
    for (response, (parsed, operation, variables)) in responses.iter_mut().zip(&executed) {
        let mutation = parsed.as_ref().is_none_or(|p| {
            crate::graphql::nulls::pick(&p.document, operation.as_deref())
                .is_none_or(|op| op.ty == OperationType::Mutation)
        });
        crate::graphql::budget::collapse(response, mutation);
        crate::graphql::errors::add_codes(response, state.app.config.max_query_complexity);
        if let Some(parsed) = parsed.as_ref() {
            if parsed.kept.is_some() {
                crate::graphql::empty::strip(&mut response.data);
            }
            crate::graphql::nulls::keep_empty_root(response);
            if !response.errors.is_empty() {
                crate::graphql::nulls::complete(response, &parsed.document, operation.as_deref());
            }
            crate::graphql::order::restore(
                response,
                &parsed.document,
                operation.as_deref(),
                variables,
            );
        }
        crate::graphql::errors::cap(response);
    }
    responses
}

/// GraphQL over HTTP: GET may only read. A mutation sent by GET gets 405.
fn refuse_mutation_over_get(
    request: &async_graphql::Request,
    parsed: Option<&ParsedDocument>,
) -> Option<Response> {
    let operation_name = request.operation_name.clone();
    // Without a document the schema reports the syntax error with its position.
    let document = &parsed?.document;
    // Without a name only a document of one operation says which to run; with several, the
    // schema refuses the request (400, not 405: nothing was asked of GET that POST would do).
    let only_one = document.operations.iter().count() == 1;
    let is_mutation = document.operations.iter().any(|(name, op)| {
        let selected = match (&operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            (None, _) => only_one,
            (Some(_), None) => false,
        };
        selected && op.node.ty != OperationType::Query
    });
    if is_mutation {
        let error = ServerError::new(
            "mutations and subscriptions cannot be sent with GET; use POST",
            None,
        )
        .extend_with(|_, e| e.set("code", "BAD_USER_INPUT"));
        let body = axum::Json(serde_json::json!({ "errors": [error] }));
        return Some(
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "POST")],
                body,
            )
                .into_response(),
        );
    }
    None
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Reelgraph")
            .finish(),
    )
}

/// Liveness: the process serves HTTP. Unlike `/healthz` (readiness: the database answers), a
/// database outage does not fail it, so an orchestrator does not restart every replica for it.
async fn livez() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": "ok" })),
    )
        .into_response()
}

async fn healthz(State(state): State<HttpState>) -> Response {
    readiness(&state.app).await
}

/// How long readiness waits for the database: one that does not answer (a hung connection,
/// a frozen server) is not ready, and the probe must say so before its own timeout.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

async fn readiness(app: &AppState) -> Response {
    let answered = tokio::time::timeout(READINESS_TIMEOUT, app.db.execute_unprepared("SELECT 1"))
        .await
        .unwrap_or_else(|_| {
            Err(sea_orm::DbErr::Custom(format!(
                "no answer within {} s",
                READINESS_TIMEOUT.as_secs()
            )))
        });
    match answered {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ok" })),
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(
                    serde_json::json!({ "status": "unavailable", "database": "unreachable" }),
                ),
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    metrics_text(&state.app, &headers).await
}

/// Whether the request may read `/metrics`: always without `REELGRAPH_METRICS_TOKEN`, else
/// only with that bearer token (compared in constant time).
fn metrics_allowed(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(expected) = app
        .config
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return true;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim());
    // Hashing both sides first makes the comparison's time independent of the token's length.
    presented.is_some_and(|token| {
        use sha2::Digest;
        let (a, b) = (sha2::Sha256::digest(token), sha2::Sha256::digest(expected));
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    })
}

async fn metrics_text(app: &AppState, headers: &HeaderMap) -> Response {
    if !metrics_allowed(app, headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs the bearer token set in REELGRAPH_METRICS_TOKEN\n",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(&app.db).await,
    )
        .into_response()
}

/// `/metrics`, `/livez` and `/healthz` alone: what `reelgraph worker --listen` serves.
pub fn operations_router(app: AppState) -> Router {
    let metrics = app.metrics.clone();
    Router::new()
        .route(
            "/healthz",
            get(|State(app): State<AppState>| async move { readiness(&app).await }),
        )
        .route("/livez", get(livez))
        .route(
            "/metrics",
            get(
                |State(app): State<AppState>, headers: HeaderMap| async move {
                    metrics_text(&app, &headers).await
                },
            ),
        )
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track_http,
        ))
        .layer(trace_layer())
}

//! The HTTP surface: GraphQL over POST and GET, GraphiQL, health and metrics, and the routes
//! of GraphQL over WebSocket (the protocol itself lives in [`crate::ws`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_graphql::{
    BatchRequest, ErrorExtensions, ServerError, http::GraphiQLSource, parser::types::OperationType,
};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    handler::Handler,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use sea_orm::ConnectionTrait;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, Any, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    access::ClientInfo,
    auth,
    error::AppError,
    graphql::{AppSchema, documents::DocumentCache, inputs, loaders::new_loaders},
    state::AppState,
    storage,
    ws::{self, WsSettings},
};

/// Most operations one batched HTTP request may carry.
const MAX_BATCH: usize = 10;

/// How long one HTTP request may take.
const REQUEST_TIMEOUT_SECS: u64 = 60;

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    /// Timings and limits of GraphQL over WebSocket.
    pub ws: WsSettings,
    /// Parsed documents by query text.
    pub documents: Arc<DocumentCache>,
}

pub fn router(app: AppState, schema: AppSchema) -> Router {
    router_with(app, schema, WsSettings::default())
}

/// The router with explicit WebSocket settings (tests shorten the timeouts).
pub fn router_with(app: AppState, schema: AppSchema, ws: WsSettings) -> Router {
    let config = app.config.clone();
    let cors = if config.cors_origins.is_empty() {
        CorsLayer::new().allow_origin(Any)
    } else {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        CorsLayer::new().allow_origin(AllowOrigin::list(origins))
    }
    .allow_methods([Method::GET, Method::POST])
    .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
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
                .max_age(Duration::from_secs(3600)),
        );

    Router::new()
        .route("/graphql", get(graphql_get).post(graphql))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/graphiql", get(graphiql))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(HttpState {
            app,
            schema,
            ws,
            documents: Arc::new(DocumentCache::new()),
        })
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(REQUEST_TIMEOUT_SECS),
        ))
        .layer(axum::middleware::map_response(explain_bare_statuses))
        .layer(compression())
        .layer(cors)
        .merge(objects)
        .layer(CatchPanicLayer::custom(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                error_body(&AppError::Internal("panic".into())),
            )
                .into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
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
/// with a code in the body, like every other refusal.
async fn explain_bare_statuses(response: Response) -> Response {
    let err = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::REQUEST_TIMEOUT => AppError::Internal(
            format!("the request took longer than {REQUEST_TIMEOUT_SECS} seconds").into(),
        ),
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
    let mut error = async_graphql::Error::from(err.clone()).into_server_error(Default::default());
    error.locations.clear();
    axum::Json(serde_json::json!({ "errors": [error] }))
}

pub(crate) fn client_info(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    let forwarded = state
        .config
        .trust_proxy
        .then(|| {
            headers
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .split(',')
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
async fn graphql_get(State(state): State<HttpState>, request: Request) -> Response {
    if ws::is_upgrade_request(request.headers()) {
        ws::upgrade.call(request, state).await
    } else {
        graphql.call(request, state).await
    }
}

async fn graphql(
    State(state): State<HttpState>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: GraphQLBatchRequest<BadRequestBody>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let viewer = match auth::viewer_from_authorization(&state.app, authorization) {
        Ok(viewer) => Arc::new(viewer),
        Err(err) => return error_body(&err).into_response(),
    };
    let mut batch = request.into_inner();
    if let BatchRequest::Batch(requests) = &batch
        && requests.len() > MAX_BATCH
    {
        let err = AppError::bad_input(
            "",
            format!("a batch may hold at most {MAX_BATCH} operations"),
        );
        return error_body(&err).into_response();
    }
    let mut documents = Vec::new();
    for request in batch.iter_mut() {
        let parsed = state.documents.get(&request.query);
        let facts = parsed.as_ref().map(|p| p.facts());
        if let Some(error) = inputs::refusal(request, facts, state.app.config.max_query_depth) {
            return axum::Json(serde_json::json!({ "errors": [error] })).into_response();
        }
        if let Some(parsed) = &parsed {
            request.set_parsed_query(parsed.document.clone());
        }
        documents.push(parsed);
    }
    if method == Method::GET {
        for request in batch.iter_mut() {
            if let Some(refusal) = refuse_mutation_over_get(request) {
                return refusal;
            }
        }
    }
    let loaders = new_loaders(state.app.db.clone(), viewer.clone());
    let content_loaders = std::sync::Arc::new(crate::content::loaders::ContentLoaders::new(
        state.app.db.clone(),
    ));
    // Which columns the loaders may leave out depends on every operation of the batch,
    // since they share the loaders' caches.
    // Kept to repair answers with field errors (`graphql::nulls`).
    let executed: Vec<_> = batch
        .iter()
        .zip(&documents)
        .map(|(request, parsed)| (parsed.clone(), request.operation_name.clone()))
        .collect();
    let fields = Arc::new(crate::graphql::narrow::OperationFields::new(documents));
    let batch = batch
        .data(fields)
        .data(viewer)
        .data(loaders)
        .data(content_loaders)
        .data(client_info(&state.app, &headers, peer));
    let operations = batch.iter().count() as u64;
    let mut response = state.schema.execute_batch(batch).await;
    state.app.metrics.graphql_operations.inc_by(operations);
    let responses: &mut [async_graphql::Response] = match &mut response {
        async_graphql::BatchResponse::Single(one) => std::slice::from_mut(one),
        async_graphql::BatchResponse::Batch(many) => many,
    };
    for (response, (parsed, operation)) in responses.iter_mut().zip(&executed) {
        crate::graphql::errors::add_codes(response);
        if let Some(parsed) = parsed.as_ref().filter(|_| !response.errors.is_empty()) {
            crate::graphql::nulls::complete(response, &parsed.document, operation.as_deref());
        }
        for error in &response.errors {
            let code = error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .map(|v| v.to_string().trim_matches('"').to_owned())
                .unwrap_or_default();
            state
                .app
                .metrics
                .graphql_errors
                .get_or_create(&crate::metrics::CodeLabel { code })
                .inc();
        }
    }
    GraphQLResponse::from(response).into_response()
}

/// GraphQL over HTTP: GET may only read. A mutation sent by GET gets 405.
fn refuse_mutation_over_get(request: &mut async_graphql::Request) -> Option<Response> {
    let operation_name = request.operation_name.clone();
    let Ok(document) = request.parsed_query() else {
        return None; // the schema reports the syntax error with its position
    };
    let is_mutation = document.operations.iter().any(|(name, op)| {
        let selected = match (&operation_name, name) {
            (Some(wanted), Some(name)) => wanted.as_str() == name.as_str(),
            (None, _) => true,
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

async fn healthz(State(state): State<HttpState>) -> Response {
    match state.app.db.execute_unprepared("SELECT 1").await {
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

async fn metrics(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.app.metrics.render(),
    )
        .into_response()
}

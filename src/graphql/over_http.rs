//! GraphQL over HTTP (<https://graphql.github.io/graphql-over-http/draft/>): which media type
//! an answer has, which status goes with it, and what a `GET` query string holds.
//!
//! - A client that lists `application/graphql-response+json` in `Accept` (Apollo Client,
//!   urql and graphql-http send it first) gets that media type, and a request error — the
//!   document does not parse or validate, a required variable is missing, the operation was
//!   refused before it ran — comes with status 400, or 401 when the access token is not
//!   valid. Field errors keep 200: there is data.
//! - Every other client (`application/json`, `*/*`, no `Accept`) gets `application/json` and
//!   200 for every GraphQL answer, as the legacy behaviour the specification keeps.
//! - A request error has no `data` entry at all, in both (GraphQL spec, "Response Format").
//!
//! Checked with graphql-http's `auditServer` (see `tests/node/http-audit.mjs`).

use async_graphql::{Response, ServerError};
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::IntoResponse,
};

use crate::error::AppError;

/// The media type of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: request errors are 400.
    GraphqlResponse,
    /// `application/json`: always 200.
    Json,
}

impl MediaType {
    pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

    /// The one the client prefers (GraphQL over HTTP: the highest quality in `Accept`):
    /// `application/graphql-response+json` when `Accept` names it with a quality above 0 and
    /// no lower than `application/json`'s, `application/json` otherwise.
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let mut graphql: f32 = 0.0;
        let mut json: f32 = 0.0;
        let items = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','));
        for item in items {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or_default().trim();
            // Parameter names are case-insensitive: `Q=0.5` too.
            let quality = parts
                .filter_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("q").then_some(value)
                })
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case(Self::GRAPHQL_RESPONSE) {
                graphql = graphql.max(quality);
            } else if media.eq_ignore_ascii_case("application/json") {
                json = json.max(quality);
            }
        }
        if graphql > 0.0 && graphql >= json {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponse => Self::GRAPHQL_RESPONSE,
            Self::Json => "application/json",
        })
    }
}

/// How one operation of an HTTP request was answered.
pub enum Answer {
    /// A request error: refused before it ran, or it did not parse or validate. No `data`.
    RequestError(Vec<ServerError>),
    /// It ran: `data`, with field errors if any.
    Ran(Response),
}

impl Answer {
    /// Sorts an executed answer: async-graphql answers a document that does not parse or
    /// validate with `data: null` and errors that have no path, where every error of a field
    /// has the field's path.
    pub fn from_response(response: Response) -> Self {
        let request_error = response.data == async_graphql::Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|error| error.path.is_empty());
        if request_error {
            Self::RequestError(response.errors)
        } else {
            Self::Ran(response)
        }
    }
}

impl serde::Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::RequestError(errors) => {
                serde_json::json!({ "errors": errors }).serialize(serializer)
            }
            Self::Ran(response) => response.serialize(serializer),
        }
    }
}

/// The HTTP response for the answers of one request (`single`: not a batch, so exactly one
/// answer). A batch is always 200: its operations' answers differ.
pub fn respond(media: MediaType, single: bool, answers: Vec<Answer>) -> axum::response::Response {
    let (status, body) = match answers.as_slice() {
        [one] if single => {
            let status = match (media, one) {
                (MediaType::GraphqlResponse, Answer::RequestError(errors)) => {
                    let unauthenticated = errors
                        .iter()
                        .any(|error| super::errors::code_of(error) == Some("UNAUTHENTICATED"));
                    if unauthenticated {
                        StatusCode::UNAUTHORIZED
                    } else {
                        StatusCode::BAD_REQUEST
                    }
                }
                _ => StatusCode::OK,
            };
            (status, serde_json::to_string(one))
        }
        many => (StatusCode::OK, serde_json::to_string(many)),
    };
    // What an answer holds depends on the caller's token and on the media type it accepts
    // (its status and `Content-Type`): a cache in between (a CDN in front of GET and persisted
    // queries) must key on both.
    let vary = (
        header::VARY,
        HeaderValue::from_static("Accept, Authorization"),
    );
    match body {
        // RFC 9110: a 401 names the scheme it wants.
        Ok(body) if status == StatusCode::UNAUTHORIZED => (
            status,
            [
                (header::CONTENT_TYPE, media.header_value()),
                vary,
                (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            ],
            body,
        )
            .into_response(),
        Ok(body) => answered(status, media, body),
        // Answers are built from JSON values, so this is not expected; should it happen, the
        // client gets the plain internal error and the log the reason.
        Err(err) => {
            tracing::error!(error = %err, "an answer did not serialise");
            let body = serde_json::json!({ "errors": [{
                "message": "internal server error",
                "extensions": { "code": "INTERNAL" },
            }] });
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
        }
    }
}

/// The answer `body` (serialised), sent with `status` in `media`.
pub fn answered(
    status: StatusCode,
    media: MediaType,
    body: impl Into<axum::body::Body>,
) -> axum::response::Response {
    let vary = (
        header::VARY,
        HeaderValue::from_static("Accept, Authorization"),
    );
    (
        status,
        [(header::CONTENT_TYPE, media.header_value()), vary],
        body.into(),
    )
        .into_response()
}

/// The request a `GET /graphql` query string holds: `query`, `operationName`, and
/// `variables` and `extensions` as JSON text (Apollo's persisted queries send only
/// `extensions`). Read here rather than by async-graphql 7.2, whose reader looks for
/// `operation_name` and so never saw which operation of a document a GET asked for.
pub fn request_from_query_string(query: &str) -> Result<async_graphql::Request, AppError> {
    #[derive(serde::Deserialize)]
    struct Params {
        query: Option<String>,
        #[serde(rename = "operationName")]
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params = serde_urlencoded::from_str(query).map_err(|err| {
        AppError::bad_input(
            "",
            format!("the query string is not a GraphQL request: {err}"),
        )
    })?;
    let object = |name: &str, text: Option<String>| -> Result<serde_json::Value, AppError> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            return Ok(serde_json::Value::Null);
        };
        match serde_json::from_str(&text) {
            Ok(value @ (serde_json::Value::Object(_) | serde_json::Value::Null)) => Ok(value),
            Ok(_) => Err(AppError::bad_input(
                name,
                format!("`{name}` must be a JSON object"),
            )),
            Err(err) => Err(AppError::bad_input(
                name,
                format!("`{name}` is not valid JSON: {err}"),
            )),
        }
    };
    let request = serde_json::json!({
        "query": params.query.unwrap_or_default(),
        "operationName": params.operation_name.filter(|name| !name.is_empty()),
        "variables": object("variables", params.variables)?,
        "extensions": object("extensions", params.extensions)?,
    });
    serde_json::from_value(request)
        .map_err(|err| AppError::bad_input("", format!("not a GraphQL request: {err}")))
}

/// Whether a POST body's `Content-Type` is one GraphQL requests come in: JSON, or multipart
/// forms. A body without one (`fetch` sends a string body as `text/plain`), or a bare
/// document (`application/graphql`, which this server does not read), is refused with 415.
pub fn is_graphql_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = value.split(';').next().unwrap_or_default().trim();
    ["application/json", "multipart/form-data"]
        .iter()
        .any(|accepted| media.eq_ignore_ascii_case(accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> MediaType {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        MediaType::negotiate(&headers)
    }

    #[test]
    fn the_graphql_media_type_only_for_clients_that_name_it() {
        use MediaType::*;
        assert_eq!(accept("application/graphql-response+json"), GraphqlResponse);
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            GraphqlResponse
        );
        assert_eq!(
            accept("application/json;q=0.8, Application/GraphQL-Response+JSON ; q=0.9"),
            GraphqlResponse
        );
        // The higher quality wins; a tie goes to the GraphQL media type.
        assert_eq!(
            accept("application/json;q=0.9, application/graphql-response+json;q=0.8"),
            Json
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json;q=0.1"),
            Json
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json; Q=0.1"),
            Json
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            GraphqlResponse
        );
        assert_eq!(accept("application/graphql-response+json;q=0"), Json);
        assert_eq!(accept("application/json"), Json);
        assert_eq!(accept("*/*"), Json);
        assert_eq!(MediaType::negotiate(&HeaderMap::new()), Json);
    }

    #[test]
    fn request_errors_are_told_from_field_errors_by_their_path() {
        let mut parse = Response::from_errors(vec![ServerError::new("syntax", None)]);
        parse.data = async_graphql::Value::Null;
        assert!(matches!(
            Answer::from_response(parse),
            Answer::RequestError(_)
        ));
        let mut field = ServerError::new("nope", None);
        field.path = vec![async_graphql::PathSegment::Field("video".into())];
        let failed_root = Response::from_errors(vec![field]);
        assert!(matches!(Answer::from_response(failed_root), Answer::Ran(_)));
        let data = Response::new(
            async_graphql::Value::from_json(serde_json::json!({"a": 1})).expect("value"),
        );
        assert!(matches!(Answer::from_response(data), Answer::Ran(_)));
    }

    #[test]
    fn graphql_bodies_are_json_or_multipart() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(value).expect("header"),
            );
            is_graphql_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(!with("application/graphql"));
        assert!(with("multipart/form-data; boundary=x"));
        assert!(!with("text/plain;charset=UTF-8"));
        assert!(!with("application/x-www-form-urlencoded"));
        assert!(!is_graphql_content_type(&HeaderMap::new()));
    }
}

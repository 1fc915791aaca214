//! GraphQL over WebSocket: the upgrade at `GET /graphql/ws` (and `GET /graphql` with
//! `Upgrade: websocket`), subprotocol negotiation, and one task per socket that runs
//! operations with `Schema::execute_stream`.
//!
//! Both subprotocols are spoken to the letter of their specs (see [`protocol`]), with these
//! rules and choices:
//!
//! - Negotiation: `graphql-transport-ws` is preferred when a client offers both. A client that
//!   offers no subprotocol at all (curl, websocat, a bare `new WebSocket(url)`) gets
//!   `graphql-transport-ws` without the header being echoed; a client that offers only
//!   subprotocols we do not speak is refused with HTTP 400 naming the ones we do, since a
//!   browser would fail such a handshake anyway, with a less helpful message.
//! - Auth: the `connection_init` payload's `authorization` / `Authorization` / `token`
//!   (`Bearer ` optional), else the upgrade request's `Authorization` header; none means an
//!   anonymous viewer. A bad or expired token closes with `4403 Forbidden` (the legacy protocol
//!   first gets a `connection_error`). An open socket closes with `4403` when its access token
//!   expires, so clients reconnect with a fresh one.
//! - `connection_init` must come within [`WsSettings::init_timeout`] (`4408`), only once
//!   (`4429`), and before any operation (`4401`); an operation id that is still active is
//!   refused with `4409`. Messages that are not valid JSON or not a valid message close with
//!   `4400` and the reason; the legacy protocol answers them with `connection_error` and carries
//!   on, as its spec says. A message over the HTTP body limit (`max_body_bytes`) closes with
//!   `1009`.
//! - The server sends `ping` (legacy: `ka`) every [`WsSettings::keep_alive`] once acknowledged,
//!   and answers `ping` with `pong`.
//! - At most [`WsSettings::max_operations`] operations run at once per socket; one more gets
//!   an `error` message for its id (`RATE_LIMITED`) instead of closing the socket, so the
//!   operations already running are not lost.
//! - A parse or validation failure is an `error` message (with `extensions.code`) and no
//!   `complete`; resolver errors travel in `next` as in any GraphQL result.
//! - Server shutdown closes every socket with `1001 Going away`.

mod auth;
mod connection;
pub mod protocol;

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::http::{HttpState, client_info};

pub use protocol::Protocol;

/// Timings and limits of the WebSocket layer. The server uses [`WsSettings::default`]; tests
/// build a router with shorter timings through [`crate::http::router_with`].
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// How long a new socket may wait before sending `connection_init` (then `4408`).
    pub init_timeout: Duration,
    /// How often an acknowledged socket gets a `ping` (legacy: `ka`).
    pub keep_alive: Duration,
    /// Most operations one socket may run at once.
    pub max_operations: usize,
    /// How long one send may wait on a client that does not read before the socket is dropped.
    pub write_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            max_operations: 100,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Whether a request asks to become a WebSocket (`Upgrade: websocket`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The upgrade handler.
pub async fn upgrade(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = foreign_origin(&state.app.config.cors_origins, &headers) {
        return refused;
    }
    let offered: Vec<&str> = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .collect();
    let negotiated = !offered.is_empty();
    let protocol = if negotiated {
        match Protocol::ALL
            .into_iter()
            .find(|p| offered.contains(&p.name()))
        {
            Some(protocol) => protocol,
            None => return unsupported_protocol(),
        }
    } else {
        Protocol::TransportWs
    };
    // The connection refuses messages over `max_body_bytes` with `1009`; tungstenite's own
    // (higher) cap only guards memory, and would drop the socket without saying why.
    let hard_cap = state.app.config.max_body_bytes.saturating_mul(2);
    let mut ws = ws
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_failed_upgrade(|err| tracing::debug!(error = %err, "WebSocket upgrade failed"));
    if negotiated {
        ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    }
    let setup = connection::Setup {
        protocol,
        client: client_info(&state.app, &headers, peer),
        header_authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        state,
    };
    // Tracked, so that shutdown waits for every socket to send its 1001 close frame.
    let tracker = setup.state.app.connections.clone();
    ws.on_upgrade(move |socket| tracker.track_future(connection::serve(socket, setup)))
}

/// A browser's socket from a page of an origin `REELGRAPH_CORS_ORIGINS` does not list: 403.
/// Browsers apply no CORS to WebSockets, so this is where the list holds for them (a page of
/// any origin could otherwise open a socket carrying the credentials the browser attaches, as
/// a proxy that turns a cookie into `Authorization` would). Requests without `Origin` (not
/// from a browser), pages of the server's own origin (GraphiQL) and servers allowing any
/// origin (the default) are not refused.
fn foreign_origin(listed: &[String], headers: &HeaderMap) -> Option<Response> {
    let listed: Vec<&str> = listed
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if listed.is_empty() || listed.contains(&"*") {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    // The server's own pages (GraphiQL) are of the origin the socket is opened to.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_origin = |origin: &str| {
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        authority
            .zip(host)
            .is_some_and(|(a, h)| a.eq_ignore_ascii_case(h))
    };
    let allowed = origin.to_str().is_ok_and(|origin| {
        same_origin(origin) || listed.iter().any(|o| o.eq_ignore_ascii_case(origin))
    });
    if allowed {
        return None;
    }
    let body = serde_json::json!({ "errors": [{
        "message": "WebSocket connections from this origin are not allowed (REELGRAPH_CORS_ORIGINS)",
        "extensions": { "code": "FORBIDDEN" },
    }] });
    Some((StatusCode::FORBIDDEN, axum::Json(body)).into_response())
}

fn unsupported_protocol() -> Response {
    let supported = Protocol::ALL.map(Protocol::name).join(", ");
    let body = serde_json::json!({ "errors": [{
        "message": format!("unsupported WebSocket subprotocol; use one of: {supported}"),
        "extensions": { "code": "BAD_USER_INPUT" },
    }] });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

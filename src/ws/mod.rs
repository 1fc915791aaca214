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
//!   anonymous viewer. A bad or expired token closes with `4403`, the reason saying why
//!   (`Forbidden: access token expired`; the legacy protocol first gets a `connection_error`). An open socket closes with `4403` when its access token
//!   expires, so clients reconnect with a fresh one.
//! - `connection_init` must come within [`WsSettings::init_timeout`] (`4408`), only once
//!   (`4429`), and before any operation (`4401`); an operation id that is still active is
//!   refused with `4409` (graphql-transport-ws). Messages that are not valid JSON or not a valid message close with
//!   `4400` and the reason; the legacy protocol answers them with `connection_error` and carries
//!   on, as its spec says. A message over the HTTP body limit (`max_body_bytes`) closes with
//!   `1009`.
//! - The server sends `ping` (legacy: `ka`) every [`WsSettings::keep_alive`] once acknowledged,
//!   and answers `ping` with `pong`.
//! - At most [`WsSettings::max_operations`] operations run at once per socket; one more gets
//!   an `error` message for its id (`RATE_LIMITED`) instead of closing the socket, so the
//!   operations already running are not lost. Sockets are limited per account and per address
//!   ([`sockets`]).
//! - The legacy protocol's `start` under the id of a running operation replaces it, as
//!   subscriptions-transport-ws's own server does.
//! - A parse or validation failure is an `error` message (with `extensions.code`) and no
//!   `complete`; resolver errors travel in `next` as in any GraphQL result.
//! - Server shutdown closes every socket with `1001 Going away`.

mod auth;
mod connection;
pub mod protocol;
pub mod sockets;

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
    /// Most sockets one account holds open on this server (one more is closed with `1013 Try
    /// Again Later` at its `connection_init`).
    pub max_sockets_per_account: usize,
    /// Most sockets one address (an IPv6 /64) holds open on this server, signed in or not (one
    /// more is refused at the upgrade: HTTP 429).
    pub max_sockets_per_address: usize,
}

/// [`WsSettings::max_sockets_per_account`] unless `REELGRAPH_WS_MAX_SOCKETS_PER_ACCOUNT` says.
pub const DEFAULT_MAX_SOCKETS_PER_ACCOUNT: usize = 32;
/// [`WsSettings::max_sockets_per_address`] unless `REELGRAPH_WS_MAX_SOCKETS_PER_ADDRESS` says.
pub const DEFAULT_MAX_SOCKETS_PER_ADDRESS: usize = 256;

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(15),
            max_operations: 100,
            write_timeout: Duration::from_secs(30),
            max_sockets_per_account: DEFAULT_MAX_SOCKETS_PER_ACCOUNT,
            max_sockets_per_address: DEFAULT_MAX_SOCKETS_PER_ADDRESS,
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
    uri: axum::http::Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = foreign_origin(&state.app.config, &headers, &uri) {
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
    let client = client_info(&state.app, &headers, peer);
    let address = sockets::Holder::Address(crate::auth::throttle::client_key(client.ip.as_deref()));
    let Some(address_slot) = state
        .sockets
        .take(address, state.ws.max_sockets_per_address)
    else {
        return too_many_sockets();
    };
    let setup = connection::Setup {
        protocol,
        client,
        _address: address_slot,
        // A header that is not text is a bad credential (as over HTTP), not an absent one:
        // read loosely, it fails verification and closes the socket with 4403.
        header_authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        state,
    };
    // Tracked, so that shutdown waits for every socket to send its 1001 close frame.
    let tracker = setup.state.app.connections.clone();
    ws.on_upgrade(move |socket| tracker.track_future(connection::serve(socket, setup)))
}

/// A browser's socket from a page of an origin `REELGRAPH_CORS_ORIGINS` does not list: 403.
/// Browsers apply no CORS to WebSockets, so this is where the list holds for them (a page of
/// any origin could otherwise open a socket carrying the credentials the browser attaches, as
/// a proxy that turns a cookie into `Authorization` would). Not refused: requests without
/// `Origin` (not from a browser), servers allowing any origin (the default), and the server's
/// own origin (GraphiQL's page; React Native sends the socket's own origin): `PUBLIC_URL`'s,
/// or the host the socket was opened to (`Host`, or HTTP/2's `:authority`), default ports
/// aside.
fn foreign_origin(
    config: &crate::config::Config,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Option<Response> {
    let listed = config.listed_origins();
    if listed.is_empty() || listed.contains(&"*") {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().ok().and_then(normal_origin);
    let allowed = origin.as_ref().is_some_and(|(scheme, authority)| {
        let own = |other: &str| {
            normal_origin(&format!("{scheme}://{other}")).is_some_and(|(_, a)| &a == authority)
        };
        let public = config
            .public_url
            .as_deref()
            .and_then(normal_origin)
            .is_some_and(|(s, a)| (&s, &a) == (scheme, authority));
        public
            || headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(own)
            || uri.authority().is_some_and(|a| own(a.as_str()))
            || listed
                .iter()
                .filter_map(|o| normal_origin(o))
                .any(|(s, a)| (&s, &a) == (scheme, authority))
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

/// The scheme and `host[:port]` of a URL or origin, lower-cased, without the scheme's default
/// port or any path: `HTTPS://App.example.com:443/x` → (`https`, `app.example.com`).
fn normal_origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "https" | "wss" => ":443",
        "http" | "ws" => ":80",
        _ => "",
    };
    let authority = match authority.strip_suffix(default) {
        Some(bare) if !default.is_empty() => bare.to_owned(),
        _ => authority,
    };
    (!authority.is_empty()).then_some((scheme, authority))
}

/// The upgrade of one socket more than an address may hold ([`WsSettings::max_sockets_per_address`]).
fn too_many_sockets() -> Response {
    let body = serde_json::json!({ "errors": [{
        "message": "too many WebSocket connections are open from this address: close some, \
                    or run several operations on one",
        "extensions": { "code": "RATE_LIMITED" },
    }] });
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

fn unsupported_protocol() -> Response {
    let supported = Protocol::ALL.map(Protocol::name).join(", ");
    let body = serde_json::json!({ "errors": [{
        "message": format!("unsupported WebSocket subprotocol; use one of: {supported}"),
        "extensions": { "code": "BAD_USER_INPUT" },
    }] });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn origins_compare_without_case_default_ports_or_paths() {
        let origin = |url: &str| super::normal_origin(url);
        let pair = |scheme: &str, authority: &str| Some((scheme.to_owned(), authority.to_owned()));
        assert_eq!(
            origin("HTTPS://App.example.com:443/x?y"),
            pair("https", "app.example.com")
        );
        assert_eq!(
            origin("http://app.example.com:80"),
            pair("http", "app.example.com")
        );
        assert_eq!(
            origin("http://app.example.com:443"),
            pair("http", "app.example.com:443")
        );
        assert_eq!(origin("http://[::1]:8080"), pair("http", "[::1]:8080"));
        assert_eq!(origin("null"), None);
        assert_eq!(origin("https://"), None);
    }
}

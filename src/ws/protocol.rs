//! The two wire protocols: what a client may send (parsed and checked here, so the connection
//! only ever sees well-formed messages) and what the server sends back.
//!
//! - `graphql-transport-ws` (<https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>):
//!   `connection_init`, `ping`, `pong`, `subscribe`, `complete` from the client; the server
//!   answers `connection_ack`, `ping`, `pong`, `next`, `error`, `complete`.
//! - legacy `graphql-ws` (<https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md>):
//!   `connection_init`, `start`, `stop`, `connection_terminate` from the client; the server
//!   answers `connection_ack`, `connection_error`, `ka`, `data`, `error`, `complete`.

use async_graphql::{Response, ServerError};
use serde_json::{Map, Value, json};

/// The subprotocol a socket speaks, fixed at the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`, spoken by the `graphql-ws` npm client (GraphiQL, urql, Apollo
    /// Client's `GraphQLWsLink`, …).
    TransportWs,
    /// `graphql-ws`, the legacy subscriptions-transport-ws protocol (Apollo's old
    /// `WebSocketLink`, Apollo iOS/Kotlin in their legacy mode).
    Legacy,
}

impl Protocol {
    /// In order of preference, when a client offers both.
    pub const ALL: [Protocol; 2] = [Protocol::TransportWs, Protocol::Legacy];

    /// The `Sec-WebSocket-Protocol` token.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A well-formed message from the client.
#[derive(Debug)]
pub enum ClientMessage {
    ConnectionInit {
        payload: Option<Map<String, Value>>,
    },
    /// `graphql-transport-ws` only.
    Ping {
        payload: Option<Value>,
    },
    /// `graphql-transport-ws` only.
    Pong,
    /// `subscribe`, or the legacy `start`.
    Subscribe {
        id: String,
        request: Box<async_graphql::Request>,
    },
    /// Legacy only: a `start` whose id is usable but whose payload is not. It fails that
    /// operation (an `error` under its id), as subscriptions-transport-ws's own server does: a
    /// `connection_error` names no operation, and the client's would wait for an answer forever.
    Refused {
        id: String,
        reason: String,
    },
    /// `complete` from the client, or the legacy `stop`.
    Complete {
        id: String,
    },
    /// Legacy only: the client is leaving.
    Terminate,
}

/// Why a message was refused, in words for the client: the `4400` close reason, or the
/// legacy `connection_error` message.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

fn invalid(reason: impl Into<String>) -> Invalid {
    Invalid(reason.into())
}

/// Parses and checks one text message. Never panics, whatever the input.
pub fn parse(protocol: Protocol, text: &str) -> Result<ClientMessage, Invalid> {
    let value: Value =
        serde_json::from_str(text).map_err(|_| invalid("Invalid message received: not JSON"))?;
    let Value::Object(mut message) = value else {
        return Err(invalid("Invalid message received: not a JSON object"));
    };
    let kind = match message.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(invalid(
                "Message expects the 'type' property to be a string",
            ));
        }
    };
    match (protocol, kind.as_str()) {
        (_, "connection_init") => Ok(ClientMessage::ConnectionInit {
            payload: optional_object(&kind, "payload", message.remove("payload"))?,
        }),
        (Protocol::TransportWs, "ping") => {
            let payload = optional_object(&kind, "payload", message.remove("payload"))?;
            Ok(ClientMessage::Ping {
                payload: payload.map(Value::Object),
            })
        }
        (Protocol::TransportWs, "pong") => {
            optional_object(&kind, "payload", message.remove("payload"))?;
            Ok(ClientMessage::Pong)
        }
        (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => {
            let id = required_id(&kind, message.remove("id"))?;
            match operation(&kind, message.remove("payload")) {
                Ok(request) => Ok(ClientMessage::Subscribe {
                    id,
                    request: Box::new(request),
                }),
                Err(Invalid(reason)) if protocol == Protocol::Legacy => {
                    Ok(ClientMessage::Refused { id, reason })
                }
                Err(invalid) => Err(invalid),
            }
        }
        (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
            Ok(ClientMessage::Complete {
                id: required_id(&kind, message.remove("id"))?,
            })
        }
        (Protocol::Legacy, "connection_terminate") => Ok(ClientMessage::Terminate),
        (Protocol::TransportWs, "connection_ack" | "next" | "error")
        | (
            Protocol::Legacy,
            "connection_ack" | "connection_error" | "ka" | "data" | "error" | "complete",
        ) => Err(invalid(format!(
            "Unexpected message of type \"{kind}\" from a client"
        ))),
        _ => Err(invalid(format!(
            "Invalid message 'type' property \"{}\"",
            kind.chars().take(40).collect::<String>()
        ))),
    }
}

fn optional_object(
    kind: &str,
    field: &str,
    value: Option<Value>,
) -> Result<Option<Map<String, Value>>, Invalid> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(invalid(format!(
            "\"{kind}\" message expects the '{field}' property to be an object or nullish or missing"
        ))),
    }
}

/// The longest operation id: ids are kept while their operation runs.
const MAX_ID_BYTES: usize = 128;

fn required_id(kind: &str, value: Option<Value>) -> Result<String, Invalid> {
    match value {
        Some(Value::String(id)) if id.len() > MAX_ID_BYTES => Err(invalid(format!(
            "\"{kind}\" message's 'id' is longer than {MAX_ID_BYTES} bytes"
        ))),
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        Some(Value::String(_)) => Err(invalid(format!(
            "\"{kind}\" message requires a non-empty 'id' property"
        ))),
        _ => Err(invalid(format!(
            "\"{kind}\" message expects the 'id' property to be a string"
        ))),
    }
}

/// The operation of a `subscribe` / `start`: `query` (required, unless `extensions` names a
/// persisted query: [`crate::graphql::persisted`]), `variables`, `operationName` and
/// `extensions`.
fn operation(kind: &str, payload: Option<Value>) -> Result<async_graphql::Request, Invalid> {
    let Some(Value::Object(mut payload)) = payload else {
        return Err(invalid(format!(
            "\"{kind}\" message expects the 'payload' property to be an object"
        )));
    };
    let by_hash = payload
        .get("extensions")
        .and_then(|extensions| extensions.get("persistedQuery"))
        .is_some();
    let query = match payload.remove("query") {
        Some(Value::String(query)) => query,
        None | Some(Value::Null) if by_hash => String::new(),
        _ => {
            return Err(invalid(format!(
                "\"{kind}\" message payload expects the 'query' property to be a string"
            )));
        }
    };
    let mut request = async_graphql::Request::new(query);
    if let Some(variables) = optional_object(kind, "variables", payload.remove("variables"))? {
        request = request.variables(async_graphql::Variables::from_json(Value::Object(
            variables,
        )));
    }
    match payload.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => {
            return Err(invalid(format!(
                "\"{kind}\" message payload expects the 'operationName' property to be a string or nullish or missing"
            )));
        }
    }
    if let Some(extensions) = optional_object(kind, "extensions", payload.remove("extensions"))? {
        for (key, value) in extensions {
            // A JSON value always converts; should one not, the extension is simply ignored.
            if let Ok(value) = async_graphql::Value::from_json(value) {
                request.extensions.0.insert(key, value);
            }
        }
    }
    Ok(request)
}

/// Messages the server sends, as JSON text.
pub mod server {
    use super::*;

    pub fn connection_ack() -> String {
        json!({ "type": "connection_ack" }).to_string()
    }

    /// Legacy keep-alive.
    pub fn keep_alive() -> String {
        json!({ "type": "ka" }).to_string()
    }

    pub fn ping() -> String {
        json!({ "type": "ping" }).to_string()
    }

    /// Echoes the ping's payload; no payload stays no payload.
    pub fn pong(payload: Option<Value>) -> String {
        match payload {
            Some(payload) => json!({ "type": "pong", "payload": payload }),
            None => json!({ "type": "pong" }),
        }
        .to_string()
    }

    /// One result: `next` (or the legacy `data`).
    pub fn next(protocol: Protocol, id: &str, response: &Response) -> String {
        let kind = match protocol {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        };
        // Written straight from the response: through a `serde_json::Value` its objects came
        // out sorted by key, not in the query's order.
        #[derive(serde::Serialize)]
        struct Next<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            payload: &'a Response,
        }
        serde_json::to_string(&Next {
            id,
            kind,
            payload: response,
        })
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "serialising a GraphQL result for a WebSocket");
            json!({ "id": id, "type": kind, "payload": { "errors": [{
                "message": "internal server error", "extensions": { "code": "INTERNAL" } }] } })
            .to_string()
        })
    }

    /// The operation failed before producing any result. `graphql-transport-ws` wants the
    /// GraphQL errors array; the legacy protocol an error object, so that one carries the
    /// first error with every error under `errors` (which subscriptions-transport-ws reads).
    pub fn error(protocol: Protocol, id: &str, errors: &[ServerError]) -> String {
        let all: Vec<Value> = errors.iter().map(to_json).collect();
        let payload = match protocol {
            Protocol::TransportWs => Value::Array(all),
            Protocol::Legacy => {
                let mut first = match all.first() {
                    Some(Value::Object(first)) => first.clone(),
                    _ => Map::new(),
                };
                first.insert("errors".to_owned(), Value::Array(all));
                Value::Object(first)
            }
        };
        json!({ "id": id, "type": "error", "payload": payload }).to_string()
    }

    pub fn complete(id: &str) -> String {
        json!({ "id": id, "type": "complete" }).to_string()
    }

    /// Legacy: the connection (not one operation) failed.
    pub fn connection_error(message: &str, code: &str) -> String {
        json!({
            "type": "connection_error",
            "payload": { "message": message, "extensions": { "code": code } },
        })
        .to_string()
    }

    fn to_json<T: serde::Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap_or_else(|err| {
            tracing::error!(error = %err, "serialising a GraphQL result for a WebSocket");
            json!({ "errors": [{ "message": "internal server error", "extensions": { "code": "INTERNAL" } }] })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(protocol: Protocol, text: &str) -> String {
        match parse(protocol, text) {
            Err(Invalid(reason)) => reason,
            Ok(message) => panic!("{text} was accepted as {message:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let t = Protocol::TransportWs;
        assert!(reason(t, "{").contains("not JSON"));
        assert!(reason(t, "[]").contains("not a JSON object"));
        assert!(reason(t, r#"{"id":"1"}"#).contains("'type'"));
        assert!(reason(t, r#"{"type":"subscribe","payload":{"query":"{a}"}}"#).contains("'id'"));
        assert!(
            reason(
                t,
                r#"{"type":"subscribe","id":"","payload":{"query":"{a}"}}"#
            )
            .contains("non-empty")
        );
        assert!(reason(t, r#"{"type":"subscribe","id":"1","payload":{}}"#).contains("'query'"));
        assert!(reason(t, r#"{"type":"subscribe","id":"1"}"#).contains("'payload'"));
        assert!(
            reason(
                t,
                r#"{"type":"subscribe","id":"1","payload":{"query":"{a}","variables":[]}}"#
            )
            .contains("'variables'")
        );
        assert!(reason(t, r#"{"type":"ping","payload":"x"}"#).contains("'payload'"));
        assert!(reason(t, r#"{"type":"next","id":"1","payload":{}}"#).contains("Unexpected"));
        assert!(
            reason(t, r#"{"type":"start","id":"1","payload":{"query":"{a}"}}"#)
                .contains("\"start\"")
        );
        assert!(reason(Protocol::Legacy, r#"{"type":"subscribe","id":"1"}"#).contains("type"));
    }

    #[test]
    fn well_formed_operations_carry_variables_and_operation_name() {
        let message = parse(
            Protocol::Legacy,
            r#"{"type":"start","id":"7","payload":{"query":"query Q($a: Int) { a }","variables":{"a":1},"operationName":"Q","extensions":{"x":true}}}"#,
        );
        let Ok(ClientMessage::Subscribe { id, request }) = message else {
            panic!("not a subscribe: {message:?}");
        };
        assert_eq!(id, "7");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.to_string(), "{a: 1}");
        assert!(request.extensions.0.contains_key("x"));
    }

    #[test]
    fn a_persisted_query_may_leave_the_text_out() {
        let message = parse(
            Protocol::TransportWs,
            r#"{"type":"subscribe","id":"1","payload":{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ab"}}}}"#,
        );
        let Ok(ClientMessage::Subscribe { request, .. }) = message else {
            panic!("not a subscribe: {message:?}");
        };
        assert_eq!(request.query, "");
        assert!(request.extensions.0.contains_key("persistedQuery"));
        // Without one, the text is still required.
        let t = Protocol::TransportWs;
        let without = r#"{"type":"subscribe","id":"1","payload":{"extensions":{"x":1}}}"#;
        assert!(reason(t, without).contains("'query'"));
    }
}

//! Automatic persisted queries, Apollo's protocol (APQ), on HTTP and WebSocket.
//!
//! A client sends `extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}` and
//! leaves the query text out. When the server knows the hash it runs the text it stored for
//! it; when it does not, it answers the error `PersistedQueryNotFound` (code `NOT_FOUND`), and
//! the client sends the hash again with the text, which the server checks against the hash,
//! stores and runs. Apollo Client's `PersistedQueryLink` recognises the error by that message
//! and retries on its own. With `useGETForHashedQueries`, repeat queries become short `GET`
//! URLs.
//!
//! Texts are kept per process, in memory and bounded: a process that never saw a hash (a new
//! replica, a restart) answers `PersistedQueryNotFound` once, and the client sends the text.

use std::sync::Arc;

use async_graphql::{ErrorExtensions, ServerError};
use async_graphql_value::ConstValue;
use quick_cache::{Weighter, sync::Cache};
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// The message clients recognise (Apollo Client compares it verbatim).
pub const NOT_FOUND_MESSAGE: &str = "PersistedQueryNotFound";

/// Weighs a stored text by its length.
#[derive(Clone)]
struct ByLength;

impl Weighter<[u8; 32], Arc<str>> for ByLength {
    fn weight(&self, _: &[u8; 32], text: &Arc<str>) -> u64 {
        64 + text.len() as u64
    }
}

/// Query texts by their SHA-256.
pub struct PersistedQueries {
    texts: Cache<[u8; 32], Arc<str>, ByLength>,
}

impl PersistedQueries {
    /// At most 16 MiB of query text: thousands of operations, more than an application has.
    const WEIGHT: u64 = 16 << 20;
    /// Longer texts are run but not stored (the body limit caps them).
    const MAX_TEXT: usize = 64 << 10;

    pub fn new() -> Self {
        Self {
            texts: Cache::with_weighter(4096, Self::WEIGHT, ByLength),
        }
    }

    /// Fills in `request.query` when the request names a stored query by its hash only, and
    /// stores the text when the request brings the text with its hash. Requests without
    /// `extensions.persistedQuery` pass unchanged.
    pub fn resolve(&self, request: &mut async_graphql::Request) -> Result<(), ServerError> {
        let Some(persisted) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let hash = requested_hash(persisted).map_err(AppError::into_request_error)?;
        if request.query.is_empty() {
            let text = self.texts.get(&hash).ok_or_else(not_found)?;
            request.query = text.to_string();
            return Ok(());
        }
        let actual: [u8; 32] = Sha256::digest(request.query.as_bytes()).into();
        if actual != hash {
            return Err(AppError::bad_input(
                "extensions.persistedQuery.sha256Hash",
                "sha256Hash is not the SHA-256 of the query text",
            )
            .into_request_error());
        }
        if request.query.len() <= Self::MAX_TEXT {
            self.texts.insert(hash, Arc::from(request.query.as_str()));
        }
        Ok(())
    }
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self::new()
    }
}

/// The hash `extensions.persistedQuery` names, checked: version 1 and 64 hex digits.
fn requested_hash(persisted: &ConstValue) -> Result<[u8; 32], AppError> {
    const FIELD: &str = "extensions.persistedQuery";
    let ConstValue::Object(fields) = persisted else {
        return Err(AppError::bad_input(
            FIELD,
            "persistedQuery must be an object with `version` and `sha256Hash`",
        ));
    };
    match fields.get("version") {
        Some(ConstValue::Number(n)) if n.as_u64() == Some(1) => {}
        _ => {
            return Err(AppError::bad_input(
                format!("{FIELD}.version"),
                "only persisted query version 1 is supported",
            ));
        }
    }
    let mut hash = [0u8; 32];
    match fields.get("sha256Hash") {
        Some(ConstValue::String(hex_text))
            if hex::decode_to_slice(hex_text.to_ascii_lowercase(), &mut hash).is_ok() =>
        {
            Ok(hash)
        }
        _ => Err(AppError::bad_input(
            format!("{FIELD}.sha256Hash"),
            "sha256Hash must be 64 hexadecimal digits",
        )),
    }
}

fn not_found() -> ServerError {
    crate::error::request_error(
        async_graphql::Error::new(NOT_FOUND_MESSAGE).extend_with(|_, e| e.set("code", "NOT_FOUND")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, persisted: serde_json::Value) -> async_graphql::Request {
        serde_json::from_value(serde_json::json!({
            "query": query,
            "extensions": { "persistedQuery": persisted },
        }))
        .expect("a request")
    }

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    fn code(err: &ServerError) -> String {
        let extensions = err.extensions.as_ref().expect("extensions");
        extensions.get("code").expect("code").to_string()
    }

    #[test]
    fn a_hash_is_run_once_its_text_was_sent_with_it() {
        let store = PersistedQueries::new();
        let text = "{ me { id } }";
        let by_hash = || {
            request(
                "",
                serde_json::json!({"version": 1, "sha256Hash": sha(text)}),
            )
        };

        let err = store.resolve(&mut by_hash()).expect_err("unknown hash");
        assert_eq!(err.message, NOT_FOUND_MESSAGE);
        assert_eq!(code(&err), "\"NOT_FOUND\"");

        let mut with_text = request(
            text,
            serde_json::json!({"version": 1, "sha256Hash": sha(text)}),
        );
        store.resolve(&mut with_text).expect("hash matches");
        assert_eq!(with_text.query, text);

        let mut again = by_hash();
        store.resolve(&mut again).expect("known hash");
        assert_eq!(again.query, text);
        // Upper-case hex names the same hash.
        let mut upper = request(
            "",
            serde_json::json!({"version": 1, "sha256Hash": sha(text).to_uppercase()}),
        );
        store.resolve(&mut upper).expect("known hash");
        assert_eq!(upper.query, text);
    }

    #[test]
    fn a_text_that_does_not_match_its_hash_is_refused_and_not_stored() {
        let store = PersistedQueries::new();
        let hash = sha("{ me { id } }");
        let mut lying = request(
            "{ me { email } }",
            serde_json::json!({"version": 1, "sha256Hash": hash}),
        );
        let err = store.resolve(&mut lying).expect_err("mismatch");
        assert_eq!(code(&err), "\"BAD_USER_INPUT\"");
        let extensions = err.extensions.as_ref().expect("extensions");
        assert_eq!(
            extensions.get("field").expect("field").to_string(),
            "\"extensions.persistedQuery.sha256Hash\""
        );
        let err = store
            .resolve(&mut request(
                "",
                serde_json::json!({"version": 1, "sha256Hash": hash}),
            ))
            .expect_err("still unknown");
        assert_eq!(err.message, NOT_FOUND_MESSAGE);
    }

    #[test]
    fn malformed_persisted_query_extensions_name_the_field() {
        let store = PersistedQueries::new();
        let cases = [
            (serde_json::json!("abc"), "extensions.persistedQuery"),
            (
                serde_json::json!({"version": 2, "sha256Hash": sha("x")}),
                "extensions.persistedQuery.version",
            ),
            (
                serde_json::json!({"sha256Hash": sha("x")}),
                "extensions.persistedQuery.version",
            ),
            (
                serde_json::json!({"version": 1, "sha256Hash": "abc"}),
                "extensions.persistedQuery.sha256Hash",
            ),
            (
                serde_json::json!({"version": 1, "sha256Hash": "zz".repeat(32)}),
                "extensions.persistedQuery.sha256Hash",
            ),
            (
                serde_json::json!({"version": 1}),
                "extensions.persistedQuery.sha256Hash",
            ),
        ];
        for (persisted, field) in cases {
            let err = store
                .resolve(&mut request("", persisted.clone()))
                .expect_err("malformed");
            let extensions = err.extensions.as_ref().expect("extensions");
            assert_eq!(
                extensions.get("field").expect("field").to_string(),
                format!("\"{field}\""),
                "{persisted}"
            );
        }
        // No persistedQuery: nothing to do.
        let mut plain = async_graphql::Request::new("{ me { id } }");
        store.resolve(&mut plain).expect("plain request");
        assert_eq!(plain.query, "{ me { id } }");
    }
}

//! Who is on the other end of a socket: the token of `connection_init`, or else the upgrade
//! request's `Authorization` header, and when that token runs out.

use serde_json::{Map, Value};

use crate::{access::AuthUser, auth::tokens::TokenKeys, error::AppError};

/// Payload keys that may carry the access token, in the order they are looked up.
const TOKEN_KEYS: [&str; 3] = ["authorization", "Authorization", "token"];

/// A verified caller.
#[derive(Debug)]
pub struct Caller {
    pub user: AuthUser,
    /// When the access token stops being accepted ([`TokenKeys::valid_until`]), in unix
    /// seconds.
    pub expires_at: i64,
}

/// The caller of a socket, `None` when anonymous. A token in the payload (`Bearer ` optional)
/// wins over the header: the first of [`TOKEN_KEYS`] that holds one, a `null` or blank key
/// counting as absent (clients send `authorization: token ? … : ""` beside `token`). A token
/// that is present but bad is an error, never a silent fall-back to anonymous.
pub fn authenticate(
    tokens: &TokenKeys,
    payload: Option<&Map<String, Value>>,
    header: Option<&str>,
) -> Result<Option<Caller>, AppError> {
    let absent = |value: &Value| match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    };
    let from_payload = payload.and_then(|p| {
        TOKEN_KEYS
            .into_iter()
            .filter_map(|key| p.get(key))
            .find(|value| !absent(value))
    });
    let raw = match from_payload {
        Some(Value::String(s)) => Some(s.as_str()),
        None => header,
        Some(_) => return Err(AppError::unauthenticated("invalid access token")),
    };
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let token = match raw.split_at_checked(7) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer ") => rest.trim(),
        _ => raw,
    };
    let claims = tokens.verify(token)?;
    let expires_at = tokens.valid_until(&claims);
    Ok(Some(Caller {
        user: AuthUser {
            id: claims.sub,
            role: claims.role,
            session_id: claims.sid,
        },
        expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use entity::UserRole;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"websocket-test-secret-websocket-test", 900)
    }

    fn token_of(keys: &TokenKeys, user: Uuid) -> String {
        keys.issue(user, UserRole::Viewer, Uuid::now_v7())
            .map_err(|e| e.public_message())
            .expect("token")
            .0
    }

    fn caller(payload: Value, header: Option<&str>) -> Result<Option<Uuid>, String> {
        let payload = payload.as_object().cloned();
        authenticate(&keys(), payload.as_ref(), header)
            .map(|c| c.map(|c| c.user.id))
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn the_payload_token_wins_and_bearer_is_optional_in_any_case() {
        let keys = keys();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b) = (token_of(&keys, ada), token_of(&keys, bob));
        let header = format!("Bearer {b}");
        let header = Some(header.as_str());
        assert_eq!(
            caller(json!({ "authorization": format!("Bearer {a}") }), header),
            Ok(Some(ada))
        );
        assert_eq!(
            caller(json!({ "Authorization": format!("bearer {a}") }), header),
            Ok(Some(ada))
        );
        assert_eq!(caller(json!({ "token": a }), header), Ok(Some(ada)));
        assert_eq!(caller(json!({ "token": "" }), header), Ok(Some(bob)));
        // A blank or null key before the one holding the token is passed over.
        for blank in [json!(""), json!(" "), Value::Null] {
            let payload = json!({ "authorization": blank, "token": a });
            assert_eq!(caller(payload.clone(), header), Ok(Some(ada)), "{payload}");
            assert_eq!(caller(payload, None), Ok(Some(ada)));
        }
        assert_eq!(caller(json!({}), header), Ok(Some(bob)));
        assert_eq!(caller(Value::Null, None), Ok(None));
    }

    #[test]
    fn a_bad_token_is_an_error_not_an_anonymous_caller() {
        assert_eq!(
            caller(json!({ "token": "forged" }), None),
            Err("UNAUTHENTICATED".into())
        );
        assert_eq!(
            caller(json!({ "token": 42 }), None),
            Err("UNAUTHENTICATED".into())
        );
        // A blank key does not hide a bad token after it.
        assert_eq!(
            caller(json!({ "authorization": "", "token": "forged" }), None),
            Err("UNAUTHENTICATED".into())
        );
        // As on HTTP: a scheme without a token is a bad token.
        assert_eq!(
            caller(json!({}), Some("Bearer ")),
            Err("UNAUTHENTICATED".into())
        );
        assert_eq!(
            caller(json!({}), Some("Bearer x")),
            Err("UNAUTHENTICATED".into())
        );
    }
}

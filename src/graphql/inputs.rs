//! Checks on a request's input that no single argument type can make: text holding a NUL
//! character (U+0000). PostgreSQL cannot store one in any text column (it answered
//! `invalid byte sequence for encoding "UTF8": 0x00`, an internal error, for any argument
//! that reached a statement, as a schema fuzz found), while SQLite would store it; so every
//! such request is refused up front, on both databases, naming where the character was.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql_value::{ConstValue, Name, Value};

use crate::error::AppError;

/// The refusal for a request whose variables or literal arguments hold a NUL character.
/// `literal` is what [`nul_literal`] found in the request's parsed document; `None` with a
/// query text that was not parsed here means the text is checked for an escaped NUL.
pub fn check_text(
    request: &async_graphql::Request,
    literal: Option<Option<&str>>,
) -> Result<(), AppError> {
    for (name, value) in request.variables.iter() {
        let mut path = name.to_string();
        if nul_in_const(value, &mut path) {
            return Err(refusal(path));
        }
    }
    let literal = match literal {
        Some(found) => found.map(str::to_owned),
        None if request.query.contains("\\u0000") => {
            match async_graphql::parser::parse_query(&request.query) {
                Ok(document) => nul_literal(&document),
                Err(_) => None, // the schema reports the syntax error
            }
        }
        None => None,
    };
    match literal {
        Some(path) => Err(refusal(path)),
        None => Ok(()),
    }
}

fn refusal(path: String) -> AppError {
    AppError::bad_input(path, "text may not contain NUL (U+0000) characters")
}

/// The argument path (`input.title`, `segments.2.text`) of the first literal string in the
/// document that holds a NUL character.
pub fn nul_literal(document: &ExecutableDocument) -> Option<String> {
    fn walk(set: &SelectionSet) -> Option<String> {
        for item in &set.items {
            let (arguments, inner) = match &item.node {
                Selection::Field(field) => (
                    field.node.arguments.as_slice(),
                    &field.node.selection_set.node,
                ),
                Selection::InlineFragment(fragment) => (&[][..], &fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => continue,
            };
            for (name, value) in arguments {
                let mut path = name.node.to_string();
                if nul_in_value(&value.node, &mut path) {
                    return Some(path);
                }
            }
            if let Some(path) = walk(inner) {
                return Some(path);
            }
        }
        None
    }
    document
        .operations
        .iter()
        .find_map(|(_, op)| walk(&op.node.selection_set.node))
        .or_else(|| {
            document
                .fragments
                .values()
                .find_map(|fragment| walk(&fragment.node.selection_set.node))
        })
}

/// Whether `value` holds a NUL character; `path` is extended to where.
fn nul_in_const(value: &ConstValue, path: &mut String) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => indexed(items.iter(), path, nul_in_const),
        ConstValue::Object(fields) => named(fields.iter(), path, nul_in_const),
        _ => false,
    }
}

fn nul_in_value(value: &Value, path: &mut String) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => indexed(items.iter(), path, nul_in_value),
        Value::Object(fields) => named(fields.iter(), path, nul_in_value),
        _ => false,
    }
}

fn indexed<'a, T: 'a>(
    items: impl Iterator<Item = &'a T>,
    path: &mut String,
    check: fn(&T, &mut String) -> bool,
) -> bool {
    for (i, item) in items.enumerate() {
        let before = path.len();
        path.push_str(&format!(".{i}"));
        if check(item, path) {
            return true;
        }
        path.truncate(before);
    }
    false
}

fn named<'a, T: 'a>(
    fields: impl Iterator<Item = (&'a Name, &'a T)>,
    path: &mut String,
    check: fn(&T, &mut String) -> bool,
) -> bool {
    for (name, item) in fields {
        let before = path.len();
        path.push('.');
        path.push_str(name);
        if check(item, path) {
            return true;
        }
        path.truncate(before);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(query: &str) -> Option<String> {
        nul_literal(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn finds_nul_characters_with_their_path() {
        assert_eq!(
            literal(r#"mutation { a(input: { title: "ok", tags: ["x", "a\u0000b"] }) { id } }"#),
            Some("input.tags.1".to_owned())
        );
        assert_eq!(
            literal(r#"{ a { ... on A { b(search: "\u0000") } } }"#),
            Some("search".to_owned())
        );
        assert_eq!(
            literal(r#"query { ...F } fragment F on Q { c(t: "\u0000") }"#),
            Some("t".to_owned())
        );
        assert_eq!(literal(r#"{ a(search: "u0000 \\u0000") }"#), None);

        let request = async_graphql::Request::new("{ a }").variables(
            async_graphql::Variables::from_json(serde_json::json!({
                "input": { "segments": [{ "text": "fine" }, { "text": "nul \u{0}" }] }
            })),
        );
        let err = check_text(&request, Some(None)).expect_err("refused");
        assert_eq!(err.code(), "BAD_USER_INPUT");
        assert!(
            matches!(err, AppError::BadInput { ref field, .. } if field == "input.segments.1.text")
        );
        let fine = async_graphql::Request::new(r#"{ a(search: "\u0000") }"#);
        assert!(
            check_text(&fine, Some(None)).is_ok(),
            "the cached answer is trusted"
        );
        assert!(
            check_text(&fine, None).is_err(),
            "an uncached text is parsed"
        );
    }
}

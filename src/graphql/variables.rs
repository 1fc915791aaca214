//! Variable values checked against their declared types before an operation runs (GraphQL
//! spec, CoerceVariableValues: a value that cannot be coerced is a request error). async-graphql
//! parses a scalar inside a variable only when the field that reads it runs, so in a mutation
//! of several fields the ones before had already written by then: `createCreator` committed,
//! and the `createInviteCode` after it failed on `expiresAt: "yesterday"`.
//!
//! Checked here: the built-in scalars and `DateTime`, wherever they sit in a variable (inside
//! input objects and lists, by the schema's input types). Enums, unknown or missing input
//! fields and `@oneOf` are async-graphql's validation's, which refuses them before anything
//! runs. GraphQL's `Int` is 32 bits; the schema's byte sizes and credit amounts are wider
//! ([`WIDE_INTS`]), so those take any 64-bit integer.

use std::{collections::HashMap, sync::LazyLock};

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Type, TypeKind, TypeSystemDefinition,
};
use async_graphql_value::ConstValue;

/// Input fields and arguments whose `Int` holds 64 bits (`i64` in the resolvers).
const WIDE_INTS: [&str; 2] = ["sizeBytes", "credits"];

/// The fields of each input object type of the schema, with their types.
static INPUT_OBJECTS: LazyLock<HashMap<String, Vec<(String, Type)>>> =
    LazyLock::new(|| input_objects(&super::sdl()));

fn input_objects(sdl: &str) -> HashMap<String, Vec<(String, Type)>> {
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return HashMap::new();
    };
    document
        .definitions
        .into_iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => match &ty.node.kind {
                TypeKind::InputObject(input) => Some((
                    ty.node.name.node.to_string(),
                    input
                        .fields
                        .iter()
                        .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                        .collect(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A variable whose value is not of its type.
#[derive(Debug, PartialEq, Eq)]
pub struct Mistyped {
    /// The variable's name.
    pub variable: String,
    /// Where in its value (`.expiresAt`, `.segments.1.start`; empty for the value itself).
    pub within: String,
    pub message: String,
}

/// The first variable of the operation `operation` of `document` whose value in `variables`
/// is not of its declared type. `position` names where a variable is used (the argument or
/// input field it is given to), to tell wide integers.
pub fn mistyped(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &async_graphql::Variables,
    position: impl Fn(&str) -> Option<String>,
) -> Option<Mistyped> {
    let operation = super::nulls::pick(document, operation)?;
    for definition in &operation.variable_definitions {
        let name = definition.node.name.node.as_str();
        let Some(value) = variables.get(&definition.node.name.node) else {
            continue;
        };
        let used_as = position(name).unwrap_or_default();
        let mut within = String::new();
        let ty = &definition.node.var_type.node;
        if let Some(message) = check(ty, value, last_name(&used_as), &mut within) {
            return Some(Mistyped {
                variable: name.to_owned(),
                within,
                message,
            });
        }
    }
    None
}

/// The last segment of a path that is a name, not a list index.
fn last_name(path: &str) -> &str {
    path.rsplit('.')
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("")
}

fn check(ty: &Type, value: &ConstValue, field: &str, path: &mut String) -> Option<String> {
    if matches!(value, ConstValue::Null) {
        return None; // nullability is checked elsewhere (`missing_variable`, validation)
    }
    match &ty.base {
        BaseType::List(item) => match value {
            ConstValue::List(items) => items.iter().enumerate().find_map(|(i, v)| {
                let before = path.len();
                path.push_str(&format!(".{i}"));
                let found = check(item, v, field, path);
                if found.is_none() {
                    path.truncate(before);
                }
                found
            }),
            // One value where a list is expected is a list of one.
            single => check(item, single, field, path),
        },
        BaseType::Named(name) => scalar(name.as_str(), value, field).or_else(|| {
            let fields = INPUT_OBJECTS.get(name.as_str())?;
            let ConstValue::Object(given) = value else {
                return None; // validation's to refuse
            };
            fields.iter().find_map(|(name, ty)| {
                let v = given.get(name.as_str())?;
                let before = path.len();
                path.push('.');
                path.push_str(name);
                let found = check(ty, v, name, path);
                if found.is_none() {
                    path.truncate(before);
                }
                found
            })
        }),
    }
}

/// Why `value` is not a `name` (a scalar this checks), if it is not.
fn scalar(name: &str, value: &ConstValue, field: &str) -> Option<String> {
    let ok = match name {
        "Int" => {
            let wide = WIDE_INTS.contains(&field);
            let fits = match value {
                ConstValue::Number(n) => {
                    n.as_i64().is_some_and(|v| wide || i32::try_from(v).is_ok())
                }
                _ => false,
            };
            if !fits {
                return Some(if wide {
                    "must be a whole number (64 bits)".to_owned()
                } else {
                    format!("must be a whole number from {} to {}", i32::MIN, i32::MAX)
                });
            }
            true
        }
        "Float" => matches!(value, ConstValue::Number(_)),
        "String" => matches!(value, ConstValue::String(_)),
        "Boolean" => matches!(value, ConstValue::Boolean(_)),
        "ID" => {
            matches!(value, ConstValue::String(_))
                || matches!(value, ConstValue::Number(n) if n.is_i64() || n.is_u64())
        }
        "DateTime" => {
            if !matches!(value, ConstValue::String(s)
                if s.parse::<chrono::DateTime<chrono::Utc>>().is_ok())
            {
                return Some(
                    "must be an RFC 3339 date and time, like 2026-12-05T10:00:00Z".to_owned(),
                );
            }
            true
        }
        _ => return None,
    };
    (!ok).then(|| {
        match name {
            "Float" => "must be a number",
            "String" => "must be text",
            "Boolean" => "must be true or false",
            _ => "must be an ID (text)",
        }
        .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(query: &str, variables: serde_json::Value) -> Option<Mistyped> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = async_graphql::Variables::from_json(variables);
        mistyped(&document, None, &variables, |_| None)
    }

    #[test]
    fn scalars_inside_input_objects_and_lists_are_checked() {
        let query = "mutation($i: CreateInviteCodeInput!) { createInviteCode(input: $i) { code } }";
        assert_eq!(
            first(
                query,
                serde_json::json!({ "i": { "expiresAt": "yesterday" } })
            ),
            Some(Mistyped {
                variable: "i".into(),
                within: ".expiresAt".into(),
                message: "must be an RFC 3339 date and time, like 2026-12-05T10:00:00Z".into(),
            })
        );
        assert_eq!(
            first(
                query,
                serde_json::json!({ "i": { "expiresAt": "2026-12-05T10:00:00Z", "uses": 5 } })
            ),
            None
        );
        let uses = first(
            query,
            serde_json::json!({ "i": { "uses": 5_000_000_000_i64 } }),
        )
        .expect("too large for Int");
        assert_eq!(uses.within, ".uses");
        let ints = first(
            "query($n: [Int!]) { a(n: $n) }",
            serde_json::json!({ "n": [1, 2.5] }),
        )
        .expect("not whole");
        assert_eq!(ints.within, ".1");
    }

    #[test]
    fn byte_sizes_and_credits_take_64_bits() {
        let document =
            async_graphql::parser::parse_query("mutation($n: Int!) { grantCredits(credits: $n) }")
                .expect("parses");
        let variables =
            async_graphql::Variables::from_json(serde_json::json!({ "n": 3_000_000_000_i64 }));
        assert_eq!(
            mistyped(&document, None, &variables, |_| Some("credits".into())),
            None
        );
        assert!(mistyped(&document, None, &variables, |_| Some("first".into())).is_some());
    }
}

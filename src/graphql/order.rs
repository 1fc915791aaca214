//! Answers in the order the query asked for them.
//!
//! The spec serialises an object as an ordered map, its keys "ordered by the order in which
//! they appear in the query". async-graphql 7 resolves an object's fields side by side and
//! writes each one as it completes, so `{ a: renderUsage {…} b: me {…} c: creators {…} }` came
//! back as `b, e, a, c, d`, and in another order the next time: clients that compare answers,
//! snapshot them or read them as streams saw them change with nothing changed. [`restore`]
//! puts every object of an answer back in the order of its selections (fragments included,
//! each key where it first appears), after `graphql::nulls` has added the keys of fields that
//! failed.

use async_graphql::{
    Name, Response, Value,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// The response keys of one position, in query order, each with the selection sets below it
/// (a key asked for in two places merges both).
type Keys<'a> = Vec<(&'a Name, Vec<&'a SelectionSet>)>;

/// Orders every object of `response.data` as the operation (`operation_name`, or the only
/// one) selected its fields.
pub fn restore(
    response: &mut Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) {
    if matches!(response.data, Value::Null) {
        return;
    }
    let Some(operation) = super::nulls::pick(document, operation_name) else {
        return;
    };
    order(
        &mut response.data,
        document,
        &[&operation.selection_set.node],
    );
}

fn order(value: &mut Value, document: &ExecutableDocument, sets: &[&SelectionSet]) {
    match value {
        Value::Object(_) | Value::List(_) => {
            let mut keys = Vec::new();
            for set in sets {
                collect(document, set, &mut keys, 0);
            }
            apply(value, document, &keys);
        }
        _ => {}
    }
}

/// Orders `value` (an object, or a list of them at any depth) by `keys`.
fn apply(value: &mut Value, document: &ExecutableDocument, keys: &Keys<'_>) {
    match value {
        Value::Object(map) => {
            let position = |key: &Name| keys.iter().position(|(k, _)| *k == key);
            let mut last = None;
            let ordered = map.keys().all(|key| {
                let at = position(key);
                let fine = at >= last;
                last = at;
                fine
            });
            if !ordered {
                // Keys the document does not name (none, in practice) go last.
                map.sort_by_cached_key(|key, _| position(key).unwrap_or(usize::MAX));
            }
            for (key, below) in keys {
                if below.is_empty() {
                    continue;
                }
                if let Some(inner) = map.get_mut(key.as_str()) {
                    order(inner, document, below);
                }
            }
        }
        Value::List(items) => {
            for item in items {
                apply(item, document, keys);
            }
        }
        _ => {}
    }
}

/// The response keys of `set` in order, through fragments (whatever their type condition:
/// keys of a type an object is not are simply not in it).
fn collect<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    keys: &mut Keys<'a>,
    depth: usize,
) {
    if depth > 32 {
        return; // fragment cycles are validation errors; never loop on one
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let key = &field.node.response_key().node;
                let below = &field.node.selection_set.node;
                let at = match keys.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        keys.push((key, Vec::new()));
                        keys.len() - 1
                    }
                };
                if !below.items.is_empty() {
                    keys[at].1.push(below);
                }
            }
            Selection::InlineFragment(fragment) => {
                collect(document, &fragment.node.selection_set.node, keys, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(document, &fragment.node.selection_set.node, keys, depth + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(query: &str, data: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let mut response = Response::new(Value::from_json(data).expect("value"));
        restore(&mut response, &document, None);
        serde_json::to_string(&response.data).expect("json")
    }

    #[test]
    fn objects_follow_the_query_at_every_depth() {
        // serde_json's `json!` sorts keys: every input below starts alphabetical.
        let data = serde_json::json!({
            "a": { "z": 1, "m": 2 },
            "b": [{ "y": 1, "x": { "q": 1, "p": 2 } }, { "y": 2, "x": null }],
            "c": 3,
        });
        assert_eq!(
            ordered("{ c b { x { q p } y } a { z m } }", data),
            r#"{"c":3,"b":[{"x":{"q":1,"p":2},"y":1},{"x":null,"y":2}],"a":{"z":1,"m":2}}"#
        );
    }

    #[test]
    fn fragments_and_repeated_keys_keep_their_first_place() {
        let data = serde_json::json!({
            "node": { "id": "1", "name": "n", "slug": "s", "title": null },
        });
        assert_eq!(
            ordered(
                "query { node(id: \"1\") { ...F ... on Video { title } id } } \
                 fragment F on Creator { slug name id slug }",
                data
            ),
            r#"{"node":{"slug":"s","name":"n","id":"1","title":null}}"#
        );
        // A named operation among others is the one followed.
        let document =
            async_graphql::parser::parse_query("query A { b a } query B { a b }").expect("parses");
        let mut response =
            Response::new(Value::from_json(serde_json::json!({ "a": 1, "b": 2 })).expect("value"));
        restore(&mut response, &document, Some("A"));
        assert_eq!(
            serde_json::to_string(&response.data).expect("json"),
            r#"{"b":2,"a":1}"#
        );
    }
}

//! An object whose selections all drop out answers `{}`, as the spec has it.
//!
//! async-graphql answers an object with no field selected `null`: `video(id:) { id @skip(if:
//! true) }`, or `node(id:) { ... on Creator { name } }` for a video. A client reads that `null`
//! as "not found" (a normalising cache stores it so). [`keep_objects`] gives each selection
//! set that may be left empty a field of its own, `__typename` under the response key [`KEEP`],
//! so the object is answered; [`strip`] takes that key out of the answer again. The root is
//! [`super::nulls::keep_empty_root`]'s.

use async_graphql::{
    Name, Positioned, Value,
    parser::types::{DocumentOperations, ExecutableDocument, Field, Selection, SelectionSet},
};

/// The response key of the `__typename` added to selection sets that may be left empty.
pub const KEEP: &str = "_reelgraphKeep";

/// `document` with a `KEEP: __typename` in every selection set below the root that may be left
/// with no field: one whose fields are all under `@skip`/`@include`, or in fragments (on a
/// type, or under a directive). `None` when there is none, or when the document uses the key
/// itself (it is then run as it is).
pub fn keep_objects(document: &ExecutableDocument) -> Option<ExecutableDocument> {
    if uses_key(document) || !document_needs(document) {
        return None;
    }
    let mut kept = document.clone();
    match &mut kept.operations {
        DocumentOperations::Single(operation) => mark_below(&mut operation.node.selection_set.node),
        DocumentOperations::Multiple(operations) => operations
            .values_mut()
            .for_each(|operation| mark_below(&mut operation.node.selection_set.node)),
    }
    for fragment in kept.fragments.values_mut() {
        mark_below(&mut fragment.node.selection_set.node);
    }
    Some(kept)
}

/// Takes the [`KEEP`] keys out of an answer. Only a key that holds an object type's name is
/// the server's: a `JSON` field's value (a creator's `socialLinks`) may hold the key too.
pub fn strip(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if fields
                .get(KEEP)
                .is_some_and(|v| matches!(v, Value::String(name) if is_object_type(name)))
            {
                fields.shift_remove(KEEP);
            }
            fields.values_mut().for_each(strip);
        }
        Value::List(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// Whether `name` is an object type of the schema, or of introspection's.
fn is_object_type(name: &str) -> bool {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    static OBJECTS: std::sync::LazyLock<std::collections::HashSet<String>> =
        std::sync::LazyLock::new(|| {
            let Ok(schema) = async_graphql::parser::parse_schema(super::sdl()) else {
                return Default::default();
            };
            schema
                .definitions
                .into_iter()
                .filter_map(|definition| match definition {
                    TypeSystemDefinition::Type(ty)
                        if matches!(ty.node.kind, TypeKind::Object(_)) =>
                    {
                        Some(ty.node.name.node.to_string())
                    }
                    _ => None,
                })
                .collect()
        });
    name.starts_with("__") || OBJECTS.contains(name)
}

fn document_needs(document: &ExecutableDocument) -> bool {
    document
        .operations
        .iter()
        .any(|(_, op)| needs_below(&op.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|f| needs_below(&f.node.selection_set.node))
}

/// Whether a field's selection set under `set` (or under its fragments) may be left empty.
fn needs_below(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            let child = &field.node.selection_set.node;
            !child.items.is_empty() && (!always_selects(child) || needs_below(child))
        }
        Selection::InlineFragment(fragment) => needs_below(&fragment.node.selection_set.node),
        // The fragment's definition is looked at on its own.
        Selection::FragmentSpread(_) => false,
    })
}

/// Whether `set` selects at least one field whatever the variables and the object's type.
fn always_selects(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => field.node.directives.is_empty(),
        Selection::InlineFragment(fragment) => {
            fragment.node.type_condition.is_none()
                && fragment.node.directives.is_empty()
                && always_selects(&fragment.node.selection_set.node)
        }
        Selection::FragmentSpread(_) => false,
    })
}

fn mark_below(set: &mut SelectionSet) {
    for item in &mut set.items {
        match &mut item.node {
            Selection::Field(field) => {
                let child = &mut field.node.selection_set;
                if child.node.items.is_empty() {
                    continue;
                }
                if !always_selects(&child.node) {
                    let at = child.pos;
                    child.node.items.push(Positioned::new(
                        Selection::Field(Positioned::new(
                            Field {
                                alias: Some(Positioned::new(Name::new(KEEP), at)),
                                name: Positioned::new(Name::new("__typename"), at),
                                arguments: Vec::new(),
                                directives: Vec::new(),
                                selection_set: Positioned::new(SelectionSet::default(), at),
                            },
                            at,
                        )),
                        at,
                    ));
                }
                mark_below(&mut child.node);
            }
            Selection::InlineFragment(fragment) => {
                mark_below(&mut fragment.node.selection_set.node)
            }
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// Whether a field of `document` is named or aliased [`KEEP`].
fn uses_key(document: &ExecutableDocument) -> bool {
    fn set_uses(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                field.node.response_key().node.as_str() == KEEP
                    || field.node.name.node.as_str() == KEEP
                    || set_uses(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => set_uses(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| set_uses(&op.node.selection_set.node))
        || document
            .fragments
            .values()
            .any(|f| set_uses(&f.node.selection_set.node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(query: &str) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        keep_objects(&document).map(|d| {
            let mut found = Vec::new();
            fn walk(set: &SelectionSet, path: &str, found: &mut Vec<String>) {
                for item in &set.items {
                    match &item.node {
                        Selection::Field(f) => {
                            let key = f.node.response_key().node.to_string();
                            if key == KEEP {
                                found.push(path.to_owned());
                            }
                            walk(&f.node.selection_set.node, &format!("{path}/{key}"), found);
                        }
                        Selection::InlineFragment(i) => {
                            walk(&i.node.selection_set.node, path, found)
                        }
                        Selection::FragmentSpread(_) => {}
                    }
                }
            }
            for (_, op) in d.operations.iter() {
                walk(&op.node.selection_set.node, "", &mut found);
            }
            for (name, f) in &d.fragments {
                walk(&f.node.selection_set.node, &format!("#{name}"), &mut found);
            }
            found.sort();
            found.join(" ")
        })
    }

    #[test]
    fn only_sets_that_may_be_left_empty_get_the_key() {
        // Plain documents are run as they are.
        assert_eq!(kept("{ video(id: 1) { id title creator { name } } }"), None);
        assert_eq!(kept("{ me @include(if: $x) { id } }"), None);
        assert_eq!(
            kept("{ video(id: 1) { id @skip(if: $s) creator { name } } }"),
            None
        );
        assert_eq!(
            kept("{ video(id: 1) { id @skip(if: $s) title @include(if: $t) } }").as_deref(),
            Some("/video")
        );
        assert_eq!(
            kept("{ node(id: 1) { ... on Creator { name videos { nodes { id @include(if: $i) } } } } }")
                .as_deref(),
            Some("/node /node/videos/nodes")
        );
        assert_eq!(
            kept("{ v: video(id: 1) { ...F } } fragment F on Video { creator { ... { name } } }")
                .as_deref(),
            Some("/v"),
        );
        assert_eq!(
            kept(
                "{ video(id: 1) { ...F } } fragment F on Video { creator { name @skip(if: true) } }"
            )
            .as_deref(),
            Some("#F/creator /video"),
        );
        // A document that uses the key itself is run as written.
        assert_eq!(
            kept("{ video(id: 1) { _reelgraphKeep: id @skip(if: $s) } }"),
            None
        );
    }

    #[test]
    fn the_key_is_taken_out_of_answers_at_any_depth() {
        let mut answer = Value::from_json(serde_json::json!({
            "video": { "_reelgraphKeep": "Video", "creator": { "_reelgraphKeep": "Creator",
                "socialLinks": { "_reelgraphKeep": "https://example.com" } } },
            "videos": { "nodes": [{ "_reelgraphKeep": "Video", "id": "1" }, null] }
        }))
        .expect("value");
        strip(&mut answer);
        assert_eq!(
            answer.into_json().expect("json"),
            serde_json::json!({
                "video": { "creator": { "socialLinks": { "_reelgraphKeep": "https://example.com" } } },
                "videos": { "nodes": [{ "id": "1" }, null] }
            })
        );
    }
}

//! Field errors as the GraphQL spec handles them: the field that failed is `null`, and when
//! its type is non-null, the `null` moves up to the nearest nullable field (or list item), or
//! to `data` itself.
//!
//! async-graphql instead leaves a failed field's key out of its object, and answers
//! `"data": null` when no field of the root succeeded: `{ creator(slug: "gone") { id } }` got
//! `{"data": null}` instead of `{"data": {"creator": null}}`, and `{ a: creator(..) me }` got
//! `{"data": {"me": …}}` without `a`. Typed clients and normalising caches (Apollo, Relay,
//! urql) read every selected key, so [`complete`] repairs an answer that has errors, by the
//! schema's types and the operation's selections. Answers without errors are not touched.

use std::{collections::HashMap, sync::LazyLock};

use async_graphql::{
    Name, PathSegment, Response, Value,
    parser::types::{
        BaseType, ExecutableDocument, OperationDefinition, Selection, SelectionSet, TypeKind,
        TypeSystemDefinition,
    },
};

/// Field types by (object type, field name), the object types implementing each interface,
/// and the root types.
struct Shapes {
    fields: HashMap<(Name, Name), async_graphql::parser::types::Type>,
    implementers: HashMap<Name, Vec<Name>>,
    roots: [Option<Name>; 3],
}

impl Shapes {
    /// The type of `field` on `object`. On an interface (`node(id:)` answers a `Node`) the
    /// field may come from a fragment on one of its types: it is the type those that have the
    /// field agree on.
    fn field(&self, object: &Name, field: &Name) -> Option<async_graphql::parser::types::Type> {
        if let Some(ty) = self.fields.get(&(object.clone(), field.clone())) {
            return Some(ty.clone());
        }
        let mut types = self
            .implementers
            .get(object)?
            .iter()
            .filter_map(|concrete| self.fields.get(&(concrete.clone(), field.clone())));
        let first = types.next()?;
        types.all(|ty| ty == first).then(|| first.clone())
    }
}

static SHAPES: LazyLock<Shapes> = LazyLock::new(|| {
    let mut shapes = Shapes {
        fields: HashMap::new(),
        implementers: HashMap::new(),
        roots: [None, None, None],
    };
    let Ok(document) = async_graphql::parser::parse_schema(super::sdl()) else {
        return shapes;
    };
    for definition in document.definitions {
        match definition {
            TypeSystemDefinition::Schema(schema) => {
                let schema = schema.node;
                shapes.roots = [
                    schema.query.map(|n| n.node),
                    schema.mutation.map(|n| n.node),
                    schema.subscription.map(|n| n.node),
                ];
            }
            TypeSystemDefinition::Type(ty) => {
                if let TypeKind::Union(union) = &ty.node.kind {
                    shapes
                        .implementers
                        .entry(ty.node.name.node.clone())
                        .or_default()
                        .extend(union.members.iter().map(|m| m.node.clone()));
                }
                if let TypeKind::Object(object) = ty.node.kind {
                    for interface in object.implements {
                        shapes
                            .implementers
                            .entry(interface.node)
                            .or_default()
                            .push(ty.node.name.node.clone());
                    }
                    for field in object.fields {
                        shapes.fields.insert(
                            (ty.node.name.node.clone(), field.node.name.node),
                            field.node.ty.node,
                        );
                    }
                }
            }
            TypeSystemDefinition::Directive(_) => {}
        }
    }
    shapes
});

/// Whether a fragment on `condition` applies to an object of type `typename`: the same type,
/// or an interface it implements, or a union it is in.
pub(crate) fn applies(condition: &str, typename: &str) -> bool {
    condition == typename
        || SHAPES
            .implementers
            .get(condition)
            .is_some_and(|types| types.iter().any(|t| t.as_str() == typename))
}

/// An operation whose root fields were all left out (`@skip`, `@include`) answers `{}`:
/// async-graphql answers `"data": null` with no error, which says the operation could not run
/// (`query($full: Boolean!) { me @include(if: $full) { id } }` with `full: false`).
pub fn keep_empty_root(response: &mut Response) {
    if response.errors.is_empty() && response.data == Value::Null {
        response.data = Value::Object(Default::default());
    }
}

/// Puts the `null`s the spec calls for into a response with field errors. `operation_name`
/// picks the operation as the request did.
pub fn complete(
    response: &mut Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) {
    if response.errors.iter().all(|e| e.path.is_empty()) {
        return;
    }
    let Some(operation) = pick(document, operation_name) else {
        return;
    };
    let root = match operation.ty {
        async_graphql::parser::types::OperationType::Query => &SHAPES.roots[0],
        async_graphql::parser::types::OperationType::Mutation => &SHAPES.roots[1],
        async_graphql::parser::types::OperationType::Subscription => &SHAPES.roots[2],
    };
    let Some(root) = root else { return };
    let mut targets = Vec::new();
    for error in &response.errors {
        if error.path.is_empty() {
            continue;
        }
        match null_position(document, operation, root, &error.path) {
            Some(Target::Data) => {
                response.data = Value::Null;
                return;
            }
            Some(Target::At(len)) => targets.push(error.path[..len].to_vec()),
            None => {}
        }
    }
    // A position under another one that becomes null goes with it (and must not bring back
    // the parent as an object).
    targets.sort_by_key(Vec::len);
    let mut kept: Vec<Vec<PathSegment>> = Vec::with_capacity(targets.len());
    for path in targets {
        if !kept.iter().any(|above| path.starts_with(above)) {
            kept.push(path);
        }
    }
    for path in kept {
        set_null(&mut response.data, &path);
    }
}

/// Whether a field error at `path` of `operation` makes the answer's `data` null: the failed
/// field and every one above it allow no null ([`complete`] puts it there).
pub(crate) fn nulls_data(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    path: &[PathSegment],
) -> bool {
    let root = match operation.ty {
        async_graphql::parser::types::OperationType::Query => &SHAPES.roots[0],
        async_graphql::parser::types::OperationType::Mutation => &SHAPES.roots[1],
        async_graphql::parser::types::OperationType::Subscription => &SHAPES.roots[2],
    };
    root.as_ref().is_some_and(|root| {
        matches!(
            null_position(document, operation, root, path),
            Some(Target::Data)
        )
    })
}

/// The operation a request runs: the one named, or the only one.
pub(crate) fn pick<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    let mut operations = document.operations.iter();
    match name {
        Some(wanted) => operations
            .find(|(name, _)| name.is_some_and(|n| n.as_str() == wanted))
            .map(|(_, op)| &op.node),
        None => {
            let (_, first) = operations.next()?;
            operations.next().is_none().then_some(&first.node)
        }
    }
}

enum Target {
    /// `data` itself becomes null.
    Data,
    /// The first `n` segments of the error's path become null.
    At(usize),
}

/// Where the `null` of a field error at `path` goes: the deepest nullable position from the
/// failed field up. `None` when the path cannot be followed (introspection, unknown fields).
fn null_position(
    document: &ExecutableDocument,
    operation: &OperationDefinition,
    root: &Name,
    path: &[PathSegment],
) -> Option<Target> {
    // (length of the path prefix, whether that position is nullable)
    let mut positions: Vec<(usize, bool)> = Vec::new();
    let mut sets: Vec<&SelectionSet> = vec![&operation.selection_set.node];
    let mut object = root.clone();
    let mut i = 0;
    while i < path.len() {
        let PathSegment::Field(key) = &path[i] else {
            return None;
        };
        let mut found = Vec::new();
        for set in &sets {
            fields_by_key(document, set, key, &mut found, 0);
        }
        let name = found.first()?.name.node.clone();
        if name.starts_with("__") {
            return None;
        }
        let mut ty = SHAPES.field(&object, &name)?;
        i += 1;
        positions.push((i, ty.nullable));
        while let Some(PathSegment::Index(_)) = path.get(i) {
            let BaseType::List(item) = ty.base else {
                return None;
            };
            ty = *item;
            i += 1;
            positions.push((i, ty.nullable));
        }
        let BaseType::Named(next) = &ty.base else {
            return None;
        };
        object = next.clone();
        sets = found.iter().map(|f| &f.selection_set.node).collect();
    }
    Some(
        positions
            .iter()
            .rev()
            .find(|(_, nullable)| *nullable)
            .map_or(Target::Data, |(len, _)| Target::At(*len)),
    )
}

/// The fields of `set` (through fragments) answered under `key`.
fn fields_by_key<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    key: &str,
    found: &mut Vec<&'a async_graphql::parser::types::Field>,
    depth: usize,
) {
    if depth > super::depth::MAX_NESTING {
        return; // fragment cycles are validation errors; never loop on one
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                if field.node.response_key().node.as_str() == key {
                    found.push(&field.node);
                }
            }
            Selection::InlineFragment(fragment) => fields_by_key(
                document,
                &fragment.node.selection_set.node,
                key,
                found,
                depth + 1,
            ),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    fields_by_key(
                        document,
                        &fragment.node.selection_set.node,
                        key,
                        found,
                        depth + 1,
                    )
                }
            }
        }
    }
}

/// Sets the value at `path` to null: the key is added to its object when missing. A `null`
/// on the way (`data` itself, or an object) is an object async-graphql answered as `null`
/// because none of its fields succeeded — its fields ran, so it was not null — and becomes an
/// object again (`{ me { creditLedger(first: 500) { … } } }` is `{"me": {"creditLedger":
/// null}}`, not `{"me": null}`). Positions whose parent is not there are left alone.
fn set_null(data: &mut Value, path: &[PathSegment]) {
    let Some((last, parents)) = path.split_last() else {
        *data = Value::Null;
        return;
    };
    let mut current = data;
    for segment in parents {
        object_if_null(current, segment);
        current = match (segment, current) {
            (PathSegment::Field(key), Value::Object(map)) => match map.get_mut(key.as_str()) {
                Some(next) => next,
                None => return,
            },
            (PathSegment::Index(i), Value::List(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
            _ => return,
        };
    }
    object_if_null(current, last);
    match (last, current) {
        (PathSegment::Field(key), Value::Object(map)) => {
            map.insert(Name::new(key), Value::Null);
        }
        (PathSegment::Index(i), Value::List(items)) => {
            if let Some(item) = items.get_mut(*i) {
                *item = Value::Null;
            }
        }
        _ => {}
    }
}

/// A `null` where a field of an object is next on an error's path was that object (see
/// [`set_null`]).
fn object_if_null(value: &mut Value, next: &PathSegment) {
    if matches!(next, PathSegment::Field(_)) && matches!(value, Value::Null) {
        *value = Value::Object(Default::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::ServerError;

    fn answer(query: &str, data: serde_json::Value, paths: &[&[&str]]) -> serde_json::Value {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let mut response = Response::new(Value::from_json(data).expect("value"));
        for path in paths {
            let mut error = ServerError::new("failed", None);
            error.path = path
                .iter()
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => PathSegment::Index(i),
                    Err(_) => PathSegment::Field((*s).to_owned()),
                })
                .collect();
            response.errors.push(error);
        }
        complete(&mut response, &document, None);
        response.data.into_json().expect("json")
    }

    #[test]
    fn fields_under_an_interface_are_found_on_its_types() {
        use serde_json::json;
        // `node` answers a `Node`; `videos` (`VideoConnection!`) is Creator's, asked for in a
        // fragment: its failure nulls `node`.
        assert_eq!(
            answer(
                "{ node(id: \"x\") { id ... on Creator { videos(first: 101) { totalCount } } } }",
                json!({ "node": { "id": "x" } }),
                &[&["node", "videos"]]
            ),
            json!({ "node": null })
        );
        // A nullable field of a type behind the interface is nulled where it is.
        assert_eq!(
            answer(
                "{ node(id: \"x\") { id ... on Job { parent { id } } } }",
                json!({ "node": { "id": "x" } }),
                &[&["node", "parent"]]
            ),
            json!({ "node": { "id": "x", "parent": null } })
        );
    }

    #[test]
    fn an_object_whose_fields_all_failed_is_an_object_with_them_null() {
        use serde_json::json;
        // async-graphql answers `me` as null when its only field failed.
        assert_eq!(
            answer(
                "{ me { creditLedger(first: 500) { totalCount } } }",
                json!({ "me": null }),
                &[&["me", "creditLedger"]]
            ),
            json!({ "me": { "creditLedger": null } })
        );
        // In a list, for each item.
        assert_eq!(
            answer(
                "{ me { creators { members { user { creditLedger(first: 500) { totalCount } } } } } }",
                json!({ "me": { "creators": [{ "members": [{ "user": null }, { "user": { "creditLedger": null } }] }] } }),
                &[&[
                    "me",
                    "creators",
                    "0",
                    "members",
                    "0",
                    "user",
                    "creditLedger"
                ]]
            ),
            json!({ "me": { "creators": [{ "members": [{ "user": { "creditLedger": null } }, { "user": { "creditLedger": null } }] }] } })
        );
        // A failure under a position that is nulled by another one stays under it.
        assert_eq!(
            answer(
                "{ node(id: \"x\") { id ... on Creator { videos(first: 101) { totalCount } } ... on Job { parent { id } } } }",
                json!({ "node": { "id": "x" } }),
                &[&["node", "parent"], &["node", "videos"]]
            ),
            json!({ "node": null })
        );
    }

    #[test]
    fn failed_fields_are_null_and_non_null_ones_null_their_parent() {
        use serde_json::json;
        // A nullable root field alone: `data` holds it as null.
        assert_eq!(
            answer(
                "{ creator(slug: \"x\") { id } }",
                json!(null),
                &[&["creator"]]
            ),
            json!({ "creator": null })
        );
        // Beside a field that succeeded, under an alias.
        assert_eq!(
            answer(
                "{ a: creator(slug: \"x\") { id } me { id } }",
                json!({ "me": null }),
                &[&["a"]]
            ),
            json!({ "me": null, "a": null })
        );
        // A non-null field (`Video.creator: Creator!`) nulls the nullable `video` above it.
        assert_eq!(
            answer(
                "{ video(id: \"x\") { id creator { name } } }",
                json!({ "video": { "id": "x" } }),
                &[&["video", "creator"]]
            ),
            json!({ "video": null })
        );
        // In a list of non-null items under non-null fields, up to `data`.
        assert_eq!(
            answer(
                "{ videos { nodes { creator { name } } } }",
                json!({ "videos": { "nodes": [{}] } }),
                &[&["videos", "nodes", "0", "creator"]]
            ),
            json!(null)
        );
        // Through a fragment, and an introspection path is left alone.
        assert_eq!(
            answer(
                "{ ...Q } fragment Q on QueryRoot { creator(slug: \"x\") { id } }",
                json!(null),
                &[&["creator"]]
            ),
            json!({ "creator": null })
        );
        assert_eq!(
            answer(
                "{ __schema { queryType { name } } }",
                json!(null),
                &[&["__schema"]]
            ),
            json!(null)
        );
    }
}

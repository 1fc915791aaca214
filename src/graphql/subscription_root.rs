//! A subscription's root field, written out as async-graphql 7 runs it.
//!
//! async-graphql opens one event stream per field written directly in the subscription's
//! selection set. A root field reached through a fragment (`subscription { ...F } fragment F
//! on SubscriptionRoot { jobsUpdated { id } }`) opened none, so the subscription ended at once
//! without an event or an error. The same field written twice (`jobsUpdated { id }
//! jobsUpdated { status }`, one field by the spec's merging) opened two streams, each
//! sending half of every event. So before it runs, the root's fragments are expanded (those
//! `@skip`/`@include` leave out dropped) and the fields under one response key become one
//! field selecting what they all select. Validation has checked that they can be merged.

use std::collections::HashSet;

use async_graphql::{
    Positioned, Variables,
    parser::types::{
        Directive, DocumentOperations, ExecutableDocument, Field, InlineFragment, OperationType,
        Selection, SelectionSet,
    },
};

/// The document with the root of the subscription `operation` flattened, or `None` when the
/// operation is no subscription, or its root is fields written directly under keys of their
/// own already (or something here declines to rewrite, for validation to judge as written).
pub fn flatten(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
) -> Option<ExecutableDocument> {
    let chosen = super::nulls::pick(document, operation)?;
    if chosen.ty != OperationType::Subscription {
        return None;
    }
    let items = &chosen.selection_set.node.items;
    let mut keys = HashSet::new();
    let plain = items.iter().all(|item| match &item.node {
        Selection::Field(field) => keys.insert(field.node.response_key().node.as_str()),
        _ => false,
    });
    if plain {
        return None;
    }
    let mut found: Vec<Occurrence> = Vec::new();
    let mut spread = HashSet::new();
    let root = &chosen.selection_set.node;
    collect(document, root, &[], variables, &mut spread, &mut found)?;
    // One field per key, from its first occurrence that is not skipped, selecting what every
    // occurrence selects. An occurrence under `@skip`/`@include` keeps them, on an inline
    // fragment around its selections: they still apply, and their variables stay used.
    let mut merged: Vec<Positioned<Field>> = Vec::new();
    let kept = found.iter().filter(|o| o.kept);
    for occurrence in kept {
        let key = occurrence.field.node.response_key().node.as_str();
        if !merged.iter().any(|m| m.node.response_key().node == key) {
            let mut field = occurrence.field.clone();
            field.node.directives.clear();
            field.node.selection_set.node.items.clear();
            merged.push(field);
        }
    }
    for occurrence in found {
        let key = occurrence.field.node.response_key().node.clone();
        let Some(field) = merged
            .iter_mut()
            .find(|m| m.node.response_key().node == key)
        else {
            continue;
        };
        let selections = occurrence.field.node.selection_set;
        let items = &mut field.node.selection_set.node.items;
        if occurrence.directives.is_empty() {
            items.extend(selections.node.items);
        } else {
            let pos = selections.pos;
            let fragment = InlineFragment {
                type_condition: None,
                directives: occurrence.directives,
                selection_set: selections,
            };
            items.push(Positioned::new(
                Selection::InlineFragment(Positioned::new(fragment, pos)),
                pos,
            ));
        }
    }
    if merged.is_empty() {
        return None;
    }
    // Fragments only the root spread are used no more: left in, validation would refuse them
    // as unused. A document with a fragment no operation uses is left as it is, for
    // validation to refuse.
    if referenced(document).len() != document.fragments.len() {
        return None;
    }
    let mut flattened = document.clone();
    let target = match &mut flattened.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) => {
            let name = match operation {
                Some(name) => ops.keys().find(|k| k.as_str() == name)?.clone(),
                None => ops.keys().next()?.clone(),
            };
            ops.get_mut(&name)?
        }
    };
    target.node.selection_set.node.items = merged
        .into_iter()
        .map(|field| {
            let at = field.pos;
            Positioned::new(Selection::Field(field), at)
        })
        .collect();
    let used: HashSet<String> = referenced(&flattened)
        .into_iter()
        .map(str::to_owned)
        .collect();
    flattened
        .fragments
        .retain(|name, _| used.contains(name.as_str()));
    Some(flattened)
}

/// The fragments `document`'s operations spread, directly or through other fragments.
fn referenced(document: &ExecutableDocument) -> HashSet<&str> {
    fn walk<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        used: &mut HashSet<&'a str>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => walk(document, &field.node.selection_set.node, used),
                Selection::InlineFragment(fragment) => {
                    walk(document, &fragment.node.selection_set.node, used)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some((name, fragment)) = document.fragments.get_key_value(name)
                        && used.insert(name.as_str())
                    {
                        walk(document, &fragment.node.selection_set.node, used);
                    }
                }
            }
        }
    }
    let mut used = HashSet::new();
    for (_, operation) in document.operations.iter() {
        walk(document, &operation.node.selection_set.node, &mut used);
    }
    used
}

/// A root field as written, with the `@skip`/`@include` on it and on the fragments around it.
struct Occurrence {
    field: Positioned<Field>,
    directives: Vec<Positioned<Directive>>,
    /// Whether those directives keep it.
    kept: bool,
}

/// Adds the fields `set` selects, through its fragments, to `found`,
/// with `around`, the directives of the fragments they are in. `None` when a field or a
/// fragment carries another directive, or a field selects nothing.
fn collect(
    document: &ExecutableDocument,
    set: &SelectionSet,
    around: &[Positioned<Directive>],
    variables: &Variables,
    spread: &mut HashSet<String>,
    found: &mut Vec<Occurrence>,
) -> Option<()> {
    for item in &set.items {
        let own = item.node.directives();
        let conditional =
            |d: &Positioned<Directive>| matches!(d.node.name.node.as_str(), "skip" | "include");
        if !own.iter().all(conditional) {
            return None;
        }
        let mut directives = around.to_vec();
        directives.extend(own.iter().cloned());
        match &item.node {
            Selection::Field(field) => {
                if field.node.selection_set.node.items.is_empty() {
                    return None;
                }
                let mut field = field.clone();
                field.node.directives.clear();
                found.push(Occurrence {
                    field,
                    kept: !skipped(&directives, variables),
                    directives,
                });
            }
            Selection::InlineFragment(fragment) => {
                let inner = &fragment.node.selection_set.node;
                collect(document, inner, &directives, variables, spread, found)?;
            }
            Selection::FragmentSpread(name) => {
                let name = &name.node.fragment_name.node;
                // A fragment inside itself is refused before this runs; the check only keeps
                // this from looping.
                if let Some(fragment) = document.fragments.get(name)
                    && spread.insert(name.to_string())
                {
                    if !fragment.node.directives.is_empty() {
                        return None;
                    }
                    let inner = &fragment.node.selection_set.node;
                    collect(document, inner, &directives, variables, spread, found)?;
                    spread.remove(name.as_str());
                }
            }
        }
    }
    Some(())
}

/// Whether `@skip`/`@include` leave the selection out, decided as async-graphql decides it
/// (a value that is no Boolean counts as false).
fn skipped(directives: &[Positioned<Directive>], variables: &Variables) -> bool {
    directives.iter().any(|directive| {
        let include = match directive.node.name.node.as_str() {
            "skip" => false,
            "include" => true,
            _ => return false,
        };
        let Some(condition) = directive.node.get_argument("if") else {
            return false;
        };
        let value = condition
            .node
            .clone()
            .into_const_with(|name| variables.get(&name).cloned().ok_or(()))
            .ok();
        let value = matches!(value, Some(async_graphql::Value::Boolean(true)));
        include != value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(query: &str, variables: serde_json::Value) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        let flattened = flatten(&document, None, &variables)?;
        let operation = super::super::nulls::pick(&flattened, None).expect("operation");
        Some(
            operation
                .selection_set
                .node
                .items
                .iter()
                .map(|item| match &item.node {
                    Selection::Field(field) => {
                        let inner: Vec<String> = field
                            .node
                            .selection_set
                            .node
                            .items
                            .iter()
                            .filter_map(|i| match &i.node {
                                Selection::Field(f) => Some(f.node.name.node.to_string()),
                                Selection::InlineFragment(f) => Some(format!(
                                    "...@{} {}",
                                    f.node.directives[0].node.name.node,
                                    f.node.selection_set.node.items.len()
                                )),
                                _ => None,
                            })
                            .collect();
                        format!(
                            "{} {{ {} }}",
                            field.node.response_key().node,
                            inner.join(" ")
                        )
                    }
                    _ => "not a field".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    #[test]
    fn a_root_written_directly_is_left_alone() {
        assert_eq!(
            root("subscription { jobsUpdated { id } }", serde_json::json!({})),
            None
        );
        assert_eq!(
            root(
                "{ me { id } ...F } fragment F on QueryRoot { me { email } }",
                serde_json::json!({})
            ),
            None
        );
    }

    #[test]
    fn fragments_are_expanded_and_one_key_is_one_field() {
        assert_eq!(
            root(
                "subscription { ...F } fragment F on SubscriptionRoot { jobsUpdated { id } }",
                serde_json::json!({})
            )
            .as_deref(),
            Some("jobsUpdated { id }")
        );
        assert_eq!(
            root(
                "subscription { jobsUpdated { id } ... on SubscriptionRoot { jobsUpdated { status } } }",
                serde_json::json!({})
            )
            .as_deref(),
            Some("jobsUpdated { id status }")
        );
    }

    #[test]
    fn skipped_parts_are_left_out() {
        let query = "subscription($s: Boolean!) { jobsUpdated { id } ...F @skip(if: $s) \
                     jobsUpdated @include(if: false) { type } } \
                     fragment F on SubscriptionRoot { jobsUpdated { status } }";
        // Each stays, under its directives, which async-graphql applies as it runs.
        for s in [true, false] {
            assert_eq!(
                root(query, serde_json::json!({ "s": s })).as_deref(),
                Some("jobsUpdated { id ...@skip 1 ...@include 1 }")
            );
        }
        // Under a key every occurrence of which is skipped, nothing is left to run: left as
        // written.
        let query = "subscription { ...F @skip(if: true) } \
                     fragment F on SubscriptionRoot { jobsUpdated { status } }";
        assert_eq!(root(query, serde_json::json!({})), None);
        // The same fragment skipped once and spread once more counts.
        let query = "subscription { ...F @skip(if: true) ...F } \
                     fragment F on SubscriptionRoot { jobsUpdated { status } }";
        assert_eq!(
            root(query, serde_json::json!({})).as_deref(),
            Some("jobsUpdated { ...@skip 1 status }")
        );
    }
}

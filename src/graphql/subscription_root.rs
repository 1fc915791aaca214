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
/// An error (`QUERY_TOO_COMPLEX`) when the flattened document would nest too deep to run:
/// as written, the subscription would end without an event.
pub fn flatten(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &Variables,
) -> Result<Option<ExecutableDocument>, async_graphql::ServerError> {
    let Some(flattened) = flattened(document, operation, variables) else {
        return Ok(None);
    };
    if super::depth::nesting(&flattened) > super::depth::MAX_NESTING {
        return Err(super::depth::too_nested());
    }
    Ok(Some(flattened))
}

fn flattened(
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
        // One inline fragment per directive, innermost last: one fragment may not carry the
        // same directive twice.
        let mut selections = occurrence.field.node.selection_set;
        for directive in occurrence.directives.into_iter().rev() {
            let pos = selections.pos;
            let fragment = InlineFragment {
                type_condition: None,
                directives: vec![directive],
                selection_set: selections,
            };
            let item = Positioned::new(
                Selection::InlineFragment(Positioned::new(fragment, pos)),
                pos,
            );
            selections = Positioned::new(SelectionSet { items: vec![item] }, pos);
        }
        field
            .node
            .selection_set
            .node
            .items
            .extend(selections.node.items);
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
                    kept: super::order::included(&directives, variables),
                    directives,
                });
            }
            // Fragments on another type than the root, and spreads of fragments the document
            // lacks, are validation's to refuse: left as written.
            Selection::InlineFragment(fragment) => {
                let condition = fragment.node.type_condition.as_ref();
                if condition.is_some_and(|c| c.node.on.node.as_str() != root_type()) {
                    return None;
                }
                let inner = &fragment.node.selection_set.node;
                collect(document, inner, &directives, variables, spread, found)?;
            }
            Selection::FragmentSpread(name) => {
                let name = &name.node.fragment_name.node;
                let fragment = document.fragments.get(name)?;
                if fragment.node.type_condition.node.on.node.as_str() != root_type()
                    || !fragment.node.directives.is_empty()
                {
                    return None;
                }
                // A fragment inside itself is refused before this runs; the check only keeps
                // this from looping.
                if spread.insert(name.to_string()) {
                    let inner = &fragment.node.selection_set.node;
                    collect(document, inner, &directives, variables, spread, found)?;
                    spread.remove(name.as_str());
                }
            }
        }
    }
    Some(())
}

/// The schema's subscription root type.
fn root_type() -> &'static str {
    super::variables::root_type(&super::variables::TYPES, OperationType::Subscription)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(query: &str, variables: serde_json::Value) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        let flattened = flatten(&document, None, &variables).expect("not too deep")?;
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
    fn fragments_on_other_types_or_missing_are_left_for_validation() {
        for query in [
            "subscription { jobsUpdated { id } ...Typo }",
            "subscription { ...F } fragment F on QueryRoot { jobsUpdated { id } }",
            "subscription { ... on Job { jobsUpdated { id } } }",
        ] {
            assert_eq!(root(query, serde_json::json!({})), None, "{query}");
        }
    }

    #[test]
    fn each_directive_gets_a_fragment_of_its_own() {
        let query = "subscription($a: Boolean!, $b: Boolean!) { jobsUpdated { id } \
                     ... @include(if: $a) { jobsUpdated @include(if: $b) { status } } }";
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = Variables::from_json(serde_json::json!({ "a": true, "b": true }));
        let flat = flatten(&document, None, &variables)
            .expect("not too deep")
            .expect("flattened");
        let operation = super::super::nulls::pick(&flat, None).expect("operation");
        let Selection::Field(field) = &operation.selection_set.node.items[0].node else {
            panic!("a field");
        };
        let Selection::InlineFragment(outer) = &field.node.selection_set.node.items[1].node else {
            panic!("a fragment");
        };
        assert_eq!(outer.node.directives.len(), 1);
        let Selection::InlineFragment(inner) = &outer.node.selection_set.node.items[0].node else {
            panic!("a fragment inside");
        };
        assert_eq!(inner.node.directives.len(), 1);
    }

    #[test]
    fn a_root_that_would_nest_too_deep_once_flattened_is_refused() {
        // 32 fragments, each with two directives: 33 levels as written, 65 flattened.
        let query = format!(
            "subscription {{ {}jobsUpdated {{ id }}{} }}",
            "... @include(if: true) @skip(if: false) { ".repeat(32),
            " }".repeat(32)
        );
        let document = async_graphql::parser::parse_query(&query).expect("parses");
        assert!(super::super::depth::nesting(&document) <= super::super::depth::MAX_NESTING);
        let refused = flatten(&document, None, &Variables::default()).expect_err("too deep");
        assert!(
            refused.message.contains("recursion depth"),
            "{}",
            refused.message
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

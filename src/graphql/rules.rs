//! Validation rules async-graphql 7 does not apply where graphql-js does: it validates no
//! directive on a variable definition (`query($v: Int @foo)` ran), let a variable be defined
//! twice (`query($a: Int, $a: Int)` ran), and nothing about
//! `__typename` (`{ __typename(x: 1) }`, `{ __typename { x } }` and `{ __typename @skip }`
//! ran). This schema defines no directive for variable definitions, and `__typename` takes no
//! argument and selects nothing; its directives are checked as any field's.

use async_graphql::{
    Pos, Positioned, ServerError,
    parser::types::{Directive, ExecutableDocument, Selection, SelectionSet},
};

/// The first place in `document` (its operations and fragments, each as written) that breaks
/// one of these rules, as the error refusing it.
pub fn fault(document: &ExecutableDocument) -> Option<ServerError> {
    let operations = document.operations.iter().map(|(_, op)| op);
    for operation in operations.clone() {
        let mut names = std::collections::HashSet::new();
        for definition in &operation.node.variable_definitions {
            // async-graphql refused a duplicate only when one of the two had a default.
            let name = definition.node.name.node.as_str();
            if !names.insert(name) {
                return Some(refusal(
                    format!("There can be only one variable named \"${name}\"."),
                    definition.pos,
                ));
            }
            if let Some(directive) = definition.node.directives.first() {
                let message =
                    misplaced_or_unknown(&directive.node.name.node, "VARIABLE_DEFINITION");
                return Some(refusal(message, directive.pos));
            }
        }
    }
    let sets = operations.map(|op| &op.node.selection_set.node).chain(
        document
            .fragments
            .values()
            .map(|f| &f.node.selection_set.node),
    );
    for set in sets {
        if let Some(error) = typename_in(set) {
            return Some(error);
        }
    }
    None
}

/// Why directive `name` may not stand at `location`, as graphql-js says it: the schema's
/// directives are known, but none but `@skip` and `@include` on fields.
fn misplaced_or_unknown(name: &str, location: &str) -> String {
    const KNOWN: [&str; 5] = ["skip", "include", "deprecated", "specifiedBy", "oneOf"];
    if KNOWN.contains(&name) {
        format!("Directive \"@{name}\" may not be used on {location}.")
    } else {
        format!("Unknown directive \"@{name}\".")
    }
}

/// A validation error at `at`, coded `BAD_USER_INPUT`.
pub(super) fn refusal(message: String, at: Pos) -> ServerError {
    let mut error = ServerError::new(message, Some(at));
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    error
}

/// The first `__typename` in `set` (and the sets inside it, but not in fragments it spreads:
/// those are checked where they are defined) that breaks the rules.
fn typename_in(set: &SelectionSet) -> Option<ServerError> {
    set.items.iter().find_map(|item| match &item.node {
        Selection::Field(field) if field.node.name.node == "__typename" => {
            let field = &field.node;
            if let Some((name, _)) = field.arguments.first() {
                let message = format!(
                    "Unknown argument \"{}\" on field \"__typename\".",
                    name.node
                );
                return Some(refusal(message, name.pos));
            }
            if let Some(first) = field.selection_set.node.items.first() {
                let message = "Field \"__typename\" must not have a selection since type \
                               \"String!\" has no subfields."
                    .to_owned();
                return Some(refusal(message, first.pos));
            }
            directives(&field.directives)
        }
        Selection::Field(field) => typename_in(&field.node.selection_set.node),
        Selection::InlineFragment(fragment) => typename_in(&fragment.node.selection_set.node),
        Selection::FragmentSpread(_) => None,
    })
}

/// The first fault of `directives` on a field: one that is not `@skip` or `@include`, one
/// given twice, or one without exactly its `if` argument.
fn directives(directives: &[Positioned<Directive>]) -> Option<ServerError> {
    for (i, directive) in directives.iter().enumerate() {
        let name = &directive.node.name.node;
        if !matches!(name.as_str(), "skip" | "include") {
            return Some(refusal(misplaced_or_unknown(name, "FIELD"), directive.pos));
        }
        if directives[..i].iter().any(|d| d.node.name.node == *name) {
            return Some(refusal(
                format!("The directive \"@{name}\" can only be used once at this location."),
                directive.pos,
            ));
        }
        if let Some((argument, _)) = directive
            .node
            .arguments
            .iter()
            .find(|(a, _)| a.node != "if")
        {
            return Some(refusal(
                format!(
                    "Unknown argument \"{}\" on directive \"@{name}\".",
                    argument.node
                ),
                argument.pos,
            ));
        }
        if directive.node.get_argument("if").is_none() {
            return Some(refusal(
                format!(
                    "Directive \"@{name}\" argument \"if\" of type \"Boolean!\" is required, \
                     but it was not provided."
                ),
                directive.pos,
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault_in(query: &str) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        fault(&document).map(|e| e.message)
    }

    #[test]
    fn what_graphql_js_refuses_is_refused() {
        for (query, expected) in [
            (
                "query($v: Int @foo) { __typename }",
                "Unknown directive \"@foo\"",
            ),
            (
                "query($v: Int @skip(if: true)) { __typename }",
                "may not be used on VARIABLE_DEFINITION",
            ),
            (
                "{ __typename(x: 1) }",
                "Unknown argument \"x\" on field \"__typename\"",
            ),
            ("{ me { __typename { x } } }", "must not have a selection"),
            ("{ __typename @foo }", "Unknown directive \"@foo\""),
            (
                "{ __typename @deprecated }",
                "Directive \"@deprecated\" may not be used on FIELD",
            ),
            (
                "query($v: Int @deprecated) { __typename }",
                "may not be used on VARIABLE_DEFINITION",
            ),
            (
                "{ __typename @skip }",
                "argument \"if\" of type \"Boolean!\" is required",
            ),
            (
                "{ __typename @skip(if: true) @skip(if: false) }",
                "can only be used once",
            ),
            (
                "{ __typename @include(if: true, x: 1) }",
                "Unknown argument \"x\" on directive",
            ),
            (
                "{ ...F } fragment F on QueryRoot { ... on QueryRoot { __typename(x: 1) } }",
                "Unknown argument",
            ),
        ] {
            let found = fault_in(query).unwrap_or_default();
            assert!(found.contains(expected), "{query}: {found}");
        }
    }

    #[test]
    fn what_graphql_js_accepts_is_left_alone() {
        for query in [
            "query($v: Int = 3) { creators(first: $v) { totalCount } }",
            "{ __typename a: __typename @skip(if: false) b: __typename @include(if: true) }",
            "query($s: Boolean!) { me { __typename @skip(if: $s) id } }",
            // Other fields' directives are async-graphql's to check.
            "{ me @foo { id } }",
        ] {
            assert_eq!(fault_in(query), None, "{query}");
        }
    }
}

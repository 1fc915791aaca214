//! The depth limit, applied to the data a query reads and not to introspection.
//!
//! The introspection query every standard tool sends (GraphiQL's documentation explorer,
//! graphql-codegen, Apollo's and schemathesis' schema loaders: graphql-js
//! `getIntrospectionQuery`) is 15 fields deep, for its nine `ofType` levels, so a plain depth
//! limit of 12 refused it and those tools could not load the schema from the server.
//! Introspection only walks the schema in memory, so its subtrees (`__schema`, `__type`) are
//! left out of the data depth checked against `REELGRAPH_MAX_QUERY_DEPTH`; async-graphql's own
//! limit, on the whole document, stays as a backstop at [`WHOLE_DOCUMENT_DEPTH`].

use std::collections::HashSet;

use async_graphql::{
    ServerError,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// Depth of any document, introspection included (graphql-js' query is 15; room to spare).
pub const WHOLE_DOCUMENT_DEPTH: usize = 24;

/// Nesting of the fields an operation reads data through: an introspection field (`__schema`,
/// `__type`, `__typename`) counts as one level and its subtree not at all. The deepest
/// operation of the document counts; fragments are followed (a fragment that spreads itself
/// counts once; validation refuses it anyway).
pub fn data_depth(document: &ExecutableDocument) -> usize {
    document
        .operations
        .iter()
        .map(|(_, op)| depth_of(document, &op.node.selection_set.node, &mut HashSet::new()))
        .max()
        .unwrap_or(0)
}

fn depth_of<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    spreading: &mut HashSet<&'a str>,
) -> usize {
    let mut deepest = 0;
    for item in &set.items {
        let depth = match &item.node {
            Selection::Field(field) if field.node.name.node.starts_with("__") => 1,
            Selection::Field(field) => {
                1 + depth_of(document, &field.node.selection_set.node, spreading)
            }
            Selection::InlineFragment(fragment) => {
                depth_of(document, &fragment.node.selection_set.node, spreading)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get(&spread.node.fragment_name.node) {
                    Some(fragment) if spreading.insert(name) => {
                        let depth =
                            depth_of(document, &fragment.node.selection_set.node, spreading);
                        spreading.remove(name);
                        depth
                    }
                    _ => 0,
                }
            }
        };
        deepest = deepest.max(depth);
    }
    deepest
}

/// The refusal of a query that reads data deeper than `max` fields, as async-graphql words
/// its own (and with the code the contract gives it).
pub fn too_deep() -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new("Query is nested too deep.")
            .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(query: &str) -> usize {
        data_depth(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn introspection_subtrees_do_not_count_and_fragments_do() {
        assert_eq!(depth("{ a { b { c } } }"), 3);
        assert_eq!(depth("{ a { __typename } }"), 2);
        assert_eq!(
            depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"),
            1
        );
        assert_eq!(
            depth("query { a { ...F } } fragment F on A { b { ... on B { c { d } } } }"),
            4
        );
        assert_eq!(depth("query A { a } query B { a { b { c } } }"), 3);
        // A fragment spreading itself ends instead of looping.
        assert_eq!(depth("{ a { ...F } } fragment F on A { b { ...F } }"), 2);
    }
}

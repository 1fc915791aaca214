//! The depth limit, applied to the data a query reads and not to introspection.
//!
//! The introspection query every standard tool sends (GraphiQL's documentation explorer,
//! graphql-codegen, Apollo's and schemathesis' schema loaders: graphql-js
//! `getIntrospectionQuery`) is 15 fields deep, for its nine `ofType` levels, so a plain depth
//! limit of 12 refused it and those tools could not load the schema from the server.
//! Introspection only walks the schema in memory, so its subtrees (`__schema`, `__type`) are
//! left out of the data depth checked against `REELGRAPH_MAX_QUERY_DEPTH`; async-graphql's own
//! limit, on the whole document, stays as a backstop at [`WHOLE_DOCUMENT_DEPTH`].

use std::collections::{HashMap, HashSet};

use async_graphql::{
    ServerError,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

/// Depth of any document, introspection included (graphql-js' query is 15; room to spare).
pub const WHOLE_DOCUMENT_DEPTH: usize = 24;

/// Most fields a document may select once its fragments are expanded (graphql-js'
/// introspection query selects about 150). A fragment used twice in a fragment used twice …
/// doubles at each level: 40 such fragments, 2 KB of text, expand to 2^40 fields, and every
/// walk over the expanded document (async-graphql's validation among them) would run for
/// hours. Measured first, on the text as written, in time proportional to its length.
pub const MAX_EXPANDED_FIELDS: u64 = 10_000;

/// What a document selects: its data depth and how many fields it selects once expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Nesting of the fields an operation reads data through: an introspection field
    /// (`__schema`, `__type`, `__typename`) counts as one level and its subtree not at all.
    /// The deepest operation of the document counts.
    pub data_depth: usize,
    /// Fields selected by all operations with every fragment spread expanded, introspection
    /// included; saturates.
    pub expanded_fields: u64,
}

impl Shape {
    fn beside(self, other: Shape) -> Shape {
        Shape {
            data_depth: self.data_depth.max(other.data_depth),
            expanded_fields: self.expanded_fields.saturating_add(other.expanded_fields),
        }
    }
}

/// Measures `document`. Each fragment is measured once and its measure reused wherever it is
/// spread; a fragment that spreads itself counts once (validation refuses it anyway).
pub fn shape(document: &ExecutableDocument) -> Shape {
    let mut walker = Walker {
        document,
        measured: HashMap::new(),
        spreading: HashSet::new(),
    };
    document
        .operations
        .iter()
        .map(|(_, op)| walker.set(&op.node.selection_set.node))
        .fold(Shape::default(), Shape::beside)
}

struct Walker<'a> {
    document: &'a ExecutableDocument,
    measured: HashMap<&'a str, Shape>,
    spreading: HashSet<&'a str>,
}

impl<'a> Walker<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> Shape {
        let mut total = Shape::default();
        for item in &set.items {
            let shape = match &item.node {
                Selection::Field(field) => {
                    let inner = self.set(&field.node.selection_set.node);
                    let introspection = field.node.name.node.starts_with("__");
                    Shape {
                        data_depth: if introspection {
                            1
                        } else {
                            1 + inner.data_depth
                        },
                        expanded_fields: inner.expanded_fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str())
                }
            };
            total = total.beside(shape);
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> Shape {
        if let Some(shape) = self.measured.get(name) {
            return *shape;
        }
        let Some((key, fragment)) = self.document.fragments.get_key_value(name) else {
            return Shape::default();
        };
        let key = key.as_str();
        if !self.spreading.insert(key) {
            return Shape::default();
        }
        let shape = self.set(&fragment.node.selection_set.node);
        self.spreading.remove(key);
        self.measured.insert(key, shape);
        shape
    }
}

/// The refusal of a document that selects more than [`MAX_EXPANDED_FIELDS`] fields.
pub fn too_large() -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new(format!(
            "Query selects more than {MAX_EXPANDED_FIELDS} fields once its fragments are expanded."
        ))
        .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
    )
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
        shape(&async_graphql::parser::parse_query(query).expect("parses")).data_depth
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

    #[test]
    fn fragments_count_each_time_they_are_spread_and_are_measured_once() {
        let shape_of =
            |query: &str| shape(&async_graphql::parser::parse_query(query).expect("parses"));
        assert_eq!(
            shape_of("{ a { ...F ...F } b } fragment F on A { c { d } }").expanded_fields,
            1 + 2 * 2 + 1
        );
        // 60 fragments, each spreading the next twice: 2^60 fields as written out, measured
        // in a moment (the test would not end otherwise).
        let mut query = String::from("{ ...F0 }");
        for n in 0..60 {
            query.push_str(&format!(
                " fragment F{n} on Query {{ ...F{} ...F{} }}",
                n + 1,
                n + 1
            ));
        }
        query.push_str(" fragment F60 on Query { a { b } }");
        let shape = shape_of(&query);
        assert_eq!(shape.expanded_fields, 2u64.pow(61));
        assert_eq!(shape.data_depth, 2);
        assert!(shape.expanded_fields > MAX_EXPANDED_FIELDS);
    }
}

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

/// Most selections (fields, fragment spreads and inline fragments) a document may hold once its
/// fragments are expanded (graphql-js' introspection query holds about 170). Spreads count
/// too: 28,000 operations spreading one fragment of 10,000 spreads select few fields but cost
/// every walk 2.8 × 10^8 steps. A fragment used twice in a fragment used twice …
/// doubles at each level: 40 such fragments, 2 KB of text, expand to 2^40 fields, and every
/// walk over the expanded document (async-graphql's validation among them) would run for
/// hours. Measured first, on the text as written, in time proportional to its length.
pub const MAX_EXPANDED_SELECTIONS: u64 = 10_000;

/// What a document selects: its data depth and how many fields it selects once expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Nesting of the fields an operation reads data through: an introspection field
    /// (`__schema`, `__type`, `__typename`) counts as one level and its subtree not at all.
    /// The deepest operation of the document counts.
    pub data_depth: usize,
    /// Fields, fragment spreads and inline fragments of all operations with every fragment
    /// spread expanded, introspection included; saturates.
    pub expanded_selections: u64,
    /// [`nesting`]. Past [`MAX_NESTING`] nothing else is measured.
    pub nesting: usize,
    /// Whether it reads the schema (`__schema` or `__type`, in an operation or a fragment),
    /// and so must run where introspection lists count against the request's list budget
    /// ([`super::Schemas`]).
    pub introspects: bool,
}

impl Shape {
    /// Whether walks over the document as expanded end soon: it nests no deeper than
    /// [`MAX_NESTING`] and holds no more than [`MAX_EXPANDED_SELECTIONS`] selections.
    pub fn is_bounded(&self) -> bool {
        self.nesting <= MAX_NESTING && self.expanded_selections <= MAX_EXPANDED_SELECTIONS
    }

    /// With one more selection.
    fn and_one(self) -> Shape {
        Shape {
            expanded_selections: self.expanded_selections.saturating_add(1),
            ..self
        }
    }

    fn beside(self, other: Shape) -> Shape {
        Shape {
            data_depth: self.data_depth.max(other.data_depth),
            expanded_selections: self
                .expanded_selections
                .saturating_add(other.expanded_selections),
            nesting: self.nesting.max(other.nesting),
            introspects: self.introspects || other.introspects,
        }
    }
}

/// Deepest nesting of brackets (`{`, `[`, `(`) a query text may have, checked on the text
/// before anything parses it. The parser, and every walk over a literal value, recurse once
/// per level with no limit of their own: one request of `first: [[[…]]]` 400 levels deep (a
/// kilobyte) overflowed the stack and aborted the process. Selection sets stop at 64 levels
/// and stored JSON at 32; graphql-js' introspection query nests about 20.
pub const MAX_TEXT_NESTING: usize = 128;

/// How deeply the brackets of a query text nest, outside strings and comments; it stops
/// counting past [`MAX_TEXT_NESTING`].
pub fn text_nesting(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                let start = i;
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                // Never closed, it is no block string to the parser, which reads `""` as an
                // empty string and goes on: so does this count.
                i = if i >= bytes.len() { start + 1 } else { i + 2 };
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_TEXT_NESTING {
                    return deepest;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// The refusal of a query text nested deeper than [`MAX_TEXT_NESTING`].
pub fn text_too_nested() -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new(format!(
            "The query nests brackets deeper than {MAX_TEXT_NESTING} levels."
        ))
        .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
    )
}

/// Deepest nesting a document may have, as async-graphql counts it (`limit_recursive_depth`):
/// a field's selection set, an inline fragment and a fragment spread each go one level down.
pub const MAX_NESTING: usize = 64;

/// How deeply `document` nests ([`MAX_NESTING`]), `usize::MAX` when a fragment spreads itself
/// (directly or not). Every other walk over a document recurses once per level, and nothing
/// else bounds a chain of fragments each spreading the next: 26,000 of them, in under 1 MB,
/// overflowed the stack and aborted the process. So this one recurses within one definition
/// only (which the parser bounds) and goes from fragment to fragment with a stack of its own,
/// measuring each fragment once. Every fragment defined counts, spread or not: validation
/// walks each definition (a chain no operation spreads overflowed it as well).
pub fn nesting(document: &ExecutableDocument) -> usize {
    let mut measured: HashMap<&str, usize> = HashMap::new();
    let mut deepest = 0;
    let sets = document
        .operations
        .iter()
        .map(|(_, operation)| &operation.node.selection_set.node)
        .chain(
            document
                .fragments
                .values()
                .map(|fragment| &fragment.node.selection_set.node),
        );
    for set in sets {
        loop {
            match within(document, set, &measured) {
                Ok(depth) => {
                    deepest = deepest.max(depth);
                    break;
                }
                Err(unmeasured) => {
                    if !measure(document, unmeasured, &mut measured) {
                        return usize::MAX;
                    }
                }
            }
        }
    }
    deepest
}

/// Measures the fragments in `first` and those they spread, depth first, without recursion.
/// False when one spreads itself.
fn measure<'a>(
    document: &'a ExecutableDocument,
    first: Vec<&'a str>,
    measured: &mut HashMap<&'a str, usize>,
) -> bool {
    // Fragments whose spreads are being measured: reaching one of them again is a cycle.
    let mut open: HashSet<&str> = HashSet::new();
    let mut stack = first;
    while let Some(&name) = stack.last() {
        if measured.contains_key(name) {
            stack.pop();
            continue;
        }
        let Some(fragment) = document.fragments.get(name) else {
            stack.pop();
            continue;
        };
        match within(document, &fragment.node.selection_set.node, measured) {
            Ok(depth) => {
                measured.insert(name, depth);
                open.remove(name);
                stack.pop();
            }
            Err(unmeasured) => {
                if !open.insert(name) || unmeasured.iter().any(|n| open.contains(n)) {
                    return false;
                }
                stack.extend(unmeasured);
            }
        }
    }
    true
}

/// How deeply `set` nests, with its fragments' depths from `measured`; or the fragments it
/// spreads that are not measured yet (unknown ones count as empty, for validation to refuse).
fn within<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    measured: &HashMap<&'a str, usize>,
) -> Result<usize, Vec<&'a str>> {
    let mut unmeasured = Vec::new();
    let depth = within_set(document, set, measured, &mut unmeasured);
    if unmeasured.is_empty() {
        Ok(depth)
    } else {
        Err(unmeasured)
    }
}

fn within_set<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    measured: &HashMap<&'a str, usize>,
    unmeasured: &mut Vec<&'a str>,
) -> usize {
    let mut deepest = 0;
    for item in &set.items {
        let depth = match &item.node {
            Selection::Field(field) if field.node.selection_set.node.items.is_empty() => 0,
            Selection::Field(field) => {
                1 + within_set(
                    document,
                    &field.node.selection_set.node,
                    measured,
                    unmeasured,
                )
            }
            Selection::InlineFragment(fragment) => {
                1 + within_set(
                    document,
                    &fragment.node.selection_set.node,
                    measured,
                    unmeasured,
                )
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match document.fragments.get_key_value(name) {
                    None => 0,
                    Some((name, _)) => match measured.get(name.as_str()) {
                        Some(depth) => depth.saturating_add(1),
                        None => {
                            unmeasured.push(name.as_str());
                            0
                        }
                    },
                }
            }
        };
        deepest = deepest.max(depth);
    }
    deepest
}

/// The refusal of a document nested deeper than [`MAX_NESTING`], or whose fragments spread
/// themselves.
pub fn too_nested() -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new(format!(
            "The recursion depth of the query cannot be greater than `{MAX_NESTING}` (or a \
             fragment spreads itself)."
        ))
        .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
    )
}

/// The data depth ([`Shape::data_depth`]) of each operation of a bounded document, by name: a
/// request runs one of them (GraphiQL sends every operation in its editor with the name of
/// the one to run), and only that one's depth is held against the limit.
pub fn operation_depths(document: &ExecutableDocument) -> Vec<(Option<String>, usize)> {
    let mut walker = Walker {
        document,
        measured: HashMap::new(),
        spreading: HashSet::new(),
    };
    document
        .operations
        .iter()
        .map(|(name, op)| {
            let depth = walker.set(&op.node.selection_set.node).data_depth;
            (name.map(|n| n.to_string()), depth)
        })
        .collect()
}

/// Measures `document`. Each fragment is measured once and its measure reused wherever it is
/// spread; a fragment that spreads itself counts once (validation refuses it anyway).
pub fn shape(document: &ExecutableDocument) -> Shape {
    let nesting = nesting(document);
    if nesting > MAX_NESTING {
        return Shape {
            nesting,
            ..Shape::default()
        };
    }
    let mut walker = Walker {
        document,
        measured: HashMap::new(),
        spreading: HashSet::new(),
    };
    let shape = document
        .operations
        .iter()
        .map(|(_, op)| walker.set(&op.node.selection_set.node))
        .fold(Shape::default(), Shape::beside);
    // Validation also expands the fragments no operation spreads (which it then refuses as
    // unused): a thousand of them each spreading one wide one cost as much as an operation
    // spreading them. Those the operations spread are counted there already.
    let reached: HashSet<&str> = walker.measured.keys().copied().collect();
    let unreached: Vec<&str> = document
        .fragments
        .keys()
        .map(|name| name.as_str())
        .filter(|name| !reached.contains(name))
        .collect();
    let definitions = unreached
        .into_iter()
        .map(|name| walker.fragment(name).expanded_selections)
        .fold(0u64, u64::saturating_add);
    Shape {
        nesting,
        expanded_selections: shape.expanded_selections.saturating_add(definitions),
        ..shape
    }
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
                    let name = field.node.name.node.as_str();
                    let introspection = name.starts_with("__");
                    Shape {
                        data_depth: if introspection {
                            1
                        } else {
                            1 + inner.data_depth
                        },
                        expanded_selections: inner.expanded_selections.saturating_add(1),
                        nesting: 0,
                        introspects: inner.introspects || matches!(name, "__schema" | "__type"),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.set(&fragment.node.selection_set.node).and_one()
                }
                Selection::FragmentSpread(spread) => self
                    .fragment(spread.node.fragment_name.node.as_str())
                    .and_one(),
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

/// The refusal of a document that selects more than [`MAX_EXPANDED_SELECTIONS`] fields.
pub fn too_large() -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new(format!(
            "Query holds more than {MAX_EXPANDED_SELECTIONS} fields and fragments once its \
             fragments are expanded."
        ))
        .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
    )
}

/// The refusal of a query that reads data `depth` fields deep, deeper than `max`, in
/// async-graphql's words with the figures (and the code the contract gives it).
pub fn too_deep(depth: usize, max: usize) -> ServerError {
    use async_graphql::ErrorExtensions;
    crate::error::request_error(
        async_graphql::Error::new(format!(
            "Query is nested too deep: it reads fields {depth} levels deep, and this server's \
             limit is {max}."
        ))
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
    fn reading_the_schema_is_seen_wherever_it_is_written() {
        let introspects =
            |q: &str| shape(&async_graphql::parser::parse_query(q).expect("parses")).introspects;
        assert!(introspects("{ __schema { types { name } } }"));
        assert!(introspects(
            "{ me { id } t: __type(name: \"Video\") { name } }"
        ));
        assert!(introspects(
            "{ ...F } fragment F on QueryRoot { __schema { __typename } }"
        ));
        assert!(introspects(
            "{ ... on QueryRoot { __type(name: \"A\") { name } } }"
        ));
        assert!(introspects(
            "query A { me { id } } query B { __schema { __typename } }"
        ));
        assert!(!introspects("{ __typename me { __typename id } }"));
        assert!(!introspects(
            "{ me { id } } fragment F on User { __typename }"
        ));
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
        // A fragment spreading itself ends instead of looping, unmeasured.
        let cyclic = "{ a { ...F } } fragment F on A { b { ...F } }";
        let cyclic = shape(&async_graphql::parser::parse_query(cyclic).expect("parses"));
        assert!(!cyclic.is_bounded());
    }

    #[test]
    fn fragments_count_each_time_they_are_spread_and_are_measured_once() {
        let shape_of =
            |query: &str| shape(&async_graphql::parser::parse_query(query).expect("parses"));
        assert_eq!(
            shape_of("{ a { ...F ...F } b } fragment F on A { c { d } }").expanded_selections,
            1 + 2 * (1 + 2) + 1
        );
        // A fragment no operation spreads counts as well: validation expands it.
        assert_eq!(
            shape_of("{ a } fragment F on A { c { d } } fragment G on A { ...F }")
                .expanded_selections,
            1 + 2 + (1 + 2)
        );
        assert_eq!(shape_of("{ a { ... on A { b } } }").expanded_selections, 3);
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
        // 2^61 fields, and 1 + 2 + 4 + … + 2^60 spreads.
        assert_eq!(shape.expanded_selections, 2u64.pow(61) + 2u64.pow(61) - 1);
        assert_eq!(shape.data_depth, 2);
        assert!(shape.expanded_selections > MAX_EXPANDED_SELECTIONS);
        assert_eq!(shape.nesting, 62);
    }

    fn nesting_of(query: &str) -> usize {
        nesting(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn text_nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(text_nesting("{ a { b(x: [1, [2]]) } }"), 5);
        assert_eq!(text_nesting("{ a(s: \"{{{[[[\") }"), 2);
        assert_eq!(text_nesting("{ a(s: \"\\\"{{{\") }"), 2);
        assert_eq!(text_nesting("{ a(s: \"\"\"{{{ \\\"\"\" ((( \"\"\") }"), 2);
        assert_eq!(text_nesting("# {{{{\n{ a }"), 1);
        // A block string never closed is two empty strings and what follows, as the parser
        // reads it.
        let unclosed = format!(
            "{{ a(x: [\"\"\"\"{}1{}]) }}",
            "[".repeat(500),
            "]".repeat(500)
        );
        assert!(text_nesting(&unclosed) > MAX_TEXT_NESTING);
        assert_eq!(text_nesting("{ a(x: \"\"\"\") }"), 2);
        let deep = format!("{{ a(x: {}1{}) }}", "[".repeat(500), "]".repeat(500));
        assert!(text_nesting(&deep) > MAX_TEXT_NESTING);
        let fine = format!("{{ a(x: {}1{}) }}", "[".repeat(100), "]".repeat(100));
        assert_eq!(text_nesting(&fine), 102);
    }

    #[test]
    fn nesting_counts_selection_sets_inline_fragments_and_spreads() {
        assert_eq!(nesting_of("{ a }"), 0);
        assert_eq!(nesting_of("{ a { b { c } } }"), 2);
        assert_eq!(nesting_of("{ ... on Q { a { b } } }"), 2);
        assert_eq!(
            nesting_of("{ a { ...F } } fragment F on A { b { ...G } } fragment G on B { c }"),
            4
        );
        // Each operation on its own; the deepest counts.
        assert_eq!(
            nesting_of("query A { a } query B { a { ...F } } fragment F on A { b }"),
            2
        );
        // An unknown fragment counts as empty (validation refuses it).
        assert_eq!(nesting_of("{ a { ...Nope } }"), 1);
    }

    #[test]
    fn a_fragment_spreading_itself_is_unbounded() {
        assert_eq!(
            nesting_of("{ ...A } fragment A on Q { a { ...A } }"),
            usize::MAX
        );
        assert_eq!(
            nesting_of(
                "{ ...A } fragment A on Q { ...B } fragment B on Q { c ...C } fragment C on Q { ...A }"
            ),
            usize::MAX
        );
        // Spread twice, side by side, is no cycle.
        assert_eq!(
            nesting_of("{ ...A ...B } fragment A on Q { ...B ...B } fragment B on Q { c { d } }"),
            3
        );
    }

    #[test]
    fn a_long_chain_is_measured_without_recursing_through_it() {
        // 100,000 levels: recursing once a level would overflow a thread's stack.
        let mut query = String::from("{ ...f0 }");
        for n in 0..100_000 {
            query.push_str(&format!(" fragment f{n} on Q {{ ...f{} }}", n + 1));
        }
        query.push_str(" fragment f100000 on Q { a }");
        assert_eq!(nesting_of(&query), 100_001);
        let shape = shape(&async_graphql::parser::parse_query(&query).expect("parses"));
        assert!(!shape.is_bounded());
        assert_eq!(shape.expanded_selections, 0, "nothing else measured");
    }
}

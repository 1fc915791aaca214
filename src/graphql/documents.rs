//! Parsed GraphQL documents, kept by query text.
//!
//! Clients send the same few operations over and over (generated clients and SPAs hold their
//! queries as constants), and async-graphql parses each request's text anew: on a one-video
//! query parsing was 11 % of the server's CPU (`perf`, read benchmark Q1), and the field names
//! the read path narrows its columns by ([`super::narrow`]) came from a second parse. A parsed
//! document depends on nothing but its text, so it is parsed once and handed to the schema
//! (`Request::set_parsed_query`); validation, depth limits and `@skip`/`@include` still run
//! per request, on a copy. Texts that do not parse are not kept: the schema parses them again
//! and reports the error with its position.

use std::{collections::HashSet, sync::Arc};

use async_graphql::parser::{
    parse_query,
    types::{ExecutableDocument, OperationType, Selection, SelectionSet},
};
use quick_cache::{Weighter, sync::Cache};

/// A document and what the read path needs to know of it.
pub struct ParsedDocument {
    pub document: ExecutableDocument,
    /// Every field name selected in any operation or fragment of the document; `None` when it
    /// holds a mutation or a subscription (their resolvers read whole rows).
    pub query_fields: Option<HashSet<String>>,
    /// Its shape, and what is wrong in it as written ([`super::inputs::measure`]).
    pub measured: super::inputs::Measured,
    /// The document to run when an object of it may be left with no field selected
    /// ([`super::empty::keep_objects`]); its answers are then [`super::empty::strip`]ped.
    pub kept: Option<ExecutableDocument>,
}

impl ParsedDocument {
    /// What the checks before execution need ([`super::inputs::refusal`]).
    pub fn facts(&self) -> super::inputs::DocumentFacts<'_> {
        self.measured.facts(&self.document)
    }

    pub fn parse(query: &str) -> Option<Self> {
        let document = parse_query(query).ok()?;
        let query_fields = document
            .operations
            .iter()
            .all(|(_, op)| op.node.ty == OperationType::Query)
            .then(|| field_names(&document));
        Some(Self {
            measured: super::inputs::measure(&document),
            kept: super::empty::keep_objects(&document),
            document,
            query_fields,
        })
    }
}

fn field_names(document: &ExecutableDocument) -> HashSet<String> {
    fn walk(set: &SelectionSet, names: &mut HashSet<String>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    names.insert(field.node.name.node.to_string());
                    walk(&field.node.selection_set.node, names);
                }
                Selection::InlineFragment(fragment) => {
                    walk(&fragment.node.selection_set.node, names)
                }
                // The fragment's own definition is walked below.
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    let mut names = HashSet::new();
    for (_, operation) in document.operations.iter() {
        walk(&operation.node.selection_set.node, &mut names);
    }
    for fragment in document.fragments.values() {
        walk(&fragment.node.selection_set.node, &mut names);
    }
    names
}

/// Weighs an entry by its text, at the worst case: a selection as short as `a ` (two bytes)
/// becomes a parsed field of about 200 bytes, so 128 bytes are counted per byte of text;
/// three times that with a second copy to run ([`ParsedDocument::kept`], which adds a
/// field of about 200 bytes per selection set: `a{...F}` is 7 bytes).
#[derive(Clone)]
struct ByTextSize;

impl Weighter<String, Arc<ParsedDocument>> for ByTextSize {
    fn weight(&self, query: &String, parsed: &Arc<ParsedDocument>) -> u64 {
        let copies = if parsed.kept.is_some() { 3 } else { 1 };
        1024 + copies * 128 * query.len() as u64
    }
}

/// Parsed documents by query text, bounded by an estimate of their size in memory.
pub struct DocumentCache {
    documents: Cache<String, Arc<ParsedDocument>, ByTextSize>,
}

impl DocumentCache {
    /// At most about 64 MiB of parsed documents, whatever clients send: some 500 documents
    /// of 1 KiB of text (an application's operations are a few hundred at most), fewer
    /// longer ones.
    const WEIGHT: u64 = 64 << 20;
    /// Longer texts are parsed per request (the body limit caps them).
    const MAX_TEXT: usize = 16 << 10;

    pub fn new() -> Self {
        Self {
            documents: Cache::with_weighter(512, Self::WEIGHT, ByTextSize),
        }
    }

    /// The parsed document for `query`, or `None` when it does not parse.
    pub fn get(&self, query: &str) -> Option<Arc<ParsedDocument>> {
        if let Some(parsed) = self.documents.get(query) {
            return Some(parsed);
        }
        let parsed = Arc::new(ParsedDocument::parse(query)?);
        if query.len() <= Self::MAX_TEXT {
            self.documents.insert(query.to_owned(), parsed.clone());
        }
        Some(parsed)
    }
}

impl Default for DocumentCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_from_operations_and_fragments() {
        let parsed = ParsedDocument::parse(
            "query Q { creators { nodes { ...C ... on Creator { bio } } } } fragment C on Creator { genres }",
        )
        .expect("parses");
        let fields = parsed.query_fields.expect("a query");
        for name in ["creators", "nodes", "bio", "genres"] {
            assert!(fields.contains(name), "{name}");
        }
        assert!(!fields.contains("socialLinks"));
        assert!(ParsedDocument::parse("{ not valid").is_none());
        let with_mutation =
            ParsedDocument::parse("query A { a } mutation B { b { c } }").expect("parses");
        assert!(with_mutation.query_fields.is_none());
    }

    #[test]
    fn a_document_is_parsed_once_and_shared() {
        let cache = DocumentCache::new();
        let first = cache.get("{ a { b } }").expect("parses");
        let second = cache.get("{ a { b } }").expect("parses");
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(
            &first,
            &cache.get("{ a { c } }").expect("parses")
        ));
        assert!(cache.get("{ a {").is_none());
        let long = format!("{{ a {} }}", " ".repeat(DocumentCache::MAX_TEXT));
        let once = cache.get(&long).expect("parses");
        assert!(!Arc::ptr_eq(&once, &cache.get(&long).expect("parses")));
    }
}

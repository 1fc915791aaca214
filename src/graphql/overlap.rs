//! Fields that share a response key must be one field (GraphQL spec, Field Selection Merging:
//! FieldsInSetCanMerge and SameResponseShape). async-graphql 7's rule compares only fields
//! written side by side in one selection set on one type condition, so `{ a: creators { … }
//! ... on QueryRoot { a: videos { … } } }` and `{ me { x: id } me { x: email } }` ran, and
//! whichever field finished first filled the key: a different answer from call to call.
//! graphql-js, and every client that checks documents against the schema, refuses them.
//!
//! The check works level by level. All fields under one response key at one level are a
//! group; the group's sub-selections, together, make the groups of the next level. Each field
//! carries the types it and its ancestors were selected on, since two fields selected on
//! different object types can never both apply (they may then differ in name and arguments,
//! but not in the shape of what they return). So every field is looked at once per check,
//! however many share a key, and fields selected alike are compared with one of their kind
//! instead of with each other. Fields of one key selected under different type conditions are compared
//! kind with kind, which can grow with the square of the kinds: every comparison counts
//! against [`MAX_COMPARISONS`], past which the document is refused as too complex (it runs
//! only on documents within [`super::depth::MAX_EXPANDED_SELECTIONS`]).

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use async_graphql::{
    ErrorExtensions, Pos, Positioned, ServerError,
    parser::types::{BaseType, ExecutableDocument, Field, Selection, SelectionSet, Type},
};

use super::variables::{TYPES, Types, root_type};

/// Most comparisons between fields of one key that one document may take; past it the
/// document is refused as too complex. Documents people write take a few hundred.
const MAX_COMPARISONS: usize = 100_000;

/// The first pair of fields in `document` that share a response key but cannot be merged,
/// as the error that refuses the document (`BAD_USER_INPUT`, with both fields' locations).
pub fn conflict(document: &ExecutableDocument) -> Option<ServerError> {
    conflict_within(document, MAX_COMPARISONS)
}

/// [`conflict`], refusing the document as too complex past `budget` comparisons.
fn conflict_within(document: &ExecutableDocument, budget: usize) -> Option<ServerError> {
    let types = &*TYPES;
    let mut check = Check {
        types,
        document,
        comparisons: 0,
        budget,
    };
    document.operations.iter().find_map(|(_, operation)| {
        let root = root_type(types, operation.node.ty);
        let mut groups = Groups::default();
        let mut spread = HashSet::new();
        check.collect(
            &[],
            root,
            &operation.node.selection_set.node,
            &mut spread,
            &mut groups,
        );
        check.groups(groups).map(Found::into_error)
    })
}

/// A field under a response key, with where it was selected.
struct Entry<'a> {
    field: &'a Positioned<Field>,
    /// The type it is selected on, after the types its ancestors in the check were.
    path: Vec<&'a str>,
    ty: &'a Type,
    /// The named type it returns (lists and non-null unwrapped).
    returns: &'a str,
}

/// Fields by response key, keys in the order first seen.
#[derive(Default)]
struct Groups<'a> {
    keys: Vec<&'a str>,
    entries: HashMap<&'a str, Vec<Entry<'a>>>,
}

/// Why two fields cannot be merged, with the keys above them.
struct Found {
    keys: Vec<String>,
    reason: String,
    at: [Pos; 2],
}

impl Found {
    fn between(reason: String, a: &Entry<'_>, b: &Entry<'_>) -> Found {
        let at = if reason == TOO_MANY {
            [Pos::default(); 2]
        } else {
            [a.field.pos, b.field.pos]
        };
        Found {
            keys: Vec::new(),
            reason,
            at,
        }
    }

    fn into_error(self) -> ServerError {
        if self.at == [Pos::default(); 2] {
            return crate::error::request_error(
                async_graphql::Error::new(self.reason)
                    .extend_with(|_, e| e.set("code", "QUERY_TOO_COMPLEX")),
            );
        }
        let mut keys = self.keys.iter().rev();
        let mut message = format!(
            "Fields \"{}\" conflict because ",
            keys.next().map_or("", String::as_str)
        );
        for key in keys {
            message.push_str(&format!("subfields \"{key}\" conflict because "));
        }
        message.push_str(&self.reason);
        message.push_str(
            ". Use different aliases on the fields to fetch both if this was intentional.",
        );
        let mut error = super::rules::refusal(message, self.at[0]);
        error.locations.push(self.at[1]);
        error
    }
}

static TYPENAME: LazyLock<Type> = LazyLock::new(|| Type::new("String!").expect("a type"));
static SCHEMA: LazyLock<Type> = LazyLock::new(|| Type::new("__Schema!").expect("a type"));
static TYPE: LazyLock<Type> = LazyLock::new(|| Type::new("__Type").expect("a type"));

struct Check<'a> {
    types: &'a Types,
    document: &'a ExecutableDocument,
    comparisons: usize,
    /// Most comparisons this check may take ([`MAX_COMPARISONS`]).
    budget: usize,
}

impl<'a> Check<'a> {
    /// Adds the fields `set` selects on `parent` (under ancestors selected on `above`) to
    /// `groups`, through inline fragments and each named fragment once. Fields the schema
    /// lacks are left out: validation refuses them.
    fn collect(
        &self,
        above: &[&'a str],
        parent: &'a str,
        set: &'a SelectionSet,
        spread: &mut HashSet<&'a str>,
        groups: &mut Groups<'a>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let ty: &'a Type = match name {
                        "__typename" => &TYPENAME,
                        "__schema" => &SCHEMA,
                        "__type" => &TYPE,
                        _ => match self.types.outputs.get(parent).and_then(|f| f.get(name)) {
                            Some(known) => &known.ty,
                            None => continue,
                        },
                    };
                    let key = field.node.response_key().node.as_str();
                    let mut path = above.to_vec();
                    path.push(parent);
                    let entry = Entry {
                        field,
                        path,
                        ty,
                        returns: named(ty),
                    };
                    match groups.entries.get_mut(key) {
                        Some(entries) => entries.push(entry),
                        None => {
                            groups.keys.push(key);
                            groups.entries.insert(key, vec![entry]);
                        }
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment.node.type_condition.as_ref();
                    let on = on.map_or(parent, |c| c.node.on.node.as_str());
                    let inner = &fragment.node.selection_set.node;
                    self.collect(above, on, inner, spread, groups);
                }
                Selection::FragmentSpread(name) => {
                    let name = name.node.fragment_name.node.as_str();
                    let Some((name, fragment)) = self.document.fragments.get_key_value(name) else {
                        continue;
                    };
                    if spread.insert(name.as_str()) {
                        let on = fragment.node.type_condition.node.on.node.as_str();
                        let inner = &fragment.node.selection_set.node;
                        self.collect(above, on, inner, spread, groups);
                    }
                }
            }
        }
    }

    /// Checks each group of `groups`, then the groups their sub-selections make.
    fn groups(&mut self, groups: Groups<'a>) -> Option<Found> {
        let Groups { keys, mut entries } = groups;
        for key in keys {
            let group = entries.remove(key).unwrap_or_default();
            if let Some(mut found) = self.group(&group) {
                found.keys.push(key.to_owned());
                return Some(found);
            }
            let mut next = Groups::default();
            for entry in &group {
                let mut spread = HashSet::new();
                let set = &entry.field.node.selection_set.node;
                self.collect(&entry.path, entry.returns, set, &mut spread, &mut next);
            }
            if let Some(mut found) = self.groups(next) {
                found.keys.push(key.to_owned());
                return Some(found);
            }
        }
        None
    }

    /// The first pair of `group` (fields under one key) that cannot be merged at this level.
    fn group(&mut self, group: &[Entry<'a>]) -> Option<Found> {
        // Fields that may both apply must be the same field with the same arguments. Fields
        // selected on the same types all may; one of each such kind stands for the others.
        let mut kinds: Vec<&Entry<'a>> = Vec::new();
        let mut kind_of: HashMap<&[&'a str], usize> = HashMap::new();
        for entry in group {
            match kind_of.get(entry.path.as_slice()) {
                Some(&kind) => {
                    if let Some(reason) = self.same_field(kinds[kind], entry) {
                        return Some(Found::between(reason, kinds[kind], entry));
                    }
                }
                None => {
                    kind_of.insert(&entry.path, kinds.len());
                    kinds.push(entry);
                }
            }
        }
        for (i, a) in kinds.iter().enumerate() {
            for b in &kinds[i + 1..] {
                // Every pair counts, those that never both apply too: 4,096 kinds under one
                // key (16 type conditions at each of three levels) are 8 million pairs.
                self.comparisons += 1;
                if self.comparisons > self.budget {
                    return Some(Found::between(TOO_MANY.to_owned(), a, b));
                }
                if self.exclusive(a, b) {
                    continue;
                }
                if let Some(reason) = self.same_field(a, b) {
                    return Some(Found::between(reason, a, b));
                }
            }
        }
        let first = group.first()?;
        // Shapes must agree between any two, so with the first.
        for entry in &group[1..] {
            if let Some(reason) = self.same_shape(first.ty, entry.ty) {
                return Some(Found::between(reason, first, entry));
            }
        }
        None
    }

    /// Why `a` and `b`, which may both apply, are not one field, if they are not.
    fn same_field(&mut self, a: &Entry<'a>, b: &Entry<'a>) -> Option<String> {
        self.comparisons += 1;
        if self.comparisons > self.budget {
            return Some(TOO_MANY.to_owned());
        }
        let (x, y) = (&a.field.node, &b.field.node);
        if x.name.node != y.name.node {
            return Some(format!(
                "\"{}\" and \"{}\" are different fields",
                x.name.node, y.name.node
            ));
        }
        let same_arguments = x.arguments.len() == y.arguments.len()
            && x.arguments.iter().all(|(name, value)| {
                y.get_argument(&name.node)
                    .is_some_and(|other| other.node == value.node)
            });
        (!same_arguments).then(|| "they have differing arguments".to_owned())
    }

    /// Whether `a` and `b` can never both apply: at some level they were selected on two
    /// different object types.
    fn exclusive(&self, a: &Entry<'a>, b: &Entry<'a>) -> bool {
        a.path.iter().zip(&b.path).any(|(x, y)| {
            x != y && self.types.objects.contains(*x) && self.types.objects.contains(*y)
        })
    }

    /// Why values of types `a` and `b` cannot share a key, if they cannot: lists and non-null
    /// must match, and leaves must be of one type.
    fn same_shape(&mut self, a: &Type, b: &Type) -> Option<String> {
        self.comparisons += 1;
        if self.comparisons > self.budget {
            return Some(TOO_MANY.to_owned());
        }
        let conflicting = || Some(format!("they return conflicting types \"{a}\" and \"{b}\""));
        let (mut x, mut y) = (a, b);
        loop {
            if x.nullable != y.nullable {
                return conflicting();
            }
            match (&x.base, &y.base) {
                (BaseType::List(i), BaseType::List(j)) => (x, y) = (i, j),
                (BaseType::Named(i), BaseType::Named(j)) => {
                    let leaf = |name: &str| !self.composite(name);
                    return ((leaf(i) || leaf(j)) && i != j).then(conflicting).flatten();
                }
                _ => return conflicting(),
            }
        }
    }

    fn composite(&self, name: &str) -> bool {
        name.starts_with("__")
            || self.types.outputs.contains_key(name)
            || self.types.unions.contains(name)
    }
}

const TOO_MANY: &str = "The query selects too many fields under the same names to check.";

/// The named type under `ty`'s lists and non-null.
fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(item) => named(item),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict_in(query: &str) -> Option<String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        conflict(&document).map(|e| e.message)
    }

    #[test]
    fn one_field_under_one_key_is_fine_however_it_is_written() {
        for query in [
            "{ me { id } me { id email } }",
            "{ me { id } ... on QueryRoot { me { email } } }",
            "query { ...A ...A me { id } } fragment A on QueryRoot { me { id } }",
            "{ a: creators(first: 1) { totalCount } a: creators(first: 1) { nodes { id } } }",
            "query($n: Int) { a: creators(first: $n) { totalCount } a: creators(first: $n) { totalCount } }",
            "{ __typename a: __typename }",
            // Different object types never both apply: names and arguments may differ.
            "{ node(id: \"x\") { ... on Video { title } ... on Creator { title: name } } }",
        ] {
            assert_eq!(conflict_in(query), None, "{query}");
        }
    }

    #[test]
    fn different_fields_or_arguments_under_one_key_are_refused() {
        let cases = [
            (
                "{ a: creators(first: 1) { totalCount } ... on QueryRoot { a: videos(first: 1) { totalCount } } }",
                "Fields \"a\" conflict because \"creators\" and \"videos\" are different fields",
            ),
            (
                "{ me { x: id } me { x: email } }",
                "Fields \"me\" conflict because subfields \"x\" conflict because \"id\" and \"email\" are different fields",
            ),
            (
                "{ a: creators(first: 1) { totalCount } a: creators(first: 2) { totalCount } }",
                "they have differing arguments",
            ),
            (
                "{ a: creators(first: 1) { totalCount } a: creators { totalCount } }",
                "they have differing arguments",
            ),
            (
                "{ ...A me { id: email } } fragment A on QueryRoot { me { id } }",
                "\"id\" and \"email\" are different fields",
            ),
            ("{ a: __typename a: me { id } }", "are different fields"),
            // On an interface, both may apply.
            (
                "{ node(id: \"x\") { ... on Node { id } ... on Video { id: title } } }",
                "\"id\" and \"title\" are different fields",
            ),
        ];
        for (query, expected) in cases {
            let found = conflict_in(query).unwrap_or_default();
            assert!(found.contains(expected), "{query}: {found}");
        }
    }

    #[test]
    fn fields_that_never_both_apply_must_still_return_one_shape() {
        // `Highlight.durationSecs` is `Float!`, `Short.durationSecs` is `Float`.
        let query = "{ node(id: \"x\") { ... on Highlight { durationSecs } ... on Short { durationSecs } } }";
        let found = conflict_in(query).unwrap_or_default();
        assert!(
            found.contains("they return conflicting types \"Float!\" and \"Float\""),
            "{found}"
        );
        let query =
            "{ node(id: \"x\") { ... on Video { x: title } ... on Creator { x: followerCount } } }";
        let found = conflict_in(query).unwrap_or_default();
        assert!(found.contains("conflicting types"), "{found}");
        let error =
            conflict(&async_graphql::parser::parse_query(query).expect("parses")).expect("refused");
        assert_eq!(error.locations.len(), 2);
    }

    #[test]
    fn every_pair_of_kinds_counts_against_the_budget() {
        // Eight object types under one key: 28 pairs, none of which both apply. They are
        // compared without a word, and past a budget of 20 the document is too complex.
        let many: String = [
            "Video",
            "Creator",
            "Highlight",
            "Short",
            "Job",
            "KeyMoment",
            "VideoConsent",
            "User",
        ]
        .iter()
        .map(|t| format!("... on {t} {{ k: __typename }} "))
        .collect();
        let query = format!("{{ node(id: \"x\") {{ {many} }} }}");
        let document = async_graphql::parser::parse_query(&query).expect("parses");
        assert!(conflict_within(&document, 100).is_none());
        let refused = conflict_within(&document, 20).expect("refused");
        assert_eq!(refused.message, TOO_MANY);
        assert!(refused.locations.is_empty());
    }

    #[test]
    fn many_fields_under_one_key_are_checked_in_one_pass() {
        // 5,000 copies compare with one of their kind, not with each other.
        let query = format!("{{ {} }}", "a: me { id } ".repeat(5_000));
        assert_eq!(conflict_in(&query), None);
        let query = format!(
            "{{ {} a: me {{ id: email }} }}",
            "a: me { id } ".repeat(5_000)
        );
        assert!(conflict_in(&query).is_some());
    }
}

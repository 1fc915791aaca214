//! Answers in the order the query asked for them.
//!
//! The spec serialises an object as an ordered map, its keys "ordered by the order in which
//! they appear in the query". async-graphql 7 resolves an object's fields side by side and
//! writes each one as it completes, so `{ a: renderUsage {…} b: me {…} c: creators {…} }` came
//! back as `b, e, a, c, d`, and in another order the next time: clients that compare answers,
//! snapshot them or read them as streams saw them change with nothing changed. [`restore`]
//! puts every object of an answer back in the order of its selections, as the spec collects
//! them: through fragments, leaving out what `@skip`/`@include` leave out, and fragments on
//! other types where the object says its type (`__typename`, which Apollo and Relay always
//! ask for; without it every fragment counts). It runs after `graphql::nulls` has added the
//! keys of fields that failed.
//!
//! Each selection's order is worked out once per answer (and per type, for fragments), not
//! once per object: a list of a thousand items costs one plan, and each item a comparison of
//! its keys with the plan's, without hashing or allocating.

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use async_graphql::{
    Name, Positioned, Response, Value, Variables,
    parser::types::{Directive, ExecutableDocument, Selection, SelectionSet},
};

/// The response keys of one position, in query order, each with the selection sets below it
/// (a key asked for in two places merges both), and each key's place.
struct Plan<'a> {
    keys: Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    places: HashMap<&'a str, usize>,
    /// The plans below each key, by the type the object there says it is (`None` when it does
    /// not say): made once, then found again by comparing a name or two, so that ordering an
    /// object hashes and allocates nothing.
    below: RefCell<Vec<Below<'a>>>,
}

/// The plans below one key, by the type the object there says it is.
type Below<'a> = Vec<(Option<String>, Rc<Plan<'a>>)>;

/// What ordering one answer needs besides the value: the document, the variables (for
/// `@skip`/`@include`), and the plans made so far, by selection sets and type.
struct Orderer<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Variables,
    plans: HashMap<(Vec<usize>, Option<String>), Rc<Plan<'a>>>,
}

/// Orders every object of `response.data` as the operation (`operation_name`, or the only
/// one) selected its fields, with `variables` deciding `@skip` and `@include`.
pub fn restore(
    response: &mut Response,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) {
    if matches!(response.data, Value::Null) {
        return;
    }
    let Some(operation) = super::nulls::pick(document, operation_name) else {
        return;
    };
    let mut orderer = Orderer {
        document,
        variables,
        plans: HashMap::new(),
    };
    orderer.order(&mut response.data, &[&operation.selection_set.node], None);
}

/// The `__typename` an object answers, found without hashing (objects hold a few keys).
fn typename_of(map: &async_graphql::indexmap::IndexMap<Name, Value>) -> Option<&str> {
    map.iter().find_map(|(key, value)| match value {
        Value::String(name) if key.as_str() == "__typename" => Some(name.as_str()),
        _ => None,
    })
}

impl<'a> Orderer<'a> {
    /// Orders `value`, which `sets` select: under key `j` of the plan `parent` (whose plans
    /// below are kept there), or at the root.
    fn order(
        &mut self,
        value: &mut Value,
        sets: &[&'a SelectionSet],
        parent: Option<(&Plan<'a>, usize)>,
    ) {
        match value {
            Value::Object(map) => {
                let typename = typename_of(map);
                let plan = match parent {
                    Some((parent, j)) => self.below(parent, j, typename),
                    None => self.plan(sets, typename.map(str::to_owned)),
                };
                // In order when the object's keys come in the plan's order (some may be
                // missing): one pass over both, comparing names.
                let mut next = 0;
                let in_order = map.keys().all(|key| {
                    let found = plan.keys[next..]
                        .iter()
                        .position(|(name, _)| name.as_str() == key.as_str());
                    match found {
                        Some(i) => {
                            next += i + 1;
                            true
                        }
                        // A key the document does not name (none, in practice) stays where
                        // it is before the first it names, and goes last after.
                        None => next == 0 && !plan.places.contains_key(key.as_str()),
                    }
                });
                if !in_order {
                    // Keys the document does not name (none, in practice) go last.
                    map.sort_by_cached_key(|key, _| {
                        plan.places.get(key.as_str()).copied().unwrap_or(usize::MAX)
                    });
                }
                let mut next = 0;
                for (key, inner) in map.iter_mut() {
                    let Some(i) = plan.keys[next..]
                        .iter()
                        .position(|(name, _)| name.as_str() == key.as_str())
                    else {
                        continue;
                    };
                    let j = next + i;
                    next = j + 1;
                    let below = &plan.keys[j].1;
                    if !below.is_empty() {
                        self.order(inner, below, Some((&plan, j)));
                    }
                }
            }
            Value::List(items) => {
                for item in items {
                    self.order(item, sets, parent);
                }
            }
            _ => {}
        }
    }

    /// The plan below key `j` of `parent` for an object of type `typename`.
    fn below(&mut self, parent: &Plan<'a>, j: usize, typename: Option<&str>) -> Rc<Plan<'a>> {
        if let Some((_, plan)) = parent.below.borrow()[j]
            .iter()
            .find(|(t, _)| t.as_deref() == typename)
        {
            return plan.clone();
        }
        let plan = self.plan(&parent.keys[j].1, typename.map(str::to_owned));
        parent.below.borrow_mut()[j].push((typename.map(str::to_owned), plan.clone()));
        plan
    }

    fn plan(&mut self, sets: &[&'a SelectionSet], typename: Option<String>) -> Rc<Plan<'a>> {
        let id = (
            sets.iter()
                .map(|s| std::ptr::from_ref(*s) as usize)
                .collect(),
            typename,
        );
        if let Some(plan) = self.plans.get(&id) {
            return plan.clone();
        }
        let mut keys = Vec::new();
        let mut places = HashMap::new();
        for set in sets {
            self.collect(set, id.1.as_deref(), &mut keys, &mut places, 0);
        }
        let below = RefCell::new(vec![Vec::new(); keys.len()]);
        let plan = Rc::new(Plan {
            keys,
            places,
            below,
        });
        self.plans.insert(id, plan.clone());
        plan
    }

    /// The response keys of `set` in order, through the fragments that apply to `typename`
    /// (all of them when it is not known).
    fn collect(
        &self,
        set: &'a SelectionSet,
        typename: Option<&str>,
        keys: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
        places: &mut HashMap<&'a str, usize>,
        depth: usize,
    ) {
        if depth > super::depth::MAX_NESTING {
            return; // deeper documents are refused before they run; never loop on a cycle
        }
        let on = |condition: Option<&str>| match (condition, typename) {
            (Some(condition), Some(typename)) => super::nulls::applies(condition, typename),
            _ => true,
        };
        for item in &set.items {
            if !self.included(&item.node) {
                continue;
            }
            match &item.node {
                Selection::Field(field) => {
                    let key = &field.node.response_key().node;
                    let at = *places.entry(key.as_str()).or_insert_with(|| {
                        keys.push((key, Vec::new()));
                        keys.len() - 1
                    });
                    let below = &field.node.selection_set.node;
                    if !below.items.is_empty() {
                        keys[at].1.push(below);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let condition = fragment.node.type_condition.as_ref();
                    if on(condition.map(|c| c.node.on.node.as_str())) {
                        let inner = &fragment.node.selection_set.node;
                        self.collect(inner, typename, keys, places, depth + 1);
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some(fragment) = self.document.fragments.get(name)
                        && on(Some(fragment.node.type_condition.node.on.node.as_str()))
                    {
                        let inner = &fragment.node.selection_set.node;
                        self.collect(inner, typename, keys, places, depth + 1);
                    }
                }
            }
        }
    }

    /// Whether `@skip`/`@include` keep the selection ([`included`]).
    fn included(&self, selection: &Selection) -> bool {
        included(selection.directives(), self.variables)
    }
}

/// Whether `@skip`/`@include` among `directives` keep what they stand on, decided as
/// async-graphql decides it: a condition that is no Boolean counts as false, and one without
/// its `if` (which validation refuses) keeps it.
pub(super) fn included(directives: &[Positioned<Directive>], variables: &Variables) -> bool {
    directives.iter().all(|directive| {
        let wanted = match directive.node.name.node.as_str() {
            "skip" => false,
            "include" => true,
            _ => return true,
        };
        let Some(condition) = directive.node.get_argument("if") else {
            return true;
        };
        let value = match &condition.node {
            async_graphql_value::Value::Boolean(b) => *b,
            async_graphql_value::Value::Variable(name) => {
                matches!(variables.get(name), Some(Value::Boolean(true)))
            }
            _ => false,
        };
        value == wanted
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered_with(query: &str, data: serde_json::Value, variables: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let mut response = Response::new(Value::from_json(data).expect("value"));
        let variables = Variables::from_json(variables);
        restore(&mut response, &document, None, &variables);
        serde_json::to_string(&response.data).expect("json")
    }

    fn ordered(query: &str, data: serde_json::Value) -> String {
        ordered_with(query, data, serde_json::json!({}))
    }

    #[test]
    fn objects_follow_the_query_at_every_depth() {
        // serde_json's `json!` sorts keys: every input below starts alphabetical.
        let data = serde_json::json!({
            "a": { "z": 1, "m": 2 },
            "b": [{ "y": 1, "x": { "q": 1, "p": 2 } }, { "y": 2, "x": null }],
            "c": 3,
        });
        assert_eq!(
            ordered("{ c b { x { q p } y } a { z m } }", data),
            r#"{"c":3,"b":[{"x":{"q":1,"p":2},"y":1},{"x":null,"y":2}],"a":{"z":1,"m":2}}"#
        );
    }

    #[test]
    fn keys_the_document_does_not_name_stay_first_or_go_last() {
        // json! sorts keys: `a` (unnamed) before `b` and `c`, which are in order: nothing moves.
        assert_eq!(
            ordered("{ b c }", serde_json::json!({ "a": 0, "b": 1, "c": 2 })),
            r#"{"a":0,"b":1,"c":2}"#
        );
        // After a named key, or once anything moves, an unnamed key goes last.
        assert_eq!(
            ordered("{ a c }", serde_json::json!({ "a": 0, "b": 1, "c": 2 })),
            r#"{"a":0,"c":2,"b":1}"#
        );
        assert_eq!(
            ordered("{ c b }", serde_json::json!({ "a": 0, "b": 1, "c": 2 })),
            r#"{"c":2,"b":1,"a":0}"#
        );
    }

    #[test]
    fn fragments_and_repeated_keys_keep_their_first_place() {
        let data = serde_json::json!({
            "node": { "id": "1", "name": "n", "slug": "s", "title": null },
        });
        assert_eq!(
            ordered(
                "query { node(id: \"1\") { ...F ... on Video { title } id } } \
                 fragment F on Creator { slug name id slug }",
                data
            ),
            r#"{"node":{"slug":"s","name":"n","id":"1","title":null}}"#
        );
        // A named operation among others is the one followed.
        let document =
            async_graphql::parser::parse_query("query A { b a } query B { a b }").expect("parses");
        let mut response =
            Response::new(Value::from_json(serde_json::json!({ "a": 1, "b": 2 })).expect("value"));
        restore(&mut response, &document, Some("A"), &Variables::default());
        assert_eq!(
            serde_json::to_string(&response.data).expect("json"),
            r#"{"b":2,"a":1}"#
        );
    }

    #[test]
    fn fragments_of_other_types_and_skipped_selections_do_not_place_keys() {
        // A Video's own fragment says title, then id; the Creator's would put id first.
        let query = "{ nodes { __typename ... on Creator { name id } ... on Video { title id } } }";
        let data = serde_json::json!({ "nodes": [
            { "__typename": "Video", "id": "v", "title": "t" },
            { "__typename": "Creator", "id": "c", "name": "n" },
        ] });
        assert_eq!(
            ordered(query, data),
            r#"{"nodes":[{"__typename":"Video","title":"t","id":"v"},{"__typename":"Creator","name":"n","id":"c"}]}"#
        );
        // Through an interface the type implements.
        let data =
            serde_json::json!({ "node": { "__typename": "Video", "id": "v", "title": "t" } });
        assert_eq!(
            ordered(
                "{ node(id: \"v\") { __typename ... on Node { title id } } }",
                data
            ),
            r#"{"node":{"__typename":"Video","title":"t","id":"v"}}"#
        );
        // A skipped fragment does not place `a` before `b`.
        let query =
            "query($on: Boolean!) { ...A @include(if: $on) b a } fragment A on QueryRoot { a }";
        let data = serde_json::json!({ "a": 1, "b": 2 });
        assert_eq!(
            ordered_with(query, data.clone(), serde_json::json!({ "on": false })),
            r#"{"b":2,"a":1}"#
        );
        assert_eq!(
            ordered_with(query, data, serde_json::json!({ "on": true })),
            r#"{"a":1,"b":2}"#
        );
    }
}

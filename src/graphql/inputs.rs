//! What is refused before a request runs, on HTTP and WebSocket alike, beyond what
//! async-graphql checks itself:
//! - text holding a NUL character (U+0000): PostgreSQL cannot store one in any text column
//!   (it answered `invalid byte sequence for encoding "UTF8": 0x00`, an internal error, for any
//!   argument that reached a statement, as a schema fuzz found), while SQLite would store it;
//!   refused on both databases, naming where the character was;
//! - data read deeper than the depth limit ([`super::depth`]);
//! - a subscription selecting more than one root field, or `__typename`;
//! - a required variable left out or `null`, or a variable's scalar that is not of its type
//!   ([`super::variables`]): request errors, before anything runs.

use async_graphql::{
    ServerError,
    parser::types::{ExecutableDocument, FragmentDefinition, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Name, Value};

use crate::error::AppError;

/// What the checks need of a request's parsed document (worked out once per document).
#[derive(Debug, Clone, Copy)]
pub struct DocumentFacts<'a> {
    pub document: &'a ExecutableDocument,
    /// Where a literal argument holds a NUL character or is not of its type, and why
    /// ([`literal_fault`]).
    pub literal_fault: Option<&'a (String, String)>,
    /// What validation must refuse and async-graphql's does not ([`super::rules::fault`],
    /// [`super::overlap::conflict`]).
    pub invalid: Option<&'a ServerError>,
    /// [`super::depth::shape`].
    pub shape: super::depth::Shape,
    /// [`super::depth::operation_depths`] (empty when the document is not bounded).
    pub depths: &'a [(Option<String>, usize)],
}

/// What [`measure`] finds in a document.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub shape: super::depth::Shape,
    /// [`literal_fault`]
    pub literal_fault: Option<(String, String)>,
    /// [`super::rules::fault`], then [`super::overlap::conflict`]
    pub invalid: Option<ServerError>,
    /// [`super::depth::operation_depths`]
    pub depths: Vec<(Option<String>, usize)>,
}

impl Measured {
    /// The facts of `document`, as measured here.
    pub fn facts<'a>(&'a self, document: &'a ExecutableDocument) -> DocumentFacts<'a> {
        DocumentFacts {
            document,
            literal_fault: self.literal_fault.as_ref(),
            invalid: self.invalid.as_ref(),
            shape: self.shape,
            depths: &self.depths,
        }
    }
}

/// Gives every variable of the operation to run that the request leaves out its default value
/// from the document, so that the checks below see the values the resolvers will get (a
/// default holding a NUL character, or a `DateTime` no clock can read, is refused like a
/// variable sent so; async-graphql would otherwise apply it only when the field runs, after
/// earlier fields of a mutation have written).
pub fn fill_variable_defaults(request: &mut async_graphql::Request, document: &ExecutableDocument) {
    let Some(operation) = super::nulls::pick(document, request.operation_name.as_deref()) else {
        return;
    };
    for definition in &operation.variable_definitions {
        let name = &definition.node.name.node;
        if let Some(default) = &definition.node.default_value
            && !request.variables.contains_key(name)
        {
            request.variables.insert(name.clone(), default.node.clone());
        }
    }
}

/// The variables of the operation to run that the request leaves out and that have no default
/// (after [`fill_variable_defaults`]).
fn unsent_variables(request: &async_graphql::Request, document: &ExecutableDocument) -> Vec<Name> {
    let Some(operation) = super::nulls::pick(document, request.operation_name.as_deref()) else {
        return Vec::new();
    };
    operation
        .variable_definitions
        .iter()
        .map(|definition| &definition.node.name.node)
        .filter(|name| !request.variables.contains_key(*name))
        .cloned()
        .collect()
}

/// `document` with every argument and input-object field whose value is a variable the
/// request left out (`unsent`) taken out, as the spec reads them: not provided. async-graphql
/// gives such a variable `null`, so `updateVideo(input: {title: $title, youtubeUrl: $url})`
/// sent without `url` cleared the video's link, and without `title` was refused as a `null`
/// title. `None` when nothing is left out (the shared document runs as it is).
pub fn without_unsent_variables(
    request: &async_graphql::Request,
    document: &ExecutableDocument,
) -> Option<ExecutableDocument> {
    use async_graphql::parser::types::DocumentOperations;

    let unsent = unsent_variables(request, document);
    if unsent.is_empty() {
        return None;
    }
    type Names = std::collections::HashSet<Name>;
    // Takes out what names an unsent variable, noting which.
    fn value(of: &mut Value, unsent: &[Name], removed: &mut Names) {
        match of {
            Value::Object(fields) => {
                fields.retain(|_, v| match v {
                    Value::Variable(name) if unsent.contains(name) => {
                        removed.insert(name.clone());
                        false
                    }
                    _ => true,
                });
                for v in fields.values_mut() {
                    value(v, unsent, removed);
                }
            }
            // A list item left out is `null`, as the spec has it.
            Value::List(items) => items.iter_mut().for_each(|v| value(v, unsent, removed)),
            _ => {}
        }
    }
    fn selections(set: &mut SelectionSet, unsent: &[Name], removed: &mut Names) {
        for selection in &mut set.items {
            match &mut selection.node {
                Selection::Field(field) => {
                    let field = &mut field.node;
                    field.arguments.retain(|(_, v)| match &v.node {
                        Value::Variable(name) if unsent.contains(name) => {
                            removed.insert(name.clone());
                            false
                        }
                        _ => true,
                    });
                    for (_, v) in &mut field.arguments {
                        value(&mut v.node, unsent, removed);
                    }
                    selections(&mut field.selection_set.node, unsent, removed);
                }
                Selection::InlineFragment(fragment) => {
                    selections(&mut fragment.node.selection_set.node, unsent, removed);
                }
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    // The variables still used somewhere, so that a definition left unused goes too (else
    // validation refuses the operation for defining a variable it does not use).
    fn uses(of: &Value, used: &mut std::collections::HashSet<Name>) {
        match of {
            Value::Variable(name) => {
                used.insert(name.clone());
            }
            Value::Object(fields) => fields.values().for_each(|v| uses(v, used)),
            Value::List(items) => items.iter().for_each(|v| uses(v, used)),
            _ => {}
        }
    }
    type Fragments = std::collections::HashMap<Name, async_graphql::Positioned<FragmentDefinition>>;
    fn used_in(
        set: &SelectionSet,
        fragments: &Fragments,
        seen: &mut std::collections::HashSet<Name>,
        used: &mut std::collections::HashSet<Name>,
    ) {
        for selection in &set.items {
            let (directives, inner) = match &selection.node {
                Selection::Field(field) => {
                    for (_, v) in &field.node.arguments {
                        uses(&v.node, used);
                    }
                    (&field.node.directives, Some(&field.node.selection_set.node))
                }
                Selection::InlineFragment(fragment) => (
                    &fragment.node.directives,
                    Some(&fragment.node.selection_set.node),
                ),
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let inner = seen
                        .insert(name.clone())
                        .then(|| fragments.get(name))
                        .flatten()
                        .map(|fragment| &fragment.node.selection_set.node);
                    (&spread.node.directives, inner)
                }
            };
            for directive in directives {
                for (_, v) in &directive.node.arguments {
                    uses(&v.node, used);
                }
            }
            if let Some(inner) = inner {
                used_in(inner, fragments, seen, used);
            }
        }
    }
    let wanted = request.operation_name.as_deref();
    let mut document = document.clone();
    let mut removed = Names::new();
    for fragment in document.fragments.values_mut() {
        selections(&mut fragment.node.selection_set.node, &unsent, &mut removed);
    }
    let fragments = &document.fragments;
    let mut operations: Vec<&mut async_graphql::Positioned<_>> = match &mut document.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(operations) => operations
            .iter_mut()
            .filter(|(name, _)| wanted.is_none_or(|w| w == name.as_str()))
            .map(|(_, operation)| operation)
            .collect(),
    };
    for operation in &mut operations {
        let operation = &mut operation.node;
        selections(&mut operation.selection_set.node, &unsent, &mut removed);
        let mut used = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        used_in(
            &operation.selection_set.node,
            fragments,
            &mut seen,
            &mut used,
        );
        for directive in &operation.directives {
            for (_, v) in &directive.node.arguments {
                uses(&v.node, &mut used);
            }
        }
        // Only a definition this left unused goes: one the document never used is still
        // refused by validation, as it was.
        operation.variable_definitions.retain(|definition| {
            let name = &definition.node.name.node;
            !removed.contains(name) || used.contains(name)
        });
    }
    if removed.is_empty() {
        return None;
    }
    Some(document)
}

/// Why `request` is refused before it runs, if it is. `document` is `None` when the query
/// does not parse (async-graphql then reports the syntax error).
pub fn refusal(
    request: &async_graphql::Request,
    document: Option<DocumentFacts<'_>>,
    max_depth: usize,
) -> Option<ServerError> {
    // Before anything walks the document as expanded (async-graphql's validation does).
    if let Some(document) = document {
        if document.shape.nesting > super::depth::MAX_NESTING {
            return Some(super::depth::too_nested());
        }
        if document.shape.expanded_selections > super::depth::MAX_EXPANDED_SELECTIONS {
            return Some(super::depth::too_large());
        }
    }
    let nul = |path: String| AppError::bad_input(path, NUL).into_request_error();
    for (name, value) in request.variables.iter() {
        let mut path = String::new();
        if nul_in_const(value, &mut path) {
            // Named where the variable is used (`input.filename`, not `$foo.filename`).
            let operation = request.operation_name.as_deref();
            let used_at = document
                .and_then(|d| argument_path_of(d.document, operation, name))
                .unwrap_or_else(|| name.to_string());
            return Some(nul(format!("{used_at}{path}")));
        }
    }
    let document = document?;
    if let Some((path, message)) = document.literal_fault {
        return Some(AppError::bad_input(path.as_str(), message.as_str()).into_request_error());
    }
    if let Some(invalid) = document.invalid {
        return Some(invalid.clone());
    }
    // The depth of the operation to run; of the deepest when which one is not clear (the
    // schema then refuses the request for that).
    let depth = match request.operation_name.as_deref() {
        Some(wanted) => document
            .depths
            .iter()
            .find(|(name, _)| name.as_deref() == Some(wanted))
            .map(|(_, depth)| *depth),
        None => match document.depths {
            [(_, depth)] => Some(*depth),
            _ => None,
        },
    };
    if depth.unwrap_or(document.shape.data_depth) > max_depth {
        return Some(super::depth::too_deep(
            depth.unwrap_or(document.shape.data_depth),
            max_depth,
        ));
    }
    if let Some(error) = subscription_roots(document.document) {
        return Some(error);
    }
    missing_variable(request, document.document).or_else(|| {
        let operation = request.operation_name.as_deref();
        // Where each variable is used, found in one walk: one walk per variable was the
        // document's size times the number of its variables (15,000 of them and a literal of
        // 400,000 items fit in 1 MB).
        let paths = argument_paths(document.document, operation);
        let used_at = |name: &str| paths.get(name).cloned();
        let wrong =
            super::variables::mistyped(document.document, operation, &request.variables, used_at)?;
        let at = used_at(&wrong.variable).unwrap_or_else(|| wrong.variable.clone());
        Some(
            AppError::bad_input(format!("{at}{}", wrong.within), wrong.message)
                .into_request_error(),
        )
    })
}

/// A subscription selects exactly one root field, and not `__typename` (GraphQL spec, Single
/// Root Field): each event answers one field. Fragments at the root count by what they select.
fn subscription_roots(document: &ExecutableDocument) -> Option<ServerError> {
    use async_graphql::parser::types::OperationType;
    // Every subscription of the document, not only the one to run: validation judges the
    // whole document (graphql-js refuses it whichever operation is picked).
    // Each fragment is walked once (a fragment spread again adds no key, and one spreading
    // itself, refused by validation later, must not loop here), and the walk stops at the
    // second key: this runs before validation, on any document.
    fn keys<'a>(
        document: &'a ExecutableDocument,
        set: &'a SelectionSet,
        seen: &mut Vec<&'a str>,
        walked: &mut std::collections::HashSet<&'a str>,
    ) {
        for item in &set.items {
            if seen.len() > 1 {
                return;
            }
            match &item.node {
                Selection::Field(field) => {
                    let key = field.node.response_key().node.as_str();
                    if field.node.name.node == "__typename" {
                        seen.push("__typename");
                    } else if !seen.contains(&key) {
                        seen.push(key);
                    }
                }
                Selection::InlineFragment(fragment) => {
                    keys(document, &fragment.node.selection_set.node, seen, walked)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if let Some((name, fragment)) = document.fragments.get_key_value(name)
                        && walked.insert(name.as_str())
                    {
                        keys(document, &fragment.node.selection_set.node, seen, walked)
                    }
                }
            }
        }
    }
    let subscriptions = document
        .operations
        .iter()
        .filter(|(_, op)| op.node.ty == OperationType::Subscription);
    for (_, operation) in subscriptions {
        let mut seen = Vec::new();
        let mut walked = std::collections::HashSet::new();
        keys(
            document,
            &operation.node.selection_set.node,
            &mut seen,
            &mut walked,
        );
        if seen.len() != 1 || seen.contains(&"__typename") {
            return Some(
                AppError::bad_input(
                    "",
                    "a subscription selects exactly one root field (not __typename)",
                )
                .into_request_error(),
            );
        }
    }
    None
}

/// The first variable the operation requires (a non-null type without a default) that the
/// request leaves out or sets to `null`. Variables are coerced before execution (GraphQL
/// spec, CoerceVariableValues), so this refuses the whole request; async-graphql would only
/// notice in the field that reads the variable, after the operation's other fields ran.
fn missing_variable(
    request: &async_graphql::Request,
    document: &ExecutableDocument,
) -> Option<ServerError> {
    let wanted = request.operation_name.as_deref();
    let mut operations = document
        .operations
        .iter()
        .filter(|(name, _)| wanted.is_none() || name.map(|n| n.as_str()) == wanted);
    let (_, operation) = operations.next()?;
    if operations.next().is_some() {
        return None; // which one is meant is async-graphql's to report
    }
    operation
        .node
        .variable_definitions
        .iter()
        .map(|definition| &definition.node)
        .find(|definition| {
            !definition.var_type.node.nullable
                && definition.default_value.is_none()
                && matches!(
                    request.variables.get(definition.name.node.as_str()),
                    None | Some(ConstValue::Null)
                )
        })
        .map(|definition| {
            let name = definition.name.node.as_str();
            AppError::bad_input(
                name,
                format!(
                    "variable `${name}` of type `{}` is required",
                    definition.var_type.node
                ),
            )
            .into_request_error()
        })
}

/// The argument path (`input`, `input.spec`) where the variable `name` is first used in the
/// operation the request runs (`operation`, or the only one), if it is used as (part of) an
/// argument.
pub(super) fn argument_path_of(
    document: &ExecutableDocument,
    operation: Option<&str>,
    name: &str,
) -> Option<String> {
    argument_paths(document, operation).remove(name)
}

/// Where each variable is first used ([`argument_path_of`]), for all of them in one walk of
/// the document: the operation's fields in order (each field's arguments, then what it
/// selects), then the fragments'.
fn argument_paths(
    document: &ExecutableDocument,
    operation: Option<&str>,
) -> std::collections::HashMap<String, String> {
    use std::{collections::HashMap, fmt::Write};
    fn values(value: &Value, path: &mut String, found: &mut HashMap<String, String>) {
        match value {
            Value::Variable(variable) if !found.contains_key(variable.as_str()) => {
                found.insert(variable.to_string(), path.clone());
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    let before = path.len();
                    let _ = write!(path, ".{i}");
                    values(item, path, found);
                    path.truncate(before);
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields {
                    let before = path.len();
                    path.push('.');
                    path.push_str(key);
                    values(item, path, found);
                    path.truncate(before);
                }
            }
            _ => {}
        }
    }
    // In the order `first_argument` looks: each field's arguments, then what it selects.
    fn walk(set: &SelectionSet, found: &mut HashMap<String, String>) {
        for item in &set.items {
            let Some((arguments, inner)) = arguments_within(&item.node) else {
                continue;
            };
            for (name, value) in arguments {
                let mut path = name.node.to_string();
                values(&value.node, &mut path, found);
            }
            walk(inner, found);
        }
    }
    let mut found = HashMap::new();
    let mut operations = document
        .operations
        .iter()
        .filter(|(op_name, _)| operation.is_none() || op_name.map(|n| n.as_str()) == operation);
    let Some((_, op)) = operations.next() else {
        return found;
    };
    if operations.next().is_some() {
        return found; // which one runs is async-graphql's to report
    }
    walk(&op.node.selection_set.node, &mut found);
    for fragment in document.fragments.values() {
        walk(&fragment.node.selection_set.node, &mut found);
    }
    found
}

/// A selection's own arguments and what it selects: a field's, an inline fragment's (none of
/// its own); `None` for a fragment spread (its definition is walked on its own).
type Arguments = [(
    async_graphql::Positioned<Name>,
    async_graphql::Positioned<Value>,
)];
fn arguments_within(selection: &Selection) -> Option<(&Arguments, &SelectionSet)> {
    match selection {
        Selection::Field(field) => Some((
            field.node.arguments.as_slice(),
            &field.node.selection_set.node,
        )),
        Selection::InlineFragment(fragment) => Some((&[], &fragment.node.selection_set.node)),
        Selection::FragmentSpread(_) => None,
    }
}

/// The path of the first argument in `set` (its fields and inline fragments, and theirs) in
/// which `found` finds what it looks for; `found` extends the path to where.
fn first_argument(
    set: &SelectionSet,
    found: &dyn Fn(&Value, &mut String) -> bool,
) -> Option<String> {
    for item in &set.items {
        let Some((arguments, inner)) = arguments_within(&item.node) else {
            continue;
        };
        for (name, value) in arguments {
            let mut path = name.node.to_string();
            if found(&value.node, &mut path) {
                return Some(path);
            }
        }
        if let Some(path) = first_argument(inner, found) {
            return Some(path);
        }
    }
    None
}

const NUL: &str = "text may not contain NUL (U+0000) characters";

/// Text people read (names, titles, bios) holds no control characters: a bell, an escape
/// sequence, a line break in a one-line field. `multiline` lets line breaks and tabs through.
pub fn no_controls(field: &str, value: &str, multiline: bool) -> Result<(), AppError> {
    let allowed = |c: char| !c.is_control() || (multiline && matches!(c, '\n' | '\r' | '\t'));
    if !value.chars().all(allowed) {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// A field of an update input that may be left out, keeping its value, but not cleared: the
/// value it stands for cannot be empty (a title, a role, a consent answer). `null` there is
/// refused, naming `field`, rather than read as "left out": `updateVideo(input: {title: null})`
/// answered the video unchanged, as if the title had been cleared.
pub fn given<T>(
    field: &str,
    value: async_graphql::MaybeUndefined<T>,
) -> Result<Option<T>, AppError> {
    match value {
        async_graphql::MaybeUndefined::Undefined => Ok(None),
        async_graphql::MaybeUndefined::Null => Err(AppError::bad_input(
            field,
            "cannot be null: leave it out to keep the current value",
        )),
        async_graphql::MaybeUndefined::Value(value) => Ok(Some(value)),
    }
}

/// Whether `value` shows nothing: only white space and the format characters that draw
/// nothing (zero-width space and joiners, word joiner, byte-order mark, soft hyphen, direction
/// marks). A title of a zero-width space alone was taken as a title. (Such characters stay in
/// a value that shows something: a right-to-left title may begin with its direction mark.)
pub fn shows_nothing(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || draws_nothing(c))
}

pub fn draws_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// What the checks before execution need of `document` that depends on nothing else: its
/// [`super::depth::shape`], and its [`literal_fault`] and what validation misses when
/// the shape is bounded (the walks behind them expand fragments, so they wait until the
/// document is known to be small).
pub fn measure(document: &ExecutableDocument) -> Measured {
    let shape = super::depth::shape(document);
    if !shape.is_bounded() {
        return Measured {
            shape,
            ..Measured::default()
        };
    }
    Measured {
        shape,
        depths: super::depth::operation_depths(document),
        literal_fault: literal_fault(document),
        invalid: crowded(document)
            .or_else(|| super::rules::fault(document))
            .or_else(|| super::overlap::conflict(document)),
    }
}

/// Most arguments one field or directive is given: no field of the schema takes a tenth of
/// them, and comparing two fields' arguments (field merging) costs their product.
pub const MAX_ARGUMENTS: usize = 64;
/// Most directives one place carries: the executable ones (`@skip`, `@include`) are not
/// repeatable, so more than two is refused by validation anyway.
pub const MAX_DIRECTIVES: usize = 16;

/// A field or directive given more than [`MAX_ARGUMENTS`] arguments, or a place with more than
/// [`MAX_DIRECTIVES`] directives, anywhere in the document: refused before the checks whose
/// work grows with their product (a 1 MB document of 65,000 `@skip`s on one field, or of two
/// fields with 75,000 arguments each).
fn crowded(document: &ExecutableDocument) -> Option<ServerError> {
    use async_graphql::{Positioned, parser::types::Directive};
    fn directives(list: &[Positioned<Directive>]) -> Option<&'static str> {
        if list.len() > MAX_DIRECTIVES {
            return Some("directives");
        }
        list.iter()
            .any(|d| d.node.arguments.len() > MAX_ARGUMENTS)
            .then_some("arguments")
    }
    fn set(selections: &SelectionSet) -> Option<&'static str> {
        selections.items.iter().find_map(|item| match &item.node {
            Selection::Field(field) => {
                if field.node.arguments.len() > MAX_ARGUMENTS {
                    return Some("arguments");
                }
                directives(&field.node.directives).or_else(|| set(&field.node.selection_set.node))
            }
            Selection::InlineFragment(fragment) => directives(&fragment.node.directives)
                .or_else(|| set(&fragment.node.selection_set.node)),
            Selection::FragmentSpread(spread) => directives(&spread.node.directives),
        })
    }
    let operations = document.operations.iter().find_map(|(_, op)| {
        directives(&op.node.directives)
            .or_else(|| {
                op.node
                    .variable_definitions
                    .iter()
                    .find_map(|v| directives(&v.node.directives))
            })
            .or_else(|| set(&op.node.selection_set.node))
    });
    let what = operations.or_else(|| {
        document.fragments.values().find_map(|fragment| {
            directives(&fragment.node.directives).or_else(|| set(&fragment.node.selection_set.node))
        })
    })?;
    let message = match what {
        "directives" => format!("a selection carries more than {MAX_DIRECTIVES} directives"),
        _ => format!("a field or directive is given more than {MAX_ARGUMENTS} arguments"),
    };
    Some(AppError::bad_input("query", message).into_request_error())
}

/// The argument path (`input.title`, `segments.2.text`) of the first literal in the document
/// that holds a NUL character or is not of its type ([`super::variables::mistyped_literal`]),
/// or of the first variable given where its type does not fit
/// ([`super::variables::misplaced_variable`]), and why.
pub fn literal_fault(document: &ExecutableDocument) -> Option<(String, String)> {
    long_name(document)
        .map(|()| {
            (
                "query".to_owned(),
                format!("the document holds a name longer than {MAX_NAME} characters"),
            )
        })
        .or_else(|| nul_literal(document).map(|path| (path, NUL.to_owned())))
        .or_else(|| super::variables::mistyped_literal(document))
        .or_else(|| super::variables::misplaced_variable(document))
}

/// Longest name (of a field, alias, argument, fragment, type, directive, variable, enum value
/// or input field) a document may hold. Validation compares an unknown name with every known
/// one for its "did you mean" hint, in time that grows with the name's length: one unknown
/// field of a million letters kept a core busy for seconds. This schema's longest is under 40.
pub const MAX_NAME: usize = 256;

/// Whether any name in `document` is longer than [`MAX_NAME`]. Each fragment is walked once,
/// where it is defined.
fn long_name(document: &ExecutableDocument) -> Option<()> {
    use async_graphql::{
        Positioned,
        parser::types::{BaseType, Directive, Type},
    };
    fn long(name: &Name) -> bool {
        name.len() > MAX_NAME
    }
    fn in_type(ty: &Type) -> bool {
        match &ty.base {
            BaseType::Named(name) => long(name),
            BaseType::List(inner) => in_type(inner),
        }
    }
    fn in_value(value: &Value) -> bool {
        match value {
            Value::Variable(name) | Value::Enum(name) => long(name),
            Value::List(items) => items.iter().any(in_value),
            Value::Object(fields) => fields.iter().any(|(k, v)| long(k) || in_value(v)),
            _ => false,
        }
    }
    fn in_const(value: &ConstValue) -> bool {
        match value {
            ConstValue::Enum(name) => long(name),
            ConstValue::List(items) => items.iter().any(in_const),
            ConstValue::Object(fields) => fields.iter().any(|(k, v)| long(k) || in_const(v)),
            _ => false,
        }
    }
    fn in_directives(directives: &[Positioned<Directive>]) -> bool {
        directives.iter().any(|d| {
            long(&d.node.name.node)
                || d.node
                    .arguments
                    .iter()
                    .any(|(n, v)| long(&n.node) || in_value(&v.node))
        })
    }
    fn in_set(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                let f = &field.node;
                long(&f.name.node)
                    || f.alias.as_ref().is_some_and(|a| long(&a.node))
                    || f.arguments
                        .iter()
                        .any(|(n, v)| long(&n.node) || in_value(&v.node))
                    || in_directives(&f.directives)
                    || in_set(&f.selection_set.node)
            }
            Selection::FragmentSpread(spread) => {
                long(&spread.node.fragment_name.node) || in_directives(&spread.node.directives)
            }
            Selection::InlineFragment(fragment) => {
                let f = &fragment.node;
                f.type_condition
                    .as_ref()
                    .is_some_and(|t| long(&t.node.on.node))
                    || in_directives(&f.directives)
                    || in_set(&f.selection_set.node)
            }
        })
    }
    let operations = document.operations.iter().any(|(name, op)| {
        let op = &op.node;
        name.is_some_and(long)
            || op.variable_definitions.iter().any(|v| {
                long(&v.node.name.node)
                    || in_type(&v.node.var_type.node)
                    || v.node
                        .default_value
                        .as_ref()
                        .is_some_and(|d| in_const(&d.node))
                    || in_directives(&v.node.directives)
            })
            || in_directives(&op.directives)
            || in_set(&op.selection_set.node)
    });
    let fragments = document.fragments.iter().any(|(name, fragment)| {
        long(name)
            || long(&fragment.node.type_condition.node.on.node)
            || in_directives(&fragment.node.directives)
            || in_set(&fragment.node.selection_set.node)
    });
    (operations || fragments).then_some(())
}

/// The argument path (`input.title`, `segments.2.text`) of the first literal string in the
/// document that holds a NUL character.
fn nul_literal(document: &ExecutableDocument) -> Option<String> {
    let walk = |set: &SelectionSet| first_argument(set, &nul_in_value);
    document
        .operations
        .iter()
        .find_map(|(_, op)| walk(&op.node.selection_set.node))
        .or_else(|| {
            document
                .fragments
                .values()
                .find_map(|fragment| walk(&fragment.node.selection_set.node))
        })
}

/// Whether `value` holds a NUL character; `path` is extended to where.
fn nul_in_const(value: &ConstValue, path: &mut String) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => indexed(items.iter(), path, nul_in_const),
        ConstValue::Object(fields) => named(fields.iter(), path, nul_in_const),
        _ => false,
    }
}

fn nul_in_value(value: &Value, path: &mut String) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => indexed(items.iter(), path, nul_in_value),
        Value::Object(fields) => named(fields.iter(), path, nul_in_value),
        _ => false,
    }
}

fn indexed<'a, T: 'a>(
    items: impl Iterator<Item = &'a T>,
    path: &mut String,
    check: fn(&T, &mut String) -> bool,
) -> bool {
    for (i, item) in items.enumerate() {
        let before = path.len();
        path.push_str(&format!(".{i}"));
        if check(item, path) {
            return true;
        }
        path.truncate(before);
    }
    false
}

fn named<'a, T: 'a>(
    fields: impl Iterator<Item = (&'a Name, &'a T)>,
    path: &mut String,
    check: fn(&T, &mut String) -> bool,
) -> bool {
    for (name, item) in fields {
        // A key with a NUL (a JSON scalar's, e.g. `socialLinks`): named by its object's path.
        if name.contains('\0') {
            return true;
        }
        let before = path.len();
        path.push('.');
        path.push_str(name);
        if check(item, path) {
            return true;
        }
        path.truncate(before);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variable_is_placed_where_it_is_first_used() {
        let document = async_graphql::parser::parse_query(
            "query Q($a: Int, $b: ID!, $c: String, $d: Int, $unused: Int) {
                creators(first: $a) { nodes { videos(first: 3, after: $c) { totalCount } } }
                ... on QueryRoot { video(id: $b) { id } }
                x: creators(first: $a) { totalCount }
                ...F
             }
             query Other($a: Int) { creators(search: \"x\", first: $a) { totalCount } }
             fragment F on QueryRoot { renderMovie(input: {spec: {scenes: [{}, {x: [1, $d]}]}}) { id } }",
        )
        .expect("parses");
        let place = |operation, name| argument_path_of(&document, operation, name);
        let q = Some("Q");
        assert_eq!(place(q, "a").as_deref(), Some("first"));
        assert_eq!(place(q, "b").as_deref(), Some("id"));
        assert_eq!(place(q, "c").as_deref(), Some("after"));
        assert_eq!(place(q, "d").as_deref(), Some("input.spec.scenes.1.x.1"));
        assert_eq!(place(q, "unused"), None);
        assert_eq!(place(Some("Other"), "a").as_deref(), Some("first"));
        // Two operations and no name: which one runs is not known.
        assert_eq!(place(None, "a"), None);
    }

    #[test]
    fn literals_are_checked_only_in_a_bounded_document() {
        let parse = |q: &str| async_graphql::parser::parse_query(q).expect("parses");
        let bad = "{ creators(first: \"ten\") { totalCount } }";
        let measured = measure(&parse(bad));
        assert!(measured.shape.is_bounded());
        let path = measured.literal_fault.map(|(path, _)| path);
        assert_eq!(path.as_deref(), Some("first"));
        // The same literal among 10,001 selections: refused as too large, not walked.
        let large = format!(
            "{{ creators(first: \"ten\") {{ totalCount }} {} }}",
            "__typename ".repeat(10_000)
        );
        let measured = measure(&parse(&large));
        assert!(!measured.shape.is_bounded());
        assert_eq!(measured.literal_fault, None);
    }

    /// The facts of a shallow `document` without NUL literals.
    fn plain(document: &ExecutableDocument) -> Option<DocumentFacts<'_>> {
        Some(DocumentFacts {
            document,
            literal_fault: None,
            invalid: None,
            shape: crate::graphql::depth::Shape {
                data_depth: 1,
                expanded_selections: 1,
                nesting: 1,
                introspects: false,
            },
            depths: &[],
        })
    }

    fn literal(query: &str) -> Option<String> {
        nul_literal(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn only_invisible_characters_show_nothing() {
        assert!(shows_nothing(""));
        assert!(shows_nothing("\u{200B}"));
        assert!(shows_nothing(" \u{FEFF}\u{200D}\u{2060}\u{200F} "));
        assert!(!shows_nothing("\u{200F}שלום"));
        assert!(!shows_nothing("a\u{200D}b"));
        assert!(!shows_nothing("👩\u{200D}💻"));
    }

    #[test]
    fn finds_nul_characters_with_their_path() {
        assert_eq!(
            literal(r#"mutation { a(input: { title: "ok", tags: ["x", "a\u0000b"] }) { id } }"#),
            Some("input.tags.1".to_owned())
        );
        assert_eq!(
            literal(r#"{ a { ... on A { b(search: "\u0000") } } }"#),
            Some("search".to_owned())
        );
        assert_eq!(
            literal(r#"query { ...F } fragment F on Q { c(t: "\u0000") }"#),
            Some("t".to_owned())
        );
        assert_eq!(literal(r#"{ a(search: "u0000 \\u0000") }"#), None);

        let request = async_graphql::Request::new("{ a }").variables(
            async_graphql::Variables::from_json(serde_json::json!({
                "input": { "segments": [{ "text": "fine" }, { "text": "nul \u{0}" }] }
            })),
        );
        let document = async_graphql::parser::parse_query("{ a }").expect("parses");
        let facts = |literal_fault, data_depth| {
            Some(DocumentFacts {
                document: &document,
                literal_fault,
                invalid: None,
                shape: crate::graphql::depth::Shape {
                    data_depth,
                    expanded_selections: 1,
                    nesting: 1,
                    introspects: false,
                },
                depths: &[],
            })
        };
        let error = refusal(&request, facts(None, 1), 12).expect("refused");
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("field"),
            Some(&async_graphql::Value::from("input.segments.1.text"))
        );
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("BAD_USER_INPUT"))
        );
        let key = async_graphql::Request::new("{ a }").variables(
            async_graphql::Variables::from_json(serde_json::json!({
                "input": { "socialLinks": { "web": "https://a.example", "x\u{0}": "https://b.example" } }
            })),
        );
        let error = refusal(&key, facts(None, 1), 12).expect("refused");
        assert_eq!(
            error.extensions.expect("extensions").get("field"),
            Some(&async_graphql::Value::from("input.socialLinks"))
        );
        // A variable is named by the argument it is used as, not by its own name.
        let used = async_graphql::parser::parse_query(
            "mutation($foo: I!, $s: [S!]!, $x: X) { r(input: $foo) { id } t(v: \"x\", segments: $s) u(input: { spec: { scenes: [$x] } }) }",
        )
        .expect("parses");
        for (variables, field) in [
            (
                serde_json::json!({ "foo": { "filename": "a\u{0}b" } }),
                "input.filename",
            ),
            (
                serde_json::json!({ "s": [{ "text": "ok" }, { "text": "\u{0}" }] }),
                "segments.1.text",
            ),
            (
                serde_json::json!({ "x": { "id": "\u{0}" } }),
                "input.spec.scenes.0.id",
            ),
            (serde_json::json!({ "unused": "\u{0}" }), "unused"),
        ] {
            let request = async_graphql::Request::new("")
                .variables(async_graphql::Variables::from_json(variables));
            let facts = plain(&used);
            let error = refusal(&request, facts, 12).expect("refused");
            assert_eq!(
                error.extensions.expect("extensions").get("field"),
                Some(&async_graphql::Value::from(field))
            );
        }
        // In a document of several operations, the one the request names.
        let several = async_graphql::parser::parse_query(
            "query A($input: String) { creators(search: $input) { id } } mutation B($input: R!) { register(input: $input) { id } }",
        )
        .expect("parses");
        for (operation, field) in [("A", "search"), ("B", "input.displayName")] {
            let value = if operation == "A" {
                serde_json::json!("\u{0}")
            } else {
                serde_json::json!({ "displayName": "\u{0}" })
            };
            let request = async_graphql::Request::new("")
                .operation_name(operation)
                .variables(async_graphql::Variables::from_json(
                    serde_json::json!({ "input": value }),
                ));
            let facts = plain(&several);
            let error = refusal(&request, facts, 12).expect("refused");
            assert_eq!(
                error.extensions.expect("extensions").get("field"),
                Some(&async_graphql::Value::from(field)),
                "{operation}"
            );
        }
        let plain = async_graphql::Request::new("{ a }");
        let fault = ("search".to_owned(), NUL.to_owned());
        assert!(refusal(&plain, facts(Some(&fault), 1), 12).is_some());
        assert!(refusal(&plain, facts(None, 13), 12).is_some());
        assert!(refusal(&plain, facts(None, 12), 12).is_none());
        assert!(
            refusal(&plain, None, 12).is_none(),
            "syntax errors are the schema's"
        );
    }

    #[test]
    fn a_required_variable_left_out_or_null_refuses_the_request() {
        let document = async_graphql::parser::parse_query(
            "query A($id: ID!, $n: Int, $d: Int! = 3) { a(id: $id, n: $n, d: $d) } query B($s: String!) { b(s: $s) }",
        )
        .expect("parses");
        let facts = plain(&document);
        let request = |operation: &str, variables: serde_json::Value| {
            async_graphql::Request::new("")
                .operation_name(operation)
                .variables(async_graphql::Variables::from_json(variables))
        };
        let field = |error: ServerError| {
            let extensions = error.extensions.expect("extensions");
            extensions.get("field").map(ToString::to_string)
        };
        let missing = refusal(&request("A", serde_json::json!({})), facts, 12).expect("refused");
        assert_eq!(missing.message, "variable `$id` of type `ID!` is required");
        assert_eq!(field(missing), Some("\"id\"".to_owned()));
        let null = refusal(&request("A", serde_json::json!({"id": null})), facts, 12);
        assert!(null.is_some());
        // Nullable and defaulted variables may be left out.
        assert!(refusal(&request("A", serde_json::json!({"id": "x"})), facts, 12).is_none());
        // Only the operation asked for counts.
        let b = refusal(&request("B", serde_json::json!({"id": "x"})), facts, 12).expect("refused");
        assert_eq!(field(b), Some("\"s\"".to_owned()));
        // With several operations and none named, async-graphql says which is missing.
        let unnamed = async_graphql::Request::new("");
        assert!(refusal(&unnamed, facts, 12).is_none());
    }
}

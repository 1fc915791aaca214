//! Variable values and literal arguments checked against their declared types before an
//! operation runs (GraphQL spec, CoerceVariableValues: a value that cannot be coerced is a
//! request error). async-graphql parses a scalar inside a variable only when the field that
//! reads it runs, so in a mutation of several fields the ones before had already written by
//! then: `createCreator` committed, and the `createInviteCode` after it failed on
//! `expiresAt: "yesterday"`. Its validation of literals lets through the same kinds of value
//! (a `DateTime` literal that is no date, an `Int` past 32 bits, text where an input object
//! belongs), so those are checked here too ([`mistyped_literal`]).
//!
//! Checked here: the built-in scalars and `DateTime`, wherever they sit (inside input objects
//! and lists, by the schema's input types), and that an input object's value is an object.
//! Enums, unknown or missing input fields and `@oneOf` are async-graphql's validation's, which
//! refuses them before anything runs. GraphQL's `Int` is 32 bits; the schema's byte sizes and
//! credit amounts are wider ([`WIDE_INTS`]), so those take any 64-bit integer.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationType, Selection, SelectionSet, Type, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_value::{ConstValue, Value};

/// Input fields and arguments whose `Int` holds 64 bits (`i64` in the resolvers).
const WIDE_INTS: [&str; 2] = ["sizeBytes", "credits"];

/// What the checks need of the schema: its input objects' fields, and its output types'
/// fields with their arguments.
#[derive(Default)]
pub(super) struct Types {
    /// The fields of each input object type, with their types.
    inputs: HashMap<String, Vec<(String, Type)>>,
    /// The fields of each object and interface type.
    pub(super) outputs: HashMap<String, HashMap<String, OutputField>>,
    /// The root types of queries, mutations and subscriptions.
    roots: [String; 3],
    /// The object types.
    pub(super) objects: HashSet<String>,
    /// The union types.
    pub(super) unions: HashSet<String>,
    /// Arguments (`Type.field(argument)`) and input fields (`Input.field`) with a default.
    defaulted: HashSet<String>,
    /// The enum types.
    enums: HashSet<String>,
}

pub(super) struct OutputField {
    /// The named type the field returns (lists unwrapped).
    pub(super) returns: String,
    /// The type it returns, as declared.
    pub(super) ty: Type,
    arguments: Vec<(String, Type)>,
}

pub(super) static TYPES: LazyLock<Types> = LazyLock::new(|| types(&super::sdl()));

fn types(sdl: &str) -> Types {
    let Ok(document) = async_graphql::parser::parse_schema(sdl) else {
        return Types::default();
    };
    let mut types = Types {
        roots: ["Query", "Mutation", "Subscription"].map(str::to_owned),
        ..Types::default()
    };
    let fields =
        |fields: &[async_graphql::Positioned<async_graphql::parser::types::FieldDefinition>]| {
            fields
                .iter()
                .map(|field| {
                    let field = &field.node;
                    let mut returns = &field.ty.node;
                    while let BaseType::List(item) = &returns.base {
                        returns = item;
                    }
                    let arguments = field
                        .arguments
                        .iter()
                        .map(|a| (a.node.name.node.to_string(), a.node.ty.node.clone()))
                        .collect();
                    (
                        field.name.node.to_string(),
                        OutputField {
                            returns: returns.base.to_string(),
                            ty: field.ty.node.clone(),
                            arguments,
                        },
                    )
                })
                .collect()
        };
    for definition in document.definitions {
        match definition {
            TypeSystemDefinition::Schema(schema) => {
                let roots = [
                    &schema.node.query,
                    &schema.node.mutation,
                    &schema.node.subscription,
                ];
                for (root, name) in types.roots.iter_mut().zip(roots) {
                    if let Some(name) = name {
                        *root = name.node.to_string();
                    }
                }
            }
            TypeSystemDefinition::Type(ty) => {
                let name = ty.node.name.node.to_string();
                match &ty.node.kind {
                    TypeKind::InputObject(input) => {
                        for field in &input.fields {
                            if field.node.default_value.is_some() {
                                types
                                    .defaulted
                                    .insert(format!("{name}.{}", field.node.name.node));
                            }
                        }
                        let fields = input
                            .fields
                            .iter()
                            .map(|f| (f.node.name.node.to_string(), f.node.ty.node.clone()))
                            .collect();
                        types.inputs.insert(name, fields);
                    }
                    TypeKind::Object(object) => {
                        for field in &object.fields {
                            for argument in &field.node.arguments {
                                if argument.node.default_value.is_some() {
                                    types.defaulted.insert(format!(
                                        "{name}.{}({})",
                                        field.node.name.node, argument.node.name.node
                                    ));
                                }
                            }
                        }
                        types.objects.insert(name.clone());
                        types.outputs.insert(name, fields(&object.fields));
                    }
                    TypeKind::Interface(interface) => {
                        types.outputs.insert(name, fields(&interface.fields));
                    }
                    TypeKind::Enum(_) => {
                        types.enums.insert(name);
                    }
                    TypeKind::Union(_) => {
                        types.unions.insert(name);
                    }
                    _ => {}
                }
            }
            TypeSystemDefinition::Directive(_) => {}
        }
    }
    types
}

/// The first literal argument of `document` (any operation, fragments included) that is not
/// of its type: its path (`input.expiresAt`, `segments.0`) and why. Variables inside a literal
/// are left to [`mistyped`].
pub fn mistyped_literal(document: &ExecutableDocument) -> Option<(String, String)> {
    let types = &*TYPES;
    document.operations.iter().find_map(|(name, operation)| {
        // A default is written in the document too (`$s: VideoStatus = "READY"` is no enum
        // value); named where the variable is used.
        let defaults = operation.node.variable_definitions.iter().find_map(|d| {
            let default = d.node.default_value.as_ref()?;
            let variable = d.node.name.node.as_str();
            // Where it is used is looked for only once it may be wrong: that walks the
            // document. Checked as no 64-bit field first, which finds a fault wherever the
            // check at the place it is used would.
            let mut within = String::new();
            check(&d.node.var_type.node, &default.node, "", &mut within, true)?;
            let used_at =
                super::inputs::argument_path_of(document, name.map(|n| n.as_str()), variable)
                    .unwrap_or_else(|| variable.to_owned());
            let mut within = String::new();
            let message = check(
                &d.node.var_type.node,
                &default.node,
                last_name(&used_at),
                &mut within,
                true,
            )?;
            Some((format!("{used_at}{within}"), message))
        });
        if defaults.is_some() {
            return defaults;
        }
        let mut walked = HashSet::new();
        let root = &operation.node.selection_set.node;
        find_argument(
            types,
            document,
            root_type(types, operation.node.ty),
            root,
            &mut walked,
            &mut |_, _, argument, ty, value| {
                let value = value
                    .clone()
                    .into_const_with(|_| Ok::<_, std::convert::Infallible>(ConstValue::Null))
                    .ok()?;
                let mut within = String::new();
                let message = check(ty, &value, argument, &mut within, true)?;
                Some((format!("{argument}{within}"), message))
            },
        )
    })
}

/// The operation type's root type in `types`.
pub(super) fn root_type(types: &Types, ty: OperationType) -> &str {
    match ty {
        OperationType::Query => &types.roots[0],
        OperationType::Mutation => &types.roots[1],
        OperationType::Subscription => &types.roots[2],
    }
}

/// The first argument given in `set` (a selection set on `parent`) for which `visit` finds
/// something, through fields, inline fragments and each named fragment once: `visit(parent,
/// field, argument, its type, its value)`. Fields and arguments the schema lacks are skipped:
/// they are validation's to refuse, as is a fragment spreading itself.
fn find_argument<'a, T>(
    types: &Types,
    document: &'a ExecutableDocument,
    parent: &str,
    set: &'a SelectionSet,
    walked: &mut HashSet<&'a str>,
    visit: &mut impl FnMut(&str, &str, &str, &Type, &'a Value) -> Option<T>,
) -> Option<T> {
    set.items.iter().find_map(|item| {
        // `@skip(if: Boolean!)` and `@include(if: Boolean!)`, on any selection.
        let condition = item.node.directives().iter().find_map(|directive| {
            let name = directive.node.name.node.as_str();
            if !matches!(name, "skip" | "include") {
                return None;
            }
            let value = directive.node.get_argument("if")?;
            visit(parent, &format!("@{name}"), "if", &CONDITION, &value.node)
        });
        condition.or_else(|| in_selection(types, document, parent, item, walked, visit))
    })
}

/// The type of `@skip`'s and `@include`'s `if`.
static CONDITION: LazyLock<Type> = LazyLock::new(|| {
    Type::new("Boolean!").unwrap_or(Type {
        base: BaseType::Named(async_graphql::Name::new("Boolean")),
        nullable: false,
    })
});

/// [`find_argument`] in one selection's arguments and selections.
fn in_selection<'a, T>(
    types: &Types,
    document: &'a ExecutableDocument,
    parent: &str,
    item: &'a async_graphql::Positioned<Selection>,
    walked: &mut HashSet<&'a str>,
    visit: &mut impl FnMut(&str, &str, &str, &Type, &'a Value) -> Option<T>,
) -> Option<T> {
    match &item.node {
        Selection::Field(field) => {
            let name = field.node.name.node.as_str();
            let known = types.outputs.get(parent)?.get(name)?;
            let given = field.node.arguments.iter().find_map(|(argument, value)| {
                let argument = argument.node.as_str();
                let (_, ty) = known.arguments.iter().find(|(n, _)| n == argument)?;
                visit(parent, name, argument, ty, &value.node)
            });
            given.or_else(|| {
                let inner = &field.node.selection_set.node;
                find_argument(types, document, &known.returns, inner, walked, visit)
            })
        }
        Selection::InlineFragment(fragment) => {
            let on = fragment.node.type_condition.as_ref();
            let on = on.map_or(parent, |c| c.node.on.node.as_str());
            let inner = &fragment.node.selection_set.node;
            find_argument(types, document, on, inner, walked, visit)
        }
        Selection::FragmentSpread(spread) => {
            let name = &spread.node.fragment_name.node;
            let (name, fragment) = document.fragments.get_key_value(name)?;
            if !walked.insert(name.as_str()) {
                return None;
            }
            let on = fragment.node.type_condition.node.on.node.as_str();
            let inner = &fragment.node.selection_set.node;
            find_argument(types, document, on, inner, walked, visit)
        }
    }
}

/// The first place in `document` where a variable is given to an argument or input field its
/// declared type does not fit (spec: All Variable Usages Are Allowed): its path (`creatorId`,
/// `input.title`) and why. A nullable variable fits a non-null place only with a default
/// (its own or the place's), and named types must be the same. async-graphql 7's rule for this
/// lets every usage through, so `mutation($x: ID) { a: followCreator(…) b:
/// unfollowCreator(creatorId: $x) }` without `$x` ran `a` and failed `b` (and graphql-js, and
/// every client checking documents against the schema, refuses such a document).
pub fn misplaced_variable(document: &ExecutableDocument) -> Option<(String, String)> {
    let types = &*TYPES;
    document.operations.iter().find_map(|(_, operation)| {
        let operation = &operation.node;
        let declared: HashMap<&str, (&Type, bool)> = operation
            .variable_definitions
            .iter()
            .map(|d| {
                let defaulted = d
                    .node
                    .default_value
                    .as_ref()
                    .is_some_and(|v| !matches!(v.node, ConstValue::Null));
                (
                    d.node.name.node.as_str(),
                    (&d.node.var_type.node, defaulted),
                )
            })
            .collect();
        let mut walked = HashSet::new();
        let root = &operation.selection_set.node;
        find_argument(
            types,
            document,
            root_type(types, operation.ty),
            root,
            &mut walked,
            &mut |parent, field, argument, ty, value| {
                let defaulted = types
                    .defaulted
                    .contains(&format!("{parent}.{field}({argument})"));
                let mut path = argument.to_owned();
                misplaced_in(types, &declared, value, ty, defaulted, &mut path)
            },
        )
    })
}

/// A variable in `value` (at `ty`, which has a default when `defaulted`) that does not fit
/// its declaration in `declared` (its type, and whether it has a non-null default).
fn misplaced_in(
    types: &Types,
    declared: &HashMap<&str, (&Type, bool)>,
    value: &Value,
    ty: &Type,
    defaulted: bool,
    path: &mut String,
) -> Option<(String, String)> {
    match value {
        Value::Variable(variable) => {
            // An undeclared variable is validation's to refuse.
            let (declared, has_default) = declared.get(variable.as_str())?;
            (!allowed(declared, *has_default, ty, defaulted)).then(|| {
                (
                    path.clone(),
                    format!(
                        "variable ${variable} of type {declared} is used where {ty} is expected"
                    ),
                )
            })
        }
        Value::List(items) => {
            let BaseType::List(item) = &ty.base else {
                return None;
            };
            items.iter().enumerate().find_map(|(i, v)| {
                let before = path.len();
                path.push_str(&format!(".{i}"));
                let found = misplaced_in(types, declared, v, item, false, path);
                path.truncate(before);
                found
            })
        }
        // One value where a list is expected is a list of one (input coercion).
        single if matches!(ty.base, BaseType::List(_)) => {
            let BaseType::List(item) = &ty.base else {
                return None;
            };
            misplaced_in(types, declared, single, item, false, path)
        }
        Value::Object(fields) => {
            let BaseType::Named(input) = &ty.base else {
                return None;
            };
            let known = types.inputs.get(input.as_str())?;
            fields.iter().find_map(|(name, v)| {
                let (_, field_ty) = known.iter().find(|(n, _)| n == name.as_str())?;
                let defaulted = types.defaulted.contains(&format!("{input}.{name}"));
                let before = path.len();
                path.push('.');
                path.push_str(name);
                let found = misplaced_in(types, declared, v, field_ty, defaulted, path);
                path.truncate(before);
                found
            })
        }
        _ => None,
    }
}

/// Whether a variable of type `variable` (with a non-null default when `has_default`) may be
/// given where `location` (with a default when `location_default`) is expected: the spec's
/// IsVariableUsageAllowed.
fn allowed(variable: &Type, has_default: bool, location: &Type, location_default: bool) -> bool {
    if !location.nullable && variable.nullable {
        if !(has_default || location_default) {
            return false;
        }
        let location = Type {
            base: location.base.clone(),
            nullable: true,
        };
        return compatible(variable, &location);
    }
    compatible(variable, location)
}

/// The spec's AreTypesCompatible.
fn compatible(variable: &Type, location: &Type) -> bool {
    if !location.nullable && variable.nullable {
        return false;
    }
    match (&variable.base, &location.base) {
        (BaseType::List(variable), BaseType::List(location)) => compatible(variable, location),
        (BaseType::Named(variable), BaseType::Named(location)) => variable == location,
        _ => false,
    }
}

/// A variable whose value is not of its type.
#[derive(Debug, PartialEq, Eq)]
pub struct Mistyped {
    /// The variable's name.
    pub variable: String,
    /// Where in its value (`.expiresAt`, `.segments.1.start`; empty for the value itself).
    pub within: String,
    pub message: String,
}

/// The first variable of the operation `operation` of `document` whose value in `variables`
/// is not of its declared type. `position` names where a variable is used (the argument or
/// input field it is given to), to tell wide integers.
pub fn mistyped(
    document: &ExecutableDocument,
    operation: Option<&str>,
    variables: &async_graphql::Variables,
    position: impl Fn(&str) -> Option<String>,
) -> Option<Mistyped> {
    let operation = super::nulls::pick(document, operation)?;
    for definition in &operation.variable_definitions {
        let name = definition.node.name.node.as_str();
        let Some(value) = variables.get(&definition.node.name.node) else {
            continue;
        };
        let used_as = position(name).unwrap_or_default();
        let mut within = String::new();
        let ty = &definition.node.var_type.node;
        if let Some(message) = check(ty, value, last_name(&used_as), &mut within, false) {
            return Some(Mistyped {
                variable: name.to_owned(),
                within,
                message,
            });
        }
    }
    None
}

/// The last segment of a path that is a name, not a list index.
fn last_name(path: &str) -> &str {
    path.rsplit('.')
        .find(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("")
}

/// Why `value` is not a `ty`, if it is not. A `literal` is written in the document, where an
/// enum value is a name (`status: READY`); a variable's JSON gives it as a string.
fn check(
    ty: &Type,
    value: &ConstValue,
    field: &str,
    path: &mut String,
    literal: bool,
) -> Option<String> {
    if matches!(value, ConstValue::Null) {
        return None; // nullability is checked elsewhere (`missing_variable`, validation)
    }
    match &ty.base {
        BaseType::List(item) => match value {
            ConstValue::List(items) => items.iter().enumerate().find_map(|(i, v)| {
                let before = path.len();
                path.push_str(&format!(".{i}"));
                let found = check(item, v, field, path, literal);
                if found.is_none() {
                    path.truncate(before);
                }
                found
            }),
            // One value where a list is expected is a list of one.
            single => check(item, single, field, path, literal),
        },
        BaseType::Named(name) if literal && TYPES.enums.contains(name.as_str()) => {
            // graphql-js refuses `"READY"` for an enum; async-graphql took it.
            matches!(value, ConstValue::String(_))
                .then(|| format!("must be a value of {name}, written without quotes"))
        }
        BaseType::Named(name) => scalar(name.as_str(), value, field).or_else(|| {
            let fields = TYPES.inputs.get(name.as_str())?;
            // async-graphql's validation lets any other value through for an input object,
            // and the field reading it fails when it runs.
            let ConstValue::Object(given) = value else {
                return Some(format!("must be an object ({name})"));
            };
            fields.iter().find_map(|(name, ty)| {
                let v = given.get(name.as_str())?;
                let before = path.len();
                path.push('.');
                path.push_str(name);
                let found = check(ty, v, name, path, literal);
                if found.is_none() {
                    path.truncate(before);
                }
                found
            })
        }),
    }
}

/// Why `value` is not a `name` (a scalar this checks), if it is not.
fn scalar(name: &str, value: &ConstValue, field: &str) -> Option<String> {
    let ok = match name {
        "Int" => {
            let wide = WIDE_INTS.contains(&field);
            let fits = match value {
                ConstValue::Number(n) => {
                    n.as_i64().is_some_and(|v| wide || i32::try_from(v).is_ok())
                }
                _ => false,
            };
            if !fits {
                return Some(if wide {
                    "must be a whole number (64 bits)".to_owned()
                } else {
                    format!("must be a whole number from {} to {}", i32::MIN, i32::MAX)
                });
            }
            true
        }
        "Float" => matches!(value, ConstValue::Number(_)),
        "String" => matches!(value, ConstValue::String(_)),
        "Boolean" => matches!(value, ConstValue::Boolean(_)),
        "ID" => {
            matches!(value, ConstValue::String(_))
                || matches!(value, ConstValue::Number(n) if n.is_i64() || n.is_u64())
        }
        "DateTime" => {
            // RFC 3339 years have four digits: chrono also reads `+10000-01-01T00:00:00Z`,
            // which SQLite, comparing the stored text, would order before every year 2000 one
            // (a retention date "in 10000" expired the video at once).
            use chrono::Datelike;
            if !matches!(value, ConstValue::String(s)
                if s.parse::<chrono::DateTime<chrono::Utc>>()
                    .is_ok_and(|t| (1..=9999).contains(&t.year())))
            {
                return Some(
                    "must be an RFC 3339 date and time from year 0001 to 9999, like 2026-12-05T10:00:00Z"
                        .to_owned(),
                );
            }
            true
        }
        _ => return None,
    };
    (!ok).then(|| {
        match name {
            "Float" => "must be a number",
            "String" => "must be text",
            "Boolean" => "must be true or false",
            _ => "must be an ID (text)",
        }
        .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn misplaced(query: &str) -> Option<(String, String)> {
        misplaced_variable(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn an_enum_is_written_as_a_name_not_a_string() {
        let literal = |query: &str| {
            mistyped_literal(&async_graphql::parser::parse_query(query).expect("parses"))
        };
        assert_eq!(
            literal("{ videos(status: \"READY\") { totalCount } }"),
            Some((
                "status".to_owned(),
                "must be a value of VideoStatus, written without quotes".to_owned()
            ))
        );
        assert_eq!(literal("{ videos(status: READY) { totalCount } }"), None);
        assert_eq!(
            literal("query($s: VideoStatus = \"READY\") { videos(status: $s) { totalCount } }")
                .map(|(path, _)| path),
            Some("status".to_owned())
        );
        assert_eq!(
            literal("query($s: VideoStatus = READY) { videos(status: $s) { totalCount } }"),
            None
        );
        // A wide Int default where a wide Int is used.
        assert_eq!(
            literal(
                "mutation($n: Int! = 3000000000) { grantCredits(userId: \"x\", credits: $n, reason: \"r\") }"
            ),
            None
        );
        // In a variable's JSON an enum value is a string.
        assert_eq!(
            first(
                "query($s: VideoStatus) { videos(status: $s) { totalCount } }",
                serde_json::json!({ "s": "READY" })
            ),
            None
        );
    }

    #[test]
    fn variables_must_fit_where_they_are_used() {
        // Nullable into non-null, without a default: refused, named by its place.
        assert_eq!(
            misplaced("query($id: ID) { video(id: $id) { id } }"),
            Some((
                "id".to_owned(),
                "variable $id of type ID is used where ID! is expected".to_owned()
            ))
        );
        // Inside an input object and a list, through a fragment.
        assert_eq!(
            misplaced(
                "mutation($t: String) { ...M } \
                 fragment M on MutationRoot { createCreator(input: { name: $t }) { id } }"
            )
            .map(|(path, _)| path),
            Some("input.name".to_owned())
        );
        // Another named type, or a list for a single value.
        assert!(misplaced("query($id: String!) { video(id: $id) { id } }").is_some());
        assert!(misplaced("query($id: [ID!]!) { video(id: $id) { id } }").is_some());
        // What fits: the same type, non-null into nullable, a nullable variable with a
        // default, and undeclared variables (validation's to refuse).
        for fine in [
            "query($id: ID!) { video(id: $id) { id } }",
            "query($n: Int!) { creators(first: $n) { totalCount } }",
            "query($id: ID = \"x\") { video(id: $id) { id } }",
            "query { video(id: $nowhere) { id } }",
        ] {
            assert_eq!(misplaced(fine), None, "{fine}");
        }
        // A default of null is no default.
        assert!(misplaced("query($id: ID = null) { video(id: $id) { id } }").is_some());
        // `@skip`/`@include` take a `Boolean!`, on fields, fragments and spreads alike.
        for query in [
            "query($v: Boolean) { me @include(if: $v) { id } }",
            "query($v: Boolean) { me { ... @skip(if: $v) { id } } }",
            "query($v: Boolean) { me { ...F @skip(if: $v) } } fragment F on User { id }",
            "query($v: String!) { me @skip(if: $v) { id } }",
        ] {
            assert_eq!(
                misplaced(query).map(|(path, _)| path).as_deref(),
                Some("if"),
                "{query}"
            );
        }
        for fine in [
            "query($v: Boolean!) { me @include(if: $v) { id } }",
            "query($v: Boolean = true) { me @include(if: $v) { id } }",
        ] {
            assert_eq!(misplaced(fine), None, "{fine}");
        }
        // One input object where a list of them is expected is a list of one.
        assert_eq!(
            misplaced(
                "mutation($t: String) { setTranscript(videoId: \"x\", \
                 segments: { startTime: 0, endTime: 1, text: $t }) { id } }"
            )
            .map(|(path, _)| path)
            .as_deref(),
            Some("segments.text")
        );
    }

    fn first(query: &str, variables: serde_json::Value) -> Option<Mistyped> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let variables = async_graphql::Variables::from_json(variables);
        mistyped(&document, None, &variables, |_| None)
    }

    #[test]
    fn scalars_inside_input_objects_and_lists_are_checked() {
        let query = "mutation($i: CreateInviteCodeInput!) { createInviteCode(input: $i) { code } }";
        assert_eq!(
            first(
                query,
                serde_json::json!({ "i": { "expiresAt": "yesterday" } })
            ),
            Some(Mistyped {
                variable: "i".into(),
                within: ".expiresAt".into(),
                message: "must be an RFC 3339 date and time from year 0001 to 9999, like 2026-12-05T10:00:00Z".into(),
            })
        );
        assert_eq!(
            first(
                query,
                serde_json::json!({ "i": { "expiresAt": "2026-12-05T10:00:00Z", "uses": 5 } })
            ),
            None
        );
        let uses = first(
            query,
            serde_json::json!({ "i": { "uses": 5_000_000_000_i64 } }),
        )
        .expect("too large for Int");
        assert_eq!(uses.within, ".uses");
        let ints = first(
            "query($n: [Int!]) { a(n: $n) }",
            serde_json::json!({ "n": [1, 2.5] }),
        )
        .expect("not whole");
        assert_eq!(ints.within, ".1");
    }

    #[test]
    fn byte_sizes_and_credits_take_64_bits() {
        let document =
            async_graphql::parser::parse_query("mutation($n: Int!) { grantCredits(credits: $n) }")
                .expect("parses");
        let variables =
            async_graphql::Variables::from_json(serde_json::json!({ "n": 3_000_000_000_i64 }));
        assert_eq!(
            mistyped(&document, None, &variables, |_| Some("credits".into())),
            None
        );
        assert!(mistyped(&document, None, &variables, |_| Some("first".into())).is_some());
    }

    #[test]
    fn an_input_object_takes_only_an_object() {
        let query = "mutation($a: CreateCreatorInput!, $s: [TranscriptSegmentInput!]!) {
            createCreator(input: $a) { id } setTranscript(videoId: \"v\", segments: $s) { id } }";
        let wrong = first(query, serde_json::json!({ "a": "Two", "s": [] })).expect("text");
        assert_eq!((wrong.variable.as_str(), wrong.within.as_str()), ("a", ""));
        assert_eq!(wrong.message, "must be an object (CreateCreatorInput)");
        let wrong = first(
            query,
            serde_json::json!({ "a": { "name": "One" }, "s": [{ "startTime": 0, "endTime": 1, "text": "x" }, 1] }),
        )
        .expect("number");
        assert_eq!(
            (wrong.variable.as_str(), wrong.within.as_str()),
            ("s", ".1")
        );
        assert_eq!(
            first(
                query,
                serde_json::json!({ "a": { "name": "One" }, "s": [] })
            ),
            None
        );
    }

    fn literal(query: &str) -> Option<(String, String)> {
        mistyped_literal(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    #[test]
    fn literal_arguments_are_checked_by_the_fields_they_are_given_to() {
        let field = |query: &str| literal(query).map(|(path, _)| path);
        assert_eq!(
            field(r#"{ __typename @skip(if: "no") }"#),
            Some("if".into())
        );
        assert_eq!(field(r#"{ me { id @include(if: 1) } }"#), Some("if".into()));
        assert_eq!(field(r#"{ me { id @include(if: false) } }"#), None);
        assert_eq!(
            field(
                r#"mutation { a: createCreator(input: { name: "One" }) { id } b: createCreator(input: "Two") { id } }"#
            ),
            Some("input".into())
        );
        assert_eq!(
            field(r#"mutation { createInviteCode(input: { expiresAt: "tomorrow" }) { code } }"#),
            Some("input.expiresAt".into())
        );
        assert_eq!(
            field(r#"mutation { createInviteCode(input: { uses: 3000000000 }) { code } }"#),
            Some("input.uses".into())
        );
        assert_eq!(
            field(
                r#"mutation { setTranscript(videoId: "v", segments: [{ startTime: 0, endTime: 1, text: "a" }, 1]) { id } }"#
            ),
            Some("segments.1".into())
        );
        // Nested fields, fragments and inline fragments, by the type they select on.
        assert_eq!(
            field(
                r#"query { me { ...F } } fragment F on User { creators { videos(first: "x") { totalCount } } }"#
            ),
            Some("first".into())
        );
        assert_eq!(
            field(
                r#"query { node(id: "x") { ... on Creator { videos(first: 1.5) { totalCount } } } }"#
            ),
            Some("first".into())
        );
        // Right, or variables (checked by `mistyped`), or unknown fields (validation's).
        assert_eq!(
            field(
                r#"mutation($d: DateTime) { createInviteCode(input: { uses: 2, expiresAt: $d }) { code } }"#
            ),
            None
        );
        assert_eq!(
            field(r#"mutation { grantCredits(userId: "u", credits: 3000000000) }"#),
            None
        );
        assert_eq!(field(r#"query { nope(first: "x") { a } me { id } }"#), None);
        assert_eq!(
            field("query { ...F } fragment F on QueryRoot { ...F }"),
            None
        );
    }
}

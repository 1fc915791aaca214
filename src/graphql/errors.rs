//! Gives every error an `extensions.code` from the contract's list.
//!
//! Resolver errors get theirs from `AppError`. Errors raised by async-graphql itself (syntax,
//! validation, argument coercion, depth and complexity limits) carry none, so [`add_codes`]
//! adds one to every response before it leaves: `QUERY_TOO_COMPLEX` for the limits,
//! `BAD_USER_INPUT` for the rest — they are all about the query the client sent.
//!
//! This is done on the finished response (by the HTTP handler and the WebSocket layer) rather
//! than in a schema extension: with any extension registered, async-graphql routes every
//! field of every response through the extension chain, which costs more than resolving it.

use async_graphql::{Response, ServerError};

/// Adds the missing codes to a response's errors; `max_complexity` is the server's limit
/// (`REELGRAPH_MAX_QUERY_COMPLEXITY`), which async-graphql's refusal does not say.
pub fn add_codes(response: &mut Response, max_complexity: usize) {
    for error in &mut response.errors {
        ensure_code(error);
        if error.message == "Query is too complex." {
            error.message = format!(
                "Query is too complex: its cost (one per field, a list's page size times the \
                 cost of what it selects) is above this server's limit of {max_complexity}; \
                 ask for smaller pages or fewer fields."
            );
        }
    }
}

/// Most errors one answer lists, as graphql-js stops validating at 100: a document of 1 MB
/// repeating one mistake (65,000 duplicate directives, 60,000 unused variables) would
/// otherwise be answered with 8 MB of errors, to anyone.
pub const MAX_ERRORS: usize = 100;

/// Keeps the first [`MAX_ERRORS`] of a response's errors (each once: the same error twice in
/// a row is listed once) and says how many more there were,
/// with the code of the first left out. Run after the errors have their codes and have nulled
/// what they must ([`super::nulls::complete`]).
pub fn cap(response: &mut Response) {
    // async-graphql reports some mistakes twice over (`query($x: Nope)`: "Unknown type" once
    // from each of two rules, at one place).
    response.errors.dedup();
    if response.errors.len() <= MAX_ERRORS {
        return;
    }
    let rest = response.errors.split_off(MAX_ERRORS - 1);
    let code = code_of(&rest[0]).unwrap_or("BAD_USER_INPUT").to_owned();
    let mut more = ServerError::new(
        format!(
            "{} more errors left out (an answer lists at most {MAX_ERRORS})",
            rest.len()
        ),
        None,
    );
    set_code(&mut more, &code);
    response.errors.push(more);
}

/// An error's `extensions.code`, if it has one.
pub fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code),
        _ => None,
    }
}

fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some())
}

fn set_code(error: &mut ServerError, code: &str) {
    if !has_code(error) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

/// Errors without a code at this point come from async-graphql's own input handling.
fn ensure_code(error: &mut ServerError) {
    if has_code(error) {
        return;
    }
    if error.message == "Query is too complex."
        || error.message == "Query is nested too deep."
        || error.message.starts_with("The recursion depth")
        // The parser's own nesting limit (64 selection sets), reached before ours is measured.
        || error.message == "recursion limit exceeded."
    {
        set_code(error, "QUERY_TOO_COMPLEX");
        return;
    }
    set_code(error, "BAD_USER_INPUT");
    if let Some(short) = syntax_message(&error.message).or_else(|| number_message(&error.message)) {
        error.message = short;
        return;
    }
    if let Some(short) = missing_argument_message(&error.message) {
        error.message = short;
    }
    // async-graphql's words for an `@oneOf` input (`LayerInput`) given no field or two.
    for oneof in [
        "Oneof input objects requires have exactly one field",
        "Oneof Input Objects require that exactly one field must be supplied and that field must not be null",
    ] {
        if error.message.contains(oneof) {
            error.message = error.message.replace(
                oneof,
                "exactly one of its fields must be given, and not null",
            );
        }
    }
    if let Some(field) = argument_name(&error.message) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("field", field);
    }
}

/// async-graphql's syntax errors are the parser's report: the position, the whole source line
/// under it, and a caret. A document sent on one line was echoed whole (a 1 MB body gave a
/// 1 MB message, once per error). Kept: where, and what was expected there.
fn syntax_message(message: &str) -> Option<String> {
    let (position, _) = message.strip_prefix(" --> ")?.split_once('\n')?;
    let (line, column) = position.split_once(':')?;
    let reason = message
        .lines()
        .rev()
        .find_map(|line| line.trim_start().strip_prefix("= "))?;
    let reason = reason
        .replace("EOI", "the end of the document")
        .replace("executable_definition", "an operation or fragment");
    Some(format!(
        "syntax error at line {line}, column {column}: {reason}"
    ))
}

/// A literal number the parser cannot hold (`1e400`): its report is serde_json's, whose line and
/// column are within the number, not the document (the error's `locations` say where it is).
fn number_message(message: &str) -> Option<String> {
    let reason = message.strip_prefix("invalid number: ")?;
    let reason = reason
        .split_once(" at line ")
        .map_or(reason, |(reason, _)| reason);
    Some(format!(
        "invalid number: {reason} (a Float is at most about 1.8e308, an Int 32 bits)"
    ))
}

/// `Field "video" argument "id" of type "QueryRoot" is required but not provided`: the type
/// async-graphql names is the field's parent, not the argument's; left out.
fn missing_argument_message(message: &str) -> Option<String> {
    let (head, _) = message.split_once(" of type \"")?;
    (message.starts_with("Field \"") && message.ends_with(" is required but not provided"))
        .then(|| format!("{head} is required but not provided"))
}

/// `Invalid value for argument "input.email", …` → `input.email`; a field missing from an
/// input object, or unknown to it, is named too: `Invalid value for argument "input", field
/// "name" of type "String!" is required but not provided` → `input.name`.
fn argument_name(message: &str) -> Option<String> {
    let rest = message.split_once("argument \"")?.1;
    let (path, rest) = rest.split_once('"')?;
    let field = rest
        .strip_prefix(", field \"")
        .or_else(|| rest.strip_prefix(", unknown field \""))
        .and_then(|rest| rest.split_once('"'))
        .map(|(field, _)| field);
    Some(match field {
        Some(field) => format!("{path}.{field}"),
        None => path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::argument_name;

    #[test]
    fn syntax_errors_say_where_without_the_source() {
        let report = " --> 1:15\n  |\n1 | { me { id } } xxxxxxxx\n  |               ^---\n  |\n  = expected EOI or executable_definition";
        assert_eq!(
            super::syntax_message(report).as_deref(),
            Some(
                "syntax error at line 1, column 15: expected the end of the document or an operation or fragment"
            )
        );
        assert_eq!(super::syntax_message("Unknown field \"x\""), None);
        assert_eq!(
            super::number_message("invalid number: number out of range at line 1 column 5")
                .as_deref(),
            Some(
                "invalid number: number out of range (a Float is at most about 1.8e308, an Int 32 bits)"
            )
        );
        assert_eq!(super::number_message("Unknown field \"x\""), None);
        assert_eq!(
            super::missing_argument_message(
                r#"Field "video" argument "id" of type "QueryRoot" is required but not provided"#
            )
            .as_deref(),
            Some(r#"Field "video" argument "id" is required but not provided"#)
        );
    }

    #[test]
    fn the_field_is_the_whole_input_path() {
        let named = |m: &str| argument_name(m);
        assert_eq!(
            named(r#"Invalid value for argument "input.email", expected type "String""#).as_deref(),
            Some("input.email")
        );
        assert_eq!(
            named(
                r#"Invalid value for argument "input", field "name" of type "String!" is required but not provided"#
            )
            .as_deref(),
            Some("input.name")
        );
        assert_eq!(
            named(
                r#"Invalid value for argument "input.spec.scenes.0", unknown field "bogus" of type "SceneInput""#
            )
            .as_deref(),
            Some("input.spec.scenes.0.bogus")
        );
        assert_eq!(named("Unknown field \"x\" on type \"Query\"."), None);
    }
}

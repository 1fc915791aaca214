//! Gives every error an `extensions.code` from the contract's list.
//!
//! Resolver errors get theirs from `AppError`. Errors raised by async-graphql itself (syntax,
//! validation, argument coercion, depth and complexity limits) carry none, so this extension
//! adds one: `QUERY_TOO_COMPLEX` for the limits, `BAD_USER_INPUT` for the rest — they are all
//! about the query the client sent.
//!
//! `Schema::execute` runs the `request` hook, `Schema::execute_stream` (the WebSocket layer)
//! only the `subscribe` hook, so both add the missing codes.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, ValidationResult,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe, NextValidation,
    },
};
use futures_util::stream::{BoxStream, StreamExt};

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            ensure_code(error);
        }
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                for error in &mut response.errors {
                    ensure_code(error);
                }
                response
            })
            .boxed()
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                let code = if error.message == "Query is too complex."
                    || error.message == "Query is nested too deep."
                    || error.message.starts_with("The recursion depth")
                {
                    "QUERY_TOO_COMPLEX"
                } else {
                    "BAD_USER_INPUT"
                };
                set_code(error, code);
            }
            errors
        })
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
    set_code(error, "BAD_USER_INPUT");
    if let Some(field) = argument_name(&error.message) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("field", field);
    }
}

/// `Invalid value for argument "input.email", …` → `input.email`.
fn argument_name(message: &str) -> Option<String> {
    let rest = message.split_once("argument \"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}

//! Prometheus metrics, served at `/metrics`. Each server instance has its own registry (no
//! process-global state), so several instances can live in one test process.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

pub struct Metrics {
    registry: Registry,
    /// SQL statements sent to the database by this process.
    pub db_statements: Counter<u64, AtomicU64>,
    /// GraphQL operations executed over HTTP.
    pub graphql_operations: Counter<u64, AtomicU64>,
    /// Errors returned to clients, by `extensions.code`.
    pub graphql_errors: Family<CodeLabel, Counter<u64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reelgraph");
        let db_statements = Counter::default();
        let graphql_operations = Counter::default();
        let graphql_errors = Family::default();
        registry.register(
            "db_statements",
            "SQL statements executed",
            db_statements.clone(),
        );
        registry.register(
            "graphql_operations",
            "GraphQL operations executed (over HTTP and WebSocket)",
            graphql_operations.clone(),
        );
        registry.register(
            "graphql_errors",
            "GraphQL errors returned, by code",
            graphql_errors.clone(),
        );
        Self {
            registry,
            db_statements,
            graphql_operations,
            graphql_errors,
        }
    }
}

impl Metrics {
    /// Counts errors returned to a client, by their code.
    pub fn count_errors<'a>(
        &self,
        errors: impl IntoIterator<Item = &'a async_graphql::ServerError>,
    ) {
        for error in errors {
            let code = crate::graphql::errors::code_of(error)
                .unwrap_or_default()
                .to_owned();
            self.graphql_errors.get_or_create(&CodeLabel { code }).inc();
        }
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

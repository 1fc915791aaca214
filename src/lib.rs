//! Reelgraph: a GraphQL backend for video creator platforms.
//!
//! Layout, by domain: `auth` (accounts, sessions, tokens), `users`, `creators`, `videos`;
//! `access` holds every access rule; `graphql` the schema, pagination, loaders and error
//! codes; `http` the routes; `app` builds and runs the server; `db` connects and migrates; `client` is the
//! command-line client of a running server (`reelgraph render`, `reelgraph follow`).

pub mod access;
pub mod app;
pub mod auth;
pub mod billing;
pub mod client;
pub mod config;
pub mod consent;
pub mod content;
pub mod creators;
pub mod db;
pub mod error;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod media;
pub mod metrics;
pub mod render;
pub mod shorts;
pub mod state;
pub mod storage;
pub mod users;
pub mod videos;
pub mod ws;

pub use app::Application;

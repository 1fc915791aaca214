//! Integration tests: the real server on a real port, on SQLite and on PostgreSQL.

mod helpers;

mod admin;
mod auth;
mod billing;
mod cli;
mod consent;
mod content;
mod creators;
mod fuzz;
mod import;
mod jobs;
mod limits;
mod metrics;
mod over_http;
mod pipeline;
mod read_cache;
mod read_path;
mod render;
mod s3;
mod schema;
mod uploads;
mod videos;
mod webhooks;
mod websocket;
mod workers;

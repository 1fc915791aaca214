//! Integration tests: the real server on a real port, on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod consent;
mod content;
mod billing;
mod creators;
mod jobs;
mod limits;
mod render;
mod s3;
mod schema;
mod videos;
mod websocket;
mod workers;

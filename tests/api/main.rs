//! Integration tests: the real server on a real port, on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod creators;
mod limits;
mod schema;
mod videos;

//! Configuration: command-line flags backed by environment variables, with defaults that make
//! the embedded mode (SQLite + local data dir + in-process everything) work with none set.

use std::{net::SocketAddr, path::PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Settings shared by every subcommand that touches the database.
#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    /// Where the embedded database, the generated JWT secret and local objects live.
    #[arg(long, env = "REELGRAPH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// `postgres://…` for PostgreSQL; unset means an SQLite file in the data dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Upper bound of the database connection pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,

    /// HS256 secret for access tokens (at least 32 bytes). Required with PostgreSQL.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Registration needs a valid invite code when on.
    #[arg(long, env = "REELGRAPH_REQUIRE_INVITE", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_invite: bool,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "REELGRAPH_ACCESS_TOKEN_TTL", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a session (its refresh tokens), in days.
    #[arg(long, env = "REELGRAPH_SESSION_TTL_DAYS", default_value_t = 30)]
    pub session_ttl_days: u64,

    /// Deepest selection nesting a query may have.
    #[arg(long, env = "REELGRAPH_MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_query_depth: usize,

    /// Largest complexity score a query may have (list fields count `first` times their children).
    #[arg(long, env = "REELGRAPH_MAX_QUERY_COMPLEXITY", default_value_t = 5000)]
    pub max_query_complexity: usize,

    /// Origins allowed by CORS, comma separated; unset allows any origin (tokens are bearer
    /// headers, never cookies, so this exposes nothing to other sites).
    #[arg(long, env = "REELGRAPH_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "REELGRAPH_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "REELGRAPH_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy: bool,
}

impl Config {
    /// The embedded defaults rooted at `data_dir`, ignoring the environment (for tests and tools).
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            db_max_connections: 20,
            jwt_secret: None,
            require_invite: false,
            access_token_ttl_secs: 900,
            session_ttl_days: 30,
            max_query_depth: 12,
            max_query_complexity: 5000,
            cors_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            trust_proxy: false,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }
}

/// Settings of `reelgraph serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "REELGRAPH_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub config: Config,
}

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
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_max_connections: u32,

    /// How long to keep trying a PostgreSQL server that is not up yet (refuses connections,
    /// or is starting) before giving up at start, in seconds; 0 tries once.
    #[arg(long, env = "DATABASE_WAIT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub db_wait_secs: u64,

    /// HS256 secret for access tokens (at least 32 bytes). Required with PostgreSQL.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Registration needs a valid invite code when on.
    #[arg(long, env = "REELGRAPH_REQUIRE_INVITE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub require_invite: bool,

    /// Lifetime of an access token, in seconds (1 to 86400).
    #[arg(long, env = "REELGRAPH_ACCESS_TOKEN_TTL", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_token_ttl_secs: u64,

    /// Lifetime of a session (its refresh tokens), in days (1 to 3650). Lowering it ends the
    /// sessions older than the new lifetime: they refresh no more and are not listed (their
    /// access tokens run out within the access-token lifetime). Raising it again brings back
    /// those not ended otherwise.
    #[arg(long, env = "REELGRAPH_SESSION_TTL_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub session_ttl_days: u64,

    /// Deepest selection nesting a query may have.
    #[arg(long, env = "REELGRAPH_MAX_QUERY_DEPTH", default_value_t = 12,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub max_query_depth: usize,

    /// Largest complexity score a query may have (list fields count `first` times their children).
    #[arg(long, env = "REELGRAPH_MAX_QUERY_COMPLEXITY", default_value_t = 5000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_query_complexity: usize,

    /// Origins allowed by CORS, comma separated; unset or `*` allows any origin (tokens are bearer
    /// headers, never cookies, so this exposes nothing to other sites).
    #[arg(long, env = "REELGRAPH_CORS_ORIGINS", value_delimiter = ',', value_parser = cors_origin)]
    pub cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "REELGRAPH_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    pub max_body_bytes: usize,

    /// How long one HTTP request may run before it is stopped (milliseconds); WebSocket
    /// subscriptions and object transfers are not limited by it.
    #[arg(long, env = "REELGRAPH_REQUEST_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub request_timeout_ms: u64,

    /// Let webhook callbacks (`callbackUrl`) go to loopback, private and other non-public
    /// addresses (refused by default: a user could otherwise make the server call internal
    /// services).
    #[arg(long, env = "REELGRAPH_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_private: bool,

    /// Take the client IP from the last `X-Forwarded-For` address, the one a trusted proxy
    /// appended (only behind such a proxy).
    #[arg(long, env = "REELGRAPH_TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_proxy: bool,

    /// Most WebSocket connections one account holds open on this server process (one more is
    /// closed at `connection_init` with 1013, Try Again Later).
    #[arg(long, env = "REELGRAPH_WS_MAX_SOCKETS_PER_ACCOUNT", default_value_t = crate::ws::DEFAULT_MAX_SOCKETS_PER_ACCOUNT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub ws_max_sockets_per_account: usize,

    /// Most WebSocket connections one client address (an IPv6 /64) holds open on this server
    /// process, signed in or not (one more upgrade is answered 429).
    #[arg(long, env = "REELGRAPH_WS_MAX_SOCKETS_PER_ADDRESS", default_value_t = crate::ws::DEFAULT_MAX_SOCKETS_PER_ADDRESS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub ws_max_sockets_per_address: usize,

    /// When set, `/metrics` answers only requests with `Authorization: Bearer <token>`
    /// (Prometheus: `authorization: {credentials: …}`), and 401 to the rest. Unset, it is
    /// open: keep it off the public network then.
    #[arg(long, env = "REELGRAPH_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Jobs this process runs at once (default: the number of CPU cores). To run none, serve
    /// with `--no-worker` (`REELGRAPH_NO_WORKER`) instead.
    #[arg(long, env = "REELGRAPH_WORKERS",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub workers: Option<usize>,

    /// Seconds a claimed job stays leased without a heartbeat before another worker may take it.
    #[arg(long, env = "REELGRAPH_JOB_LEASE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub job_lease_secs: u64,

    /// Milliseconds between heartbeats of a running job (also how fast a cancel is seen); less
    /// than the lease.
    #[arg(long, env = "REELGRAPH_JOB_HEARTBEAT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub job_heartbeat_ms: u64,

    /// Milliseconds between looks for work when no wake-up arrives.
    #[arg(long, env = "REELGRAPH_JOB_POLL_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub job_poll_ms: u64,

    /// Seconds between the workers' deletions of videos past their `retentionUntil` (the other
    /// upkeep is hourly): how long one may outlive it.
    #[arg(long, env = "REELGRAPH_RETENTION_SWEEP_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub retention_sweep_secs: u64,

    /// Milliseconds after which a `jobUpdated`/`jobsUpdated` subscription that heard nothing of
    /// its jobs reads them again: the safety net for an event that was lost (a failed NOTIFY).
    #[arg(
        long,
        env = "REELGRAPH_SUBSCRIPTION_REREAD_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(10..=86_400_000)
    )]
    pub subscription_reread_ms: u64,

    /// Milliseconds of quiet after which the PostgreSQL LISTEN connection is asked to answer
    /// (`SELECT 1`, within 5 s); one that does not (dropped silently by a NAT, a load balancer
    /// or a failover) is replaced, and subscriptions read their jobs again.
    #[arg(
        long,
        env = "REELGRAPH_LISTEN_CHECK_MS",
        default_value_t = 15_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000)
    )]
    pub listen_check_ms: u64,

    /// Seconds an answer to an anonymous query is served again from the read cache at most
    /// (PostgreSQL only; it is dropped sooner, the moment anything it read changes). 0 turns
    /// the cache off. At most 120: answers may hold media links valid for 10 minutes.
    #[arg(
        long,
        env = "REELGRAPH_READ_CACHE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(0..=120)
    )]
    pub read_cache_secs: u64,

    /// MiB of answers the read cache keeps at most (0 turns it off).
    #[arg(
        long,
        env = "REELGRAPH_READ_CACHE_MB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(0..=65_536)
    )]
    pub read_cache_mb: u64,

    /// Days finished top-level jobs are kept (rendered movies are kept for good: their MP4 is
    /// reached through the job).
    #[arg(long, env = "REELGRAPH_JOB_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub job_retention_days: u32,

    /// Days a rendered scene stays in the scene cache after a render last used it (0: for good).
    #[arg(long, env = "REELGRAPH_SCENE_CACHE_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub scene_cache_days: u32,

    /// Days an uploaded picture (`requestAssetUpload`) stays after a render last named it, or
    /// after its upload when none has (0: for good).
    #[arg(long, env = "REELGRAPH_ASSET_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub asset_retention_days: u32,

    /// Seconds running jobs may take to finish on shutdown before they are released.
    #[arg(long, env = "REELGRAPH_SHUTDOWN_GRACE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub shutdown_grace_secs: u64,

    /// Where the server is reachable from clients (for the presigned URLs of local storage);
    /// default: `http://{listen address}` (for `worker`, whose `--listen` is its metrics
    /// address: `http://127.0.0.1:8080`).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Object storage as one URL, in place of S3_BUCKET/S3_ENDPOINT/… or REELGRAPH_STORAGE_DIR:
    /// `s3://bucket?endpoint=http://minio:9000&region=us-east-1&force_path_style=true`
    /// (also `public_endpoint=`; credentials still from S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY
    /// or the AWS chain) or `file:///var/lib/reelgraph/objects`.
    #[arg(long, env = "STORAGE_URL", hide_env_values = true)]
    pub storage_url: Option<String>,

    /// Object storage folder (default `{data dir}/objects`; with PostgreSQL, set this or S3_BUCKET).
    #[arg(long, env = "REELGRAPH_STORAGE_DIR")]
    pub storage_dir: Option<std::path::PathBuf>,

    /// S3 bucket; setting it selects the S3 backend.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 endpoint for MinIO, R2 and other S3-protocol services (default: AWS).
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// The S3 endpoint as clients reach it, for the presigned upload and download links the
    /// API hands out, when it differs from S3_ENDPOINT (e.g. `http://localhost:9000` for a
    /// MinIO the server reaches as `http://minio:9000`). Default: S3_ENDPOINT.
    #[arg(long, env = "S3_PUBLIC_ENDPOINT")]
    pub s3_public_endpoint: Option<String>,

    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO and most local servers.
    #[arg(long, env = "S3_FORCE_PATH_STYLE", default_value_t = false, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_force_path_style: bool,

    /// S3 credentials; unset, the AWS SDK's usual chain (AWS_ACCESS_KEY_ID, profiles, roles).
    #[arg(long, env = "S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,

    #[arg(long, env = "S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,

    /// How long to keep trying an S3 service that does not answer yet (refuses connections,
    /// or answers 5xx while it starts) before giving up at start, in seconds; 0 tries once.
    #[arg(long, env = "S3_WAIT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub s3_wait_secs: u64,
}

impl Config {
    /// The embedded defaults rooted at `data_dir`, ignoring the environment (for tests and tools).
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            db_max_connections: 20,
            db_wait_secs: 30,
            jwt_secret: None,
            require_invite: false,
            access_token_ttl_secs: 900,
            session_ttl_days: 30,
            max_query_depth: 12,
            max_query_complexity: 5000,
            cors_origins: Vec::new(),
            max_body_bytes: 1 << 20,
            request_timeout_ms: 60_000,
            webhook_allow_private: false,
            trust_proxy: false,
            ws_max_sockets_per_account: crate::ws::DEFAULT_MAX_SOCKETS_PER_ACCOUNT,
            ws_max_sockets_per_address: crate::ws::DEFAULT_MAX_SOCKETS_PER_ADDRESS,
            metrics_token: None,
            workers: None,
            job_lease_secs: 30,
            job_heartbeat_ms: 500,
            job_poll_ms: 2000,
            retention_sweep_secs: 60,
            subscription_reread_ms: 30_000,
            listen_check_ms: 15_000,
            read_cache_secs: 30,
            read_cache_mb: 64,
            job_retention_days: 30,
            scene_cache_days: 30,
            asset_retention_days: 30,
            shutdown_grace_secs: 30,
            public_url: None,
            storage_url: None,
            storage_dir: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_public_endpoint: None,
            s3_region: "us-east-1".to_owned(),
            s3_force_path_style: false,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_wait_secs: 30,
        }
    }

    /// The origins `REELGRAPH_CORS_ORIGINS` lists (checked and normalised when the
    /// configuration is read); an empty entry (`a,`) lists nothing. Empty, or holding `*`: any.
    pub fn listed_origins(&self) -> Vec<&str> {
        self.cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .collect()
    }

    /// The jobs engine's timings.
    pub fn job_settings(&self) -> crate::jobs::JobSettings {
        use std::time::Duration;
        crate::jobs::JobSettings {
            lease: Duration::from_secs(self.job_lease_secs.max(1)),
            heartbeat: Duration::from_millis(self.job_heartbeat_ms.max(10)),
            poll: Duration::from_millis(self.job_poll_ms.max(10)),
            retention: chrono::Duration::days(i64::from(self.job_retention_days)),
            scene_cache: (self.scene_cache_days > 0)
                .then(|| chrono::Duration::days(i64::from(self.scene_cache_days))),
            assets: (self.asset_retention_days > 0)
                .then(|| chrono::Duration::days(i64::from(self.asset_retention_days))),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            retention_sweep: Duration::from_secs(self.retention_sweep_secs.max(1)),
        }
    }

    /// Concurrent jobs of this process's worker pool.
    pub fn worker_slots(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1)
    }

    /// Whether objects are kept in S3 (whose links are signed for S3's own endpoint, not this
    /// server's `PUBLIC_URL`).
    pub fn uses_s3(&self) -> bool {
        self.s3_bucket.is_some()
            || self
                .storage_url
                .as_deref()
                .and_then(|url| url.trim_start().get(..5))
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("s3://"))
    }

    /// Settings that are each valid but do not work together.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.job_heartbeat_ms >= self.job_lease_secs.saturating_mul(1000) {
            anyhow::bail!(
                "REELGRAPH_JOB_HEARTBEAT_MS ({} ms) must be shorter than REELGRAPH_JOB_LEASE_SECS \
                 ({} s): a running job's lease would run out between its heartbeats",
                self.job_heartbeat_ms,
                self.job_lease_secs
            );
        }
        // Checked before anything is done with them (a JWT secret generated and saved, say).
        if let Some(url) = self
            .database_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            && !(self.is_postgres() || url.starts_with("sqlite:"))
        {
            let scheme = url.split(':').next().unwrap_or_default();
            anyhow::bail!(
                "DATABASE_URL must start with postgres:// or sqlite: (got scheme `{scheme}`)"
            );
        }
        if let Some(public) = self.public_url.as_deref().filter(|u| !u.is_empty()) {
            // Links are made by appending paths to it: a query or a fragment would end up in
            // the middle of each.
            let parsed = url::Url::parse(public).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
            });
            if parsed.is_none() {
                anyhow::bail!(
                    "PUBLIC_URL must be an http:// or https:// URL with a host and an optional \
                     path, like https://media.example.com (got `{public}`): local storage's \
                     links are made from it"
                );
            }
        }
        let origins = self.listed_origins();
        if origins.len() > 1 && origins.contains(&"*") {
            anyhow::bail!(
                "REELGRAPH_CORS_ORIGINS lists `*` among other origins: `*` allows any origin, \
                 whatever else is listed; list the origins, or `*` alone"
            );
        }
        // One of the key pair alone would be ignored, and the AWS credential chain (another
        // identity, perhaps another account) used instead.
        // (Without S3 storage, both are refused below as ignored.)
        let set = |v: &Option<String>| {
            self.uses_s3() && v.as_deref().is_some_and(|v| !v.trim().is_empty())
        };
        match (set(&self.s3_access_key_id), set(&self.s3_secret_access_key)) {
            (true, false) => anyhow::bail!(
                "S3_ACCESS_KEY_ID is set without S3_SECRET_ACCESS_KEY: set both, or neither to \
                 use the AWS credential chain"
            ),
            (false, true) => anyhow::bail!(
                "S3_SECRET_ACCESS_KEY is set without S3_ACCESS_KEY_ID: set both, or neither to \
                 use the AWS credential chain"
            ),
            _ => {}
        }
        // S3 settings without S3 storage would be ignored, the objects kept in a local folder.
        if !self.uses_s3() {
            let defaults = Self::embedded("/");
            // Set but empty (`S3_ENDPOINT=` in an env file) is unset, as for the others.
            let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
            let left_over: Vec<&str> = [
                ("S3_ENDPOINT", given(&self.s3_endpoint)),
                ("S3_PUBLIC_ENDPOINT", given(&self.s3_public_endpoint)),
                (
                    "S3_REGION",
                    !self.s3_region.trim().is_empty() && self.s3_region != defaults.s3_region,
                ),
                ("S3_FORCE_PATH_STYLE", self.s3_force_path_style),
                ("S3_ACCESS_KEY_ID", given(&self.s3_access_key_id)),
                ("S3_SECRET_ACCESS_KEY", given(&self.s3_secret_access_key)),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect();
            if !left_over.is_empty() {
                anyhow::bail!(
                    "{} set, but no S3 storage is: set S3_BUCKET (or STORAGE_URL=s3://…) to keep \
                     objects in S3, or unset {} to keep them in the local folder",
                    left_over.join(", "),
                    if left_over.len() == 1 { "it" } else { "them" }
                );
            }
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    }
}

/// Settings of `reelgraph worker`.
#[derive(clap::Args, Clone, Debug)]
pub struct WorkerArgs {
    /// Serve `/metrics`, `/livez` and `/healthz` on this address (e.g. `0.0.0.0:9090`), for
    /// scrapers and orchestrators' probes; nothing is served when unset.
    #[arg(long, env = "REELGRAPH_WORKER_LISTEN")]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub config: Config,
}

/// Settings of `reelgraph serve`.
#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "REELGRAPH_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Serve only; leave the jobs to separate `reelgraph worker` processes.
    #[arg(long, env = "REELGRAPH_NO_WORKER", default_value_t = false, value_parser = clap::builder::BoolishValueParser::new())]
    pub no_worker: bool,

    #[command(flatten)]
    pub config: Config,
}

/// A CORS origin: `*`, or `scheme://host[:port]` (a trailing `/` is dropped; browsers send the
/// origin without one, and a listed `https://app.example.com/` would never match).
fn cors_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    // `a,` or an empty variable: nothing listed there.
    if value == "*" || value.is_empty() {
        return Ok(value.to_owned());
    }
    let invalid = || format!("`{value}` is not an origin like https://app.example.com[:port]");
    let url = url::Url::parse(value).map_err(|_| invalid())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !plain {
        return Err(invalid());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_would_be_ignored_or_misread_are_refused() {
        let refused = |change: &dyn Fn(&mut Config)| {
            let mut config = Config::embedded("/tmp/reelgraph-config-test");
            change(&mut config);
            config
                .check()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(refused(&|_| {}).is_empty());
        let why = refused(&|c| c.s3_endpoint = Some("http://minio:9000".into()));
        assert!(
            why.starts_with("S3_ENDPOINT set, but no S3 storage is"),
            "{why}"
        );
        let why = refused(&|c| {
            c.s3_access_key_id = Some("key".into());
            c.s3_secret_access_key = Some("secret".into());
        });
        assert!(
            why.contains("S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY set"),
            "{why}"
        );
        // Set but empty is unset; a scheme in capitals is still S3's.
        assert!(
            refused(&|c| {
                c.s3_endpoint = Some(String::new());
                c.s3_access_key_id = Some(" ".into());
                c.s3_region = String::new();
            })
            .is_empty()
        );
        assert!(
            refused(&|c| {
                c.storage_url = Some("S3://b".into());
                c.s3_access_key_id = Some("key".into());
                c.s3_secret_access_key = Some("secret".into());
            })
            .is_empty()
        );
        // Half a key pair would be ignored for the AWS chain's.
        for (id, secret, named) in [
            (
                Some("key"),
                None,
                "S3_ACCESS_KEY_ID is set without S3_SECRET_ACCESS_KEY",
            ),
            (
                Some("key"),
                Some(" "),
                "S3_ACCESS_KEY_ID is set without S3_SECRET_ACCESS_KEY",
            ),
            (
                None,
                Some("secret"),
                "S3_SECRET_ACCESS_KEY is set without S3_ACCESS_KEY_ID",
            ),
        ] {
            let why = refused(&|c| {
                c.s3_bucket = Some("b".into());
                c.s3_access_key_id = id.map(Into::into);
                c.s3_secret_access_key = secret.map(Into::into);
            });
            assert!(why.starts_with(named), "{why}");
        }
        // With S3 storage (either way) they are its settings.
        assert!(
            refused(&|c| {
                c.s3_bucket = Some("b".into());
                c.s3_endpoint = Some("http://minio:9000".into());
            })
            .is_empty()
        );
        assert!(
            refused(&|c| {
                c.storage_url = Some("s3://b".into());
                c.s3_access_key_id = Some("key".into());
                c.s3_secret_access_key = Some("secret".into());
            })
            .is_empty()
        );
        // Without S3 storage, half a pair is an ignored setting like any other.
        let why = refused(&|c| c.s3_access_key_id = Some("key".into()));
        assert!(
            why.starts_with("S3_ACCESS_KEY_ID set, but no S3 storage is"),
            "{why}"
        );
        let why = refused(&|c| c.cors_origins = vec!["https://a.example".into(), "*".into()]);
        assert!(why.contains("lists `*` among other origins"), "{why}");
        assert!(refused(&|c| c.cors_origins = vec!["*".into()]).is_empty());
        for public in [
            "http://example.test/base?q=1",
            "http://example.test/base#frag",
            "http://user:pw@example.test",
        ] {
            let why = refused(&|c| c.public_url = Some(public.into()));
            assert!(why.starts_with("PUBLIC_URL must be"), "{public}: {why}");
        }
        assert!(refused(&|c| c.public_url = Some("https://cdn.example/media".into())).is_empty());
    }

    #[test]
    fn cors_origins_are_plain_origins() {
        assert_eq!(cors_origin("*").as_deref(), Ok("*"));
        assert_eq!(cors_origin(" ").as_deref(), Ok(""));
        assert_eq!(
            cors_origin(" https://app.example.com/ ").as_deref(),
            Ok("https://app.example.com")
        );
        assert_eq!(
            cors_origin("http://localhost:5173").as_deref(),
            Ok("http://localhost:5173")
        );
        for refused in [
            "app.example.com",
            "https://app.example.com/app",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com/?x=1",
        ] {
            assert!(cors_origin(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_heartbeat_must_be_shorter_than_the_lease() {
        let mut config = Config::embedded(".");
        assert!(config.check().is_ok());
        config.job_lease_secs = 1;
        config.job_heartbeat_ms = 5000;
        let refused = config.check().expect_err("heartbeat past the lease");
        assert!(refused.to_string().contains("REELGRAPH_JOB_HEARTBEAT_MS"));
    }
}

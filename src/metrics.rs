//! Prometheus metrics, served at `/metrics` (by `reelgraph worker` too, with `--listen`). Each
//! server instance has its own registry (no process-global state), so several instances can
//! live in one test process.
//!
//! Counters and histograms are this process's; the job-queue gauges (`reelgraph_jobs`,
//! `reelgraph_jobs_queued_lag_seconds`) are read from the database at each scrape, so every
//! process reports the same shared queue.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64},
    },
    time::Instant,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};
use sea_orm::DatabaseConnection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route's pattern (`/objects/{*key}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's `type` (handler name, e.g. `render.movie`).
    pub r#type: String,
    /// `done`, `failed`, `cancelled`, `released`, `waiting` (handed to its children) or
    /// `lease_lost`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub r#type: String,
    /// `QUEUED`, `RUNNING` or `WAITING`.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `hit` or `miss`.
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn job_histogram() -> Histogram {
    // 50 ms .. ~27 min: a probe takes a fraction of a second, a long render many minutes.
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    /// SQL statements sent to the database by this process.
    pub db_statements: Counter<u64, AtomicU64>,
    /// GraphQL operations executed over HTTP.
    pub graphql_operations: Counter<u64, AtomicU64>,
    /// SQL statements each GraphQL request over HTTP sent (all operations of a batch);
    /// [`Metrics::request_statements`].
    graphql_request_statements: Histogram,
    /// Their sum, readable here (the histogram's is not).
    request_statements_sum: AtomicU64,
    /// Errors returned to clients, by `extensions.code`.
    pub graphql_errors: Family<CodeLabel, Counter<u64, AtomicU64>>,
    /// HTTP requests answered, by method, route and status.
    pub http_requests: Family<HttpLabels, Counter<u64, AtomicU64>>,
    /// Time to the response's headers, by method and route.
    pub http_duration: HistogramFamily<RouteLabels>,
    /// WebSocket connections open now.
    pub websocket_connections: Gauge<i64, AtomicI64>,
    /// GraphQL operations running over WebSockets now (subscriptions, mostly).
    pub websocket_operations: Gauge<i64, AtomicI64>,
    /// Job attempts run by this process's workers, by type and outcome.
    pub jobs_finished: Family<JobLabels, Counter<u64, AtomicU64>>,
    /// Wall time of job attempts run here, by type.
    pub job_duration: HistogramFamily<TypeLabel>,
    /// Jobs running in this process's worker pool now.
    pub jobs_running_here: Gauge<i64, AtomicI64>,
    /// Scene-cache lookups by the scene renderer.
    pub scene_cache: Family<ResultLabel, Counter<u64, AtomicU64>>,
    /// Read-cache lookups of anonymous queries over HTTP ([`Metrics::read_cache_lookup`]).
    read_cache: Family<ResultLabel, Counter<u64, AtomicU64>>,
    /// The shared queue, refreshed from the database at each scrape.
    queue: Family<QueueLabels, Gauge<i64, AtomicI64>>,
    queue_lag: Arc<QueueLag>,
    /// Serialises scrapes: the queue gauges are cleared and refilled for each.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reelgraph");
        let metrics = Self {
            registry: Registry::default(),
            db_statements: Counter::default(),
            graphql_operations: Counter::default(),
            // 1 .. 1024: a read is a handful, an N+1 shows up in the top buckets.
            graphql_request_statements: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            request_statements_sum: AtomicU64::new(0),
            graphql_errors: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            websocket_connections: Gauge::default(),
            websocket_operations: Gauge::default(),
            jobs_finished: Family::default(),
            job_duration: Family::new_with_constructor(job_histogram),
            jobs_running_here: Gauge::default(),
            scene_cache: Family::default(),
            read_cache: Family::default(),
            queue: Family::default(),
            queue_lag: Arc::default(),
            scrape: tokio::sync::Mutex::new(()),
        };
        registry.register(
            "db_statements",
            "SQL statements executed",
            metrics.db_statements.clone(),
        );
        registry.register(
            "graphql_operations",
            "GraphQL operations executed (over HTTP and WebSocket)",
            metrics.graphql_operations.clone(),
        );
        registry.register(
            "graphql_request_statements",
            "SQL statements sent by one GraphQL request over HTTP (every operation of a batch)",
            metrics.graphql_request_statements.clone(),
        );
        registry.register(
            "graphql_errors",
            "GraphQL errors returned, by code",
            metrics.graphql_errors.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            metrics.http_requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from request to response headers, by method and route",
            Unit::Seconds,
            metrics.http_duration.clone(),
        );
        registry.register(
            "websocket_connections",
            "WebSocket connections open",
            metrics.websocket_connections.clone(),
        );
        registry.register(
            "websocket_operations",
            "GraphQL operations running over WebSockets (subscriptions, mostly)",
            metrics.websocket_operations.clone(),
        );
        registry.register(
            "job_attempts",
            "Job attempts finished by this process's workers, by type and outcome",
            metrics.jobs_finished.clone(),
        );
        registry.register_with_unit(
            "job_attempt_duration",
            "Wall time of job attempts run by this process's workers, by type",
            Unit::Seconds,
            metrics.job_duration.clone(),
        );
        registry.register(
            "worker_jobs_running",
            "Jobs running in this process's worker pool",
            metrics.jobs_running_here.clone(),
        );
        registry.register(
            "scene_cache_lookups",
            "Scene-cache lookups by the scene renderer, by result (hit or miss)",
            metrics.scene_cache.clone(),
        );
        // Both series from the start (0 while the cache is off), not missing until used.
        for result in ["hit", "miss"] {
            drop(metrics.read_cache.get_or_create(&ResultLabel { result }));
        }
        registry.register(
            "read_cache_lookups",
            "Anonymous queries over HTTP looked up in the read cache, by result (hit or miss)",
            metrics.read_cache.clone(),
        );
        registry.register(
            "jobs",
            "Unfinished jobs in the shared queue, by type and status (read at scrape time)",
            metrics.queue.clone(),
        );
        registry.register_collector(Box::new(metrics.queue_lag.clone()));
        Self {
            registry,
            ..metrics
        }
    }
}

struct QueueRow {
    job_type: String,
    status: entity::JobStatus,
    count: i64,
}

impl Metrics {
    /// Records the SQL statements one GraphQL request over HTTP sent.
    pub fn request_statements(&self, statements: u64) {
        self.graphql_request_statements.observe(statements as f64);
        self.request_statements_sum
            .fetch_add(statements, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts a read-cache lookup: `hit` or `miss`.
    pub fn read_cache_lookup(&self, result: &'static str) {
        self.read_cache.get_or_create(&ResultLabel { result }).inc();
    }

    /// SQL statements every GraphQL request over HTTP has sent so far, together.
    pub fn request_statements_sum(&self) -> u64 {
        self.request_statements_sum
            .load(std::sync::atomic::Ordering::Relaxed)
    }

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

    /// Records one answered HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, started: Instant) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records one finished job attempt.
    pub fn observe_job(&self, job_type: &str, outcome: &'static str, started: Instant) {
        self.jobs_finished
            .get_or_create(&JobLabels {
                r#type: job_type.to_owned(),
                outcome,
            })
            .inc();
        self.job_duration
            .get_or_create(&TypeLabel {
                r#type: job_type.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// The registry in the Prometheus text format, the queue gauges read from `db` first.
    /// When the database does not answer, the queue gauges are left out (not reported stale,
    /// nor as an empty queue: a lag alert must not clear because the queue cannot be read).
    pub async fn render(&self, db: &DatabaseConnection) -> String {
        let _scrape = self.scrape.lock().await;
        self.queue.clear();
        self.queue_lag.set(None);
        // Bounded: a database that does not answer must not hold the scrape (and the ones
        // queued behind it on the lock) until it does.
        let read = tokio::time::timeout(QUEUE_READ_TIMEOUT, read_queue(db))
            .await
            .unwrap_or_else(|_| {
                Err(sea_orm::DbErr::Custom(format!(
                    "no answer within {} s",
                    QUEUE_READ_TIMEOUT.as_secs()
                )))
            });
        match read {
            Ok((rows, lag)) => {
                for row in rows {
                    self.queue
                        .get_or_create(&QueueLabels {
                            r#type: row.job_type,
                            status: sea_orm::ActiveEnum::to_value(&row.status),
                        })
                        .set(row.count);
                }
                self.queue_lag.set(Some(lag.unwrap_or(0.0).max(0.0)));
            }
            Err(err) => tracing::warn!(error = %err, "metrics: could not read the job queue"),
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// How long a scrape waits for the job queue's figures.
const QUEUE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Unfinished jobs by type and status, and the wait of the oldest job that could run now.
async fn read_queue(
    db: &DatabaseConnection,
) -> Result<(Vec<QueueRow>, Option<f64>), sea_orm::DbErr> {
    use entity::{JobStatus, job};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let now = chrono::Utc::now();
    let rows = job::Entity::find()
        .select_only()
        .column(job::Column::JobType)
        .column(job::Column::Status)
        .column_as(job::Column::Id.count(), "count")
        .filter(job::Column::Status.is_in([
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Waiting,
        ]))
        .group_by(job::Column::JobType)
        .group_by(job::Column::Status)
        .into_tuple::<(String, JobStatus, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(job_type, status, count)| QueueRow {
            job_type,
            status,
            count,
        })
        .collect();
    // Jobs delayed on purpose (back-off, `runAt`) wait from their `run_at`, not their creation.
    let oldest = job::Entity::find()
        .select_only()
        .column(job::Column::RunAt)
        .filter(job::Column::Status.eq(JobStatus::Queued))
        .filter(job::Column::RunAt.lte(now))
        .order_by_asc(job::Column::RunAt)
        .limit(1)
        .into_tuple::<chrono::DateTime<chrono::Utc>>()
        .one(db)
        .await?;
    let lag = oldest.map(|run_at| (now - run_at).as_seconds_f64());
    Ok((rows, lag))
}

/// `reelgraph_jobs_queued_lag_seconds`, present only when the last scrape could read it.
#[derive(Debug, Default)]
struct QueueLag(std::sync::Mutex<Option<f64>>);

impl QueueLag {
    fn set(&self, lag: Option<f64>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lag;
    }
}

impl Collector for QueueLag {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let lag = *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(lag) = lag else {
            return Ok(());
        };
        let gauge = ConstGauge::new(lag);
        let metric = encoder.encode_descriptor(
            "jobs_queued_lag",
            "How long the oldest job that could run has waited to be claimed (0 when none waits)",
            Some(&Unit::Seconds),
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

/// Counts one up while alive (a WebSocket connection, a running operation).
pub struct Live(Gauge<i64, AtomicI64>);

impl Live {
    pub fn new(gauge: &Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Axum middleware recording every request's route, status and time to headers.
pub async fn track_http(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    // Clients choose the method: any other token would make a series of its own.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "HEAD" | "OPTIONS" | "DELETE" | "PATCH") => m,
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let response = next.run(request).await;
    metrics.observe_http(&method, &route, response.status().as_u16(), started);
    response
}

//! Building and running the server: `Application::build` connects and migrates the database,
//! wires the schema and the router, and binds the listener; `run_until_stopped` serves until
//! SIGINT/SIGTERM.

use std::{
    future::{Future, IntoFuture},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    auth::{password, tokens::TokenKeys},
    config::ServeArgs,
    db,
    graphql::Schemas,
    http,
    jobs::{EventBus, handlers::Registry, worker::WorkerPool},
    metrics::Metrics,
    state::AppState,
    storage::Storage,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    /// Runs jobs in this process (unless `--no-worker`).
    workers: Option<WorkerPool>,
}

impl Application {
    /// Everything up to accepting connections: binds the listener (so local storage can sign
    /// URLs with the real port), connects, migrates, checks ffmpeg, and wires the router.
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let public_url = match &args.config.public_url {
            Some(url) => url.clone(),
            None => {
                let mut addr = listener.local_addr().context("reading the bound address")?;
                // `0.0.0.0` is where the server listens, never an address a client can use.
                // With S3, links are S3's own: this server's address is in none of them.
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    if !args.config.uses_s3() {
                        tracing::warn!(
                            "PUBLIC_URL is not set: links to local storage (uploads, downloads) \
                             will point at http://{addr}; set PUBLIC_URL to the address clients use"
                        );
                    }
                }
                format!("http://{addr}")
            }
        };
        let state = connect_state(args.config, &public_url).await?;
        db::migrate(&state.db).await?;
        state
            .revoked
            .load(&state.db)
            .await
            .context("reading the sessions ended lately")?;
        password::warm_up();
        match crate::render::ffmpeg::check().await {
            Ok(tools) => tracing::info!(ffmpeg = %tools.ffmpeg.display(), "ffmpeg found"),
            Err(problem) => {
                tracing::error!("rendering and media processing are unavailable: {problem}")
            }
        }
        let schema = Schemas::new(&state.config, Some(state.clone()));
        let router = http::router(state.clone(), schema);
        let workers = (!args.no_worker).then(|| worker_pool(&state));
        Ok(Self {
            listener,
            router,
            state,
            workers,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT or SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `signal` completes.
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = self.state.shutdown.clone();
        let signal = async move {
            signal.await;
            // Long-lived connections end themselves once they see this (WebSockets close 1001).
            // The worker pool sees it too: it stops claiming and drains.
            shutdown.cancel();
        };
        let workers = self
            .workers
            .map(|pool| tokio::spawn(pool.run(self.state.shutdown.clone())));
        tokio::spawn(reread_revoked(self.state.clone()));
        let serving = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .into_future();
        // In-flight requests get the shutdown grace period to finish; a client that stalls
        // (a presigned upload that stopped sending, a body that never ends) must not keep the
        // process alive after that.
        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let stopped = self.state.shutdown.clone();
        let deadline = async move {
            stopped.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = serving => served.context("serving HTTP"),
            () = deadline => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "requests still open after the shutdown grace period: closing their connections"
                );
                Ok(())
            }
        };
        // axum does not wait for upgraded connections: let the sockets finish the queries and
        // mutations they were running (each has the grace period) and send their close frames.
        self.state.connections.close();
        if tokio::time::timeout(
            grace + Duration::from_secs(5),
            self.state.connections.wait(),
        )
        .await
        .is_err()
        {
            tracing::warn!(
                "some WebSocket connections did not close within {} s",
                grace.as_secs() + 5
            );
        }
        if let Some(workers) = workers {
            workers.await.ok();
        }
        served
    }
}

/// Reads the sessions ended lately again every [`crate::auth::revoked::REREAD_EVERY`] until
/// shutdown: another process may have ended some without telling this one. SQLite only: with
/// PostgreSQL the event listener does it on its own connection every `listen_check_ms`, and
/// holds no pool connection for it.
async fn reread_revoked(state: AppState) {
    if state.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        return;
    }
    let mut every = tokio::time::interval(crate::auth::revoked::REREAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let reread = tokio::time::timeout(
            crate::auth::revoked::REREAD_EVERY,
            state.revoked.load(&state.db),
        );
        match reread.await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not re-read the sessions ended lately");
            }
            Err(_) => tracing::warn!("re-reading the sessions ended lately took too long"),
        }
    }
}

/// Connects to the database and assembles the shared state (no migrations, no listener).
/// `public_url` is where clients reach this process (for locally signed storage URLs).
pub async fn connect_state(
    config: crate::config::Config,
    public_url: &str,
) -> anyhow::Result<AppState> {
    config.check()?;
    let tokens = TokenKeys::from_config(&config)?;
    let storage = Storage::from_config(
        &config,
        tokens.derive_key(b"reelgraph storage url signing"),
        public_url,
    )
    .await?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Only where changes are announced (PostgreSQL's triggers and LISTEN).
    let read_cache = Arc::new(if config.is_postgres() {
        crate::graphql::read_cache::ReadCache::new(
            Duration::from_secs(config.read_cache_secs),
            config.read_cache_mb << 20,
        )
    } else {
        crate::graphql::read_cache::ReadCache::off()
    });
    let counter = metrics.db_statements.clone();
    let writes = read_cache.clone();
    let db = db::connect(
        &config,
        Some(Arc::new(move |sql: &str| {
            counter.inc();
            // This process's own writes drop the cache as they are sent, not only when their
            // announcement comes back; a request's writes drop it again once it has answered
            // (`http::execute`), when they have committed.
            if crate::graphql::read_cache::writes_content(sql) {
                writes.changed();
            }
        })),
    )
    .await?;
    let url = config
        .is_postgres()
        .then(|| config.database_url.clone())
        .flatten();
    let revoked = Arc::new(crate::auth::revoked::RevokedSessions::new(
        config.access_token_ttl_secs,
    ));
    let events = EventBus::start(
        db.clone(),
        url.as_deref(),
        shutdown.clone(),
        revoked.clone(),
        read_cache.clone(),
        Duration::from_millis(config.listen_check_ms),
    );
    Ok(AppState {
        db,
        config: Arc::new(config),
        tokens,
        metrics,
        events,
        storage,
        connections: tokio_util::task::TaskTracker::new(),
        shutdown,
        sign_in: Arc::new(crate::auth::throttle::SignInThrottle::new()),
        revoked,
        read_cache,
    })
}

/// The worker pool of this process, with every built-in handler.
pub fn worker_pool(state: &AppState) -> WorkerPool {
    WorkerPool::new(
        state.db.clone(),
        state.events.clone(),
        state.storage.clone(),
        {
            let mut registry = Registry::builtin();
            crate::jobs::webhooks::register(
                &mut registry,
                state.tokens.clone(),
                state.config.webhook_allow_private,
            );
            registry
        },
        state.config.job_settings(),
        state.config.worker_slots(),
        state.metrics.clone(),
    )
}

/// Runs only workers (`reelgraph worker`) until SIGINT/SIGTERM, then drains them. With
/// `listen`, also serves `/metrics`, `/livez` and `/healthz` there until the pool has drained.
pub async fn run_worker(state: AppState, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let probes = match listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let addr = listener.local_addr().context("reading the bound address")?;
            tracing::info!(%addr, "worker serving /metrics, /livez and /healthz");
            Some(listener)
        }
        None => None,
    };
    let drained = tokio_util::sync::CancellationToken::new();
    let probes = probes.map(|listener| {
        let router = http::operations_router(state.clone());
        let drained = drained.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(drained.cancelled_owned())
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "serving the worker's probes failed");
            }
        })
    });
    let pool = worker_pool(&state).run(state.shutdown.clone());
    let signal = {
        let shutdown = state.shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    };
    tokio::join!(pool, signal);
    drained.cancel();
    if let Some(probes) = probes {
        probes.await.ok();
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

//! Building and running the server: `Application::build` connects and migrates the database,
//! wires the schema and the router, and binds the listener; `run_until_stopped` serves until
//! SIGINT/SIGTERM.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    auth::{password, tokens::TokenKeys},
    config::ServeArgs,
    db,
    graphql::build_schema,
    http,
    metrics::Metrics,
    state::AppState,
};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Everything up to accepting connections. Binding happens last, so a server that listens
    /// is a server that can answer.
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let state = connect_state(args.config).await?;
        db::migrate(&state.db).await?;
        password::warm_up();
        let schema = build_schema(&state.config, Some(state.clone()));
        let router = http::router(state.clone(), schema);
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        Ok(Self {
            listener,
            router,
            state,
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
            shutdown.cancel();
        };
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
        .context("serving HTTP")
    }
}

/// Connects to the database and assembles the shared state (no migrations, no listener).
pub async fn connect_state(config: crate::config::Config) -> anyhow::Result<AppState> {
    let tokens = TokenKeys::from_config(&config)?;
    let metrics = Arc::new(Metrics::default());
    let counter = metrics.db_statements.clone();
    let db = db::connect(
        &config,
        Some(Arc::new(move || {
            counter.inc();
        })),
    )
    .await?;
    Ok(AppState {
        db,
        config: Arc::new(config),
        tokens,
        metrics,
        shutdown: tokio_util::sync::CancellationToken::new(),
    })
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

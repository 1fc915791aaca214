//! One socket, from upgrade to close: a single task reads client messages, runs the socket's
//! operations as streams and writes their results, so a client's `complete` and the results of
//! that operation can never cross.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_graphql::{Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chrono::Utc;
use futures_util::{
    SinkExt, StreamExt,
    stream::{self, AbortHandle, Abortable, BoxStream, SelectAll},
};
use serde_json::{Map, Value};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};

use super::{
    auth::authenticate,
    protocol::{self, ClientMessage, Invalid, Protocol, server},
};
use crate::{
    access::{AuthUser, ClientInfo, Viewer},
    error::AppError,
    graphql::loaders::{new_loaders, new_subscription_loaders},
    http::HttpState,
    metrics::Live,
};

/// What the upgrade handler learned about the client.
pub struct Setup {
    pub state: HttpState,
    pub protocol: Protocol,
    pub client: ClientInfo,
    /// The upgrade request's `Authorization` header, used when `connection_init` has no token.
    pub header_authorization: Option<String>,
    /// This socket, counted for its address while it is open.
    pub _address: super::sockets::Slot,
}

/// Why a socket over [`super::WsSettings::max_sockets_per_account`] is closed (at most 123
/// bytes, as every close reason).
const TOO_MANY_SOCKETS: &str = "too many sockets are open for this account: close some";

/// How long a closing socket waits for the client's close frame before hanging up.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Close reasons are limited to 123 bytes by RFC 6455.
const MAX_CLOSE_REASON: usize = 123;

/// Why the socket stops.
enum Stop {
    /// The server closes with this code and reason.
    Close(u16, String),
    /// The client sent a close frame.
    PeerClosed,
    /// The connection broke (or a send timed out): nothing more can be said.
    Gone,
}

fn close(code: u16, reason: impl Into<String>) -> Stop {
    Stop::Close(code, reason.into())
}

/// The results of one operation, tagged with its id; `None` marks the end of the stream.
type Events = Abortable<BoxStream<'static, (Arc<str>, Option<Response>)>>;

struct Active {
    abort: AbortHandle,
    /// A query or mutation (one result), not a subscription.
    single: bool,
    /// Whether a result has been sent (after which errors are results, not an `error`).
    answered: bool,
    /// Counted in `reelgraph_websocket_operations` while here.
    _live: Live,
}

struct Connection {
    setup: Setup,
    init_received: bool,
    acknowledged: bool,
    /// The caller, once acknowledged; `None` is anonymous.
    user: Option<AuthUser>,
    /// When the access token runs out.
    expires_at: Option<Instant>,
    /// This socket, counted for its account while it is open.
    account_slot: Option<super::sockets::Slot>,
    /// When the client was last heard from (any frame, `pong`s included).
    last_heard: Instant,
    active: HashMap<Arc<str>, Active>,
}

pub async fn serve(mut socket: WebSocket, setup: Setup) {
    let protocol = setup.protocol;
    let _live = Live::new(&setup.state.app.metrics.websocket_connections);
    let mut connection = Connection {
        setup,
        init_received: false,
        acknowledged: false,
        user: None,
        expires_at: None,
        account_slot: None,
        last_heard: Instant::now(),
        active: HashMap::new(),
    };
    let stop = connection.run(&mut socket).await;
    match stop {
        Stop::Close(code, reason) => {
            tracing::debug!(
                code,
                reason,
                protocol = protocol.name(),
                "closing WebSocket"
            );
            close_gracefully(socket, code, &reason).await;
        }
        Stop::PeerClosed => {
            // Flushes tungstenite's reply to the client's close frame.
            timeout(CLOSE_GRACE, socket.close()).await.ok();
        }
        Stop::Gone => {}
    }
}

impl Connection {
    async fn run(&mut self, socket: &mut WebSocket) -> Stop {
        let settings = self.setup.state.ws.clone();
        let shutdown = self.setup.state.app.shutdown.clone();
        let init_deadline = Instant::now() + settings.init_timeout;
        // `interval_at` refuses a zero period.
        let period = settings.keep_alive.max(Duration::from_millis(1));
        let mut keep_alive = interval_at(Instant::now() + period, period);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut operations: SelectAll<Events> = SelectAll::new();
        loop {
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => match self.finish_running(socket, &mut operations, true).await {
                    Ok(()) => Err(close(1001, "Going away")),
                    Err(stop) => Err(stop),
                },
                () = sleep_until(init_deadline), if !self.init_received => {
                    Err(close(4408, "Connection initialisation timeout"))
                }
                () = sleep_until_some(self.expires_at) => match self.finish_running(socket, &mut operations, false).await {
                    Ok(()) => self.token_expired(socket).await,
                    Err(stop) => Err(stop),
                },
                frame = socket.recv() => match frame {
                    Some(Ok(frame)) => self.on_frame(socket, &mut operations, frame).await,
                    Some(Err(err)) => Err(self.receive_failed(err)),
                    None => Err(Stop::Gone),
                },
                Some((id, event)) = operations.next(), if !operations.is_empty() => {
                    self.on_event(socket, id, event).await
                }
                _ = keep_alive.tick(), if self.acknowledged => {
                    // A graphql-transport-ws client answers every `ping`, and every WebSocket
                    // answers a WebSocket ping (sent beside the legacy protocol's `ka`, which
                    // nothing answers): a client silent for two periods is gone (its
                    // subscriptions would otherwise live on until TCP gives up, many minutes
                    // later).
                    let silent = self.last_heard.elapsed();
                    if self.session_ended() {
                        // Signed out elsewhere: its subscriptions stop within a keep-alive period.
                        self.forbidden(socket, &crate::auth::session_ended()).await
                    } else if silent > period * 2 {
                        Err(close(1001, format!("no pong for {} s: the connection looks dead", silent.as_secs())))
                    } else {
                        match self.setup.protocol {
                            Protocol::TransportWs => self.send(socket, server::ping()).await,
                            Protocol::Legacy => match self.send(socket, server::keep_alive()).await {
                                Ok(()) => self.send_frame(socket, Message::Ping(Default::default())).await,
                                Err(stop) => Err(stop),
                            },
                        }
                    }
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Before the server closes the socket (shutting down, the access token expired): ends
    /// the subscriptions, and lets the queries and mutations already running finish and send
    /// their results, for up to the request time limit (and, `shutting_down`, the shutdown
    /// grace period). Cut off, a mutation could commit unseen, and graphql-ws clients send
    /// what was not answered again after reconnecting: it would run twice. New messages are
    /// not read meanwhile.
    async fn finish_running(
        &mut self,
        socket: &mut WebSocket,
        operations: &mut SelectAll<Events>,
        shutting_down: bool,
    ) -> Result<(), Stop> {
        self.active.retain(|_, active| {
            if !active.single {
                active.abort.abort();
            }
            active.single
        });
        let config = &self.setup.state.app.config;
        let mut limit = Duration::from_millis(config.request_timeout_ms);
        if shutting_down {
            limit = limit.min(Duration::from_secs(config.shutdown_grace_secs));
        }
        let until = Instant::now() + limit;
        while !self.active.is_empty() {
            let next = tokio::select! {
                () = sleep_until(until) => return Ok(()),
                next = operations.next() => next,
            };
            let Some((id, event)) = next else {
                return Ok(());
            };
            self.on_event(socket, id, event).await?;
        }
        Ok(())
    }

    /// A frame that could not be read: one over tungstenite's cap (twice the message limit)
    /// is answered with `1009` like one over the limit, so the client learns why; anything
    /// else means the connection is gone.
    fn receive_failed(&self, err: axum::Error) -> Stop {
        use tokio_tungstenite::tungstenite::Error;
        match err.into_inner().downcast::<Error>() {
            Ok(err) if matches!(*err, Error::Capacity(_)) => {
                let limit = self.setup.state.app.config.max_body_bytes;
                close(1009, format!("Message too big: at most {limit} bytes"))
            }
            _ => Stop::Gone,
        }
    }

    async fn on_frame(
        &mut self,
        socket: &mut WebSocket,
        operations: &mut SelectAll<Events>,
        frame: Message,
    ) -> Result<(), Stop> {
        self.last_heard = Instant::now();
        let limit = self.setup.state.app.config.max_body_bytes;
        let too_big = match &frame {
            Message::Text(text) => text.len() > limit,
            Message::Binary(bytes) => bytes.len() > limit,
            _ => false,
        };
        if too_big {
            return Err(close(
                1009,
                format!("Message too big: at most {limit} bytes"),
            ));
        }
        let parsed = match &frame {
            Message::Text(text) => protocol::parse(self.setup.protocol, text.as_str()),
            Message::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => protocol::parse(self.setup.protocol, text),
                Err(_) => Err(Invalid(
                    "Invalid message received: not UTF-8 JSON".to_owned(),
                )),
            },
            // WebSocket-level pings are answered by tungstenite itself.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Stop::PeerClosed),
        };
        match parsed {
            Ok(message) => self.on_message(socket, operations, message).await,
            Err(Invalid(reason)) => match self.setup.protocol {
                Protocol::TransportWs => Err(close(4400, reason)),
                // subscriptions-transport-ws: report the parsing error, ignore the message.
                Protocol::Legacy => {
                    self.send(socket, server::connection_error(&reason, "BAD_USER_INPUT"))
                        .await
                }
            },
        }
    }

    async fn on_message(
        &mut self,
        socket: &mut WebSocket,
        operations: &mut SelectAll<Events>,
        message: ClientMessage,
    ) -> Result<(), Stop> {
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.init_received {
                    return Err(close(4429, "Too many initialisation requests"));
                }
                self.init_received = true;
                self.connection_init(socket, payload.as_ref()).await
            }
            ClientMessage::Ping { payload } => self.send(socket, server::pong(payload)).await,
            ClientMessage::Pong => Ok(()),
            ClientMessage::Subscribe { id, request } => {
                if !self.acknowledged {
                    return Err(close(4401, "Unauthorized"));
                }
                // As on HTTP: an operation of a session signed out or revoked (a demoted
                // administrator's, say) does not run, even before the next keep-alive closes
                // the socket.
                if self.session_ended() {
                    return self.forbidden(socket, &crate::auth::session_ended()).await;
                }
                let id: Arc<str> = id.into();
                if let Some(running) = self.active.get(&id) {
                    // subscriptions-transport-ws: a `start` under the id of a running
                    // subscription stops it (with nothing sent for it) and runs the new one. Not
                    // a query's or a mutation's: cut off, a mutation could commit unseen.
                    if self.setup.protocol != Protocol::Legacy || running.single {
                        return Err(close(4409, format!("Subscriber for {id} already exists")));
                    }
                    if let Some(running) = self.active.remove(&id) {
                        running.abort.abort();
                    }
                }
                let max = self.setup.state.ws.max_operations;
                if self.active.len() >= max {
                    let error = too_many_operations(max);
                    self.setup.state.app.metrics.count_errors([&error]);
                    let message = server::error(self.setup.protocol, &id, &[error]);
                    return self.send(socket, message).await;
                }
                // The checks before execution (parsing, limits, flattening a subscription's
                // root) run here, outside the operation's own panic catcher: a panic in them
                // ends this operation with an INTERNAL error, not the socket and the client's
                // other operations (graphql-ws would reconnect and send it again).
                let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.start(operations, id.clone(), *request)
                }));
                if started.is_err() {
                    tracing::error!(operation = %id, "a WebSocket operation panicked before it ran");
                    if let Some(active) = self.active.remove(&id) {
                        active.abort.abort();
                    }
                    let error = AppError::internal("operation", "panicked").into_request_error();
                    self.setup.state.app.metrics.count_errors([&error]);
                    let message = server::error(self.setup.protocol, &id, &[error]);
                    return self.send(socket, message).await;
                }
                Ok(())
            }
            ClientMessage::Refused { id, reason } => {
                if !self.acknowledged {
                    return Err(close(4401, "Unauthorized"));
                }
                // A `start` under a running subscription's id replaces it, however it ends:
                // the client now waits on the new one, and would take the old one's data for it.
                if let Some(running) = self.active.get(id.as_str())
                    && !running.single
                    && let Some(running) = self.active.remove(id.as_str())
                {
                    running.abort.abort();
                }
                let mut error = ServerError::new(reason, None);
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "BAD_USER_INPUT");
                self.setup.state.app.metrics.count_errors([&error]);
                let message = server::error(self.setup.protocol, &id, &[error]);
                self.send(socket, message).await
            }
            ClientMessage::Complete { id } => {
                if let Some(active) = self.active.remove(id.as_str()) {
                    active.abort.abort();
                    // The legacy protocol confirms a `stop`; graphql-transport-ws sends
                    // nothing more for an operation the client completed.
                    if self.setup.protocol == Protocol::Legacy {
                        return self.send(socket, server::complete(&id)).await;
                    }
                }
                Ok(())
            }
            ClientMessage::Terminate => Err(close(1000, "Normal Closure")),
        }
    }

    async fn connection_init(
        &mut self,
        socket: &mut WebSocket,
        payload: Option<&Map<String, Value>>,
    ) -> Result<(), Stop> {
        let state = &self.setup.state.app;
        let header = self.setup.header_authorization.as_deref();
        match authenticate(&state.tokens, payload, header) {
            Ok(caller) => {
                if let Some(caller) = &caller {
                    if state.revoked.contains(caller.user.session_id) {
                        return self.forbidden(socket, &crate::auth::session_ended()).await;
                    }
                    let left_ms = caller
                        .expires_at
                        .saturating_mul(1000)
                        .saturating_sub(Utc::now().timestamp_millis());
                    if left_ms <= 0 {
                        return self
                            .forbidden(socket, &AppError::unauthenticated("access token expired"))
                            .await;
                    }
                    let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
                    self.expires_at = Some(Instant::now() + left);
                    let account = super::sockets::Holder::Account(caller.user.id);
                    let max = self.setup.state.ws.max_sockets_per_account;
                    let Some(slot) = self.setup.state.sockets.take(account, max) else {
                        if self.setup.protocol == Protocol::Legacy {
                            let message =
                                server::connection_error(TOO_MANY_SOCKETS, "RATE_LIMITED");
                            self.send(socket, message).await?;
                        }
                        return Err(close(1013, TOO_MANY_SOCKETS));
                    };
                    self.account_slot = Some(slot);
                }
                self.user = caller.map(|c| c.user);
                self.acknowledged = true;
                self.send(socket, server::connection_ack()).await?;
                if self.setup.protocol == Protocol::Legacy {
                    // "sent right after each GQL_CONNECTION_ACK, then periodically"
                    self.send(socket, server::keep_alive()).await?;
                }
                Ok(())
            }
            Err(err) => self.forbidden(socket, &err).await,
        }
    }

    /// Whether the socket's session was signed out or revoked since it was opened.
    fn session_ended(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| self.setup.state.app.revoked.contains(u.session_id))
    }

    /// Auth failed: the legacy protocol hears why, then both close with `4403`, saying why in
    /// the reason (`Forbidden: access token expired`), so a client knows whether a refreshed
    /// token will do or it must sign in again, as it would over HTTP.
    async fn forbidden(&mut self, socket: &mut WebSocket, err: &AppError) -> Result<(), Stop> {
        if self.setup.protocol == Protocol::Legacy {
            let message = server::connection_error(&err.public_message(), err.code());
            self.send(socket, message).await?;
        }
        Err(close(4403, format!("Forbidden: {}", err.public_message())))
    }

    async fn token_expired(&mut self, socket: &mut WebSocket) -> Result<(), Stop> {
        self.forbidden(socket, &AppError::unauthenticated("access token expired"))
            .await
    }

    /// Runs one operation with the same request data the HTTP handler attaches. Each operation
    /// gets its own viewer, so memberships are read afresh rather than once per socket.
    fn start(
        &mut self,
        operations: &mut SelectAll<Events>,
        id: Arc<str>,
        mut request: async_graphql::Request,
    ) {
        let viewer = match &self.user {
            Some(user) => Viewer::authenticated(user.clone()),
            None => Viewer::anonymous(),
        };
        let persisted = self.setup.state.persisted.resolve(&mut request).err();
        // Before anything parses it: the parser recurses once a level.
        let persisted = persisted.or_else(|| {
            use crate::graphql::depth::{MAX_TEXT_NESTING, text_nesting, text_too_nested};
            (text_nesting(&request.query) > MAX_TEXT_NESTING).then(text_too_nested)
        });
        let document = persisted
            .is_none()
            .then(|| async_graphql::parser::parse_query(&request.query).ok())
            .flatten()
            .map(std::sync::Arc::new);
        if let Some(document) = &document {
            crate::graphql::inputs::fill_variable_defaults(&mut request, document);
        }
        let operation = request.operation_name.clone();
        let is_subscription = document
            .as_deref()
            .and_then(|d| crate::graphql::nulls::pick(d, operation.as_deref()))
            .is_some_and(|op| op.ty == async_graphql::parser::types::OperationType::Subscription);
        let viewer = Arc::new(match is_subscription {
            true => viewer.live(),
            false => viewer,
        });
        let measured = document.as_deref().map(crate::graphql::inputs::measure);
        let introspects = measured.as_ref().is_none_or(|m| m.shape.introspects);
        let facts = document
            .as_deref()
            .zip(measured.as_ref())
            .map(|(document, measured)| measured.facts(document));
        let max_depth = self.setup.state.app.config.max_query_depth;
        let refused =
            persisted.or_else(|| crate::graphql::inputs::refusal(&request, facts, max_depth));
        // A subscription's root, flattened as async-graphql must run it (`subscription_root`).
        let mut flat = None;
        let refused = refused.or_else(|| {
            let parsed = document.as_deref()?;
            let operation = operation.as_deref();
            match crate::graphql::subscription_root::flatten(parsed, operation, &request.variables)
            {
                Ok(flattened) => {
                    flat = flattened;
                    None
                }
                Err(error) => Some(error),
            }
        });
        if let Some(error) = refused {
            let response = async_graphql::Response::from_errors(vec![error]);
            let answer = stream::iter([(id.clone(), Some(response)), (id.clone(), None)]);
            let (abort, registration) = AbortHandle::new_pair();
            operations.push(Abortable::new(answer.boxed(), registration));
            self.active.insert(
                id,
                Active {
                    abort,
                    single: true,
                    answered: false,
                    _live: Live::new(&self.setup.state.app.metrics.websocket_operations),
                },
            );
            return;
        }
        let app = &self.setup.state.app;
        app.metrics.graphql_operations.inc();
        // A query or mutation reads once, so its loaders cache like an HTTP request's; a
        // subscription's must read afresh for every event.
        let loaders = if is_subscription {
            new_subscription_loaders(app.db.clone(), viewer.clone())
        } else {
            new_loaders(app.db.clone(), viewer.clone())
        };
        let mut request = request;
        if !is_subscription {
            request = request.data(std::sync::Arc::new(
                crate::graphql::budget::ListBudget::default(),
            ));
        }
        let request = request
            .data(viewer)
            .data(loaders)
            .data(std::sync::Arc::new(
                crate::content::loaders::ContentLoaders::new(app.db.clone()),
            ))
            .data(self.setup.client.clone());
        let variables = request.variables.clone();
        let max_complexity = app.config.max_query_complexity;
        let mut request = request;
        let mut document = document;
        // Parsed once: async-graphql runs the document given, a subscription's root flattened,
        // and the answers are completed against the same.
        if let Some(flat) = flat {
            document = Some(Arc::new(flat));
        }
        let mut kept = false;
        if let Some(document) = &document {
            let marked = crate::graphql::empty::keep_objects(document);
            kept = marked.is_some();
            let document = marked.as_ref().unwrap_or(document);
            let run = crate::graphql::inputs::without_unsent_variables(&request, document)
                .unwrap_or_else(|| document.clone());
            request.set_parsed_query(run);
        }
        let results = {
            let id = id.clone();
            self.setup
                .state
                .schema
                .running(introspects)
                .execute_stream(request)
                .map(move |mut response| {
                    let mutation = document.as_ref().is_none_or(|d| {
                        crate::graphql::nulls::pick(d, operation.as_deref()).is_none_or(|op| {
                            op.ty == async_graphql::parser::types::OperationType::Mutation
                        })
                    });
                    crate::graphql::budget::collapse(&mut response, mutation);
                    crate::graphql::errors::add_codes(&mut response, max_complexity);
                    if let Some(document) = document.as_ref() {
                        if kept {
                            crate::graphql::empty::strip(&mut response.data);
                        }
                        crate::graphql::nulls::keep_empty_root(&mut response);
                        if !response.errors.is_empty() {
                            crate::graphql::nulls::complete(
                                &mut response,
                                document,
                                operation.as_deref(),
                            );
                        }
                        crate::graphql::order::restore(
                            &mut response,
                            document,
                            operation.as_deref(),
                            &variables,
                        );
                    }
                    crate::graphql::errors::cap(&mut response);
                    (id.clone(), Some(response))
                })
        };
        // A panic inside the operation ends it with an INTERNAL error; the socket and the
        // client's other operations go on.
        let results = {
            let id = id.clone();
            std::panic::AssertUnwindSafe(results)
                .catch_unwind()
                .map(move |result| {
                    result.unwrap_or_else(|_| {
                        tracing::error!(operation = %id, "a WebSocket operation panicked");
                        let error = AppError::internal("operation", "panicked");
                        (
                            id.clone(),
                            Some(Response::from_errors(vec![error.into_request_error()])),
                        )
                    })
                })
                .boxed()
        };
        // Queries and mutations get the HTTP request's time limit; a subscription runs until
        // it ends or the client completes it.
        let results = if is_subscription {
            results
        } else {
            let limit_ms = app.config.request_timeout_ms;
            let id = id.clone();
            async_stream::stream! {
                let mut results = results;
                let deadline = tokio::time::sleep(Duration::from_millis(limit_ms));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        item = results.next() => match item {
                            Some(item) => yield item,
                            None => break,
                        },
                        () = &mut deadline => {
                            let error = AppError::TimedOut(format!(
                                "the operation was stopped after {}; what it had not committed was rolled back",
                                crate::http::human_duration(limit_ms)
                            ));
                            yield (id.clone(), Some(Response::from_errors(vec![error.into_request_error()])));
                            break;
                        }
                    }
                }
            }
            .boxed()
        };
        let end = stream::once(std::future::ready((id.clone(), None)));
        let (abort, registration) = AbortHandle::new_pair();
        operations.push(Abortable::new(results.chain(end).boxed(), registration));
        self.active.insert(
            id,
            Active {
                abort,
                single: !is_subscription,
                answered: false,
                _live: Live::new(&self.setup.state.app.metrics.websocket_operations),
            },
        );
    }

    async fn on_event(
        &mut self,
        socket: &mut WebSocket,
        id: Arc<str>,
        event: Option<Response>,
    ) -> Result<(), Stop> {
        let Some(response) = event else {
            return match self.active.remove(&id) {
                Some(_) => self.send(socket, server::complete(&id)).await,
                None => Ok(()),
            };
        };
        let session_ended = self.session_ended();
        let Some(active) = self.active.get_mut(&id) else {
            return Ok(());
        };
        // Signed out, revoked or demoted since the subscription began: not one more event
        // (its download links and all). A query's or mutation's own answer still goes out:
        // `logoutEverywhere` sent over this socket hears that it worked.
        if !active.single && session_ended {
            return self.forbidden(socket, &crate::auth::session_ended()).await;
        }
        let failed_before_execution = !active.answered && is_request_error(&response);
        active.answered = true;
        self.setup.state.app.metrics.count_errors(&response.errors);
        if failed_before_execution {
            if let Some(active) = self.active.remove(&id) {
                active.abort.abort();
            }
            let message = server::error(self.setup.protocol, &id, &response.errors);
            return self.send(socket, message).await;
        }
        let message = server::next(self.setup.protocol, &id, &response);
        self.send(socket, message).await
    }

    async fn send(&self, socket: &mut WebSocket, text: String) -> Result<(), Stop> {
        self.send_frame(socket, Message::Text(text.into())).await
    }

    async fn send_frame(&self, socket: &mut WebSocket, frame: Message) -> Result<(), Stop> {
        let sent = timeout(self.setup.state.ws.write_timeout, socket.send(frame)).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(Stop::Gone),
        }
    }
}

/// A request error (syntax, validation, unknown operation, variables) rather than a result:
/// no data, and no error that belongs to a field. Field errors always carry a path, including
/// those of a subscription resolver that refuses to start.
fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn too_many_operations(max: usize) -> ServerError {
    let message = format!(
        "too many operations on this connection: at most {max} may run at once; complete one first"
    );
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "RATE_LIMITED");
    error
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Sends the close frame, then waits (briefly) for the client's, so the close code reaches
/// the client before the TCP connection goes.
async fn close_gracefully(mut socket: WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: truncate(reason, MAX_CLOSE_REASON).into(),
    };
    if timeout(CLOSE_GRACE, socket.send(Message::Close(Some(frame))))
        .await
        .is_err()
    {
        return;
    }
    let drain = async {
        while let Some(Ok(frame)) = socket.recv().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    };
    timeout(CLOSE_GRACE, drain).await.ok();
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_cut_to_123_bytes_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = truncate(&long, MAX_CLOSE_REASON);
        assert_eq!(cut.len(), 122);
        assert_eq!(truncate("short", MAX_CLOSE_REASON), "short");
    }
}

//! Following one job over `graphql-transport-ws`: its state now, then every change, until a
//! terminal status.
//!
//! The subscription reads the job after it subscribes, so a new connection never misses
//! the end. That is what makes reconnecting safe: when the connection drops, the client
//! connects again and the snapshot brings it up to date. When the server closes the socket
//! because the access token expired (`4403`), a password session is refreshed first.

use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{
    Message, client::IntoClientRequest, http::HeaderValue, protocol::frame::coding::CloseCode,
};

use super::{Api, ApiError, ApiErrors};

const SUBSCRIPTION: &str = "subscription Follow($id: ID!) { jobUpdated(id: $id) \
     { id type status progress currentPhase attempts error outputUrl } }";
/// Connecting and the server's `connection_ack`.
const HANDSHAKE: Duration = Duration::from_secs(15);
/// The server pings every few seconds; this long without a message means the link is gone.
const IDLE: Duration = Duration::from_secs(60);
/// How long following keeps connecting again after it last heard from the server: long
/// enough for a restart (whose shutdown alone may take 30 s) or a short network outage.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// Connections that may fail before following gives up, when none has worked yet.
const FIRST_ATTEMPTS: u32 = 6;
/// The longest wait between two connections.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// One event of `jobUpdated`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobUpdate {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
    pub progress: f64,
    pub current_phase: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub output_url: Option<String>,
}

impl JobUpdate {
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "DONE" | "FAILED" | "CANCELLED")
    }
}

/// How one connection ended, short of a terminal status.
enum Ended {
    /// The link dropped or the server went away: connect again.
    Dropped(anyhow::Error),
    /// The server refused the access token (`4403`): it expired, or was never valid.
    Unauthorized,
    /// Connecting again would not help (the job is not visible, the request is refused).
    Fatal(anyhow::Error),
}

/// Follows `job_id` to its terminal status, calling `on_update` with every event (after a
/// reconnection the first one may repeat the last).
pub async fn follow(
    api: &mut Api,
    job_id: &str,
    mut on_update: impl FnMut(&JobUpdate),
) -> anyhow::Result<JobUpdate> {
    // The build links both of rustls's providers (ring for reqwest and sqlx, aws-lc-rs for the
    // S3 client), so `wss://` needs one chosen for the process. An error means one already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = ws_url(api.base())?;
    let shown = super::without_credentials(&url);
    let mut failures = 0;
    let mut refreshed = false;
    let mut last_heard = tokio::time::Instant::now();
    // Until the server has answered once, a wrong --server (or one not running) is said
    // after a few tries, not after minutes.
    let mut ever_heard = false;
    loop {
        let mut heard = false;
        let ended = follow_once(api, (&url, &shown), job_id, &mut |update| {
            heard = true;
            on_update(update);
        })
        .await;
        if heard {
            last_heard = tokio::time::Instant::now();
            ever_heard = true;
        }
        match ended {
            Ok(last) => return Ok(last),
            Err(Ended::Fatal(err)) => return Err(err),
            Err(Ended::Unauthorized) => {
                // A refresh that is refused at once again means the token is not the problem.
                if refreshed && !heard {
                    anyhow::bail!("the server refused the renewed session");
                }
                if !api.refresh().await? {
                    anyhow::bail!(
                        "the server refused the access token (it may have expired); follow \
                         the job again with a fresh one: reelgraph follow {job_id}"
                    );
                }
                refreshed = true;
            }
            Err(Ended::Dropped(err)) => {
                // The next connection may need a renewal of its own (the token expired while
                // the link was down): the one before it is no evidence against it.
                refreshed = false;
                if heard {
                    failures = 0;
                }
                failures += 1;
                if !ever_heard && failures >= FIRST_ATTEMPTS {
                    return Err(err.context(format!("following job {job_id}: gave up")));
                }
                if last_heard.elapsed() >= RECONNECT_FOR {
                    return Err(err.context(format!(
                        "following job {job_id}: gave up after {} s without the server; the \
                         job goes on there: follow it again with `reelgraph follow {job_id}`",
                        RECONNECT_FOR.as_secs()
                    )));
                }
                let wait = Duration::from_millis(500 << (failures - 1).min(5)).min(MAX_WAIT);
                eprintln!("connection lost ({err:#}); reconnecting in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// `http(s)://host/base` → `ws(s)://host/base/graphql/ws`.
fn ws_url(base: &str) -> anyhow::Result<String> {
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        anyhow::bail!("--server must be an http:// or https:// URL, not {base:?}");
    };
    Ok(format!("{rest}/graphql/ws"))
}

/// One connection to `url` (`shown` in messages: without credentials).
async fn follow_once(
    api: &Api,
    (url, shown): (&str, &str),
    job_id: &str,
    on_update: &mut impl FnMut(&JobUpdate),
) -> Result<JobUpdate, Ended> {
    let mut request = url
        .into_client_request()
        .context("building the WebSocket request")
        .map_err(Ended::Fatal)?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = match timeout(HANDSHAKE, tokio_tungstenite::connect_async(request)).await
    {
        Ok(Ok(connected)) => connected,
        Ok(Err(err)) => {
            return Err(Ended::Dropped(
                anyhow::Error::new(err).context(format!("cannot connect to {shown}")),
            ));
        }
        Err(_) => return Err(Ended::Dropped(anyhow::anyhow!("{shown} did not answer"))),
    };
    let init = json!({
        "type": "connection_init",
        "payload": { "authorization": format!("Bearer {}", api.access_token()) },
    });
    send(&mut socket, &init).await?;
    let mut acknowledged = false;
    loop {
        let wait = if acknowledged { IDLE } else { HANDSHAKE };
        let message = match timeout(wait, socket.next()).await {
            Err(_) => {
                return Err(Ended::Dropped(anyhow::anyhow!(
                    "no message from the server in {wait:?}"
                )));
            }
            Ok(None) => return Err(Ended::Dropped(anyhow::anyhow!("the server hung up"))),
            Ok(Some(Err(err))) => return Err(Ended::Dropped(err.into())),
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => return Err(closed(frame.as_ref())),
            _ => continue,
        };
        let Ok(message) = serde_json::from_str::<Value>(&text) else {
            return Err(Ended::Fatal(anyhow::anyhow!(
                "the server sent a message that is not JSON"
            )));
        };
        match message["type"].as_str() {
            Some("connection_ack") => {
                acknowledged = true;
                let subscribe = json!({
                    "id": "1",
                    "type": "subscribe",
                    "payload": { "query": SUBSCRIPTION, "variables": { "id": job_id } },
                });
                send(&mut socket, &subscribe).await?;
            }
            Some("ping") => send(&mut socket, &json!({ "type": "pong" })).await?,
            Some("next") => {
                let payload = &message["payload"];
                let errors = ApiError::from_errors(&payload["errors"]);
                if !errors.is_empty() {
                    return Err(Ended::Fatal(ApiErrors(errors).into()));
                }
                let update: JobUpdate =
                    serde_json::from_value(payload["data"]["jobUpdated"].clone())
                        .context("reading a jobUpdated event")
                        .map_err(Ended::Fatal)?;
                on_update(&update);
                if update.is_terminal() {
                    let _ = socket.close(None).await;
                    return Ok(update);
                }
            }
            Some("error") => {
                let errors = ApiError::from_errors(&message["payload"]);
                return Err(Ended::Fatal(ApiErrors(errors).into()));
            }
            Some("complete") => {
                return Err(Ended::Dropped(anyhow::anyhow!(
                    "the server ended the subscription before the job ended"
                )));
            }
            _ => {}
        }
    }
}

async fn send<S>(socket: &mut S, message: &Value) -> Result<(), Ended>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .map_err(|err| Ended::Dropped(err.into()))
}

fn closed(frame: Option<&tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> Ended {
    let Some(frame) = frame else {
        return Ended::Dropped(anyhow::anyhow!("the server closed the connection"));
    };
    match u16::from(frame.code) {
        4403 => Ended::Unauthorized,
        // The protocol's other refusals (bad message, duplicate id, too many operations):
        // the same request would be refused again.
        4400..=4499 => Ended::Fatal(anyhow::anyhow!(
            "the server closed the subscription: {} ({})",
            frame.reason,
            u16::from(frame.code)
        )),
        _ if frame.code == CloseCode::Normal => Ended::Dropped(anyhow::anyhow!(
            "the server closed the connection ({})",
            frame.reason
        )),
        code => Ended::Dropped(anyhow::anyhow!(
            "the server closed the connection: {} ({code})",
            frame.reason
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_follows_the_scheme() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").expect("http"),
            "ws://127.0.0.1:8080/graphql/ws"
        );
        assert_eq!(
            ws_url("https://api.example.com/reelgraph").expect("https"),
            "wss://api.example.com/reelgraph/graphql/ws"
        );
        assert!(ws_url("ftp://example.com").is_err());
    }
}

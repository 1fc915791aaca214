//! Webhooks: a render (`renderMovie`, `generateShort`) given a `callbackUrl` has its end POSTed
//! there, signed, so a backend learns of it without holding a subscription open.
//!
//! The delivery is itself a job (`webhook.deliver`, kind `PUBLISH`, owned by the render's
//! owner), enqueued in the transaction that ends the render ([`on_job_finished`]): it cannot be
//! lost between the two, it is retried with the queue's backoff (15 attempts over about half
//! an hour), and its owner sees it in `jobs` with its attempts and last error (and may
//! `retryJob` it).
//! The delivery is announced with the render's end, and `jobsUpdated` shows it queued.
//! Deliveries are claimed in a lane of their own (`worker::DELIVERY_SLOTS` per pool, besides
//! its slots; `queue::Slots`): a busy pool still sends them at once, and receivers that never
//! answer hold no slot a render needs. One owner's deliveries run at most
//! `queue::DELIVERIES_PER_OWNER` at once, so one account's silent receivers cannot hold up
//! everyone else's notices.
//!
//! Each POST carries `Reelgraph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` keyed by the owner's `me { webhookSecret }`, and `Reelgraph-Delivery: <id>`,
//! the same on every attempt so receivers can drop repeats. Callback hosts that resolve to
//! loopback, private, link-local or other non-public addresses are refused (server-side
//! request forgery) unless `REELGRAPH_WEBHOOK_ALLOW_PRIVATE=true`; the address checked is the
//! address connected to.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{JobKind, job, user, webhook_secret};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use super::{
    NewJob,
    handlers::{JobContext, JobFailure, JobHandler, Outcome, Registry},
    queue,
};
use crate::{
    auth::tokens::TokenKeys,
    db::RowLock,
    error::{AppError, AppResult},
};

pub const JOB_TYPE: &str = "webhook.deliver";
/// Where a job's input keeps its callback.
const INPUT_KEY: &str = "callback_url";
/// With the queue's backoff (doubling from 1 s, capped at 5 minutes): about half an hour.
pub const MAX_ATTEMPTS: i32 = 15;
const MAX_URL_LEN: usize = 2048;
/// One attempt's whole exchange, the lookup of the host included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting to the receiver's addresses, all of them together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Why a callback host was refused, and what the server's operator may change.
const PUBLIC_ONLY: &str = "deliveries go to public addresses only unless the server sets \
                           REELGRAPH_WEBHOOK_ALLOW_PRIVATE=true";
/// How long the `outputUrl` in a delivery works.
const OUTPUT_URL_TTL: Duration = Duration::from_secs(600);

/// Checks a `callbackUrl` input: an absolute `http(s)` URL with a host, at most 2048 bytes;
/// unless `allow_private`, not an address that is not public (an IP literal, in any of the
/// forms the URL standard reads): its delivery would be refused anyway. Names are resolved
/// when delivered, not here (and one that resolves to such an address gets the same answer
/// as one that does not resolve: see `Deliver::target`).
pub fn validate_callback_url(field: &str, url: &str, allow_private: bool) -> AppResult<String> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| AppError::bad_input(field, format!("must be an absolute URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(AppError::bad_input(
            field,
            "must be an http:// or https:// URL with a host",
        ));
    }
    if !allow_private {
        let private = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) | None => false,
        };
        if private {
            return Err(AppError::bad_input(
                field,
                format!("is not a public address: {PUBLIC_ONLY}"),
            ));
        }
    }
    Ok(url.to_owned())
}

/// Stores a checked callback in a job's input.
pub fn attach(input: &mut Value, url: Option<String>) {
    if let (Some(url), Some(object)) = (url, input.as_object_mut()) {
        object.insert(INPUT_KEY.to_owned(), url.into());
    }
}

/// The secret of an account that never rotated its own: derived from the server's key, so
/// every process knows it without storing it.
pub fn derived_secret(tokens: &TokenKeys, owner: Uuid) -> String {
    let key = tokens.derive_key(format!("reelgraph webhook secret v1 {owner}").as_bytes());
    format!("whsec_{}", hex::encode(key))
}

/// Stores the account's derived secret, when it has none stored, as a render first asks for a
/// callback: from then on its deliveries are signed with a secret kept here, which a new
/// server key (`JWT_SECRET`) leaves alone — a new key would otherwise re-sign every pending
/// and later delivery with a secret no receiver knows. What `webhookSecret` showed before is
/// what is stored.
pub async fn pin_secret(
    db: &impl ConnectionTrait,
    tokens: &TokenKeys,
    owner: Uuid,
) -> AppResult<()> {
    webhook_secret::Entity::insert(webhook_secret::ActiveModel {
        user_id: Set(owner),
        secret: Set(derived_secret(tokens, owner)),
        previous_secret: Set(None),
        previous_expires_at: Set(None),
        rotated_at: Set(Utc::now()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(webhook_secret::Column::UserId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// The longest a rotated-out secret may keep signing deliveries.
pub const MAX_KEEP_PREVIOUS: Duration = Duration::from_secs(7 * 24 * 3600);

/// The secrets a delivery to `owner` is signed with at `now`: the current one, then the one it
/// replaced while that is still valid.
async fn signing_secrets(
    db: &impl ConnectionTrait,
    tokens: &TokenKeys,
    owner: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<String>, sea_orm::DbErr> {
    let Some(row) = webhook_secret::Entity::find_by_id(owner).one(db).await? else {
        return Ok(vec![derived_secret(tokens, owner)]);
    };
    let mut secrets = vec![row.secret];
    if let (Some(previous), Some(until)) = (row.previous_secret, row.previous_expires_at)
        && until > now
    {
        secrets.push(previous);
    }
    Ok(secrets)
}

/// Replaces `owner`'s secret with a new random one and returns it. The secret it replaces
/// keeps signing deliveries (as a second `v1`) for `keep_previous`, so a receiver can switch
/// without refusing a delivery. With `keep_previous` zero, no previous secret is kept; a
/// rotation that would keep one while an earlier previous still signs is CONFLICT.
pub async fn rotate_secret(
    db: &DatabaseConnection,
    tokens: &TokenKeys,
    owner: Uuid,
    keep_previous: Duration,
) -> AppResult<String> {
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    let secret = format!("whsec_{}", hex::encode(random));
    let now = Utc::now();
    let keep = chrono::Duration::from_std(keep_previous.min(MAX_KEEP_PREVIOUS))
        .unwrap_or_else(|_| chrono::Duration::zero());
    let txn = queue::begin_write(db).await?;
    // The account's row serialises rotations (there is no secret row to lock before the
    // first one).
    user::Entity::find_by_id(owner)
        .for_no_key_update(&txn)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("user"))?;
    let existing = webhook_secret::Entity::find_by_id(owner).one(&txn).await?;
    // One previous secret at a time: rotating again while it still signs would drop it
    // silently from under a receiver that has not switched yet (a retried or doubled call).
    if !keep.is_zero()
        && let Some(until) = existing
            .as_ref()
            .filter(|row| row.previous_secret.is_some())
            .and_then(|row| row.previous_expires_at)
            .filter(|until| *until > now)
    {
        return Err(AppError::conflict(
            Some("keepPreviousSecs"),
            format!(
                "the secret was rotated already and the one before it signs until {}; \
                 rotate with keepPreviousSecs: 0 to drop it now",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    let (previous, previous_expires_at) = if keep.is_zero() {
        (None, None)
    } else {
        let current = existing
            .as_ref()
            .map_or_else(|| derived_secret(tokens, owner), |row| row.secret.clone());
        (Some(current), Some(now + keep))
    };
    let row = webhook_secret::ActiveModel {
        user_id: Set(owner),
        secret: Set(secret.clone()),
        previous_secret: Set(previous),
        previous_expires_at: Set(previous_expires_at),
        rotated_at: Set(now),
    };
    // Written over a row that appeared since it was read: a render's first callback pins
    // the derived secret (`pin_secret`) without the account's lock, and that secret is the
    // previous one computed above.
    webhook_secret::Entity::insert(row)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(webhook_secret::Column::UserId)
                .update_columns([
                    webhook_secret::Column::Secret,
                    webhook_secret::Column::PreviousSecret,
                    webhook_secret::Column::PreviousExpiresAt,
                    webhook_secret::Column::RotatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(secret)
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, with one `v1` per secret.
pub fn signature(secrets: &[String], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// In the transaction that ends `job`: when it is a top-level job with a callback, enqueue
/// the delivery of its end. Returns the delivery job, to be announced after the commit.
pub async fn on_job_finished(
    txn: &DatabaseTransaction,
    job: &job::Model,
) -> AppResult<Option<job::Model>> {
    if job.parent_id.is_some() || job.job_type == JOB_TYPE {
        return Ok(None);
    }
    let Some(url) = job.input.get(INPUT_KEY).and_then(Value::as_str) else {
        return Ok(None);
    };
    // The job as it ended, kept in the delivery: a retry of the job may end it again before
    // this delivery gets through, and its body must still tell this end, under its version.
    let mut delivery = NewJob::new(
        JobKind::Publish,
        JOB_TYPE,
        job.owner_id,
        json!({
            "url": url, "job_id": job.id, "status": job.status,
            "version": job.seq, "attempts": job.attempts, "error": job.error,
            "finished_at": job.finished_at, "output_ref": job.output_ref,
        }),
    );
    delivery.creator_id = job.creator_id;
    // Among deliveries (they have a lane of their own: `queue::Slots`), a high-priority
    // render's notice goes first.
    delivery.priority = job.priority;
    delivery.max_attempts = MAX_ATTEMPTS;
    Ok(Some(queue::enqueue(txn, delivery).await?.job))
}

pub fn register(registry: &mut Registry, tokens: TokenKeys, allow_private: bool) {
    registry.register(
        JOB_TYPE,
        Deliver {
            tokens,
            allow_private,
        },
    );
}

#[derive(Deserialize)]
struct DeliveryInput {
    url: String,
    job_id: Uuid,
    status: entity::JobStatus,
    /// The job's version when it ended, and what it was then (absent in deliveries queued
    /// before these were kept: the job's row is read instead).
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    attempts: Option<i32>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    output_ref: Option<String>,
}

struct Deliver {
    tokens: TokenKeys,
    allow_private: bool,
}

#[async_trait::async_trait]
impl JobHandler for Deliver {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: DeliveryInput = ctx.input()?;
        let Some(ended) = job::Entity::find_by_id(input.job_id)
            .one(&ctx.db)
            .await
            .map_err(|e| JobFailure::internal("the job could not be read", e))?
        else {
            return Err(JobFailure::permanent(
                "the job no longer exists (deleted after its retention period)",
            ));
        };
        // The end this delivery tells, as it was (see `on_job_finished`).
        let kept = input.version.is_some();
        let output_ref = if kept {
            // Only while the job still has it: a job that ended DONE is never run again, so
            // its output changes only when it is deleted (a short, or its video, deleted:
            // `forget_outputs`), and no link to deleted media goes out after that.
            input
                .output_ref
                .as_ref()
                .filter(|key| ended.output_ref.as_ref() == Some(*key))
        } else {
            ended.output_ref.as_ref()
        };
        // Media goes only to someone who may still read it (as `Job.outputUrl`): the job's
        // owner may have been disabled, or removed from the creator's team, since it started.
        let output_ref = match output_ref {
            Some(key) => {
                let may_use = owner_may_use(&ctx.db, ended.owner_id, ended.creator_id)
                    .await
                    .map_err(|e| JobFailure::internal("the team could not be read", e))?;
                Some(key).filter(|_| may_use)
            }
            None => None,
        };
        let output_url = match (&input.status, output_ref) {
            (entity::JobStatus::Done, Some(key)) => Some(
                ctx.storage
                    .presign_get(key, OUTPUT_URL_TTL)
                    .await
                    .map_err(|e| JobFailure::internal("the output URL could not be signed", e))?,
            ),
            _ => None,
        };
        let body = json!({
            "event": "job.finished",
            "deliveryId": ctx.job.id,
            "job": {
                "id": ended.id,
                "type": ended.job_type,
                "status": input.status,
                "error": if kept { input.error } else { ended.error },
                "outputUrl": output_url,
                "createdAt": ended.created_at,
                "finishedAt": if kept { input.finished_at } else { ended.finished_at },
                // Grows with every change of the job: a receiver keeps the highest it saw
                // (a retried job's later end may arrive before an earlier one's delivery).
                "version": input.version.unwrap_or(ended.seq),
                "attempts": input.attempts.unwrap_or(ended.attempts),
            },
        })
        .to_string();
        // One limit for the whole attempt, the lookup included.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let target = self.target(&input.url, deadline).await?;
        let now = Utc::now();
        let secrets = signing_secrets(&ctx.db, &self.tokens, ctx.job.owner_id, now)
            .await
            .map_err(|e| JobFailure::internal("the signing secret could not be read", e))?;
        let client = target
            .client(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .map_err(|e| JobFailure::internal("the HTTP client could not start", e))?;
        let answer = client
            .post(target.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::USER_AGENT,
                concat!("Reelgraph-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("reelgraph-delivery", ctx.job.id.to_string())
            .header(
                "reelgraph-signature",
                signature(&secrets, now.timestamp(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let status = match answer {
            Ok(response) => response.status(),
            Err(err) => {
                let why = if err.is_timeout() {
                    format!("no answer within {} s", TIMEOUT.as_secs())
                } else if err.is_connect() {
                    "could not connect".to_owned()
                } else {
                    "the exchange failed".to_owned()
                };
                return Err(JobFailure::transient(format!(
                    "callback {}: {why}",
                    shown(&target.url)
                )));
            }
        };
        if status.is_success() {
            return Ok(Outcome::Done {
                output: json!({ "status": status.as_u16() }),
                output_ref: None,
            });
        }
        let message = format!(
            "callback {} answered HTTP {}",
            shown(&target.url),
            status.as_u16()
        );
        // 410 Gone: the receiver says it will never take it.
        if status == reqwest::StatusCode::GONE {
            Err(JobFailure::permanent(message))
        } else {
            Err(JobFailure::transient(message))
        }
    }
}

/// Whether `owner` may still have the media of a job of theirs: an account not disabled and,
/// for a creator's job, a member of its team or an administrator.
async fn owner_may_use(
    db: &sea_orm::DatabaseConnection,
    owner: Uuid,
    creator: Option<Uuid>,
) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let Some(account) = user::Entity::find_by_id(owner)
        .one(db)
        .await?
        .filter(|u| u.is_active)
    else {
        return Ok(false);
    };
    let Some(creator) = creator else {
        return Ok(true);
    };
    if account.role == entity::UserRole::Admin {
        return Ok(true);
    }
    Ok(entity::creator_member::Entity::find()
        .filter(entity::creator_member::Column::CreatorId.eq(creator))
        .filter(entity::creator_member::Column::UserId.eq(owner))
        .count(db)
        .await?
        > 0)
}

/// A callback URL as a delivery's error shows it: its scheme, host and port only. The rest
/// may hold the receiver's secrets (credentials, a query, or a token in the path, as Slack's
/// and Discord's webhook URLs carry theirs), and the job's error is read by the creator's team.
fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// A callback URL with the addresses it may be sent to.
struct Target {
    url: url::Url,
    host: String,
    addresses: Vec<SocketAddr>,
}

impl Target {
    /// A client that connects to the checked addresses only (no second lookup that could
    /// answer otherwise), trying the next when one does not connect, and follows no
    /// redirects.
    fn client(&self, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            // Shared by the addresses: one that drops packets leaves time for the next.
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // An HTTP(S)_PROXY from the environment would look the host up again itself.
            .no_proxy()
            .resolve_to_addrs(&self.host, &self.addresses)
            .build()
    }
}

impl Deliver {
    async fn target(
        &self,
        url: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Target, JobFailure> {
        let url = url::Url::parse(url)
            .map_err(|e| JobFailure::permanent(format!("callback URL {url:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| JobFailure::permanent(format!("callback URL {url} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.allow_private
            && !is_public(ip)
        {
            return Err(JobFailure::permanent(format!(
                "callback host {host} is a non-public address; {PUBLIC_ONLY}"
            )));
        }
        // A name that does not resolve and one that resolves to an internal address get the
        // same answer, and both are tried again (DNS may change): the job's error is read by
        // the creator's whole team, and telling them apart would map the server's internal
        // names. The lookup counts against the attempt's time limit.
        let unreachable = || {
            JobFailure::transient(if self.allow_private {
                format!("callback host {host} does not resolve")
            } else {
                format!("callback host {host} does not resolve to a public address; {PUBLIC_ONLY}")
            })
        };
        let addresses: Vec<SocketAddr> =
            match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port)))
                .await
            {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(_)) | Err(_) => return Err(unreachable()),
            };
        if addresses.is_empty()
            || (!self.allow_private && addresses.iter().any(|a| !is_public(a.ip())))
        {
            return Err(unreachable());
        }
        Ok(Target {
            url,
            host,
            addresses,
        })
    }
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// documentation, benchmarking, reserved, multicast or unspecified).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x2001 && ip.segments()[1] == 0 // Teredo: tunnels to any IPv4 address
        || first == 0x2002 // 6to4: likewise
        || ip.segments()[..2] == [0x64, 0xff9b] // NAT64 (64:ff9b::/96, 64:ff9b:1::/48): IPv4 inside
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "fec0::1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn callback_urls_are_checked() {
        assert_eq!(
            validate_callback_url("input.callbackUrl", " https://example.com/hook?x=1 ", false)
                .expect("valid"),
            "https://example.com/hook?x=1"
        );
        for bad in [
            "ftp://example.com",
            "example.com/hook",
            "http://",
            "mailto:a@example.com",
        ] {
            let err = validate_callback_url("input.callbackUrl", bad, false).expect_err(bad);
            assert_eq!(err.code(), "BAD_USER_INPUT", "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate_callback_url("input.callbackUrl", &long, false).is_err());
        // Addresses that are not public, in the forms the URL standard reads them in.
        for private in [
            "http://127.0.0.1:1/x",
            "http://2130706433/x",
            "http://0x7f.1/x",
            "http://[::1]/x",
            "http://[::ffff:10.0.0.1]/x",
            "http://169.254.169.254/latest",
        ] {
            let err =
                validate_callback_url("input.callbackUrl", private, false).expect_err(private);
            assert_eq!(err.code(), "BAD_USER_INPUT", "{private}");
            assert!(
                validate_callback_url("input.callbackUrl", private, true).is_ok(),
                "allowed when the server allows private addresses: {private}"
            );
        }
        for public in [
            "http://93.184.215.14/x",
            "https://[2606:4700::1111]/x",
            "http://localhost:8080/x",
        ] {
            assert!(
                validate_callback_url("input.callbackUrl", public, false).is_ok(),
                "{public}"
            );
        }
    }

    #[test]
    fn a_callback_is_shown_without_its_secrets() {
        let url = url::Url::parse("https://hook:S3CRET@hooks.example.com:8443/in/x?token=T#f")
            .expect("url");
        assert_eq!(shown(&url), "https://hooks.example.com:8443/…");
        // A token in the path (Slack, Discord) is left out too.
        let url = url::Url::parse("https://hooks.slack.com/services/T0/B0/S3CRET").expect("url");
        assert_eq!(shown(&url), "https://hooks.slack.com/…");
    }

    /// A host with several addresses: the delivery moves on from one that does not connect
    /// (here a port nothing listens on) to the next, instead of failing every attempt.
    #[tokio::test]
    async fn a_delivery_tries_each_address_of_its_host() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = closed.local_addr().expect("addr");
        drop(closed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let live = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "taken" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let target = Target {
            url: url::Url::parse("http://hooks.example.test/hook").expect("url"),
            host: "hooks.example.test".to_owned(),
            addresses: vec![dead, live],
        };
        let answer = target
            .client(TIMEOUT)
            .expect("client")
            .post(target.url.clone())
            .send()
            .await
            .expect("the second address answers");
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
    }

    #[test]
    fn signatures_are_hmacs_of_the_timestamp_and_body() {
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test`
        assert_eq!(
            signature(&["whsec_test".to_owned()], 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        // During a rotation: the new secret's, then the old one's.
        assert_eq!(
            signature(
                &["whsec_new".to_owned(), "whsec_test".to_owned()],
                1_700_000_000,
                b"{}"
            ),
            format!(
                "t=1700000000,v1={},v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91",
                signature(&["whsec_new".to_owned()], 1_700_000_000, b"{}")
                    .trim_start_matches("t=1700000000,v1=")
            )
        );
    }
}

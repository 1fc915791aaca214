//! The S3 backend (aws-sdk-s3): AWS, R2, MinIO and any other S3-protocol service.

use std::{collections::BTreeMap, path::Path, time::Duration};

use aws_sdk_s3::{
    Client,
    config::{Credentials, Region, timeout::TimeoutConfig},
    presigning::PresigningConfig,
    primitives::{ByteStream, Length},
    types::{CompletedMultipartUpload, CompletedPart},
};
use tokio::io::AsyncWriteExt;

use super::{ObjectInfo, PresignedPut, StorageError, StorageResult};
use crate::config::Config;

/// How long requests to the service may take: a service that accepts the connection and never
/// answers would otherwise hold a job (whose heartbeat goes on) for ever.
#[derive(Debug, Clone, Copy)]
struct Limits {
    connect: Duration,
    /// One try of a request that moves no object's bytes (HEAD, DELETE, and a GET until its
    /// body starts). The SDK tries again, up to three times in all.
    small_request: Duration,
    /// A download whose body brings nothing for this long has failed.
    stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            small_request: Duration::from_secs(30),
            stall: Duration::from_secs(60),
        }
    }
}

/// Files larger than this are uploaded in parts: S3 takes at most 5 GiB in one PUT, and the
/// 720p proxy of a long source can be more.
const MULTIPART_ABOVE: u64 = 1 << 30;
/// The size of each part: 10,000 parts (S3's most) of 64 MiB hold 625 GiB.
const PART_SIZE: u64 = 64 << 20;
const MAX_PARTS: u64 = 10_000;

/// One try of uploading `size` bytes: two minutes, and a second per 256 KiB.
fn upload_attempt(size: u64) -> Duration {
    Duration::from_secs(120 + size / (256 << 10))
}

/// A multipart upload not completed: aborted when dropped, so that its parts are not left
/// stored (and billed) for ever.
struct PendingUpload {
    client: Client,
    bucket: String,
    key: String,
    /// `None` once completed.
    upload_id: Option<String>,
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        runtime.spawn(async move {
            let aborted = client
                .abort_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(err) = aborted {
                tracing::warn!(key, error = %sdk("aborting a multipart upload", err), "the parts of an unfinished upload may stay stored until the bucket's lifecycle rules remove them");
            }
        });
    }
}

pub struct S3Store {
    /// Uploads (their time limit is set per request, from the size).
    client: Client,
    /// Every other request, each try within [`Limits::small_request`].
    small: Client,
    limits: Limits,
    /// Signs the links clients use: the same as `client` unless S3_PUBLIC_ENDPOINT names
    /// another address for the service (the host is part of the signature).
    presigner: Client,
    bucket: String,
}

/// The time limit of one try of an upload of `size` bytes, as a request's configuration.
fn upload_limit(size: u64) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(upload_attempt(size))
            .build(),
    )
}

/// Keeps SDK error chains (which carry no secrets) for the logs.
fn sdk(context: &str, err: impl std::error::Error) -> StorageError {
    let mut message = format!("{context}: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    StorageError(message)
}

/// Why the bucket did not answer, for the start-up error: a HEAD has no body, so the SDK
/// reported only "unhandled error" for a refusal; the status says which setting to check.
fn bucket_unreachable<E: std::error::Error + 'static>(
    bucket: &str,
    err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> anyhow::Error {
    let why = match err
        .raw_response()
        .map(|response| response.status().as_u16())
    {
        Some(403) => "it answered 403 Forbidden: check the credentials (S3_ACCESS_KEY_ID and \
                      S3_SECRET_ACCESS_KEY, or the AWS chain) and that they may list the bucket"
            .to_owned(),
        Some(404) => "it answered 404 Not Found: no such bucket there; check S3_BUCKET and \
                      S3_ENDPOINT"
            .to_owned(),
        Some(status @ (301 | 400)) => format!(
            "it answered {status}: check S3_REGION, and S3_FORCE_PATH_STYLE for MinIO and \
             other servers that want paths"
        ),
        Some(status) => format!("it answered HTTP {status}"),
        None => sdk("no answer", err).0,
    };
    anyhow::anyhow!(
        "S3 bucket `{bucket}` is not reachable: {why} (S3_BUCKET, S3_ENDPOINT, S3_REGION and the \
         credentials say where and how)"
    )
}

/// Checks that `bucket` answers, trying again until `wait` has passed while the service is
/// not up yet (the connection is refused or times out, or it answers 5xx: a MinIO still
/// starting, a proxy before it): started together, the server would otherwise exit before
/// its storage was up. Anything else fails at once: a refusal (403, 404, a redirect), or
/// what fails before a request is sent (no credentials found, a bad endpoint); waiting
/// mends none of them. Each try is one request (the SDK's own retries are off here, so a
/// wait of 0 tries once, and the retries' shared quota is not spent waiting).
async fn wait_for_bucket(client: &Client, bucket: &str, wait: Duration) -> anyhow::Result<()> {
    use aws_sdk_s3::{config::retry::RetryConfig, error::SdkError};
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let err = match client
            .head_bucket()
            .bucket(bucket)
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let not_up_yet = match &err {
            SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
            SdkError::TimeoutError(_) => true,
            _ => err
                .raw_response()
                .is_some_and(|response| response.status().is_server_error()),
        };
        let waited = started.elapsed();
        if !not_up_yet || waited >= wait {
            return Err(bucket_unreachable(bucket, err));
        }
        tracing::warn!(bucket, error = %sdk("no answer", err).0, "the S3 service is not up yet; trying again");
        tokio::time::sleep(pause.min(wait - waited)).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

impl S3Store {
    /// Builds the client from the configuration (endpoint, region, path style, credentials —
    /// explicit ones, else the SDK's usual chain) and checks that the bucket answers.
    pub async fn connect(config: &Config, bucket: &str) -> anyhow::Result<Self> {
        Self::connect_within(config, bucket, Limits::default()).await
    }

    async fn connect_within(config: &Config, bucket: &str, limits: Limits) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()));
        // Set but blank is unset, as the settings' check takes it (the AWS chain then).
        let given = |v: &Option<String>| {
            let v = v.as_deref().map(str::trim).unwrap_or_default();
            (!v.is_empty()).then(|| v.to_owned())
        };
        if let (Some(id), Some(secret)) = (
            given(&config.s3_access_key_id),
            given(&config.s3_secret_access_key),
        ) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                None,
                None,
                "reelgraph-config",
            ));
        }
        let shared = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.s3_force_path_style);
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let timeouts = || TimeoutConfig::builder().connect_timeout(limits.connect);
        let client = Client::from_conf(builder.clone().timeout_config(timeouts().build()).build());
        let small = Client::from_conf(
            builder
                .clone()
                .timeout_config(
                    timeouts()
                        .operation_attempt_timeout(limits.small_request)
                        .build(),
                )
                .build(),
        );
        let presigner = match &config.s3_public_endpoint {
            Some(public) => Client::from_conf(builder.endpoint_url(public).build()),
            None => client.clone(),
        };
        wait_for_bucket(&small, bucket, Duration::from_secs(config.s3_wait_secs)).await?;
        Ok(Self {
            client,
            small,
            limits,
            presigner,
            bucket: bucket.to_owned(),
        })
    }

    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> StorageResult<()> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| StorageError(format!("reading upload: {e}")))?
            .len();
        if size > MULTIPART_ABOVE {
            return self
                .put_file_in_parts(key, path, content_type, PART_SIZE)
                .await;
        }
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| sdk("reading upload", e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .customize()
            .config_override(upload_limit(size))
            .send()
            .await
            .map_err(|e| sdk("uploading object", e))?;
        Ok(())
    }

    /// Uploads the file at `path` in parts of `part_size` bytes (S3: 5 MiB or more, but the
    /// last; at most 10,000 parts), each part with its own time limit. On failure the upload
    /// is aborted, so no parts are left stored.
    pub async fn put_file_in_parts(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
        part_size: u64,
    ) -> StorageResult<()> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| StorageError(format!("reading upload: {e}")))?
            .len();
        let part_size = part_size.max(1);
        if size.div_ceil(part_size) > MAX_PARTS {
            return Err(StorageError(format!(
                "uploading object: {size} bytes need more than {MAX_PARTS} parts of {part_size}"
            )));
        }
        let created = self
            .small
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| sdk("starting a multipart upload", e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError("starting a multipart upload: no upload id".into()))?
            .to_owned();
        // Aborted however this ends without completing: on an error below, and when the
        // caller stops waiting (a cancelled job drops its upload midway).
        let mut pending = PendingUpload {
            client: self.small.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        let uploaded = self
            .upload_parts(key, path, &upload_id, size, part_size)
            .await;
        let completed = match uploaded {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .customize()
                .config_override(upload_limit(0))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk("completing a multipart upload", e)),
            Err(err) => Err(err),
        };
        if completed.is_ok() {
            pending.upload_id = None;
        }
        completed
    }

    async fn upload_parts(
        &self,
        key: &str,
        path: &Path,
        upload_id: &str,
        size: u64,
        part_size: u64,
    ) -> StorageResult<Vec<CompletedPart>> {
        let mut parts = Vec::new();
        let mut offset = 0;
        let mut number: i32 = 1;
        // An empty file is one empty part.
        while offset < size || parts.is_empty() {
            let length = part_size.min(size - offset);
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(length))
                .build()
                .await
                .map_err(|e| sdk("reading upload", e))?;
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .customize()
                .config_override(upload_limit(length))
                .send()
                .await
                .map_err(|e| sdk("uploading a part", e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
            offset += length;
            number += 1;
        }
        Ok(parts)
    }

    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> StorageResult<()> {
        let size = bytes.len() as u64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .customize()
            .config_override(upload_limit(size))
            .send()
            .await
            .map_err(|e| sdk("uploading object", e))?;
        Ok(())
    }

    pub async fn get_to_file(&self, key: &str, path: &Path) -> StorageResult<()> {
        let object = self
            .small
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk("downloading object", e))?;
        let mut body = object.body;
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| sdk("creating download", e))?;
        loop {
            let chunk = tokio::time::timeout(self.limits.stall, body.try_next())
                .await
                .map_err(|_| {
                    StorageError(format!(
                        "downloading object: nothing arrived for {} ms",
                        self.limits.stall.as_millis()
                    ))
                })?
                .map_err(|e| sdk("downloading object", e))?;
            let Some(chunk) = chunk else { break };
            file.write_all(&chunk)
                .await
                .map_err(|e| sdk("writing download", e))?;
        }
        file.flush().await.map_err(|e| sdk("writing download", e))?;
        Ok(())
    }

    pub async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        match self
            .small
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(ObjectInfo {
                size: head
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                content_type: head.content_type().map(str::to_owned),
                modified: head
                    .last_modified()
                    .and_then(|at| chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())),
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(sdk("reading object metadata", err)),
        }
    }

    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        self.small
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk("deleting object", e))?;
        Ok(())
    }

    pub async fn presign_get(&self, key: &str, ttl: Duration) -> StorageResult<String> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| sdk("presigning", e))?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sdk("presigning download", e))?;
        Ok(request.uri().to_owned())
    }

    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> StorageResult<PresignedPut> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| sdk("presigning", e))?;
        let request = self
            .presigner
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            // Signed: the store refuses a body of another length.
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            // Write-once: the link cannot replace what was uploaded through it (a video
            // checked and processed, an asset a render read).
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(|e| sdk("presigning upload", e))?;
        let headers: BTreeMap<String, String> = request
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect();
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service that answers the bucket check, then accepts requests and never answers them,
    /// or starts a download and stops sending: each request fails instead of hanging.
    #[tokio::test]
    async fn a_service_that_stops_answering_fails_requests_instead_of_hanging() {
        use axum::{body::Body, http::Uri, response::Response};
        let app = axum::Router::new().fallback(|uri: Uri| async move {
            let response = Response::builder();
            match uri.path().trim_end_matches('/') {
                "/bucket" => response.body(Body::empty()),
                "/bucket/stalled" => {
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"some bytes"))
                    });
                    let never = futures_util::stream::pending();
                    response
                        .header("content-length", "1000")
                        .body(Body::from_stream(futures_util::StreamExt::chain(
                            first, never,
                        )))
                }
                _ => {
                    std::future::pending::<()>().await;
                    response.body(Body::empty())
                }
            }
            .expect("response")
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = Config::embedded(std::env::temp_dir());
        config.s3_endpoint = Some(endpoint);
        config.s3_force_path_style = true;
        config.s3_access_key_id = Some("key".to_owned());
        config.s3_secret_access_key = Some("secret".to_owned());
        let limits = Limits {
            connect: Duration::from_secs(5),
            small_request: Duration::from_millis(200),
            stall: Duration::from_millis(300),
        };
        let store = S3Store::connect_within(&config, "bucket", limits)
            .await
            .expect("the bucket answers");
        let within = Duration::from_secs(30);
        let head = tokio::time::timeout(within, store.head("silent"))
            .await
            .expect("the HEAD gave up");
        assert!(head.is_err(), "{head:?}");
        let deleted = tokio::time::timeout(within, store.delete("silent"))
            .await
            .expect("the DELETE gave up");
        assert!(deleted.is_err(), "{deleted:?}");
        let dir = tempfile::tempdir().expect("dir");
        let got = tokio::time::timeout(within, store.get_to_file("stalled", &dir.path().join("f")))
            .await
            .expect("the download gave up");
        let err = got.expect_err("a stalled body fails");
        assert!(err.0.contains("nothing arrived for 300 ms"), "{err}");
    }

    fn config_for(endpoint: String) -> Config {
        let mut config = Config::embedded(std::env::temp_dir());
        config.s3_endpoint = Some(endpoint);
        config.s3_force_path_style = true;
        config.s3_access_key_id = Some("key".to_owned());
        config.s3_secret_access_key = Some("secret".to_owned());
        config
    }

    /// Started together (compose, a pod), the server may look for its bucket before the S3
    /// service listens: it waits for it, as for the database. A service that answers and
    /// refuses is not waited for.
    #[tokio::test]
    async fn the_bucket_is_waited_for_until_the_service_listens_but_a_refusal_ends_it() {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        let asked = Arc::new(AtomicUsize::new(0));
        let answering = |status: u16, asked: Arc<AtomicUsize>| {
            axum::Router::new().fallback(move || {
                asked.fetch_add(1, Ordering::SeqCst);
                async move { axum::http::StatusCode::from_u16(status).expect("status") }
            })
        };

        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = free.local_addr().expect("addr");
        drop(free);
        let mut config = config_for(format!("http://{address}"));
        config.s3_wait_secs = 600;
        let connecting =
            tokio::spawn(async move { S3Store::connect(&config, "bucket").await.map(|_| ()) });
        // Refused for a while: the connect goes on trying.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!connecting.is_finished(), "gave up on a service not up yet");
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .expect("rebind");
        let app = answering(200, asked.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        connecting
            .await
            .expect("task")
            .expect("the bucket answers once the service is up");
        assert!(asked.load(Ordering::SeqCst) >= 1);

        let refused = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut config = config_for(format!("http://{}", listener.local_addr().expect("addr")));
        config.s3_wait_secs = 10;
        let app = answering(403, refused.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let err = S3Store::connect(&config, "bucket")
            .await
            .err()
            .expect("403 ends the wait");
        assert!(err.to_string().contains("403 Forbidden"), "{err}");
        assert_eq!(refused.load(Ordering::SeqCst), 1, "asked again after a 403");

        // No credentials anywhere: nothing is sent, and waiting would not find any.
        let unasked = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut config = config_for(format!("http://{}", listener.local_addr().expect("addr")));
        config.s3_access_key_id = None;
        config.s3_secret_access_key = None;
        config.s3_wait_secs = 3600;
        let app = answering(200, unasked.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        // The AWS chain would find credentials in these; none is set for the tests.
        for variable in [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            assert!(std::env::var_os(variable).is_none(), "{variable} is set");
        }
        let connected =
            tokio::time::timeout(Duration::from_secs(60), S3Store::connect(&config, "bucket"))
                .await
                .expect("a missing credential is not waited for");
        assert!(connected.is_err());
        assert_eq!(unasked.load(Ordering::SeqCst), 0);
    }
}

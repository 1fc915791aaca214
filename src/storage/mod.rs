//! Object storage: one interface, two backends.
//!
//! - **S3** (aws-sdk-s3): any S3-protocol service — AWS, R2, MinIO — configured by `S3_*`.
//! - **Local**: a folder (the embedded default, `{data dir}/objects`). Its presigned URLs are
//!   HMAC-signed, expire, and are served by this app at `/objects/{key}`.
//!
//! Keys are plain relative paths (`outputs/{jobId}/movie.mp4`); presigned URLs live
//! [`PRESIGN_TTL`] unless asked otherwise.

pub mod deferred;
mod local;
pub mod routes;
pub mod s3;

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

pub use local::{LocalStore, SignedRequest, WorkFile};
pub use s3::S3Store;

use crate::config::Config;

/// How long presigned URLs work.
pub const PRESIGN_TTL: Duration = Duration::from_secs(600);

/// A storage failure. The detail is for logs; clients get a generic message.
#[derive(Debug, Clone)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StorageError {}

impl From<StorageError> for crate::error::AppError {
    fn from(err: StorageError) -> Self {
        crate::error::AppError::internal("storage", err.0)
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Size and type of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    /// When it was last written, where storage says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A presigned upload: the client sends `PUT url` with `headers`.
#[derive(Debug, Clone)]
pub struct PresignedPut {
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// The configured object store. Cheap to clone.
#[derive(Clone)]
pub enum Storage {
    Local(Arc<LocalStore>),
    S3(Arc<S3Store>),
}

/// Checks an object key: relative, no empty, `.` or `..` segments, at most 1024 bytes.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key
            .split('/')
            // 255 bytes: the longest file name most file systems hold.
            .all(|part| !part.is_empty() && part.len() <= 255 && part != "." && part != "..")
        && !key.chars().any(|c| c.is_control() || c == '\\')
}

/// `config` with the storage settings `STORAGE_URL` gives (`s3://bucket?endpoint=…&region=…
/// &force_path_style=…&public_endpoint=…` or `file:///path`). It replaces the separate
/// settings, so setting both is refused rather than merged: an `S3_ENDPOINT` left over from
/// a MinIO would otherwise still apply to an `s3://` URL meant for AWS.
fn with_storage_url(config: &Config, url: &str) -> anyhow::Result<Config> {
    let defaults = Config::embedded("/");
    anyhow::ensure!(
        config.s3_bucket.is_none()
            && config.storage_dir.is_none()
            && config.s3_endpoint.is_none()
            && config.s3_public_endpoint.is_none()
            && config.s3_region == defaults.s3_region
            && config.s3_force_path_style == defaults.s3_force_path_style,
        "STORAGE_URL replaces S3_BUCKET, S3_ENDPOINT, S3_PUBLIC_ENDPOINT, S3_REGION, \
         S3_FORCE_PATH_STYLE and REELGRAPH_STORAGE_DIR: set one or the other (the S3 \
         credentials stay separate settings)"
    );
    let parsed =
        url::Url::parse(url).map_err(|e| anyhow::anyhow!("STORAGE_URL is not a URL ({e})"))?;
    // Credentials in the URL were dropped (the AWS chain's used instead), and a URL is shown
    // where secrets are not (logs, process lists).
    anyhow::ensure!(
        parsed.username().is_empty() && parsed.password().is_none(),
        "STORAGE_URL carries credentials: set them in S3_ACCESS_KEY_ID and \
         S3_SECRET_ACCESS_KEY instead"
    );
    let mut config = config.clone();
    match parsed.scheme() {
        "file" => {
            anyhow::ensure!(
                parsed.query().is_none() && parsed.host_str().is_none_or(str::is_empty),
                "STORAGE_URL file:// takes an absolute path and nothing else: file:///var/lib/reelgraph/objects"
            );
            let dir = parsed
                .to_file_path()
                .map_err(|()| anyhow::anyhow!("STORAGE_URL {url:?} is not a folder path"))?;
            anyhow::ensure!(
                dir != Path::new("/"),
                "STORAGE_URL file:// needs a folder: file:///var/lib/reelgraph/objects"
            );
            config.storage_dir = Some(dir);
        }
        "s3" => {
            let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                anyhow::anyhow!("STORAGE_URL s3:// needs a bucket: s3://my-bucket")
            })?;
            anyhow::ensure!(
                matches!(parsed.path(), "" | "/"),
                "STORAGE_URL: objects go at the bucket's root; {:?} after the bucket is not supported",
                parsed.path()
            );
            config.s3_bucket = Some(bucket.to_owned());
            for (name, value) in parsed.query_pairs() {
                match name.as_ref() {
                    "endpoint" => config.s3_endpoint = Some(value.into_owned()),
                    "public_endpoint" => config.s3_public_endpoint = Some(value.into_owned()),
                    "region" => config.s3_region = value.into_owned(),
                    "force_path_style" => {
                        config.s3_force_path_style = match value.as_ref() {
                            "true" => true,
                            "false" => false,
                            other => anyhow::bail!(
                                "STORAGE_URL force_path_style must be true or false, not {other:?}"
                            ),
                        }
                    }
                    other => anyhow::bail!(
                        "STORAGE_URL: unknown setting {other:?} (endpoint, public_endpoint, \
                         region and force_path_style are known)"
                    ),
                }
            }
        }
        other => anyhow::bail!("STORAGE_URL must be s3://… or file:///…, not {other}://"),
    }
    Ok(config)
}

impl Storage {
    /// S3 when `S3_BUCKET` is set, else the local folder. With PostgreSQL (several processes,
    /// possibly on several hosts) a local folder must be chosen explicitly.
    pub async fn from_config(
        config: &Config,
        signing_key: [u8; 32],
        public_url: &str,
    ) -> anyhow::Result<Self> {
        let resolved;
        let config = match &config.storage_url {
            Some(url) => {
                resolved = with_storage_url(config, url)?;
                &resolved
            }
            None => config,
        };
        if let Some(bucket) = &config.s3_bucket {
            return Ok(Self::S3(Arc::new(S3Store::connect(config, bucket).await?)));
        }
        let dir = match &config.storage_dir {
            Some(dir) => dir.clone(),
            None if config.is_postgres() => anyhow::bail!(
                "no object storage configured. With PostgreSQL set S3_BUCKET (and S3_ENDPOINT, S3_REGION, \
                 credentials) for S3/MinIO/R2, or REELGRAPH_STORAGE_DIR to a folder every process shares \
                 (or STORAGE_URL: s3://bucket?endpoint=… or file:///path)"
            ),
            None => config.data_dir.join("objects"),
        };
        Ok(Self::Local(Arc::new(LocalStore::new(
            dir,
            signing_key,
            public_url,
        )?)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::S3(_) => "s3",
        }
    }

    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> StorageResult<()> {
        check(key)?;
        match self {
            Self::Local(s) => s.put_file(key, path).await,
            Self::S3(s) => s.put_file(key, path, content_type).await,
        }
    }

    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> StorageResult<()> {
        check(key)?;
        match self {
            Self::Local(s) => s.put_bytes(key, &bytes).await,
            Self::S3(s) => s.put_bytes(key, bytes, content_type).await,
        }
    }

    /// Downloads an object into `path`.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> StorageResult<()> {
        check(key)?;
        match self {
            Self::Local(s) => s.get_to_file(key, path).await,
            Self::S3(s) => s.get_to_file(key, path).await,
        }
    }

    /// `None` when there is no such object.
    pub async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        check(key)?;
        match self {
            Self::Local(s) => s.head(key).await,
            Self::S3(s) => s.head(key).await,
        }
    }

    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        check(key)?;
        match self {
            Self::Local(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// Removes what writes a stopped process left half-done (local storage: work files
    /// untouched for `idle`; S3 keeps nothing of a single PUT that did not finish, and a
    /// multipart upload that does not finish is aborted, unless the process itself stops:
    /// then the bucket's lifecycle rule for incomplete multipart uploads removes its parts).
    /// How many.
    pub async fn sweep_incoming(&self, idle: Duration) -> StorageResult<usize> {
        match self {
            Self::Local(s) => s.sweep_incoming(idle).await,
            Self::S3(_) => Ok(0),
        }
    }

    /// A URL that downloads the object for `ttl`.
    pub async fn presign_get(&self, key: &str, ttl: Duration) -> StorageResult<String> {
        check(key)?;
        match self {
            Self::Local(s) => Ok(s.presign("GET", key, ttl, None, None)),
            Self::S3(s) => s.presign_get(key, ttl).await,
        }
    }

    /// A URL that uploads the object for `ttl`, with the headers the client must send. The
    /// upload is `size` bytes: a body of any other length is refused (locally a longer one as
    /// it is written, a shorter one at its end; S3 signs the length), so a link asked for a
    /// small file cannot fill the storage, nor store part of one.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> StorageResult<PresignedPut> {
        check(key)?;
        match self {
            Self::Local(s) => Ok(PresignedPut {
                url: s.presign("PUT", key, ttl, Some(content_type), Some(size)),
                headers: BTreeMap::from([("content-type".to_owned(), content_type.to_owned())]),
            }),
            Self::S3(s) => s.presign_put(key, content_type, size, ttl).await,
        }
    }
}

fn check(key: &str) -> StorageResult<()> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(StorageError(format!("invalid object key {key:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(url: &str) -> Result<Config, String> {
        with_storage_url(&Config::embedded("/tmp/reelgraph-test"), url).map_err(|e| e.to_string())
    }

    #[test]
    fn an_s3_url_sets_every_s3_setting() {
        let config = resolve(
            "s3://media?endpoint=http%3A%2F%2Fminio%3A9000&public_endpoint=http://localhost:9000\
             &region=eu-west-1&force_path_style=true",
        )
        .expect("valid");
        assert_eq!(config.s3_bucket.as_deref(), Some("media"));
        assert_eq!(config.s3_endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(
            config.s3_public_endpoint.as_deref(),
            Some("http://localhost:9000")
        );
        assert_eq!(config.s3_region, "eu-west-1");
        assert!(config.s3_force_path_style);
        let plain = resolve("s3://media").expect("valid");
        assert_eq!(
            (
                plain.s3_endpoint,
                plain.s3_region.as_str(),
                plain.s3_force_path_style
            ),
            (None, "us-east-1", false)
        );
        // Credentials go in their own settings; the error does not repeat them.
        let err = resolve("s3://KEY:SECRET@media").expect_err("credentials in the URL");
        assert!(err.contains("carries credentials"), "{err}");
        assert!(!err.contains("SECRET@"), "{err}");
    }

    #[test]
    fn a_file_url_sets_the_folder() {
        let config = resolve("file:///var/lib/reelgraph%20objects").expect("valid");
        assert_eq!(
            config.storage_dir.as_deref(),
            Some(Path::new("/var/lib/reelgraph objects"))
        );
        assert_eq!(config.s3_bucket, None);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("objects", "is not a URL"),
            ("gs://bucket", "must be s3://… or file:///…, not gs://"),
            ("s3://", "needs a bucket"),
            ("s3://media/prefix", "\"/prefix\" after the bucket"),
            ("s3://media?regoin=x", "unknown setting \"regoin\""),
            ("s3://media?force_path_style=yes", "must be true or false"),
            ("file:///", "needs a folder"),
            ("file:///x?y=1", "absolute path and nothing else"),
        ];
        for (url, expected) in cases {
            let err = resolve(url).expect_err(url);
            assert!(err.contains(expected), "{url}: {err}");
        }
        let mut both = Config::embedded("/tmp/reelgraph-test");
        both.s3_bucket = Some("media".into());
        let err = with_storage_url(&both, "s3://other").expect_err("both");
        assert!(err.to_string().contains("one or the other"), "{err}");
        // A separate S3 setting left over is refused too, not merged into the URL's.
        let leftovers: [fn(&mut Config); 4] = [
            |c| c.s3_endpoint = Some("http://minio:9000".into()),
            |c| c.s3_public_endpoint = Some("http://localhost:9000".into()),
            |c| c.s3_region = "eu-west-1".into(),
            |c| c.s3_force_path_style = true,
        ];
        for leftover in leftovers {
            let mut config = Config::embedded("/tmp/reelgraph-test");
            leftover(&mut config);
            let err = with_storage_url(&config, "s3://other").expect_err("left over");
            assert!(err.to_string().contains("S3_ENDPOINT"), "{err}");
        }
    }
}

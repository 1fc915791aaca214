//! The local-folder backend and its HMAC-signed URLs.

use std::{
    path::{Path, PathBuf},
    sync::RwLock,
    time::Duration,
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{ObjectInfo, StorageError, StorageResult};

type HmacSha256 = Hmac<Sha256>;

pub struct LocalStore {
    root: PathBuf,
    /// Signs presigned URLs (derived from the server secret).
    key: [u8; 32],
    /// Where this app is reachable, for the URLs it signs.
    public_url: RwLock<String>,
}

/// The parts of a presigned request that the signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub key: &'a str,
    pub expires: i64,
    pub content_type: Option<&'a str>,
    /// An upload's exact size in bytes (PUT only): the body may not be longer.
    pub size: Option<u64>,
    pub signature: &'a str,
}

/// What a signature covers.
fn signed_text(
    method: &str,
    key: &str,
    expires: i64,
    content_type: Option<&str>,
    size: Option<u64>,
) -> String {
    let mut text = format!("{method}\n{key}\n{expires}\n{}", content_type.unwrap_or(""));
    if let Some(size) = size {
        text.push_str(&format!("\n{size}"));
    }
    text
}

fn io(context: &str, err: std::io::Error) -> StorageError {
    StorageError(format!("{context}: {err}"))
}

/// A work file beside an object (`*.part-*`, `*.upload-*`), removed when dropped: whether its
/// write fails, or the request writing it is dropped because its client hung up, it never
/// stays behind. Once moved into place there is nothing left to remove.
pub struct WorkFile(PathBuf);

impl WorkFile {
    pub fn new(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkFile {
    fn drop(&mut self) {
        // Usually already moved: then NotFound, which is fine.
        let _ = std::fs::remove_file(&self.0);
    }
}

impl LocalStore {
    pub fn new(root: PathBuf, key: [u8; 32], public_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root)
            .map_err(|e| anyhow::anyhow!("creating the object folder {}: {e}", root.display()))?;
        // A folder this process cannot write would fail every upload and render later, one by
        // one, behind a healthy /healthz: find out now.
        let probe = root.join(format!(".write-check-{}", uuid::Uuid::now_v7().simple()));
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|e| {
                anyhow::anyhow!("the object folder {} is not writable: {e}", root.display())
            })?;
        Ok(Self {
            root,
            key,
            public_url: RwLock::new(public_url.trim_end_matches('/').to_owned()),
        })
    }

    /// Updates the base of signed URLs (once the listener's port is known).
    pub fn set_public_url(&self, url: &str) {
        if let Ok(mut current) = self.public_url.write() {
            *current = url.trim_end_matches('/').to_owned();
        }
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    async fn prepare(&self, key: &str) -> StorageResult<(PathBuf, WorkFile)> {
        let path = self.path_of(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("creating folder", e))?;
        }
        let tmp = path.with_extension(format!("part-{}", uuid::Uuid::now_v7().simple()));
        Ok((path, WorkFile::new(tmp)))
    }

    /// Writes atomically: a reader sees the old object or the whole new one.
    pub async fn put_file(&self, key: &str, source: &Path) -> StorageResult<()> {
        let (path, tmp) = self.prepare(key).await?;
        tokio::fs::copy(source, tmp.path())
            .await
            .map_err(|e| io("copying object", e))?;
        tokio::fs::rename(tmp.path(), &path)
            .await
            .map_err(|e| io("storing object", e))
    }

    pub async fn put_bytes(&self, key: &str, bytes: &[u8]) -> StorageResult<()> {
        let (path, tmp) = self.prepare(key).await?;
        tokio::fs::write(tmp.path(), bytes)
            .await
            .map_err(|e| io("writing object", e))?;
        tokio::fs::rename(tmp.path(), &path)
            .await
            .map_err(|e| io("storing object", e))
    }

    /// Moves an already written file into place (uploads stream to a temp file first), unless
    /// an object is there already: presigned uploads are write-once, as S3's `If-None-Match:
    /// *` makes them there. Returns whether it was stored; `source` is gone either way.
    pub async fn put_moved_new(&self, key: &str, source: &Path) -> StorageResult<bool> {
        let (path, _) = self.prepare(key).await?;
        // A hard link fails if the name exists, in one step.
        let linked = tokio::fs::hard_link(source, &path).await;
        let stored = match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            // No hard links on this file system: check, then move.
            Err(_) if tokio::fs::try_exists(&path).await.unwrap_or(true) => Ok(false),
            Err(_) => {
                return tokio::fs::rename(source, &path)
                    .await
                    .map(|()| true)
                    .map_err(|e| io("storing object", e));
            }
        };
        let _ = tokio::fs::remove_file(source).await;
        stored
    }

    pub async fn get_to_file(&self, key: &str, dest: &Path) -> StorageResult<()> {
        tokio::fs::copy(self.path_of(key), dest)
            .await
            .map(|_| ())
            .map_err(|e| io("reading object", e))
    }

    pub async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectInfo {
                size: meta.len(),
                content_type: None,
            })),
            Ok(_) => Ok(None),
            // A key below an object's file (`a.png/b`) names nothing either.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(io("reading object metadata", e)),
        }
    }

    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("deleting object", e)),
            _ => Ok(()),
        }
    }

    fn signature(&self, text: &str) -> String {
        // `new_from_slice` only fails for key lengths HMAC cannot take; 32 bytes always works.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A URL for `method` on `key`, valid for `ttl`; for an upload, of `content_type` and at
    /// most `size` bytes.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        ttl: Duration,
        content_type: Option<&str>,
        size: Option<u64>,
    ) -> String {
        let expires = chrono::Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(600);
        let signature = self.signature(&signed_text(method, key, expires, content_type, size));
        let base = self
            .public_url
            .read()
            .map(|u| u.clone())
            .unwrap_or_default();
        let encoded: Vec<String> = key
            .split('/')
            .map(|p| urlencoding::encode(p).into_owned())
            .collect();
        let size = size.map(|n| format!("&size={n}")).unwrap_or_default();
        format!(
            "{base}/objects/{}?expires={expires}{size}&signature={signature}",
            encoded.join("/")
        )
    }

    /// Whether a presigned request is genuine and unexpired.
    pub fn verify(&self, request: &SignedRequest<'_>) -> bool {
        if request.expires < chrono::Utc::now().timestamp() {
            return false;
        }
        let Ok(given) = hex::decode(request.signature) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        mac.update(
            signed_text(
                request.method,
                request.key,
                request.expires,
                request.content_type,
                request.size,
            )
            .as_bytes(),
        );
        mac.verify_slice(&given).is_ok()
    }
}

//! The local-folder backend and its HMAC-signed URLs.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Mutex, RwLock},
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
    /// Keys an upload is being written to now ([`LocalStore::begin_upload`]).
    uploading: Mutex<HashSet<String>>,
}

/// An upload being written to its key; the key is free again when it is dropped.
pub struct Uploading<'a> {
    store: &'a LocalStore,
    key: String,
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        if let Ok(mut keys) = self.store.uploading.lock() {
            keys.remove(&self.key);
        }
    }
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

/// Flushes a written file's data to the disk.
pub async fn sync_file(path: &Path) -> StorageResult<()> {
    // Opened for writing: Windows flushes only such handles.
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .await
        .map_err(|e| io("syncing object", e))?;
    file.sync_all().await.map_err(|e| io("syncing object", e))
}

/// Flushes the folder holding `path`, so a file renamed or linked into it is there after a
/// crash too.
#[cfg(unix)]
async fn sync_folder_of(path: &Path) -> StorageResult<()> {
    let Some(folder) = path.parent() else {
        return Ok(());
    };
    let folder = tokio::fs::File::open(folder)
        .await
        .map_err(|e| io("syncing folder", e))?;
    folder.sync_all().await.map_err(|e| io("syncing folder", e))
}

/// Elsewhere a folder cannot be opened as a file; its entries are the file system's to keep.
#[cfg(not(unix))]
async fn sync_folder_of(_path: &Path) -> StorageResult<()> {
    Ok(())
}

/// The folder under the root where objects are written before they are moved into place (on
/// the same file system, so the move is a rename or a hard link). No key names it: keys are
/// made by the server, and none starts with a dot.
const INCOMING: &str = ".incoming";

/// A work file in [`INCOMING`], removed when dropped: whether its write fails, or the request
/// writing it is dropped because its client hung up, it never stays behind. Once moved into
/// place there is nothing left to remove. One a process could not remove (it was killed) is
/// removed by [`LocalStore::sweep_incoming`].
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
            .and_then(|()| std::fs::create_dir_all(root.join(INCOMING)))
            .map_err(|e| {
                anyhow::anyhow!("the object folder {} is not writable: {e}", root.display())
            })?;
        Ok(Self {
            root,
            key,
            public_url: RwLock::new(public_url.trim_end_matches('/').to_owned()),
            uploading: Mutex::new(HashSet::new()),
        })
    }

    /// Claims `key` for one upload at a time: `None` while another is being written to it.
    /// An upload link is write-once, and each PUT streams its whole body to disk before the
    /// object is checked: without this, any number of PUTs at once could each write up to
    /// the link's size.
    pub fn begin_upload(&self, key: &str) -> Option<Uploading<'_>> {
        let mut keys = self.uploading.lock().ok()?;
        keys.insert(key.to_owned()).then(|| Uploading {
            store: self,
            key: key.to_owned(),
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
        Ok((path, self.work_file().await?))
    }

    /// A new work file's name in [`INCOMING`] (the folder made again if it was removed).
    pub async fn work_file(&self) -> StorageResult<WorkFile> {
        let incoming = self.root.join(INCOMING);
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(|e| io("creating folder", e))?;
        Ok(WorkFile::new(
            incoming.join(uuid::Uuid::now_v7().simple().to_string()),
        ))
    }

    /// Writes atomically and durably: a reader sees the old object or the whole new one, and
    /// so does anyone after a crash or a power cut.
    pub async fn put_file(&self, key: &str, source: &Path) -> StorageResult<()> {
        let (path, tmp) = self.prepare(key).await?;
        tokio::fs::copy(source, tmp.path())
            .await
            .map_err(|e| io("copying object", e))?;
        sync_file(tmp.path()).await?;
        tokio::fs::rename(tmp.path(), &path)
            .await
            .map_err(|e| io("storing object", e))?;
        sync_folder_of(&path).await
    }

    pub async fn put_bytes(&self, key: &str, bytes: &[u8]) -> StorageResult<()> {
        let (path, tmp) = self.prepare(key).await?;
        tokio::fs::write(tmp.path(), bytes)
            .await
            .map_err(|e| io("writing object", e))?;
        sync_file(tmp.path()).await?;
        tokio::fs::rename(tmp.path(), &path)
            .await
            .map_err(|e| io("storing object", e))?;
        sync_folder_of(&path).await
    }

    /// Removes work files untouched for `idle` (an upload still streaming keeps touching its
    /// own): those of a process killed before it could move or remove them. How many.
    pub async fn sweep_incoming(&self, idle: Duration) -> StorageResult<usize> {
        let incoming = self.root.join(INCOMING);
        let mut entries = match tokio::fs::read_dir(&incoming).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io("reading the work folder", e)),
        };
        let mut removed = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io("reading the work folder", e))?
        {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let idle_for = meta
                .modified()
                .ok()
                .and_then(|at| at.elapsed().ok())
                .unwrap_or_default();
            if meta.is_file()
                && idle_for >= idle
                && tokio::fs::remove_file(entry.path()).await.is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Moves an already written file into place (uploads stream to a temp file first), unless
    /// an object is there already: presigned uploads are write-once, as S3's `If-None-Match:
    /// *` makes them there. Returns whether it was stored; `source` is gone either way.
    /// `source` must have been synced to disk.
    pub async fn put_moved_new(&self, key: &str, source: &Path) -> StorageResult<bool> {
        let path = self.path_of(key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("creating folder", e))?;
        }
        // A hard link fails if the name exists, in one step.
        let linked = tokio::fs::hard_link(source, &path).await;
        let stored = match linked {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            // No hard links on this file system: check, then move.
            Err(_) if tokio::fs::try_exists(&path).await.unwrap_or(true) => false,
            Err(_) => {
                tokio::fs::rename(source, &path)
                    .await
                    .map_err(|e| io("storing object", e))?;
                sync_folder_of(&path).await?;
                return Ok(true);
            }
        };
        let _ = tokio::fs::remove_file(source).await;
        if stored {
            sync_folder_of(&path).await?;
        }
        Ok(stored)
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
                modified: meta.modified().ok().map(chrono::DateTime::from),
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

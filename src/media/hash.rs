//! SHA-256 of uploads, streamed in chunks so that a 5 GiB file never sits in memory.

use std::{io::Read, path::Path};

use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError};

/// Bytes hashed per read.
const CHUNK: usize = 1 << 20;

/// Lower-case hex SHA-256 of a file. Runs on the blocking pool: hashing gigabytes would
/// otherwise stall the async workers.
pub async fn file_sha256(path: &Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0_u8; CHUNK];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Lower-case hex SHA-256 of a stored object. The local backend's file is read in place;
/// other backends' objects go through a temporary file, since [`Storage`] reads whole
/// objects to files rather than streams.
pub async fn object_sha256(storage: &Storage, key: &str) -> Result<String, StorageError> {
    let hashing = |e: std::io::Error| StorageError(format!("hashing {key}: {e}"));
    match storage {
        Storage::Local(store) => file_sha256(&store.path_of(key)).await.map_err(hashing),
        Storage::S3(_) => {
            let dir = tempfile::Builder::new()
                .prefix(crate::jobs::work_folders::HASH_PREFIX)
                .tempdir()
                .map_err(hashing)?;
            let path = dir.path().join("object");
            storage.get_to_file(key, &path).await?;
            file_sha256(&path).await.map_err(hashing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_hash_matches_the_one_shot_digest_across_chunks() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("written");
        assert_eq!(
            file_sha256(&path).await.expect("hashed"),
            hex::encode(Sha256::digest(&bytes))
        );
    }
}

//! The S3 backend (aws-sdk-s3): AWS, R2, MinIO and any other S3-protocol service.

use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::Context;
use aws_sdk_s3::{
    Client,
    config::{Credentials, Region},
    presigning::PresigningConfig,
    primitives::ByteStream,
};

use super::{ObjectInfo, PresignedPut, StorageError, StorageResult};
use crate::config::Config;

pub struct S3Store {
    client: Client,
    /// Signs the links clients use: the same as `client` unless S3_PUBLIC_ENDPOINT names
    /// another address for the service (the host is part of the signature).
    presigner: Client,
    bucket: String,
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

impl S3Store {
    /// Builds the client from the configuration (endpoint, region, path style, credentials —
    /// explicit ones, else the SDK's usual chain) and checks that the bucket answers.
    pub async fn connect(config: &Config, bucket: &str) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(config.s3_region.clone()));
        if let (Some(id), Some(secret)) = (&config.s3_access_key_id, &config.s3_secret_access_key) {
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
        let client = Client::from_conf(builder.clone().build());
        let presigner = match &config.s3_public_endpoint {
            Some(public) => Client::from_conf(builder.endpoint_url(public).build()),
            None => client.clone(),
        };
        client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| sdk("", e))
            .with_context(|| format!("S3 bucket `{bucket}` is not reachable; check S3_BUCKET, S3_ENDPOINT, S3_REGION and the credentials"))?;
        Ok(Self {
            client,
            presigner,
            bucket: bucket.to_owned(),
        })
    }

    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> StorageResult<()> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| sdk("reading upload", e))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| sdk("uploading object", e))?;
        Ok(())
    }

    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> StorageResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk("uploading object", e))?;
        Ok(())
    }

    pub async fn get_to_file(&self, key: &str, path: &Path) -> StorageResult<()> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk("downloading object", e))?;
        let mut body = object.body.into_async_read();
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| sdk("creating download", e))?;
        tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(|e| sdk("downloading object", e))?;
        Ok(())
    }

    pub async fn head(&self, key: &str) -> StorageResult<Option<ObjectInfo>> {
        match self
            .client
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
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(sdk("reading object metadata", err)),
        }
    }

    pub async fn delete(&self, key: &str) -> StorageResult<()> {
        self.client
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

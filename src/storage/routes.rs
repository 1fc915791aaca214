//! `/objects/{key}`: serves the presigned URLs of the local backend — GET downloads (with
//! range requests, so players can seek), PUT uploads (streamed to disk, size-limited).

use axum::{
    body::Body,
    extract::{Path, Query, Request, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::TryStreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

use super::{SignedRequest, Storage, valid_key};

/// Largest upload accepted through a presigned PUT.
pub const MAX_UPLOAD_BYTES: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Deserialize)]
pub struct Signature {
    expires: i64,
    /// An upload's signed size.
    size: Option<u64>,
    signature: String,
}

/// A refusal sent before the request's body was read to its end: the connection is closed
/// after it (`Connection: close`), so that the client does not send its next request on a
/// connection still carrying the rest of this body.
fn refuse_unread(status: StatusCode, message: &'static str) -> Response {
    let mut response = refuse(status, message);
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

const INVALID_LINK: &str = "this link is invalid or has expired";

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn content_type_of(key: &str) -> &'static str {
    match key
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("vtt") => "text/vtt; charset=utf-8",
        Some("srt") => "application/x-subrip; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// GET a presigned object.
pub async fn get_object(
    State(storage): State<Storage>,
    Path(key): Path<String>,
    sig: Result<Query<Signature>, QueryRejection>,
    request: Request,
) -> Response {
    let Storage::Local(store) = &storage else {
        return refuse(StatusCode::NOT_FOUND, "not found");
    };
    // A link cut short, or no link at all: said as an expired one is (not in axum's words).
    let Ok(Query(sig)) = sig else {
        return refuse(StatusCode::FORBIDDEN, INVALID_LINK);
    };
    let signed = SignedRequest {
        method: "GET",
        key: &key,
        expires: sig.expires,
        content_type: None,
        size: None,
        signature: &sig.signature,
    };
    if !valid_key(&key) || !store.verify(&signed) {
        return refuse(StatusCode::FORBIDDEN, INVALID_LINK);
    }
    let path = store.path_of(&key);
    if !path.is_file() {
        return refuse(StatusCode::NOT_FOUND, "not found");
    }
    let serve = tower_http::services::ServeFile::new_with_mime(
        path,
        &content_type_of(&key).parse().unwrap_or(mime_octet()),
    );
    match serve.oneshot(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            // Stored objects are media and user uploads: never sniffed into something a
            // browser would run, never shown as a page of this origin.
            let headers = response.headers_mut();
            headers.insert(
                axum::http::header::X_CONTENT_TYPE_OPTIONS,
                axum::http::HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                axum::http::header::CONTENT_SECURITY_POLICY,
                axum::http::HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            response
        }
        Err(err) => {
            tracing::error!(error = %err, "serving an object failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not read the object",
            )
        }
    }
}

fn mime_octet() -> mime::Mime {
    mime::APPLICATION_OCTET_STREAM
}

const ALREADY_UPLOADED: &str =
    "something was already uploaded with this link, and it is not replaced: request a new upload";

/// How long an upload's body may send nothing before it is given up.
const BODY_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// How writing an upload's body ended badly.
enum Written {
    /// The client sent nothing for [`BODY_IDLE`].
    Idle,
    /// Longer than the link allows.
    TooLarge,
    /// Shorter than the size the link was made for.
    TooSmall,
    /// The client's body stopped (it hung up).
    Interrupted,
    /// The server's disk.
    Disk(std::io::Error),
}

const SHORTER: &str = "the upload is shorter than the size this link was made for: nothing was stored, send the whole file";

/// PUT a presigned object: the body is streamed to a temporary file and moved into place
/// only when complete, so a broken upload never leaves half an object.
pub async fn put_object(
    State(storage): State<Storage>,
    Path(key): Path<String>,
    sig: Result<Query<Signature>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Storage::Local(store) = &storage else {
        return refuse(StatusCode::NOT_FOUND, "not found");
    };
    let Ok(Query(sig)) = sig else {
        return refuse_unread(StatusCode::FORBIDDEN, INVALID_LINK);
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let signed = SignedRequest {
        method: "PUT",
        key: &key,
        expires: sig.expires,
        content_type,
        size: sig.size,
        signature: &sig.signature,
    };
    if !valid_key(&key) || !store.verify(&signed) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this link is invalid or has expired (or the content-type differs from the one signed)",
        );
    }
    // At most the size the link was asked for (links made before sizes were signed: 5 GiB).
    let limit = sig.size.unwrap_or(MAX_UPLOAD_BYTES).min(MAX_UPLOAD_BYTES);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return refuse_unread(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the upload is larger than the size this link was made for",
        );
    }
    // Write-once: said before the body is read, and one body at a time.
    let Some(_uploading) = store.begin_upload(&key) else {
        // Worth trying again: the other one may be a connection that died without a word,
        // which holds the link until its body has sent nothing for BODY_IDLE.
        let mut response = refuse_unread(
            StatusCode::CONFLICT,
            "another upload with this link is in progress",
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from(BODY_IDLE.as_secs()),
        );
        return response;
    };
    match store.head(&key).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refuse_unread(StatusCode::PRECONDITION_FAILED, ALREADY_UPLOADED);
        }
        Err(err) => {
            tracing::error!(error = %err, "checking an upload's object failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not store the object",
            );
        }
    }
    // Exactly the size the link was made for, as S3 holds a presigned PUT to its signed
    // `content-length`: a shorter body is refused too (before it is read when it says
    // so; after the write-once answer, which says more).
    if let (Some(expected), Some(declared)) = (sig.size, declared)
        && declared < expected
    {
        return refuse_unread(StatusCode::BAD_REQUEST, SHORTER);
    }
    // Removed however the request ends, dropped mid-body when the client hangs up included.
    let Ok(work) = store.work_file().await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not store the object",
        );
    };
    let temp = work.path();
    let written = async {
        let mut file = tokio::fs::File::create(temp).await.map_err(Written::Disk)?;
        let mut stream = body.into_data_stream();
        let mut size: u64 = 0;
        loop {
            // A client that stops sending holds a connection and a file: not for long.
            let next = tokio::time::timeout(BODY_IDLE, stream.try_next()).await;
            let Some(chunk) = next
                .map_err(|_| Written::Idle)?
                .map_err(|_| Written::Interrupted)?
            else {
                break;
            };
            size += chunk.len() as u64;
            if size > limit {
                return Err(Written::TooLarge);
            }
            file.write_all(&chunk).await.map_err(Written::Disk)?;
        }
        if let Some(expected) = sig.size
            && size < expected
        {
            return Err(Written::TooSmall);
        }
        file.flush().await.map_err(Written::Disk)?;
        // On the disk before it is answered for: a power cut must not leave an upload the
        // client was told is stored empty or cut short.
        file.sync_all().await.map_err(Written::Disk)?;
        Ok(())
    }
    .await;
    match written {
        Ok(()) => {}
        Err(Written::TooLarge) => {
            return refuse_unread(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the upload is larger than the size this link was made for",
            );
        }
        Err(Written::TooSmall) => {
            return refuse(StatusCode::BAD_REQUEST, SHORTER);
        }
        Err(Written::Interrupted) => {
            return refuse(StatusCode::BAD_REQUEST, "the upload was interrupted");
        }
        Err(Written::Idle) => {
            return refuse_unread(
                StatusCode::REQUEST_TIMEOUT,
                "the upload sent nothing for 60 seconds",
            );
        }
        // The server's fault, not the client's: said as such, and logged.
        Err(Written::Disk(err)) => {
            tracing::error!(error = %err, "writing an upload failed");
            return if err.kind() == std::io::ErrorKind::StorageFull {
                refuse(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the server's storage is full",
                )
            } else {
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not store the object",
                )
            };
        }
    }
    match store.put_moved_new(&key, temp).await {
        Ok(true) => StatusCode::OK.into_response(),
        Ok(false) => refuse(StatusCode::PRECONDITION_FAILED, ALREADY_UPLOADED),
        Err(err) => {
            tracing::error!(error = %err, "storing an upload failed");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not store the object",
            )
        }
    }
}

//! The rules of `RequestVideoUploadInput`, checked before anything is written or presigned,
//! each failure naming its input field.

use uuid::Uuid;

use super::graphql::RequestVideoUploadInput;
use crate::{
    error::{AppError, AppResult},
    graphql::parse_id,
};

/// Largest upload accepted: the limit the local backend's PUT route enforces, so a request
/// that passes here never meets a 413 there.
pub const MAX_UPLOAD_BYTES: i64 = crate::storage::routes::MAX_UPLOAD_BYTES as i64;
pub const MAX_FILENAME_CHARS: usize = 255;
pub const MAX_TITLE_CHARS: usize = 200;

/// A checked, normalised upload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub creator_id: Uuid,
    pub filename: String,
    /// The MIME essence, lower case (`video/mp4`): the PUT must send exactly this.
    pub content_type: String,
    pub size_bytes: i64,
    /// Lower-case hex.
    pub sha256: Option<String>,
    pub title: String,
}

/// Checks and normalises `input`; field paths start with `input.`.
pub fn upload_request(input: &RequestVideoUploadInput) -> AppResult<UploadRequest> {
    let creator_id = parse_id("input.creatorId", &input.creator_id)?;

    let filename = input.filename.trim();
    if filename.is_empty() || filename.chars().count() > MAX_FILENAME_CHARS {
        return Err(AppError::bad_input(
            "input.filename",
            format!("must be 1–{MAX_FILENAME_CHARS} characters"),
        ));
    }
    if filename.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "input.filename",
            "must not contain control characters",
        ));
    }

    let content_type = input
        .content_type
        .trim()
        .parse::<mime::Mime>()
        .ok()
        .filter(|m| m.type_() == mime::VIDEO && !m.subtype().as_str().is_empty())
        .map(|m| m.essence_str().to_ascii_lowercase())
        .ok_or_else(|| {
            AppError::bad_input(
                "input.contentType",
                "must be a video MIME type, e.g. video/mp4",
            )
        })?;

    if !(1..=MAX_UPLOAD_BYTES).contains(&input.size_bytes) {
        return Err(AppError::bad_input(
            "input.sizeBytes",
            "must be between 1 byte and 5 GiB (the most one upload carries to S3)",
        ));
    }

    let sha256 = match &input.sha256 {
        None => None,
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
            Some(hex.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(AppError::bad_input(
                "input.sha256",
                "must be the file's SHA-256 as 64 hexadecimal characters",
            ));
        }
    };

    // A client may send the path it read the file from (`C:\Users\jane.doe\Acme\draft.mp4`);
    // `originalFilename` is public, and the folders are the uploader's own business.
    let filename = file_name(filename);
    let title = match input.title.as_deref().map(str::trim) {
        Some(given) if !given.is_empty() => title("input.title", given)?,
        _ => default_title(filename),
    };

    Ok(UploadRequest {
        creator_id,
        filename: filename.to_owned(),
        content_type,
        size_bytes: input.size_bytes,
        sha256,
        title,
    })
}

/// A video title: trimmed, 1–200 characters, no control characters.
pub fn title(field: &str, title: &str) -> AppResult<String> {
    let title = title.trim();
    if crate::graphql::inputs::shows_nothing(title) {
        return Err(AppError::bad_input(field, "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(title.to_owned())
}

/// The last part of a path a client sent as a file name (`season.2/episode.mp4` gives
/// `episode.mp4`, `C:\clips\intro.mov` gives `intro.mov`, `folder/` gives `folder`).
fn file_name(filename: &str) -> &str {
    filename
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or(filename)
        .trim()
}

/// Without a title, the file name without its extension is what the uploader would recognise.
/// A client that sends a path (`season.2/episode.mp4`, `C:\clips\intro.mov`) gets its last
/// part; a dot in a folder name is not an extension.
fn default_title(filename: &str) -> String {
    let name = file_name(filename);
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.trim().is_empty() => stem.trim(),
        _ => name,
    };
    stem.chars().take(MAX_TITLE_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use async_graphql::ID;

    use super::*;

    fn input() -> RequestVideoUploadInput {
        RequestVideoUploadInput {
            creator_id: ID(Uuid::now_v7().to_string()),
            filename: "Holiday.MP4".into(),
            content_type: "Video/MP4; codecs=avc1".into(),
            size_bytes: 1,
            sha256: None,
            title: None,
        }
    }

    fn field_of(input: &RequestVideoUploadInput) -> String {
        match upload_request(input) {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_request_is_normalised() {
        let mut ok = input();
        ok.sha256 = Some("AB".repeat(32));
        let request = upload_request(&ok).expect("valid");
        assert_eq!(request.content_type, "video/mp4");
        assert_eq!(request.sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(request.title, "Holiday");
        assert_eq!(request.filename, "Holiday.MP4");
    }

    #[test]
    fn a_path_sent_as_the_file_name_keeps_its_last_part_only() {
        for (sent, kept) in [
            (
                "C:\\Users\\jane.doe\\Clients\\Acme\\draft3.mp4",
                "draft3.mp4",
            ),
            ("/home/jane/takes/take 2.mov", "take 2.mov"),
            ("season.2/episode.mp4 ", "episode.mp4"),
            ("folder/", "folder"),
        ] {
            let mut given = input();
            given.filename = sent.into();
            let request = upload_request(&given).expect("valid");
            assert_eq!(request.filename, kept, "{sent}");
        }
    }

    #[test]
    fn each_invalid_field_is_named() {
        let mut bad = input();
        bad.filename = " ".into();
        assert_eq!(field_of(&bad), "input.filename");
        bad = input();
        bad.filename = "x".repeat(256);
        assert_eq!(field_of(&bad), "input.filename");
        bad = input();
        bad.content_type = "text/plain".into();
        assert_eq!(field_of(&bad), "input.contentType");
        bad = input();
        bad.content_type = "video".into();
        assert_eq!(field_of(&bad), "input.contentType");
        for size in [0, -1, MAX_UPLOAD_BYTES + 1] {
            bad = input();
            bad.size_bytes = size;
            assert_eq!(field_of(&bad), "input.sizeBytes");
        }
        bad = input();
        bad.sha256 = Some("g".repeat(64));
        assert_eq!(field_of(&bad), "input.sha256");
        bad = input();
        bad.title = Some("t".repeat(201));
        assert_eq!(field_of(&bad), "input.title");
        bad = input();
        bad.creator_id = ID("nope".into());
        assert_eq!(field_of(&bad), "input.creatorId");
    }

    #[test]
    fn limits_are_inclusive() {
        let mut edge = input();
        edge.size_bytes = MAX_UPLOAD_BYTES;
        edge.filename = "é".repeat(255);
        edge.title = Some("é".repeat(200));
        assert!(upload_request(&edge).is_ok());
    }

    #[test]
    fn the_default_title_is_the_file_names_stem_without_folders() {
        assert_eq!(default_title("Holiday.MP4"), "Holiday");
        assert_eq!(default_title("season.2/episode"), "episode");
        assert_eq!(default_title("C:\\clips.v1\\intro.mov"), "intro");
        assert_eq!(default_title("../../etc/passwd"), "passwd");
        assert_eq!(default_title(".profile"), ".profile");
        assert_eq!(default_title("folder/"), "folder");
    }
}

//! Input rules of transcripts, key moments and trims. Every check names the input path it
//! rejects (`segments.3.endTime`), so a client can point at the offending row.
//!
//! Nothing here touches the database: the mutations validate everything first and write only
//! when the whole input is valid, so a rejected call leaves no partial state behind.

use entity::{KeyMomentContentType, key_moment};

use super::mutations::{KeyMomentInput, TranscriptSegmentInput};
use crate::error::{AppError, AppResult};

/// Segments per transcript: about 28 hours of 10-second lines, far beyond any real video, and
/// small enough that one call stays a bounded amount of work.
pub const MAX_SEGMENTS: usize = 10_000;
pub const MAX_SEGMENT_TEXT: usize = 2000;
pub const MAX_SPEAKER: usize = 100;
/// Key moments accepted by one `addKeyMoments` call.
pub const MAX_MOMENTS_PER_CALL: usize = 500;
/// Key moments one video may hold: `detectHighlights` compares each with every other.
pub const MAX_MOMENTS_PER_VIDEO: u64 = 1000;
pub const MAX_TITLE: usize = 200;
pub const MAX_SUMMARY: usize = 2000;
pub const MAX_CATEGORY: usize = 100;
pub const MAX_TAGS: usize = 20;
pub const MAX_TAG: usize = 50;
/// The shortest highlight a trim may leave: anything shorter is too brief to render a short.
pub const MIN_TRIM_SECS: f64 = 3.0;
/// Slack for float arithmetic in the minimum-length check (`10.1 - 7.1` is `2.9999999999999996`).
const EPSILON: f64 = 1e-9;
/// Longest language tag a caption row can store.
const MAX_LANGUAGE: usize = 35;

/// A transcript line, trimmed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub speaker: Option<String>,
}

/// A key moment, trimmed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub start: f64,
    pub end: f64,
    pub title: String,
    pub summary: Option<String>,
    pub topic_category: Option<String>,
    pub topic_tags: Vec<String>,
    pub content_type: Option<KeyMomentContentType>,
}

/// Trims `value` and checks its length in characters. Control characters other than line
/// breaks and tabs are refused: they are invisible in every client and PostgreSQL cannot store
/// NUL at all. Empty (after trimming) is `None`; the caller decides whether that is allowed.
fn text(field: &str, value: &str, max: usize, multiline: bool) -> AppResult<Option<String>> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    crate::graphql::inputs::no_controls(field, value, multiline)?;
    Ok((!crate::graphql::inputs::shows_nothing(value)).then(|| value.to_owned()))
}

fn required_text(field: &str, value: &str, max: usize, multiline: bool) -> AppResult<String> {
    text(field, value, max, multiline)?
        .ok_or_else(|| AppError::bad_input(field, format!("must be 1 to {max} characters")))
}

/// Checks a time range `[start, end)` of the item at `path` against the video's duration.
fn time_range(path: &str, start: f64, end: f64, duration: Option<f64>) -> AppResult<()> {
    if !start.is_finite() || start < 0.0 {
        return Err(AppError::bad_input(
            format!("{path}.startTime"),
            "must be a number of seconds, 0 or more",
        ));
    }
    if !end.is_finite() || end <= start {
        return Err(AppError::bad_input(
            format!("{path}.endTime"),
            "must be greater than startTime",
        ));
    }
    if let Some(duration) = duration.filter(|d| d.is_finite() && *d > 0.0)
        && end > duration
    {
        return Err(AppError::bad_input(
            format!("{path}.endTime"),
            format!("must be within the video's duration ({duration} s)"),
        ));
    }
    // Before the video is probed its duration is unknown; no source video is longer than a
    // day, and a time past that would make highlights (and the minutes a short reserves)
    // absurd.
    if end > MAX_MEDIA_SECS {
        return Err(AppError::bad_input(
            format!("{path}.endTime"),
            format!("must be at most {MAX_MEDIA_SECS} s (24 hours)"),
        ));
    }
    Ok(())
}

/// The longest time a transcript line or key moment may end at.
pub const MAX_MEDIA_SECS: f64 = 24.0 * 3600.0;

/// A whole transcript: lines in order of their start, none overlapping the one before, all
/// inside the video when its duration is known.
pub fn transcript(
    field: &str,
    input: &[TranscriptSegmentInput],
    duration: Option<f64>,
) -> AppResult<Vec<Segment>> {
    if input.len() > MAX_SEGMENTS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_SEGMENTS} segments"),
        ));
    }
    let mut out: Vec<Segment> = Vec::with_capacity(input.len());
    for (i, segment) in input.iter().enumerate() {
        let path = format!("{field}.{i}");
        time_range(&path, segment.start_time, segment.end_time, duration)?;
        if let Some(previous) = out.last() {
            if segment.start_time < previous.start {
                return Err(AppError::bad_input(
                    format!("{path}.startTime"),
                    "segments must be ordered by startTime",
                ));
            }
            if segment.start_time < previous.end {
                return Err(AppError::bad_input(
                    format!("{path}.startTime"),
                    format!(
                        "overlaps the previous segment, which ends at {} s",
                        previous.end
                    ),
                ));
            }
        }
        let text = required_text(
            &format!("{path}.text"),
            &segment.text,
            MAX_SEGMENT_TEXT,
            true,
        )?;
        let speaker = segment
            .speaker
            .as_deref()
            .map(|s| text_field(&format!("{path}.speaker"), s, MAX_SPEAKER))
            .transpose()?
            .flatten();
        out.push(Segment {
            start: segment.start_time,
            end: segment.end_time,
            text,
            speaker,
        });
    }
    Ok(out)
}

/// A single-line optional text.
fn text_field(field: &str, value: &str, max: usize) -> AppResult<Option<String>> {
    text(field, value, max, false)
}

/// New key moments. Unlike transcript lines they may overlap: two topics can share a stretch
/// of the video.
pub fn key_moments(
    field: &str,
    input: &[KeyMomentInput],
    duration: Option<f64>,
) -> AppResult<Vec<Moment>> {
    if input.is_empty() || input.len() > MAX_MOMENTS_PER_CALL {
        return Err(AppError::bad_input(
            field,
            format!("pass 1 to {MAX_MOMENTS_PER_CALL} key moments"),
        ));
    }
    input
        .iter()
        .enumerate()
        .map(|(i, moment)| key_moment(&format!("{field}.{i}"), moment, duration))
        .collect()
}

/// One key moment; errors name its fields under `path`.
pub fn key_moment(path: &str, moment: &KeyMomentInput, duration: Option<f64>) -> AppResult<Moment> {
    time_range(path, moment.start_time, moment.end_time, duration)?;
    Ok(Moment {
        start: moment.start_time,
        end: moment.end_time,
        title: required_text(&format!("{path}.title"), &moment.title, MAX_TITLE, false)?,
        summary: moment
            .summary
            .as_deref()
            .map(|s| text(&format!("{path}.summary"), s, MAX_SUMMARY, true))
            .transpose()?
            .flatten(),
        topic_category: moment
            .topic_category
            .as_deref()
            .map(|c| text_field(&format!("{path}.topicCategory"), c, MAX_CATEGORY))
            .transpose()?
            .flatten(),
        topic_tags: tags(
            &format!("{path}.topicTags"),
            moment.topic_tags.as_deref().unwrap_or_default(),
        )?,
        content_type: moment.content_type,
    })
}

/// Tags, each 1–50 characters, duplicates (ignoring case) dropped keeping the first spelling.
fn tags(field: &str, tags: &[String]) -> AppResult<Vec<String>> {
    if tags.len() > MAX_TAGS {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = required_text(&format!("{field}.{i}"), tag, MAX_TAG, false)?;
        if !out.iter().any(|t| t.to_lowercase() == tag.to_lowercase()) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A trim: absolute seconds inside the key moment, and inside the video when its `duration` is
/// known (a moment added before the probe can run past its end), at least [`MIN_TRIM_SECS`]
/// long.
pub fn trim(
    trim_start: f64,
    trim_end: f64,
    moment: &key_moment::Model,
    duration: Option<f64>,
) -> AppResult<()> {
    let end = match duration.filter(|d| d.is_finite() && *d > 0.0) {
        Some(duration) if duration < moment.end_time => duration,
        _ => moment.end_time,
    };
    if end <= moment.start_time {
        return Err(AppError::bad_input(
            "trimStart",
            format!(
                "the key moment starts at {} s, after the end of the video ({end} s): correct \
                 the key moment",
                moment.start_time
            ),
        ));
    }
    let inside = if end < moment.end_time {
        format!(
            "must be within the key moment and the video ({} s to {end} s)",
            moment.start_time
        )
    } else {
        format!(
            "must be within the key moment ({} s to {} s)",
            moment.start_time, moment.end_time
        )
    };
    if !trim_start.is_finite() || trim_start < moment.start_time {
        return Err(AppError::bad_input("trimStart", inside));
    }
    if !trim_end.is_finite() || trim_end > end {
        return Err(AppError::bad_input("trimEnd", inside));
    }
    if trim_end - trim_start < MIN_TRIM_SECS - EPSILON {
        return Err(AppError::bad_input(
            "trimEnd",
            format!("must be at least {MIN_TRIM_SECS} s after trimStart"),
        ));
    }
    Ok(())
}

/// A BCP-47 language tag such as `en`, `pt-BR` or `zh-Hant-TW`, returned in its canonical
/// case (language lower, script title, region upper) so `en-us` and `en-US` are one track.
/// It becomes part of an object key, so only letters, digits and hyphens get through.
pub fn language(field: &str, tag: &str) -> AppResult<String> {
    let tag = tag.trim();
    let invalid = || {
        AppError::bad_input(
            field,
            "must be a language tag such as `en`, `de` or `pt-BR`",
        )
    };
    if tag.is_empty() || tag.len() > MAX_LANGUAGE {
        return Err(invalid());
    }
    let mut out = Vec::new();
    for (i, part) in tag.split('-').enumerate() {
        let valid = !part.is_empty()
            && part.len() <= 8
            && part.chars().all(|c| c.is_ascii_alphanumeric())
            && (i > 0 || (part.len() >= 2 && part.chars().all(|c| c.is_ascii_alphabetic())));
        if !valid {
            return Err(invalid());
        }
        let canonical = if i == 0 {
            part.to_ascii_lowercase()
        } else if part.len() == 2 && part.chars().all(|c| c.is_ascii_alphabetic()) {
            part.to_ascii_uppercase()
        } else if part.len() == 4 && part.chars().all(|c| c.is_ascii_alphabetic()) {
            let lower = part.to_ascii_lowercase();
            let (first, rest) = lower.split_at(1);
            format!("{}{rest}", first.to_ascii_uppercase())
        } else {
            part.to_ascii_lowercase()
        };
        out.push(canonical);
    }
    Ok(out.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: f64, end: f64, text: &str) -> TranscriptSegmentInput {
        TranscriptSegmentInput {
            start_time: start,
            end_time: end,
            text: text.to_owned(),
            speaker: None,
        }
    }

    fn field_of(result: AppResult<Vec<Segment>>) -> String {
        match result {
            Err(AppError::BadInput { field, .. }) => field,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn transcript_errors_name_the_segment_and_field() {
        let ok = [segment(0.0, 1.0, "a"), segment(1.0, 2.0, "b")];
        assert!(transcript("segments", &ok, Some(2.0)).is_ok());
        let overlap = [segment(0.0, 1.5, "a"), segment(1.0, 2.0, "b")];
        assert_eq!(
            field_of(transcript("segments", &overlap, None)),
            "segments.1.startTime"
        );
        let unordered = [segment(5.0, 6.0, "a"), segment(1.0, 2.0, "b")];
        assert_eq!(
            field_of(transcript("segments", &unordered, None)),
            "segments.1.startTime"
        );
        let backwards = [segment(3.0, 3.0, "a")];
        assert_eq!(
            field_of(transcript("segments", &backwards, None)),
            "segments.0.endTime"
        );
        let past_end = [segment(0.0, 1.0, "a"), segment(1.0, 9.0, "b")];
        assert_eq!(
            field_of(transcript("segments", &past_end, Some(8.0))),
            "segments.1.endTime"
        );
        let blank = [segment(0.0, 1.0, "   ")];
        assert_eq!(
            field_of(transcript("segments", &blank, None)),
            "segments.0.text"
        );
    }

    #[test]
    fn language_tags_are_canonicalised() {
        assert_eq!(language("l", "en").ok().as_deref(), Some("en"));
        assert_eq!(language("l", "pt-br").ok().as_deref(), Some("pt-BR"));
        assert_eq!(
            language("l", "ZH-hant-tw").ok().as_deref(),
            Some("zh-Hant-TW")
        );
        assert!(language("l", "../x").is_err());
        assert!(language("l", "e").is_err());
        assert!(language("l", "en--US").is_err());
    }
}

//! The ffmpeg side of `video.probe`: what ffprobe's answer says about an upload, the commands
//! that make the renditions, and turning tool errors into reasons the uploader can read.
//!
//! Everything here is pure (arguments in, arguments or verdicts out), so the rules are unit
//! tested without running the tools.

use std::path::Path;

use crate::render::ffmpeg::Probe;

/// Scales to at most 720 pixels high and 1280 wide (a long, thin picture too: 8704×256 was
/// kept whole), keeping the aspect as shown, with square pixels (a picture of wide ones is
/// widened as it shows: a JPEG's pixel aspect is ignored by browsers, and its thumbnail was
/// squeezed) and both sides even (H.264 in 4:2:0 needs even sides), never upscaling.
const SCALE_720: &str = "scale=w='max(2,2*trunc(iw*clip(sar,0.25,4)*min(1,min(1280/(iw*clip(sar,0.25,4)),720/ih))/2))':\
     h='max(2,2*trunc(ih*min(1,min(1280/(iw*clip(sar,0.25,4)),720/ih))/2))',setsar=1";

/// Proxy encoder settings: `veryfast` is a good size/speed trade for a working copy.
const PROXY_CRF: &str = "23";
const PROXY_PRESET: &str = "veryfast";
const PROXY_AUDIO_BITRATE: &str = "128k";

/// What the probe established about an upload that is a video.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFacts {
    pub duration_secs: f64,
    pub width: i32,
    pub height: i32,
    pub mime: String,
}

/// Who is to blame for a failed tool run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The file: a reason for the uploader (retrying will not help).
    File(String),
    /// The server (tool missing, disk full, process killed): worth another attempt.
    Server(String),
}

/// Why a playlist (HLS, concat) or other non-container upload is refused.
const NOT_A_CONTAINER: &str = "the file is not a video container Reelgraph reads: upload MP4, \
    MOV, MKV, WebM, AVI, MPEG-TS, MPEG, FLV, WMV, Ogg or MXF";

/// Longest source video processed: 12 hours.
pub const MAX_SOURCE_SECS: f64 = 12.0 * 3600.0;
/// Largest picture processed: 8K UHD (7680×4320), in either orientation.
pub const MAX_SOURCE_PIXELS: i64 = 7680 * 4320;
/// Highest frame rate processed.
pub const MAX_SOURCE_FPS: f64 = 240.0;

/// `3 h 20 min` for a person.
fn hours_minutes(secs: f64) -> String {
    let minutes = (secs / 60.0).round() as u64;
    format!("{} h {} min", minutes / 60, minutes % 60)
}

/// Decides whether ffprobe's answer describes a video, and if so what kind. The error is the
/// reason shown to the uploader.
pub fn judge(probe: &Probe, filename: &str) -> Result<SourceFacts, String> {
    let format = probe.format_name.as_deref().unwrap_or_default();
    if !probe.has_video {
        return Err(if probe.has_audio {
            "the file is not a video: it has sound but no picture".to_owned()
        } else {
            "the file is not a video".to_owned()
        });
    }
    // Still images are demuxed as one-frame "videos" (png_pipe, jpeg_pipe, image2, …).
    if format.ends_with("_pipe") || format == "image2" {
        return Err("the file is not a video: it is a still image".to_owned());
    }
    if !crate::render::ffmpeg::is_media_format(format) {
        return Err(NOT_A_CONTAINER.to_owned());
    }
    let (Some(width), Some(height)) = (probe.width, probe.height) else {
        return Err("the file is not a video: its picture has no size".to_owned());
    };
    // The container's duration, or the picture's where the container gives none that can be
    // (`0.000000` or `nan` from some muxers).
    let usable = |d: Option<f64>| d.filter(|d| d.is_finite() && *d > 0.0);
    let duration = usable(probe.duration_secs).or(usable(probe.video_duration_secs));
    let Some(duration_secs) = duration else {
        return Err("the file is not a video: it has no duration".to_owned());
    };
    if width <= 0 || height <= 0 {
        return Err("the file is not a video: its picture has no size".to_owned());
    }
    // What one worker can encode in reasonable time and space: a few kilobytes can claim a
    // duration of years (two frames far apart), which the proxy would fill with copies.
    if duration_secs > MAX_SOURCE_SECS {
        return Err(format!(
            "the video lasts {}, longer than the {} hours Reelgraph processes: split it",
            hours_minutes(duration_secs),
            MAX_SOURCE_SECS / 3600.0
        ));
    }
    if i64::from(width) * i64::from(height) > MAX_SOURCE_PIXELS {
        return Err(format!(
            "the picture is {width}×{height}, larger than 8K (7680×4320) that Reelgraph processes"
        ));
    }
    if probe.fps.is_some_and(|fps| fps > MAX_SOURCE_FPS) {
        return Err(format!(
            "the video has {:.0} frames a second, more than the {MAX_SOURCE_FPS:.0} Reelgraph processes",
            probe.fps.unwrap_or_default()
        ));
    }
    // As shown: a picture of wide pixels (1440×1080 of 4:3 ones) is as wide as it shows
    // (1920), as a quarter-turned one is as tall as it shows.
    // Wide pixels widen it, tall ones (a quarter-turned picture of wide ones) make it taller;
    // a pixel aspect past 4:1 either way is taken for 4:1 (as shorts take it).
    let (width, height) = match probe.pixel_aspect.map(|a| a.clamp(0.25, 4.0)) {
        Some(aspect) if aspect > 1.0 => ((f64::from(width) * aspect).round() as i32, height),
        Some(aspect) => (width, (f64::from(height) / aspect).round() as i32),
        None => (width, height),
    };
    Ok(SourceFacts {
        duration_secs,
        width,
        height,
        mime: mime_of(format, filename),
    })
}

/// The MIME type of a container. ffprobe names families (`mov,mp4,m4a,3gp,3g2,mj2`,
/// `matroska,webm`); within one, the file name's extension picks the member, and MP4 (or
/// Matroska) is the answer when it says nothing more.
pub fn mime_of(format_name: &str, filename: &str) -> String {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let family = format_name.split(',').next().unwrap_or_default();
    let mime = match family {
        "mov" => match ext.as_str() {
            "mov" | "qt" => "video/quicktime",
            "3gp" => "video/3gpp",
            "3g2" => "video/3gpp2",
            "m4v" => "video/x-m4v",
            _ => "video/mp4",
        },
        "matroska" => match ext.as_str() {
            "webm" => "video/webm",
            _ => "video/x-matroska",
        },
        "avi" => "video/x-msvideo",
        "mpegts" => "video/mp2t",
        "mpeg" | "mpegvideo" => "video/mpeg",
        "flv" => "video/x-flv",
        "ogg" => "video/ogg",
        "asf" => "video/x-ms-asf",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    };
    mime.to_owned()
}

/// When the thumbnail is taken: a second in (past fades from black), or the middle of
/// anything shorter than two seconds.
pub fn thumbnail_at(duration_secs: f64) -> f64 {
    if duration_secs >= 2.0 {
        1.0
    } else {
        (duration_secs / 2.0).max(0.0)
    }
}

/// One JPEG frame at `at` seconds (seeking on the input, which is fast), scaled like the proxy.
pub fn thumbnail_args(input: &Path, at: f64, output: &Path) -> Vec<String> {
    vec![
        "-ss".into(),
        format!("{at:.3}"),
        "-format_whitelist".into(),
        crate::render::ffmpeg::MEDIA_FORMATS.into(),
        "-i".into(),
        input.display().to_string(),
        "-map".into(),
        "0:V:0".into(),
        "-frames:v".into(),
        "1".into(),
        "-vf".into(),
        SCALE_720.into(),
        "-q:v".into(),
        "3".into(),
        output.display().to_string(),
    ]
}

/// The 720p proxy: first video (`V`: not a cover picture, as [`crate::render::ffmpeg::probe`]
/// reads it) and (if any) first audio stream, H.264 in yuv420p and stereo
/// AAC, `faststart` so players can begin before the download ends; subtitles, data streams
/// and metadata (which may carry location) are left out.
pub fn proxy_args(input: &Path, output: &Path) -> Vec<String> {
    [
        "-format_whitelist",
        crate::render::ffmpeg::MEDIA_FORMATS,
        "-i",
        &input.display().to_string(),
        "-map",
        "0:V:0",
        "-map",
        "0:a:0?",
        "-vf",
        &format!("{SCALE_720},format=yuv420p"),
        "-c:v",
        "libx264",
        "-preset",
        PROXY_PRESET,
        "-crf",
        PROXY_CRF,
        "-c:a",
        "aac",
        "-b:a",
        PROXY_AUDIO_BITRATE,
        "-ac",
        "2",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        "-movflags",
        "+faststart",
        &output.display().to_string(),
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Why a file ffmpeg got stuck on failed.
const UNDECODABLE: &str = "the file could not be decoded: ffmpeg stopped making progress on it";

/// Classifies an error of [`crate::render::ffmpeg::probe`] on the upload stored at `file`.
pub fn probe_error(message: &str, file: &Path) -> ToolError {
    // ffprobe reads headers: one that never finishes is stuck on what it reads. Retried, it
    // would stick again, each time for the whole time limit.
    if message.starts_with("ffprobe stopped: it did not finish") {
        return ToolError::File(UNDECODABLE.to_owned());
    }
    let Some(detail) = message.strip_prefix("not a readable media file:") else {
        return ToolError::Server(message.to_owned());
    };
    // An MP4 or MOV whose index (written last by most recorders) never arrived: a recording
    // stopped before it was finished, or an upload cut off.
    if detail.contains("moov atom not found") {
        // A HEIC or AVIF photo is an ISO file without one too, complete as it is.
        if still_image_brand(file) {
            return ToolError::File("the file is not a video: it is a still image".to_owned());
        }
        return ToolError::File(
            "the file is incomplete: its index (the MP4 'moov' box) is missing, as when a \
             recording was stopped before it finished or an upload was cut off; upload the \
             whole file"
                .to_owned(),
        );
    }
    if detail.contains("Invalid data found when processing input") {
        return ToolError::File("the file is not a video".to_owned());
    }
    if detail.contains("Format not on whitelist") {
        return ToolError::File(NOT_A_CONTAINER.to_owned());
    }
    file_or_server(detail, file)
}

/// Whether `file` is an ISO media file whose major brand is a still image's (HEIF, HEIC,
/// AVIF): its `ftyp` box says so in its first 12 bytes.
fn still_image_brand(file: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut head));
    read.is_ok()
        && &head[4..8] == b"ftyp"
        && matches!(
            &head[8..12],
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" | b"avif" | b"avis"
        )
}

/// Classifies an error of [`crate::render::ffmpeg::run`] reading the upload stored at `file`.
pub fn ffmpeg_error(message: &str, file: &Path) -> ToolError {
    // A decoder whose output stops moving is stuck on the file (a busy machine is slow, not
    // stopped). Running longer than the media allows stays the server's: that may be a slow
    // machine.
    if message.starts_with("ffmpeg stopped: its output did not move on") {
        return ToolError::File(UNDECODABLE.to_owned());
    }
    let Some(detail) = message.strip_prefix("ffmpeg failed") else {
        return ToolError::Server(message.to_owned());
    };
    if detail.contains("(signal:") {
        return ToolError::Server(message.to_owned());
    }
    // ` (exit status: 1): <stderr>`: the status means nothing to the uploader.
    let stderr = detail
        .trim_start()
        .strip_prefix('(')
        .and_then(|d| d.split_once("): ").map(|(_, rest)| rest))
        .unwrap_or(detail);
    file_or_server(stderr, file)
}

/// Failures that say more about the machine than about the file are the server's.
fn file_or_server(detail: &str, file: &Path) -> ToolError {
    const SERVER: [&str; 3] = [
        "No space left on device",
        "Cannot allocate memory",
        "Permission denied",
    ];
    if SERVER.iter().any(|s| detail.contains(s)) {
        return ToolError::Server(scrub(detail, file));
    }
    let scrubbed = scrub(detail, file);
    if scrubbed.is_empty() {
        ToolError::File("the file could not be read".to_owned())
    } else {
        ToolError::File(format!("the file could not be read: {scrubbed}"))
    }
}

/// Makes tool output fit for the uploader's eyes: no server paths, no memory addresses
/// (`[h264 @ 0x55…]` → `[h264]`), the last three lines only, at most 300 characters.
pub fn scrub(text: &str, file: &Path) -> String {
    let path = file.display().to_string();
    let folder = file
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut line = line
                .replace(&format!("{path}: "), "")
                .replace(&path, "the file");
            if !folder.is_empty() {
                line = line.replace(&folder, "…");
            }
            strip_addresses(&line).trim().to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect();
    let tail = lines.split_off(lines.len().saturating_sub(3)).join("; ");
    if tail.chars().count() > 300 {
        let cut: String = tail.chars().take(299).collect();
        format!("{cut}…")
    } else {
        tail
    }
}

/// Removes ` @ 0x…` from `[codec @ 0x…]` prefixes.
pub(crate) fn strip_addresses(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let after = &rest[at + " @ 0x".len()..];
        let hex_len = after
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(after.len());
        rest = &after[hex_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn video(format: &str) -> Probe {
        Probe {
            duration_secs: Some(20.0),
            width: Some(1280),
            height: Some(720),
            fps: Some(30.0),
            video_duration_secs: Some(20.0),
            has_video: true,
            has_audio: true,
            format_name: Some(format.to_owned()),
            pixel_aspect: None,
        }
    }

    #[test]
    fn a_file_ffmpeg_gets_stuck_on_is_the_files_fault_and_a_slow_run_the_servers() {
        let file = Path::new("/nowhere/upload");
        assert!(matches!(
            probe_error("ffprobe stopped: it did not finish within 120 seconds", file),
            ToolError::File(reason) if reason == UNDECODABLE
        ));
        assert!(matches!(
            ffmpeg_error("ffmpeg stopped: its output did not move on for 120 seconds", file),
            ToolError::File(reason) if reason == UNDECODABLE
        ));
        assert!(matches!(
            ffmpeg_error(
                "ffmpeg stopped: it ran for 900 seconds, longer than its media allows",
                file
            ),
            ToolError::Server(_)
        ));
        assert!(matches!(
            probe_error("cannot start ffprobe: No such file or directory", file),
            ToolError::Server(_)
        ));
    }

    #[test]
    fn a_video_is_judged_with_its_mime_type() {
        let facts = judge(&video("mov,mp4,m4a,3gp,3g2,mj2"), "a.MP4").expect("a video");
        assert_eq!(
            (facts.width, facts.height, facts.mime.as_str()),
            (1280, 720, "video/mp4")
        );
        assert_eq!(
            judge(&video("mov,mp4,m4a,3gp,3g2,mj2"), "clip.mov").map(|f| f.mime),
            Ok("video/quicktime".to_owned())
        );
        assert_eq!(
            judge(&video("matroska,webm"), "clip.webm").map(|f| f.mime),
            Ok("video/webm".to_owned())
        );
    }

    #[test]
    fn sound_images_and_timeless_files_are_not_videos() {
        let mut audio = video("mp3");
        audio.has_video = false;
        assert!(judge(&audio, "a.mp4").is_err_and(|r| r.contains("no picture")));
        assert!(judge(&video("png_pipe"), "a.mp4").is_err_and(|r| r.contains("still image")));
        let mut timeless = video("mov,mp4,m4a,3gp,3g2,mj2");
        timeless.duration_secs = None;
        timeless.video_duration_secs = Some(0.0);
        assert!(judge(&timeless, "a.mp4").is_err_and(|r| r.contains("no duration")));
        // A container duration no file has leaves the picture's.
        for container in [Some(0.0), Some(f64::NAN), Some(-1.0), None] {
            let mut muxed = video("mov,mp4,m4a,3gp,3g2,mj2");
            (muxed.duration_secs, muxed.video_duration_secs) = (container, Some(7.5));
            let facts = judge(&muxed, "a.mp4").expect("a video");
            assert_eq!(facts.duration_secs, 7.5, "{container:?}");
        }
    }

    #[test]
    fn videos_too_long_too_large_or_too_fast_are_refused_with_the_limit() {
        let mp4 = "mov,mp4,m4a,3gp,3g2,mj2";
        // Two frames ten million seconds apart: a few kilobytes claiming four months.
        let mut endless = video(mp4);
        endless.duration_secs = Some(1e7);
        assert!(judge(&endless, "a.mp4").is_err_and(|r| r.contains("longer than the 12 hours")));
        let mut long_enough = video(mp4);
        long_enough.duration_secs = Some(MAX_SOURCE_SECS);
        assert!(judge(&long_enough, "a.mp4").is_ok());
        let mut huge = video(mp4);
        (huge.width, huge.height) = (Some(16384), Some(16384));
        assert!(judge(&huge, "a.mp4").is_err_and(|r| r.contains("larger than 8K")));
        let mut portrait_8k = video(mp4);
        (portrait_8k.width, portrait_8k.height) = (Some(4320), Some(7680));
        assert!(judge(&portrait_8k, "a.mp4").is_ok());
        let mut fast = video(mp4);
        fast.fps = Some(1000.0);
        assert!(judge(&fast, "a.mp4").is_err_and(|r| r.contains("1000 frames a second")));
    }

    #[test]
    fn thumbnails_are_taken_a_second_in_or_in_the_middle() {
        assert_eq!(thumbnail_at(20.0), 1.0);
        assert_eq!(thumbnail_at(1.0), 0.5);
    }

    #[test]
    fn tool_errors_name_the_file_not_the_server_path() {
        let file = PathBuf::from("/tmp/reelgraph-x/original");
        assert_eq!(
            probe_error(
                "not a readable media file: /tmp/reelgraph-x/original: Invalid data found when processing input",
                &file
            ),
            ToolError::File("the file is not a video".to_owned())
        );
        let no_index = "not a readable media file: [mov,mp4,m4a,3gp,3g2,mj2 @ 0x55eb5d219180] moov atom not found\n/tmp/reelgraph-x/original: Invalid data found when processing input";
        let incomplete = probe_error(no_index, &file);
        assert!(
            matches!(&incomplete, ToolError::File(r) if r.starts_with("the file is incomplete")),
            "{incomplete:?}"
        );
        // A HEIC photo has no such index either, and is whole.
        let dir = tempfile::tempdir().expect("dir");
        let photo = dir.path().join("IMG_0001");
        std::fs::write(&photo, b"\0\0\0\x18ftypheic\0\0\0\0mif1heic").expect("written");
        assert_eq!(
            probe_error(no_index, &photo),
            ToolError::File("the file is not a video: it is a still image".to_owned())
        );
        let ToolError::File(reason) = ffmpeg_error(
            "ffmpeg failed (exit status: 1): [h264 @ 0x5594f54b180] error while decoding MB 3 4\n/tmp/reelgraph-x/original: corrupt input",
            &file,
        ) else {
            panic!("the file's fault");
        };
        assert!(
            !reason.contains("/tmp") && !reason.contains("0x"),
            "{reason}"
        );
        assert!(
            reason.starts_with("the file could not be read: [h264] error while decoding"),
            "{reason}"
        );
        assert!(matches!(
            ffmpeg_error("ffmpeg failed (signal: 9 (SIGKILL)): ", &file),
            ToolError::Server(_)
        ));
        assert!(matches!(
            probe_error("cannot start ffprobe: not found", &file),
            ToolError::Server(_)
        ));
    }
}

//! `render.short`: cuts a highlight's (trimmed) range out of its source video, reframes it to
//! 9:16, 1:1 or 16:9 by a centre crop, optionally burns in the transcript's captions (shifted
//! to the clip), and stores it at `shorts/{highlightId}/{shortId}/{preset}.mp4`.

use std::{fmt::Write, path::Path};

use entity::{
    ShortPreset, ShortStatus, creator, highlight, key_moment, short, transcript_segment, video,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::template::{Card, Template};
use crate::{
    jobs::handlers::{JobContext, JobFailure, JobHandler, Outcome, Registry},
    render::{
        ffmpeg,
        jobs::{run_with_progress, tool_failure, tools_missing},
    },
};

pub fn register(registry: &mut Registry) {
    registry.register("render.short", RenderShort);
}

#[derive(Deserialize)]
struct ShortInput {
    short_id: Uuid,
    /// The range to cut, as `generateShort` reserved it (absent in jobs queued before it was
    /// recorded: then the highlight's range at render time).
    #[serde(default)]
    clip: Option<Clip>,
    /// The creator's `shortsTemplate` at `generateShort` (`null`: none). Absent in older jobs:
    /// then the creator's template at render time.
    #[serde(default, deserialize_with = "present")]
    shorts_template: Option<Option<serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct Clip {
    start: f64,
    end: f64,
}

/// Tells a key given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<serde_json::Value>>, D::Error> {
    use serde::Deserialize;
    Option::<serde_json::Value>::deserialize(deserializer).map(Some)
}

/// Output size of each preset (even dimensions, 720 on the short side).
pub fn dimensions(preset: ShortPreset) -> (u32, u32) {
    match preset {
        ShortPreset::Vertical => (720, 1280),
        ShortPreset::Square => (720, 720),
        ShortPreset::Horizontal => (1280, 720),
    }
}

/// Where a short's file is stored: one object per short, so a second short of the same
/// highlight and preset (other captions, another trim) never replaces the first one's file.
pub fn object_key(highlight_id: Uuid, short_id: Uuid, preset: ShortPreset) -> String {
    let name = match preset {
        ShortPreset::Vertical => "vertical",
        ShortPreset::Square => "square",
        ShortPreset::Horizontal => "horizontal",
    };
    format!("shorts/{highlight_id}/{short_id}/{name}.mp4")
}

/// `H:MM:SS.cc`, the centisecond times of ASS.
fn ass_time(secs: f64) -> String {
    let cs = (secs.max(0.0) * 100.0).round() as u64;
    format!(
        "{}:{:02}:{:02}.{:02}",
        cs / 360_000,
        cs / 6_000 % 60,
        cs / 100 % 60,
        cs % 100
    )
}

/// The captions burned into a `width`×`height` short of the clip `[start, end]`: an ASS script
/// (what libass, behind ffmpeg's `subtitles` filter, reads as it is) of the segments inside the
/// clip, with times relative to `start`. `None` when no segment has text there.
///
/// ASS rather than SubRip: ffmpeg reads SubRip as HTML-like markup, so `<b>` would bold and
/// `{…}` vanish; transcript text is shown as it was written. Sizes are in the short's pixels
/// (`PlayResX`/`PlayResY`): white DejaVu Sans on a dark outline, bottom centre, the same size
/// in every preset (1/14 of the short side).
pub fn clip_captions(
    segments: &[transcript_segment::Model],
    start: f64,
    end: f64,
    (width, height): (u32, u32),
) -> Option<String> {
    let font_size = width.min(height) / 14;
    let (margin_h, margin_v) = (width / 20, height / 12);
    let mut events = String::new();
    for segment in segments
        .iter()
        .filter(|s| s.end_time > start && s.start_time < end)
    {
        let fitted = break_long_runs(&segment.text, f64::from(width - 2 * margin_h), font_size);
        let Some(text) = crate::content::captions::ass_text(&fitted) else {
            continue;
        };
        let from = (segment.start_time - start).max(0.0);
        let to = (segment.end_time.min(end) - start).max(from + 0.01);
        let _ = writeln!(
            events,
            "Dialogue: 0,{},{},Caption,,0,0,0,,{text}",
            ass_time(from),
            ass_time(to),
        );
    }
    if events.is_empty() {
        return None;
    }
    let outline = (font_size / 16).max(1);
    Some(format!(
        "[Script Info]\n\
         ScriptType: v4.00+\n\
         PlayResX: {width}\n\
         PlayResY: {height}\n\
         WrapStyle: 0\n\
         ScaledBorderAndShadow: yes\n\
         \n\
         [V4+ Styles]\n\
         Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
         BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
         BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
         Style: Caption,DejaVu Sans,{font_size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,\
         0,0,0,0,100,100,0,0,1,{outline},0,2,{margin_h},{margin_h},{margin_v},1\n\
         \n\
         [Events]\n\
         Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
         {events}"
    ))
}

/// `text` with a line break put into each run of characters without a space wider than a
/// line (`room` pixels at `font_size`): libass wraps at spaces only, so a long URL, or a
/// sentence of Chinese, Japanese or Thai, ran past both edges of the picture and was cut off.
/// Widths are estimates on the wide side of DejaVu Sans: East Asian characters, capitals and
/// `m`/`w` an em, others 0.65 of one. A break never comes before a combining mark (a Thai
/// vowel, an accent), a joiner or a skin tone, nor after a joiner: a character is not split.
fn break_long_runs(text: &str, room: f64, font_size: u32) -> String {
    use unicode_normalization::char::is_combining_mark;
    let em = f64::from(font_size.max(1));
    let wide = |c: char| {
        c.is_ascii_uppercase()
            || matches!(c, 'm' | 'w' | '@' | '%')
            || matches!(u32::from(c), 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3
                | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6
                | 0x1F300..=0x1FAFF | 0x20000..=0x3FFFD)
    };
    // Part of the character before it: marks, joiners, variation selectors, skin tones, tag
    // characters, a Hangul syllable's vowel and final jamo.
    let attached = |c: char| {
        is_combining_mark(c)
            || matches!(u32::from(c), 0x1160..=0x11FF | 0xD7B0..=0xD7FF | 0x200C | 0x200D
                | 0xFE00..=0xFE0F | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F)
    };
    // A flag is two regional indicators.
    let regional = |c: char| matches!(u32::from(c), 0x1F1E6..=0x1F1FF);
    let mut out = String::with_capacity(text.len() + 8);
    let mut run = 0.0;
    let mut after_joiner = false;
    let mut open_flag = false;
    for c in text.chars() {
        if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
            run = 0.0;
            after_joiner = false;
            open_flag = false;
            out.push(c);
            continue;
        }
        let joined = attached(c) || after_joiner || (open_flag && regional(c));
        let w = if attached(c) || (open_flag && regional(c)) {
            0.0
        } else if wide(c) || regional(c) {
            em
        } else {
            0.65 * em
        };
        if run > 0.0 && run + w > room && !joined {
            out.push('\n');
            run = 0.0;
        }
        run += w;
        after_joiner = c == '\u{200d}';
        open_flag = regional(c) && !open_flag;
        out.push(c);
    }
    out
}

fn db_failure(err: sea_orm::DbErr) -> JobFailure {
    JobFailure::unavailable("the database was unavailable", err)
}

fn filter_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace('\'', "\\'")
}

/// The text files of a template's cards (drawtext reads them as written: no escaping, no
/// `%{…}` expansion).
struct CardFiles {
    intro: Option<std::path::PathBuf>,
    outro: Option<std::path::PathBuf>,
}

impl CardFiles {
    async fn write(dir: &Path, template: &Template) -> Result<Self, JobFailure> {
        let mut files = Self {
            intro: None,
            outro: None,
        };
        for (name, card, slot) in [
            ("intro", &template.intro, &mut files.intro),
            ("outro", &template.outro, &mut files.outro),
        ] {
            if let Some(card) = card {
                let path = dir.join(format!("{name}.txt"));
                tokio::fs::write(&path, &card.text)
                    .await
                    .map_err(|e| JobFailure::internal("could not write a work file", e))?;
                *slot = Some(path);
            }
        }
        Ok(files)
    }
}

/// Audio every part of a short is converted to before they are joined.
const AUDIO_FORMAT: &str = "aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo";
/// Frame rate of a short with cards (its parts must share one to be joined).
const CARD_FPS: u32 = 30;

/// One card's video and silent audio, labelled `[{name}v]` and `[{name}a]`.
fn card_chains(name: &str, card: &Card, file: &Path, (width, height): (u32, u32)) -> String {
    // Large, but the longest line still fits the width (a glyph is about 0.6 of the size).
    let longest = card
        .text
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let fit = (f64::from(width) * 0.9 / (0.6 * longest as f64)) as u32;
    let font_size = (height / 12).min(fit).max(12);
    let d = card.duration_secs;
    format!(
        "color=c=0x{bg}:s={width}x{height}:r={CARD_FPS}:d={d:.3},\
         drawtext=textfile='{file}':expansion=none:fontsize={font_size}:fontcolor=0x{fg}:\
         line_spacing={gap}:x=(w-text_w)/2:y=(h-text_h)/2,format=yuv420p,setsar=1[{name}v];\
         anullsrc=channel_layout=stereo:sample_rate=48000,atrim=0:{d:.3},{AUDIO_FORMAT}[{name}a]",
        bg = card.background,
        fg = card.color,
        file = filter_path(file),
        gap = font_size / 4,
    )
}

/// The clip's sound (input 0, from the cut), exactly `duration` long, labelled `[{label}]`:
/// the source's own over silence, so it lasts the whole clip where it stops before the
/// picture (a recording whose microphone stopped) or gives no frames at all (a clip past the
/// sound's end); silence alone when the source has none. `aresample=async=1:first_pts=0`
/// keeps the sound where it is against the picture: a sound that starts late, or has a
/// dropout, gets silence in the gap (counting its samples afresh moved it early). Every short
/// has a sound track as long as its picture.
fn clip_audio(has_audio: bool, duration: f64, entry: Entry, label: &str) -> String {
    let silence = format!(
        "anullsrc=channel_layout=stereo:sample_rate=48000,atrim=0:{duration:.3},{AUDIO_FORMAT}"
    );
    if has_audio {
        format!(
            "{silence}[{label}0];[0:a:0]{}aresample=async=1:first_pts=0,{AUDIO_FORMAT}[{label}1];\
             [{label}0][{label}1]amix=inputs=2:duration=first:dropout_transition=0:normalize=0[{label}]",
            entry.audio()
        )
    } else {
        format!("{silence}[{label}]")
    }
}

/// The `-filter_complex` graph of a short without cards: the reframed clip (input 0, from the
/// cut) and its sound, as `[v]` and `[a]`.
fn plain(clip_filter: &str, has_audio: bool, duration: f64, entry: Entry) -> String {
    format!(
        "[0:V:0]{}{clip_filter}[v];{}",
        entry.video(),
        clip_audio(has_audio, duration, entry, "a")
    )
}

/// How far before the clip input 0 is entered: MP4 and MOV have an index of every frame, and
/// are entered at the clip's start. Containers without one (MPEG-TS and -PS from cameras and
/// OBS, raw streams, WebM from browsers) can only be entered at a point between keyframes,
/// from which nothing decodes until the next keyframe: the short was black or frozen for up to
/// a keyframe interval, or whole, and reported complete. They are entered up to
/// [`PREROLL_SECS`] earlier, and the graph cuts the clip from there.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    preroll: f64,
}

/// Longer than the keyframe interval of any usual recording (cameras 0.5–2 s, OBS and
/// encoders' defaults up to 10 s).
const PREROLL_SECS: f64 = 20.0;

impl Entry {
    fn of(format_name: Option<&str>, start: f64) -> Self {
        let family = format_name
            .and_then(|f| f.split(',').next())
            .unwrap_or_default();
        let indexed = family == "mov";
        Self {
            preroll: if indexed {
                0.0
            } else {
                start.clamp(0.0, PREROLL_SECS)
            },
        }
    }

    /// The picture from the clip's start, its times kept against the sound's.
    fn video(self) -> String {
        match self.preroll > 0.0 {
            true => format!("trim=start={0:.3},setpts=PTS-{0:.3}/TB,", self.preroll),
            false => String::new(),
        }
    }

    fn audio(self) -> String {
        match self.preroll > 0.0 {
            true => format!("atrim=start={0:.3},asetpts=PTS-{0:.3}/TB,", self.preroll),
            false => String::new(),
        }
    }
}

/// The `-filter_complex` graph of a short with cards: the reframed clip (input 0, from the
/// cut) between its intro and outro, as `[v]` and `[a]`. The clip's picture is trimmed to
/// `duration` in the graph: an input's `-t` does not bound it when its sound ends first, and
/// the last frame was held to the end of the source.
fn with_cards(
    clip_filter: &str,
    has_audio: bool,
    duration: f64,
    entry: Entry,
    size: (u32, u32),
    template: &Template,
    files: &CardFiles,
) -> String {
    let mut chains = vec![format!(
        "[0:V:0]{}{clip_filter},fps={CARD_FPS},trim=duration={duration:.3},format=yuv420p[clipv]",
        entry.video()
    )];
    chains.push(clip_audio(has_audio, duration, entry, "clipa"));
    let mut parts = Vec::new();
    if let (Some(card), Some(file)) = (&template.intro, &files.intro) {
        chains.push(card_chains("intro", card, file, size));
        parts.push("[introv][introa]");
    }
    parts.push("[clipv][clipa]");
    if let (Some(card), Some(file)) = (&template.outro, &files.outro) {
        chains.push(card_chains("outro", card, file, size));
        parts.push("[outrov][outroa]");
    }
    chains.push(format!(
        "{}concat=n={}:v=1:a=1[v][a]",
        parts.concat(),
        parts.len()
    ));
    chains.join(";")
}

struct RenderShort;

#[async_trait::async_trait]
impl JobHandler for RenderShort {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: ShortInput = ctx.input()?;
        let db = ctx.db();
        let short = short::Entity::find_by_id(input.short_id)
            .one(db)
            .await
            .map_err(db_failure)?;
        let Some(short) = short else {
            return Err(JobFailure::permanent("the short no longer exists"));
        };
        let highlight = highlight::Entity::find_by_id(short.highlight_id)
            .one(db)
            .await
            .map_err(db_failure)?;
        let Some(highlight) = highlight else {
            return Err(JobFailure::permanent("the highlight no longer exists"));
        };
        let moment = key_moment::Entity::find_by_id(highlight.key_moment_id)
            .one(db)
            .await
            .map_err(db_failure)?;
        let Some(moment) = moment else {
            return Err(JobFailure::permanent("the key moment no longer exists"));
        };
        let source = video::Entity::find_by_id(highlight.video_id)
            .one(db)
            .await
            .map_err(db_failure)?;
        let Some(source) = source.filter(|v| v.deleted_at.is_none()) else {
            return Err(JobFailure::permanent("the source video no longer exists"));
        };
        // The creator's cards as `generateShort` saw them (older jobs: as they are now). A
        // stored template this server cannot read (imported from elsewhere) gives a short
        // without cards.
        let stored = match input.shorts_template {
            Some(at_enqueue) => at_enqueue,
            None => creator::Entity::find_by_id(source.creator_id)
                .one(db)
                .await
                .map_err(db_failure)?
                .and_then(|c| c.shorts_template),
        };
        let template = stored
            .filter(|value| !value.is_null())
            .map_or_else(Template::default, |value| {
                Template::parse("shortsTemplate", &value).unwrap_or_else(|err| {
                    tracing::warn!(creator_id = %source.creator_id, error = %err.public_message(), "shortsTemplate ignored");
                    Template::default()
                })
            });
        let marked = short::Entity::update_many()
            .col_expr(short::Column::Status, Expr::val(ShortStatus::Processing))
            .col_expr(short::Column::UpdatedAt, Expr::val(chrono::Utc::now()))
            .filter(short::Column::Id.eq(short.id))
            .filter(short::Column::Status.ne(ShortStatus::Complete))
            .filter(ctx.held())
            .exec(db)
            .await
            .map_err(db_failure)?;
        // Deleted since it was read above (`deleteShort`, `deleteKeyMoment`): nothing to
        // render it for, and a file no row names would be left behind. Or this run lost the
        // job to another worker, which may have finished it: its end is fenced too.
        if marked.rows_affected == 0 {
            return Err(JobFailure::permanent("the short no longer exists"));
        }

        let (start, end) = match &input.clip {
            Some(clip) => (clip.start, clip.end),
            None => (
                highlight.trim_start.unwrap_or(moment.start_time),
                highlight.trim_end.unwrap_or(moment.end_time),
            ),
        };
        let duration = end - start;
        if duration <= 0.0 {
            return Err(JobFailure::permanent("the highlight's range is empty"));
        }
        let tools = ffmpeg::check().await.map_err(tools_missing)?;
        let dir = crate::jobs::work_folders::create(ctx.job.id)
            .map_err(|e| JobFailure::internal("could not create a work folder", e))?;
        ctx.progress(0.02, Some("downloading")).await?;
        let source_path = dir.path().join("source");
        // A source file gone from storage will not come back by retrying: the job fails at
        // once, saying so, instead of after three attempts as "unavailable".
        let stored = ctx
            .storage
            .head(&source.storage_key)
            .await
            .map_err(|e| JobFailure::unavailable("object storage was unavailable", e))?;
        if stored.is_none() {
            return Err(JobFailure::permanent(
                "the source video's file is missing from storage: upload the video again",
            ));
        }
        ctx.storage
            .get_to_file(&source.storage_key, &source_path)
            .await
            .map_err(|e| JobFailure::unavailable("object storage was unavailable", e))?;
        let probe = ffmpeg::probe(&tools, &source_path)
            .await
            .map_err(tool_failure)?;
        // Never past the end of the source as it is: a range recorded without that bound (a
        // job queued by an earlier version, or one without a recorded clip) would otherwise
        // be padded with silence to its full length, and used minutes counted for it.
        let end = match probe.duration_secs {
            Some(video) if video.is_finite() && video > 0.0 => end.min(video),
            _ => end,
        };
        let duration = end - start;
        if duration <= 0.0 {
            return Err(JobFailure::permanent(
                "the highlight starts after the end of the video",
            ));
        }

        let (width, height) = dimensions(short.preset);
        let mut filter = reframe(width, height);
        // Whether captions end up in the picture: asked for, and the clip has transcript lines.
        let mut captions_burned = false;
        if short.captions_enabled {
            let segments = transcript_segment::Entity::find()
                .filter(transcript_segment::Column::VideoId.eq(source.id))
                .order_by_asc(transcript_segment::Column::StartTime)
                .all(db)
                .await
                .map_err(db_failure)?;
            if let Some(script) = clip_captions(&segments, start, end, (width, height)) {
                captions_burned = true;
                let captions = dir.path().join("captions.ass");
                tokio::fs::write(&captions, script)
                    .await
                    .map_err(|e| JobFailure::internal("could not write a work file", e))?;
                let _ = write!(filter, ",subtitles=filename='{}'", filter_path(&captions));
            }
        }
        let output = dir.path().join("short.mp4");
        let entry = Entry::of(probe.format_name.as_deref(), start);
        let source_input = [
            "-ss".to_owned(),
            format!("{:.3}", start - entry.preroll),
            "-format_whitelist".to_owned(),
            ffmpeg::MEDIA_FORMATS.to_owned(),
        ];
        let mut args: Vec<String> = source_input.to_vec();
        let total = if template.is_empty() {
            args.extend([
                "-i".into(),
                source_path.display().to_string(),
                "-filter_complex".into(),
                plain(&filter, probe.has_audio, duration, entry),
                "-map".into(),
                "[v]".into(),
                "-map".into(),
                "[a]".into(),
            ]);
            duration
        } else {
            // The clip is cut at the input, so it joins the cards at its own length.
            args.extend([
                "-t".into(),
                format!("{:.3}", duration + entry.preroll),
                "-i".into(),
                source_path.display().to_string(),
            ]);
            let cards = CardFiles::write(dir.path(), &template).await?;
            let graph = with_cards(
                &filter,
                probe.has_audio,
                duration,
                entry,
                (width, height),
                &template,
                &cards,
            );
            args.extend([
                "-filter_complex".into(),
                graph,
                "-map".into(),
                "[v]".into(),
                "-map".into(),
                "[a]".into(),
            ]);
            duration + template.added_secs()
        };
        // Nothing past the short's length, whatever a stream of the source does.
        args.extend(["-t".into(), format!("{total:.3}")]);
        args.extend(
            [
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ar",
                "48000",
                "-ac",
                "2",
                "-movflags",
                "+faststart",
            ]
            .map(str::to_owned),
        );
        args.push(output.display().to_string());
        run_with_progress(ctx, &tools, &args, total, "rendering", (0.05, 0.95)).await?;

        let rendered = ffmpeg::probe(&tools, &output).await.map_err(tool_failure)?;
        // A source whose picture ends before the clip (a still frame over a long sound track)
        // would give a short of sound alone.
        if !rendered.has_video {
            return Err(JobFailure::permanent(format!(
                "the video has no picture from {}s to {}s, so there is nothing to show in this short",
                trim_num(start),
                trim_num(end)
            )));
        }
        // Deleted while this rendered (`deleteVideo` refuses while a short renders, but may
        // have looked just before this job began): not stored, not billed.
        let gone = video::Entity::find_by_id(source.id)
            .filter(video::Column::DeletedAt.is_null())
            .one(db)
            .await
            .map_err(db_failure)?
            .is_none();
        if gone {
            return Err(JobFailure::permanent("the source video no longer exists"));
        }
        let key = object_key(highlight.id, short.id, short.preset);
        ctx.progress(0.96, Some("uploading")).await?;
        ctx.storage
            .put_file(&key, &output, "video/mp4")
            .await
            .map_err(|e| JobFailure::unavailable("object storage was unavailable", e))?;
        let size = tokio::fs::metadata(&output)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(Outcome::Done {
            output: json!({
                "short_id": short.id,
                "key": key,
                "duration_secs": rendered.render_secs(),
                "size_bytes": size,
                "width": rendered.width,
                "height": rendered.height,
                "captions_burned": captions_burned,
                "intro": template.intro.is_some(),
                "outro": template.outro.is_some(),
            }),
            output_ref: Some(key),
        })
    }
}

/// Seconds as a person writes them: `12`, `12.5`.
fn trim_num(secs: f64) -> String {
    let rounded = (secs * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

/// The filter that frames a source's picture as a `width`×`height` short: the centre of it,
/// as wide or as tall as the short's shape allows, scaled to the short's size.
///
/// Pixels are made square first (a source may store 720×576 for a 16:9 picture), so that the
/// short is framed on the picture as it is shown; a pixel shape past 4:1 either way is taken
/// as 4:1 (a made-up one would make frames tens of thousands of pixels wide), and a picture
/// one pixel high is made two (the cut below is at least 2×2). The picture is
/// cut to the short's shape before it is scaled: scaled first (to cover the short), a picture
/// of another shape than the short's grows with it (a 7680×2 source would become 4,915,200 ×
/// 1,920 pixels for a vertical short).
fn reframe(width: u32, height: u32) -> String {
    format!(
        "scale='max(2,trunc(iw*clip(sar,0.25,4)/2)*2)':'max(2,ih)',setsar=1,\
         crop='max(2,min(iw,trunc(ih*{width}/{height}/2)*2))':'max(2,min(ih,trunc(iw*{height}/{width}/2)*2))',\
         scale={width}:{height},setsar=1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first frame of lavfi `source` through `filter`, as raw RGB.
    async fn first_frame(source: &str, filter: &str) -> Vec<u8> {
        let tools = ffmpeg::check()
            .await
            .expect("ffmpeg is installed (scripts/test installs it)");
        let output = tokio::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-f", "lavfi", "-i", source, "-vf", filter])
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .await
            .expect("ffmpeg runs");
        assert!(
            output.status.success(),
            "{source}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// The first frame of lavfi `source` reframed as a `width`×`height` short, as raw RGB.
    async fn reframed(source: &str, (width, height): (u32, u32)) -> Vec<u8> {
        let frame = first_frame(source, &reframe(width, height)).await;
        assert_eq!(frame.len(), (width * height * 3) as usize, "{source}");
        frame
    }

    /// A short shows the centre of its source at the short's size, whatever the source's
    /// shape: a picture of a very different shape is cut before it is scaled, never scaled
    /// into a frame millions of pixels wide (which ffmpeg refuses, or takes minutes over).
    #[tokio::test]
    async fn a_short_frames_the_centre_of_any_source_at_its_own_size() {
        // A red 16:9 picture with a white band in its middle.
        let banded = "color=c=red:s=1920x1080:d=1,drawbox=x=840:y=0:w=240:h=1080:c=white:t=fill";
        let pixel = |frame: &[u8], width: u32, x: u32, y: u32| {
            let at = ((y * width + x) * 3) as usize;
            (frame[at], frame[at + 1], frame[at + 2])
        };
        for preset in [
            ShortPreset::Vertical,
            ShortPreset::Square,
            ShortPreset::Horizontal,
        ] {
            let (width, height) = dimensions(preset);
            let frame = reframed(banded, (width, height)).await;
            let (r, g, b) = pixel(&frame, width, width / 2, height / 2);
            assert!(
                r > 200 && g > 200 && b > 200,
                "{preset:?}: centre {r},{g},{b}"
            );
            let (r, g, b) = pixel(&frame, width, 2, height / 2);
            assert!(r > 200 && g < 60 && b < 60, "{preset:?}: edge {r},{g},{b}");
            for source in [
                "color=c=blue:s=7680x2:d=1",
                "color=c=blue:s=2x4320:d=1",
                // One pixel high or wide (as a source in RGB: ffmpeg makes no such frame in
                // yuv420p; an upload may be in any format).
                "color=c=blue:s=100x1:d=1,format=rgb24",
                "color=c=blue:s=1x99:d=1,format=rgb24",
                "color=c=blue:s=721x1279:d=1",
            ] {
                let frame = reframed(source, (width, height)).await;
                let (r, g, b) = pixel(&frame, width, width / 2, height / 2);
                assert!(
                    b > 200 && r < 60 && g < 60,
                    "{preset:?} from {source}: {r},{g},{b}"
                );
            }
        }
    }

    fn segment(start: f64, end: f64, text: &str) -> transcript_segment::Model {
        let now = chrono::Utc::now();
        transcript_segment::Model {
            id: Uuid::now_v7(),
            video_id: Uuid::now_v7(),
            start_time: start,
            end_time: end,
            text: text.into(),
            speaker: None,
            created_at: now,
        }
    }

    /// The dialogue lines of a script.
    fn dialogue(script: &str) -> Vec<&str> {
        script
            .lines()
            .filter(|l| l.starts_with("Dialogue:"))
            .collect()
    }

    #[test]
    fn captions_are_cut_to_the_clip_and_shifted_to_its_start() {
        let segments = [
            segment(0.0, 4.0, "before"),
            segment(4.0, 8.0, "inside"),
            segment(9.0, 12.0, "overlapping end"),
            segment(20.0, 21.0, "after"),
        ];
        let script = clip_captions(&segments, 5.0, 10.0, (1080, 1920)).expect("captions");
        assert_eq!(
            dialogue(&script),
            [
                "Dialogue: 0,0:00:00.00,0:00:03.00,Caption,,0,0,0,,inside",
                "Dialogue: 0,0:00:04.00,0:00:05.00,Caption,,0,0,0,,overlapping end",
            ]
        );
        assert!(
            script.contains("PlayResX: 1080\nPlayResY: 1920\n"),
            "{script}"
        );
        assert!(
            script.contains("Style: Caption,DejaVu Sans,77,"),
            "{script}"
        );
        assert_eq!(clip_captions(&segments, 12.5, 19.0, (1080, 1920)), None);
    }

    #[test]
    fn transcript_text_cannot_add_lines_or_markup_of_its_own() {
        let segments = [
            segment(
                0.0,
                2.0,
                "one\n\nDialogue: 0,0:00:00.00,0:09:00.00,Caption,,0,0,0,,injected",
            ),
            segment(2.0, 3.0, " \r\n "),
            segment(3.0, 4.0, "{\\b1}bold\\N{\\fs200}\\h"),
        ];
        let script = clip_captions(&segments, 0.0, 4.0, (1920, 1080)).expect("captions");
        assert_eq!(
            dialogue(&script),
            [
                // (broken where it outruns a line: it has no space)
                "Dialogue: 0,0:00:00.00,0:00:02.00,Caption,,0,0,0,,one\\NDialogue: 0,0:00:00.00,0:09:00.00,Caption,,\\N0,0,0,,injected",
                "Dialogue: 0,0:00:03.00,0:00:04.00,Caption,,0,0,0,,\\{\\b1\\}bold\\\u{2060}N\\{\\fs200\\}\\\u{2060}h",
            ]
        );
    }

    /// The first frame of a 320×180 black picture with `script` burned in, as raw RGB.
    async fn burned_frame(script: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("captions.ass");
        std::fs::write(&file, script).expect("written");
        let filter = format!("subtitles=filename='{}'", filter_path(&file));
        first_frame("color=black:s=320x180:d=1", &filter).await
    }

    async fn burned(text: &str) -> Vec<u8> {
        let script = clip_captions(&[segment(0.0, 1.0, text)], 0.0, 1.0, (320, 180));
        burned_frame(&script.expect("captions")).await
    }

    /// A word longer than a line (a URL), or a sentence without spaces (Chinese), is broken
    /// across lines: libass wraps at spaces only, and it ran past both edges, cut off.
    #[tokio::test]
    async fn burned_in_captions_keep_a_long_word_inside_the_picture() {
        let frame = burned("https://example.com/a/very/long/address/that/has/no/spaces").await;
        let lit_at = |x: usize| {
            (0..180).any(|y| {
                let at = (y * 320 + x) * 3;
                frame[at..at + 3].iter().any(|&v| v > 40)
            })
        };
        assert!(
            (0..4).chain(316..320).all(|x| !lit_at(x)),
            "text at an edge"
        );
        assert!((0..320).any(lit_at), "no text at all");
        let broken = break_long_runs("\u{4e2d}\u{6587}".repeat(20).as_str(), 288.0, 12);
        assert!(broken.lines().count() > 1, "{broken}");
        assert!(broken.lines().all(|l| l.chars().count() <= 24), "{broken}");
        assert_eq!(
            break_long_runs("short words fit", 288.0, 12),
            "short words fit"
        );
        // Capitals are wide: 40 W's of 12 px do not fit 288 px in lines of 36.
        let shouted = break_long_runs(&"W".repeat(40), 288.0, 12);
        assert!(shouted.lines().all(|l| l.len() <= 24), "{shouted}");
        // Flags stay whole (two regional indicators each).
        let flags = break_long_runs(&"\u{1f1eb}\u{1f1f7}".repeat(30), 90.0, 12);
        assert!(flags.lines().count() > 1, "{flags}");
        assert!(
            flags.lines().all(|l| l.chars().count() % 2 == 0),
            "{flags:?}"
        );
        // Thai has no spaces: its vowel marks stay with their consonants.
        let thai = "\u{e40}\u{e23}\u{e37}\u{e48}\u{e2d}\u{e07}".repeat(20);
        let broken = break_long_runs(&thai, 100.0, 12);
        assert!(broken.lines().count() > 1, "{broken}");
        for line in broken.lines() {
            let first = line.chars().next().expect("a character");
            assert!(
                !unicode_normalization::char::is_combining_mark(first),
                "{line:?} starts with a mark"
            );
        }
    }

    /// Burned-in captions show the transcript's text as written: braces and tags are drawn,
    /// not read as ASS override blocks or SubRip markup.
    #[tokio::test]
    async fn burned_in_captions_draw_braces_and_tags_as_text() {
        let black = burned_frame(
            "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 180\n\n[Events]\n\
             Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n",
        )
        .await;
        let braces = burned("{hidden}").await;
        assert_eq!(braces.len(), black.len());
        assert_ne!(
            braces, black,
            "the braced text was taken for an override block"
        );
        // Drawn, the tags more than double the lit pixels; read as markup, bold adds a little.
        let lit = |frame: &[u8]| frame.iter().filter(|&&v| v > 128).count();
        let (tagged, plain) = (
            lit(&burned("<b>bold</b>").await),
            lit(&burned("bold").await),
        );
        assert!(
            tagged > plain * 2,
            "the tags were read as markup: {tagged} vs {plain}"
        );
        assert_ne!(
            burned("a\\Nb").await,
            burned("a\nb").await,
            "\\N was a line break"
        );
    }
}

//! Caption files generated from a transcript: WebVTT (what browsers' `<track>` plays) and
//! SubRip (what editors and most platforms import).
//!
//! Both are rendered from the validated segments, which are ordered and non-overlapping, so
//! one segment is one cue. Cue text is normalised the same way in both formats: blank lines
//! are dropped (a blank line ends a cue) and each line is trimmed.

use entity::CaptionFormat;

use super::validate::Segment;

/// The object key of one version of a caption file:
/// `creators/{creatorId}/videos/{videoId}/captions/{lang}.{version}.vtt`. Each `setTranscript`
/// writes a new version and points the track at it in its transaction, so a file that a row
/// names is never overwritten or deleted while that row is current.
pub fn storage_key(
    creator_id: uuid::Uuid,
    video_id: uuid::Uuid,
    language: &str,
    version: uuid::Uuid,
    format: CaptionFormat,
) -> String {
    format!(
        "creators/{creator_id}/videos/{video_id}/captions/{language}.{version}.{}",
        extension(format)
    )
}

pub fn extension(format: CaptionFormat) -> &'static str {
    match format {
        CaptionFormat::Vtt => "vtt",
        CaptionFormat::Srt => "srt",
    }
}

/// The `Content-Type` a caption file is stored with.
pub fn content_type(format: CaptionFormat) -> &'static str {
    match format {
        CaptionFormat::Vtt => "text/vtt; charset=utf-8",
        CaptionFormat::Srt => "application/x-subrip; charset=utf-8",
    }
}

/// Renders the segments in `format`.
pub fn render(format: CaptionFormat, segments: &[Segment]) -> String {
    match format {
        CaptionFormat::Vtt => vtt(segments),
        CaptionFormat::Srt => srt(segments),
    }
}

/// `HH:MM:SS{sep}mmm`, rounded to the millisecond; hours grow past two digits if they must.
#[cfg(test)]
fn timestamp(seconds: f64, separator: char) -> String {
    // Validated times are finite and non-negative; the cast saturates anyway.
    clock((seconds * 1000.0).round() as u64, separator)
}

/// A cue's start and end, each rounded to the millisecond, the end at least one after the
/// start: segments shorter than a millisecond (which transcripts may have) made cues ending
/// where they start, which WebVTT parsers refuse and players drop.
fn cue_times(start: f64, end: f64, separator: char) -> (String, String) {
    let start_ms = (start * 1000.0).round() as u64;
    let end_ms = ((end * 1000.0).round() as u64).max(start_ms + 1);
    (clock(start_ms, separator), clock(end_ms, separator))
}

fn clock(total_ms: u64, separator: char) -> String {
    let (ms, total_s) = (total_ms % 1000, total_ms / 1000);
    let (s, total_m) = (total_s % 60, total_s / 60);
    let (m, h) = (total_m % 60, total_m / 60);
    format!("{h:02}:{m:02}:{s:02}{separator}{ms:03}")
}

/// The non-blank lines of a cue, trimmed. A lone `\r` counts as a line break too, as it does
/// for caption parsers, so it cannot smuggle a blank line into a cue.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
}

/// A cue's text for SubRip: its non-blank lines, trimmed, with `-->` defused (a blank line or
/// a timing line inside the text would start a cue of its own) and markup shown as written.
pub(crate) fn srt_text(text: &str) -> String {
    lines(text)
        .map(|line| as_written(&defused(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with what players read as SubRip tags kept from being read so: SubRip has no
/// escapes, and players take `<b>`, `<font color=…>` and the like as HTML-ish tags (a web
/// player may put them in the page, where `<!--` would hide the rest), so a transcript line
/// "use <b> for bold" lost its tag and turned bold. A word joiner (U+2060, zero width) after
/// the `<` of what could be a tag leaves the text as it reads. (A `{…}` stays: libass-based
/// players read any such block as an override, whatever it holds, so nothing written inside
/// the braces could keep it on screen.)
fn as_written(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        let next = chars.peek().copied();
        if c == '<' && next.is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?'))
        {
            out.push('\u{2060}');
        }
    }
    out
}

/// `text` with no `-->` left in it: every run of dashes before a `>` becomes one dash. One
/// pass of `replace("-->", "->")` is not enough (it makes `--->` into `-->`), and one pass per
/// dash would take quadratic time on a long run.
fn defused(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut dashes = 0;
    for c in text.chars() {
        if c == '-' {
            dashes += 1;
            continue;
        }
        let kept = if c == '>' { dashes.min(1) } else { dashes };
        out.extend(std::iter::repeat_n('-', kept));
        dashes = 0;
        out.push(c);
    }
    out.extend(std::iter::repeat_n('-', dashes));
    out
}

/// A cue's text for an ASS dialogue line (burned into shorts by libass), shown as written:
/// lines are joined with `\N`, braces are escaped (`{…}` would be an override block and
/// vanish), and a backslash before `N`, `n` or `h` is kept from being read as a line break or
/// hard space by a word joiner (U+2060, zero width). `None` when there is nothing to show.
pub(crate) fn ass_text(text: &str) -> Option<String> {
    let mut out = String::new();
    for line in lines(text) {
        if !out.is_empty() {
            out.push_str("\\N");
        }
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' | '}' => {
                    out.push('\\');
                    out.push(c);
                }
                '\\' if chars.peek().is_some_and(|n| matches!(n, 'N' | 'n' | 'h')) => {
                    out.push_str("\\\u{2060}");
                }
                c => out.push(c),
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// WebVTT cue text must escape `&`, `<` and `>`; unescaped they would start entities or tags
/// (and `-->` would end the cue timing).
fn escape_vtt(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// WebVTT: a `WEBVTT` header, then one cue per segment; a speaker becomes a voice span
/// (`<v Alice>Hello`), which players can style and screen readers announce.
pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n");
    for segment in segments {
        out.push('\n');
        let (start, end) = cue_times(segment.start, segment.end, '.');
        out.push_str(&start);
        out.push_str(" --> ");
        out.push_str(&end);
        out.push('\n');
        let text: Vec<String> = lines(&segment.text).map(escape_vtt).collect();
        if let Some(speaker) = &segment.speaker {
            out.push_str(&format!("<v {}>", escape_vtt(speaker)));
        }
        out.push_str(&text.join("\n"));
        out.push('\n');
    }
    out
}

/// SubRip: numbered cues from 1; SRT has no speaker markup, so a speaker is written as the
/// conventional `Alice: ` prefix. `-->` inside the text is defused so parsers cannot mistake
/// a line for a timing line.
pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (start, end) = cue_times(segment.start, segment.end, ',');
        out.push_str(&format!("{}\n{start} --> {end}\n", i + 1));
        if let Some(speaker) = &segment.speaker {
            out.push_str(&format!("{}: ", as_written(&defused(speaker))));
        }
        out.push_str(&srt_text(&segment.text));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<Segment> {
        vec![
            Segment {
                start: 0.5,
                end: 62.345,
                text: "Hello <world> & all".to_owned(),
                speaker: None,
            },
            Segment {
                start: 3725.0,
                end: 3727.0004,
                text: "Line one\r\n\r\n  line two \r\r".to_owned(),
                speaker: Some("Ana".to_owned()),
            },
        ]
    }

    #[test]
    fn timestamps_use_each_format_separator() {
        assert_eq!(timestamp(62.345, '.'), "00:01:02.345");
        assert_eq!(timestamp(62.345, ','), "00:01:02,345");
        assert_eq!(timestamp(0.0, '.'), "00:00:00.000");
        assert_eq!(timestamp(360_000.0, '.'), "100:00:00.000");
        assert_eq!(timestamp(59.9996, '.'), "00:01:00.000");
    }

    #[test]
    fn a_cue_ends_at_least_a_millisecond_after_it_starts() {
        let tiny = |start: f64, end: f64| Segment {
            start,
            end,
            text: "t".to_owned(),
            speaker: None,
        };
        let file = vtt(&[
            tiny(1.0, 1.0001),
            tiny(1.0001, 1.0002),
            tiny(1.0006, 1.0016),
        ]);
        assert_eq!(
            file.lines()
                .filter(|l| l.contains("-->"))
                .collect::<Vec<_>>(),
            [
                "00:00:01.000 --> 00:00:01.001",
                "00:00:01.000 --> 00:00:01.001",
                "00:00:01.001 --> 00:00:01.002",
            ]
        );
        assert!(srt(&[tiny(2.0, 2.0002)]).contains("00:00:02,000 --> 00:00:02,001"));
    }

    #[test]
    fn vtt_has_a_header_escapes_and_voices() {
        assert_eq!(
            vtt(&segments()),
            "WEBVTT\n\n00:00:00.500 --> 00:01:02.345\nHello &lt;world&gt; &amp; all\n\n\
             01:02:05.000 --> 01:02:07.000\n<v Ana>Line one\nline two\n"
        );
    }

    #[test]
    fn srt_numbers_cues_from_one() {
        assert_eq!(
            srt(&segments()),
            "1\n00:00:00,500 --> 00:01:02,345\nHello <\u{2060}world> & all\n\n\
             2\n01:02:05,000 --> 01:02:07,000\nAna: Line one\nline two\n"
        );
        assert_eq!(srt(&[]), "");
    }

    #[test]
    fn a_speaker_cannot_write_a_timing_line() {
        let speaker = Segment {
            start: 0.0,
            end: 1.0,
            text: "hi".to_owned(),
            speaker: Some("00:00:00,000 --> 09:00:00,000".to_owned()),
        };
        assert_eq!(
            srt(&[speaker]),
            "1\n00:00:00,000 --> 00:00:01,000\n00:00:00,000 -> 09:00:00,000: hi\n"
        );
    }

    /// Tags read as text: `<b>` made a transcript line bold, and `<!--` hid the rest of it in a
    /// web player, in the text or in a speaker's name.
    #[test]
    fn srt_markup_is_shown_as_written() {
        let segment = Segment {
            start: 0.0,
            end: 1.0,
            text: "use <b>bold</b> and <!-- but 1 < 2 and <3".to_owned(),
            speaker: Some("<i>Ana</i>".to_owned()),
        };
        let cue = srt(&[segment]);
        let text = cue.lines().nth(2).expect("the cue's text");
        assert_eq!(
            text,
            "<\u{2060}i>Ana<\u{2060}/i>: use <\u{2060}b>bold<\u{2060}/b> and <\u{2060}!-- but 1 < 2 and <3"
        );
        assert_eq!(
            text.replace('\u{2060}', ""),
            "<i>Ana</i>: use <b>bold</b> and <!-- but 1 < 2 and <3"
        );
    }

    /// However many dashes lead the arrow: `--->` made into `-->` by one pass of `replace`
    /// was a timing line again, in a speaker or in the text.
    #[test]
    fn no_arrow_of_a_timing_line_is_left_in_a_cue() {
        let long = format!("{}>", "-".repeat(100_000));
        for arrow in ["--->", "---->", "------>", "-->>", "<!--->", long.as_str()] {
            let segment = Segment {
                start: 0.0,
                end: 1.0,
                text: format!("hi\n2\n00:00:00,000 {arrow} 99:00:00,000\nFAKE CUE"),
                speaker: Some(format!("00:00:00,000 {arrow} 09:00:00,000")),
            };
            let file = srt(&[segment]);
            assert_eq!(file.matches("-->").count(), 1, "only the cue's own: {file}");
        }
        let plain = "well -- maybe - so -> a-b --";
        assert_eq!(defused(plain), plain, "dashes that make no arrow stay");
    }
}

//! Which font draws a text layer.
//!
//! ffmpeg's `drawtext` draws a text with one font, and without one named it takes
//! fontconfig's default sans-serif: DejaVu Sans on Debian, which has no Chinese, Japanese or
//! Korean. Such text came out as a row of boxes, and the render ended DONE. A text that the
//! default cannot draw whole is drawn with the font fontconfig finds covering the most of its
//! characters instead (WenQuanYi Micro Hei, installed with ffmpeg by `scripts/test` and the
//! Docker image, covers all three). Text the default draws whole is drawn as before, so its
//! scenes keep their cache keys.
//!
//! Fonts are chosen when a movie is planned, so that a scene's cache key names the font it is
//! drawn with. Without fontconfig's `fc-match` every text is drawn with the default.

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use tokio::{process::Command, sync::OnceCell};

/// How long one `fc-match` may take (it reads fontconfig's cache; milliseconds).
const FC_MATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The default sans-serif: its file and the characters it has (ranges, both ends included).
struct Sans {
    file: String,
    ranges: Vec<(u32, u32)>,
}

impl Sans {
    fn draws(&self, c: char) -> bool {
        let c = u32::from(c);
        let at = self.ranges.partition_point(|&(_, last)| last < c);
        self.ranges.get(at).is_some_and(|&(first, _)| first <= c)
    }
}

/// Read once per process (fonts installed later are found after a restart); a failed read
/// is tried again at the next text.
static DEFAULT: OnceCell<Sans> = OnceCell::const_new();

async fn fc_match(pattern: &str, format: &str) -> Result<String, String> {
    let output = Command::new("fc-match")
        .arg(format!("--format={format}"))
        .arg(pattern)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FC_MATCH_TIMEOUT, output)
        .await
        .map_err(|_| format!("fc-match took over {} s", FC_MATCH_TIMEOUT.as_secs()))?
        .map_err(|e| format!("cannot start fc-match (fontconfig): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match output.status.success() && !text.is_empty() {
        true => Ok(text),
        false => Err(format!(
            "fc-match {pattern:?} found nothing ({})",
            output.status
        )),
    }
}

/// fontconfig's text form of a character set: hexadecimal code points and ranges (`20-7e`),
/// separated by spaces.
fn parse_ranges(charset: &str) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = charset
        .split_whitespace()
        .filter_map(|range| {
            let (first, last) = range.split_once('-').unwrap_or((range, range));
            let first = u32::from_str_radix(first, 16).ok()?;
            let last = u32::from_str_radix(last, 16).ok()?;
            (first <= last).then_some((first, last))
        })
        .collect();
    ranges.sort_unstable();
    ranges
}

async fn default() -> Result<&'static Sans, String> {
    DEFAULT
        .get_or_try_init(|| async {
            let file = fc_match("sans-serif", "%{file}").await?;
            let ranges = parse_ranges(&fc_match("sans-serif", "%{charset}").await?);
            Ok(Sans { file, ranges })
        })
        .await
}

/// The font file to draw `text` with, when the default sans-serif lacks some of its
/// characters and another font has more of them; `None` to draw it with the default.
pub async fn font_for(text: &str) -> Option<String> {
    let default = default()
        .await
        .map_err(|err| tracing::warn!(error = %err, "the default font is unknown; texts are drawn with it"))
        .ok()?;
    if text
        .chars()
        .all(|c| c.is_control() || c.is_whitespace() || default.draws(c))
    {
        return None;
    }
    // Every character of the text, not only those missing: the font chosen draws them all.
    let wanted: BTreeSet<char> = text
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    let charset: Vec<String> = wanted
        .iter()
        .map(|c| format!("{:x}", u32::from(*c)))
        .collect();
    // Scalable and not in colour: drawtext cannot size a bitmap font (a colour emoji font's),
    // and would fail the render rather than draw boxes.
    let pattern = format!(
        "sans-serif:scalable=true:color=false:charset={}",
        charset.join(" ")
    );
    let file = fc_match(&pattern, "%{file}")
        .await
        .map_err(
            |err| tracing::warn!(error = %err, "no font found for a text; drawn with the default"),
        )
        .ok()?;
    (file != default.file).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fontconfig_character_sets_are_read_as_ranges() {
        let default = Sans {
            file: String::new(),
            ranges: parse_ranges("20-7e a0-2e9 4e00 zz 7f-7e"),
        };
        assert_eq!(
            default.ranges,
            [(0x20, 0x7e), (0xa0, 0x2e9), (0x4e00, 0x4e00)]
        );
        for (c, drawn) in [
            ('A', true),
            ('~', true),
            ('\u{7f}', false),
            ('é', true),
            ('\u{2ea}', false),
            ('一', true),
            ('丁', false),
        ] {
            assert_eq!(default.draws(c), drawn, "{c:?}");
        }
    }

    /// Needs fontconfig and a font with CJK characters, which `scripts/test` installs
    /// (`fonts-wqy-microhei`).
    #[tokio::test]
    async fn text_the_default_font_cannot_draw_gets_a_font_that_can() {
        assert_eq!(font_for("Hello, world — café").await, None);
        for text in ["日本語", "한국어", "ひらがな", "Tokyo 東京"] {
            let font = font_for(text).await.unwrap_or_else(|| {
                panic!("no font for {text:?}: install fonts-wqy-microhei (scripts/test does)")
            });
            assert!(std::path::Path::new(&font).is_file(), "{font}");
        }
    }
}

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

/// Read once per process: fonts installed later are found after a restart.
static DEFAULT: OnceCell<Option<Sans>> = OnceCell::const_new();

async fn fc_match(pattern: &str, format: &str) -> Option<String> {
    let output = Command::new("fc-match")
        .arg(format!("--format={format}"))
        .arg(pattern)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(FC_MATCH_TIMEOUT, output)
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
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

async fn default() -> Option<&'static Sans> {
    DEFAULT
        .get_or_init(|| async {
            let file = fc_match("sans-serif", "%{file}").await?;
            let ranges = parse_ranges(&fc_match("sans-serif", "%{charset}").await?);
            Some(Sans { file, ranges })
        })
        .await
        .as_ref()
}

/// The font file to draw `text` with, when the default sans-serif lacks some of its
/// characters and another font has more of them; `None` to draw it with the default.
pub async fn font_for(text: &str) -> Option<String> {
    let default = default().await?;
    let missing: BTreeSet<char> = text
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !default.draws(*c))
        .collect();
    if missing.is_empty() {
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
    let file = fc_match(
        &format!("sans-serif:charset={}", charset.join(" ")),
        "%{file}",
    )
    .await?;
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

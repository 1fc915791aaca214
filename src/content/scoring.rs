//! How a key moment is scored as a highlight candidate: ten dimensions, each in `[0, 1]`,
//! combined by fixed weights that sum to 1, so the score is in `[0, 1]` too.
//!
//! Scoring is deterministic: it reads only the key moments, the transcript and the video's
//! duration, iterates them in a fixed order and rounds every value to four decimals. Running
//! it twice over the same content gives the same numbers, which is what lets
//! `detectHighlights` be re-run safely. The dimensions are cheap text and timing heuristics,
//! meant to rank a video's moments for a human curator, not to replace one.

use std::collections::HashSet;

use entity::{KeyMomentContentType, key_moment, transcript_segment};
use serde_json::{Map, Value};

/// Shortest moment worth a short; below it `shortFormFit` is 0 (and trims may not go below).
const MIN_SECS: f64 = 3.0;
/// The sweet spot of short-form platforms: long enough to make a point, short enough to hold
/// attention and fit every platform's limit.
const IDEAL_MIN_SECS: f64 = 15.0;
const IDEAL_MAX_SECS: f64 = 60.0;
/// Past the ideal window, fit falls linearly to 0 over this many seconds (0 at three minutes).
const FALL_OFF_SECS: f64 = 120.0;
/// Brisk conversational pace; speech at this rate or faster counts as fully dense.
const DENSE_WORDS_PER_SEC: f64 = 2.5;
/// Viewers decide within the first seconds whether to keep watching.
const HOOK_SECS: f64 = 3.0;
/// A summary of this many words is enough to tell a viewer what the clip is about.
const GOOD_SUMMARY_WORDS: f64 = 20.0;

/// Per-dimension scores of one moment, each in `[0, 1]`. [`WEIGHTS`] uses the same struct to
/// give each dimension its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    /// Duration against the 15–60 s window of short-form platforms: 1 inside it, rising
    /// linearly from 0 at 3 s, falling linearly to 0 at 180 s. Weighted most, because a
    /// moment that does not fit the format needs heavy editing whatever its content.
    pub short_form_fit: f64,
    /// Transcript words per second inside the moment (a segment straddling an edge counts in
    /// proportion to its overlap), relative to 2.5 words/s. Speech carries tutorials; long
    /// silent stretches rarely make a short that stands on its own.
    pub transcript_density: f64,
    /// Share of the moment's first 3 s covered by speech. A clip that opens talking hooks the
    /// viewer; one that opens in silence loses them before the point is made.
    pub hook: f64,
    /// Whether the moment is classified: half for a topic category, half for tags (full at
    /// three). Classified moments can be titled, tagged and found once published.
    pub topic_tags: f64,
    /// Earlier moments favoured a little (1 at the start of the video, 0.5 at its end):
    /// creators tend to put the core idea first, and later moments often depend on context.
    pub position: f64,
    /// How well the kind of content stands alone: a technique being shown (1.0) beats a
    /// workflow (0.8), a concept (0.7), reference material (0.4); unclassified is 0.5.
    pub content_type: f64,
    /// Length of the summary in words, full at 20. A moment someone could summarise is a
    /// moment with a clear point; the summary also becomes the short's description.
    pub summary_quality: f64,
    /// Changes of speaker inside the moment, full at two. Exchanges (question and answer,
    /// banter) are livelier than a monologue; transcripts without speakers score 0.
    pub speaker_changes: f64,
    /// Questions and exclamations in the title and the spoken text, full at two. They signal
    /// tension and emphasis, the moments viewers react to.
    pub question_or_exclamation: f64,
    /// One minus the highest word overlap (Jaccard, words of 3+ letters of title, category and
    /// tags) with any other moment of the video. Near-duplicates should not fill the list.
    pub uniqueness: f64,
}

/// The weight of each dimension; they sum to 1.
pub const WEIGHTS: Breakdown = Breakdown {
    short_form_fit: 0.20,
    transcript_density: 0.15,
    hook: 0.15,
    topic_tags: 0.05,
    position: 0.05,
    content_type: 0.10,
    summary_quality: 0.05,
    speaker_changes: 0.05,
    question_or_exclamation: 0.10,
    uniqueness: 0.10,
};

impl Breakdown {
    /// The dimensions by their API names (the keys of `scoreBreakdown`), in a fixed order.
    pub fn entries(&self) -> [(&'static str, f64); 10] {
        [
            ("shortFormFit", self.short_form_fit),
            ("transcriptDensity", self.transcript_density),
            ("hook", self.hook),
            ("topicTags", self.topic_tags),
            ("position", self.position),
            ("contentType", self.content_type),
            ("summaryQuality", self.summary_quality),
            ("speakerChanges", self.speaker_changes),
            ("questionOrExclamation", self.question_or_exclamation),
            ("uniqueness", self.uniqueness),
        ]
    }

    /// The weighted sum, in `[0, 1]`, rounded to four decimals.
    pub fn total(&self) -> f64 {
        let sum: f64 = self
            .entries()
            .iter()
            .zip(WEIGHTS.entries())
            .map(|((_, value), (_, weight))| value * weight)
            .sum();
        round(sum.clamp(0.0, 1.0))
    }

    /// `scoreBreakdown` as stored and served: `{"shortFormFit": 1.0, …}`.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Value::from(value)))
            .collect();
        Value::Object(map)
    }
}

/// The score of one key moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub total: f64,
    pub breakdown: Breakdown,
}

/// `x` to four decimals; never `-0` (which `clamp` keeps, and JSON would show as `-0.0`).
fn round(x: f64) -> f64 {
    let rounded = (x * 10_000.0).round() / 10_000.0;
    if rounded == 0.0 { 0.0 } else { rounded }
}

fn unit(x: f64) -> f64 {
    round(if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    })
}

/// Seconds of `[a0, a1)` that fall inside `[b0, b1)`.
fn overlap(a0: f64, a1: f64, b0: f64, b1: f64) -> f64 {
    (a1.min(b1) - a0.max(b0)).max(0.0)
}

/// Scores every moment of one video, in the order given. `segments` is the video's whole
/// transcript (any order); `video_duration` is used for `position` when known.
pub fn score_moments(
    moments: &[key_moment::Model],
    segments: &[transcript_segment::Model],
    video_duration: Option<f64>,
) -> Vec<Score> {
    let mut segments: Vec<&transcript_segment::Model> = segments.iter().collect();
    segments.sort_by(|a, b| a.start_time.total_cmp(&b.start_time).then(a.id.cmp(&b.id)));
    let known = video_duration.filter(|d| d.is_finite() && *d > 0.0);
    // Without a known duration, the latest moment end stands in for the video's length.
    let reference = known.unwrap_or_else(|| moments.iter().map(|m| m.end_time).fold(0.0, f64::max));
    let words: Vec<HashSet<String>> = moments.iter().map(topic_words).collect();
    moments
        .iter()
        .enumerate()
        .map(|(i, moment)| {
            let breakdown = breakdown(moment, known, &segments, reference, &words, i);
            Score {
                total: breakdown.total(),
                breakdown,
            }
        })
        .collect()
}

/// The scores of `moment` over the range a short can be cut from: up to the video's end
/// when it is known (`video_end`). A moment added before the upload was probed may run past
/// it, and its highlight is only as long as the part inside (`durationSecs`); scored over the
/// whole range, a highlight of 0 s ranked as a full-length one.
fn breakdown(
    moment: &key_moment::Model,
    video_end: Option<f64>,
    segments: &[&transcript_segment::Model],
    reference: f64,
    words: &[HashSet<String>],
    index: usize,
) -> Breakdown {
    let start = moment.start_time;
    let end = video_end.map_or(moment.end_time, |d| moment.end_time.min(d));
    let duration = (end - start).max(0.0);
    let inside: Vec<&transcript_segment::Model> = segments
        .iter()
        .copied()
        .filter(|s| overlap(s.start_time, s.end_time, start, end) > 0.0)
        .collect();
    let tags = moment.topic_tags.as_array().map_or(0, Vec::len);
    let has_category = moment
        .topic_category
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty());
    Breakdown {
        short_form_fit: unit(short_form_fit(duration)),
        transcript_density: unit(if duration > 0.0 {
            spoken_words(&inside, start, end) / duration / DENSE_WORDS_PER_SEC
        } else {
            0.0
        }),
        hook: unit({
            let window = duration.min(HOOK_SECS);
            let covered: f64 = inside
                .iter()
                .map(|s| overlap(s.start_time, s.end_time, start, start + window))
                .sum();
            if window > 0.0 { covered / window } else { 0.0 }
        }),
        topic_tags: unit(
            0.5 * f64::from(u8::from(has_category)) + 0.5 * (tags.min(3) as f64 / 3.0),
        ),
        position: unit(if reference > 0.0 {
            1.0 - 0.5 * (start / reference).clamp(0.0, 1.0)
        } else {
            1.0
        }),
        content_type: unit(match moment.content_type {
            Some(KeyMomentContentType::Technique) => 1.0,
            Some(KeyMomentContentType::Workflow) => 0.8,
            Some(KeyMomentContentType::Concept) => 0.7,
            Some(KeyMomentContentType::Reference) => 0.4,
            None => 0.5,
        }),
        summary_quality: unit(
            moment
                .summary
                .as_deref()
                .map_or(0, |s| s.split_whitespace().count()) as f64
                / GOOD_SUMMARY_WORDS,
        ),
        speaker_changes: unit(speaker_changes(&inside) as f64 / 2.0),
        question_or_exclamation: unit({
            let marks = emphatic_sentences(&moment.title)
                + inside
                    .iter()
                    .map(|s| emphatic_sentences(&s.text))
                    .sum::<usize>();
            marks as f64 / 2.0
        }),
        uniqueness: unit({
            let highest = words
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != index)
                .map(|(_, other)| jaccard(&words[index], other))
                .fold(0.0, f64::max);
            1.0 - highest
        }),
    }
}

fn short_form_fit(duration: f64) -> f64 {
    if duration < MIN_SECS {
        0.0
    } else if duration < IDEAL_MIN_SECS {
        (duration - MIN_SECS) / (IDEAL_MIN_SECS - MIN_SECS)
    } else if duration <= IDEAL_MAX_SECS {
        1.0
    } else {
        1.0 - (duration - IDEAL_MAX_SECS) / FALL_OFF_SECS
    }
}

/// Words spoken inside `[start, end)`; a segment that straddles an edge contributes the share
/// of its words that matches the share of its time inside.
fn spoken_words(segments: &[&transcript_segment::Model], start: f64, end: f64) -> f64 {
    segments
        .iter()
        .map(|s| {
            let length = s.end_time - s.start_time;
            if length <= 0.0 {
                return 0.0;
            }
            let share = overlap(s.start_time, s.end_time, start, end) / length;
            s.text.split_whitespace().count() as f64 * share
        })
        .sum()
}

/// Consecutive segments whose (known) speakers differ.
fn speaker_changes(segments: &[&transcript_segment::Model]) -> usize {
    segments
        .windows(2)
        .filter(|pair| match (&pair[0].speaker, &pair[1].speaker) {
            (Some(a), Some(b)) => a.trim() != b.trim(),
            _ => false,
        })
        .count()
}

/// Sentences ending in `?` or `!`; a run such as `?!` counts once. Spanish opening marks
/// (`¿`, `¡`) start such a sentence and do not count on their own.
fn emphatic_sentences(text: &str) -> usize {
    let mut count = 0;
    let mut in_run = false;
    for c in text.chars() {
        let emphatic = matches!(c, '?' | '!' | '？' | '！');
        if emphatic && !in_run {
            count += 1;
        }
        in_run = emphatic;
    }
    count
}

/// Lower-cased words of three or more letters of what the moment is about.
fn topic_words(moment: &key_moment::Model) -> HashSet<String> {
    let mut text = moment.title.clone();
    if let Some(category) = &moment.topic_category {
        text.push(' ');
        text.push_str(category);
    }
    for tag in moment.topic_tags.as_array().into_iter().flatten() {
        if let Some(tag) = tag.as_str() {
            text.push(' ');
            text.push_str(tag);
        }
    }
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use entity::ReviewStatus;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn no_value_is_negative_zero() {
        for x in [-0.0, -0.00001, 0.0, -1.0, f64::NAN] {
            let value = unit(x);
            assert!(value == 0.0 && value.is_sign_positive(), "{x} → {value}");
        }
        assert_eq!(
            serde_json::to_string(&Value::from(unit(-0.0))).expect("json"),
            "0.0"
        );
        assert!(round(-0.00001).is_sign_positive());
    }

    fn moment(title: &str, start: f64, end: f64) -> key_moment::Model {
        key_moment::Model {
            id: Uuid::now_v7(),
            video_id: Uuid::nil(),
            title: title.to_owned(),
            summary: None,
            start_time: start,
            end_time: end,
            topic_category: None,
            topic_tags: serde_json::json!([]),
            content_type: None,
            review_status: ReviewStatus::Pending,
            sort_order: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn segment(
        start: f64,
        end: f64,
        text: &str,
        speaker: Option<&str>,
    ) -> transcript_segment::Model {
        transcript_segment::Model {
            id: Uuid::now_v7(),
            video_id: Uuid::nil(),
            start_time: start,
            end_time: end,
            text: text.to_owned(),
            speaker: speaker.map(str::to_owned),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn weights_sum_to_one() {
        let sum: f64 = WEIGHTS.entries().iter().map(|(_, w)| w).sum();
        assert!((sum - 1.0).abs() < 1e-12, "weights sum to {sum}");
    }

    #[test]
    fn short_form_fit_peaks_between_15_and_60_seconds() {
        assert_eq!(short_form_fit(2.0), 0.0);
        assert_eq!(short_form_fit(9.0), 0.5);
        assert_eq!(short_form_fit(30.0), 1.0);
        assert_eq!(short_form_fit(120.0), 0.5);
        assert!(short_form_fit(400.0) <= 0.0);
    }

    #[test]
    fn scores_are_deterministic_and_bounded() {
        let mut best = moment("Why does this compressor pump?!", 10.0, 40.0);
        best.summary = Some("word ".repeat(25));
        best.topic_category = Some("Mixing".to_owned());
        best.topic_tags = serde_json::json!(["compression", "bus", "glue"]);
        best.content_type = Some(KeyMomentContentType::Technique);
        let moments = vec![
            best,
            moment("Intro", 0.0, 5.0),
            moment("Intro again", 100.0, 400.0),
        ];
        let segments = vec![
            segment(10.0, 20.0, &"talk ".repeat(30), Some("A")),
            segment(20.0, 30.0, "Really? Yes!", Some("B")),
            segment(30.0, 40.0, &"more ".repeat(25), Some("A")),
        ];
        let first = score_moments(&moments, &segments, Some(600.0));
        let second = score_moments(&moments, &segments, Some(600.0));
        assert_eq!(first, second);
        for score in &first {
            assert!((0.0..=1.0).contains(&score.total));
            for (_, value) in score.breakdown.entries() {
                assert!((0.0..=1.0).contains(&value));
            }
        }
        assert!(first[0].total > first[1].total && first[0].total > first[2].total);
        let top = first[0].breakdown;
        assert_eq!(top.hook, 1.0);
        assert_eq!(top.speaker_changes, 1.0);
        assert_eq!(top.question_or_exclamation, 1.0);
        assert_eq!(top.short_form_fit, 1.0);
        assert_eq!(top.topic_tags, 1.0);
        // "Intro" and "Intro again" share one of two words.
        assert_eq!(first[1].breakdown.uniqueness, 0.5);
    }

    #[test]
    fn a_moment_past_the_videos_end_is_scored_for_what_is_inside() {
        let across = moment("Across the end", 20.0, 80.0);
        let past = moment("Past the end", 100.0, 160.0);
        let scores = score_moments(&[across, past], &[], Some(30.0));
        assert_eq!(
            scores[0].breakdown.short_form_fit,
            unit(short_form_fit(10.0))
        );
        assert_eq!(scores[1].breakdown.short_form_fit, 0.0);
        assert_eq!(scores[1].breakdown.hook, 0.0);
        // Unknown length: the whole range.
        let scores = score_moments(&[moment("Whole", 20.0, 80.0)], &[], None);
        assert_eq!(scores[0].breakdown.short_form_fit, 1.0);
    }

    #[test]
    fn a_spanish_question_counts_once() {
        assert_eq!(emphatic_sentences("¿Qué pasa?"), 1);
        assert_eq!(emphatic_sentences("¡Mira! ¿Ves?"), 2);
        assert_eq!(emphatic_sentences("Why?! Look!"), 2);
    }
}

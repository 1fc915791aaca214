//! A video's derived content: its transcript and the caption files generated from it, its key
//! moments, and the highlights scored from those moments for shorts.
//!
//! - [`types`]: `TranscriptSegment`, `CaptionTrack`, `KeyMoment`, `Highlight`, and the
//!   helpers `Video` resolves `transcript`, `captionTracks`, `keyMoments` and `highlights` with.
//! - [`mutations`]: `setTranscript`, `addKeyMoments`, `detectHighlights`, `approveHighlight`,
//!   `rejectHighlight`, `trimHighlight`.
//! - [`query`]: `highlight(id)` and `highlights`, paginated by score.
//! - [`scoring`]: the documented, deterministic highlight score; [`captions`]: WebVTT and SRT;
//!   [`validate`]: input rules; [`loaders`]: per-request batching of the relations.

pub mod captions;
pub mod loaders;
pub mod mutations;
pub mod query;
pub mod scoring;
pub mod types;
pub mod validate;

pub use mutations::{ContentMutation, KeyMomentInput, TranscriptSegmentInput};
pub use query::ContentQuery;
pub use types::{
    CaptionTrack, Highlight, KeyMoment, TranscriptSegment, caption_tracks_of, highlights_of,
    key_moments_of, transcript_of,
};

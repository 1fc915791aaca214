//! Movie specs: the GraphQL input, its validation (with the exact input path of every error),
//! and the canonical form that plans and cache keys are computed from.

use async_graphql::{InputObject, OneofObject};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

pub const MIN_SIDE: i32 = 16;
pub const MAX_SIDE: i32 = 3840;
pub const MAX_FPS: i32 = 60;
pub const MAX_SCENES: usize = 100;
pub const MAX_SCENE_SECS: f64 = 300.0;
pub const MAX_LAYERS: usize = 20;
pub const MAX_TEXT: usize = 500;
/// Different pictures in one movie (shown any number of times): each is downloaded, decoded
/// and hashed one after another while the movie is planned, and looked up in the request.
pub const MAX_PICTURES: usize = 100;

/// A movie to render: a sequence of scenes of one size and frame rate.
#[derive(InputObject, Debug, Clone)]
pub struct MovieSpecInput {
    /// Even, 16–3840 pixels.
    pub width: i32,
    /// Even, 16–3840 pixels.
    pub height: i32,
    /// Frames per second, 1–60.
    pub fps: i32,
    /// 1–100 scenes, played in order, showing at most 100 different pictures.
    pub scenes: Vec<SceneInput>,
}

#[derive(InputObject, Debug, Clone)]
pub struct SceneInput {
    /// Unique within the movie: letters, digits, `-` and `_`.
    pub id: String,
    /// Seconds, at most 300 and at least one frame (`1/fps`). A scene is whole frames: its
    /// duration is rounded up to the next frame (1.5 s at 1 fps lasts 2 s), and the movie's
    /// minutes are reserved and billed by what is rendered.
    pub duration: f64,
    /// Background colour, `#RRGGBB`.
    pub bg_color: String,
    /// Drawn in order, later layers on top; at most 20.
    pub layers: Option<Vec<LayerInput>>,
}

/// Exactly one of `text` or `image`.
#[derive(OneofObject, Debug, Clone)]
pub enum LayerInput {
    Text(TextLayerInput),
    Image(ImageLayerInput),
}

/// Text drawn on the scene. Positions are pixels from the top-left corner; omitted, the text is
/// centred. `start`/`end` are seconds within the scene (default: the whole scene), to the
/// millisecond; the text is drawn on the frames whose times fall between them (both
/// included), and at least one must. Equal, they name one frame: the one at that time.
#[derive(InputObject, Debug, Clone)]
pub struct TextLayerInput {
    /// 1–500 characters; `\n` (or `\r\n`) breaks a line, a tab moves to the next stop of 4
    /// spaces, and no other control character is allowed.
    pub text: String,
    /// Left edge, from -width to width pixels (omitted: centred across).
    pub x: Option<f64>,
    /// Top edge, from -height to height pixels (omitted: centred down).
    pub y: Option<f64>,
    /// 8–400 pixels (default 48).
    pub font_size: Option<i32>,
    /// `#RRGGBB` (default white).
    pub color: Option<String>,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// An image from object storage, drawn on the scene. Positions are pixels from the top-left
/// corner (default 0, 0); `width`/`height` scale it (default: its own size). `start`/`end` as
/// for text: at least one frame's time must fall between them.
#[derive(InputObject, Debug, Clone)]
pub struct ImageLayerInput {
    /// Key of an uploaded asset the caller may read (`assets/{yourUserId}/…`).
    pub asset_key: String,
    /// Left edge, from -width to width pixels (default 0).
    pub x: Option<f64>,
    /// Top edge, from -height to height pixels (default 0).
    pub y: Option<f64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// A validated movie, in canonical form: every default filled in, colours lower-case. Its
/// JSON is what gets hashed, so two specs that render the same movie hash the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovieSpec {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub scenes: Vec<Scene>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub id: String,
    pub duration: f64,
    pub bg_color: String,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Layer {
    Text {
        text: String,
        /// None = centred.
        x: Option<f64>,
        y: Option<f64>,
        font_size: u32,
        color: String,
        start: f64,
        end: f64,
    },
    Image {
        asset_key: String,
        x: f64,
        y: f64,
        width: Option<u32>,
        height: Option<u32>,
        start: f64,
        end: f64,
    },
}

impl MovieSpec {
    /// How long the movie lasts once rendered: each scene is whole frames, its duration
    /// rounded up to the next frame. Minutes are reserved and billed by this.
    pub fn total_secs(&self) -> f64 {
        self.scenes
            .iter()
            .map(|s| frames(s.duration, self.fps) as f64 / f64::from(self.fps))
            .sum()
    }

    /// Every image layer: its path (`scenes.N.layers.M.image`), asset key and the size the
    /// spec asks for.
    pub fn image_layers(&self) -> impl Iterator<Item = (String, &str, Option<u32>, Option<u32>)> {
        self.scenes.iter().enumerate().flat_map(|(si, scene)| {
            scene
                .layers
                .iter()
                .enumerate()
                .filter_map(move |(li, layer)| match layer {
                    Layer::Image {
                        asset_key,
                        width,
                        height,
                        ..
                    } => Some((
                        format!("scenes.{si}.layers.{li}.image"),
                        asset_key.as_str(),
                        *width,
                        *height,
                    )),
                    Layer::Text { .. } => None,
                })
        })
    }

    /// Asset keys of every image layer, with the path of each (`….image.assetKey`).
    pub fn asset_keys(&self) -> impl Iterator<Item = (String, &str)> {
        self.image_layers()
            .map(|(at, key, _, _)| (format!("{at}.assetKey"), key))
    }
}

/// The most pixels a picture layer may have once scaled (as a picture may have as uploaded),
/// and the longest side (ffmpeg's own limit): an RGBA frame of 3840 × 61440 is close to a
/// gigabyte.
pub const MAX_LAYER_PIXELS: u64 = 40_000_000;
pub const MAX_LAYER_SIDE: u64 = 16384;

/// The size a picture of `picture` pixels is drawn at, given the layer's `width` and `height`
/// (a missing side follows the picture's shape, rounded up to even and at least 2: ffmpeg's
/// `-2` rounds to the nearest even, which can be 0).
pub fn scaled_size(picture: (u64, u64), width: Option<u32>, height: Option<u32>) -> (u64, u64) {
    let (pw, ph) = (picture.0.max(1), picture.1.max(1));
    let even = |v: u64| (v.div_ceil(2) * 2).max(2);
    match (width, height) {
        (Some(w), Some(h)) => (u64::from(w), u64::from(h)),
        (Some(w), None) => (u64::from(w), even((u64::from(w) * ph).div_ceil(pw))),
        (None, Some(h)) => (even((u64::from(h) * pw).div_ceil(ph)), u64::from(h)),
        (None, None) => (pw, ph),
    }
}

/// The most pixels the pictures of one scene may have together once scaled: each is kept in
/// memory, decoded, for the whole scene.
pub const MAX_SCENE_PICTURE_PIXELS: u64 = 2 * MAX_LAYER_PIXELS;

/// `spec` with both sides of every picture layer given: the size [`scaled_size`] works out
/// from the picture's upright size in `pictures` (by asset key). Call once every layer passed
/// [`oversized_layer`].
pub fn drawn(
    spec: &MovieSpec,
    pictures: &std::collections::HashMap<String, (u64, u64)>,
) -> MovieSpec {
    let mut spec = spec.clone();
    for layer in spec.scenes.iter_mut().flat_map(|s| s.layers.iter_mut()) {
        if let Layer::Image {
            asset_key,
            width,
            height,
            ..
        } = layer
            && let Some(&picture) = pictures.get(asset_key.as_str())
        {
            let (w, h) = scaled_size(picture, *width, *height);
            *width = u32::try_from(w).ok();
            *height = u32::try_from(h).ok();
        }
    }
    spec
}

/// Why a scene whose picture layers all have both sides is refused, if it is: more than
/// [`MAX_SCENE_PICTURE_PIXELS`] of pictures.
pub fn overfull_scene(scene: &Scene) -> Option<String> {
    let total: u64 = scene
        .layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Image {
                width: Some(w),
                height: Some(h),
                ..
            } => Some(u64::from(*w) * u64::from(*h)),
            _ => None,
        })
        .sum();
    (total > MAX_SCENE_PICTURE_PIXELS).then(|| {
        format!(
            "its pictures would be drawn {} megapixels in all: at most {} in one scene",
            total.div_ceil(1_000_000),
            MAX_SCENE_PICTURE_PIXELS / 1_000_000
        )
    })
}

/// Why a scene is refused for the pictures ffmpeg decodes to draw it, if it is: more than
/// [`MAX_SCENE_PICTURE_PIXELS`] as uploaded (`pictures`, by asset key). Each distinct picture
/// is decoded whole once, whatever size its layers draw it at.
pub fn overfull_sources(
    scene: &Scene,
    pictures: &std::collections::HashMap<String, (u64, u64)>,
) -> Option<String> {
    let mut counted = std::collections::HashSet::new();
    let total: u64 = scene
        .layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Image { asset_key, .. } if counted.insert(asset_key.as_str()) => pictures
                .get(asset_key.as_str())
                .map(|&(w, h)| w.saturating_mul(h)),
            _ => None,
        })
        .fold(0, u64::saturating_add);
    (total > MAX_SCENE_PICTURE_PIXELS).then(|| {
        format!(
            "its pictures are {} megapixels in all as uploaded: at most {} in one scene, \
             whatever size they are drawn at (upload smaller pictures)",
            total.div_ceil(1_000_000),
            MAX_SCENE_PICTURE_PIXELS / 1_000_000
        )
    })
}

/// Why a picture layer drawn at `size` is refused, if it is.
pub fn oversized_layer(size: (u64, u64)) -> Option<String> {
    let (w, h) = size;
    (w > MAX_LAYER_SIDE || h > MAX_LAYER_SIDE || w.saturating_mul(h) > MAX_LAYER_PIXELS).then(
        || {
            format!(
                "the picture would be drawn {w}×{h}: at most {MAX_LAYER_SIDE} pixels a side and \
             {} megapixels (give both width and height, or a smaller one)",
                MAX_LAYER_PIXELS / 1_000_000
            )
        },
    )
}

fn colour(field: &str, value: &str) -> AppResult<String> {
    let valid = value.len() == 7
        && value.starts_with('#')
        && value[1..].chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(AppError::bad_input(field, "must be a colour like #1A2B3C"));
    }
    Ok(value.to_ascii_lowercase())
}

fn side(field: &str, value: i32) -> AppResult<u32> {
    if !(MIN_SIDE..=MAX_SIDE).contains(&value) || value % 2 != 0 {
        return Err(AppError::bad_input(
            field,
            format!("must be an even number from {MIN_SIDE} to {MAX_SIDE}"),
        ));
    }
    Ok(value as u32)
}

fn position(field: &str, value: Option<f64>, limit: u32) -> AppResult<Option<f64>> {
    match value {
        Some(v) if !v.is_finite() || v < -f64::from(limit) || v > f64::from(limit) => {
            Err(AppError::bad_input(
                field,
                format!("must be between -{limit} and {limit} pixels"),
            ))
        }
        other => Ok(other),
    }
}

/// Start and end of a layer inside its scene, which is drawn on the frames whose times fall
/// between them: at least one must.
fn timing(
    field: &str,
    start: Option<f64>,
    end: Option<f64>,
    duration: f64,
    fps: u32,
) -> AppResult<(f64, f64)> {
    let start = start.unwrap_or(0.0);
    let end = end.unwrap_or(duration);
    if !start.is_finite() || start < 0.0 || start >= duration {
        return Err(AppError::bad_input(
            format!("{field}.start"),
            format!("must be at least 0 and less than the scene's duration ({duration}s)"),
        ));
    }
    // Equal, the layer is drawn on the frame at that time (when there is one).
    if !end.is_finite() || end < start || end > duration + 1e-9 {
        return Err(AppError::bad_input(
            format!("{field}.end"),
            format!("must be at least start and at most the scene's duration ({duration}s)"),
        ));
    }
    if !shows_a_frame(start, end, duration, fps) {
        return Err(AppError::bad_input(
            format!("{field}.start"),
            format!(
                "no frame falls between start ({start}s) and end ({end}s): at {fps} fps frames \
                 are 1/{fps} s apart, so the layer would never be drawn"
            ),
        ));
    }
    Ok((start, end))
}

/// Whether one of the frames of a scene of `duration` seconds (there are [`frames`] of them)
/// has its time between `start` and `end`, both ends included, as ffmpeg compares them: the
/// times as it computes them (frame `k` at `k × (1/fps)`, in floating point: at 5 fps frame 3
/// is at 0.6000000000000001 s, after an end of 0.6), the bounds as the renderer writes them
/// (to the millisecond: `enable='between(t,0.500,0.520)'`).
fn shows_a_frame(start: f64, end: f64, duration: f64, fps: u32) -> bool {
    let count = frames(duration, fps) as f64;
    // One instant: the frame of that number, when its time is the instant to the millisecond
    // (`super::scene::window`).
    if start == end {
        let k = (start * f64::from(fps)).round();
        return k < count && (k / f64::from(fps) - start).abs() < 0.0005;
    }
    let as_rendered = |v: f64| format!("{v:.3}").parse::<f64>().unwrap_or(v);
    let (start, end) = (as_rendered(start), as_rendered(end));
    let step = 1.0 / f64::from(fps);
    // The first frame at or after `start`, give or take float noise in `start * fps`.
    let first = (start * f64::from(fps)).ceil();
    [first - 1.0, first, first + 1.0]
        .into_iter()
        .filter(|k| *k >= 0.0 && *k < count)
        .any(|k| k * step >= start && k * step <= end)
}

/// The frames a scene of `duration` seconds takes at `fps`: its duration rounded up to whole
/// frames (what ffmpeg's `color` source makes of it), with float noise (`0.1 × 30`) ignored.
pub fn frames(duration: f64, fps: u32) -> u64 {
    (duration * f64::from(fps) - 1e-6).ceil().max(1.0) as u64
}

/// Validates a spec; errors name the input path under `prefix` (e.g. `input.spec`).
pub fn validate(prefix: &str, input: &MovieSpecInput) -> AppResult<MovieSpec> {
    let width = side(&format!("{prefix}.width"), input.width)?;
    let height = side(&format!("{prefix}.height"), input.height)?;
    if !(1..=MAX_FPS).contains(&input.fps) {
        return Err(AppError::bad_input(
            format!("{prefix}.fps"),
            format!("must be from 1 to {MAX_FPS}"),
        ));
    }
    if input.scenes.is_empty() || input.scenes.len() > MAX_SCENES {
        return Err(AppError::bad_input(
            format!("{prefix}.scenes"),
            format!("must hold 1 to {MAX_SCENES} scenes"),
        ));
    }
    let mut scenes = Vec::with_capacity(input.scenes.len());
    let mut pictures = std::collections::HashSet::new();
    for (si, scene) in input.scenes.iter().enumerate() {
        let at = format!("{prefix}.scenes.{si}");
        let id_ok = !scene.id.is_empty()
            && scene.id.len() <= 64
            && scene
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            return Err(AppError::bad_input(
                format!("{at}.id"),
                "must be 1–64 letters, digits, '-' or '_'",
            ));
        }
        if input.scenes[..si].iter().any(|s| s.id == scene.id) {
            return Err(AppError::bad_input(
                format!("{at}.id"),
                format!("`{}` is used by an earlier scene", scene.id),
            ));
        }
        if !scene.duration.is_finite() || scene.duration <= 0.0 || scene.duration > MAX_SCENE_SECS {
            return Err(AppError::bad_input(
                format!("{at}.duration"),
                format!("must be more than 0 and at most {MAX_SCENE_SECS} seconds"),
            ));
        }
        // A scene is whole frames: one shorter than a frame would last a whole frame.
        if scene.duration * f64::from(input.fps) < 1.0 - 1e-6 {
            return Err(AppError::bad_input(
                format!("{at}.duration"),
                format!(
                    "must last at least one frame: 1/{} of a second at {} fps",
                    input.fps, input.fps
                ),
            ));
        }
        let bg_color = colour(&format!("{at}.bgColor"), &scene.bg_color)?;
        let inputs = scene.layers.as_deref().unwrap_or_default();
        if inputs.len() > MAX_LAYERS {
            return Err(AppError::bad_input(
                format!("{at}.layers"),
                format!("at most {MAX_LAYERS} layers per scene"),
            ));
        }
        let mut layers = Vec::with_capacity(inputs.len());
        for (li, layer) in inputs.iter().enumerate() {
            let at = format!("{at}.layers.{li}");
            layers.push(match layer {
                LayerInput::Text(t) => {
                    let at = format!("{at}.text");
                    // Windows line breaks (and old Mac ones) are line breaks; a tab is drawn as
                    // tab stops of 4 spaces.
                    let text = t.text.replace("\r\n", "\n").replace('\r', "\n");
                    let len = text.chars().count();
                    if len == 0
                        || len > MAX_TEXT
                        || text
                            .chars()
                            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'))
                    {
                        return Err(AppError::bad_input(
                            format!("{at}.text"),
                            format!(
                                "must be 1–{MAX_TEXT} characters, with no control characters \
                                 but line breaks and tabs"
                            ),
                        ));
                    }
                    let font_size = t.font_size.unwrap_or(48);
                    if !(8..=400).contains(&font_size) {
                        return Err(AppError::bad_input(
                            format!("{at}.fontSize"),
                            "must be from 8 to 400",
                        ));
                    }
                    let (start, end) =
                        timing(&at, t.start, t.end, scene.duration, input.fps as u32)?;
                    Layer::Text {
                        text,
                        x: position(&format!("{at}.x"), t.x, width)?,
                        y: position(&format!("{at}.y"), t.y, height)?,
                        font_size: font_size as u32,
                        color: colour(
                            &format!("{at}.color"),
                            t.color.as_deref().unwrap_or("#ffffff"),
                        )?,
                        start,
                        end,
                    }
                }
                LayerInput::Image(i) => {
                    let at = format!("{at}.image");
                    let key_ok = !i.asset_key.is_empty()
                        && i.asset_key.len() <= 512
                        && !i
                            .asset_key
                            .split('/')
                            .any(|part| part.is_empty() || part == "." || part == "..");
                    if !key_ok {
                        return Err(AppError::bad_input(
                            format!("{at}.assetKey"),
                            "is not a valid object key",
                        ));
                    }
                    if pictures.insert(i.asset_key.as_str()) && pictures.len() > MAX_PICTURES {
                        return Err(AppError::bad_input(
                            format!("{at}.assetKey"),
                            format!(
                                "a movie may show at most {MAX_PICTURES} different pictures \
                                 (each any number of times)"
                            ),
                        ));
                    }
                    let size = |field: &str, v: Option<i32>| -> AppResult<Option<u32>> {
                        match v {
                            Some(v) if !(1..=MAX_SIDE).contains(&v) => Err(AppError::bad_input(
                                format!("{at}.{field}"),
                                format!("must be from 1 to {MAX_SIDE}"),
                            )),
                            other => Ok(other.map(|v| v as u32)),
                        }
                    };
                    let (start, end) =
                        timing(&at, i.start, i.end, scene.duration, input.fps as u32)?;
                    Layer::Image {
                        asset_key: i.asset_key.clone(),
                        x: position(&format!("{at}.x"), i.x, width)?.unwrap_or(0.0),
                        y: position(&format!("{at}.y"), i.y, height)?.unwrap_or(0.0),
                        width: size("width", i.width)?,
                        height: size("height", i.height)?,
                        start,
                        end,
                    }
                }
            });
        }
        scenes.push(Scene {
            id: scene.id.clone(),
            duration: scene.duration,
            bg_color,
            layers,
        });
    }
    Ok(MovieSpec {
        width,
        height,
        fps: input.fps as u32,
        scenes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(key: &str, width: Option<u32>, height: Option<u32>) -> Layer {
        Layer::Image {
            asset_key: key.into(),
            x: 0.0,
            y: 0.0,
            width,
            height,
            start: 0.0,
            end: 1.0,
        }
    }

    #[test]
    fn drawn_pictures_have_both_sides_and_a_scene_holds_at_most_80_megapixels_of_them() {
        let scene = |layers| Scene {
            id: "s".into(),
            duration: 1.0,
            bg_color: "#000000".into(),
            layers,
        };
        let spec = MovieSpec {
            width: 640,
            height: 360,
            fps: 30,
            scenes: vec![scene(vec![
                picture("thin", Some(50), None),
                picture("photo", None, None),
                picture("photo", None, Some(100)),
                picture("unknown", Some(10), None),
            ])],
        };
        let sizes = std::collections::HashMap::from([
            ("thin".to_owned(), (1000, 10)),
            ("photo".to_owned(), (300, 400)),
        ]);
        let drawn = drawn(&spec, &sizes);
        let sides: Vec<_> = drawn.scenes[0]
            .layers
            .iter()
            .map(|l| match l {
                Layer::Image { width, height, .. } => (*width, *height),
                Layer::Text { .. } => (None, None),
            })
            .collect();
        assert_eq!(
            sides,
            [
                (Some(50), Some(2)),
                (Some(300), Some(400)),
                (Some(76), Some(100)),
                (Some(10), None),
            ]
        );
        assert!(overfull_scene(&drawn.scenes[0]).is_none());
        let big = || picture("big", Some(8000), Some(5000));
        assert!(
            overfull_scene(&scene(vec![big(), big()])).is_none(),
            "80 MP"
        );
        let why = overfull_scene(&scene(vec![big(), big(), picture("x", Some(2), Some(2))]))
            .expect("past 80 MP");
        assert!(why.contains("81 megapixels in all"), "{why}");
        // As uploaded: a picture counts once however many layers show it, at its own size.
        let sizes: std::collections::HashMap<String, (u64, u64)> = [
            ("x".to_owned(), (8000, 5000)),
            ("y".to_owned(), (8000, 5000)),
            ("z".to_owned(), (10, 10)),
        ]
        .into();
        let tiny = |key: &str| picture(key, Some(2), Some(2));
        let shown_often = scene(vec![tiny("x"), tiny("x"), tiny("y"), tiny("y")]);
        assert!(overfull_sources(&shown_often, &sizes).is_none());
        let why = overfull_sources(
            &scene(vec![tiny("x"), tiny("y"), tiny("z"), tiny("z")]),
            &sizes,
        )
        .expect("80 megapixels and 100 pixels more");
        assert!(why.contains("81 megapixels in all as uploaded"), "{why}");
    }

    #[test]
    fn a_missing_side_follows_the_pictures_shape_and_is_bounded() {
        // ffmpeg's `-2`: the other side in proportion, rounded up to even.
        assert_eq!(scaled_size((1, 16), Some(3840), None), (3840, 61440));
        assert_eq!(scaled_size((1920, 1080), None, Some(360)), (640, 360));
        assert_eq!(scaled_size((1001, 500), Some(100), None), (100, 50));
        assert_eq!(scaled_size((3, 2), None, Some(1)), (2, 1));
        assert_eq!(scaled_size((640, 480), None, None), (640, 480));
        assert_eq!(scaled_size((16, 1), Some(20), Some(30)), (20, 30));

        assert!(
            oversized_layer(scaled_size((1, 16), Some(3840), None))
                .is_some_and(|why| why.contains("3840×61440"))
        );
        assert!(
            oversized_layer((9000, 3000)).is_none(),
            "a panorama as it is"
        );
        assert!(oversized_layer((16386, 2)).is_some());
        assert!(oversized_layer((2, 16386)).is_some());
        assert!(oversized_layer((8000, 6000)).is_some(), "48 megapixels");
        assert!(oversized_layer((MAX_SIDE as u64, MAX_SIDE as u64)).is_none());
    }

    fn spec() -> MovieSpecInput {
        MovieSpecInput {
            width: 640,
            height: 360,
            fps: 30,
            scenes: vec![SceneInput {
                id: "intro".into(),
                duration: 2.0,
                bg_color: "#1A1A2E".into(),
                layers: Some(vec![LayerInput::Text(TextLayerInput {
                    text: "Hello".into(),
                    x: None,
                    y: None,
                    font_size: None,
                    color: None,
                    start: Some(0.5),
                    end: None,
                })]),
            }],
        }
    }

    fn field_of(result: AppResult<MovieSpec>) -> String {
        match result {
            Err(AppError::BadInput { field, .. }) => field,
            other => panic!("expected a bad input error, got {other:?}"),
        }
    }

    #[test]
    fn a_movie_shows_at_most_a_hundred_different_pictures() {
        let with_pictures = |key_of: &dyn Fn(usize) -> usize| {
            let mut many = spec();
            many.scenes = (0..6)
                .map(|si| SceneInput {
                    id: format!("s{si}"),
                    duration: 1.0,
                    bg_color: "#000000".into(),
                    layers: Some(
                        (0..17)
                            .map(|li| {
                                LayerInput::Image(ImageLayerInput {
                                    asset_key: format!("assets/u/{}.png", key_of(si * 17 + li)),
                                    x: None,
                                    y: None,
                                    width: None,
                                    height: None,
                                    start: None,
                                    end: None,
                                })
                            })
                            .collect(),
                    ),
                })
                .collect();
            validate("input.spec", &many)
        };
        assert_eq!(
            field_of(with_pictures(&|n| n)),
            "input.spec.scenes.5.layers.15.image.assetKey"
        );
        assert!(with_pictures(&|n| n % MAX_PICTURES).is_ok());
    }

    #[test]
    fn text_breaks_lines_at_any_line_ending_and_keeps_tabs_but_no_other_control() {
        let with_text = |text: &str| {
            let mut typed = spec();
            if let Some(LayerInput::Text(t)) =
                typed.scenes[0].layers.as_mut().and_then(|l| l.first_mut())
            {
                t.text = text.into();
            }
            validate("input.spec", &typed)
        };
        let movie = with_text("one\r\ntwo\rthree\tfour")
            .map_err(|e| e.public_message())
            .expect("valid");
        let Layer::Text { text, .. } = &movie.scenes[0].layers[0] else {
            panic!("a text layer: {movie:?}");
        };
        assert_eq!(text, "one\ntwo\nthree\tfour");
        for refused in ["bell\u{7}", "escape\u{1b}[31m", "\u{85}next line"] {
            assert_eq!(
                field_of(with_text(refused)),
                "input.spec.scenes.0.layers.0.text.text",
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_valid_spec_is_made_canonical() {
        let movie = validate("input.spec", &spec())
            .map_err(|e| e.public_message())
            .expect("valid");
        assert_eq!(movie.scenes[0].bg_color, "#1a1a2e");
        assert_eq!(
            movie.scenes[0].layers[0],
            Layer::Text {
                text: "Hello".into(),
                x: None,
                y: None,
                font_size: 48,
                color: "#ffffff".into(),
                start: 0.5,
                end: 2.0
            }
        );
    }

    /// Windows of a layer, at an fps: whether a frame's time falls in them.
    const WINDOWS: [(u32, f64, f64, bool); 21] = [
        (30, 0.5, 0.52, true),
        (30, 0.51, 0.52, false),
        (30, 0.467, 0.5, true),
        (30, 0.4669, 0.4999, true),
        (30, 0.0, 0.001, true),
        (30, 0.034, 0.066, false),
        (1, 1.2, 1.8, false),
        (1, 1.2, 2.0, true),
        (24, 0.042, 0.083, false),
        (24, 0.041, 0.042, true),
        // After the last frame of a 3 s scene (frames 0 to 89 at 30 fps, 0 to 2 at 1 fps).
        (30, 2.99, 3.0, false),
        (1, 2.5, 3.0, false),
        // Frame times a hair past a bound: 3 × 0.2 and 7 × (1/35).
        (5, 0.55, 0.6, false),
        (35, 0.2, 0.22, false),
        // A window of one instant: the frame at that time, if there is one.
        (30, 0.1, 0.1, true),
        (24, 0.125, 0.125, true),
        (30, 0.11, 0.11, false),
        (5, 0.6, 0.6, true),
        (10, 0.3, 0.3, true),
        (10, 0.7, 0.7, true),
        // The frame after the last one.
        (1, 3.0, 3.0, false),
    ];

    #[test]
    fn a_layer_must_be_drawn_on_at_least_one_frame() {
        for (fps, start, end, shown) in WINDOWS {
            let mut layered = spec();
            layered.fps = fps as i32;
            layered.scenes[0].duration = 3.0;
            if let Some(LayerInput::Text(t)) = layered.scenes[0]
                .layers
                .as_mut()
                .and_then(|l| l.first_mut())
            {
                t.start = Some(start);
                t.end = Some(end);
            }
            let result = validate("input.spec", &layered);
            if shown {
                assert!(result.is_ok(), "{start}–{end} at {fps} fps: {result:?}");
            } else {
                assert_eq!(
                    field_of(result),
                    "input.spec.scenes.0.layers.0.text.start",
                    "{start}–{end} at {fps} fps"
                );
            }
        }
    }

    /// What [`shows_a_frame`] says is what ffmpeg does with the window as the renderer
    /// writes it (`enable='between(t,…,…)'`, to the millisecond).
    #[tokio::test]
    async fn frames_in_a_window_are_the_ones_ffmpeg_draws_on() {
        let tools = crate::render::ffmpeg::check()
            .await
            .expect("ffmpeg is installed (scripts/test installs it)");
        for (fps, start, end, shown) in WINDOWS {
            assert_eq!(
                shows_a_frame(start, end, 3.0, fps),
                shown,
                "{start}–{end} at {fps}"
            );
            let output = tokio::process::Command::new(&tools.ffmpeg)
                .args(["-v", "error", "-f", "lavfi", "-i"])
                .arg(format!("color=black:s=16x16:r={fps}:d=3"))
                .arg("-vf")
                .arg(format!(
                    "drawbox=c=white:t=fill:enable='{}'",
                    crate::render::scene::window(start, end, fps)
                ))
                .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
                .output()
                .await
                .expect("ffmpeg runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let drawn = output.stdout.chunks(16 * 16).filter(|f| f[0] > 128).count();
            assert_eq!(
                drawn > 0,
                shown,
                "{start}–{end} at {fps} fps: {drawn} frames drawn"
            );
        }
    }

    #[test]
    fn errors_name_the_exact_input_path() {
        let mut odd = spec();
        odd.width = 641;
        assert_eq!(field_of(validate("input.spec", &odd)), "input.spec.width");
        let mut fps = spec();
        fps.fps = 61;
        assert_eq!(field_of(validate("input.spec", &fps)), "input.spec.fps");
        let mut colour = spec();
        colour.scenes[0].bg_color = "red".into();
        assert_eq!(
            field_of(validate("input.spec", &colour)),
            "input.spec.scenes.0.bgColor"
        );
        let mut long = spec();
        long.scenes[0].duration = 301.0;
        assert_eq!(
            field_of(validate("input.spec", &long)),
            "input.spec.scenes.0.duration"
        );
        let mut late = spec();
        if let Some(LayerInput::Text(t)) =
            late.scenes[0].layers.as_mut().and_then(|l| l.first_mut())
        {
            t.end = Some(3.0);
        }
        assert_eq!(
            field_of(validate("input.spec", &late)),
            "input.spec.scenes.0.layers.0.text.end"
        );
        let mut none = spec();
        none.scenes.clear();
        assert_eq!(field_of(validate("input.spec", &none)), "input.spec.scenes");
        let mut twice = spec();
        twice.scenes.push(twice.scenes[0].clone());
        assert_eq!(
            field_of(validate("input.spec", &twice)),
            "input.spec.scenes.1.id"
        );
    }
}

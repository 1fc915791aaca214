//! Render plans: the immutable, hashed form of a movie that its scene jobs run from, and the
//! scene-cache keys that let an unchanged scene skip rendering.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::spec::{Layer, MovieSpec, Scene};

/// Part of every cache key: a renderer change that alters output must bump this.
pub const RENDERER_VERSION: &str = "reelgraph-render/3";

/// Encoder settings shared by every scene, so the concat demuxer can join them without
/// re-encoding. They are part of the cache key: `ultrafast` and `veryfast` even produce
/// different H.264 profiles.
pub const ENCODER_ARGS: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
    "-crf",
    "23",
    "-c:a",
    "aac",
    "-b:a",
    "128k",
    "-ar",
    "48000",
    "-ac",
    "2",
];

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Canonical JSON: struct fields in declaration order, no whitespace. `MovieSpec` is already
/// normalised (defaults filled, colours lower-case), so equal movies give equal bytes.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// One scene of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedScene {
    pub index: usize,
    pub scene_id: String,
    pub duration: f64,
    /// sha256 of the scene's canonical JSON + the sha256 of each picture it shows + output
    /// format + encoder settings + renderer version.
    pub cache_key: String,
    /// Content-addressed, so the cache is shared by every movie that has this scene.
    pub output_key: String,
}

/// `render-plans/{jobId}/plan.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenderPlan {
    pub version: String,
    pub parent_job_id: Uuid,
    pub spec: MovieSpec,
    /// `sha256:<hex>` of the spec's canonical JSON.
    pub hash: String,
    pub scenes: Vec<PlannedScene>,
}

pub fn plan_key(job_id: Uuid) -> String {
    format!("render-plans/{job_id}/plan.json")
}

pub fn output_key(job_id: Uuid) -> String {
    format!("outputs/{job_id}/movie.mp4")
}

/// The sha256 of each asset's bytes, by asset key: a scene's key covers what its pictures
/// hold, not just their names (an asset's presigned PUT may write new bytes under its key).
pub type AssetDigests = BTreeMap<String, String>;

/// The font file each text is drawn with, by text, for the texts the default font cannot draw
/// whole ([`super::fonts`]); a text not in it is drawn with the default.
pub type TextFonts = BTreeMap<String, String>;

/// The cache key of `scene` rendered for `owner` at this size and frame rate, with these
/// pictures. Each owner has their own entries: a shared one would tell a user, by `cached`,
/// that someone else rendered the very scene they guessed (a title card's text, say).
/// Only what changes the frames counts: not the scene's `id`, and a picture by its bytes'
/// digest, not by the key it was uploaded under (the same title card in two movies, or a
/// flow that uploads its pictures again, renders once).
pub fn scene_cache_key(
    owner: Uuid,
    scene: &Scene,
    width: u32,
    height: u32,
    fps: u32,
    assets: &AssetDigests,
    fonts: &TextFonts,
) -> String {
    // Only where a text is drawn with another font than the default: the keys of scenes
    // whose texts the default draws stay as they were.
    let drawn_with: Vec<(usize, &str)> = scene
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, layer)| match layer {
            Layer::Text { text, .. } => fonts.get(text).map(|font| (i, font.as_str())),
            Layer::Image { .. } => None,
        })
        .collect();
    let mut drawn = scene.clone();
    drawn.id.clear();
    for layer in &mut drawn.layers {
        if let Layer::Image { asset_key, .. } = layer {
            let digest = assets.get(asset_key.as_str()).map_or("?", String::as_str);
            *asset_key = format!("sha256:{digest}");
        }
    }
    let mut material = format!("{owner}|").into_bytes();
    material.extend_from_slice(&canonical_json(&drawn));
    if !drawn_with.is_empty() {
        material.extend_from_slice(format!("|fonts:{drawn_with:?}").as_bytes());
    }
    material.extend_from_slice(
        format!(
            "|{width}x{height}@{fps}|{}|{RENDERER_VERSION}",
            ENCODER_ARGS.join(" ")
        )
        .as_bytes(),
    );
    sha256_hex(&material)
}

pub fn compile(
    job_id: Uuid,
    owner: Uuid,
    spec: &MovieSpec,
    assets: &AssetDigests,
    fonts: &TextFonts,
) -> RenderPlan {
    let scenes = spec
        .scenes
        .iter()
        .enumerate()
        .map(|(index, scene)| {
            let cache_key = scene_cache_key(
                owner,
                scene,
                spec.width,
                spec.height,
                spec.fps,
                assets,
                fonts,
            );
            PlannedScene {
                index,
                scene_id: scene.id.clone(),
                duration: scene.duration,
                output_key: format!("intermediates/scenes/{cache_key}.mp4"),
                cache_key,
            }
        })
        .collect();
    RenderPlan {
        version: "1.0".to_owned(),
        parent_job_id: job_id,
        hash: format!("sha256:{}", sha256_hex(&canonical_json(spec))),
        spec: spec.clone(),
        scenes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(text: &str) -> Scene {
        Scene {
            id: "a".into(),
            duration: 2.0,
            bg_color: "#000000".into(),
            layers: vec![Layer::Text {
                text: text.into(),
                x: None,
                y: None,
                font_size: 48,
                color: "#ffffff".into(),
                start: 0.0,
                end: 2.0,
            }],
        }
    }

    /// `scene`'s key at this `(width, height, fps)`, its texts in the default font.
    fn keyed(owner: Uuid, scene: &Scene, format: (u32, u32, u32), assets: &AssetDigests) -> String {
        let (width, height, fps) = format;
        scene_cache_key(owner, scene, width, height, fps, assets, &TextFonts::new())
    }

    /// A text drawn with another font than the default changes the key; a font chosen for
    /// another text does not (scenes whose texts the default draws keep their keys).
    #[test]
    fn a_scene_s_key_names_the_font_of_its_text_only_when_not_the_default() {
        let none = AssetDigests::new();
        let key = keyed(Uuid::nil(), &scene("hi"), (640, 360, 30), &none);
        let with = |text: &str| TextFonts::from([(text.to_owned(), "/fonts/cjk.ttc".to_owned())]);
        let drawn = |fonts: &TextFonts| {
            scene_cache_key(Uuid::nil(), &scene("hi"), 640, 360, 30, &none, fonts)
        };
        assert_eq!(drawn(&with("日本")), key);
        assert_ne!(drawn(&with("hi")), key);
    }

    #[test]
    fn a_scene_keeps_its_cache_key_unless_it_or_the_format_changes() {
        let none = AssetDigests::new();
        let key = keyed(Uuid::nil(), &scene("hi"), (640, 360, 30), &none);
        assert_eq!(key, keyed(Uuid::nil(), &scene("hi"), (640, 360, 30), &none));
        assert_ne!(
            key,
            keyed(Uuid::nil(), &scene("hello"), (640, 360, 30), &none)
        );
        assert_ne!(key, keyed(Uuid::nil(), &scene("hi"), (640, 360, 25), &none));
        assert_ne!(
            key,
            keyed(Uuid::nil(), &scene("hi"), (1280, 720, 30), &none)
        );
        // A scene without pictures does not depend on other scenes' pictures.
        let other = AssetDigests::from([("assets/u/a.png".to_owned(), "00".to_owned())]);
        assert_eq!(
            key,
            keyed(Uuid::nil(), &scene("hi"), (640, 360, 30), &other)
        );
        // Another owner's render of the same scene is not this one's.
        assert_ne!(key, keyed(Uuid::max(), &scene("hi"), (640, 360, 30), &none));
    }

    #[test]
    fn a_scene_with_a_picture_changes_key_when_the_picture_s_bytes_do() {
        let mut with_picture = scene("hi");
        with_picture.layers.push(Layer::Image {
            asset_key: "assets/u/a.png".into(),
            x: 0.0,
            y: 0.0,
            width: None,
            height: None,
            start: 0.0,
            end: 2.0,
        });
        let digests = |d: &str| AssetDigests::from([("assets/u/a.png".to_owned(), d.to_owned())]);
        let key = keyed(Uuid::nil(), &with_picture, (640, 360, 30), &digests("aa"));
        assert_eq!(
            key,
            keyed(Uuid::nil(), &with_picture, (640, 360, 30), &digests("aa"))
        );
        assert_ne!(
            key,
            keyed(Uuid::nil(), &with_picture, (640, 360, 30), &digests("bb"))
        );
        // The same bytes uploaded again under another key, in a scene of another id: the
        // same frames, the same key.
        let mut again = with_picture.clone();
        again.id = "another".into();
        if let Some(Layer::Image { asset_key, .. }) = again.layers.last_mut() {
            *asset_key = "assets/u/b.png".into();
        }
        let digests_b = AssetDigests::from([("assets/u/b.png".to_owned(), "aa".to_owned())]);
        assert_eq!(key, keyed(Uuid::nil(), &again, (640, 360, 30), &digests_b));
        assert_ne!(
            key,
            keyed(Uuid::nil(), &again, (640, 360, 30), &digests("aa")),
            "a picture whose digest is unknown is not taken for another"
        );
    }

    #[test]
    fn plans_hash_the_canonical_spec() {
        let spec = MovieSpec {
            width: 640,
            height: 360,
            fps: 30,
            scenes: vec![
                scene("hi"),
                Scene {
                    id: "b".into(),
                    ..scene("x")
                },
            ],
        };
        let plan = compile(
            Uuid::now_v7(),
            Uuid::nil(),
            &spec,
            &AssetDigests::new(),
            &TextFonts::new(),
        );
        assert!(plan.hash.starts_with("sha256:"));
        assert_eq!(
            plan.hash,
            compile(
                Uuid::now_v7(),
                Uuid::nil(),
                &spec,
                &AssetDigests::new(),
                &TextFonts::new(),
            )
            .hash
        );
        assert_eq!(plan.scenes[1].index, 1);
        assert_eq!(
            plan.scenes[1].output_key,
            format!("intermediates/scenes/{}.mp4", plan.scenes[1].cache_key)
        );
    }
}

//! The ffmpeg command lines of rendering: one scene from `color` + `drawtext` + `overlay`
//! with a silent stereo track, and the lossless concat of scenes into the movie.

use std::path::{Path, PathBuf};

use super::{
    plan::ENCODER_ARGS,
    spec::{Layer, Scene},
};

/// Local files a scene needs: `texts[i]` / `images[i]` for layer `i` of that kind.
pub struct SceneInputs {
    pub texts: Vec<Option<PathBuf>>,
    pub images: Vec<Option<PathBuf>>,
}

fn hex(colour: &str) -> String {
    format!("0x{}", colour.trim_start_matches('#'))
}

fn num(v: f64) -> String {
    format!("{v:.3}")
}

/// Quotes a path for a filtergraph option (the scene's temp paths hold no quotes).
fn filter_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace('\'', "\\'")
}

/// Arguments that render `scene` to `output`.
pub fn scene_args(
    scene: &Scene,
    width: u32,
    height: u32,
    fps: u32,
    inputs: &SceneInputs,
    output: &Path,
) -> Vec<String> {
    let d = num(scene.duration);
    let mut args: Vec<String> = vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!(
            "color=c={}:s={width}x{height}:r={fps}:d={d}",
            hex(&scene.bg_color)
        ),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        "anullsrc=channel_layout=stereo:sample_rate=48000".into(),
    ];
    let mut image_inputs = Vec::new();
    // Inputs 0 and 1 are the colour and the silence; images follow.
    for (next_input, path) in (2..).zip(inputs.images.iter().flatten()) {
        // One frame, read and scaled once and repeated by the `loop` filter (as an input
        // looped by the demuxer, it would be decoded and scaled again for every frame). At
        // the scene's frame rate, the repeats fall on the scene's frames.
        args.extend([
            "-framerate".into(),
            fps.to_string(),
            "-format_whitelist".into(),
            super::ffmpeg::IMAGE_FORMATS.into(),
            "-i".into(),
            path.display().to_string(),
        ]);
        image_inputs.push(next_input);
    }
    let mut graph = Vec::new();
    let mut current = "0:v".to_owned();
    let mut image_no = 0;
    for (i, layer) in scene.layers.iter().enumerate() {
        let out = format!("v{i}");
        match layer {
            Layer::Text {
                x,
                y,
                font_size,
                color,
                start,
                end,
                ..
            } => {
                let Some(Some(file)) = inputs.texts.get(i) else {
                    continue;
                };
                let x = x.map_or("(w-text_w)/2".to_owned(), num);
                let y = y.map_or("(h-text_h)/2".to_owned(), num);
                graph.push(format!(
                    "[{current}]drawtext=textfile='{}':expansion=none:fontsize={font_size}:fontcolor={}:x={x}:y={y}:enable='between(t,{},{})'[{out}]",
                    filter_path(file),
                    hex(color),
                    num(*start),
                    num(*end)
                ));
            }
            Layer::Image {
                x,
                y,
                width,
                height,
                start,
                end,
                ..
            } => {
                let Some(&input) = image_inputs.get(image_no) else {
                    continue;
                };
                image_no += 1;
                let scaled = format!("img{i}");
                let scale = match (width, height) {
                    (Some(w), Some(h)) => format!("scale={w}:{h}"),
                    (Some(w), None) => format!("scale={w}:-2"),
                    (None, Some(h)) => format!("scale=-2:{h}"),
                    (None, None) => "null".to_owned(),
                };
                graph.push(format!(
                    "[{input}:v]{scale},format=rgba,loop=loop=-1:size=1:start=0[{scaled}]"
                ));
                // The picture repeats for ever: the scene's background ends the overlay.
                graph.push(format!(
                    "[{current}][{scaled}]overlay=x={}:y={}:shortest=1:enable='between(t,{},{})'[{out}]",
                    num(*x),
                    num(*y),
                    num(*start),
                    num(*end)
                ));
            }
        }
        current = out;
    }
    graph.push(format!("[{current}]format=yuv420p[vout]"));
    args.extend([
        "-filter_complex".into(),
        graph.join(";"),
        "-map".into(),
        "[vout]".into(),
        "-map".into(),
        "1:a".into(),
    ]);
    args.extend([
        "-t".into(),
        d,
        "-r".into(),
        fps.to_string(),
        "-g".into(),
        (fps * 2).to_string(),
    ]);
    args.extend(ENCODER_ARGS.iter().map(|s| (*s).to_owned()));
    args.extend([
        "-movflags".into(),
        "+faststart".into(),
        output.display().to_string(),
    ]);
    args
}

/// Arguments that join `list` (a concat demuxer file list) into `output` without re-encoding.
pub fn concat_args(list: &Path, output: &Path) -> Vec<String> {
    vec![
        "-f".into(),
        "concat".into(),
        "-safe".into(),
        "0".into(),
        "-i".into(),
        list.display().to_string(),
        "-c".into(),
        "copy".into(),
        "-movflags".into(),
        "+faststart".into(),
        output.display().to_string(),
    ]
}

/// The concat demuxer's list of `files`.
pub fn concat_list(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "file '{}'\n",
                f.display().to_string().replace('\'', "'\\''")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::spec::Layer;

    /// Renders one 0.2 s scene showing `text` and returns its first frame as raw RGB.
    async fn frame_of(text: &str) -> Vec<u8> {
        let tools = super::super::ffmpeg::check()
            .await
            .expect("ffmpeg is installed (scripts/test installs it)");
        let dir = tempfile::tempdir().expect("dir");
        let text_file = dir.path().join("text_0.txt");
        std::fs::write(&text_file, text).expect("written");
        let scene = Scene {
            id: "a".into(),
            duration: 0.2,
            bg_color: "#000000".into(),
            layers: vec![Layer::Text {
                text: text.into(),
                x: None,
                y: None,
                font_size: 48,
                color: "#ffffff".into(),
                start: 0.0,
                end: 0.2,
            }],
        };
        let inputs = SceneInputs {
            texts: vec![Some(text_file)],
            images: vec![None],
        };
        let video = dir.path().join("scene.mp4");
        let args = scene_args(&scene, 320, 180, 10, &inputs, &video);
        super::super::ffmpeg::run(&tools, &args, 0.2, |_| {})
            .await
            .expect("rendered");
        let output = tokio::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(&video)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .await
            .expect("frame");
        assert!(output.status.success());
        output.stdout
    }

    /// Scene text is shown as written: drawtext's `%{…}` expansion is off (a title such as
    /// `%{eif:1+1:d}` would otherwise be evaluated and drawn as "2").
    #[tokio::test]
    async fn text_is_drawn_as_written_not_expanded() {
        let expression = frame_of("%{eif:1+1:d}").await;
        let two = frame_of("2").await;
        assert_eq!(expression.len(), two.len());
        assert_ne!(expression, two, "the expression was evaluated");
    }
}

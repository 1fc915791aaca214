//! The ffmpeg command lines of rendering: one scene from `color` + `drawtext` + `overlay`
//! with a silent stereo track, and the lossless concat of scenes into the movie.

use std::path::{Path, PathBuf};

use super::{
    plan::ENCODER_ARGS,
    spec::{Layer, Scene},
};

/// Local files a scene needs: `texts[i]` / `images[i]` for layer `i` of that kind, and the
/// EXIF orientation of each picture (`orientations[i]`; missing or 1 when upright).
pub struct SceneInputs {
    pub texts: Vec<Option<PathBuf>>,
    /// The font file of text layer `i`, when not the default ([`super::fonts`]).
    pub fonts: Vec<Option<PathBuf>>,
    pub images: Vec<Option<PathBuf>>,
    pub orientations: Vec<u8>,
}

/// The EXIF orientation (1–8) of the picture at `path`: 1 when it has none or it cannot be
/// read. Blocking (it reads the file's header).
pub fn orientation(path: &Path) -> u8 {
    let Ok(file) = std::fs::File::open(path) else {
        return 1;
    };
    let Ok(exif) = exif::Reader::new().read_from_container(&mut std::io::BufReader::new(file))
    else {
        return 1;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|field| field.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .filter(|v| (1..=8).contains(v))
        .unwrap_or(1)
}

/// The size a picture stored `stored` (width, height) shows at once its `orientation` is
/// applied: orientations 5–8 turn it a quarter.
pub fn upright(stored: (u64, u64), orientation: u8) -> (u64, u64) {
    if (5..=8).contains(&orientation) {
        (stored.1, stored.0)
    } else {
        stored
    }
}

/// The filters that turn a picture of `orientation` upright. Pictures are read with ffmpeg's
/// autorotation off and turned by these, so that what is drawn is what [`upright`] measured
/// (ffmpeg rotates JPEGs by their EXIF tag but not every format).
fn orient(orientation: u8) -> Option<&'static str> {
    match orientation {
        2 => Some("hflip"),
        3 => Some("hflip,vflip"),
        4 => Some("vflip"),
        5 => Some("transpose=cclock_flip"),
        6 => Some("transpose=clock"),
        7 => Some("transpose=clock_flip"),
        8 => Some("transpose=cclock"),
        _ => None,
    }
}

fn hex(colour: &str) -> String {
    format!("0x{}", colour.trim_start_matches('#'))
}

fn num(v: f64) -> String {
    format!("{v:.3}")
}

/// When a layer shows, as a timeline expression: the frames whose times fall between `start`
/// and `end` (to the millisecond, both included), or for a window of one instant the frame at
/// that time, by its number (frame 3 at 10 fps is at 0.30000000000000004 s, after 0.300).
pub fn window(start: f64, end: f64, fps: u32) -> String {
    if start == end {
        // No frame at an instant between two (validation refuses such a window).
        let k = (start * f64::from(fps)).round();
        match (k / f64::from(fps) - start).abs() < 0.0005 {
            true => format!("eq(n,{k})"),
            false => "0".to_owned(),
        }
    } else {
        format!("between(t,{},{})", num(start), num(end))
    }
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
    // Whole frames, as the spec is planned and billed (a duration rounded up to the next
    // frame): `-t 1.4` at 1 fps gave one frame, not two, so a layer starting at 1 s never
    // showed, and 20 scenes of 1.01 s at 30 fps made 600 frames under 20.2 s of sound. Six
    // places keep `n / fps` from falling a hair short of the last frame.
    let frames = super::spec::frames(scene.duration, fps);
    let d = format!("{:.6}", frames as f64 / f64::from(fps));
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
    // Inputs 0 and 1 are the colour and the silence; each distinct picture follows, once: a
    // picture shown by several layers is decoded once and `split` among them (as an input per
    // layer, a large picture in 20 layers was decoded 20 times over, gigabytes at once).
    let mut distinct: Vec<&Path> = Vec::new();
    let layer_pictures: Vec<usize> = inputs
        .images
        .iter()
        .flatten()
        .map(
            |path| match distinct.iter().position(|p| *p == path.as_path()) {
                Some(at) => at,
                None => {
                    distinct.push(path);
                    distinct.len() - 1
                }
            },
        )
        .collect();
    for path in &distinct {
        // One frame, read and scaled once and repeated by the `loop` filter (as an input
        // looped by the demuxer, it would be decoded and scaled again for every frame). At
        // the scene's frame rate, the repeats fall on the scene's frames.
        args.extend([
            "-noautorotate".into(),
            "-framerate".into(),
            fps.to_string(),
            "-format_whitelist".into(),
            super::ffmpeg::IMAGE_FORMATS.into(),
            "-i".into(),
            path.display().to_string(),
        ]);
    }
    let mut graph = Vec::new();
    // The stream each picture layer reads, in layer order: its picture's input, or one
    // branch of that input's `split`.
    let mut image_inputs = Vec::with_capacity(layer_pictures.len());
    let mut branches_taken = vec![0usize; distinct.len()];
    for &picture in &layer_pictures {
        let uses = layer_pictures.iter().filter(|&&p| p == picture).count();
        let input = picture + 2;
        if uses == 1 {
            image_inputs.push(format!("{input}:v"));
            continue;
        }
        if branches_taken[picture] == 0 {
            let labels: String = (0..uses).map(|b| format!("[pic{input}_{b}]")).collect();
            graph.push(format!("[{input}:v]split={uses}{labels}"));
        }
        image_inputs.push(format!("pic{input}_{}", branches_taken[picture]));
        branches_taken[picture] += 1;
    }
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
                let font = match inputs.fonts.get(i) {
                    Some(Some(font)) => format!("fontfile='{}':", filter_path(font)),
                    _ => String::new(),
                };
                graph.push(format!(
                    "[{current}]drawtext={font}textfile='{}':expansion=none:fontsize={font_size}:fontcolor={}:x={x}:y={y}:enable='{}'[{out}]",
                    filter_path(file),
                    hex(color),
                    window(*start, *end, fps),
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
                let Some(input) = image_inputs.get(image_no) else {
                    continue;
                };
                image_no += 1;
                let scaled = format!("img{i}");
                // Planning gives both sides (`render.movie`); a scene planned before it did
                // may have one.
                let scale = match (width, height) {
                    (Some(w), Some(h)) => format!("scale={w}:{h}"),
                    (Some(w), None) => format!("scale={w}:-2"),
                    (None, Some(h)) => format!("scale=-2:{h}"),
                    (None, None) => "null".to_owned(),
                };
                let turn = inputs
                    .orientations
                    .get(i)
                    .and_then(|&o| orient(o))
                    .map(|f| format!("{f},"))
                    .unwrap_or_default();
                // Converted to the overlay's format before the loop: after it, the whole
                // picture would be converted again for every frame.
                graph.push(format!(
                    "[{input}]{turn}{scale},format=yuva420p,loop=loop=-1:size=1:start=0[{scaled}]"
                ));
                // The picture repeats for ever: the scene's background ends the overlay.
                graph.push(format!(
                    "[{current}][{scaled}]overlay=x={}:y={}:shortest=1:enable='{}'[{out}]",
                    num(*x),
                    num(*y),
                    window(*start, *end, fps),
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
///
/// With the input's times kept (`-copyts`): the sound's first AAC frame is encoder priming,
/// read at -21 ms, and without it the muxer moved every stream 21 ms later to start at 0, so
/// the movie's pictures began 21 ms after its sound, and its file ran 21 ms past its length.
pub fn concat_args(list: &Path, output: &Path) -> Vec<String> {
    vec![
        "-copyts".into(),
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

/// The concat demuxer's list of `files`, scene `i` lasting `frames[i]` frames at `fps` (when
/// given for every file). Without a `duration`, the demuxer starts each file where the one
/// before ends by its container, whose length MP4 rounds up to the millisecond (7 frames at
/// 12 fps, 0.583333 s, read 0.584 s): every scene boundary pushed the pictures after it a
/// little later, the movie's frame rate read as 12000/1001, and 20 scenes of 16 frames at
/// 30 fps lasted 10.679 s instead of 10.667 s. Each `duration` is the step between the scene
/// boundaries rounded to the microsecond (the demuxer's unit), so they add up to the exact
/// boundaries, which land on whole ticks of the picture's time base.
pub fn concat_list(files: &[PathBuf], frames: &[u64], fps: u32) -> String {
    let exact = frames.len() == files.len() && fps > 0;
    let mut elapsed: u64 = 0;
    let boundary = |frames: u64| {
        (u128::from(frames) * 1_000_000 + u128::from(fps) / 2) / u128::from(fps.max(1))
    };
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut entry = format!(
                "file '{}'\n",
                f.display().to_string().replace('\'', "'\\''")
            );
            if exact {
                let start = boundary(elapsed);
                elapsed += frames[i];
                let micros = boundary(elapsed) - start;
                entry.push_str(&format!(
                    "duration {}.{:06}\n",
                    micros / 1_000_000,
                    micros % 1_000_000
                ));
            }
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::spec::Layer;

    #[test]
    fn concat_durations_add_up_to_the_exact_scene_boundaries() {
        let files: Vec<PathBuf> = ["a.mp4", "b'c.mp4", "d.mp4"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            concat_list(&files, &[16, 16, 16], 30),
            "file 'a.mp4'\nduration 0.533333\nfile 'b'\\''c.mp4'\nduration 0.533334\n\
             file 'd.mp4'\nduration 0.533333\n"
        );
        // Without every scene's frames, the demuxer reads the files' own lengths.
        assert_eq!(concat_list(&files[..1], &[], 30), "file 'a.mp4'\n");
    }

    /// A JPEG of `stored` (like `64x32`, left half red, right half blue) tagged with EXIF
    /// `orientation`.
    fn tagged_jpeg(path: &Path, stored: (u32, u32), orientation: u16) {
        let half = stored.0 / 2;
        let made = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!(
                "color=red:s={half}x{h},format=rgb24[a];color=blue:s={half}x{h},format=rgb24[b];[a][b]hstack",
                h = stored.1
            ))
            .args(["-frames:v", "1"])
            .arg(path)
            .status()
            .expect("ffmpeg runs");
        assert!(made.success());
        let jpeg = std::fs::read(path).expect("jpeg");
        // An APP1 segment right after the start of image: a TIFF header and one IFD entry.
        let mut tiff = b"II*\0".to_vec();
        tiff.extend(8_u32.to_le_bytes());
        tiff.extend(1_u16.to_le_bytes());
        tiff.extend(0x0112_u16.to_le_bytes());
        tiff.extend(3_u16.to_le_bytes());
        tiff.extend(1_u32.to_le_bytes());
        tiff.extend(u32::from(orientation).to_le_bytes());
        tiff.extend(0_u32.to_le_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut tagged = jpeg[..2].to_vec();
        tagged.extend([0xff, 0xe1]);
        tagged.extend(u16::try_from(app1.len() + 2).expect("short").to_be_bytes());
        tagged.extend(app1);
        tagged.extend(&jpeg[2..]);
        std::fs::write(path, tagged).expect("written");
    }

    #[test]
    fn a_picture_is_measured_and_turned_by_its_exif_orientation() {
        let dir = tempfile::tempdir().expect("dir");
        for orientation in 1..=8 {
            let path = dir.path().join(format!("o{orientation}.jpg"));
            tagged_jpeg(&path, (32, 2), orientation);
            assert_eq!(super::orientation(&path), orientation as u8);
        }
        let plain = dir.path().join("plain.png");
        std::fs::write(&plain, b"not a picture").expect("written");
        assert_eq!(orientation(&plain), 1);
        assert_eq!(upright((32, 2), 1), (32, 2));
        assert_eq!(upright((32, 2), 4), (32, 2));
        assert_eq!(upright((32, 2), 6), (2, 32));
        assert_eq!(upright((32, 2), 8), (2, 32));
        assert_eq!(orient(6), Some("transpose=clock"));
        assert_eq!(orient(1), None);
    }

    /// What ffmpeg draws for a turned photo, read with its autorotation off and turned by
    /// [`orient`], is what ffmpeg's own autorotation of a JPEG shows.
    #[test]
    fn turning_a_photo_matches_ffmpegs_own_autorotation() {
        let dir = tempfile::tempdir().expect("dir");
        for orientation in [3, 6, 8] {
            let path = dir.path().join(format!("o{orientation}.jpg"));
            tagged_jpeg(&path, (64, 32), orientation);
            let frame = |extra: &[&str], filter: &str| {
                let out = std::process::Command::new("ffmpeg")
                    .args(["-v", "error"])
                    .args(extra)
                    .arg("-i")
                    .arg(&path)
                    .args([
                        "-vf",
                        filter,
                        "-frames:v",
                        "1",
                        "-f",
                        "rawvideo",
                        "-pix_fmt",
                        "gray",
                        "-",
                    ])
                    .output()
                    .expect("ffmpeg runs");
                assert!(out.status.success());
                out.stdout
            };
            let own = frame(&[], "null");
            let turn = orient(orientation as u8).expect("a turn");
            let turned = frame(&["-noautorotate"], turn);
            assert_eq!(own.len(), 64 * 32);
            assert!(own == turned, "orientation {orientation}");
            assert!(
                own != frame(&["-noautorotate"], "null"),
                "a turn changes it"
            );
        }
    }

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
            fonts: vec![super::super::fonts::font_for(text).await.map(PathBuf::from)],
            texts: vec![Some(text_file)],
            images: vec![None],
            orientations: Vec::new(),
        };
        let video = dir.path().join("scene.mp4");
        let args = scene_args(&scene, 320, 180, 10, &inputs, &video);
        render_first_frame(&tools, &args, &video).await
    }

    /// Runs `args` (a 0.2 s scene rendered to `video`) and returns the video's first frame as
    /// raw RGB.
    async fn render_first_frame(
        tools: &super::super::ffmpeg::Tools,
        args: &[String],
        video: &Path,
    ) -> Vec<u8> {
        super::super::ffmpeg::run(tools, args, 0.2, |_| {})
            .await
            .expect("rendered");
        let output = tokio::process::Command::new(&tools.ffmpeg)
            .args(["-v", "error", "-i"])
            .arg(video)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .await
            .expect("frame");
        assert!(output.status.success());
        output.stdout
    }

    /// A scene lasts the whole frames its duration rounds up to, picture and sound alike:
    /// 1.4 s at 1 fps is two frames (2 s), and 1.01 s at 30 fps is 31.
    #[tokio::test]
    async fn a_scene_is_as_many_frames_as_its_duration_rounds_up_to() {
        let tools = super::super::ffmpeg::check()
            .await
            .expect("ffmpeg is installed (scripts/test installs it)");
        let dir = tempfile::tempdir().expect("dir");
        for (duration, fps, expected) in [(1.4, 1, 2u64), (1.01, 30, 31), (0.5, 25, 13)] {
            let scene = Scene {
                id: "a".into(),
                duration,
                bg_color: "#204060".into(),
                layers: Vec::new(),
            };
            let inputs = SceneInputs {
                fonts: Vec::new(),
                texts: Vec::new(),
                images: Vec::new(),
                orientations: Vec::new(),
            };
            let video = dir.path().join("scene.mp4");
            let args = scene_args(&scene, 64, 48, fps, &inputs, &video);
            super::super::ffmpeg::run(&tools, &args, duration, |_| {})
                .await
                .expect("rendered");
            let probe = tokio::process::Command::new(&tools.ffprobe)
                .args(["-v", "error", "-count_frames", "-show_entries"])
                .args([
                    "stream=codec_type,nb_read_frames,duration",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&video)
                .output()
                .await
                .expect("ffprobe");
            let text = String::from_utf8_lossy(&probe.stdout).into_owned();
            let video_line = text
                .lines()
                .find(|l| l.starts_with("video"))
                .expect("a picture");
            let frames: u64 = video_line
                .rsplit(',')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .expect("a frame count");
            assert_eq!(frames, expected, "{duration} s at {fps} fps: {text}");
            let seconds = expected as f64 / f64::from(fps);
            let sound: f64 = text
                .lines()
                .find(|l| l.starts_with("audio"))
                .and_then(|l| l.split(',').nth(1))
                .and_then(|s| s.trim().parse().ok())
                .expect("a sound track");
            assert!(
                (sound - seconds).abs() < 0.03,
                "{duration} s at {fps} fps: {text}"
            );
        }
    }

    /// A picture shown by several layers is one input, decoded once and split among them;
    /// each layer still draws it where it says.
    #[tokio::test]
    async fn a_picture_in_several_layers_is_read_once_and_drawn_by_each() {
        let tools = super::super::ffmpeg::check()
            .await
            .expect("ffmpeg is installed (scripts/test installs it)");
        let dir = tempfile::tempdir().expect("dir");
        let picture = |name: &str, colour: &str| {
            let path = dir.path().join(name);
            let made = std::process::Command::new(&tools.ffmpeg)
                .args(["-v", "error", "-f", "lavfi", "-i"])
                .arg(format!("color=c={colour}:s=8x8"))
                .args(["-frames:v", "1"])
                .arg(&path)
                .status()
                .expect("ffmpeg runs");
            assert!(made.success());
            path
        };
        let (red, blue) = (picture("red.png", "red"), picture("blue.png", "blue"));
        let layer = |key: &str, x: f64, y: f64| Layer::Image {
            asset_key: key.into(),
            x,
            y,
            width: Some(8),
            height: Some(8),
            start: 0.0,
            end: 0.2,
        };
        let scene = Scene {
            id: "a".into(),
            duration: 0.2,
            bg_color: "#000000".into(),
            layers: vec![
                layer("red", 0.0, 0.0),
                layer("blue", 0.0, 24.0),
                layer("red", 32.0, 0.0),
            ],
        };
        let inputs = SceneInputs {
            fonts: Vec::new(),
            texts: vec![None; 3],
            images: vec![Some(red.clone()), Some(blue), Some(red)],
            orientations: vec![1; 3],
        };
        let video = dir.path().join("scene.mp4");
        let args = scene_args(&scene, 64, 48, 10, &inputs, &video);
        assert_eq!(args.iter().filter(|a| *a == "-i").count(), 4, "{args:?}");
        let frame = render_first_frame(&tools, &args, &video).await;
        let pixel = |x: usize, y: usize| {
            let at = (y * 64 + x) * 3;
            (frame[at], frame[at + 1], frame[at + 2])
        };
        let reddish = |(r, g, b): (u8, u8, u8)| r > 150 && g < 100 && b < 100;
        let bluish = |(r, g, b): (u8, u8, u8)| b > 150 && r < 100 && g < 100;
        assert!(reddish(pixel(3, 3)), "{:?}", pixel(3, 3));
        assert!(reddish(pixel(35, 3)), "{:?}", pixel(35, 3));
        assert!(bluish(pixel(3, 27)), "{:?}", pixel(3, 27));
        let (r, g, b) = pixel(50, 40);
        assert!(r < 40 && g < 40 && b < 40, "background {:?}", (r, g, b));
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

    /// Chinese, Japanese and Korean are drawn, not shown as boxes: two texts of the same
    /// characters in another order look alike only when every character is the same box.
    #[tokio::test]
    async fn cjk_text_is_drawn_in_a_font_that_has_it() {
        for (text, reordered) in [("日本", "本日"), ("한국", "국한"), ("あい", "いあ")]
        {
            assert_ne!(
                frame_of(text).await,
                frame_of(reordered).await,
                "{text:?} is drawn as boxes"
            );
        }
    }
}

//! Running ffmpeg and ffprobe: finding them, checking them at start-up, following progress,
//! and making sure no process outlives the job that started it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

/// Where the tools are: `FFMPEG_PATH` / `FFPROBE_PATH`, else found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// util-linux's `setpriv`, where it is installed and sets a parent-death signal
    /// ([`Tools::command`]).
    pub setpriv: Option<PathBuf>,
}

impl Tools {
    /// `program` (`self.ffmpeg` or `self.ffprobe`) as a command run for a job. Through
    /// `setpriv --pdeathsig KILL` where that works (Linux, util-linux 2.33 and later): the
    /// kernel then kills the tool when the thread that started it ends, so a worker killed
    /// outright (SIGKILL, the OOM killer) takes its encodes with it. They ran on to their end,
    /// for hours on a long source, beside the attempt run again on another worker, and after
    /// the job was cancelled. `setpriv` replaces itself with the tool (one process), so
    /// `kill_on_drop` and time limits reach the tool itself. (Tools are started from the
    /// runtime's worker threads, which live as long as the process.)
    pub fn command(&self, program: &Path) -> Command {
        match &self.setpriv {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// `setpriv` on `PATH`, if it runs a program with a parent-death signal here.
async fn death_signal_wrapper() -> Option<PathBuf> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let setpriv = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("setpriv"))
            .find(|candidate| candidate.is_file())
    })?;
    let works = Command::new(&setpriv)
        .args(["--pdeathsig", "KILL", "--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    works.then_some(setpriv)
}

static TOOLS: Checked = Checked::new();

/// A failed check is answered again for this long before the tools are looked for anew: ffmpeg
/// installed (or a passing failure gone) after start-up is found without a restart, and jobs
/// queued meanwhile do not each run the check.
const RECHECK_AFTER: Duration = Duration::from_secs(30);

/// The check's answer: kept for good once the tools pass, a failure only for
/// [`RECHECK_AFTER`].
struct Checked {
    passed: OnceLock<Tools>,
    failed: Mutex<Option<(Instant, String)>>,
}

impl Checked {
    const fn new() -> Self {
        Self {
            passed: OnceLock::new(),
            failed: Mutex::new(None),
        }
    }

    async fn get<F>(&self, now: Instant, probe: impl FnOnce() -> F) -> Result<Tools, String>
    where
        F: std::future::Future<Output = Result<Tools, String>>,
    {
        if let Some(tools) = self.passed.get() {
            return Ok(tools.clone());
        }
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        if let Some((at, failure)) = failed
            && now.saturating_duration_since(at) < RECHECK_AFTER
        {
            return Err(failure);
        }
        match probe().await {
            Ok(tools) => Ok(self.passed.get_or_init(|| tools).clone()),
            Err(failure) => {
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some((now, failure.clone()));
                }
                Err(failure)
            }
        }
    }
}

const INSTALL_HINT: &str = "install ffmpeg (Debian/Ubuntu: `sudo apt-get install -y ffmpeg`; macOS: `brew install ffmpeg-full`, \
     whose binaries are in `$(brew --prefix ffmpeg-full)/bin`) or point FFMPEG_PATH and FFPROBE_PATH at the binaries";

fn find(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Checks that ffmpeg (with the `drawtext`, `overlay` and `subtitles` filters and libx264) and
/// ffprobe run. Tools that pass are kept for the life of the process; a failure is looked into
/// again after [`RECHECK_AFTER`].
pub async fn check() -> Result<Tools, String> {
    TOOLS.get(Instant::now(), probe_tools).await
}

async fn probe_tools() -> Result<Tools, String> {
    let ffmpeg = find("FFMPEG_PATH", "ffmpeg")
        .ok_or_else(|| format!("ffmpeg was not found: {INSTALL_HINT}"))?;
    let ffprobe = find("FFPROBE_PATH", "ffprobe")
        .ok_or_else(|| format!("ffprobe was not found: {INSTALL_HINT}"))?;
    let filters = Command::new(&ffmpeg)
        .args(["-hide_banner", "-filters"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{} does not run ({e}): {INSTALL_HINT}", ffmpeg.display()))?;
    let listing = String::from_utf8_lossy(&filters.stdout);
    for filter in ["drawtext", "overlay", "subtitles"] {
        if !listing.split_whitespace().any(|word| word == filter) {
            return Err(format!(
                "{} lacks the `{filter}` filter (it needs libfreetype and libass): install a full ffmpeg build",
                ffmpeg.display()
            ));
        }
    }
    let encoders = Command::new(&ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{} does not run ({e})", ffmpeg.display()))?;
    if !String::from_utf8_lossy(&encoders.stdout).contains("libx264") {
        return Err(format!(
            "{} lacks the libx264 encoder: install a full ffmpeg build",
            ffmpeg.display()
        ));
    }
    let probe = Command::new(&ffprobe)
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{} does not run ({e}): {INSTALL_HINT}", ffprobe.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} -version failed: {INSTALL_HINT}",
            ffprobe.display()
        ));
    }
    Ok(Tools {
        ffmpeg,
        ffprobe,
        setpriv: death_signal_wrapper().await,
    })
}

/// How long ffmpeg's output may stand still before the run is stopped as stuck.
const STALL: std::time::Duration = std::time::Duration::from_secs(120);

/// The longest one ffmpeg run may take: a fixed allowance plus a hundred times the media time
/// it makes (libx264 `veryfast` encodes 1080p at several times real time on one core; an 8K
/// source decoded for a proxy is far slower). An input that keeps its output moving at a crawl
/// is stopped here rather than held for days.
fn budget(expected_secs: f64) -> std::time::Duration {
    let media = if expected_secs.is_finite() {
        expected_secs.clamp(0.0, 24.0 * 3600.0)
    } else {
        0.0
    };
    std::time::Duration::from_secs(600) + std::time::Duration::from_secs_f64(media * 100.0)
}

/// How long one ffprobe may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs ffmpeg with `args` (input and output included), reporting progress as a fraction of
/// `expected_secs` to `on_progress`. The process is killed if this future is dropped.
pub async fn run(
    tools: &Tools,
    args: &[String],
    expected_secs: f64,
    mut on_progress: impl FnMut(f64),
) -> Result<(), String> {
    let mut child = tools
        .command(&tools.ffmpeg)
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-progress",
            "pipe:1",
            "-nostats",
            "-y",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let stdout = child.stdout.take().ok_or("ffmpeg has no stdout")?;
    let stderr = child.stderr.take().ok_or("ffmpeg has no stderr")?;
    let errors = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if tail.len() == 20 {
                tail.remove(0);
            }
            tail.push(line);
        }
        tail.join("\n")
    });
    let mut lines = BufReader::new(stdout).lines();
    // An input ffmpeg cannot get past (a looping picture it fails to decode) spins for ever:
    // it is stopped once its output has not moved on for STALL, or once the run has taken
    // its whole budget.
    let mut furthest = -1_i64;
    let mut moved_at = tokio::time::Instant::now();
    let budget = budget(expected_secs);
    let give_up_at = moved_at + budget;
    loop {
        let deadline = (moved_at + STALL).min(give_up_at);
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => break,
            Err(_) => {
                let _ = child.kill().await;
                return Err(if deadline == give_up_at {
                    format!(
                        "ffmpeg stopped: it ran for {} seconds, longer than its media allows",
                        budget.as_secs()
                    )
                } else {
                    format!(
                        "ffmpeg stopped: its output did not move on for {} seconds",
                        STALL.as_secs()
                    )
                });
            }
        };
        // The first block reports out_time_us=-9223372036854775807: ignore negatives.
        if let Some(us) = line
            .strip_prefix("out_time_us=")
            .and_then(|v| v.trim().parse::<i64>().ok())
            && us >= 0
        {
            if us > furthest {
                furthest = us;
                moved_at = tokio::time::Instant::now();
            }
            if expected_secs > 0.0 {
                on_progress((us as f64 / 1e6 / expected_secs).clamp(0.0, 1.0));
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("ffmpeg did not finish: {e}"))?;
    let stderr = errors.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(format!("ffmpeg failed ({status}): {}", stderr.trim()))
    }
}

/// What ffprobe says about a media file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Probe {
    pub duration_secs: Option<f64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub fps: Option<f64>,
    pub video_duration_secs: Option<f64>,
    pub has_video: bool,
    pub has_audio: bool,
    pub format_name: Option<String>,
    /// The picture's pixel aspect (width over height of one pixel) when it is not square: a
    /// 1440×1080 picture of 4:3 pixels shows 1920×1080.
    pub pixel_aspect: Option<f64>,
}

impl Probe {
    /// A render's length: its picture's where the sound only runs past it by AAC's last frame
    /// (1,024 samples: 21 ms at 48 kHz; a 300-second movie measured 300.021 s, and was billed
    /// so), else the container's, its longest stream's (a short whose source's picture ends
    /// before its sound lasts as long as its sound).
    pub fn render_secs(&self) -> Option<f64> {
        /// One AAC frame at the lowest rate ffmpeg's encoder is given here (22.05 kHz), and a
        /// little more.
        const OVERHANG: f64 = 0.05;
        let picture = self
            .video_duration_secs
            .filter(|d| d.is_finite() && *d > 0.0);
        match (picture, self.duration_secs) {
            (Some(picture), Some(file)) if file - picture <= OVERHANG => Some(picture.min(file)),
            (picture, file) => file.filter(|d| d.is_finite()).or(picture),
        }
    }
}

/// The demuxers media inputs (uploaded videos, their proxies, rendered outputs) may be read
/// with, given to every ffprobe and ffmpeg that opens one as `-format_whitelist`. Without it
/// an upload could be an HLS or concat playlist whose entries are other files on the worker
/// (other tenants' videos): ffmpeg follows `file://` segments.
pub const MEDIA_FORMATS: &str = "mov,mp4,matroska,webm,avi,mpegts,mpeg,flv,asf,ogg,mxf";

/// What ffprobe may read an upload as: the media demuxers, and audio and picture ones (which
/// refer to no other file) so that an upload that is not a video is told so precisely.
pub const PROBE_FORMATS: &str = "mov,mp4,matroska,webm,avi,mpegts,mpeg,flv,asf,ogg,mxf,\
    mp3,wav,aac,flac,image2,png_pipe,jpeg_pipe,webp_pipe,gif,bmp_pipe,tiff_pipe";

/// The demuxers a picture layer's asset may be read with (PNG, JPEG, WebP, as uploaded).
pub const IMAGE_FORMATS: &str = "png_pipe,jpeg_pipe,webp_pipe";

/// Whether ffprobe's `format_name` (e.g. `mov,mp4,m4a,3gp,3g2,mj2`) names an allowed demuxer.
pub fn is_media_format(format_name: &str) -> bool {
    format_name
        .split(',')
        .any(|name| MEDIA_FORMATS.split(',').any(|allowed| allowed == name))
}

/// Whether a video stream is shown turned by a quarter (90° or 270°, either way): its display
/// matrix (ffprobe's `side_data_list`), or the `rotate` tag older writers leave.
fn quarter_turned(stream: &serde_json::Value) -> bool {
    let matrix = stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|side| side["rotation"].as_f64());
    let tag = || {
        stream["tags"]["rotate"]
            .as_str()
            .and_then(|r| r.trim().parse::<f64>().ok())
    };
    matrix
        .or_else(tag)
        .is_some_and(|degrees| (degrees.rem_euclid(180.0) - 90.0).abs() < 1.0)
}

/// Reads duration, dimensions (as displayed, rotation applied) and streams of `path` (read as one of [`PROBE_FORMATS`]; a
/// playlist or other format is refused, "Format not on whitelist").
/// Runs ffprobe on `path` (of the formats it may read) with `args`, within [`PROBE_TIMEOUT`].
async fn ffprobe(
    tools: &Tools,
    args: &[&str],
    path: &Path,
) -> Result<std::process::Output, String> {
    let output = tools
        .command(&tools.ffprobe)
        .args(["-v", "error", "-format_whitelist", PROBE_FORMATS])
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(PROBE_TIMEOUT, output)
        .await
        .map_err(|_| {
            format!(
                "ffprobe stopped: it did not finish within {} seconds",
                PROBE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot start ffprobe: {e}"))
}

pub async fn probe(tools: &Tools, path: &Path) -> Result<Probe, String> {
    let output = ffprobe(
        tools,
        &["-print_format", "json", "-show_format", "-show_streams"],
        path,
    )
    .await?;
    if !output.status.success() {
        return Err(format!(
            "not a readable media file: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("unexpected ffprobe output: {e}"))?;
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    // Not a cover picture (an M4A's album art, a video's poster): ffprobe lists those as
    // one-frame video streams, so a song with a cover read as a video of that size.
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1);
    let fps = video
        .and_then(|v| v["avg_frame_rate"].as_str())
        .and_then(|rate| {
            let (n, d) = rate.split_once('/')?;
            let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
            (d > 0.0).then(|| n / d)
        });
    let stored = |key: &str| {
        video
            .and_then(|v| v[key].as_i64())
            .and_then(|n| i32::try_from(n).ok())
    };
    // The picture as players (and ffmpeg, which rotates while decoding) show it: a phone
    // video stored 1920×1080 with a quarter turn is 1080×1920.
    let (width, height) = if video.is_some_and(quarter_turned) {
        (stored("height"), stored("width"))
    } else {
        (stored("width"), stored("height"))
    };
    Ok(Probe {
        duration_secs: number(&json["format"]["duration"]),
        width,
        height,
        fps,
        video_duration_secs: video.and_then(|v| number(&v["duration"])),
        has_video: video.is_some(),
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
        format_name: json["format"]["format_name"].as_str().map(str::to_owned),
        // Of the picture as shown: a quarter turn makes the stored width its height.
        pixel_aspect: video
            .and_then(|v| v["sample_aspect_ratio"].as_str())
            .and_then(|ratio| {
                let (n, d) = ratio.split_once(':')?;
                let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
                (n > 0.0 && d > 0.0 && n != d).then(|| n / d)
            })
            .map(|aspect| match video.is_some_and(quarter_turned) {
                true => 1.0 / aspect,
                false => aspect,
            }),
    })
}

/// How long the file at `path` lasts, read from its packets (every stream's), from the first
/// packet's time to the end of the last: for a file whose container says nothing of it (WebM
/// recorded by a browser's MediaRecorder, a live capture), or says more than the file holds
/// (cut off in its upload). `None` when it cannot be read.
pub async fn scan_duration(tools: &Tools, path: &Path) -> Option<f64> {
    let output = ffprobe(
        tools,
        &[
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .await
    .ok()?;
    if !output.status.success() {
        return None;
    }
    packets_span(&String::from_utf8_lossy(&output.stdout))
}

/// The span of `codec_type,pts_time,dts_time,duration_time` lines of picture and sound: from
/// the earliest time to the latest end (a packet without a presentation time counts at its
/// decoding time). Other streams do not count: a timecode or chapter track is one packet as
/// long as the container claims, whatever the file holds.
fn packets_span(lines: &str) -> Option<f64> {
    let mut first = f64::INFINITY;
    let mut end = f64::NEG_INFINITY;
    for line in lines.lines() {
        let mut fields = line.split(',');
        if !matches!(fields.next().map(str::trim), Some("video" | "audio")) {
            continue;
        }
        let time = |field: Option<&str>| field.and_then(|t| t.trim().parse::<f64>().ok());
        let (pts, dts) = (time(fields.next()), time(fields.next()));
        let Some(pts) = pts.or(dts) else {
            continue;
        };
        let duration = fields
            .next()
            .and_then(|d| d.trim().parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(0.0);
        if pts.is_finite() {
            first = first.min(pts);
            end = end.max(pts + duration);
        }
    }
    // To the microsecond ffprobe prints times in: a difference of two of them carries float
    // noise (1.12 - 1.0 is 0.12000000000000011), which `durationSecs` would show.
    let span = ((end - first) * 1e6).round() / 1e6;
    (span.is_finite() && span > 0.0).then_some(span)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_files_length_is_read_from_its_packets() {
        let span = super::packets_span(
            "video,1.000000,1.000000,0.040000\naudio,1.080000,1.040000,0.040000,\n\
             video,N/A,1.040000,N/A\ndata,0.000000,0.000000,600.000000\n\n",
        )
        .expect("a span");
        assert_eq!(span, 0.12, "to the microsecond, without float noise");
        assert_eq!(super::packets_span("video,N/A,N/A,N/A\n"), None);
        assert_eq!(super::packets_span(""), None);
    }

    #[test]
    fn a_renders_length_is_its_pictures_unless_its_sound_runs_on() {
        let probe = |file: Option<f64>, picture: Option<f64>| Probe {
            duration_secs: file,
            width: Some(16),
            height: Some(16),
            fps: Some(25.0),
            video_duration_secs: picture,
            has_video: true,
            has_audio: true,
            format_name: Some("mov,mp4,m4a,3gp,3g2,mj2".to_owned()),
            pixel_aspect: None,
        };
        let length = |file, picture| probe(file, picture).render_secs();
        assert_eq!(length(Some(300.021), Some(300.0)), Some(300.0));
        assert_eq!(length(Some(4.5), Some(4.5)), Some(4.5));
        assert_eq!(
            length(Some(6.0), Some(2.0)),
            Some(6.0),
            "a still over sound"
        );
        assert_eq!(length(Some(6.0), None), Some(6.0));
        assert_eq!(length(Some(6.0), Some(f64::NAN)), Some(6.0));
        assert_eq!(length(None, Some(2.0)), Some(2.0));
        assert_eq!(length(None, None), None);
    }

    fn tools() -> Tools {
        Tools {
            ffmpeg: PathBuf::from("/opt/ffmpeg"),
            ffprobe: PathBuf::from("/opt/ffprobe"),
            setpriv: None,
        }
    }

    /// Run by `a_tool_dies_with_the_worker_that_started_it` in a process of its own: starts
    /// `sleep` as a job's tool, says its pid, and waits to be killed.
    #[test]
    #[ignore = "a helper, run by a_tool_dies_with_the_worker_that_started_it"]
    fn starts_a_tool_and_waits() {
        if std::env::var_os("REELGRAPH_TOOL_HELPER").is_none() {
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let tools = check()
                .await
                .expect("ffmpeg is installed (scripts/test installs it)");
            let child = tools
                .command(Path::new("sleep"))
                .arg("60")
                .spawn()
                .expect("sleep runs");
            println!("tool-pid {}", child.id().expect("pid"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    /// A tool started for a job dies with the worker that started it: killed with SIGKILL,
    /// a worker left its ffmpeg encoding to the end.
    #[test]
    fn a_tool_dies_with_the_worker_that_started_it() {
        use std::io::BufRead;
        let mut helper = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "render::ffmpeg::tests::starts_a_tool_and_waits",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env("REELGRAPH_TOOL_HELPER", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("helper runs");
        let stdout = helper.stdout.take().expect("stdout");
        let pid: u32 = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                // After libtest's `test … ... ` on the same line.
                line.split("tool-pid ")
                    .nth(1)
                    .and_then(|p| p.split_whitespace().next()?.parse().ok())
            })
            .expect("the helper started its tool");
        // Killed once the tool runs (`setpriv` has set the signal and become `sleep`).
        let started = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .as_deref()
            != Some("sleep\n")
        {
            assert!(Instant::now() < started, "sleep {pid} never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        helper.kill().expect("killed");
        helper.wait().expect("reaped");
        // Dead: gone, or a zombie until init reaps it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.chars().next())
                });
            if matches!(state, None | Some('Z')) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sleep {pid} outlived its worker ({state:?})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A failed check is answered from memory for a while, then made again (ffmpeg installed
    /// after start-up is found); tools that passed are never checked again.
    #[tokio::test]
    async fn a_failed_check_is_made_again_later_and_a_pass_is_kept() {
        let checked = Checked::new();
        let runs = AtomicUsize::new(0);
        let missing = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Err::<Tools, _>("ffmpeg was not found".to_owned())
        };
        let installed = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(tools())
        };
        let start = Instant::now();
        assert_eq!(
            checked.get(start, missing).await.err().as_deref(),
            Some("ffmpeg was not found")
        );
        let soon = start + Duration::from_secs(5);
        assert!(checked.get(soon, installed).await.is_err(), "remembered");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let later = start + RECHECK_AFTER;
        let found = checked.get(later, installed).await.expect("found now");
        assert_eq!(found.ffmpeg, PathBuf::from("/opt/ffmpeg"));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let much_later = later + RECHECK_AFTER * 10;
        assert!(checked.get(much_later, missing).await.is_ok(), "kept");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}

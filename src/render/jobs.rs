//! The render job handlers: `render.movie` plans and fans out, `render.scene` renders one
//! scene (or reuses its cached clip), `render.assemble` joins the scenes into the movie.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use chrono::Utc;
use entity::{JobKind, render_plan, scene_cache_entry};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, sea_query::Expr};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    ffmpeg,
    plan::{self, PlannedScene},
    scene::{self, SceneInputs},
    spec::{self, Layer, MovieSpec, Scene},
};
use crate::{
    jobs::{
        NewJob,
        handlers::{JobContext, JobFailure, JobHandler, Outcome, Registry},
        queue::ParentProgress,
    },
    metrics::ResultLabel,
};

/// Share of the movie's progress that planning, rendering and assembling take.
const PLANNED: f64 = 0.05;
const RENDERED: f64 = 0.9;

pub fn register(registry: &mut Registry) {
    registry
        .register(super::MOVIE_JOB, RenderMovie)
        .register(super::SCENE_JOB, RenderScene)
        .register("render.assemble", RenderAssemble);
}

/// Input of `render.movie` (written by `renderMovie`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovieInput {
    pub spec: MovieSpec,
    /// Render minutes set aside at enqueue; settled or given back when the movie ends.
    #[serde(default)]
    pub reservation: Option<crate::billing::Reservation>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SceneJobInput {
    scene: Scene,
    /// The font file of each layer drawn with another than the default (by layer); empty in
    /// a scene queued before fonts were chosen ([`super::fonts`]).
    #[serde(default)]
    fonts: Vec<Option<String>>,
    planned: PlannedScene,
    width: u32,
    height: u32,
    fps: u32,
    parent_progress: ParentProgress,
}

#[derive(Debug, Serialize, Deserialize)]
struct AssembleInput {
    movie_job_id: Uuid,
    scene_keys: Vec<String>,
    /// Each scene's length in frames at `fps`, so scenes join at their exact boundaries
    /// ([`scene::concat_list`]); empty in an assembly queued before they were recorded.
    #[serde(default)]
    scene_frames: Vec<u64>,
    #[serde(default)]
    fps: u32,
    total_secs: f64,
    parent_progress: ParentProgress,
}

/// An asset is checked against the upload limit again when it is read: its presigned PUT
/// works for 10 minutes after `renderMovie` checked it, and could put far larger bytes there.
async fn asset_within_limit(ctx: &JobContext, key: &str) -> Result<(), JobFailure> {
    match ctx.storage.head(key).await.map_err(storage_failure)? {
        None => Err(JobFailure::permanent(format!(
            "the asset {key} no longer exists"
        ))),
        Some(found) if found.size > super::graphql::MAX_ASSET_BYTES => {
            Err(JobFailure::permanent(format!(
                "the asset {key} is larger than {} MiB",
                super::graphql::MAX_ASSET_BYTES >> 20
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Most pixels a picture layer may have: ffmpeg decodes every one, four bytes each, in every
/// scene showing it (a 1 MB PNG of 16384×16384 is a gigabyte decoded).
const MAX_PICTURE_PIXELS: u64 = 40_000_000;

/// Reads the picture an image layer (at `at` in the spec) names: it must be a PNG, JPEG or
/// WebP of at most [`MAX_PICTURE_PIXELS`], which is said now, naming the layer, rather than
/// by ffmpeg in a scene. Returns the picture's SHA-256 and size.
async fn checked_picture(
    ctx: &JobContext,
    at: &str,
    key: &str,
) -> Result<(String, (u64, u64)), JobFailure> {
    let dir = temp_dir(ctx)?;
    let path = dir.path().join("picture");
    ctx.storage
        .get_to_file(key, &path)
        .await
        .map_err(storage_failure)?;
    let refuse = |why: String| JobFailure::permanent(format!("spec.{at}: {why}"));
    let read = path.clone();
    let size = tokio::task::spawn_blocking(move || {
        let mut header = [0_u8; 32];
        let read_header =
            std::fs::File::open(&read).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
        let kind = read_header
            .ok()
            .and_then(|n| imagesize::image_type(&header[..n]).ok());
        let picture = matches!(
            kind,
            Some(
                imagesize::ImageType::Png | imagesize::ImageType::Jpeg | imagesize::ImageType::Webp
            )
        );
        let size = picture.then(|| imagesize::size(&read).ok()).flatten()?;
        // As it is drawn: a photo tagged to be turned a quarter is measured turned.
        Some(scene::upright(
            (size.width as u64, size.height as u64),
            scene::orientation(&read),
        ))
    })
    .await
    .map_err(|e| JobFailure::internal("reading a picture", e))?;
    let Some(size) = size else {
        return Err(refuse(
            "the asset is not a PNG, JPEG or WebP picture".to_owned(),
        ));
    };
    let (width, height) = size;
    if width.saturating_mul(height) > MAX_PICTURE_PIXELS {
        return Err(refuse(format!(
            "the picture is {width}×{height}, more than {} megapixels",
            MAX_PICTURE_PIXELS / 1_000_000
        )));
    }
    // Decoded once, alone: a picture whose header is right and whose body is not is refused
    // now, naming its layer, rather than failing a scene later.
    let tools = tools().await?;
    let decoded = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tools
            .command(&tools.ffmpeg)
            .args(["-nostdin", "-v", "error", "-format_whitelist"])
            .arg(ffmpeg::IMAGE_FORMATS)
            .arg("-i")
            .arg(&path)
            .args(["-frames:v", "1", "-f", "null", "-"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await;
    match decoded {
        Ok(Ok(status)) if status.success() => {}
        Ok(Ok(_)) => return Err(refuse("the picture cannot be decoded".to_owned())),
        // Not the picture's fault: ffmpeg did not start, or the machine is too busy.
        Ok(Err(e)) => return Err(tool_failure(format!("cannot start ffmpeg: {e}"))),
        Err(_) => {
            return Err(JobFailure::internal(
                "rendering failed on the server",
                "decoding a picture took over 30 s",
            ));
        }
    }
    let digest = crate::media::hash::file_sha256(&path)
        .await
        .map_err(|e| JobFailure::internal("hashing a picture", e))?;
    Ok((digest, size))
}

fn storage_failure(err: impl std::fmt::Display) -> JobFailure {
    JobFailure::unavailable("object storage was unavailable", err)
}

/// The database did not answer (a restart, a failover): an outage, as for storage. A scene
/// rendered and stored but not recorded failed its attempt, and three such cuts failed the
/// movie.
fn db_failure(public: &'static str) -> impl FnOnce(sea_orm::DbErr) -> JobFailure {
    move |err| JobFailure::unavailable(public, err)
}

async fn tools() -> Result<ffmpeg::Tools, JobFailure> {
    ffmpeg::check().await.map_err(tools_missing)
}

/// ffmpeg or ffprobe missing or broken on this server: the operator's to fix (the detail,
/// with the install hints, goes to the log), tried again later.
pub(crate) fn tools_missing(detail: String) -> JobFailure {
    JobFailure::internal("rendering is unavailable on this server for now", detail)
}

/// An error of [`ffmpeg::run`] or [`ffmpeg::probe`] as a job failure. What says more about
/// the machine than about the input (the tool killed, or stopped by a signal it caught, which
/// it answers with status 255 and nothing on stderr; out of disk or memory; not started; over
/// its time on a busy machine) is tried again; anything else is the input's, and final.
pub(crate) fn tool_failure(message: String) -> JobFailure {
    const SERVER: [&str; 7] = [
        "(signal:",
        "No space left on device",
        "Cannot allocate memory",
        "cannot start ffmpeg",
        "cannot start ffprobe",
        "ffmpeg stopped: it ran for",
        "ffprobe stopped:",
    ];
    let interrupted = message.trim_end() == "ffmpeg failed (exit status: 255):";
    if interrupted || SERVER.iter().any(|s| message.contains(s)) {
        JobFailure::internal("rendering failed on the server", message)
    } else {
        JobFailure::permanent(message)
    }
}

fn temp_dir(ctx: &JobContext) -> Result<tempfile::TempDir, JobFailure> {
    crate::jobs::work_folders::create(ctx.job.id)
        .map_err(|e| JobFailure::internal("could not create a work folder", e))
}

/// Runs ffmpeg while passing its progress, scaled into `[from, to]`, to the job. Dropping this
/// future (cancellation) kills ffmpeg.
pub(crate) async fn run_with_progress(
    ctx: &JobContext,
    tools: &ffmpeg::Tools,
    args: &[String],
    expected_secs: f64,
    phase: &str,
    (from, to): (f64, f64),
) -> Result<(), JobFailure> {
    let (tx, mut rx) = watch::channel(0.0_f64);
    let render = ffmpeg::run(tools, args, expected_secs, move |p| {
        tx.send_replace(p);
    });
    let report = async {
        while rx.changed().await.is_ok() {
            let p = *rx.borrow_and_update();
            ctx.progress(from + (to - from) * p, Some(phase)).await?;
        }
        Ok::<_, JobFailure>(())
    };
    tokio::pin!(render);
    tokio::select! {
        result = &mut render => result.map_err(tool_failure),
        reported = report => {
            reported?;
            render.await.map_err(tool_failure)
        }
    }
}

struct RenderMovie;

#[async_trait::async_trait]
impl JobHandler for RenderMovie {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: MovieInput = ctx.input()?;
        ctx.progress(0.01, Some("planning")).await?;
        let mut assets = plan::AssetDigests::new();
        let mut sizes = HashMap::new();
        for (at, key) in input.spec.asset_keys() {
            if !assets.contains_key(key) {
                asset_within_limit(ctx, key).await?;
                let (digest, size) = checked_picture(ctx, &at, key).await?;
                assets.insert(key.to_owned(), digest);
                sizes.insert(key.to_owned(), size);
            }
        }
        // A side left out follows the picture's shape: a 1×16 picture 3840 wide would be
        // drawn 3840×61440, a gigabyte per frame.
        for (at, key, width, height) in input.spec.image_layers() {
            let Some(&picture) = sizes.get(key) else {
                continue;
            };
            if let Some(why) = spec::oversized_layer(spec::scaled_size(picture, width, height)) {
                let field = match (width, height) {
                    (Some(_), None) => "width",
                    (None, Some(_)) => "height",
                    _ => "assetKey",
                };
                return Err(JobFailure::permanent(format!("spec.{at}.{field}: {why}")));
            }
        }
        // The scenes as they are drawn: every picture with both sides, so that ffmpeg is told
        // the size measured here (its own rounding of a left-out side can reach 0).
        let spec = spec::drawn(&input.spec, &sizes);
        for (si, scene) in spec.scenes.iter().enumerate() {
            if let Some(why) =
                spec::overfull_scene(scene).or_else(|| spec::overfull_sources(scene, &sizes))
            {
                return Err(JobFailure::permanent(format!(
                    "spec.scenes.{si}.layers: {why}"
                )));
            }
        }
        // Each text the default font cannot draw whole, with the font that draws it.
        let mut fonts = plan::TextFonts::new();
        for scene in &spec.scenes {
            for layer in &scene.layers {
                if let Layer::Text { text, .. } = layer
                    && !fonts.contains_key(text)
                    && let Some(font) = super::fonts::font_for(text).await
                {
                    fonts.insert(text.clone(), font);
                }
            }
        }
        let plan = plan::compile(ctx.job.id, ctx.job.owner_id, &spec, &assets, &fonts);
        let plan_json =
            serde_json::to_vec_pretty(&plan).map_err(|e| JobFailure::permanent(e.to_string()))?;
        let key = plan::plan_key(ctx.job.id);
        ctx.storage
            .put_bytes(&key, plan_json, "application/json")
            .await
            .map_err(storage_failure)?;
        render_plan::Entity::insert(render_plan::ActiveModel {
            id: Set(Uuid::now_v7()),
            job_id: Set(ctx.job.id),
            version: Set(plan.version.clone()),
            spec: Set(serde_json::to_value(&plan.spec).unwrap_or_default()),
            hash: Set(plan.hash.clone()),
            storage_key: Set(key),
            created_at: Set(Utc::now()),
        })
        .on_conflict_do_nothing_on([render_plan::Column::JobId])
        .exec(ctx.db())
        .await
        .map_err(db_failure("could not save the render plan"))?;
        ctx.progress(PLANNED, Some("planning")).await?;

        let (width, height, fps) = (input.spec.width, input.spec.height, input.spec.fps);
        // One job per distinct scene: a scene the movie repeats (a title card between parts,
        // under other ids) is rendered once, by the job of its first showing, and weighs as
        // much as all of its showings. One job each rendered it on every free slot at once.
        let mut weights: HashMap<&str, f64> = HashMap::new();
        for planned in &plan.scenes {
            *weights.entry(planned.cache_key.as_str()).or_default() += planned.duration;
        }
        let children = plan
            .scenes
            .iter()
            .filter_map(|planned| {
                let weight = weights.remove(planned.cache_key.as_str())?;
                let scene = &spec.scenes[planned.index];
                let input = SceneJobInput {
                    fonts: scene
                        .layers
                        .iter()
                        .map(|layer| match layer {
                            Layer::Text { text, .. } => fonts.get(text).cloned(),
                            Layer::Image { .. } => None,
                        })
                        .collect(),
                    scene: scene.clone(),
                    planned: planned.clone(),
                    width,
                    height,
                    fps,
                    parent_progress: ParentProgress {
                        phase: "rendering".into(),
                        from: PLANNED,
                        to: RENDERED,
                        weight,
                    },
                };
                let mut job = NewJob::new(
                    JobKind::Render,
                    super::SCENE_JOB,
                    ctx.job.owner_id,
                    json!(input),
                );
                job.priority = ctx.job.priority;
                Some(job)
            })
            .collect();
        let assemble = AssembleInput {
            movie_job_id: ctx.job.id,
            scene_keys: plan.scenes.iter().map(|s| s.output_key.clone()).collect(),
            scene_frames: plan
                .scenes
                .iter()
                .map(|s| spec::frames(s.duration, input.spec.fps))
                .collect(),
            fps: input.spec.fps,
            total_secs: input.spec.total_secs(),
            parent_progress: ParentProgress {
                phase: "assembling".into(),
                from: RENDERED,
                to: 0.99,
                weight: 1.0,
            },
        };
        let mut then = NewJob::new(
            JobKind::Render,
            "render.assemble",
            ctx.job.owner_id,
            json!(assemble),
        );
        then.priority = ctx.job.priority;
        Ok(Outcome::Wait {
            children,
            then: Some(then),
        })
    }
}

struct RenderScene;

#[async_trait::async_trait]
impl JobHandler for RenderScene {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: SceneJobInput = ctx.input()?;
        let planned = &input.planned;
        let cached = scene_cache_entry::Entity::find_by_id(planned.cache_key.clone())
            .one(ctx.db())
            .await
            .map_err(db_failure("could not read the scene cache"))?;
        // Marked used before anything else: a prune that comes later leaves the entry alone (it
        // removes only entries unused for days, conditionally), and one that came first has
        // removed the row, so nothing is marked and this is a miss.
        let marked = match &cached {
            Some(entry) => {
                scene_cache_entry::Entity::update_many()
                    .col_expr(scene_cache_entry::Column::LastUsedAt, Expr::val(Utc::now()))
                    .filter(scene_cache_entry::Column::Hash.eq(entry.hash.clone()))
                    .exec(ctx.db())
                    .await
                    .map_err(db_failure("could not update the scene cache"))?
                    .rows_affected
                    == 1
            }
            None => false,
        };
        if let Some(entry) = cached.filter(|_| marked)
            && ctx
                .storage
                .head(&entry.storage_key)
                .await
                .map_err(storage_failure)?
                .is_some()
        {
            return served_from_cache(ctx, entry.storage_key, entry.duration_secs).await;
        }
        // Stored by an earlier attempt whose database write did not happen (an outage after
        // the upload): the file is the scene (its key is its content's), so it is recorded
        // rather than rendered again. Only one written lately: the cache prune removes files
        // of rows unused for a day or more (row first, then file), and adopting one of those
        // between its two steps would leave a row naming a file about to go.
        if let Some(stored) = ctx
            .storage
            .head(&planned.output_key)
            .await
            .map_err(storage_failure)?
            .filter(|stored| {
                stored
                    .modified
                    .is_some_and(|at| Utc::now() - at < chrono::TimeDelta::hours(12))
            })
        {
            record_scene(ctx, planned, i64::try_from(stored.size).ok()).await?;
            return served_from_cache(ctx, planned.output_key.clone(), planned.duration).await;
        }
        ctx.metrics
            .scene_cache
            .get_or_create(&ResultLabel { result: "miss" })
            .inc();

        let tools = tools().await?;
        // One missing on this machine (a worker of another image) is this server's to fix, and
        // tried again later: drawn with the default, the boxes would be cached under the key
        // that names the font.
        if let Some(font) = input
            .fonts
            .iter()
            .flatten()
            .find(|f| !Path::new(f).is_file())
        {
            return Err(JobFailure::internal(
                "rendering is unavailable on this server for now",
                format!("the font {font} is not installed on this worker"),
            ));
        }
        let dir = temp_dir(ctx)?;
        let mut inputs = SceneInputs {
            fonts: input
                .fonts
                .iter()
                .map(|font| font.as_ref().map(std::path::PathBuf::from))
                .collect(),
            texts: Vec::new(),
            images: Vec::new(),
            orientations: Vec::new(),
        };
        let mut fetched: std::collections::HashMap<&str, (std::path::PathBuf, u8)> =
            std::collections::HashMap::new();
        for (i, layer) in input.scene.layers.iter().enumerate() {
            match layer {
                Layer::Text { text, .. } => {
                    let path = dir.path().join(format!("text_{i}.txt"));
                    tokio::fs::write(&path, text)
                        .await
                        .map_err(|e| JobFailure::internal("could not write a work file", e))?;
                    inputs.texts.push(Some(path));
                    inputs.images.push(None);
                    inputs.orientations.push(1);
                }
                Layer::Image { asset_key, .. } => {
                    // A picture shown by several layers is downloaded once.
                    let (path, orientation) = match fetched.get(asset_key.as_str()) {
                        Some(done) => done.clone(),
                        None => {
                            let path = dir.path().join(format!("image_{i}"));
                            asset_within_limit(ctx, asset_key).await?;
                            ctx.storage
                                .get_to_file(asset_key, &path)
                                .await
                                .map_err(storage_failure)?;
                            let read = path.clone();
                            let orientation =
                                tokio::task::spawn_blocking(move || scene::orientation(&read))
                                    .await
                                    .map_err(|e| JobFailure::internal("reading a picture", e))?;
                            fetched.insert(asset_key.as_str(), (path.clone(), orientation));
                            (path, orientation)
                        }
                    };
                    inputs.texts.push(None);
                    inputs.images.push(Some(path));
                    inputs.orientations.push(orientation);
                }
            }
        }
        let output = dir.path().join(format!("scene_{}.mp4", planned.index));
        let args = scene::scene_args(
            &input.scene,
            input.width,
            input.height,
            input.fps,
            &inputs,
            &output,
        );
        ctx.progress(0.0, Some("rendering")).await?;
        run_with_progress(
            ctx,
            &tools,
            &args,
            planned.duration,
            "rendering",
            (0.0, 0.97),
        )
        .await?;
        ctx.storage
            .put_file(&planned.output_key, &output, "video/mp4")
            .await
            .map_err(storage_failure)?;
        let size = tokio::fs::metadata(&output)
            .await
            .map(|m| m.len() as i64)
            .ok();
        record_scene(ctx, planned, size).await?;
        Ok(Outcome::Done {
            output: json!({ "key": planned.output_key, "duration": planned.duration, "cached": false }),
            output_ref: Some(planned.output_key.clone()),
        })
    }
}

/// A scene job's end when its clip is already stored under `key`: `cached`, done.
async fn served_from_cache(
    ctx: &JobContext,
    key: String,
    duration: f64,
) -> Result<Outcome, JobFailure> {
    ctx.metrics
        .scene_cache
        .get_or_create(&ResultLabel { result: "hit" })
        .inc();
    ctx.mark_cached().await?;
    ctx.progress(1.0, Some("cached")).await?;
    Ok(Outcome::Done {
        output: json!({ "key": key, "duration": duration, "cached": true }),
        output_ref: Some(key),
    })
}

/// Records `planned`'s stored file in the scene cache.
async fn record_scene(
    ctx: &JobContext,
    planned: &PlannedScene,
    size: Option<i64>,
) -> Result<(), JobFailure> {
    scene_cache_entry::Entity::insert(scene_cache_entry::ActiveModel {
        hash: Set(planned.cache_key.clone()),
        storage_key: Set(planned.output_key.clone()),
        duration_secs: Set(planned.duration),
        size_bytes: Set(size),
        created_at: Set(Utc::now()),
        last_used_at: Set(Utc::now()),
    })
    // An entry whose file had gone is pointed at the new one, and counts as used now.
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(scene_cache_entry::Column::Hash)
            .update_columns([
                scene_cache_entry::Column::StorageKey,
                scene_cache_entry::Column::DurationSecs,
                scene_cache_entry::Column::SizeBytes,
                scene_cache_entry::Column::LastUsedAt,
            ])
            .to_owned(),
    )
    .exec(ctx.db())
    .await
    .map_err(db_failure("could not record the scene in the cache"))?;
    Ok(())
}

/// Why scene `index`'s clip could not be read, when storage answers that it is not there:
/// removed since it was rendered (by hand, a bucket lifecycle rule), which no wait brings
/// back. A retry renders it again (the scene job checks that the cached clip is still stored).
/// `None` when it is there, or storage does not answer: an outage, waited out.
async fn missing_clip(ctx: &JobContext, index: usize, key: &str) -> Option<JobFailure> {
    match ctx.storage.head(key).await {
        Ok(None) => Some(JobFailure::permanent(format!(
            "the rendered clip of spec.scenes.{index} was removed from storage before the \
             movie was assembled; retry the job to render it again"
        ))),
        Ok(Some(_)) | Err(_) => None,
    }
}

struct RenderAssemble;

#[async_trait::async_trait]
impl JobHandler for RenderAssemble {
    async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobFailure> {
        let input: AssembleInput = ctx.input()?;
        let tools = tools().await?;
        let dir = temp_dir(ctx)?;
        ctx.progress(0.0, Some("assembling")).await?;
        let mut files: Vec<PathBuf> = Vec::with_capacity(input.scene_keys.len());
        // A scene shown several times is one clip, downloaded once.
        let mut fetched: std::collections::HashMap<&str, PathBuf> = Default::default();
        for (i, key) in input.scene_keys.iter().enumerate() {
            if let Some(path) = fetched.get(key.as_str()) {
                files.push(path.clone());
                continue;
            }
            let path = dir.path().join(format!("scene_{i}.mp4"));
            if let Err(err) = ctx.storage.get_to_file(key, &path).await {
                return Err(missing_clip(ctx, i, key)
                    .await
                    .unwrap_or_else(|| storage_failure(err)));
            }
            fetched.insert(key, path.clone());
            files.push(path);
        }
        let list = dir.path().join("scenes.txt");
        tokio::fs::write(
            &list,
            scene::concat_list(&files, &input.scene_frames, input.fps),
        )
        .await
        .map_err(|e| JobFailure::internal("could not write a work file", e))?;
        let output = dir.path().join("movie.mp4");
        run_with_progress(
            ctx,
            &tools,
            &scene::concat_args(&list, &output),
            input.total_secs,
            "assembling",
            (0.0, 0.9),
        )
        .await?;
        let probe = ffmpeg::probe(&tools, &output).await.map_err(tool_failure)?;
        let key = plan::output_key(input.movie_job_id);
        ctx.storage
            .put_file(&key, &output, "video/mp4")
            .await
            .map_err(storage_failure)?;
        let size = tokio::fs::metadata(&output)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        Ok(Outcome::Done {
            output: json!({
                "duration_secs": probe.render_secs(),
                "width": probe.width,
                "height": probe.height,
                "fps": probe.fps,
                "size_bytes": size,
                "mediaData": { "duration": probe.render_secs() },
            }),
            output_ref: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tool_failure;

    #[test]
    fn the_machines_failures_are_tried_again_and_the_inputs_are_final() {
        for server in [
            "ffmpeg failed (signal: 9 (SIGKILL)): ",
            "ffmpeg failed (exit status: 1): scene.mp4: No space left on device",
            "ffmpeg failed (exit status: 1): Cannot allocate memory",
            "cannot start ffmpeg: No such file or directory (os error 2)",
            "ffmpeg failed (exit status: 255): ",
            "ffmpeg stopped: it ran for 700 seconds, longer than its media allows",
        ] {
            let failure = tool_failure(server.to_owned());
            assert!(failure.retryable, "{server}");
            assert_eq!(
                failure.message, "rendering failed on the server",
                "{server}"
            );
        }
        for input in [
            "ffmpeg failed (exit status: 1): Invalid data found when processing input",
            "ffmpeg stopped: its output did not move on for 120 seconds",
            "ffmpeg failed (exit status: 255): Conversion failed!",
            "not a readable media file: moov atom not found",
        ] {
            let failure = tool_failure(input.to_owned());
            assert!(!failure.retryable, "{input}");
            assert_eq!(failure.message, input);
        }
    }
}

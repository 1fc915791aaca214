//! `reelgraph render SPEC` and `reelgraph follow JOB_ID`.

use std::{
    collections::HashMap,
    io::{Read, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use super::{Api, JobUpdate, ServerArgs, follow::follow};

const RENDER: &str = "mutation Render($input: RenderMovieInput!) \
     { renderMovie(input: $input) { id status } }";
const ASSET_UPLOAD: &str = "mutation Asset($input: RequestAssetUploadInput!) \
     { requestAssetUpload(input: $input) { assetKey uploadUrl uploadHeaders } }";

/// Submit a movie spec for rendering, and optionally wait for the MP4.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The spec, a JSON file (`-` reads standard input): a `MovieSpecInput` (`width`,
    /// `height`, `fps`, `scenes`) or a whole `RenderMovieInput` (`spec`, `priority`,
    /// `idempotencyKey`, `creatorId`). An image layer may give a local picture as
    /// `"file": "logo.png"` (relative to the spec) in place of `assetKey`; it is uploaded
    /// first. The job's id is printed on standard output.
    pub spec: PathBuf,

    #[command(flatten)]
    pub server: ServerArgs,

    /// The job's priority (overrides the spec file's).
    #[arg(long, value_parser = ["low", "normal", "high"])]
    pub priority: Option<String>,

    /// Submitting again with the same key returns the same unfinished job.
    #[arg(long)]
    pub idempotency_key: Option<String>,

    /// Bill the render to this creator (one the account is a member of).
    #[arg(long)]
    pub creator_id: Option<String>,

    /// Wait for the job, printing its progress. Exit status: 0 when it ends DONE (and the
    /// output is saved), 3 when it ends FAILED or CANCELLED, 130 on Ctrl-C (which stops
    /// following, not the job), 1 for any other failure.
    #[arg(long)]
    pub follow: bool,

    /// Download the finished MP4 to this file (implies --follow).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Follow a job's progress to its end, and optionally download its output (exit statuses:
/// `reelgraph follow --help`).
#[derive(clap::Args, Debug)]
pub struct FollowArgs {
    /// The job's id (printed by `reelgraph render`).
    pub job_id: String,

    #[command(flatten)]
    pub server: ServerArgs,

    /// Download the finished output to this file.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub async fn render_command(args: RenderArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        writable(path)?;
    }
    let (text, base_dir) = read_spec(&args.spec)?;
    let mut input = render_input(&text, &args)
        .with_context(|| format!("{} is not a movie spec", args.spec.display()))?;
    let mut api = Api::connect(&args.server).await?;
    upload_images(&api, &mut input, &base_dir).await?;
    let data = api
        .call(RENDER, json!({ "input": input }))
        .await
        .map_err(|err| refused(err, "the render"))?;
    let id = data["renderMovie"]["id"]
        .as_str()
        .context("the server's answer has no job id")?
        .to_owned();
    println!("{id}");
    if args.follow || args.output.is_some() {
        finish(&mut api, &id, args.output.as_deref()).await
    } else {
        eprintln!("queued render job {id}; watch it with: reelgraph follow {id}");
        Ok(())
    }
}

pub async fn follow_command(args: FollowArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.output {
        writable(path)?;
    }
    let mut api = Api::connect(&args.server).await?;
    finish(&mut api, args.job_id.trim(), args.output.as_deref()).await
}

fn read_spec(path: &Path) -> anyhow::Result<(String, PathBuf)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the spec from standard input")?;
        return Ok((text, PathBuf::from(".")));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((text, dir))
}

/// The `RenderMovieInput` from the file's text and the flags.
fn render_input(text: &str, args: &RenderArgs) -> anyhow::Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).context("not JSON")?;
    let Value::Object(object) = value else {
        anyhow::bail!("expected a JSON object");
    };
    let mut input = if object.contains_key("spec") {
        object
    } else {
        Map::from_iter([("spec".to_owned(), Value::Object(object))])
    };
    if let Some(priority) = &args.priority {
        input.insert("priority".into(), priority.to_uppercase().into());
    }
    if let Some(key) = &args.idempotency_key {
        input.insert("idempotencyKey".into(), key.clone().into());
    }
    if let Some(creator) = &args.creator_id {
        input.insert("creatorId".into(), creator.clone().into());
    }
    Ok(input)
}

/// Uploads the local pictures image layers name by `file`, and puts their `assetKey` in
/// place. Each file is uploaded once however many layers use it.
async fn upload_images(
    api: &Api,
    input: &mut Map<String, Value>,
    base_dir: &Path,
) -> anyhow::Result<()> {
    let mut uploaded: HashMap<PathBuf, String> = HashMap::new();
    let Some(scenes) = input
        .get_mut("spec")
        .and_then(|spec| spec.get_mut("scenes"))
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for (s, scene) in scenes.iter_mut().enumerate() {
        let Some(layers) = scene.get_mut("layers").and_then(Value::as_array_mut) else {
            continue;
        };
        for (l, layer) in layers.iter_mut().enumerate() {
            let Some(image) = layer.get_mut("image").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(file) = image.get("file") else {
                continue;
            };
            let at = format!("scenes.{s}.layers.{l}.image.file");
            let Some(file) = file.as_str() else {
                anyhow::bail!("{at}: must be a path");
            };
            let path = base_dir.join(file);
            let key = match uploaded.get(&path) {
                Some(key) => key.clone(),
                None => {
                    let key = upload_image(api, &path)
                        .await
                        .with_context(|| format!("{at}: {file}"))?;
                    uploaded.insert(path, key.clone());
                    key
                }
            };
            image.remove("file");
            image.insert("assetKey".into(), key.into());
        }
    }
    Ok(())
}

async fn upload_image(api: &Api, path: &Path) -> anyhow::Result<String> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let content_type = match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => anyhow::bail!("only .png, .jpg, .jpeg and .webp pictures can be image layers"),
    };
    // Told before the picture is read whole (a file of gigabytes named by mistake).
    let size = tokio::fs::metadata(path)
        .await
        .context("cannot read it")?
        .len();
    let limit = crate::render::graphql::MAX_ASSET_BYTES;
    anyhow::ensure!(
        size <= limit,
        "it has {size} bytes; a picture may have at most {limit} ({} MiB)",
        limit >> 20
    );
    let bytes = tokio::fs::read(path).await.context("cannot read it")?;
    let data = api
        .call(
            ASSET_UPLOAD,
            json!({ "input": { "contentType": content_type, "sizeBytes": bytes.len() } }),
        )
        .await
        .map_err(|err| refused(err, "the upload"))?;
    let upload = &data["requestAssetUpload"];
    let (Some(key), Some(url)) = (upload["assetKey"].as_str(), upload["uploadUrl"].as_str()) else {
        anyhow::bail!("the server's upload answer has no assetKey or uploadUrl");
    };
    api.put_presigned(url, &upload["uploadHeaders"], bytes)
        .await
        .context("uploading it")?;
    Ok(key.to_owned())
}

/// `err` of a call for `what`, said to be the server's refusal when the server answered it
/// (not when it could not be reached).
fn refused(err: anyhow::Error, what: &str) -> anyhow::Error {
    if err.is::<super::ApiErrors>() {
        err.context(format!("the server refused {what}"))
    } else {
        err
    }
}

/// Follows the job to its end; on `DONE` downloads the output when asked. Ctrl-C stops
/// following (a download under way leaves no file), not the job.
async fn finish(api: &mut Api, id: &str, output: Option<&Path>) -> anyhow::Result<()> {
    tokio::select! {
        finished = follow_and_save(api, id, output) => finished,
        _ = tokio::signal::ctrl_c() => Err(super::Stopped::Interrupted(format!(
            "interrupted: job {id} goes on on the server; follow it again with \
             `reelgraph follow {id}`, or stop it with the cancelJob mutation"
        ))
        .into()),
    }
}

async fn follow_and_save(api: &mut Api, id: &str, output: Option<&Path>) -> anyhow::Result<()> {
    let mut printer = Printer::default();
    let last = follow(api, id, |update| printer.print(update)).await?;
    match last.status.as_str() {
        "DONE" => {}
        "CANCELLED" => {
            return Err(super::Stopped::JobNotDone(format!("job {id} was cancelled")).into());
        }
        status => {
            return Err(super::Stopped::JobNotDone(format!(
                "job {id} ended {status}: {}",
                last.error.as_deref().unwrap_or("no reason given")
            ))
            .into());
        }
    }
    let Some(url) = last.output_url.as_deref() else {
        if output.is_some() {
            anyhow::bail!("job {id} ({}) has no output to download", last.job_type);
        }
        return Ok(());
    };
    match output {
        Some(path) => {
            let bytes = download(api, url, path)
                .await
                .with_context(|| format!("downloading the output to {}", path.display()))?;
            eprintln!("saved {} ({bytes} bytes)", path.display());
        }
        None => eprintln!("output (the link works for 10 minutes): {url}"),
    }
    Ok(())
}

/// Fails unless the output can be written at `path` (a file in a folder this user may write
/// in), so that a typo in `-o` is told before a render is queued, not after it finished.
fn writable(path: &Path) -> anyhow::Result<()> {
    let cannot = || format!("cannot write the output to {}", path.display());
    anyhow::ensure!(!path.is_dir(), "{}: it is a folder", cannot());
    tempfile::NamedTempFile::new_in(folder_of(path)).with_context(cannot)?;
    Ok(())
}

/// The folder a file at `path` goes in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Streams `url` into `path` through a temporary file beside it, so a failed download
/// leaves no partial file behind.
async fn download(api: &Api, url: &str, path: &Path) -> anyhow::Result<u64> {
    let mut response = api.http().get(url).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "the storage answered HTTP {}",
        response.status()
    );
    // Created as any new file is (0666 less the umask), not 0600 as temporary files are: it
    // becomes the user's MP4.
    let mut file = new_output_file(folder_of(path))?;
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await? {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(written)
}

/// A temporary file in `folder` with the permissions of an ordinary new file.
fn new_output_file(folder: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(folder)
}

/// Prints a progress line when the status, the phase or the whole percentage changes.
#[derive(Default)]
struct Printer {
    last: Option<(String, Option<String>, u32)>,
}

impl Printer {
    fn print(&mut self, update: &JobUpdate) {
        let percent = (update.progress.clamp(0.0, 1.0) * 100.0).floor() as u32;
        let line = (update.status.clone(), update.current_phase.clone(), percent);
        if self.last.as_ref() == Some(&line) {
            return;
        }
        let phase = update.current_phase.as_deref().unwrap_or("");
        eprintln!("{percent:>3}%  {:<9}  {phase}", update.status);
        self.last = Some(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_downloaded_file_has_an_ordinary_files_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let file = new_output_file(dir.path()).expect("file");
        let mode =
            |file: &std::fs::File| file.metadata().expect("metadata").permissions().mode() & 0o777;
        // As a file created the ordinary way, whatever the umask (0666 less it).
        let ordinary = std::fs::File::create(dir.path().join("ordinary")).expect("file");
        assert_eq!(mode(file.as_file()), mode(&ordinary));
    }

    #[test]
    fn credentials_in_a_server_url_are_not_shown() {
        assert_eq!(
            crate::client::without_credentials("http://admin:s3cret@127.0.0.1:8080/graphql"),
            "http://127.0.0.1:8080/graphql"
        );
        assert_eq!(
            crate::client::without_credentials("http://127.0.0.1:8080/graphql"),
            "http://127.0.0.1:8080/graphql"
        );
    }

    fn args(priority: Option<&str>) -> RenderArgs {
        RenderArgs {
            spec: PathBuf::from("spec.json"),
            server: ServerArgs {
                server: "http://127.0.0.1:8080".into(),
                token: None,
                email: None,
                password: None,
            },
            priority: priority.map(str::to_owned),
            idempotency_key: None,
            creator_id: Some("c1".into()),
            follow: false,
            output: None,
        }
    }

    #[test]
    fn a_bare_spec_becomes_the_inputs_spec() {
        let input =
            render_input(r#"{"width": 640, "scenes": []}"#, &args(Some("high"))).expect("input");
        assert_eq!(
            Value::Object(input),
            json!({ "spec": { "width": 640, "scenes": [] }, "priority": "HIGH", "creatorId": "c1" })
        );
    }

    #[test]
    fn a_whole_input_keeps_its_fields_and_flags_win() {
        let text = r#"{"spec": {"fps": 30}, "priority": "LOW", "idempotencyKey": "k"}"#;
        let input = render_input(text, &args(None)).expect("input");
        assert_eq!(
            Value::Object(input),
            json!({ "spec": { "fps": 30 }, "priority": "LOW", "idempotencyKey": "k", "creatorId": "c1" })
        );
    }

    #[test]
    fn not_an_object_is_refused() {
        assert!(render_input("[1]", &args(None)).is_err());
        let err = render_input("{ nope", &args(None)).expect_err("not JSON");
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }
}

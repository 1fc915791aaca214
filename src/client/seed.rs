//! `reelgraph seed`: demo content, made through a running server's API.
//!
//! Every step is a request a creator's client would make: sign up, create creators, upload
//! source videos (real MP4s made here with ffmpeg) and let the server probe them, then
//! transcripts, key moments, highlight detection, an approval, and a captioned vertical short
//! per creator that the server renders. So the command fills a fresh server with something to
//! explore in GraphiQL, and doubles as an end-to-end check of a deployment.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Api, ApiErrors, ServerArgs, follow::follow};
use crate::render::ffmpeg;

/// The account made when no credentials are given.
pub const DEMO_EMAIL: &str = "demo@reelgraph.local";
/// Seconds of each generated source video.
const VIDEO_SECS: u32 = 15;

/// Fill a running server with demo creators, videos, highlights and shorts, through its API.
#[derive(clap::Args, Debug)]
pub struct SeedArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Leave out the shorts (their renders are the slowest part).
    #[arg(long)]
    pub no_shorts: bool,
}

struct DemoCreator {
    name: &'static str,
    slug: &'static str,
    bio: &'static str,
    genres: &'static [&'static str],
    videos: &'static [DemoVideo],
}

struct DemoVideo {
    title: &'static str,
    /// Five lines of three seconds each.
    lines: [&'static str; 5],
    /// Title, start, end, content type, tags.
    moments: [(
        &'static str,
        f64,
        f64,
        &'static str,
        &'static [&'static str],
    ); 3],
    tone_hz: u32,
}

const CREATORS: &[DemoCreator] = &[
    DemoCreator {
        name: "Northern Kitchen",
        slug: "demo-northern-kitchen",
        bio: "Weeknight cooking in one take, no cuts.",
        genres: &["food", "how-to"],
        videos: &[
            DemoVideo {
                title: "Knife skills in fifteen seconds",
                lines: [
                    "Curl your fingers into a claw.",
                    "The knuckles guide the flat of the blade.",
                    "Rock the knife, tip on the board.",
                    "Let the weight of the blade do the work.",
                    "Sweep with the spine, never the edge.",
                ],
                moments: [
                    ("The claw grip", 0.5, 6.0, "TECHNIQUE", &["knife", "safety"]),
                    ("Rocking the blade", 6.0, 12.0, "TECHNIQUE", &["knife"]),
                    ("Clearing the board", 11.0, 14.5, "WORKFLOW", &["cleanup"]),
                ],
                tone_hz: 330,
            },
            DemoVideo {
                title: "One-pan lemon pasta",
                lines: [
                    "Pasta, water and lemon zest in a cold pan.",
                    "Bring it to a boil and stir.",
                    "The starch turns the water into sauce.",
                    "Butter and parmesan off the heat.",
                    "Finish with the lemon juice.",
                ],
                moments: [
                    ("Everything in one pan", 0.5, 6.0, "WORKFLOW", &["pasta"]),
                    ("Why starch makes sauce", 6.0, 10.0, "CONCEPT", &["science"]),
                    ("Finishing touches", 9.0, 14.5, "TECHNIQUE", &["sauce"]),
                ],
                tone_hz: 392,
            },
        ],
    },
    DemoCreator {
        name: "Orbit Lab",
        slug: "demo-orbit-lab",
        bio: "Space science on a whiteboard.",
        genres: &["science", "education"],
        videos: &[
            DemoVideo {
                title: "Why the Moon shows us one face",
                lines: [
                    "The Moon spins once per orbit.",
                    "That is called tidal locking.",
                    "Earth's pull stretched the young Moon.",
                    "Friction slowed its spin to match.",
                    "Most large moons are locked the same way.",
                ],
                moments: [
                    ("Tidal locking", 0.5, 6.0, "CONCEPT", &["moon", "gravity"]),
                    ("How the spin slowed", 6.0, 12.0, "CONCEPT", &["tides"]),
                    ("Other locked moons", 11.0, 14.5, "REFERENCE", &["moons"]),
                ],
                tone_hz: 440,
            },
            DemoVideo {
                title: "Three ways to weigh a planet",
                lines: [
                    "Watch a moon go around it.",
                    "Time a spacecraft flying past.",
                    "Measure how it tugs its star.",
                    "Kepler's third law does the rest.",
                    "Mass from motion, every time.",
                ],
                moments: [
                    ("Moons as scales", 0.5, 5.5, "TECHNIQUE", &["orbits"]),
                    ("Spacecraft flybys", 5.0, 10.0, "TECHNIQUE", &["spacecraft"]),
                    ("Kepler's third law", 9.0, 14.5, "CONCEPT", &["kepler"]),
                ],
                tone_hz: 494,
            },
        ],
    },
];

/// A token or password that does not work is said so before anything is made.
async fn check_account(api: &Api) -> anyhow::Result<()> {
    let me = api
        .call("{ me { id } }", json!({}))
        .await
        .context("checking the account to seed as")?;
    anyhow::ensure!(
        !me["me"].is_null(),
        "checking the account to seed as: the server does not know this token"
    );
    Ok(())
}

pub async fn seed_command(args: SeedArgs) -> anyhow::Result<()> {
    let tools = ffmpeg::check().await.map_err(|e| anyhow::anyhow!(e))?;
    let mut api = Api::anonymous(&args.server.server)?;
    // Credentials given are checked first, whatever there is to do: a wrong token or password
    // answered "nothing to do" and exit 0 when the demo content was there.
    let signed_in = api.sign_in(&args.server).await?;
    if signed_in {
        check_account(&api).await?;
    }
    // A creator is there when each of its videos is, whole (see `complete`); one a stopped
    // run left unfinished is finished now.
    let mut todo = Vec::new();
    let shorts = !args.no_shorts;
    for creator in CREATORS {
        let found = api
            .call(
                &format!("query($slug: String) {{ creator(slug: $slug) {{ id {VIDEOS} }} }}"),
                json!({ "slug": creator.slug }),
            )
            .await;
        match found {
            Ok(data) if !data["creator"].is_null() => {
                if unfinished(&data["creator"], creator, shorts).is_empty() {
                    eprintln!("{} ({}) is already there", creator.name, creator.slug);
                } else {
                    todo.push((creator, Some(id_at(&data["creator"])?)));
                }
            }
            Err(err) if !has_code(&err, "NOT_FOUND") => {
                return Err(err.context("asking the server what is there"));
            }
            _ => todo.push((creator, None)),
        }
    }
    if todo.is_empty() {
        eprintln!(
            "nothing to do: the demo content is already on {}",
            api.base()
        );
        return Ok(());
    }
    if !signed_in {
        let password = crate::auth::password::generate_password();
        match api.register(DEMO_EMAIL, &password, "Demo creator").await {
            // Told at once: seeding may stop before the end, and the account stays.
            Ok(()) => {
                println!("account:  {DEMO_EMAIL}");
                println!("password: {password}");
            }
            Err(err) if has_code(&err, "CONFLICT") => anyhow::bail!(
                "{DEMO_EMAIL} already has an account: pass --email {DEMO_EMAIL} and its \
                 --password (or another account's) to seed as it"
            ),
            Err(err) => return Err(err.context(format!("registering {DEMO_EMAIL}"))),
        }
    }
    check_account(&api).await?;
    let dir = tempfile::tempdir().context("a temporary folder for the source videos")?;
    for (creator, existing) in todo {
        seed_creator(
            &mut api,
            &tools,
            dir.path(),
            creator,
            existing,
            !args.no_shorts,
        )
        .await
        .with_context(|| {
            format!(
                "seeding {} stopped; what was made so far stays, and running `seed` again \
                 (as the same account) finishes it",
                creator.name
            )
        })?;
    }
    println!("GraphiQL: {}/graphiql", api.base());
    println!(
        "try:      {{ creators {{ nodes {{ name videos {{ nodes {{ title durationSecs \
         highlights {{ score status shorts {{ preset url }} }} }} }} }} }} }}"
    );
    Ok(())
}

fn has_code(err: &anyhow::Error, code: &str) -> bool {
    err.downcast_ref::<ApiErrors>()
        .is_some_and(|errors| errors.0.iter().any(|e| e.code.as_deref() == Some(code)))
}

/// What the seeding reads of a creator's videos, to tell which are whole.
const VIDEOS: &str = "videos(first: 50) { nodes { id title status transcript { text } \
                      highlights { status shorts { status } } } }";

/// Whether a video (as [`VIDEOS`] reads it) is all the seeding makes of it: probed, with its
/// transcript and an approved highlight, and that highlight's short when one is made.
fn complete(video: &Value, with_short: bool) -> bool {
    let approved: Vec<&Value> = video["highlights"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["status"] == "APPROVED")
        .collect();
    video["status"] == "READY"
        && video["transcript"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
        && !approved.is_empty()
        && (!with_short
            || approved.iter().any(|h| {
                h["shorts"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["status"] == "COMPLETE"))
            }))
}

/// The indexes of `demo`'s videos that `creator` (as [`VIDEOS`] reads it) lacks whole.
fn unfinished(creator: &Value, demo: &DemoCreator, shorts: bool) -> Vec<usize> {
    let nodes = creator["videos"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    (0..demo.videos.len())
        .filter(|&i| {
            !nodes
                .iter()
                .any(|v| v["title"] == demo.videos[i].title && complete(v, shorts && i == 0))
        })
        .collect()
}

async fn seed_creator(
    api: &mut Api,
    tools: &ffmpeg::Tools,
    dir: &Path,
    creator: &DemoCreator,
    existing: Option<String>,
    shorts: bool,
) -> anyhow::Result<()> {
    let (creator_id, todo) = match existing {
        // Left unfinished by an earlier run: its whole videos stay; a video it left partly
        // made (uploading, probing, failed, or without its transcript, highlight or short)
        // is deleted and made again.
        Some(id) => {
            let data = api
                .call(
                    &format!(
                        "query($id: ID!) {{ creator(id: $id) {{ viewerCanManage {VIDEOS} }} }}"
                    ),
                    json!({ "id": id }),
                )
                .await
                .context("reading what an earlier run made")?;
            anyhow::ensure!(
                data["creator"]["viewerCanManage"] == true,
                "{} ({}) is there but this account is not on its team: seed as the account \
                 that made it (--email, --password)",
                creator.name,
                creator.slug
            );
            let todo = unfinished(&data["creator"], creator, shorts);
            let nodes = data["creator"]["videos"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for &i in &todo {
                let partial = nodes
                    .iter()
                    .filter(|v| v["title"] == creator.videos[i].title);
                for video in partial {
                    api.call(
                        "mutation($id: ID!) { deleteVideo(id: $id) }",
                        json!({ "id": video["id"] }),
                    )
                    .await
                    .context("deleting a video an earlier run left unfinished")?;
                }
            }
            eprintln!("creator {} ({}): finishing it", creator.name, creator.slug);
            (id, todo)
        }
        None => {
            let data = api
                .call(
                    "mutation($input: CreateCreatorInput!) { createCreator(input: $input) { id } }",
                    json!({ "input": {
                        "name": creator.name, "slug": creator.slug, "bio": creator.bio,
                        "genres": creator.genres,
                    } }),
                )
                .await
                .context("createCreator")?;
            eprintln!("creator {} ({})", creator.name, creator.slug);
            (
                id_at(&data["createCreator"])?,
                (0..creator.videos.len()).collect(),
            )
        }
    };
    for (i, video) in creator.videos.iter().enumerate() {
        if !todo.contains(&i) {
            continue;
        }
        let short = shorts && i == 0;
        seed_video(api, tools, dir, &creator_id, video, short)
            .await
            .with_context(|| format!("video {:?}", video.title))?;
    }
    Ok(())
}

async fn seed_video(
    api: &mut Api,
    tools: &ffmpeg::Tools,
    dir: &Path,
    creator_id: &str,
    video: &DemoVideo,
    short: bool,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{}.mp4", video.tone_hz));
    make_source_video(tools, &path, video.tone_hz).await?;
    let bytes = tokio::fs::read(&path).await?;
    let data = api
        .call(
            "mutation($input: RequestVideoUploadInput!) { requestVideoUpload(input: $input) \
             { video { id } uploadUrl uploadHeaders deduplicated } }",
            json!({ "input": {
                "creatorId": creator_id, "filename": "source.mp4", "contentType": "video/mp4",
                "sizeBytes": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes)),
                "title": video.title,
            } }),
        )
        .await
        .context("requestVideoUpload")?;
    let upload = &data["requestVideoUpload"];
    let video_id = id_at(&upload["video"])?;
    let url = upload["uploadUrl"]
        .as_str()
        .context("requestVideoUpload gave no uploadUrl")?;
    api.put_presigned(url, &upload["uploadHeaders"], bytes)
        .await
        .context("uploading the source video")?;
    let data = api
        .call(
            "mutation($v: ID!) { completeVideoUpload(videoId: $v) { id } }",
            json!({ "v": video_id }),
        )
        .await
        .context("completeVideoUpload")?;
    let probe = id_at(&data["completeVideoUpload"])?;
    finished(api, &probe, "probing the video").await?;

    let segments: Vec<Value> = video
        .lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let start = 3.0 * i as f64;
            json!({ "startTime": start, "endTime": start + 2.8, "text": text, "speaker": "host" })
        })
        .collect();
    api.call(
        "mutation($v: ID!, $s: [TranscriptSegmentInput!]!) { setTranscript(videoId: $v, segments: $s) { id } }",
        json!({ "v": video_id, "s": segments }),
    )
    .await
    .context("setTranscript")?;
    let moments: Vec<Value> = video
        .moments
        .iter()
        .map(|(title, start, end, kind, tags)| {
            json!({ "title": title, "startTime": start, "endTime": end, "contentType": kind,
                    "topicTags": tags, "summary": format!("{title}, from \"{}\"", video.title) })
        })
        .collect();
    api.call(
        "mutation($v: ID!, $m: [KeyMomentInput!]!) { addKeyMoments(videoId: $v, moments: $m) { id } }",
        json!({ "v": video_id, "m": moments }),
    )
    .await
    .context("addKeyMoments")?;
    let data = api
        .call(
            "mutation($v: ID!) { detectHighlights(videoId: $v) { id score } }",
            json!({ "v": video_id }),
        )
        .await
        .context("detectHighlights")?;
    let best = data["detectHighlights"]
        .as_array()
        .and_then(|all| {
            all.iter().max_by(|a, b| {
                a["score"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["score"].as_f64().unwrap_or(0.0))
            })
        })
        .context("detectHighlights found no highlight")?;
    let best_id = id_at(best)?;
    api.call(
        "mutation($id: ID!) { approveHighlight(id: $id) { id } }",
        json!({ "id": best_id }),
    )
    .await
    .context("approveHighlight")?;
    eprintln!(
        "  video {:?}: uploaded, probed, {} transcript lines, {} key moments, best highlight \
         ({:.2}) approved",
        video.title,
        video.lines.len(),
        video.moments.len(),
        best["score"].as_f64().unwrap_or_default()
    );
    if short {
        let data = api
            .call(
                "mutation($h: ID!) { generateShort(input: { highlightId: $h, preset: VERTICAL, \
                 captions: true }) { id job { id } } }",
                json!({ "h": best_id }),
            )
            .await
            .context("generateShort")?;
        let job = id_at(&data["generateShort"]["job"])?;
        finished(api, &job, "rendering the short").await?;
        eprintln!("  short VERTICAL with captions: rendered");
    }
    Ok(())
}

/// Follows a job quietly; an error unless it ends `DONE`.
async fn finished(api: &mut Api, job: &str, what: &str) -> anyhow::Result<()> {
    let last = follow(api, job, |_| {}).await.context(what.to_owned())?;
    anyhow::ensure!(
        last.status == "DONE",
        "{what}: job {job} ended {}: {}",
        last.status,
        last.error.as_deref().unwrap_or("no reason given")
    );
    Ok(())
}

fn id_at(object: &Value) -> anyhow::Result<String> {
    object["id"]
        .as_str()
        .map(str::to_owned)
        .context("the server's answer has no id")
}

/// A test pattern with a tone: 640×360, 30 fps, H.264 and AAC.
async fn make_source_video(tools: &ffmpeg::Tools, path: &Path, tone_hz: u32) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(&tools.ffmpeg)
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
        ])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={tone_hz}:sample_rate=48000"))
        .args(["-t", &VIDEO_SECS.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-shortest", "-movflags", "+faststart"])
        .arg(path)
        .output()
        .await
        .context("running ffmpeg")?;
    anyhow::ensure!(
        output.status.success(),
        "ffmpeg could not make the source video: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

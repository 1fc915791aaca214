//! Render benchmark: a 10-scene 720p30 movie through Reelgraph (GraphQL → jobs → ffmpeg →
//! storage) against the same ffmpeg commands run directly with the same parallelism, then the
//! same movie with one scene changed (the scene cache at work).
//!
//!     cargo run --release --example render_bench -- [--runs 3] [--scenes 10] [--scene-secs 3]
//!
//! Runs alternate between the two contenders; the medians are printed as a Markdown table.

use std::{path::Path, sync::Arc, time::Duration};

use reelgraph::{
    Application,
    config::{Config, ServeArgs},
    render::{ffmpeg, scene, spec},
};
use serde_json::{Value, json};
use tokio::{sync::Semaphore, time::Instant};

struct Options {
    runs: usize,
    scenes: usize,
    scene_secs: f64,
}

fn options() -> Options {
    let mut options = Options {
        runs: 3,
        scenes: 10,
        scene_secs: 3.0,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match pair[0].as_str() {
            "--runs" => options.runs = pair[1].parse().unwrap_or(options.runs),
            "--scenes" => options.scenes = pair[1].parse().unwrap_or(options.scenes),
            "--scene-secs" => options.scene_secs = pair[1].parse().unwrap_or(options.scene_secs),
            _ => {}
        }
    }
    options
}

fn movie(options: &Options, salt: &str, changed_last: &str) -> Value {
    let scenes: Vec<Value> = (0..options.scenes)
        .map(|i| {
            let text = if i + 1 == options.scenes { format!("{changed_last} {salt}") } else { format!("Scene {i} {salt}") };
            json!({
                "id": format!("s{i}"),
                "duration": options.scene_secs,
                "bgColor": format!("#{:02x}{:02x}{:02x}", 20 + i * 20, 40, 90),
                "layers": [
                    { "text": { "text": text, "fontSize": 72, "color": "#FFFFFF" } },
                    { "text": { "text": "reelgraph render benchmark", "x": 40, "y": 640, "fontSize": 32, "start": 0.5 } }
                ]
            })
        })
        .collect();
    json!({ "width": 1280, "height": 720, "fps": 30, "scenes": scenes })
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client
        .post(format!("{base}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// Renders through the API and waits for DONE; returns the wall time.
async fn through_reelgraph(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    spec: Value,
) -> Duration {
    let started = Instant::now();
    let data = gql(
        client,
        base,
        Some(token),
        "mutation($s: MovieSpecInput!) { renderMovie(input: {spec: $s}) { id } }",
        json!({ "s": spec }),
    )
    .await;
    let id = data["renderMovie"]["id"].as_str().expect("id").to_owned();
    loop {
        let data = gql(
            client,
            base,
            Some(token),
            "query($id: ID!) { job(id: $id) { status error } }",
            json!({ "id": id }),
        )
        .await;
        match data["job"]["status"].as_str() {
            Some("DONE") => return started.elapsed(),
            Some("FAILED" | "CANCELLED") => panic!("render failed: {data}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The same scene and concat commands, run directly with `parallel` scenes at a time.
async fn direct(
    tools: &ffmpeg::Tools,
    movie: &spec::MovieSpec,
    parallel: usize,
    dir: &Path,
) -> Duration {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for (i, scene_spec) in movie.scenes.iter().enumerate() {
        let mut texts = Vec::new();
        for (l, layer) in scene_spec.layers.iter().enumerate() {
            if let spec::Layer::Text { text, .. } = layer {
                let path = dir.join(format!("s{i}_t{l}.txt"));
                std::fs::write(&path, text).expect("text");
                texts.push(Some(path));
            } else {
                texts.push(None);
            }
        }
        let inputs = scene::SceneInputs {
            // The benchmark's texts are ASCII: the default font draws them, as it does here.
            fonts: Vec::new(),
            texts,
            images: vec![None; scene_spec.layers.len()],
            orientations: Vec::new(),
        };
        let output = dir.join(format!("scene_{i}.mp4"));
        let args = scene::scene_args(
            scene_spec,
            movie.width,
            movie.height,
            movie.fps,
            &inputs,
            &output,
        );
        let (tools, slots, secs) = (tools.clone(), slots.clone(), scene_spec.duration);
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("slot");
            ffmpeg::run(&tools, &args, secs, |_| {})
                .await
                .expect("scene renders");
            output
        }));
    }
    let mut files = Vec::new();
    for task in tasks {
        files.push(task.await.expect("task"));
    }
    let list = dir.join("list.txt");
    let frames: Vec<u64> = movie
        .scenes
        .iter()
        .map(|s| spec::frames(s.duration, movie.fps))
        .collect();
    std::fs::write(&list, scene::concat_list(&files, &frames, movie.fps)).expect("list");
    ffmpeg::run(
        tools,
        &scene::concat_args(&list, &dir.join("movie.mp4")),
        movie.total_secs(),
        |_| {},
    )
    .await
    .expect("concat");
    started.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let options = options();
    let tools = ffmpeg::check().await.expect("ffmpeg is required");
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let data = tempfile::tempdir().expect("dir");
    let mut config = Config::embedded(data.path());
    config.workers = Some(parallel);
    config.job_poll_ms = 200;
    let app = Application::build(ServeArgs {
        listen: "127.0.0.1:0".parse().expect("addr"),
        no_worker: false,
        config,
    })
    .await
    .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(async move { app.run_until(std::future::pending()).await.ok() });
    let client = reqwest::Client::new();
    let auth = gql(&client, &base, None, "mutation { register(input: {email: \"bench@example.com\", password: \"benchmark password\"}) { accessToken user { id } } }", json!({})).await;
    let token = auth["register"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let user = auth["register"]["user"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    reelgraph::billing::set_user_plan(
        &state.db,
        user,
        entity::PlanCode::Enterprise,
        chrono::Utc::now(),
    )
    .await
    .map_err(|e| e.public_message())
    .expect("unlimited plan");

    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut rerenders = Vec::new();
    for run in 0..options.runs {
        // A fresh salt per run, so no run reuses another's cached scenes.
        let salt = format!("run {run} {}", uuid::Uuid::now_v7().simple());
        let spec_json = movie(&options, &salt, "The end");
        let value = async_graphql::Value::from_json(spec_json.clone()).expect("value");
        let input = <spec::MovieSpecInput as async_graphql::InputType>::parse(Some(value))
            .map_err(|e| e.into_server_error(Default::default()).message)
            .expect("input");
        let canonical = spec::validate("spec", &input)
            .map_err(|e| e.public_message())
            .expect("valid");
        let dir = tempfile::tempdir().expect("dir");
        theirs.push(direct(&tools, &canonical, parallel, dir.path()).await);
        ours.push(through_reelgraph(&client, &base, &token, spec_json).await);
        rerenders.push(
            through_reelgraph(
                &client,
                &base,
                &token,
                movie(&options, &salt, "A different end"),
            )
            .await,
        );
        eprintln!(
            "run {}: direct {:?}, reelgraph {:?}, one scene changed {:?}",
            run + 1,
            theirs[run],
            ours[run],
            rerenders[run]
        );
    }
    let (ours, theirs, rerender) = (median(ours), median(theirs), median(rerenders));
    let overhead = (ours.as_secs_f64() / theirs.as_secs_f64() - 1.0) * 100.0;
    println!("| movie | contender | median wall time | vs direct ffmpeg |");
    println!("|---|---|---|---|");
    let movie = format!(
        "{} scenes × {}s, 1280×720@30",
        options.scenes, options.scene_secs
    );
    println!(
        "| {movie} | ffmpeg run directly ({parallel} at a time) | {:.2} s | — |",
        theirs.as_secs_f64()
    );
    println!(
        "| {movie} | Reelgraph renderMovie → DONE ({parallel} workers) | {:.2} s | {overhead:+.1}% |",
        ours.as_secs_f64()
    );
    println!(
        "| {movie}, last scene changed | Reelgraph (9 scenes from cache) | {:.2} s | {:.0}% of the first render |",
        rerender.as_secs_f64(),
        rerender.as_secs_f64() / ours.as_secs_f64() * 100.0
    );
}

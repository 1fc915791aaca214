//! What putting an answer back in the query's key order (`graphql::order::restore`) costs per
//! request, on the answer of the read benchmark's Q3 (50 highlights, each with its video, the
//! video's creator and its key moment) and Q2 (20 creators × 10 videos).
//!
//!     cargo run --release --example order_bench -- [--iterations 20000]
//!
//! Each answer is ordered twice over: as async-graphql writes it when every field completes in
//! order (nothing to move), and with every object's keys reversed (everything to move). Prints
//! the mean time per answer in microseconds; compare it with the server CPU per request that
//! BENCHMARKS.md reports for the same query.

use std::time::Instant;

use async_graphql::{Response, Value, Variables, parser::parse_query};
use serde_json::{Value as Json, json};

const Q2: &str =
    "{ creators(first: 20) { nodes { id name videos(first: 10) { nodes { id title } } } } }";
const Q3: &str = "{ highlights(first: 50) { nodes { id score video { id title creator { id name } } \
                  keyMoment { id title } } } }";

fn q2_answer() -> Json {
    let creators: Vec<Json> = (0..20)
        .map(|c| {
            let videos: Vec<Json> = (0..10)
                .map(|v| json!({ "id": format!("video-{c}-{v}"), "title": format!("Video {v}") }))
                .collect();
            json!({ "id": format!("creator-{c}"), "name": format!("Creator {c}"),
                    "videos": { "nodes": videos } })
        })
        .collect();
    json!({ "creators": { "nodes": creators } })
}

fn q3_answer() -> Json {
    let highlights: Vec<Json> = (0..50)
        .map(|h| {
            json!({
                "id": format!("highlight-{h}"),
                "score": 0.9 - h as f64 / 100.0,
                "video": { "id": format!("video-{h}"), "title": format!("Video {h}"),
                           "creator": { "id": format!("creator-{h}"), "name": "Creator" } },
                "keyMoment": { "id": format!("moment-{h}"), "title": "A moment" },
            })
        })
        .collect();
    json!({ "highlights": { "nodes": highlights } })
}

/// `value` with every object's keys in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        Value::List(items) => Value::List(items.iter().map(reversed).collect()),
        other => other.clone(),
    }
}

fn main() {
    let mut iterations = 20_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--iterations N")
            }
            other => panic!("unknown option {other}"),
        }
    }
    let variables = Variables::default();
    println!("| answer | objects | in order: µs per answer | keys reversed: µs per answer |");
    println!("|---|---|---|---|");
    for (name, query, answer) in [("Q2", Q2, q2_answer()), ("Q3", Q3, q3_answer())] {
        let document = parse_query(query).expect("parses");
        // serde_json sorts keys by name: ordered once, it is as async-graphql writes it when
        // every field completes in turn.
        let mut ordered = Response::new(Value::from_json(answer).expect("a value"));
        reelgraph::graphql::order::restore(&mut ordered, &document, None, &variables);
        let data = ordered.data;
        let objects = count_objects(&data);
        let mut times = Vec::new();
        for data in [data.clone(), reversed(&data)] {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let mut response = Response::new(data.clone());
                let start = Instant::now();
                reelgraph::graphql::order::restore(&mut response, &document, None, &variables);
                total += start.elapsed();
                std::hint::black_box(&response);
            }
            times.push(total.as_secs_f64() * 1e6 / iterations as f64);
        }
        println!("| {name} | {objects} | {:.1} | {:.1} |", times[0], times[1]);
    }
}

fn count_objects(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(count_objects).sum::<usize>(),
        Value::List(items) => items.iter().map(count_objects).sum(),
        _ => 0,
    }
}

//! LIST from the watch cache in the representations kubectl and controllers ask for (Table,
//! YAML, PartialObjectMetadataList, and plain JSON as the control), through HTTP, for two server
//! binaries side by side in one run: `--before` (e.g. main's build) and this build (or
//! `APISERVER_BINARY`), both with the watch cache on, on sled.
//!
//! ```text
//! cargo build --release -p apistore-apiserver --bins --examples
//! cargo run --release -p apistore-apiserver --example list_forms_bench -- \
//!     --before /path/to/other/target/release/apiserver [--objects 10000] [--rounds 9] [--dir .]
//! ```
//!
//! Each server gets its own data directory and `--objects` 1 KiB ConfigMaps in one namespace
//! (loaded through HTTP, 32 connections per server). Then `--rounds` interleaved rounds (the
//! order of the servers alternating each round; the representations in turn within a round):
//! a full LIST with `resourceVersion=0` (served from the cache), timed to the last body byte and
//! read chunk by chunk without keeping it. The first round's bodies are checked: a 200, the same
//! size on both sides within 1 % (the objects differ only in uid and timestamps), and every item
//! there (the JSON list's count). It prints a markdown table of medians (workload | before |
//! after | before ÷ after) and each side's first LIST of each representation (the one that
//! computes what later LISTs reuse).

#[allow(dead_code)] // the shared helpers this benchmark does not use
mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{median, spawn_binary, wait_ready, Spawned};

/// Connections that load objects into each server.
const LOADERS: usize = 32;
/// The size of each create's request body.
const BODY_BYTES: usize = 1024;
/// The namespace the objects live in.
const NAMESPACE: &str = "default";

const FORMS: &[(&str, &str)] = &[
    ("Table", "application/json;as=Table;v=v1;g=meta.k8s.io"),
    ("YAML", "application/yaml"),
    ("PartialObjectMetadataList", "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"),
    ("JSON (control: unchanged)", "application/json"),
];

struct Options {
    before: PathBuf,
    objects: usize,
    rounds: usize,
    dir: PathBuf,
}

fn parse() -> Result<Options, String> {
    let mut before = None;
    let mut options = Options { before: PathBuf::new(), objects: 10_000, rounds: 9, dir: PathBuf::from(".") };
    let mut args = std::env::args().skip(1);
    let number = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}"));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--before" => before = Some(PathBuf::from(value()?)),
            "--objects" => options.objects = number(&value()?)?,
            "--rounds" => options.rounds = number(&value()?)?.max(1),
            "--dir" => options.dir = PathBuf::from(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    options.before = before.ok_or("--before BINARY is required (the server build to compare with)")?;
    Ok(options)
}

struct Side {
    name: &'static str,
    url: String,
    _spawned: Spawned,
}

fn start(name: &'static str, binary: &std::path::Path, root: &std::path::Path) -> Result<Side, String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let data = dir.path().join("data").display().to_string();
    let (port, spawned) = spawn_binary(binary, &["--data-dir".to_owned(), data], dir)?;
    Ok(Side { name, url: format!("http://127.0.0.1:{port}"), _spawned: spawned })
}

/// A ConfigMap create body of about [`BODY_BYTES`] bytes.
fn body_of(i: usize) -> Vec<u8> {
    let doc = |fill: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i:06}"), "labels": {"group": (i % 10).to_string()}},
            "data": {"value": "x".repeat(fill)}})
    };
    let overhead = serde_json::to_vec(&doc(0)).unwrap_or_default().len();
    serde_json::to_vec(&doc(BODY_BYTES.saturating_sub(overhead))).unwrap_or_default()
}

/// Creates `objects` ConfigMaps on `side`.
async fn load(client: &reqwest::Client, side: &Side, objects: usize) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}/api/v1/namespaces/{NAMESPACE}/configmaps", side.url);
    let mut tasks = Vec::new();
    for _ in 0..LOADERS {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= objects {
                    return Ok::<_, String>(());
                }
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body_of(i))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if !response.status().is_success() {
                    return Err(format!("create {i}: {}", response.status()));
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// A LIST's time to its last body byte and the body's size (read chunk by chunk, not kept).
async fn timed_list(client: &reqwest::Client, url: &str, accept: &str) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut response = client.get(url).header("accept", accept).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let mut size = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        size += chunk.len();
    }
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(format!("GET {url} ({accept}) answered {status}"));
    }
    Ok((elapsed, size))
}

async fn run(options: Options) -> Result<(), String> {
    let after = common::default_binary()?;
    let root = tempfile::Builder::new()
        .prefix("apistore-list-forms-bench-")
        .tempdir_in(&options.dir)
        .map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let client = reqwest::Client::new();
    let sides = [start("before", &options.before, root.path())?, start("after", &after, root.path())?];
    println!(
        "list forms bench: {} 1 KiB ConfigMaps, {} rounds; before = {}, after = {}",
        options.objects,
        options.rounds,
        options.before.display(),
        after.display()
    );
    for side in &sides {
        wait_ready(&client, &side.url).await?;
    }
    for side in &sides {
        let started = Instant::now();
        load(&client, side, options.objects).await?;
        println!("loaded {} objects into {} in {:.1} s", options.objects, side.name, started.elapsed().as_secs_f64());
    }
    // Each cache has every object (RV=0 lists come from the cache).
    for side in &sides {
        let url = format!("{}/api/v1/namespaces/{NAMESPACE}/configmaps?resourceVersion=0", side.url);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let list: Value =
                client.get(&url).send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
            if list["items"].as_array().map_or(0, Vec::len) == options.objects {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{}: the cache did not reach {} objects", side.name, options.objects));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // times[form][side]: seconds per round.
    let mut times = vec![[Vec::new(), Vec::new()]; FORMS.len()];
    let mut sizes = vec![[0usize; 2]; FORMS.len()];
    for round in 0..options.rounds {
        let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for (f, (_, accept)) in FORMS.iter().enumerate() {
            for &s in &order {
                let url = format!("{}/api/v1/namespaces/{NAMESPACE}/configmaps?resourceVersion=0", sides[s].url);
                let (elapsed, size) = timed_list(&client, &url, accept).await?;
                times[f][s].push(elapsed.as_secs_f64());
                if round == 0 {
                    sizes[f][s] = size;
                }
            }
        }
    }
    println!(
        "\n| LIST {} objects, RV=0, from the cache | before | after | before ÷ after | first LIST (cold): before | after |",
        options.objects
    );
    println!("|---|---|---|---|---|---|");
    for (f, (name, _)) in FORMS.iter().enumerate() {
        let [before_size, after_size] = sizes[f];
        let off = (before_size as f64 - after_size as f64).abs() / before_size.max(1) as f64;
        if off > 0.01 {
            return Err(format!("{name}: the bodies differ in size: {before_size} vs {after_size} bytes"));
        }
        let (first_before, first_after) = (times[f][0][0], times[f][1][0]);
        let before = median(&mut times[f][0]);
        let after = median(&mut times[f][1]);
        println!(
            "| {name} ({:.1} MB) | {:.1} ms | {:.1} ms | {:.2}× | {:.1} ms | {:.1} ms |",
            after_size as f64 / 1e6,
            before * 1e3,
            after * 1e3,
            before / after.max(1e-9),
            first_before * 1e3,
            first_after * 1e3
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    Ok(())
}

fn main() {
    common::run_main("list_forms_bench", None, parse, run);
}

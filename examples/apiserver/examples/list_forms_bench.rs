//! LIST in the representations kubectl and controllers ask for (Tables with every
//! `includeObject`, Tables and PartialObjectMetadataLists as JSON and as YAML, YAML, the JSON of
//! a CRD's other served version, and plain JSON as the control), through HTTP, for the server
//! binary with the watch cache (lists at `resourceVersion=0` written from the cache's kept
//! per-object-version forms) and with `--watch-cache=false` (every item read from the store and
//! decoded) side by side in one run, on sled; optionally a third side, `--before` (another
//! build, the cache on).
//!
//! ```text
//! cargo build --release -p apistore-apiserver --bins --examples
//! target/release/examples/list_forms_bench [--objects 10000] [--rounds 9] [--dir .] \
//!     [--before /path/to/other/target/release/apiserver]
//! ```
//!
//! Each server gets its own data directory, `--objects` 1 KiB ConfigMaps in one namespace and as
//! many 1 KiB `Gizmo`s of a CRD with two served versions (v1 stored, v2 served by conversion of
//! apiVersion), loaded through HTTP (32 connections per server). Then `--rounds` interleaved
//! rounds (the order of the sides rotating each round; the representations in turn within a
//! round): a full LIST with `resourceVersion=0`, timed to the last body byte and read chunk by
//! chunk without keeping it. The first round's bodies are checked: a 200, the same size on every
//! side within 1 % (the objects differ only in uid and timestamps; a Table's Age cells by up to
//! three bytes a row). It prints a markdown table of medians (workload | each side | no cache ÷
//! cache), each side's first LIST of each representation (the cache's computes what later LISTs
//! reuse), and the load average.

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

const CM: &str = "/api/v1/namespaces/default/configmaps";
const GIZMOS_V1: &str = "/apis/example.com/v1/namespaces/default/gizmos";
const GIZMOS_V2: &str = "/apis/example.com/v2/namespaces/default/gizmos";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const TABLE_YAML: &str = "application/yaml;as=Table;v=v1;g=meta.k8s.io";
const METADATA: &str = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";
const METADATA_YAML: &str = "application/yaml;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io";

/// (name, collection, query beside `resourceVersion=0`, Accept).
const FORMS: &[(&str, &str, &str, &str)] = &[
    ("Table", CM, "", TABLE),
    ("Table, includeObject=Object", CM, "&includeObject=Object", TABLE),
    ("Table, includeObject=None", CM, "&includeObject=None", TABLE),
    ("Table as YAML", CM, "", TABLE_YAML),
    ("Table as YAML, includeObject=Object", CM, "&includeObject=Object", TABLE_YAML),
    ("YAML", CM, "", "application/yaml"),
    ("PartialObjectMetadataList", CM, "", METADATA),
    ("PartialObjectMetadataList as YAML", CM, "", METADATA_YAML),
    ("CRD, other served version (v2), JSON", GIZMOS_V2, "", "application/json"),
    ("CRD, storage version (v1), JSON (control)", GIZMOS_V1, "", "application/json"),
    ("JSON (control)", CM, "", "application/json"),
];

struct Options {
    before: Option<PathBuf>,
    objects: usize,
    rounds: usize,
    dir: PathBuf,
}

fn parse() -> Result<Options, String> {
    let mut options = Options { before: None, objects: 10_000, rounds: 9, dir: PathBuf::from(".") };
    let mut args = std::env::args().skip(1);
    let number = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}"));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--before" => options.before = Some(PathBuf::from(value()?)),
            "--objects" => options.objects = number(&value()?)?,
            "--rounds" => options.rounds = number(&value()?)?.max(1),
            "--dir" => options.dir = PathBuf::from(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(options)
}

struct Side {
    name: &'static str,
    url: String,
    _spawned: Spawned,
}

fn start(name: &'static str, binary: &std::path::Path, root: &std::path::Path, extra: &[&str]) -> Result<Side, String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let data = dir.path().join("data").display().to_string();
    let mut args = vec!["--data-dir".to_owned(), data];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let (port, spawned) = spawn_binary(binary, &args, dir)?;
    Ok(Side { name, url: format!("http://127.0.0.1:{port}"), _spawned: spawned })
}

/// A create body of about [`BODY_BYTES`] bytes: ConfigMap `i`, or Gizmo `i` (v1) when `gizmo`.
fn body_of(i: usize, gizmo: bool) -> Vec<u8> {
    let doc = |fill: usize| {
        let metadata = json!({"name": format!("o-{i:06}"), "labels": {"group": (i % 10).to_string()}});
        match gizmo {
            false => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                "data": {"value": "x".repeat(fill)}}),
            true => json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": metadata,
                "spec": {"size": i, "value": "x".repeat(fill)}}),
        }
    };
    let overhead = serde_json::to_vec(&doc(0)).unwrap_or_default().len();
    serde_json::to_vec(&doc(BODY_BYTES.saturating_sub(overhead))).unwrap_or_default()
}

/// Creates the CRD of gizmos (v1 stored, v2 served too) on `side` and waits until v2 is served.
async fn define_gizmos(client: &reqwest::Client, side: &Side) -> Result<(), String> {
    let schema = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"size": {"type": "integer"}, "value": {"type": "string"}}}}}});
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v2", "served": true, "storage": false, "schema": schema},
            ],
        },
    });
    let url = format!("{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", side.url);
    let response = client.post(&url).json(&crd).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{}: creating the CRD: {}", side.name, response.status()));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client.get(format!("{}{GIZMOS_V2}", side.url)).send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{}: gizmos v2 not served", side.name));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates `objects` objects in `collection` on `side` (gizmos when `gizmo`).
async fn load(
    client: &reqwest::Client,
    side: &Side,
    collection: &str,
    gizmo: bool,
    objects: usize,
) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}{collection}", side.url);
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
                    .body(body_of(i, gizmo))
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
    let this = common::default_binary()?;
    let root = tempfile::Builder::new()
        .prefix("apistore-list-forms-bench-")
        .tempdir_in(&options.dir)
        .map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let client = reqwest::Client::new();
    let mut sides = vec![
        start("no cache", &this, root.path(), &["--watch-cache=false"])?,
        start("cache", &this, root.path(), &[])?,
    ];
    if let Some(before) = &options.before {
        sides.push(start("cache, before", before, root.path(), &[])?);
    }
    println!(
        "list forms bench: {n} 1 KiB ConfigMaps and {n} 1 KiB Gizmos, {} rounds; server = {}{}",
        options.rounds,
        this.display(),
        options.before.as_ref().map(|b| format!(", before = {}", b.display())).unwrap_or_default(),
        n = options.objects,
    );
    println!("load average at the start: {}", load_average());
    for side in &sides {
        wait_ready(&client, &side.url).await?;
        define_gizmos(&client, side).await?;
    }
    for side in &sides {
        let started = Instant::now();
        load(&client, side, CM, false, options.objects).await?;
        load(&client, side, GIZMOS_V1, true, options.objects).await?;
        println!(
            "loaded 2 × {} objects into {} in {:.1} s",
            options.objects,
            side.name,
            started.elapsed().as_secs_f64()
        );
    }
    // Every side lists every object (the caches have them: RV=0 lists come from the cache).
    for side in &sides {
        for collection in [CM, GIZMOS_V1] {
            let url = format!("{}{collection}?resourceVersion=0", side.url);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let list: Value = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                if list["items"].as_array().map_or(0, Vec::len) == options.objects {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{}: {collection} did not reach {} objects", side.name, options.objects));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // times[form][side]: seconds per round.
    let mut times = vec![vec![Vec::new(); sides.len()]; FORMS.len()];
    let mut sizes = vec![vec![0usize; sides.len()]; FORMS.len()];
    for round in 0..options.rounds {
        let order: Vec<usize> = (0..sides.len()).map(|s| (s + round) % sides.len()).collect();
        for (f, (_, collection, query, accept)) in FORMS.iter().enumerate() {
            for &s in &order {
                let url = format!("{}{collection}?resourceVersion=0{query}", sides[s].url);
                let (elapsed, size) = timed_list(&client, &url, accept).await?;
                times[f][s].push(elapsed.as_secs_f64());
                if round == 0 {
                    sizes[f][s] = size;
                }
            }
        }
    }
    let names: Vec<&str> = sides.iter().map(|s| s.name).collect();
    println!(
        "\n| LIST {} objects, RV=0 | {} | no cache ÷ cache | first LIST (cold): {} |",
        options.objects,
        names.join(" | "),
        names.join(" | ")
    );
    println!("|---|{}---|{}", "---|".repeat(sides.len()), "---|".repeat(sides.len()));
    for (f, (name, _, _, accept)) in FORMS.iter().enumerate() {
        let reference = sizes[f][1];
        // A Table's Age cells differ by a digit or two between sides loaded seconds apart.
        let ages = if accept.contains("as=Table") { 3 * options.objects } else { 0 };
        for (s, size) in sizes[f].iter().enumerate() {
            let off = (reference.abs_diff(*size).saturating_sub(ages)) as f64 / reference.max(1) as f64;
            if off > 0.01 {
                return Err(format!("{name}: the bodies differ in size: {} {size} vs cache {reference}", names[s]));
            }
        }
        let firsts: Vec<String> = times[f].iter().map(|t| format!("{:.1} ms", t[0] * 1e3)).collect();
        let medians: Vec<f64> = times[f].iter_mut().map(|t| median(t)).collect();
        println!(
            "| {name} ({:.1} MB) | {} | {:.1}× | {} |",
            reference as f64 / 1e6,
            medians.iter().map(|m| format!("{:.1} ms", m * 1e3)).collect::<Vec<_>>().join(" | "),
            medians[0] / medians[1].max(1e-9),
            firsts.join(" | ")
        );
    }
    println!("\nload average at the end: {}", load_average());
    Ok(())
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn main() {
    common::run_main("list_forms_bench", None, parse, run);
}

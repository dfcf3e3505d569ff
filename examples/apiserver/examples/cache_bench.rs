//! The watch cache through HTTP: the same server binary with the watch cache on and with it
//! off (`--watch-cache=false`), side by side in one run, on sled and (built with
//! `--features etcd`) on a single-node etcd the harness starts.
//!
//! ```text
//! cargo build --release -p apistore-apiserver --features etcd --bins --examples
//! cargo run --release -p apistore-apiserver --features etcd --example cache_bench -- \
//!     [--backends sled,etcd] [--small 10000] [--large 50000] [--rounds 5] [--gets 2000] \
//!     [--points 5000,10000,20000,40000,60000] [--svg target/cache-memory.svg] [--dir .]
//! ```
//!
//! Per backend it starts two servers (cache on, cache off) and loads 1 KiB ConfigMaps through
//! HTTP: `--small` into one namespace, then `--large` into another (each object labelled
//! `group=<i mod 10>`). On sled each server has its own data directory and gets every object;
//! on etcd both servers share the etcd (one key space) and each writes every other object.
//!
//! 1. **Memory**: while loading, at each of `--points` objects held, the cache-on server's
//!    `VmRSS` minus the cache-off server's, divided by the objects held, beside the encoded
//!    JSON size of an object (as GET returns it). Measured before any list, so neither side
//!    holds list buffers. The curve goes into an SVG (`--svg`).
//! 2. **Reads**, `--rounds` interleaved rounds, the order of the sides alternating:
//!    full LIST of the small and of the large namespace with `resourceVersion=0` (time to the
//!    last body byte, median of rounds); LIST `labelSelector=group=3` (a tenth of the small
//!    namespace) RV=0 on 4 connections (p50 of every request); GET of single objects with
//!    RV=0 as JSON, YAML and Table, and the default consistent GET (RV unset: the cache passes
//!    it to the store, as Kubernetes does), `--gets` requests per round on 8 connections (p50
//!    and requests/s).
//!
//! It prints a markdown table (workload | cache on | cache off | ratio); a ratio above 1 means
//! the cache is faster (off ÷ on for times, on ÷ off for rates; for memory, bytes per object ÷
//! encoded size).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{median, ms, percentile, spawn_server_with, wait_ready, Spawned};

/// Connections that load objects (split between the servers where they share a store).
const LOADERS: usize = 64;
/// Connections of the selector LIST.
const SELECTOR_CONNECTIONS: usize = 4;
/// Connections of the GETs.
const GET_CONNECTIONS: usize = 8;
/// Selector LISTs per connection per round.
const SELECTOR_LISTS: usize = 10;
/// The size of each create's request body.
const BODY_BYTES: usize = 1024;

struct Options {
    backends: Vec<String>,
    small: usize,
    large: usize,
    rounds: usize,
    gets: usize,
    points: Vec<usize>,
    svg: PathBuf,
    dir: PathBuf,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        backends: if cfg!(feature = "etcd") { vec!["sled".into(), "etcd".into()] } else { vec!["sled".into()] },
        small: 10_000,
        large: 50_000,
        rounds: 5,
        gets: 2_000,
        points: vec![5_000, 10_000, 20_000, 40_000, 60_000],
        svg: PathBuf::from("target/cache-memory.svg"),
        dir: PathBuf::from("."),
    };
    let mut args = std::env::args().skip(1);
    let number = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}"));
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backends" => options.backends = value()?.split(',').map(str::to_owned).collect(),
            "--small" => options.small = number(&value()?)?.max(10),
            "--large" => options.large = number(&value()?)?.max(10),
            "--rounds" => options.rounds = number(&value()?)?.max(1),
            "--gets" => options.gets = number(&value()?)?.max(GET_CONNECTIONS),
            "--points" => options.points = value()?.split(',').map(number).collect::<Result<_, _>>()?,
            "--svg" => options.svg = value()?.into(),
            "--dir" => options.dir = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for backend in &options.backends {
        if backend != "sled" && !(backend == "etcd" && cfg!(feature = "etcd")) {
            return Err(format!("backend {backend:?}: expected sled, or etcd with --features etcd"));
        }
    }
    Ok(options)
}

/// One server of a comparison.
struct Side {
    name: &'static str,
    url: String,
    spawned: Spawned,
}

/// The two servers of one backend, and what they share.
struct Pair {
    on: Side,
    off: Side,
    /// Both servers read one key space (etcd): each object is written once, through either.
    shared_store: bool,
    _etcd: Option<apistore_etcd_harness::EtcdCluster>,
}

impl Pair {
    fn sides(&self) -> [&Side; 2] {
        [&self.on, &self.off]
    }
}

fn start_pair(backend: &str, root: &std::path::Path) -> Result<Pair, String> {
    let mut etcd = None;
    let mut spawn = |name: &'static str, cache: bool| -> Result<Side, String> {
        let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
        let data = dir.path().join("data").display().to_string();
        let mut args = match backend {
            "etcd" => {
                if etcd.is_none() {
                    let config = apistore_etcd_harness::ClusterConfig {
                        base_dir: Some(root.to_owned()),
                        ..apistore_etcd_harness::ClusterConfig::default()
                    };
                    etcd = Some(apistore_etcd_harness::EtcdCluster::start(config).map_err(|e| e.to_string())?);
                }
                let endpoint = etcd.as_ref().map(|e| e.endpoint(0)).unwrap_or_default();
                vec!["--etcd-servers".to_owned(), endpoint, "--data-dir".to_owned(), data]
            }
            _ => vec!["--backend".to_owned(), "sled".to_owned(), "--data-dir".to_owned(), data],
        };
        if !cache {
            args.push("--watch-cache=false".to_owned());
        }
        let (url, spawned) = spawn_server_with(&args, dir)?;
        Ok(Side { name, url, spawned })
    };
    let on = spawn("on", true)?;
    let off = spawn("off", false)?;
    Ok(Pair { on, off, shared_store: backend == "etcd", _etcd: etcd })
}

/// A ConfigMap create body of about [`BODY_BYTES`] bytes, labelled `group=<i mod 10>`.
fn body_of(name: &str, i: usize) -> Vec<u8> {
    let doc = |fill: usize| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"group": (i % 10).to_string()}},
            "data": {"value": "x".repeat(fill)}})
    };
    let overhead = serde_json::to_vec(&doc(0)).unwrap_or_default().len();
    serde_json::to_vec(&doc(BODY_BYTES.saturating_sub(overhead))).unwrap_or_default()
}

fn name_of(i: usize) -> String {
    format!("cm-{i:06}")
}

/// Per server base URL, the highest resourceVersion its creates answered (so a later read can
/// wait for it).
static HIGHEST: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());

fn record_highest(url: &str, rv: u64) {
    let mut highest = HIGHEST.lock().unwrap_or_else(|p| p.into_inner());
    let entry = highest.entry(url.to_owned()).or_default();
    *entry = (*entry).max(rv);
}

/// The revision a read of `side` must reach: its own creates' highest, or both servers' where
/// they share a store.
fn highest(pair: &Pair, side: &Side) -> u64 {
    let highest = HIGHEST.lock().unwrap_or_else(|p| p.into_inner());
    let of = |url: &str| highest.get(url).copied().unwrap_or(0);
    if pair.shared_store {
        of(&pair.on.url).max(of(&pair.off.url))
    } else {
        of(&side.url)
    }
}

/// Creates objects `from..to` of `namespace` on the pair (each through every server, or,
/// with a shared store, each through one of them in turn).
async fn load(client: &reqwest::Client, pair: &Pair, namespace: &str, from: usize, to: usize) -> Result<(), String> {
    // Each group of loaders draws indexes from its counter and sends object i to urls[i % len].
    let groups: Vec<(Vec<String>, usize)> = if pair.shared_store {
        vec![(vec![pair.on.url.clone(), pair.off.url.clone()], LOADERS)]
    } else {
        pair.sides().iter().map(|side| (vec![side.url.clone()], LOADERS / 2)).collect()
    };
    let mut tasks = Vec::new();
    for (urls, loaders) in groups {
        let next = Arc::new(AtomicU64::new(from as u64));
        let collections: Arc<Vec<String>> =
            Arc::new(urls.iter().map(|url| format!("{url}/api/v1/namespaces/{namespace}/configmaps")).collect());
        let urls = Arc::new(urls);
        for _ in 0..loaders {
            let (client, next, collections, urls) = (client.clone(), next.clone(), collections.clone(), urls.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= to {
                        return Ok::<_, String>(());
                    }
                    let response = client
                        .post(&collections[i % collections.len()])
                        .header("content-type", "application/json")
                        .body(body_of(&name_of(i), i))
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = response.status();
                    let body = response.bytes().await.map_err(|e| e.to_string())?;
                    if status.as_u16() != 201 {
                        return Err(format!("create answered {status}: {}", String::from_utf8_lossy(&body)));
                    }
                    let created: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                    let rv = created["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok());
                    record_highest(&urls[i % urls.len()], rv.unwrap_or(0));
                }
            }));
        }
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Waits until each server serves the newest object written from its cache (a GET at the
/// highest resourceVersion a create answered waits for the cache to reach it).
async fn settle(client: &reqwest::Client, pair: &Pair, namespace: &str, last: usize) -> Result<(), String> {
    for side in pair.sides() {
        let rv = highest(pair, side);
        let url =
            format!("{}/api/v1/namespaces/{namespace}/configmaps/{}?resourceVersion={rv}", side.url, name_of(last));
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{} GET at {rv}: {}", side.name, response.status()));
        }
    }
    Ok(())
}

/// `VmRSS` of `pid` in bytes.
fn rss(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS")?;
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).ok_or("bad VmRSS")?;
    Ok(kib * 1024)
}

/// One point of the memory curve.
#[derive(Clone, Copy, Debug)]
struct MemoryPoint {
    objects: usize,
    rss_on: u64,
    rss_off: u64,
}

impl MemoryPoint {
    fn per_object(&self) -> f64 {
        (self.rss_on as f64 - self.rss_off as f64) / self.objects.max(1) as f64
    }
}

/// One request: its latency to the last body byte and the body's size. The body is read chunk
/// by chunk and not kept (like `curl -o /dev/null`), so a 70 MB list measures the server and
/// the connection, not the client's buffer growth.
async fn timed_get(client: &reqwest::Client, url: &str, accept: &str) -> Result<(Duration, usize), String> {
    let started = Instant::now();
    let mut response = client.get(url).header("accept", accept).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let mut size = 0;
    let mut head = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        size += chunk.len();
        if head.len() < 300 {
            head.extend_from_slice(&chunk[..chunk.len().min(300)]);
        }
    }
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}: {}", String::from_utf8_lossy(&head)));
    }
    Ok((elapsed, size))
}

/// Items of a JSON list body (checked once per side and workload; a failed answer, e.g. a
/// store's timeout on a loaded machine, is tried up to three times).
async fn count_items(client: &reqwest::Client, url: &str) -> Result<usize, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            last = format!("GET {url} answered {}", response.status());
            continue;
        }
        let list: Value = response.json().await.map_err(|e| e.to_string())?;
        return Ok(list["items"].as_array().map_or(0, Vec::len));
    }
    Err(last)
}

/// Latencies of `connections` clients each GETting `per` URLs from `urls` (in turn).
async fn concurrent(
    client: &reqwest::Client,
    urls: Arc<Vec<String>>,
    accept: &'static str,
    connections: usize,
    per: usize,
) -> Result<(Vec<Duration>, Duration), String> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (client, urls) = (client.clone(), urls.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per);
            for i in 0..per {
                let url = &urls[(worker * per + i) * 7919 % urls.len()];
                latencies.push(timed_get(&client, url, accept).await?.0);
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    Ok((latencies, started.elapsed()))
}

/// One row of the table: per side, the figures of every round.
#[derive(Default)]
struct Figures {
    /// Per side: single timings (one per round) or request latencies (all rounds).
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Per side: requests per second, one per round.
    rates: BTreeMap<&'static str, Vec<f64>>,
}

const ACCEPT_JSON: &str = "application/json";
const ACCEPT_YAML: &str = "application/yaml";
const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The measured results of one backend.
struct Results {
    backend: String,
    rows: Vec<(String, Figures, bool)>,
    memory: Vec<MemoryPoint>,
    encoded_size: usize,
}

async fn bench_backend(options: &Options, backend: &str, root: &std::path::Path) -> Result<Results, String> {
    let pair = start_pair(backend, root)?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(LOADERS).build().map_err(|e| e.to_string())?;
    for side in pair.sides() {
        wait_ready(&client, &side.url).await?;
    }
    let (small_ns, large_ns) = ("small", "large");
    for namespace in [small_ns, large_ns] {
        for side in pair.sides() {
            let response = client
                .post(format!("{}/api/v1/namespaces", side.url))
                .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            // On a shared store the second server finds the namespace the first created.
            if status != 201 && !(pair.shared_store && status == 409) {
                return Err(format!("creating namespace {namespace}: {status}"));
            }
        }
    }
    // 1. Load, measuring memory at each point.
    let total = options.small + options.large;
    let mut points: Vec<usize> = options.points.iter().copied().filter(|p| *p <= total).collect();
    points.push(0);
    points.push(total);
    points.sort_unstable();
    points.dedup();
    let mut memory = Vec::new();
    let mut held = 0;
    let started = Instant::now();
    for point in points {
        while held < point {
            let (namespace, offset, size) = if held < options.small {
                (small_ns, 0, options.small)
            } else {
                (large_ns, options.small, options.large)
            };
            let to = (point - offset).min(size);
            load(&client, &pair, namespace, held - offset, to).await?;
            settle(&client, &pair, namespace, to - 1).await?;
            held = offset + to;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let measured =
            MemoryPoint { objects: point, rss_on: rss(pair.on.spawned.pid())?, rss_off: rss(pair.off.spawned.pid())? };
        println!(
            "  {backend}: {point:>6} objects held: RSS on {:.1} MiB, off {:.1} MiB ({:.1} s loading)",
            measured.rss_on as f64 / 1048576.0,
            measured.rss_off as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
        memory.push(measured);
    }
    let sample = format!("{}/api/v1/namespaces/{small_ns}/configmaps/{}", pair.off.url, name_of(0));
    let encoded_size = timed_get(&client, &sample, ACCEPT_JSON).await?.1;

    // 2. Reads, interleaved.
    let list = |side: &Side, namespace: &str, selector: &str| {
        format!("{}/api/v1/namespaces/{namespace}/configmaps?resourceVersion=0{selector}", side.url)
    };
    for side in pair.sides() {
        for (namespace, selector, expected) in [
            (small_ns, "", options.small),
            (large_ns, "", options.large),
            (small_ns, "&labelSelector=group%3D3", options.small / 10 + usize::from(options.small % 10 > 3)),
        ] {
            let items = count_items(&client, &list(side, namespace, selector)).await?;
            if items != expected {
                return Err(format!("{} list {namespace}{selector}: {items} items, expected {expected}", side.name));
            }
        }
    }
    let gets = |side: &Side, query: &str| -> Arc<Vec<String>> {
        Arc::new(
            (0..options.small)
                .map(|i| format!("{}/api/v1/namespaces/{small_ns}/configmaps/{}{query}", side.url, name_of(i)))
                .collect(),
        )
    };
    let workloads: Vec<(String, bool)> = vec![
        (format!("full LIST of {} objects, RV=0 (median of rounds)", options.small), false),
        (format!("full LIST of {} objects, RV=0 (median of rounds)", options.large), false),
        (
            format!(
                "LIST labelSelector matching {} of {}, RV=0, {SELECTOR_CONNECTIONS} connections (p50)",
                options.small / 10,
                options.small
            ),
            false,
        ),
        (format!("GET RV=0, JSON, {GET_CONNECTIONS} connections (p50; requests/s)"), true),
        (format!("GET RV=0, YAML, {GET_CONNECTIONS} connections (p50; requests/s)"), true),
        (format!("GET RV=0, as=Table, {GET_CONNECTIONS} connections (p50; requests/s)"), true),
        (
            format!(
                "GET consistent (RV unset: served by the store), JSON, {GET_CONNECTIONS} connections (p50; requests/s)"
            ),
            true,
        ),
    ];
    let mut figures: Vec<Figures> = workloads.iter().map(|_| Figures::default()).collect();
    // A warm-up round (not counted).
    for round in 0..=options.rounds {
        let order = if round % 2 == 0 { [&pair.on, &pair.off] } else { [&pair.off, &pair.on] };
        let counted = round > 0;
        for (w, figure) in figures.iter_mut().enumerate() {
            for side in order {
                let mut record = |latencies: Vec<Duration>, rate: Option<f64>| {
                    if counted {
                        figure.latencies.entry(side.name).or_default().extend(latencies);
                        if let Some(rate) = rate {
                            figure.rates.entry(side.name).or_default().push(rate);
                        }
                    }
                };
                match w {
                    0 | 1 => {
                        let namespace = if w == 0 { small_ns } else { large_ns };
                        let (elapsed, _) = timed_get(&client, &list(side, namespace, ""), ACCEPT_JSON).await?;
                        record(vec![elapsed], None);
                    }
                    2 => {
                        let urls = Arc::new(vec![list(side, small_ns, "&labelSelector=group%3D3")]);
                        let (latencies, _) =
                            concurrent(&client, urls, ACCEPT_JSON, SELECTOR_CONNECTIONS, SELECTOR_LISTS).await?;
                        record(latencies, None);
                    }
                    _ => {
                        let (query, accept) = match w {
                            3 => ("?resourceVersion=0", ACCEPT_JSON),
                            4 => ("?resourceVersion=0", ACCEPT_YAML),
                            5 => ("?resourceVersion=0", ACCEPT_TABLE),
                            _ => ("", ACCEPT_JSON),
                        };
                        let per = options.gets / GET_CONNECTIONS;
                        let (latencies, elapsed) =
                            concurrent(&client, gets(side, query), accept, GET_CONNECTIONS, per).await?;
                        let rate = latencies.len() as f64 / elapsed.as_secs_f64();
                        record(latencies, Some(rate));
                    }
                }
            }
        }
        if counted {
            println!("  {backend}: round {round} of {} done", options.rounds);
        }
    }
    let rows = workloads.into_iter().zip(figures).map(|((name, rated), figures)| (name, figures, rated)).collect();
    Ok(Results { backend: backend.to_owned(), rows, memory, encoded_size })
}

fn print_table(results: &[Results]) {
    println!();
    println!("| workload | cache on | cache off | ratio |");
    println!("|---|---|---|---|");
    for result in results {
        for (name, figures, rated) in &result.rows {
            let p50 = |side: &str| {
                let mut latencies = figures.latencies.get(side).cloned().unwrap_or_default();
                latencies.sort();
                percentile(&latencies, 0.5)
            };
            let (on, off) = (p50("on"), p50("off"));
            let ratio = off.as_secs_f64() / on.as_secs_f64().max(f64::MIN_POSITIVE);
            if *rated {
                let rate = |side: &str| median(&mut figures.rates.get(side).cloned().unwrap_or_default());
                let (rate_on, rate_off) = (rate("on"), rate("off"));
                println!(
                    "| {}: {name} | {} ({rate_on:.0}/s) | {} ({rate_off:.0}/s) | {ratio:.1}× ({:.1}× rate) |",
                    result.backend,
                    ms(on),
                    ms(off),
                    rate_on / rate_off.max(f64::MIN_POSITIVE)
                );
            } else {
                println!("| {}: {name} | {} | {} | {ratio:.1}× |", result.backend, ms(on), ms(off));
            }
        }
        for point in result.memory.iter().filter(|p| p.objects > 0) {
            let per = point.per_object();
            println!(
                "| {}: memory per cached object at {} objects (RSS on − off) / N; encoded JSON {} B | {per:.0} B | – | {:.2}× encoded |",
                result.backend,
                point.objects,
                result.encoded_size,
                per / result.encoded_size.max(1) as f64
            );
        }
        if let Some(base) = result.memory.iter().find(|p| p.objects == 0) {
            println!(
                "| {}: RSS with nothing loaded | {:.1} MiB | {:.1} MiB | – |",
                result.backend,
                base.rss_on as f64 / 1048576.0,
                base.rss_off as f64 / 1048576.0
            );
        }
    }
}

/// Draws bytes per cached object against objects held, per backend, beside the encoded size
/// and 1.5× it (the target), into an SVG at `path`.
fn plot(results: &[Results], path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let points: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| {
            let curve = r.memory.iter().filter(|p| p.objects > 0).map(|p| (p.objects as f64, p.per_object())).collect();
            (r.backend.clone(), curve)
        })
        .collect();
    let encoded = results.first().map_or(0.0, |r| r.encoded_size as f64);
    let max_x = points.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(1.0, f64::max);
    let max_y = points.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(encoded * 2.0, f64::max) * 1.1;
    let min_y = points.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).fold(0.0, f64::min);
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    let error = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("watch cache: process memory per cached object (RSS cache on − cache off) / N", ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x * 1.05, min_y..max_y)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc("objects held (1 KiB ConfigMaps)")
        .y_desc("bytes per object")
        .draw()
        .map_err(|e| error(&e))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (backend, curve)) in points.iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), color.stroke_width(2)))
            .map_err(|e| error(&e))?
            .label(format!("{backend}: (RSS on − off) / N"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(curve.iter().map(|p| Circle::new(*p, 4, color.filled()))).map_err(|e| error(&e))?;
    }
    for (factor, label, color) in [(1.0, "encoded JSON size", BLACK), (1.5, "1.5 × encoded (target)", CYAN)] {
        let y = encoded * factor;
        chart
            .draw_series(LineSeries::new([(0.0, y), (max_x * 1.05, y)], color.stroke_width(1)))
            .map_err(|e| error(&e))?
            .label(format!("{label}: {y:.0} B"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| error(&e))?;
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let root = tempfile::Builder::new()
        .prefix("apistore-cache-bench-")
        .tempdir_in(&options.dir)
        .map_err(|e| format!("{}: {e}", options.dir.display()))?;
    println!(
        "cache bench: {} + {} 1 KiB ConfigMaps, {} rounds, backends {:?}, stores under {}",
        options.small,
        options.large,
        options.rounds,
        options.backends,
        root.path().display()
    );
    let mut results = Vec::new();
    for backend in &options.backends {
        let result = bench_backend(&options, backend, root.path()).await?;
        // Each backend's rows as soon as they are measured (a later backend may fail).
        print_table(std::slice::from_ref(&result));
        results.push(result);
    }
    print_table(&results);
    plot(&results, &options.svg)?;
    println!("\nmemory curve: {}", options.svg.display());
    Ok(())
}

fn main() {
    common::run_main("cache_bench", None, parse, run);
}

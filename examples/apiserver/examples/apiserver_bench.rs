//! Benchmark of the example API server through HTTP.
//!
//! ```text
//! cargo build --release -p apistore-apiserver --bins --examples
//! cargo run --release -p apistore-apiserver --example apiserver_bench -- [--backend sled] [--creates 10000] [--clients 16]
//! cargo run --release -p apistore-apiserver --example apiserver_bench -- --server http://127.0.0.1:8080   # a running server
//! cargo build --release -p apistore-apiserver --features etcd --bins --examples   # the etcd side needs the etcd backend
//! cargo run --release -p apistore-apiserver --features etcd --example apiserver_bench -- --durable-creates [--dir .] [--seconds 4] [--rounds 3] [--before OTHER/target/release/apiserver]
//! ```
//!
//! `--durable-creates` runs one comparison instead, all in one run and on one disk (temporary
//! directories inside `--dir`, default the current directory — not tmpfs): durable 1 KiB
//! ConfigMap creates through the API server on sled, and through the same server binary on a
//! single-node etcd (the harness's, its data directory beside sled's), at 1 and 64 connections,
//! plus the disk's fsync rate (1 KiB appends to a new file, and 1 KiB overwrites in a
//! preallocated one, each followed by `fdatasync`). Each figure is measured `--rounds` times,
//! interleaved (the side measured first alternates); the medians are printed with the ratios
//! sled/etcd and sled-at-1-connection/fsync-rate, the faster probe's (one fsync per
//! acknowledged create is the floor). `--before BINARY` adds a third side: that server binary
//! (e.g. main's build) on sled, measured in the same rounds, with the ratio this/before.
//! With `--server URL` it only drives that running server (`--clients` connections, e.g. to
//! profile it).
//!
//! 1. creates: `--creates` ConfigMaps POSTed by `--clients` concurrent clients → creates/s,
//!    p50/p99 latency;
//! 2. list: every ConfigMap of the namespace paged by `--page` (500), `--list-rounds` times →
//!    time per full list, p50/p99 per page.
//!
//! 3. the same two workloads in process, straight through `apistore::Store` over the same
//!    backend type (no HTTP, no JSON request bodies): the raw figures beside the server's.
//!
//! Without `--server` it starts `target/<profile>/apiserver` on a free loopback
//! port with a temporary data directory, and stops it at the end.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::storage::{ListOptions, Predicate, Storage};
use apistore::{Object, Store, StoreConfig};
use serde_json::{json, Value};

use common::{median, ms, percentile, spawn_server_with, wait_ready, Spawned};

// Link the backends the direct phase opens by name.
use apistore_memory as _;
use apistore_sled as _;

struct Options {
    /// Run the durable-create comparison (with `durable`'s settings) instead.
    durable_creates: bool,
    durable: Durable,
    server: Option<String>,
    backend: String,
    creates: usize,
    clients: usize,
    page: usize,
    list_rounds: usize,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        durable_creates: false,
        durable: Durable::default(),
        server: None,
        backend: "sled".into(),
        creates: 10_000,
        clients: 16,
        page: 500,
        list_rounds: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--server" => options.server = Some(value()?),
            "--backend" => options.backend = value()?,
            "--creates" => options.creates = number(value()?)?,
            "--clients" => options.clients = number(value()?)?.max(1),
            "--page" => options.page = number(value()?)?.max(1),
            "--list-rounds" => options.list_rounds = number(value()?)?.max(1),
            "--durable-creates" => options.durable_creates = true,
            "--dir" => options.durable.dir = value()?.into(),
            "--seconds" => options.durable.seconds = number(value()?)?.max(1) as u64,
            "--rounds" => options.durable.rounds = number(value()?)?.max(1),
            "--before" => options.durable.before = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

fn spawn_server(backend: &str) -> Result<(String, Spawned), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let args = ["--backend".to_owned(), backend.to_owned(), "--data-dir".to_owned(), data.display().to_string()];
    spawn_server_with(&args, dir)
}

async fn run(options: Options) -> Result<(), String> {
    let (base, _spawned) = match &options.server {
        Some(url) => (url.trim_end_matches('/').to_owned(), None),
        None => {
            let (url, spawned) = spawn_server(&options.backend)?;
            (url, Some(spawned))
        }
    };
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(options.clients * 2).build().map_err(|e| e.to_string())?;
    wait_ready(&client, &base).await?;
    let namespace = format!("bench-{}", std::process::id());
    let created = client
        .post(format!("{base}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !created.status().is_success() {
        return Err(format!("creating namespace: {}", created.status()));
    }
    let collection = Arc::new(format!("{base}/api/v1/namespaces/{namespace}/configmaps"));
    let value = "x".repeat(256);

    // 1. Creates with N concurrent clients.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..options.clients {
        let client = client.clone();
        let collection = collection.clone();
        let value = value.clone();
        let count = options.creates / options.clients + usize::from(worker < options.creates % options.clients);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for i in 0..count {
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{worker:02}-{i:06}"), "labels": {"worker": worker.to_string()}},
                    "data": {"value": value}});
                let t = Instant::now();
                let response = client.post(collection.as_str()).json(&body).send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let _ = response.bytes().await;
                if status.as_u16() != 201 {
                    return Err(format!("create answered {status}"));
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(options.creates);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "HTTP create: {} ConfigMaps, {} clients, backend {}: {:.0} creates/s, p50 {}, p99 {}, max {} (total {:.2} s)",
        latencies.len(),
        options.clients,
        if options.server.is_some() { "of the running server" } else { options.backend.as_str() },
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
        elapsed.as_secs_f64()
    );

    // 2. Paged lists.
    let mut pages = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..options.list_rounds {
        let round = Instant::now();
        let mut token = String::new();
        let mut items = 0usize;
        loop {
            let t = Instant::now();
            let response = client
                // Continue tokens are base64url: safe in a query string as they are.
                .get(format!("{collection}?limit={}&continue={token}", options.page))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("list answered {}", response.status()));
            }
            let page: Value = response.json().await.map_err(|e| e.to_string())?;
            pages.push(t.elapsed());
            items += page["items"].as_array().map_or(0, Vec::len);
            token = page["metadata"]["continue"].as_str().unwrap_or("").to_owned();
            if token.is_empty() {
                break;
            }
        }
        if items != latencies.len() {
            return Err(format!("a full list returned {items} items, expected {}", latencies.len()));
        }
        rounds.push(round.elapsed());
    }
    pages.sort();
    rounds.sort();
    println!(
        "HTTP list: {} items paged by {}, {} rounds: full list median {}, per page p50 {}, p99 {}, max {}",
        latencies.len(),
        options.page,
        options.list_rounds,
        ms(percentile(&rounds, 0.5)),
        ms(percentile(&pages, 0.5)),
        ms(percentile(&pages, 0.99)),
        ms(percentile(&pages, 1.0)),
    );
    direct(&options, latencies.len()).await
}

/// The same workloads straight through `Store` (no HTTP).
async fn direct(options: &Options, creates: usize) -> Result<(), String> {
    apistore_sled::register();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = apistore::registry::BackendConfig::new(&options.backend);
    if options.backend == "sled" {
        config = config.with_option("path", dir.path().join("direct").to_string_lossy().into_owned());
    }
    let backend = apistore::registry::open(&config).await.map_err(|e| e.to_string())?;
    let store: Arc<dyn Storage> =
        Arc::new(Store::new(backend, StoreConfig::new("configmaps")).map_err(|e| e.to_string())?);
    let value = "x".repeat(256);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..options.clients {
        let store = store.clone();
        let value = value.clone();
        let count = creates / options.clients + usize::from(worker < creates % options.clients);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for i in 0..count {
                let name = format!("cm-{worker:02}-{i:06}");
                let object = Object::new("v1", "ConfigMap", "bench", &name)
                    .with_label("worker", &worker.to_string())
                    .with_field("data", json!({ "value": value }));
                let t = Instant::now();
                store.create(&format!("/configmaps/bench/{name}"), object, 0).await.map_err(|e| e.to_string())?;
                latencies.push(t.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(creates);
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "direct create (Store, no HTTP): {} objects, {} tasks: {:.0} creates/s, p50 {}, p99 {}, max {}",
        latencies.len(),
        options.clients,
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    let mut pages = Vec::new();
    let mut rounds = Vec::new();
    for _ in 0..options.list_rounds {
        let round = Instant::now();
        let mut token = String::new();
        let mut items = 0;
        loop {
            let t = Instant::now();
            let predicate =
                Predicate { limit: options.page as i64, continue_token: token.clone(), ..Default::default() };
            let list = store
                .get_list("/configmaps/bench/", ListOptions { predicate, recursive: true, ..Default::default() })
                .await
                .map_err(|e| e.to_string())?;
            // Encode like the server does, so the comparison includes serialization.
            let _encoded = serde_json::to_vec(&list.items).map_err(|e| e.to_string())?;
            pages.push(t.elapsed());
            items += list.items.len();
            token = list.continue_token;
            if token.is_empty() {
                break;
            }
        }
        if items != creates {
            return Err(format!("a direct list returned {items} items, expected {creates}"));
        }
        rounds.push(round.elapsed());
    }
    pages.sort();
    rounds.sort();
    println!(
        "direct list (Store, no HTTP): {creates} items paged by {}: full list median {}, per page p50 {}, p99 {}",
        options.page,
        ms(percentile(&rounds, 0.5)),
        ms(percentile(&pages, 0.5)),
        ms(percentile(&pages, 0.99)),
    );
    Ok(())
}

/// Settings of the durable-create comparison.
struct Durable {
    /// Where the temporary directories go (sled's data, etcd's data, the fsync probe).
    dir: std::path::PathBuf,
    /// Length of each measurement.
    seconds: u64,
    /// Measurements of each figure (interleaved).
    rounds: usize,
    /// Another server binary measured on sled in the same rounds (side "before").
    before: Option<std::path::PathBuf>,
}

impl Default for Durable {
    fn default() -> Self {
        Durable { dir: ".".into(), seconds: 4, rounds: 3, before: None }
    }
}

/// Idle time before each round's fsync probe.
const PROBE_SETTLE: Duration = Duration::from_secs(2);

/// The connection counts of the comparison.
const CONNECTIONS: [usize; 2] = [1, 64];

/// The size of each create's request body.
const BODY_BYTES: usize = 1024;

/// A ConfigMap create body of exactly [`BODY_BYTES`] bytes (for names of JSON-safe
/// characters). Built by concatenation: the loader shares the CPU with the server it measures,
/// so a request costs it as little as possible.
fn body_of(name: &str) -> Vec<u8> {
    const HEAD: &str = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":""#;
    const MIDDLE: &str = r#""},"data":{"value":""#;
    const TAIL: &str = r#""}}"#;
    let fill = BODY_BYTES.saturating_sub(HEAD.len() + name.len() + MIDDLE.len() + TAIL.len());
    let mut body = Vec::with_capacity(BODY_BYTES.max(HEAD.len() + name.len() + MIDDLE.len() + TAIL.len()));
    body.extend_from_slice(HEAD.as_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(MIDDLE.as_bytes());
    body.resize(body.len() + fill, b'x');
    body.extend_from_slice(TAIL.as_bytes());
    body
}

/// How the fsync probe writes before each `fdatasync`.
#[derive(Clone, Copy)]
enum Probe {
    /// 1 KiB appended to a new file: each sync also commits the file's new size (a journal
    /// commit on ext4), as a log that grows does.
    Append,
    /// 1 KiB overwritten in place in a preallocated 4 MiB file (cycling): a sync with no
    /// metadata to commit, the cheapest a durable write can be.
    Overwrite,
}

/// fdatasyncs per second of `probe` writes to a new file in `dir`, for `seconds`, and the
/// median time of one `fdatasync` (the disk's cost without the heavy tail other writers on a
/// shared disk give it).
fn fsync_rate(dir: &std::path::Path, probe: Probe, seconds: u64) -> Result<(f64, Duration), String> {
    use std::os::unix::fs::FileExt;
    const SPAN: u64 = 4 << 20;
    let path = dir.join("fsync-probe");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Probe::Overwrite = probe {
        file.write_all_at(&vec![0u8; SPAN as usize], 0).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
    }
    let block = [b'x'; BODY_BYTES];
    let started = Instant::now();
    let mut syncs = 0u64;
    let mut latencies = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        let offset = syncs * BODY_BYTES as u64;
        let offset = match probe {
            Probe::Append => offset,
            Probe::Overwrite => offset % SPAN,
        };
        file.write_all_at(&block, offset).map_err(|e| e.to_string())?;
        let syncing = Instant::now();
        file.sync_data().map_err(|e| e.to_string())?;
        latencies.push(syncing.elapsed());
        syncs += 1;
    }
    let rate = syncs as f64 / started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    latencies.sort();
    Ok((rate, percentile(&latencies, 0.5)))
}

/// Creates/s of `connections` clients each POSTing 1 KiB ConfigMaps for `seconds` (every
/// create must answer 201; names are unique per `tag`).
async fn create_rate(base: &str, tag: &str, connections: usize, seconds: u64) -> Result<(f64, u64), String> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().map_err(|e| e.to_string())?;
    let collection = Arc::new(format!("{base}/api/v1/namespaces/default/configmaps"));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (client, collection, tag) = (client.clone(), collection.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let body = body_of(&format!("{tag}-{worker}-{done}"));
                let response = client
                    .post(collection.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let _ = response.bytes().await;
                if status.as_u16() != 201 {
                    return Err(format!("create answered {status}"));
                }
                done += 1;
            }
            Ok::<_, String>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok((total as f64 / started.elapsed().as_secs_f64(), total))
}

/// CPU time (user + system) the process `pid` has used, from `/proc/<pid>/stat` (None when
/// it cannot be read).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ, the unit of /proc's times, is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Microseconds of CPU `pids` used per create between `before` and now.
fn cpu_per_create(pids: &[u32], before: &[Option<Duration>], creates: u64) -> f64 {
    let used: Duration =
        pids.iter().zip(before).filter_map(|(pid, before)| Some(cpu_time(*pid)?.saturating_sub((*before)?))).sum();
    used.as_secs_f64() * 1e6 / creates.max(1) as f64
}

/// Checks that [`body_of`] makes a 1 KiB ConfigMap with the name given.
fn check_body() -> Result<(), String> {
    let body = body_of("r0-c64-sled-63-12345");
    let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("bench body is not JSON: {e}"))?;
    if body.len() != BODY_BYTES || doc["metadata"]["name"] != "r0-c64-sled-63-12345" || doc["kind"] != "ConfigMap" {
        return Err(format!("bench body is not a {BODY_BYTES}-byte ConfigMap: {} bytes", body.len()));
    }
    Ok(())
}

/// `--durable-creates --server URL`: only the create load on a running server (`--clients`
/// connections, `--seconds` per round, `--rounds` rounds), e.g. to profile the server.
async fn durable_load(url: &str, connections: usize, settings: &Durable) -> Result<(), String> {
    check_body()?;
    let base = url.trim_end_matches('/');
    let mut rates = Vec::new();
    for round in 0..settings.rounds {
        let tag = format!("load-{}-{round}", std::process::id());
        let (rate, _) = create_rate(base, &tag, connections, settings.seconds).await?;
        println!("  round {round}: {connections} connection(s): {rate:.0} creates/s");
        rates.push(rate);
    }
    println!("median: {:.0} creates/s", median(&mut rates));
    Ok(())
}

/// The durable-create comparison (see the module doc).
async fn durable_creates(settings: &Durable) -> Result<(), String> {
    check_body()?;
    let root = tempfile::Builder::new()
        .prefix("apistore-durable-")
        .tempdir_in(&settings.dir)
        .map_err(|e| format!("{}: {e}", settings.dir.display()))?;
    println!("durable creates: every store under {} ({} s per measurement)", root.path().display(), settings.seconds);
    let etcd = apistore_etcd_harness::EtcdCluster::start(apistore_etcd_harness::ClusterConfig {
        base_dir: Some(root.path().to_owned()),
        ..apistore_etcd_harness::ClusterConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let sled_dir = tempfile::tempdir_in(root.path()).map_err(|e| e.to_string())?;
    let sled_args = [
        "--backend".to_owned(),
        "sled".to_owned(),
        "--data-dir".to_owned(),
        sled_dir.path().join("data").display().to_string(),
    ];
    let etcd_dir = tempfile::tempdir_in(root.path()).map_err(|e| e.to_string())?;
    let etcd_args = [
        "--etcd-servers".to_owned(),
        etcd.endpoint(0),
        "--data-dir".to_owned(),
        etcd_dir.path().join("data").display().to_string(),
    ];
    let (sled_url, sled_server) = spawn_server_with(&sled_args, sled_dir)?;
    let (etcd_url, etcd_server) = spawn_server_with(&etcd_args, etcd_dir)?;
    // The processes whose CPU each side's creates cost: its API server (and etcd itself).
    let mut processes = std::collections::BTreeMap::new();
    processes.insert("sled", vec![sled_server.pid()]);
    processes.insert("etcd", [Some(etcd_server.pid()), etcd.pid(0)].into_iter().flatten().collect::<Vec<_>>());
    let mut sides = vec![("sled", sled_url.clone()), ("etcd", etcd_url.clone())];
    let _before_server = match &settings.before {
        Some(binary) => {
            let dir = tempfile::tempdir_in(root.path()).map_err(|e| e.to_string())?;
            let args = [
                "--backend".to_owned(),
                "sled".to_owned(),
                "--data-dir".to_owned(),
                dir.path().join("data").display().to_string(),
            ];
            let (port, spawned) = common::spawn_binary(binary, &args, dir)?;
            processes.insert("before", vec![spawned.pid()]);
            sides.push(("before", format!("http://127.0.0.1:{port}")));
            Some(spawned)
        }
        None => None,
    };
    let client = reqwest::Client::new();
    for (_, url) in &sides {
        wait_ready(&client, url).await?;
    }
    // Warm up both servers (connections, caches) before measuring.
    for (name, url) in &sides {
        create_rate(url, &format!("warm-{name}"), 4, 1).await?;
    }
    let mut rates: std::collections::BTreeMap<(usize, &str), Vec<f64>> = Default::default();
    let (mut fsyncs, mut overwrites) = (Vec::new(), Vec::new());
    let mut probe_latencies = Vec::new();
    let mut cpu: std::collections::BTreeMap<(usize, &str), Vec<f64>> = Default::default();
    for round in 0..settings.rounds {
        // Let both servers finish what the last load left them (sled's rewrite, etcd's backend
        // commits) so that the probe measures the disk, not their background writes.
        tokio::time::sleep(PROBE_SETTLE).await;
        let (append, _) = fsync_rate(root.path(), Probe::Append, settings.seconds)?;
        let (overwrite, latency) = fsync_rate(root.path(), Probe::Overwrite, settings.seconds)?;
        fsyncs.push(append);
        overwrites.push(overwrite);
        probe_latencies.push(latency);
        for connections in CONNECTIONS {
            // Alternate which side goes first, so neither always follows the same neighbour.
            let mut order = sides.clone();
            order.rotate_left(round % sides.len());
            for (name, url) in order {
                let pids = processes.get(name).cloned().unwrap_or_default();
                let before: Vec<_> = pids.iter().map(|pid| cpu_time(*pid)).collect();
                let loader_before = [cpu_time(std::process::id())];
                let (rate, creates) =
                    create_rate(&url, &format!("r{round}-c{connections}-{name}"), connections, settings.seconds)
                        .await?;
                let used = cpu_per_create(&pids, &before, creates);
                let loader = cpu_per_create(&[std::process::id()], &loader_before, creates);
                println!(
                    "  round {round}: {name:>4} {connections:>2} connection(s): {rate:>7.0} creates/s, CPU per create {used:>4.0} µs server, {loader:>3.0} µs loader"
                );
                rates.entry((connections, name)).or_default().push(rate);
                cpu.entry((connections, name)).or_default().push(used);
                cpu.entry((connections, "loader")).or_default().push(loader);
            }
        }
        println!(
            "  round {round}: fsync probe: {:>7.0} fdatasyncs/s appending, {:>7.0} overwriting (p50 {})",
            fsyncs[round],
            overwrites[round],
            ms(probe_latencies[round])
        );
    }
    let (append, overwrite) = (median(&mut fsyncs), median(&mut overwrites));
    // The faster of the two is the floor a durable create is held to (the stricter target).
    let fsync = append.max(overwrite);
    probe_latencies.sort();
    let p50 = probe_latencies[probe_latencies.len() / 2];
    let uncontended = 1.0 / p50.as_secs_f64().max(f64::MIN_POSITIVE);
    println!("medians of {} rounds ({}-byte bodies):", settings.rounds, BODY_BYTES);
    println!(
        "  disk fsync rate: {append:.0}/s (1 KiB append + fdatasync), {overwrite:.0}/s (1 KiB overwrite + fdatasync); the ratios use {fsync:.0}/s"
    );
    println!("  median fdatasync (overwrite) {}: {uncontended:.0}/s if every fsync took the median", ms(p50));
    for connections in CONNECTIONS {
        let sled = median(rates.entry((connections, "sled")).or_default());
        let etcd = median(rates.entry((connections, "etcd")).or_default());
        let sled_cpu = median(cpu.entry((connections, "sled")).or_default());
        let etcd_cpu = median(cpu.entry((connections, "etcd")).or_default());
        println!(
            "  {connections:>2} connection(s): sled {sled:.0} creates/s, etcd {etcd:.0} creates/s: sled/etcd {:.2}x; sled/fsync-rate {:.2} (by the median fsync {:.2})",
            sled / etcd.max(f64::MIN_POSITIVE),
            sled / fsync.max(f64::MIN_POSITIVE),
            sled / uncontended,
        );
        let loader_cpu = median(cpu.entry((connections, "loader")).or_default());
        println!(
            "      CPU per create: sled side {sled_cpu:.0} µs (API server), etcd side {etcd_cpu:.0} µs (API server + etcd), the loader {loader_cpu:.0} µs (either side)"
        );
        if settings.before.is_some() {
            let before = median(rates.entry((connections, "before")).or_default());
            let before_cpu = median(cpu.entry((connections, "before")).or_default());
            println!(
                "      before (--before on sled): {before:.0} creates/s, CPU per create {before_cpu:.0} µs; this/before {:.2}x; before/fsync-rate {:.2} (by the median fsync {:.2})",
                sled / before.max(f64::MIN_POSITIVE),
                before / fsync.max(f64::MIN_POSITIVE),
                before / uncontended,
            );
        }
    }
    Ok(())
}

fn main() {
    common::run_main("apiserver_bench", None, parse, |options| async move {
        match (options.durable_creates, &options.server) {
            (true, Some(url)) => durable_load(url, options.clients, &options.durable).await,
            (true, None) => durable_creates(&options.durable).await,
            (false, _) => run(options).await,
        }
    });
}

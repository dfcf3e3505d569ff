//! Watch fan-out through the API server: many HTTP watchers of one namespace's ConfigMaps
//! while writers update them at a paced rate; per-event delivery latency at every watcher,
//! events delivered per second, events lost, client and server CPU. The watch cache on is
//! compared with the watch cache off (every watch served by the store's own watch), in the
//! same run, rounds interleaved.
//!
//! ```text
//! cargo build --release -p apistore-apiserver --bins --examples
//! target/release/examples/watch_fanout [--watchers 1000] [--rate 1000] [--seconds 10]
//!     [--baseline-watchers 100] [--off-at-full] [--rounds 3] [--objects 1000] [--writers 32]
//!     [--svg target/watch_fanout.svg] [--binary target/release/apiserver] [--before PATH]
//! ```
//!
//! Sides (each on its own server, started once with sled in a temporary directory):
//! cache on with `--watchers`, cache on with `--baseline-watchers`, cache off with
//! `--baseline-watchers` (and with `--watchers` when `--off-at-full`). `--before PATH` adds the
//! cache-on sides once more on another server binary (e.g. the build of an older commit).
//!
//! Each measurement: the ConfigMaps `cm-00000`.. (`--objects`, each about 1 KiB: a 1,024-byte
//! PUT body) exist; the watchers open `?watch=1&resourceVersion=<a list's RV>` — one HTTP/1.1
//! connection each, the chunked stream of JSON lines client-go and kubectl read — and wait
//! until every response's headers arrived; then `--writers` connections PUT updates, the
//! `i`-th due at `i / rate` seconds (each writer takes every `writers`-th slot and sends at
//! once when it is behind), for `--seconds`. Every update carries the writer's send time
//! (nanoseconds on the benchmark's clock, taken just before the request is written) in the
//! annotation `fanout.apistore.io/sent`; a watcher subtracts it from the time it has parsed
//! the event's line. So a latency includes: the PUT's way through the server (decode,
//! managedFields, the sled write), the store's watch, the watch cache's dispatch (when on),
//! the HTTP watch handler, loopback TCP, and the client reading and parsing the line (with the
//! client's own scheduling delay on a busy machine). The PUT's own latency (send to response)
//! is printed beside it.
//!
//! Gaps: every acknowledged update's resourceVersion (from its response) must arrive at every
//! watcher, in increasing order; a missing one is an event lost, one at or below the previous
//! is out of order. After the writers stop, each watcher is given up to 10 s to catch up with
//! the last acknowledged update.
//!
//! CPU: utime + stime from `/proc/<pid>/stat` of this process (the client: watchers and
//! writers) and of the server, over the writing window, in cores; "others" is the rest of the
//! machine's busy time (`/proc/stat`) in that window (other work sharing the machine). CPU per
//! event: the server's (and this process's) CPU time from the first write until the last
//! watcher is done, divided by the events delivered — the figure that does not depend on how
//! busy the machine is.
//!
//! The latency distribution (CDF per side) is drawn into `--svg` (default
//! `target/watch_fanout.svg`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpStream;
use tokio::sync::watch;

#[allow(dead_code)] // watch_fanout uses the server start-up and the median only
mod common;
use common::{default_binary, median, spawn_binary, Spawned};

/// The annotation carrying the writer's send time.
const SENT_ANNOTATION: &str = "fanout.apistore.io/sent";
/// The size of every PUT body.
const BODY_BYTES: usize = 1024;
/// How long watchers may take to catch up after the writers stopped.
const DRAIN: Duration = Duration::from_secs(10);

struct Options {
    watchers: usize,
    baseline_watchers: usize,
    off_at_full: bool,
    rate: u64,
    seconds: u64,
    rounds: usize,
    objects: usize,
    writers: usize,
    svg: PathBuf,
    binary: Option<PathBuf>,
    before: Option<PathBuf>,
}

fn parse() -> Result<Options, String> {
    let mut options = Options {
        watchers: 1000,
        baseline_watchers: 100,
        off_at_full: false,
        rate: 1000,
        seconds: 10,
        rounds: 3,
        objects: 1000,
        writers: 32,
        svg: PathBuf::from("target/watch_fanout.svg"),
        binary: None,
        before: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--watchers" => options.watchers = number(value()?)?.max(1),
            "--baseline-watchers" => options.baseline_watchers = number(value()?)?,
            "--off-at-full" => options.off_at_full = true,
            "--rate" => options.rate = number(value()?)?.max(1) as u64,
            "--seconds" => options.seconds = number(value()?)?.max(1) as u64,
            "--rounds" => options.rounds = number(value()?)?.max(1),
            "--objects" => options.objects = number(value()?)?.max(1),
            "--writers" => options.writers = number(value()?)?.max(1),
            "--svg" => options.svg = value()?.into(),
            "--binary" => options.binary = Some(value()?.into()),
            "--before" => options.before = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A server this benchmark started (SIGTERM on drop) and its address.
struct Server {
    spawned: Spawned,
    addr: SocketAddr,
}

fn start_server(binary: &Path, cache: bool) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data").display().to_string();
    let args =
        ["--backend".to_owned(), "sled".to_owned(), "--data-dir".to_owned(), data, format!("--watch-cache={cache}")];
    let (port, spawned) = spawn_binary(binary, &args, dir)?;
    Ok(Server { spawned, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client connections (hyper): one per watcher, one per writer

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

fn request(method: &str, addr: SocketAddr, path: &str, body: Vec<u8>) -> Result<hyper::Request<Full<Bytes>>, String> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())
}

/// Sends a request and reads the whole answer: (status, body).
async fn call(sender: &mut Sender, req: hyper::Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

/// The first `"<field>":"<digits>"` of `json`, as a number.
fn number_field(json: &[u8], finder: &memmem::Finder<'_>) -> Option<u64> {
    let start = finder.find(json)? + finder.needle().len();
    let digits = json[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&json[start..start + digits]).ok()?.parse().ok()
}

fn rv_finder() -> memmem::Finder<'static> {
    memmem::Finder::new(b"\"resourceVersion\":\"")
}

/// A ConfigMap PUT/POST body of exactly [`BODY_BYTES`] bytes (the filler absorbs the rest).
fn configmap_body(namespace: &str, name: &str, sent: u64) -> Vec<u8> {
    let doc = |fill: usize| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{namespace}","annotations":{{"{SENT_ANNOTATION}":"{sent:020}"}}}},"data":{{"value":"{}"}}}}"#,
            "x".repeat(fill)
        )
    };
    let overhead = doc(0).len();
    doc(BODY_BYTES.saturating_sub(overhead)).into_bytes()
}

fn name_of(index: usize) -> String {
    format!("cm-{index:05}")
}

async fn wait_ready(addr: SocketAddr) -> Result<(), String> {
    for _ in 0..600 {
        if let Ok(mut sender) = connect(addr).await {
            if let Ok((200, _)) = call(&mut sender, request("GET", addr, "/readyz", Vec::new())?).await {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{addr} did not become ready"))
}

/// Creates the namespace and the ConfigMaps the writers update.
async fn seed(addr: SocketAddr, namespace: &str, objects: usize) -> Result<(), String> {
    let mut sender = connect(addr).await?;
    let body = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{namespace}"}}}}"#);
    let (status, answer) = call(&mut sender, request("POST", addr, "/api/v1/namespaces", body.into_bytes())?).await?;
    if status != 201 {
        return Err(format!("creating namespace {namespace}: {status} {}", String::from_utf8_lossy(&answer)));
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (next, namespace) = (next.clone(), namespace.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let path = format!("/api/v1/namespaces/{namespace}/configmaps");
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed) as usize;
                if index >= objects {
                    return Ok::<_, String>(());
                }
                let body = configmap_body(&namespace, &name_of(index), 0);
                let (status, answer) = call(&mut sender, request("POST", addr, &path, body)?).await?;
                if status != 201 {
                    return Err(format!("create answered {status}: {}", String::from_utf8_lossy(&answer)));
                }
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log buckets 1 % wide from 1 µs

const BUCKETS: usize = 2048;
const GROWTH: f64 = 1.01;

#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    max_us: u64,
    total: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram { counts: vec![0; BUCKETS], max_us: 0, total: 0 }
    }

    fn record(&mut self, us: u64) {
        let index = if us <= 1 { 0 } else { ((us as f64).ln() / GROWTH.ln()) as usize };
        self.counts[index.min(BUCKETS - 1)] += 1;
        self.max_us = self.max_us.max(us);
        self.total += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
        self.total += other.total;
    }

    /// The upper bound of bucket `index`, in ms.
    fn bound_ms(index: usize) -> f64 {
        GROWTH.powi(index as i32 + 1) / 1000.0
    }

    /// The latency below which a fraction `p` of the samples lie, in ms (1 % resolution).
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let wanted = ((self.total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Histogram::bound_ms(index).min(self.max_us as f64 / 1000.0);
            }
        }
        self.max_us as f64 / 1000.0
    }

    /// (latency ms, fraction at or below it) for the non-empty buckets.
    fn cdf(&self) -> Vec<(f64, f64)> {
        let mut seen = 0;
        let mut points = Vec::new();
        for (index, count) in self.counts.iter().enumerate() {
            if *count > 0 {
                seen += count;
                points.push((Histogram::bound_ms(index), seen as f64 / self.total.max(1) as f64));
            }
        }
        points
    }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

/// utime + stime of a process, in seconds (clock ticks of 100 Hz, Linux's USER_HZ).
fn process_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0.0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After the command: state is field 3; utime 14 and stime 15 → indexes 11 and 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Busy seconds of the whole machine (all CPUs) from `/proc/stat`.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return 0.0 };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = values.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    busy as f64 / 100.0
}

struct CpuMark {
    at: Instant,
    client: f64,
    server: f64,
    machine: f64,
}

impl CpuMark {
    fn take(server_pid: u32) -> Self {
        CpuMark {
            at: Instant::now(),
            client: process_cpu(std::process::id()),
            server: process_cpu(server_pid),
            machine: machine_busy(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One measurement

/// What one watcher saw.
struct Seen {
    /// resourceVersions in the order they arrived.
    revisions: Vec<u64>,
    latency: Histogram,
    out_of_order: u64,
    /// Lines that were not a MODIFIED event with both numbers (ERROR, unparsable).
    bad_lines: u64,
    /// The stream ended before the watcher caught up and could not be resumed.
    ended_early: bool,
    /// Watches resumed after the server ended the stream early.
    resumed: u64,
}

/// Shared state of one measurement's clients.
struct Run {
    addr: SocketAddr,
    namespace: String,
    origin: Instant,
    /// The last acknowledged revision once the writers stopped (u64::MAX before).
    target: watch::Receiver<u64>,
    /// Ends every watcher (the drain time is over).
    stop: watch::Receiver<bool>,
}

impl Run {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// Starts a watch from `revision`: the connection and the response body once the response's
/// headers arrived (the server has registered the watch).
async fn start_watch(run: &Run, revision: u64, timeout: u64) -> Result<(Sender, hyper::body::Incoming), String> {
    let mut sender = connect(run.addr).await?;
    let path = format!(
        "/api/v1/namespaces/{}/configmaps?watch=1&resourceVersion={revision}&timeoutSeconds={timeout}",
        run.namespace
    );
    sender.ready().await.map_err(|e| e.to_string())?;
    let response =
        sender.send_request(request("GET", run.addr, &path, Vec::new())?).await.map_err(|e| e.to_string())?;
    if response.status() != 200 {
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(format!("watch answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok((sender, response.into_body()))
}

/// Opens a watch from `revision` (Ok once it is registered), then reads it until it has the
/// target revision or is stopped. A stream the server ends early (the watch cache terminates
/// a watcher that does not keep up, as kube's does) is resumed from the last revision
/// received, as client-go's reflector does; the resumption is counted.
async fn open_watch(
    run: Arc<Run>,
    revision: u64,
    timeout: u64,
) -> Result<impl std::future::Future<Output = Seen>, String> {
    let (sender, mut body) = start_watch(&run, revision, timeout).await?;
    Ok(async move {
        let mut connection = sender;
        let mut failed = false;
        let rv = rv_finder();
        let sent = memmem::Finder::new(b"\"fanout.apistore.io/sent\":\"").into_owned();
        let mut seen = Seen {
            revisions: Vec::with_capacity(16 * 1024),
            latency: Histogram::new(),
            out_of_order: 0,
            bad_lines: 0,
            ended_early: false,
            resumed: 0,
        };
        let mut carry: Vec<u8> = Vec::new();
        let mut target = run.target.clone();
        let mut stop = run.stop.clone();
        let mut last = 0u64;
        loop {
            if last >= *target.borrow() || *stop.borrow() {
                break;
            }
            // Biased: while frames are ready the two signals are not polled (no registration
            // on their shared channels per frame, only when the watcher waits).
            let frame = tokio::select! {
                biased;
                frame = body.frame() => frame,
                _ = target.changed() => continue,
                _ = stop.changed() => break,
            };
            let data = match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Some(Err(_)) | None => {
                    // Resume from the last revision received (only whole lines count).
                    carry.clear();
                    match start_watch(&run, last.max(revision), timeout).await {
                        Ok((sender, resumed)) => {
                            (connection, body) = (sender, resumed);
                            seen.resumed += 1;
                            continue;
                        }
                        Err(_) => {
                            seen.ended_early = true;
                            break;
                        }
                    }
                }
            };
            let mut process = |line: &[u8], seen: &mut Seen| {
                let now = run.now_ns();
                match (line.starts_with(b"{\"type\":\"MODIFIED\"")
                    || memmem::find(line, b"\"type\":\"MODIFIED\"").is_some())
                .then(|| (number_field(line, &rv), number_field(line, &sent)))
                {
                    Some((Some(revision), Some(sent))) => {
                        if revision <= last {
                            seen.out_of_order += 1;
                        }
                        last = last.max(revision);
                        seen.revisions.push(revision);
                        seen.latency.record(now.saturating_sub(sent) / 1000);
                    }
                    _ => {
                        seen.bad_lines += 1;
                        // An ERROR event (e.g. 410: the revision is gone): no resuming.
                        failed |= memmem::find(line, b"\"type\":\"ERROR\"").is_some();
                    }
                }
            };
            let mut rest: &[u8] = &data;
            if !carry.is_empty() {
                match memchr::memchr(b'\n', rest) {
                    Some(end) => {
                        carry.extend_from_slice(&rest[..end]);
                        let line = std::mem::take(&mut carry);
                        process(&line, &mut seen);
                        rest = &rest[end + 1..];
                    }
                    None => {
                        carry.extend_from_slice(rest);
                        continue;
                    }
                }
            }
            while let Some(end) = memchr::memchr(b'\n', rest) {
                if end > 0 {
                    process(&rest[..end], &mut seen);
                }
                rest = &rest[end + 1..];
            }
            carry.extend_from_slice(rest);
            if failed {
                seen.ended_early = true;
                break;
            }
        }
        drop(connection);
        seen
    })
}

/// What the writers did.
struct Written {
    /// Acknowledged revisions, ascending.
    revisions: Vec<u64>,
    latency: Histogram,
    errors: u64,
}

async fn write(run: Arc<Run>, writers: usize, objects: usize, rate: u64, seconds: u64) -> Result<Written, String> {
    let total = rate * seconds;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let run = run.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(run.addr).await?;
            let rv = rv_finder();
            let path = format!("/api/v1/namespaces/{}/configmaps/", run.namespace);
            let mut revisions = Vec::new();
            let mut latency = Histogram::new();
            let mut errors = 0u64;
            let mut slot = writer as u64;
            while slot < total {
                tokio::time::sleep_until(start + Duration::from_nanos(slot * 1_000_000_000 / rate)).await;
                let name = name_of(slot as usize % objects);
                let sent = run.now_ns();
                let body = configmap_body(&run.namespace, &name, sent);
                match call(&mut sender, request("PUT", run.addr, &format!("{path}{name}"), body)?).await {
                    Ok((200, answer)) => match number_field(&answer, &rv) {
                        Some(revision) => revisions.push(revision),
                        None => errors += 1,
                    },
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        sender = connect(run.addr).await?;
                    }
                }
                latency.record((run.now_ns() - sent) / 1000);
                slot += writers as u64;
            }
            Ok::<_, String>((revisions, latency, errors))
        }));
    }
    let mut written = Written { revisions: Vec::new(), latency: Histogram::new(), errors: 0 };
    for task in tasks {
        let (revisions, latency, errors) = task.await.map_err(|e| e.to_string())??;
        written.revisions.extend(revisions);
        written.latency.merge(&latency);
        written.errors += errors;
    }
    written.revisions.sort_unstable();
    Ok(written)
}

/// The figures of one measurement.
#[derive(Clone)]
struct Figures {
    latency: Histogram,
    write_latency: Histogram,
    delivered: u64,
    delivered_per_s: f64,
    writes_per_s: f64,
    write_errors: u64,
    lost: u64,
    out_of_order: u64,
    bad_lines: u64,
    ended_early: usize,
    resumed: u64,
    client_cores: f64,
    server_cores: f64,
    other_cores: f64,
    /// Server CPU (utime + stime, from the first write to the last watcher done, PUTs
    /// included) per event delivered, in µs: independent of the machine's load.
    server_us_per_event: f64,
    /// The same for this process (the watchers' reading and parsing, and the writers).
    client_us_per_event: f64,
}

async fn measure(server: &Server, namespace: &str, options: &Options, watchers: usize) -> Result<Figures, String> {
    let addr = server.addr;
    // The revision to watch from: a consistent list's.
    let mut sender = connect(addr).await?;
    let list_path = format!("/api/v1/namespaces/{namespace}/configmaps?limit=1");
    let (status, list) = call(&mut sender, request("GET", addr, &list_path, Vec::new())?).await?;
    if status != 200 {
        return Err(format!("list answered {status}"));
    }
    let revision = number_field(&list, &rv_finder()).ok_or("the list has no resourceVersion")?;
    let (target_sender, target) = watch::channel(u64::MAX);
    let (stop_sender, stop) = watch::channel(false);
    let run = Arc::new(Run { addr, namespace: namespace.to_owned(), origin: Instant::now(), target, stop });
    // Open every watch (64 at a time), then start reading them all.
    let timeout = options.seconds + DRAIN.as_secs() + 60;
    let mut opened = Vec::with_capacity(watchers);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for _ in 0..watchers {
        pending.push(open_watch(run.clone(), revision, timeout));
        if pending.len() >= 64 {
            opened.push(pending.next().await.ok_or("no watch")??);
        }
    }
    while let Some(watch) = pending.next().await {
        opened.push(watch?);
    }
    let readers: Vec<_> = opened.into_iter().map(tokio::spawn).collect();
    let before = CpuMark::take(server.spawned.pid());
    let written = write(run.clone(), options.writers, options.objects, options.rate, options.seconds).await?;
    let after = CpuMark::take(server.spawned.pid());
    let write_window = after.at.duration_since(before.at).as_secs_f64();
    let _ = target_sender.send(written.revisions.last().copied().unwrap_or(0));
    let drain = tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        let _ = stop_sender.send(true);
        stop_sender
    });
    let mut seen = Vec::with_capacity(watchers);
    for reader in readers {
        seen.push(reader.await.map_err(|e| e.to_string())?);
    }
    let finished = run.origin.elapsed();
    let end = CpuMark::take(server.spawned.pid());
    drain.abort();
    let mut figures = Figures {
        latency: Histogram::new(),
        write_latency: written.latency.clone(),
        delivered: 0,
        delivered_per_s: 0.0,
        writes_per_s: written.revisions.len() as f64 / write_window,
        write_errors: written.errors,
        lost: 0,
        out_of_order: 0,
        bad_lines: 0,
        ended_early: 0,
        resumed: 0,
        client_cores: (after.client - before.client) / write_window,
        server_cores: (after.server - before.server) / write_window,
        other_cores: 0.0,
        server_us_per_event: 0.0,
        client_us_per_event: 0.0,
    };
    figures.other_cores =
        ((after.machine - before.machine) / write_window - figures.client_cores - figures.server_cores).max(0.0);
    for watcher in &mut seen {
        figures.latency.merge(&watcher.latency);
        figures.delivered += watcher.revisions.len() as u64;
        figures.out_of_order += watcher.out_of_order;
        figures.bad_lines += watcher.bad_lines;
        figures.ended_early += usize::from(watcher.ended_early);
        figures.resumed += watcher.resumed;
        watcher.revisions.sort_unstable();
        watcher.revisions.dedup();
        figures.lost += missing(&written.revisions, &watcher.revisions);
    }
    // Delivered per second: every event received, over the time from the first write's slot
    // to the moment the last watcher finished.
    let span = finished.as_secs_f64() - before.at.duration_since(run.origin).as_secs_f64();
    figures.delivered_per_s = figures.delivered as f64 / span.max(f64::MIN_POSITIVE);
    let per_event = |cpu: f64| cpu * 1e6 / figures.delivered.max(1) as f64;
    figures.server_us_per_event = per_event(end.server - before.server);
    figures.client_us_per_event = per_event(end.client - before.client);
    Ok(figures)
}

/// How many of `wanted` (ascending) are not in `got` (ascending, deduplicated).
fn missing(wanted: &[u64], got: &[u64]) -> u64 {
    let mut got = got.iter().peekable();
    let mut lost = 0;
    for w in wanted {
        while got.next_if(|g| **g < *w).is_some() {}
        if got.next_if(|g| **g == *w).is_none() {
            lost += 1;
        }
    }
    lost
}

// ---------------------------------------------------------------------------------------------
// Report

struct Side {
    label: String,
    cache: bool,
    watchers: usize,
    binary: PathBuf,
}

fn draw(path: &Path, sides: &[(String, Histogram)], target_ms: f64) -> Result<(), String> {
    use plotters::prelude::*;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let max_ms = sides.iter().map(|(_, h)| h.max_us as f64 / 1000.0).fold(target_ms * 2.0, f64::max);
    let min_ms = sides
        .iter()
        .filter_map(|(_, h)| h.cdf().first().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .clamp(0.01, target_ms / 10.0);
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Watch event delivery latency (CDF), watch cache on vs off", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((min_ms..max_ms * 1.1).log_scale(), 0.0..1.0)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .x_desc("latency from the writer's send to the watcher's parse (ms, log scale)")
        .y_desc("fraction of events delivered")
        .draw()
        .map_err(|e| e.to_string())?;
    let palette = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK];
    for (i, (label, histogram)) in sides.iter().enumerate() {
        let color = palette[i % palette.len()];
        let mut points = vec![(min_ms, 0.0)];
        points.extend(histogram.cdf());
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new(vec![(target_ms, 0.0), (target_ms, 1.0)], BLACK.stroke_width(1)))
        .map_err(|e| e.to_string())?
        .label(format!("target p99 < {target_ms} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

async fn run(options: Options) -> Result<(), String> {
    let binary = match &options.binary {
        Some(path) => path.clone(),
        None => default_binary()?,
    };
    let mut sides =
        vec![Side { label: "cache on".into(), cache: true, watchers: options.watchers, binary: binary.clone() }];
    if options.baseline_watchers > 0 && options.baseline_watchers != options.watchers {
        sides.push(Side {
            label: "cache on".into(),
            cache: true,
            watchers: options.baseline_watchers,
            binary: binary.clone(),
        });
        sides.push(Side {
            label: "cache off".into(),
            cache: false,
            watchers: options.baseline_watchers,
            binary: binary.clone(),
        });
    }
    if options.off_at_full || options.baseline_watchers == options.watchers {
        sides.push(Side {
            label: "cache off".into(),
            cache: false,
            watchers: options.watchers,
            binary: binary.clone(),
        });
    }
    if let Some(before) = &options.before {
        let extra: Vec<Side> = sides
            .iter()
            .filter(|s| s.cache)
            .map(|s| Side {
                label: format!("{} (before)", s.label),
                cache: true,
                watchers: s.watchers,
                binary: before.clone(),
            })
            .collect();
        sides.extend(extra);
    }
    // One server per (binary, cache) pair, seeded once.
    let mut servers: BTreeMap<(PathBuf, bool), (Server, String)> = BTreeMap::new();
    for side in &sides {
        let key = (side.binary.clone(), side.cache);
        if servers.contains_key(&key) {
            continue;
        }
        let server = start_server(&side.binary, side.cache)?;
        wait_ready(server.addr).await?;
        let namespace = format!("fanout-{}", servers.len());
        seed(server.addr, &namespace, options.objects).await?;
        servers.insert(key, (server, namespace));
    }
    println!(
        "watch fan-out: {} ConfigMaps of ~1 KiB, {} updates/s for {} s by {} writer connections, {} round(s), sides interleaved",
        options.objects, options.rate, options.seconds, options.writers, options.rounds
    );
    println!(
        "machine: {} CPUs, shared with other work (see the 'others' column)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results: Vec<Vec<Figures>> = sides.iter().map(|_| Vec::new()).collect();
    for round in 0..options.rounds {
        for (i, side) in sides.iter().enumerate() {
            let (server, namespace) = &servers[&(side.binary.clone(), side.cache)];
            let figures = measure(server, namespace, &options, side.watchers).await?;
            println!(
                "  round {round}: {:<18} {:>5} watchers: p50 {:>8.2} ms, p99 {:>8.2} ms, max {:>8.1} ms, {:>9.0} events/s delivered, lost {}, out of order {}, resumed {}, ended early {}, writes {:.0}/s (p99 {:.1} ms, {} errors), cpu client {:.2} server {:.2} others {:.2}, per event server {:.2} µs client {:.2} µs",
                side.label,
                side.watchers,
                figures.latency.percentile_ms(0.5),
                figures.latency.percentile_ms(0.99),
                figures.latency.max_us as f64 / 1000.0,
                figures.delivered_per_s,
                figures.lost,
                figures.out_of_order,
                figures.resumed,
                figures.ended_early,
                figures.writes_per_s,
                figures.write_latency.percentile_ms(0.99),
                figures.write_errors,
                figures.client_cores,
                figures.server_cores,
                figures.other_cores,
                figures.server_us_per_event,
                figures.client_us_per_event,
            );
            results[i].push(figures);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    println!();
    println!(
        "Medians of {} round(s), {} updates/s of ~1 KiB ConfigMaps for {} s:",
        options.rounds, options.rate, options.seconds
    );
    println!();
    println!("| side | watchers | p50 | p99 | max | events/s delivered | expected/s | lost | out of order | resumed watches | PUT p50 / p99 | client CPU | server CPU | others CPU | server CPU per event | client CPU per event |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut curves = Vec::new();
    for (side, figures) in sides.iter().zip(&results) {
        let pick = |f: &dyn Fn(&Figures) -> f64| median(&mut figures.iter().map(f).collect::<Vec<_>>());
        println!(
            "| {} | {} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} / {:.1} ms | {:.2} cores | {:.2} cores | {:.2} cores | {:.2} µs | {:.2} µs |",
            side.label,
            side.watchers,
            pick(&|f| f.latency.percentile_ms(0.5)),
            pick(&|f| f.latency.percentile_ms(0.99)),
            pick(&|f| f.latency.max_us as f64 / 1000.0),
            pick(&|f| f.delivered_per_s),
            pick(&|f| f.writes_per_s * side.watchers as f64),
            pick(&|f| f.lost as f64),
            pick(&|f| f.out_of_order as f64),
            pick(&|f| f.resumed as f64),
            pick(&|f| f.write_latency.percentile_ms(0.5)),
            pick(&|f| f.write_latency.percentile_ms(0.99)),
            pick(&|f| f.client_cores),
            pick(&|f| f.server_cores),
            pick(&|f| f.other_cores),
            pick(&|f| f.server_us_per_event),
            pick(&|f| f.client_us_per_event),
        );
        // The curve of the round with the median p99.
        let mut rounds: Vec<&Figures> = figures.iter().collect();
        rounds.sort_by(|a, b| a.latency.percentile_ms(0.99).total_cmp(&b.latency.percentile_ms(0.99)));
        if let Some(mid) = rounds.get(rounds.len() / 2) {
            curves.push((format!("{}, {} watchers", side.label, side.watchers), mid.latency.clone()));
        }
    }
    let totals: u64 = results.iter().flatten().map(|f| f.lost + f.out_of_order + f.bad_lines).sum();
    println!();
    println!("lost + out of order + unparsable lines, all rounds and sides: {totals}");
    draw(&options.svg, &curves, 100.0)?;
    println!("latency CDF: {}", options.svg.display());
    Ok(())
}

fn main() {
    // One runtime of two workers for every watcher and writer.
    common::run_main("watch_fanout", Some(2), parse, run);
}

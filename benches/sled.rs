//! apistore over sled beside raw sled, on the same data in the same run.
//!
//! "raw" = the plain sled operation plus the JSON encode/decode of the same ~1 KiB object
//! (as `serde_json::Value`), so each ratio shows what the framework itself costs
//! (revisions, MVCC history, metadata, key validation, ...). Non-durable mode on both sides
//! for create/get/update/list (sled's 500 ms background flush); durable creates at 1 and 64
//! concurrent writers show group commit.
//!
//! Run: `cargo bench --bench sled -- --warm-up-time 1 --measurement-time 3`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apistore::kv::KvBackend;
use apistore::storage::{GetOptions, ListOptions, ResponseMeta, Storage, WatchEvent};
use apistore::{Object, Store, StoreConfig};
use apistore_sled::{Durability, SledBackend, SledOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use tokio::runtime::Runtime;

const NAMESPACE: &str = "bench";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A ~1 KiB ConfigMap-like object.
fn object(name: &str) -> Object {
    Object::new("v1", "ConfigMap", NAMESPACE, name)
        .with_label("app", "bench")
        .with_label("tier", "storage")
        .with_field("data", json!({ "payload": "x".repeat(880), "counter": 0 }))
}

fn raw_value(name: &str) -> Value {
    serde_json::to_value(object(name)).expect("object as JSON")
}

fn key(name: &str) -> String {
    format!("/configmaps/{NAMESPACE}/{name}")
}

fn raw_key(name: &str) -> String {
    format!("/registry/configmaps/{NAMESPACE}/{name}")
}

fn raw_db() -> sled::Db {
    sled::Config::new().temporary(true).cache_capacity(256 * 1024 * 1024).open().expect("raw sled")
}

fn sled_store(durability: Durability, dir: Option<&std::path::Path>) -> Store {
    let options = match dir {
        Some(dir) => SledOptions::new(dir),
        None => SledOptions::temporary(),
    }
    .durability(durability)
    .compaction_window(0);
    let backend: Arc<dyn KvBackend> = Arc::new(SledBackend::open(options).expect("open sled backend"));
    Store::new(backend, StoreConfig::new("configmaps")).expect("store")
}

fn non_durable_store() -> Store {
    sled_store(Durability::Periodic(500), None)
}

fn fill(rt: &Runtime, store: &Store, db: &sled::Db, prefix: &str, count: usize) {
    rt.block_on(async {
        for i in 0..count {
            let name = format!("{prefix}-{i:06}");
            store.create(&key(&name), object(&name), 0).await.expect("fill store");
            db.insert(raw_key(&name), serde_json::to_vec(&raw_value(&name)).expect("encode")).expect("fill raw");
        }
    });
}

fn create(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("create_1KiB");
    group.throughput(Throughput::Elements(1));
    let db = raw_db();
    let template = raw_value("template");
    let next = AtomicU64::new(0);
    group.bench_function("raw_sled_insert", |b| {
        b.iter(|| {
            let name = format!("raw-{}", next.fetch_add(1, Ordering::Relaxed));
            let mut value = template.clone();
            value["metadata"]["name"] = Value::String(name.clone());
            db.insert(raw_key(&name), serde_json::to_vec(&value).expect("encode")).expect("insert");
        })
    });
    let store = non_durable_store();
    let template = object("template");
    group.bench_function("store_create", |b| {
        b.to_async(&rt).iter(|| {
            let name = format!("obj-{}", next.fetch_add(1, Ordering::Relaxed));
            let mut object = template.clone();
            object.metadata.name.clone_from(&name);
            let store = &store;
            async move { store.create(&key(&name), object, 0).await.expect("create") }
        })
    });
    group.finish();
}

fn get(c: &mut Criterion) {
    let rt = runtime();
    let store = non_durable_store();
    let db = raw_db();
    const N: usize = 10_000;
    fill(&rt, &store, &db, "get", N);
    let names: Vec<String> = (0..N).map(|i| format!("get-{i:06}")).collect();
    let mut group = c.benchmark_group("get_1KiB");
    group.throughput(Throughput::Elements(1));
    let next = AtomicU64::new(0);
    group.bench_function("raw_sled_get", |b| {
        b.iter(|| {
            let name = &names[next.fetch_add(7919, Ordering::Relaxed) as usize % N];
            let raw = db.get(raw_key(name)).expect("get").expect("present");
            let value: Value = serde_json::from_slice(&raw).expect("decode");
            value
        })
    });
    group.bench_function("store_get", |b| {
        b.to_async(&rt).iter(|| {
            let name = &names[next.fetch_add(7919, Ordering::Relaxed) as usize % N];
            let store = &store;
            async move { store.get(&key(name), GetOptions::default()).await.expect("get").expect("present") }
        })
    });
    group.finish();
}

fn update(c: &mut Criterion) {
    let rt = runtime();
    let store = non_durable_store();
    let db = raw_db();
    const N: usize = 1_000;
    fill(&rt, &store, &db, "upd", N);
    let names: Vec<String> = (0..N).map(|i| format!("upd-{i:06}")).collect();
    let mut group = c.benchmark_group("update_1KiB");
    group.throughput(Throughput::Elements(1));
    let next = AtomicU64::new(0);
    group.bench_function("raw_sled_get_modify_insert", |b| {
        b.iter(|| {
            let raw_key = raw_key(&names[next.fetch_add(1, Ordering::Relaxed) as usize % N]);
            let raw = db.get(&raw_key).expect("get").expect("present");
            let mut value: Value = serde_json::from_slice(&raw).expect("decode");
            let counter = value["data"]["counter"].as_i64().unwrap_or(0);
            value["data"]["counter"] = json!(counter + 1);
            db.insert(raw_key, serde_json::to_vec(&value).expect("encode")).expect("insert");
        })
    });
    group.bench_function("store_guaranteed_update", |b| {
        b.to_async(&rt).iter(|| {
            let name = &names[next.fetch_add(1, Ordering::Relaxed) as usize % N];
            let store = &store;
            async move {
                let mut bump = |mut object: Object, _: ResponseMeta| {
                    if let Some(data) = object.fields.get_mut("data") {
                        let counter = data["counter"].as_i64().unwrap_or(0);
                        data["counter"] = json!(counter + 1);
                    }
                    Ok((object, None))
                };
                store.guaranteed_update(&key(name), false, None, &mut bump, None).await.expect("update")
            }
        })
    });
    group.finish();
}

fn list(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("list_1KiB");
    group.sample_size(10);
    for count in [1_000usize, 10_000] {
        let store = non_durable_store();
        let db = raw_db();
        fill(&rt, &store, &db, "list", count);
        group.throughput(Throughput::Elements(count as u64));
        let raw_prefix = format!("/registry/configmaps/{NAMESPACE}/");
        group.bench_with_input(BenchmarkId::new("raw_sled_scan", count), &count, |b, &count| {
            b.iter(|| {
                let items: Vec<Value> = db
                    .scan_prefix(&raw_prefix)
                    .map(|entry| serde_json::from_slice(&entry.expect("scan").1).expect("decode"))
                    .collect();
                assert_eq!(items.len(), count);
                items
            })
        });
        let prefix = format!("/configmaps/{NAMESPACE}/");
        group.bench_with_input(BenchmarkId::new("store_get_list", count), &count, |b, &count| {
            b.to_async(&rt).iter(|| {
                let (store, prefix) = (&store, &prefix);
                async move {
                    let options = ListOptions { recursive: true, ..ListOptions::default() };
                    let list = store.get_list(prefix, options).await.expect("list");
                    assert_eq!(list.items.len(), count);
                    list
                }
            })
        });
    }
    group.finish();
}

fn watch(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watch_delivery_1KiB");
    group.throughput(Throughput::Elements(1));
    let db = raw_db();
    let template = raw_value("template");
    let next = AtomicU64::new(0);
    let raw_prefix = format!("/registry/configmaps/{NAMESPACE}/");
    let mut subscriber = db.watch_prefix(&raw_prefix);
    group.bench_function("raw_sled_insert_to_subscriber", |b| {
        b.iter(|| {
            let name = format!("raw-{}", next.fetch_add(1, Ordering::Relaxed));
            let mut value = template.clone();
            value["metadata"]["name"] = Value::String(name.clone());
            db.insert(raw_key(&name), serde_json::to_vec(&value).expect("encode")).expect("insert");
            match subscriber.next() {
                Some(sled::Event::Insert { value, .. }) => serde_json::from_slice::<Value>(&value).expect("decode"),
                other => panic!("unexpected sled event {other:?}"),
            }
        })
    });
    let store = non_durable_store();
    let template = object("template");
    let prefix = format!("/configmaps/{NAMESPACE}/");
    let mut stream =
        rt.block_on(store.watch(&prefix, ListOptions { recursive: true, ..ListOptions::default() })).expect("watch");
    let stream = tokio::sync::Mutex::new(&mut stream);
    group.bench_function("store_create_to_watch_event", |b| {
        b.to_async(&rt).iter(|| {
            let name = format!("obj-{}", next.fetch_add(1, Ordering::Relaxed));
            let mut object = template.clone();
            object.metadata.name.clone_from(&name);
            let (store, stream) = (&store, &stream);
            async move {
                store.create(&key(&name), object, 0).await.expect("create");
                match stream.lock().await.next().await {
                    Some(WatchEvent::Added(object)) => object,
                    other => panic!("unexpected watch event {other:?}"),
                }
            }
        })
    });
    group.finish();
}

fn durable_create(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable_create_1KiB");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    let next = Arc::new(AtomicU64::new(0));
    for writers in [1u64, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = sled_store(Durability::Immediate, Some(dir.path()));
        let template = object("template");
        group.bench_with_input(BenchmarkId::new("store_create_writers", writers), &writers, |b, &writers| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, template, next) = (store.clone(), template.clone(), next.clone());
                async move {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..writers)
                        .map(|w| {
                            let (store, template, next) = (store.clone(), template.clone(), next.clone());
                            let share = iters / writers + u64::from(w < iters % writers);
                            tokio::spawn(async move {
                                for _ in 0..share {
                                    let name = format!("durable-{}", next.fetch_add(1, Ordering::Relaxed));
                                    let mut object = template.clone();
                                    object.metadata.name.clone_from(&name);
                                    store.create(&key(&name), object, 0).await.expect("durable create");
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("writer task");
                    }
                    started.elapsed()
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = create, get, update, list, watch, durable_create
}
criterion_main!(benches);

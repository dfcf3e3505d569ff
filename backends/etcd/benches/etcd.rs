//! Raw etcd-client vs the apistore Store on the same etcd, in the same run.
//!
//! * create / get / update of a pod-sized JSON object at 1 and 64 requests in flight
//!   (raw: JSON encode/decode + the same etcd call kube-apiserver makes; framework:
//!   `Store::create`, `Store::get`, `Store::guaranteed_update` with the cached object);
//! * list of 10 000 objects (raw: one range + JSON decode of every value; framework:
//!   `Store::get_list`).
//!
//! etcd runs from the test harness on tmpfs, so client-side costs are not hidden behind
//! fsync. History is compacted before every benchmark so later ones do not read through
//! more revisions than earlier ones.
//!
//! Run: `cargo bench -p apistore-etcd --bench etcd -- --warm-up-time 1 --measurement-time 3`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apistore::storage::{GetOptions, ListOptions, ResponseMeta, Storage};
use apistore::{KvBackend, Object, Store, StoreConfig};
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::EtcdCluster;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use etcd_client::{Compare, CompareOp, GetOptions as RawGet, KvClient, Txn, TxnOp};
use futures::future::join_all;
use tokio::runtime::Runtime;

const LIST_SIZE: usize = 10_000;
const IN_FLIGHT: [usize; 2] = [1, 64];

struct Setup {
    _etcd: EtcdCluster,
    runtime: Runtime,
    raw: KvClient,
    store: Store,
    counter: AtomicU64,
}

fn pod(namespace: &str, name: &str) -> Object {
    Object::new("v1", "Pod", namespace, name)
        .with_label("app", "bench")
        .with_label("tier", "backend")
        .with_field(
            "spec",
            serde_json::json!({
                "nodeName": "node-1",
                "containers": [{
                    "name": "main",
                    "image": "registry.example.com/team/app:1.2.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "env": [{"name": "MODE", "value": "production"}, {"name": "LOG", "value": "info"}]
                }]
            }),
        )
        .with_field("status", serde_json::json!({"phase": "Running", "podIP": "10.0.0.1"}))
}

fn setup() -> Setup {
    let etcd = EtcdCluster::single().unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (raw, store) = runtime.block_on(async {
        let client = etcd_client::Client::connect(etcd.endpoints(), None).await.expect("raw client");
        let raw = client.kv_client().max_decoding_message_size(i32::MAX as usize);
        let mut options = EtcdOptions::new(etcd.endpoints());
        options.compaction_interval_secs = 0;
        options.timeout_ms = 30_000;
        let backend: Arc<dyn KvBackend> = Arc::new(EtcdBackend::new(options).expect("backend"));
        (raw, Store::new(backend, StoreConfig::new("pods")).expect("store"))
    });
    Setup { _etcd: etcd, runtime, raw, store, counter: AtomicU64::new(0) }
}

impl Setup {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Compacts all history so every benchmark starts from the same read cost.
    fn compact(&self) {
        self.runtime.block_on(async {
            let mut raw = self.raw.clone();
            let revision = raw.get("x", None).await.expect("get").header().expect("header").revision();
            let _ = raw.compact(revision, None).await;
        });
    }
}

async fn raw_create(raw: &KvClient, key: String, object: &Object) {
    let value = serde_json::to_vec(object).expect("encode");
    let txn = Txn::new().when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
        key.as_str(),
        value,
        None,
    )]);
    let response = raw.clone().txn(txn).await.expect("raw create");
    assert!(response.succeeded());
}

async fn raw_get(raw: &KvClient, key: &str) -> serde_json::Value {
    let response = raw.clone().get(key, None).await.expect("raw get");
    serde_json::from_slice(response.kvs()[0].value()).expect("decode")
}

fn bench_create(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("create");
    for n in IN_FLIGHT {
        group.throughput(Throughput::Elements(n as u64));
        s.compact();
        group.bench_with_input(BenchmarkId::new("raw", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all((0..n).map(|_| {
                    let name = format!("c{}", s.next());
                    let object = pod("bench", &name);
                    async move { raw_create(&s.raw, format!("/registry/pods/bench/{name}"), &object).await }
                }))
                .await;
            });
        });
        s.compact();
        group.bench_with_input(BenchmarkId::new("apistore", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all((0..n).map(|_| {
                    let name = format!("c{}", s.next());
                    let object = pod("bench", &name);
                    let store = &s.store;
                    async move { store.create(&format!("/pods/bench/{name}"), object, 0).await.expect("create") }
                }))
                .await;
            });
        });
    }
    group.finish();
}

fn bench_get(c: &mut Criterion, s: &Setup) {
    let names: Vec<String> = (0..64).map(|i| format!("g{i}")).collect();
    s.runtime.block_on(async {
        for name in &names {
            s.store.create(&format!("/pods/bench/{name}"), pod("bench", name), 0).await.expect("seed");
        }
    });
    let mut group = c.benchmark_group("get");
    for n in IN_FLIGHT {
        group.throughput(Throughput::Elements(n as u64));
        s.compact();
        group.bench_with_input(BenchmarkId::new("raw", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all(names[..n].iter().map(|name| {
                    let key = format!("/registry/pods/bench/{name}");
                    async move { raw_get(&s.raw, &key).await }
                }))
                .await
            });
        });
        s.compact();
        group.bench_with_input(BenchmarkId::new("apistore", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all(names[..n].iter().map(|name| async move {
                    s.store.get(&format!("/pods/bench/{name}"), GetOptions::default()).await.expect("get")
                }))
                .await
            });
        });
    }
    group.finish();
}

fn bench_update(c: &mut Criterion, s: &Setup) {
    let names: Vec<String> = (0..64).map(|i| format!("u{i}")).collect();
    let current: Vec<tokio::sync::Mutex<Object>> = s.runtime.block_on(async {
        let mut objects = Vec::new();
        for name in &names {
            let created = s.store.create(&format!("/pods/bench/{name}"), pod("bench", name), 0).await.expect("seed");
            objects.push(tokio::sync::Mutex::new(created));
        }
        objects
    });
    let mut group = c.benchmark_group("update");
    for n in IN_FLIGHT {
        group.throughput(Throughput::Elements(n as u64));
        s.compact();
        group.bench_with_input(BenchmarkId::new("raw", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all(names[..n].iter().zip(&current).map(|(name, slot)| async move {
                    let mut object = slot.lock().await;
                    let key = format!("/registry/pods/bench/{name}");
                    let revision: i64 = object.metadata.resource_version.parse().expect("rv");
                    object.metadata.resource_version.clear();
                    object.fields.insert("generation".into(), serde_json::json!(s.next()));
                    let value = serde_json::to_vec(&*object).expect("encode");
                    let txn = Txn::new()
                        .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, revision)])
                        .and_then([TxnOp::put(key.as_str(), value, None)])
                        .or_else([TxnOp::get(key.as_str(), None)]);
                    let response = s.raw.clone().txn(txn).await.expect("raw update");
                    assert!(response.succeeded());
                    let new_revision = response.header().expect("header").revision();
                    object.metadata.resource_version = new_revision.to_string();
                }))
                .await
            });
        });
        s.compact();
        group.bench_with_input(BenchmarkId::new("apistore", n), &n, |b, &n| {
            b.to_async(&s.runtime).iter(|| async {
                join_all(names[..n].iter().zip(&current).map(|(name, slot)| async move {
                    let mut object = slot.lock().await;
                    let generation = s.next();
                    let mut update = |mut o: Object, _: ResponseMeta| {
                        o.fields.insert("generation".into(), serde_json::json!(generation));
                        Ok((o, None))
                    };
                    let updated = s
                        .store
                        .guaranteed_update(
                            &format!("/pods/bench/{name}"),
                            false,
                            None,
                            &mut update,
                            Some(object.clone()),
                        )
                        .await
                        .expect("update");
                    *object = updated;
                }))
                .await
            });
        });
    }
    group.finish();
}

fn bench_list(c: &mut Criterion, s: &Setup) {
    s.runtime.block_on(async {
        for chunk in (0..LIST_SIZE).collect::<Vec<_>>().chunks(256) {
            join_all(chunk.iter().map(|i| {
                let name = format!("p{i:05}");
                let object = pod("list", &name);
                async move { raw_create(&s.raw, format!("/registry/pods/list/{name}"), &object).await }
            }))
            .await;
        }
    });
    s.compact();
    let mut group = c.benchmark_group("list");
    group.throughput(Throughput::Elements(LIST_SIZE as u64));
    group.bench_function(BenchmarkId::new("raw", LIST_SIZE), |b| {
        b.to_async(&s.runtime).iter(|| async {
            let response =
                s.raw.clone().get("/registry/pods/list/", Some(RawGet::new().with_prefix())).await.expect("raw range");
            let objects: Vec<serde_json::Value> =
                response.kvs().iter().map(|kv| serde_json::from_slice(kv.value()).expect("decode")).collect();
            assert_eq!(objects.len(), LIST_SIZE);
            objects
        });
    });
    group.bench_function(BenchmarkId::new("apistore", LIST_SIZE), |b| {
        b.to_async(&s.runtime).iter(|| async {
            let list = s
                .store
                .get_list("/pods/list", ListOptions { recursive: true, ..ListOptions::default() })
                .await
                .expect("list");
            assert_eq!(list.items.len(), LIST_SIZE);
            list
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let s = setup();
    bench_create(c, &s);
    bench_get(c, &s);
    bench_update(c, &s);
    bench_list(c, &s);
}

criterion_group! {
    name = etcd;
    config = Criterion::default().sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(etcd);

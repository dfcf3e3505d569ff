//! Watch cache vs store: `get` and `list` at RV "0", and an Exact list at the last write's
//! revision (the cache from its snapshot, as JSON bytes: what an API server writes), over the
//! same 1 000 pods on sled, in the same run. The store reads sled on every call; the cache
//! answers from memory.
//!
//! `cargo bench -p apistore --bench cacher`

use std::sync::Arc;
use std::time::Duration;

use apistore::cacher::{Cacher, CacherConfig};
use apistore::storage::{GetOptions, ListOptions, ResourceVersion, ResourceVersionMatch, Storage};
use apistore::{Object, Store, StoreConfig};
use apistore_sled::{SledBackend, SledOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

const PODS: usize = 1_000;

struct Fixture {
    store: Arc<dyn Storage>,
    cacher: Arc<dyn Storage>,
    /// The revision of the last create.
    last: u64,
    _dir: tempfile::TempDir,
}

fn fixture(runtime: &tokio::runtime::Runtime) -> Fixture {
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = SledBackend::open(SledOptions::new(dir.path().join("db"))).expect("open sled");
        let store = Store::new(Arc::new(backend), StoreConfig::new("pods")).expect("store");
        let store: Arc<dyn Storage> = Arc::new(store);
        let mut last = 0;
        for i in 0..PODS {
            let pod = Object::new("v1", "Pod", "bench", &format!("pod-{i:04}")).with_label("app", "bench").with_field(
                "spec",
                json!({"nodeName": format!("node-{}", i % 10), "containers": [{"name": "c", "image": "busybox"}]}),
            );
            let created = store.create(&format!("/pods/bench/pod-{i:04}"), pod, 0).await.expect("create");
            last = created.resource_version().expect("rv");
        }
        let cacher = Cacher::new(store.clone(), CacherConfig::new("pods")).expect("cacher");
        cacher.wait_until_ready(Duration::from_secs(30)).await.expect("cache ready");
        assert!(cacher.resource_version() >= last, "the cache listed every pod");
        Fixture { store, cacher: Arc::new(cacher), last, _dir: dir }
    })
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let f = fixture(&runtime);
    let get = GetOptions { resource_version: ResourceVersion::Any, ignore_not_found: false };
    let list = ListOptions { resource_version: ResourceVersion::Any, recursive: true, ..ListOptions::default() };

    let mut group = c.benchmark_group("get_rv0");
    for (name, storage) in [("store_sled", &f.store), ("cacher_over_store_sled", &f.cacher)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let object = storage.get("/pods/bench/pod-0500", get.clone()).await.expect("get");
                assert!(object.is_some());
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("list_rv0_1000");
    group.sample_size(20);
    for (name, storage) in [("store_sled", &f.store), ("cacher_over_store_sled", &f.cacher)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let items = storage.get_list("/pods/", list.clone()).await.expect("list").items;
                assert_eq!(items.len(), PODS);
            })
        });
    }
    group.finish();

    let exact = ListOptions {
        resource_version: ResourceVersion::at(f.last),
        resource_version_match: Some(ResourceVersionMatch::Exact),
        recursive: true,
        ..ListOptions::default()
    };
    let mut group = c.benchmark_group("list_exact_encoded_1000");
    group.sample_size(20);
    for (name, storage) in [("store_sled", &f.store), ("cacher_over_store_sled", &f.cacher)] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let list = storage.get_list_encoded("/pods/", exact.clone()).await.expect("exact list");
                assert_eq!((list.items.len(), list.resource_version), (PODS, f.last));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Raw etcd-client vs the apistore Store on the same etcd, in the same run (criterion).
//!
//! * create / get / update of a pod-sized JSON object at 1 and 64 requests in flight
//!   (n workers, 8 requests each per iteration; raw: JSON encode/decode + the same etcd call
//!   kube-apiserver makes, on the backend's own connection; framework: `Store::create`,
//!   `Store::get`, `Store::guaranteed_update` with the cached object);
//! * list of 10 000 objects (raw: one range + JSON decode of every value; framework:
//!   `Store::get_list`).
//!
//! etcd runs from the test harness on tmpfs, so client-side costs are not hidden behind
//! fsync. Before every benchmark the created objects are deleted and history is compacted
//! (physically), so each side starts from the same etcd state. On a busy machine the
//! two sides of a pair run minutes apart under different load; `benches/interleaved.rs`
//! alternates them round by round instead.
//!
//! Run: `cargo bench -p apistore-etcd --bench etcd -- --warm-up-time 1 --measurement-time 3`

mod workload;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use workload::{Setup, IN_FLIGHT, LIST_SIZE, OPS_PER_WORKER};

fn benches(c: &mut Criterion) {
    let s = Setup::new();
    for (op, raw, framework) in [("create", 0, 1), ("get", 2, 3), ("update", 4, 5)] {
        let mut group = c.benchmark_group(op);
        for n in IN_FLIGHT {
            group.throughput(Throughput::Elements((n * OPS_PER_WORKER) as u64));
            for (side, which) in [("raw", raw), ("apistore", framework)] {
                s.reset();
                group.bench_with_input(BenchmarkId::new(side, n), &n, |b, &n| {
                    b.to_async(&s.runtime).iter(|| async {
                        match which {
                            0 => s.raw_create(n).await,
                            1 => s.store_create(n).await,
                            2 => s.raw_get(n).await,
                            3 => s.store_get(n).await,
                            4 => s.raw_update(n).await,
                            _ => s.store_update(n).await,
                        }
                    });
                });
            }
        }
        group.finish();
    }
    s.reset();
    let mut group = c.benchmark_group("list");
    group.throughput(Throughput::Elements(LIST_SIZE as u64));
    group.bench_function(BenchmarkId::new("raw", LIST_SIZE), |b| b.to_async(&s.runtime).iter(|| s.raw_list()));
    group.bench_function(BenchmarkId::new("apistore", LIST_SIZE), |b| b.to_async(&s.runtime).iter(|| s.store_list()));
    group.finish();
}

criterion_group! {
    name = etcd;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(etcd);

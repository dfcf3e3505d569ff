//! The workloads both benchmark targets run: each operation once through raw etcd-client
//! (JSON encode/decode + the etcd call kube-apiserver makes) and once through the apistore
//! Store, on the same etcd (tmpfs, from the test harness).
//!
//! Both sides send their requests over the same gRPC connection: the raw client is the
//! backend's own (`EtcdBackend::kv_client`), so the connection cannot favour either side. On
//! its own a second connection moved the ratio by up to 4 % (`interleaved -- a/a`: raw
//! creates against raw creates on another connection), and by up to 18 % when a round was a
//! single burst of 64 requests; hence also the workers below, which keep `n` requests in
//! flight for 8 requests each.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use apistore::storage::{GetOptions, ListOptions, ResponseMeta, Storage};
use apistore::{KvBackend, Object, Store, StoreConfig};
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::{ClusterConfig, EtcdCluster};
use etcd_client::{CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions as RawGet, KvClient, Txn, TxnOp};
use futures::future::join_all;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, OnceCell};

/// Objects in the list benchmark.
pub const LIST_SIZE: usize = 10_000;
/// The etcd key prefix of the objects the create workloads make (`c<n>`).
const CREATED_PREFIX: &str = "/registry/pods/bench/c";
/// Rounds of every workload before any measurement.
const WARM_UP_ROUNDS: usize = 10;
/// Requests in flight.
pub const IN_FLIGHT: [usize; 2] = [1, 64];
/// Requests each in-flight slot sends one after the other in one measured round, so a round
/// is mostly steady load rather than one burst and its slowest request.
pub const OPS_PER_WORKER: usize = 8;

/// Keeps `n` requests in flight: `n` workers, worker `w` awaiting `op(w)`
/// [`OPS_PER_WORKER`] times in a row. `n × OPS_PER_WORKER` requests in all.
async fn in_flight<F, Fut>(n: usize, op: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    join_all((0..n).map(|w| {
        let op = &op;
        async move {
            for _ in 0..OPS_PER_WORKER {
                op(w).await;
            }
        }
    }))
    .await;
}

/// etcd, a runtime, a raw client and a Store, plus the objects the workloads use.
pub struct Setup {
    _etcd: EtcdCluster,
    pub runtime: Runtime,
    raw: KvClient,
    /// A raw client on a connection of its own, made on first use (only for the A/A
    /// comparison).
    other_connection: OnceCell<KvClient>,
    store: Store,
    counter: AtomicU64,
    get_names: Vec<String>,
    updated: Vec<(String, Mutex<Object>)>,
}

/// A pod-sized object (about 460 bytes of JSON).
pub fn pod(namespace: &str, name: &str) -> Object {
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

impl Setup {
    /// Starts etcd and seeds the objects of the get, update and list workloads.
    pub fn new() -> Self {
        // No raft snapshot during a run (etcd 3.4 snapshots every 100 000 writes, a pause that
        // lands on whichever side happens to be measured then): both sides see the same etcd.
        let config =
            ClusterConfig { extra_args: vec!["--snapshot-count=10000000".to_owned()], ..ClusterConfig::default() };
        let etcd = EtcdCluster::start(config).unwrap_or_else(|e| panic!("cannot start etcd: {e}"));
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (raw, store) = runtime.block_on(async {
            let mut options = EtcdOptions::new(etcd.endpoints());
            options.compaction_interval_secs = 0;
            options.timeout_ms = 30_000;
            let backend = Arc::new(EtcdBackend::new(options).expect("backend"));
            // The raw side uses the backend's own gRPC connection (see the module docs).
            let raw = backend.kv_client().await.expect("raw client");
            let backend: Arc<dyn KvBackend> = backend;
            (raw, Store::new(backend, StoreConfig::new("pods")).expect("store"))
        });
        let mut setup = Setup {
            _etcd: etcd,
            runtime,
            raw,
            other_connection: OnceCell::new(),
            store,
            counter: AtomicU64::new(0),
            get_names: (0..64).map(|i| format!("g{i}")).collect(),
            updated: Vec::new(),
        };
        setup.seed();
        setup.warm_up();
        setup
    }

    fn seed(&mut self) {
        let this = &*self;
        let updated = this.runtime.block_on(async move {
            for name in &this.get_names {
                this.store.create(&format!("/pods/bench/{name}"), pod("bench", name), 0).await.expect("seed get");
            }
            let mut updated = Vec::new();
            for i in 0..64 {
                let name = format!("u{i}");
                let created = this.store.create(&format!("/pods/bench/{name}"), pod("bench", &name), 0).await;
                updated.push((name, Mutex::new(created.expect("seed update"))));
            }
            for chunk in (0..LIST_SIZE).collect::<Vec<_>>().chunks(256) {
                join_all(chunk.iter().map(|i| {
                    let name = format!("p{i:05}");
                    let object = pod("list", &name);
                    async move { this.raw_put_new(format!("/registry/pods/list/{name}"), &object).await }
                }))
                .await;
            }
            updated
        });
        self.updated = updated;
    }

    /// The etcd process's pid.
    #[allow(dead_code)] // used by one of the two bench targets
    pub fn etcd_pid(&self) -> Option<u32> {
        self._etcd.pid(0)
    }

    /// Runs every workload on both sides a few times, then [`Setup::reset`]: the first
    /// measurement otherwise meets an etcd (and clients) still settling after the seeding.
    fn warm_up(&self) {
        self.runtime.block_on(async {
            for n in IN_FLIGHT {
                for _ in 0..WARM_UP_ROUNDS {
                    self.raw_create(n).await;
                    self.store_create(n).await;
                    self.raw_get(n).await;
                    self.store_get(n).await;
                    self.raw_update(n).await;
                    self.store_update(n).await;
                }
            }
            self.raw_list().await;
            self.store_list().await;
        });
        self.reset();
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Puts etcd back into the same state before every measurement: removes the objects the
    /// create workloads made (so each side starts from the same number of keys; otherwise
    /// the side measured second creates into a larger database), then compacts all history
    /// and waits until etcd has removed it (`physical`: otherwise etcd deletes the old
    /// revisions in the background, in batches, while the next measurement runs).
    pub fn reset(&self) {
        self.runtime.block_on(async {
            let mut raw = self.raw.clone();
            raw.delete(CREATED_PREFIX, Some(DeleteOptions::new().with_prefix())).await.expect("delete created");
            let revision = raw.get("x", None).await.expect("get").header().expect("header").revision();
            let _ = raw.compact(revision, Some(CompactionOptions::new().with_physical())).await;
        });
    }

    async fn raw_put_new(&self, key: String, object: &Object) {
        self.raw_put_new_on(self.raw.clone(), key, object).await
    }

    async fn raw_put_new_on(&self, mut client: KvClient, key: String, object: &Object) {
        let value = serde_json::to_vec(object).expect("encode");
        let txn = Txn::new().when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)]).and_then([TxnOp::put(
            key.as_str(),
            value,
            None,
        )]);
        assert!(client.txn(txn).await.expect("raw create").succeeded());
    }

    /// `n` requests in flight: `n` workers, each sending [`OPS_PER_WORKER`] creates one after
    /// the other, raw.
    pub async fn raw_create(&self, n: usize) {
        self.raw_create_on(&self.raw, n).await
    }

    /// The raw creates on a second connection of their own: beside [`Setup::raw_create`], an
    /// A/A comparison that shows what the connection alone changes.
    #[allow(dead_code)] // used by one of the two bench targets
    pub async fn raw_create_other_connection(&self, n: usize) {
        let connect = || async {
            let client = etcd_client::Client::connect(self._etcd.endpoints(), None).await.expect("raw client");
            client.kv_client()
        };
        self.raw_create_on(self.other_connection.get_or_init(connect).await, n).await
    }

    async fn raw_create_on(&self, client: &KvClient, n: usize) {
        in_flight(n, |_| async {
            let name = format!("c{}", self.next());
            self.raw_put_new_on(client.clone(), format!("/registry/pods/bench/{name}"), &pod("bench", &name)).await
        })
        .await;
    }

    /// The same creates through the Store.
    pub async fn store_create(&self, n: usize) {
        in_flight(n, |_| async {
            let name = format!("c{}", self.next());
            self.store.create(&format!("/pods/bench/{name}"), pod("bench", &name), 0).await.expect("create");
        })
        .await;
    }

    /// `n` requests in flight, worker `w` getting object `g<w>`, raw (get + JSON decode).
    pub async fn raw_get(&self, n: usize) {
        in_flight(n, |w| async move {
            let key = format!("/registry/pods/bench/{}", self.get_names[w]);
            let response = self.raw.clone().get(key, None).await.expect("raw get");
            serde_json::from_slice::<serde_json::Value>(response.kvs()[0].value()).expect("decode");
        })
        .await;
    }

    /// The same gets through the Store.
    pub async fn store_get(&self, n: usize) {
        in_flight(n, |w| async move {
            let key = format!("/pods/bench/{}", self.get_names[w]);
            self.store.get(&key, GetOptions::default()).await.expect("get");
        })
        .await;
    }

    /// `n` requests in flight, worker `w` updating object `u<w>` from its last known state, raw
    /// (encode + Txn on the known mod revision, Else Get).
    pub async fn raw_update(&self, n: usize) {
        in_flight(n, |w| async move {
            let (name, slot) = &self.updated[w];
            let mut object = slot.lock().await;
            let key = format!("/registry/pods/bench/{name}");
            let revision: i64 = object.metadata.resource_version.parse().expect("rv");
            object.metadata.resource_version.clear();
            object.fields.insert("generation".into(), serde_json::json!(self.next()));
            let value = serde_json::to_vec(&*object).expect("encode");
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(key.as_str(), value, None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let response = self.raw.clone().txn(txn).await.expect("raw update");
            assert!(response.succeeded());
            object.metadata.resource_version = response.header().expect("header").revision().to_string();
        })
        .await;
    }

    /// The same updates through `Store::guaranteed_update` with the cached object.
    pub async fn store_update(&self, n: usize) {
        in_flight(n, |w| async move {
            let (name, slot) = &self.updated[w];
            let mut object = slot.lock().await;
            let generation = self.next();
            let mut update = |mut o: Object, _: ResponseMeta| {
                o.fields.insert("generation".into(), serde_json::json!(generation));
                Ok((o, None))
            };
            let key = format!("/pods/bench/{name}");
            let cached = std::mem::take(&mut *object);
            let updated = self.store.guaranteed_update(&key, false, None, &mut update, Some(cached)).await;
            *object = updated.expect("update");
        })
        .await;
    }

    /// One range over the 10k objects + JSON decode of each, raw.
    pub async fn raw_list(&self) -> Vec<serde_json::Value> {
        let options = RawGet::new().with_prefix();
        let response = self.raw.clone().get("/registry/pods/list/", Some(options)).await.expect("raw range");
        let objects: Vec<serde_json::Value> =
            response.kvs().iter().map(|kv| serde_json::from_slice(kv.value()).expect("decode")).collect();
        assert_eq!(objects.len(), LIST_SIZE);
        objects
    }

    /// `Store::get_list` of the 10k objects.
    pub async fn store_list(&self) -> apistore::storage::ObjectList {
        let options = ListOptions { recursive: true, ..ListOptions::default() };
        let list = self.store.get_list("/pods/list", options).await.expect("list");
        assert_eq!(list.items.len(), LIST_SIZE);
        list
    }
}

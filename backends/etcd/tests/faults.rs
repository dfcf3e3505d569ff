//! Fault tests on a real three-member etcd cluster: the leader is SIGKILLed under write
//! load, and the whole cluster is stopped and started again, with one backend throughout.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apistore::storage::{GetOptions, ListOptions, ResourceVersion, Storage, WatchEvent};
use apistore::{Error, KvBackend, Object, Store, StoreConfig};
use apistore_etcd::{EtcdBackend, EtcdOptions};
use apistore_etcd_harness::EtcdCluster;

const WRITERS: usize = 4;

fn three() -> EtcdCluster {
    EtcdCluster::three().unwrap_or_else(|e| panic!("cannot start a three-member etcd cluster: {e}"))
}

fn store_over(cluster: &EtcdCluster, timeout_ms: u64) -> (Arc<EtcdBackend>, Store) {
    let mut options = EtcdOptions::new(cluster.endpoints());
    options.timeout_ms = timeout_ms;
    options.compaction_interval_secs = 0;
    let backend = Arc::new(EtcdBackend::new(options).expect("backend"));
    let kv: Arc<dyn KvBackend> = backend.clone();
    (backend, Store::new(kv, StoreConfig::new("pods")).expect("store"))
}

fn pod(name: &str) -> Object {
    Object::new("v1", "Pod", "ns", name)
}

/// What one writer saw: successful creates (name → RV) and when they completed.
#[derive(Default)]
struct Log {
    created: BTreeMap<String, u64>,
    completions: Vec<Instant>,
    errors: Vec<String>,
}

/// Makes member `target` the leader.
async fn move_leadership_to(cluster: &EtcdCluster, target: usize) {
    let leader = cluster.leader(Duration::from_secs(5)).expect("a leader");
    if leader == target {
        return;
    }
    let mut client = etcd_client::Client::connect([cluster.endpoint(target)], None).await.expect("client of target");
    let target_id = client.status().await.expect("status of target").header().expect("header").member_id();
    let mut current = etcd_client::Client::connect([cluster.endpoint(leader)], None).await.expect("client of leader");
    current.move_leader(target_id).await.expect("move leader");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.is_leader(target) {
        assert!(Instant::now() < deadline, "leadership did not move to m{target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// etcd-client alone keeps routing a share of requests to a dead member; the backend must
/// not: with the preferred member (a follower) dead, no call fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_follower_costs_no_failed_call() {
    let mut cluster = three();
    move_leadership_to(&cluster, 1).await;
    let (backend, store) = store_over(&cluster, 3000);
    store.create("/pods/ns/a", pod("a"), 0).await.expect("create");
    cluster.kill(0);
    for i in 0..100 {
        let got = store.get("/pods/ns/a", GetOptions::default()).await;
        assert!(matches!(got, Ok(Some(_))), "get {i} with one follower dead: {got:?}");
    }
    for i in 0..20 {
        let name = format!("after-{i}");
        store.create(&format!("/pods/ns/{name}"), pod(&name), 0).await.expect("create with one follower dead");
    }
    backend.health().await.expect("healthy with a majority up");
    let list =
        store.get_list("/pods/ns", ListOptions { recursive: true, ..ListOptions::default() }).await.expect("list");
    assert_eq!(list.items.len(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_under_writes_loses_nothing_acknowledged() {
    leader_kill_scenario(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_preferred_member_as_leader_fails_over() {
    leader_kill_scenario(true).await;
}

async fn leader_kill_scenario(leader_is_preferred_member: bool) {
    let mut cluster = three();
    if leader_is_preferred_member {
        move_leadership_to(&cluster, 0).await;
    }
    let (_backend, store) = store_over(&cluster, 3000);
    store.create("/pods/ns/before", pod("before"), 0).await.expect("create before the kill");
    let start_rv = store.current_resource_version().await.expect("current rv");

    // A watch opened before the kill, drained concurrently.
    let options =
        ListOptions { resource_version: ResourceVersion::at(start_rv), recursive: true, ..ListOptions::default() };
    let mut watch = store.watch("/pods/ns", options).await.expect("watch");
    let events: Arc<Mutex<Vec<WatchEvent>>> = Arc::default();
    let drained = {
        let events = events.clone();
        tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let is_error = matches!(event, WatchEvent::Error(_));
                events.lock().expect("events").push(event);
                if is_error {
                    break;
                }
            }
        })
    };

    // Four writers creating objects until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let logs: Vec<Arc<Mutex<Log>>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let mut writers = Vec::new();
    for (w, log) in logs.iter().enumerate() {
        let (store, stop, log) = (store.clone(), stop.clone(), log.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{w}-{n}");
                n += 1;
                match store.create(&format!("/pods/ns/{name}"), pod(&name), 0).await {
                    Ok(created) => {
                        let rv = created.resource_version().expect("rv");
                        let mut log = log.lock().expect("log");
                        log.created.insert(name, rv);
                        log.completions.push(Instant::now());
                    }
                    Err(e) => {
                        log.lock().expect("log").errors.push(e.to_string());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leader = cluster.leader(Duration::from_secs(5)).expect("a leader");
    cluster.kill(leader);
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer task");
    }

    // Writes resumed within 10 s of the kill.
    let first_after_kill = logs
        .iter()
        .filter_map(|log| log.lock().expect("log").completions.iter().copied().find(|t| *t > killed_at))
        .min()
        .expect("no create succeeded after the leader was killed");
    let resumed_after = first_after_kill - killed_at;
    assert!(resumed_after < Duration::from_secs(10), "writes resumed only {resumed_after:?} after the kill");

    // Every acknowledged create is readable.
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut before_kill = 0;
    for log in &logs {
        let log = log.lock().expect("log");
        before_kill += log.completions.iter().filter(|t| **t < killed_at).count();
        for (name, rv) in &log.created {
            acknowledged.insert(*rv, name.clone());
        }
    }
    assert!(before_kill > 0, "no create succeeded before the kill");
    for (rv, name) in &acknowledged {
        let got = store
            .get(&format!("/pods/ns/{name}"), GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("acknowledged create {name} (rv {rv}) is not readable: {e}"));
        assert_eq!(got.expect("exists").metadata.resource_version, rv.to_string());
    }

    // The watch delivered every acknowledged create exactly once in order, or ended with an error.
    let last_rv = *acknowledged.keys().next_back().expect("some creates");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ended, seen_last) = {
            let events = events.lock().expect("events");
            let ended = matches!(events.last(), Some(WatchEvent::Error(_)));
            let seen_last =
                events.iter().filter_map(|e| e.object()).any(|o| o.resource_version().ok() == Some(last_rv));
            (ended, seen_last)
        };
        if ended || seen_last {
            break;
        }
        assert!(Instant::now() < deadline, "the watch neither delivered every create nor ended with an error");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drained.abort();
    let events = events.lock().expect("events");
    let mut revisions = Vec::new();
    for event in events.iter() {
        match event {
            WatchEvent::Added(object) => revisions.push(object.resource_version().expect("rv")),
            WatchEvent::Error(e) => {
                assert!(
                    matches!(e, Error::Unavailable { .. } | Error::Timeout { .. } | Error::Expired { .. }),
                    "{e:?}"
                );
            }
            other => panic!("only creates happened, got {other:?}"),
        }
    }
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "events out of order or repeated: {revisions:?}");
    let delivered_up_to = revisions.last().copied().unwrap_or(start_rv);
    let expected: Vec<u64> =
        acknowledged.keys().copied().filter(|rv| *rv > start_rv && *rv <= delivered_up_to).collect();
    let delivered: Vec<u64> = revisions.iter().copied().filter(|rv| acknowledged.contains_key(rv)).collect();
    assert_eq!(delivered, expected, "the watch skipped an acknowledged create before its last event");
    eprintln!(
        "leader m{leader} killed; writes resumed after {resumed_after:?}; {} creates acknowledged ({before_kill} before the kill); \
         watch delivered {} events{}",
        acknowledged.len(),
        revisions.len(),
        if matches!(events.last(), Some(WatchEvent::Error(_))) { " then ended with an error" } else { "" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_down_then_up_with_the_same_backend() {
    let mut cluster = three();
    let timeout = Duration::from_millis(2000);
    let (backend, store) = store_over(&cluster, timeout.as_millis() as u64);
    store.create("/pods/ns/kept", pod("kept"), 0).await.expect("create");
    for i in 0..cluster.len() {
        cluster.kill(i);
    }
    for call in ["get", "create", "list", "health", "revision"] {
        let started = Instant::now();
        let result: apistore::Result<()> = match call {
            "get" => store.get("/pods/ns/kept", GetOptions::default()).await.map(|_| ()),
            "create" => store.create("/pods/ns/new", pod("new"), 0).await.map(|_| ()),
            "list" => {
                store.get_list("/pods/ns", ListOptions { recursive: true, ..ListOptions::default() }).await.map(|_| ())
            }
            "health" => backend.health().await,
            _ => backend.current_revision().await.map(|_| ()),
        };
        let elapsed = started.elapsed();
        match result {
            Err(Error::Unavailable { .. }) | Err(Error::Timeout { .. }) => {}
            other => panic!("{call} with every member down: expected Unavailable or Timeout, got {other:?}"),
        }
        assert!(elapsed < timeout + Duration::from_secs(1), "{call} took {elapsed:?} with a {timeout:?} timeout");
    }
    for i in 0..cluster.len() {
        cluster.start_member(i).expect("start member again");
    }
    cluster.wait_all_healthy().expect("cluster healthy again");
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = backend.health().await {
        assert!(Instant::now() < deadline, "backend did not recover: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = store.get("/pods/ns/kept", GetOptions::default()).await.expect("get after restart");
    assert_eq!(kept.expect("kept survives").metadata.name, "kept");
    store.create("/pods/ns/after", pod("after"), 0).await.expect("create after restart");
}

//! Clients that keep writing ConfigMaps through the API server (creates, then unconditional
//! updates) until stopped, recording the last acknowledged value of every object, each
//! write's latency and every failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

/// What one writer saw.
#[derive(Debug, Default)]
pub struct Written {
    /// Object name → the `data.v` of its last acknowledged write.
    pub acknowledged: HashMap<String, String>,
    /// Each acknowledged write: when it was sent and how long it took.
    pub latencies: Vec<(Instant, Duration)>,
    /// Writes that failed (code and body).
    pub failures: Vec<String>,
}

/// Writers writing until `stop` flips.
pub struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Written>>,
}

impl Writers {
    /// Starts `count` writers against `url`, in namespace `default`, each on its own
    /// `objects` names (`w<i>-<n>`).
    pub fn start(url: &str, count: usize, objects: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..count)
            .map(|w| {
                let (url, stop) = (url.to_owned(), stop.clone());
                tokio::spawn(async move { write(url, w, objects, stop).await })
            })
            .collect();
        Writers { stop, tasks }
    }

    /// Stops the writers and returns what each saw, merged.
    pub async fn stop(self) -> Written {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Written::default();
        for task in self.tasks {
            let written = task.await.expect("writer task");
            all.acknowledged.extend(written.acknowledged);
            all.latencies.extend(written.latencies);
            all.failures.extend(written.failures);
        }
        all
    }
}

async fn write(url: String, w: usize, objects: usize, stop: Arc<AtomicBool>) -> Written {
    let client = reqwest::Client::new();
    let collection = format!("{url}/api/v1/namespaces/default/configmaps");
    let mut written = Written::default();
    let mut round = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("w{w}-{}", round % objects);
        let value = format!("{w}-{round}");
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}});
        let sent = Instant::now();
        let request = if round < objects {
            client.post(&collection).json(&body)
        } else {
            client.put(format!("{collection}/{name}")).json(&body)
        };
        match request.timeout(Duration::from_secs(20)).send().await {
            Ok(reply) if reply.status().is_success() => {
                written.latencies.push((sent, sent.elapsed()));
                written.acknowledged.insert(name, value);
            }
            Ok(reply) => {
                let code = reply.status();
                written.failures.push(format!("{name}: {code} {}", reply.text().await.unwrap_or_default()));
            }
            Err(e) => written.failures.push(format!("{name}: {e}")),
        }
        round += 1;
    }
    written
}

/// The median and the largest of `durations`.
pub fn median_max(durations: &[Duration]) -> (Duration, Duration) {
    let mut sorted = durations.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    (median, sorted.last().copied().unwrap_or_default())
}

//! The `apistore` command against the API server's own store: objects written through the
//! server, backed up, restored into a new data directory, served again, and a
//! resourceVersion from before the restore answered with 410 Gone.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::Server;

fn apistore(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_apistore")).args(args).output().expect("running apistore");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn data(dir: &Path) -> String {
    dir.join("data").display().to_string()
}

const CM: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn backup_restore_status_round_trip_through_the_server() {
    let server = Server::start(&[]);
    let client = reqwest::Client::new();
    for i in 0..25 {
        let body = json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
        let reply = client.post(format!("{}{CM}", server.url)).json(&body).send().await.expect("create");
        assert_eq!(reply.status(), 201);
    }
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    let old_rv = list["metadata"]["resourceVersion"].as_str().expect("rv").to_owned();
    // The server holds the store: the command says to stop it.
    let backup = server.data_dir.path().join("backup.apistore").display().to_string();
    let (ok, _, err) = apistore(&["backup", "-o", &backup, "--data-dir", &data(server.data_dir.path())]);
    assert!(!ok && err.contains("stop it first"), "{err}");
    let dir = server.stop();
    let (ok, out, err) = apistore(&["backup", "-o", &backup, "--data-dir", &data(dir.path())]);
    assert!(ok, "{err}");
    assert!(out.contains("backed up"), "{out}");
    let restored = tempfile::tempdir().expect("tempdir");
    let (ok, out, err) = apistore(&["restore", "-i", &backup, "--data-dir", &data(restored.path())]);
    assert!(ok, "{err}");
    assert!(out.contains("restored"), "{out}");
    // A second restore into the same store is refused.
    let (ok, _, err) = apistore(&["restore", "-i", &backup, "--data-dir", &data(restored.path())]);
    assert!(!ok && err.contains("not empty"), "{err}");
    let (ok, out, err) = apistore(&["status", "--data-dir", &data(restored.path())]);
    assert!(ok, "{err}");
    let configmaps = out.lines().find(|l| l.starts_with("configmaps")).expect("configmaps row");
    assert_eq!(configmaps.split_whitespace().nth(1), Some("25"), "{out}");
    // The backend's space: bytes on disk (sled's generation directory) and no alarm.
    let on_disk = out.lines().find(|l| l.starts_with("on disk:")).expect("on disk line");
    let db_bytes: u64 = on_disk.split_whitespace().nth(2).expect("bytes").parse().expect("number");
    assert!(db_bytes > 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("alarms:") && l.ends_with("none")), "{out}");
    // The restored store serves the objects; revisions continue above the backup's.
    let server = Server::start_in(restored, &[]);
    let list: Value = client.get(format!("{}{CM}", server.url)).send().await.expect("list").json().await.expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(25));
    let new_rv: u64 = list["metadata"]["resourceVersion"].as_str().expect("rv").parse().expect("number");
    assert!(new_rv > old_rv.parse::<u64>().expect("number"), "{new_rv} vs {old_rv}");
    // An old resourceVersion: 410 Gone, never a silently different answer.
    let watch = client
        .get(format!("{}{CM}?watch=true&resourceVersion={old_rv}&timeoutSeconds=2", server.url))
        .send()
        .await
        .expect("watch");
    let code = watch.status().as_u16();
    let text = watch.text().await.unwrap_or_default();
    assert!(code == 410 || (text.contains("\"ERROR\"") && text.contains("410")), "{code}: {text}");
    let exact = client
        .get(format!("{}{CM}?resourceVersion={old_rv}&resourceVersionMatch=Exact", server.url))
        .send()
        .await
        .expect("list");
    assert_eq!(exact.status(), 410);
    // A corrupt backup: an error naming the line, nothing written.
    let text = std::fs::read_to_string(&backup).expect("backup");
    let corrupt = dir.path().join("corrupt.apistore");
    std::fs::write(&corrupt, text.replacen("cm-1", "cm-x", 1)).expect("write");
    let empty = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = apistore(&["restore", "-i", &corrupt.display().to_string(), "--data-dir", &data(empty.path())]);
    assert!(!ok && err.contains("checksum mismatch"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["backup", "restore", "status"] {
        let (ok, out, _) = apistore(&[sub, "--help"]);
        assert!(ok && out.contains("Usage"), "{sub}: {out}");
    }
    let (ok, _, err) = apistore(&["backup"]);
    assert!(!ok && err.contains("--output"), "{err}");
}

//! The real kubectl: server-side apply (`--server-side`, `--field-manager`, `--force-conflicts`)
//! and a CustomResourceDefinition applied with kubectl, to kube-apiserver's behaviour.
//!
//! Needs `kubectl` on PATH (or `KUBECTL=/path/to/kubectl`).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::kubectl::Kubectl;
use support::Server;

fn configmap(data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n{data}")
}

fn managers(object: &Value) -> Vec<(String, String, Value)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("").to_owned(),
                        e["fieldsV1"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_with_managers_and_conflicts() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    let out = k.ok_stdin(&["apply", "--server-side", "-f", "-"], Some(&configmap("  a: one\n  b: two\n")));
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    // Second apply: a changed, b removed (kubectl's manager is "kubectl").
    let out = k.ok_stdin(&["apply", "--server-side", "-f", "-"], Some(&configmap("  a: uno\n")));
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let object = k.json(&["get", "cm", "ssa", "--show-managed-fields"]);
    assert_eq!(object["data"], json!({"a": "uno"}), "the removed field is gone: {object}");
    assert_eq!(
        managers(&object),
        vec![("kubectl".to_owned(), "Apply".to_owned(), json!({"f:data": {"f:a": {}}}))],
        "{object}"
    );

    // A second manager changing a's value conflicts, naming the field and its owner.
    let stderr =
        k.fails(&["apply", "--server-side", "--field-manager", "other", "-f", "-"], Some(&configmap("  a: other\n")));
    assert!(stderr.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .data.a"#), "{stderr}");
    assert_eq!(k.json(&["get", "cm", "ssa"])["data"]["a"], "uno");

    // --force-conflicts takes the field over.
    let out = k.ok_stdin(
        &["apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", "-"],
        Some(&configmap("  a: other\n")),
    );
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let object = k.json(&["get", "cm", "ssa", "--show-managed-fields"]);
    assert_eq!(object["data"], json!({"a": "other"}));
    assert_eq!(
        managers(&object),
        vec![("other".to_owned(), "Apply".to_owned(), json!({"f:data": {"f:a": {}}}))],
        "kubectl lost its only field to other: {object}"
    );
}

const CRONTAB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                cronSpec:
                  type: string
                image:
                  type: string
                replicas:
                  type: integer
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
"#;

const CRONTAB: &str = r#"apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
  replicas: 1
"#;

#[test]
fn custom_resource_definition_through_kubectl_survives_a_restart() {
    let server = Server::start(&[]);
    let k = Kubectl::new(&server);
    // The CRD from https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
    let out = k.ok_stdin(&["apply", "-f", "-"], Some(CRONTAB_CRD));
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"), "{out}");
    let applied = Instant::now();
    loop {
        let got = k.run_with_stdin(&["get", "crontabs"], None);
        if got.status.success() {
            break;
        }
        assert!(
            applied.elapsed() < Duration::from_secs(1),
            "kubectl get crontabs still fails 1 s after the CRD was applied: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let crd = k.json(&["get", "crd", "crontabs.stable.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().cloned().unwrap_or_default();
    assert!(conditions.iter().any(|c| c["type"] == "Established" && c["status"] == "True"), "Established: {crd}");
    let resources = k.ok(&["api-resources", "--api-group", "stable.example.com"]);
    let row = resources.lines().find(|l| l.starts_with("crontabs")).unwrap_or_else(|| panic!("{resources}"));
    for column in ["ct", "stable.example.com/v1", "true", "CronTab"] {
        assert!(row.split_whitespace().any(|c| c == column), "api-resources row lacks {column}: {row}");
    }

    let out = k.ok_stdin(&["apply", "-f", "-"], Some(CRONTAB));
    assert!(out.contains("crontab.stable.example.com/my-new-cron-object created"), "{out}");
    let listed = k.ok(&["get", "ct"]);
    assert!(listed.contains("my-new-cron-object"), "{listed}");

    // The schema rejects a wrong type with 422.
    let wrong = CRONTAB.replace("my-new-cron-object", "wrong").replace("replicas: 1", "replicas: three");
    let stderr = k.fails(&["apply", "-f", "-", "-v=6"], Some(&wrong));
    assert!(
        stderr.contains(
            r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
        ),
        "{stderr}"
    );
    assert!(stderr.contains(" 422 "), "the server answered 422: {stderr}");
    assert!(stderr.contains(r#"The CronTab "wrong" is invalid"#), "{stderr}");

    // Everything survives a restart.
    let dir = server.stop();
    let server = Server::start_in(dir, &[]);
    let k = Kubectl::new(&server);
    let object = k.json(&["get", "crontab", "my-new-cron-object"]);
    assert_eq!(object["spec"]["image"], "my-awesome-cron-image", "{object}");
    assert_eq!(object["spec"]["replicas"], 1, "{object}");
    let resources = k.ok(&["api-resources", "--api-group", "stable.example.com"]);
    assert!(resources.contains("crontabs"), "{resources}");
    let stderr = k.fails(&["apply", "-f", "-"], Some(&wrong));
    assert!(stderr.contains("spec.replicas in body must be of type integer"), "the schema survives too: {stderr}");
}

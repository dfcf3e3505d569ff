//! Serving CustomResourceDefinitions: the controllers of apiextensions-apiserver, inline.
//!
//! CRDs are objects like any other (`apiextensions.k8s.io/v1` `customresourcedefinitions`,
//! stored through the StorageFactory). This module follows them: it lists every CRD at start
//! and then watches, and for each
//! - checks its names against what is served (kube's naming controller: `NamesAccepted`),
//! - opens the storage of its GroupResource through the factory (so the config can give a
//!   CRD's resource its own backend, prefix or encryption) and serves each served version
//!   (kube's establishing controller: `Established`), with a strategy built from the version's
//!   schema, subresources and printer columns,
//! - writes the CRD's status (accepted names, stored versions, conditions),
//! - and when the CRD is being deleted (`deletionTimestamp`, finalizer
//!   `customresourcecleanup.apiextensions.k8s.io`) stops creates, deletes every custom
//!   object, stops serving the resource and removes the CRD (kube's finalizer controller).

use std::sync::Arc;

use apistore::names;
use apistore::storage::{allow_all_deletions, DeleteOptions, ListOptions, WatchEvent};
use apistore::Object;
use serde_json::Value;

use crate::apiextensions::crd::{Crd, Scope};
use crate::apiextensions::status as crd_status;
use crate::clock;
use crate::registry::CustomResourceStrategy;
use crate::resources::Resource;
use crate::server::App;

/// The finalizer kube puts on a CRD being deleted until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The CRD resource of the table.
fn crd_resource(app: &App) -> Option<Arc<Resource>> {
    app.table.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
}

/// Serves every stored CRD (before returning, so a restarted server serves their resources
/// from its first request), then follows changes in a task until the server shuts down.
pub async fn start(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    let revision = sync(&app).await;
    tokio::spawn(follow(app, revision))
}

/// Reconciles every stored CRD; returns the revision of the list (None when it failed).
async fn sync(app: &App) -> Option<u64> {
    let crds = crd_resource(app)?;
    match crds.storage.get_list(&key(&crds), ListOptions { recursive: true, ..Default::default() }).await {
        Ok(list) => {
            for object in list.items {
                reconcile(app, &crds, crds.served(object)).await;
            }
            Some(list.resource_version)
        }
        Err(e) => {
            tracing::warn!("listing CustomResourceDefinitions: {e}");
            None
        }
    }
}

/// Watches CRDs from `revision`, relisting when the watch fails, until shutdown.
async fn follow(app: Arc<App>, mut revision: Option<u64>) {
    let Some(crds) = crd_resource(&app) else { return };
    let mut shutdown = app.shutdown.clone();
    while !*shutdown.borrow() {
        let Some(from) = revision else {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            revision = sync(&app).await;
            continue;
        };
        let options = ListOptions { resource_version: from.to_string(), recursive: true, ..Default::default() };
        let mut stream = match crds.storage.watch(&key(&crds), options).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!("watching CustomResourceDefinitions: {e}");
                revision = None;
                continue;
            }
        };
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                _ = shutdown.changed() => return,
            };
            match event {
                Some(WatchEvent::Added(object)) | Some(WatchEvent::Modified(object)) => {
                    reconcile(&app, &crds, crds.served(object)).await
                }
                Some(WatchEvent::Deleted(object)) => unserve(&app, &object.metadata.name),
                Some(WatchEvent::Bookmark(_)) => {}
                // A watch error (e.g. compaction) or the end of the stream: relist.
                Some(WatchEvent::Error(_)) | None => {
                    revision = sync(&app).await;
                    break;
                }
            }
        }
    }
}

fn key(crds: &Resource) -> String {
    names::list_key(&crds.storage_prefix, "").unwrap_or_default()
}

/// Brings the served resources and the CRD's status in line with the CRD.
async fn reconcile(app: &App, crds: &Arc<Resource>, object: Object) {
    let name = object.metadata.name.clone();
    let value = serde_json::to_value(&object).unwrap_or_default();
    let crd = match Crd::from_value(&value) {
        Ok(crd) => crd,
        Err(errors) => {
            tracing::warn!("CustomResourceDefinition {name} is not servable: {}", crate::validation::aggregate(&errors));
            return;
        }
    };
    if object.metadata.deletion_timestamp.is_some() {
        clean_up(app, crds, &crd, &name).await;
        return;
    }
    let conflicts = name_conflicts(app, &crd, &name);
    if conflicts.is_none() {
        if let Err(e) = serve(app, &crd, &name).await {
            tracing::warn!("serving CustomResourceDefinition {name}: {e}");
            return;
        }
    }
    let now = clock::rfc3339(clock::now_seconds());
    let status = crd_status::status(&crd, object.fields.get("status"), conflicts.as_ref(), &now);
    if object.fields.get("status") != Some(&status) {
        write_status(crds, &name, status).await;
    }
}

/// The names of `crd` that another served resource already uses (None: no conflict).
fn name_conflicts(app: &App, crd: &Crd, crd_name: &str) -> Option<crd_status::NameConflict> {
    let others: Vec<Arc<Resource>> = app
        .table
        .snapshot()
        .iter()
        .filter(|r| r.group == crd.group && r.crd.as_deref() != Some(crd_name))
        .cloned()
        .collect();
    let served: Vec<crd_status::ServedNames> = others
        .iter()
        .map(|r| crd_status::ServedNames {
            plural: r.plural.clone(),
            singular: r.singular.clone(),
            kind: r.kind.clone(),
            list_kind: r.list_kind(),
            short_names: r.short_names.clone(),
        })
        .collect();
    crd_status::name_conflict(crd, &served)
}

/// Serves every served version of `crd` (replacing what was served for it before).
async fn serve(app: &App, crd: &Crd, crd_name: &str) -> Result<(), String> {
    let (storage, storage_prefix) = {
        let mut provider = app.provider.lock().await;
        provider.storage(&crd.group, &crd.names.plural, true).await.map_err(|e| e.to_string())?
    };
    let storage_version = crd.storage_version().map(|v| v.name.clone()).unwrap_or_default();
    let resources: Vec<Arc<Resource>> = crd
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|version| {
            Arc::new(Resource {
                group: crd.group.clone(),
                version: version.name.clone(),
                kind: crd.names.kind.clone(),
                plural: crd.names.plural.clone(),
                singular: crd.names.singular.clone(),
                namespaced: crd.scope == Scope::Namespaced,
                short_names: crd.names.short_names.clone(),
                storage_prefix: storage_prefix.clone(),
                storage: storage.clone(),
                strategy: Arc::new(CustomResourceStrategy::new(crd, version, &storage_version)),
                custom: true,
                crd: Some(crd_name.to_owned()),
                terminating: Default::default(),
                ttl_seconds: 0,
            })
        })
        .collect();
    app.table.update(|table| {
        table.retain(|r| r.crd.as_deref() != Some(crd_name));
        table.extend(resources);
    });
    Ok(())
}

/// Stops serving the resources of CRD `crd_name`.
fn unserve(app: &App, crd_name: &str) {
    app.table.update(|table| table.retain(|r| r.crd.as_deref() != Some(crd_name)));
}

/// Writes `status` into the stored CRD.
async fn write_status(crds: &Arc<Resource>, name: &str, status: Value) {
    let Ok(key) = names::object_key(&crds.storage_prefix, "", name) else { return };
    let result = crds
        .storage
        .guaranteed_update(
            &key,
            false,
            None,
            &mut |mut existing, _| {
                existing.fields.insert("status".into(), status.clone());
                Ok((existing, None))
            },
            None,
        )
        .await;
    if let Err(e) = result {
        if !e.is_not_found() {
            tracing::warn!("writing the status of CustomResourceDefinition {name}: {e}");
        }
    }
}

/// kube's finalizer controller: every custom object of the CRD deleted, the resource no
/// longer served, the finalizer dropped and the CRD removed.
async fn clean_up(app: &App, crds: &Arc<Resource>, crd: &Crd, name: &str) {
    let served = app.table.snapshot().iter().find(|r| r.crd.as_deref() == Some(name)).cloned();
    if let Some(resource) = served {
        // Creates are refused from now on.
        resource.terminating.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = delete_all(&resource).await {
            tracing::warn!("deleting the objects of CustomResourceDefinition {name}: {e}");
            return;
        }
    } else if let Ok((storage, prefix)) = {
        let mut provider = app.provider.lock().await;
        provider.storage(&crd.group, &crd.names.plural, true).await
    } {
        // Not served (e.g. its names conflicted): its objects still go.
        let _ = delete_under(&storage, &prefix).await;
    }
    unserve(app, name);
    let Ok(key) = names::object_key(&crds.storage_prefix, "", name) else { return };
    if let Err(e) = crds.storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await {
        if !e.is_not_found() {
            tracing::warn!("removing CustomResourceDefinition {name}: {e}");
        }
    }
}

async fn delete_all(resource: &Resource) -> apistore::Result<()> {
    delete_under(&resource.storage, &resource.storage_prefix).await
}

async fn delete_under(storage: &apistore::storage::DynStorage, prefix: &str) -> apistore::Result<()> {
    let key = names::list_key(prefix, "")?;
    let list = storage.get_list(&key, ListOptions { recursive: true, ..Default::default() }).await?;
    for object in list.items {
        let key = names::object_key(prefix, &object.metadata.namespace, &object.metadata.name)?;
        match storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

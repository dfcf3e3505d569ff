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
//!
//! # Writes and a migration's cutover
//!
//! The controller writes storage outside any request (the CRD's status, the custom objects a
//! deleted CRD leaves, the CRD itself) and changes the served table. Each such step holds the
//! server's write gate ([`App::write_gate`]) shared, like a request, and looks the CRD
//! resource (and a custom resource's storage) up *after* taking it: a cutover, which holds
//! the gate exclusively, neither sees a controller write land on the source after its final
//! copy nor has its table switch undone by the controller, and a step that waited runs on the
//! storage the cutover switched to. A deleted CRD's objects go in batches of
//! [`DELETE_BATCH`], one gate hold each, so a cutover waits for one batch at most.

use std::sync::Arc;

use apistore::names;
use apistore::storage::{allow_all_deletions, DeleteOptions, ListOptions, Preconditions, ResourceVersion, WatchEvent};
use apistore::Object;
use serde_json::Value;

use crate::apiextensions::crd::{Crd, Scope};
use crate::apiextensions::status::{self as crd_status, Terminating};
use crate::clock;
use crate::registry::CustomResourceStrategy;
use crate::resources::Resource;
use crate::server::App;

/// Custom objects a deleted CRD's clean-up deletes per hold of the write gate.
pub const DELETE_BATCH: i64 = 100;

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
                reconcile(app, crds.served(object)).await;
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
    let mut shutdown = app.shutdown.clone();
    while !*shutdown.borrow() {
        // Looked up each time: a migration's cutover replaces the storage.
        let Some(crds) = crd_resource(&app) else { return };
        let mut retired = crds.retired.subscribe();
        let Some(from) = revision else {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
            revision = sync(&app).await;
            continue;
        };
        let options =
            ListOptions { resource_version: ResourceVersion::at(from), recursive: true, ..Default::default() };
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
                // The storage was replaced: list and watch the new one.
                _ = retired.wait_for(|retired| *retired) => None,
            };
            match event {
                Some(WatchEvent::Added(object)) | Some(WatchEvent::Modified(object)) => {
                    reconcile(&app, crds.served(object)).await
                }
                Some(WatchEvent::Deleted(object)) => {
                    let _gate = app.write_gate.read().await;
                    unserve(&app, &object.metadata.name)
                }
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

/// Brings the served resources and the CRD's status in line with the CRD (under the write
/// gate; a terminating CRD's clean-up takes it step by step).
async fn reconcile(app: &App, object: Object) {
    let name = object.metadata.name.clone();
    let mut value = serde_json::to_value(&object).unwrap_or_default();
    let crd = match Crd::parse(&value) {
        Ok(crd) => crd,
        Err(errors) => {
            tracing::warn!(
                "CustomResourceDefinition {name} is not servable: {}",
                crate::validation::aggregate(&errors)
            );
            return;
        }
    };
    if crd_status::is_terminating(&value) {
        clean_up(app, &crd, &name).await;
        return;
    }
    let _gate = app.write_gate.read().await;
    let Some(crds) = crd_resource(app) else { return };
    let used = names_in_use(app, &crds, &crd, &name).await;
    let before = value.get("status").cloned();
    crd_status::reconcile(&mut value, &used, &clock::rfc3339(clock::now_seconds()));
    if crd_status::is_condition_true(&value, "NamesAccepted") {
        if let Err(e) = serve(app, &crd, &name).await {
            tracing::warn!("serving CustomResourceDefinition {name}: {e}");
            return;
        }
    }
    let status = value.get("status").cloned().unwrap_or(Value::Null);
    if before.as_ref() != Some(&status) {
        write_status(&crds, &name, status).await;
    }
}

/// The names other resources of `crd`'s group hold: other CRDs' accepted names and the
/// resources served without a CRD (built-in and config-file ones).
async fn names_in_use(app: &App, crds: &Arc<Resource>, crd: &Crd, crd_name: &str) -> crd_status::NamesInUse {
    let others = crds.storage.get_list(&key(crds), ListOptions { recursive: true, ..Default::default() }).await;
    let values: Vec<Value> = others
        .map(|list| list.items.into_iter().filter_map(|o| serde_json::to_value(crds.served(o)).ok()).collect())
        .unwrap_or_default();
    let mut used = crd_status::NamesInUse::from_crds(&crd.group, crd_name, values.iter());
    for r in app.table.snapshot().iter().filter(|r| r.group == crd.group && r.crd.is_none()) {
        used.resources.push(r.plural.clone());
        used.resources.push(r.singular.clone());
        used.resources.extend(r.short_names.iter().cloned());
        used.kinds.push(r.kind.clone());
        used.kinds.push(r.list_kind());
    }
    used
}

/// Serves every served version of `crd` (replacing what was served for it before).
async fn serve(app: &App, crd: &Crd, crd_name: &str) -> Result<(), String> {
    let (storage, storage_prefix) = {
        let mut provider = app.provider.lock().await;
        provider.storage(&crd.group, &crd.names.plural, true).await.map_err(|e| e.to_string())?
    };
    let storage_version = crd.storage_version().map(|v| v.name.clone()).unwrap_or_default();
    // A CRD's kind is decoded with its own schema, so a version whose printer columns
    // do not parse is not served (validation refuses such CRDs on write).
    let resources = crd
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|version| {
            Ok(Arc::new(Resource {
                group: crd.group.clone(),
                version: version.name.clone(),
                kind: crd.names.kind.clone(),
                plural: crd.names.plural.clone(),
                singular: crd.names.singular.clone(),
                namespaced: crd.scope == Scope::Namespaced,
                short_names: crd.names.short_names.clone(),
                storage_prefix: storage_prefix.clone(),
                storage: storage.clone(),
                strategy: Arc::new(CustomResourceStrategy::new(crd, version, &storage_version)?),
                custom: true,
                crd: Some(crd_name.to_owned()),
                terminating: Default::default(),
                merge_schema: Default::default(),
                ttl_seconds: 0,
                retired: tokio::sync::watch::Sender::new(false),
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
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

/// Changes the stored CRD `name` (API shape, as JSON) through a guaranteed update; returns
/// it as written.
async fn update_crd(crds: &Arc<Resource>, name: &str, change: impl Fn(&mut Value) + Send + Sync) -> Option<Object> {
    let key = names::object_key(&crds.storage_prefix, "", name).ok()?;
    let result = crds
        .storage
        .guaranteed_update(
            &key,
            false,
            None,
            &mut |existing, _| {
                let mut value = serde_json::to_value(&existing).map_err(apistore::Error::internal)?;
                change(&mut value);
                let changed: Object = serde_json::from_value(value).map_err(apistore::Error::internal)?;
                Ok((changed, None))
            },
            None,
        )
        .await;
    match result {
        Ok(object) => Some(object),
        Err(e) => {
            if !e.is_not_found() {
                tracing::warn!("updating CustomResourceDefinition {name}: {e}");
            }
            None
        }
    }
}

/// Writes `status` into the stored CRD.
async fn write_status(crds: &Arc<Resource>, name: &str, status: Value) {
    update_crd(crds, name, |crd| crd["status"] = status.clone()).await;
}

/// Sets the CRD's `Terminating` condition.
async fn set_terminating(crds: &Arc<Resource>, name: &str, step: Terminating) {
    let now = clock::rfc3339(clock::now_seconds());
    update_crd(crds, name, |crd| {
        let status =
            crd.as_object_mut().map(|o| o.entry("status").or_insert_with(|| Value::Object(Default::default())));
        if let Some(status) = status {
            crd_status::set_condition(status, crd_status::terminating(&step), &now);
        }
    })
    .await;
}

/// kube's finalizer controller: every custom object of the CRD deleted (`Terminating`
/// InstanceDeletionInProgress, then InstanceDeletionCompleted), the resource no longer served,
/// the cleanup finalizer dropped, and the CRD removed once no other finalizer holds it.
///
/// Each step holds the write gate and looks up what it writes after taking it (see the
/// module's doc).
async fn clean_up(app: &App, crd: &Crd, name: &str) {
    let served = {
        let _gate = app.write_gate.read().await;
        let served = app.table.snapshot().iter().find(|r| r.crd.as_deref() == Some(name)).cloned();
        if let Some(resource) = &served {
            // Creates are refused from now on.
            resource.terminating.store(true, std::sync::atomic::Ordering::SeqCst);
            if let Some(crds) = crd_resource(app) {
                set_terminating(&crds, name, Terminating::InProgress).await;
            }
        }
        served.is_some()
    };
    let outcome = delete_objects(app, crd, name).await;
    let done = match outcome {
        Ok(()) if served => Terminating::Completed,
        // Never served (e.g. its names conflicted); objects stored under it went all the same.
        Ok(()) => Terminating::NeverEstablished,
        Err(e) => {
            tracing::warn!("deleting the objects of CustomResourceDefinition {name}: {e}");
            let _gate = app.write_gate.read().await;
            if let Some(crds) = crd_resource(app) {
                set_terminating(&crds, name, Terminating::Failed(e.to_string())).await;
            }
            return;
        }
    };
    let _gate = app.write_gate.read().await;
    unserve(app, name);
    let Some(crds) = crd_resource(app) else { return };
    let now = clock::rfc3339(clock::now_seconds());
    let Some(finished) = update_crd(&crds, name, |crd| {
        crd_status::remove_cleanup_finalizer(crd);
        if let Some(status) = crd.get_mut("status") {
            crd_status::set_condition(status, crd_status::terminating(&done), &now);
        }
    })
    .await
    else {
        return;
    };
    if finished.metadata.finalizers.is_empty() {
        let Ok(key) = names::object_key(&crds.storage_prefix, "", name) else { return };
        let preconditions = Preconditions { uid: None, resource_version: finished.resource_version().ok() };
        match crds
            .storage
            .delete(&key, Some(&preconditions), &allow_all_deletions, None, DeleteOptions::default())
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() || e.reason() == apistore::StatusReason::Conflict => {}
            Err(e) => tracing::warn!("removing CustomResourceDefinition {name}: {e}"),
        }
    }
}

/// Deletes every custom object of CRD `crd_name`, [`DELETE_BATCH`] per hold of the write
/// gate; each batch writes through the storage served for the CRD at that moment (or, for a
/// CRD never served, the one the provider opens now), so a batch after a cutover deletes on
/// the target.
///
/// Errors: the storage's (listing or deleting; a missing object is not one).
async fn delete_objects(app: &App, crd: &Crd, crd_name: &str) -> apistore::Result<()> {
    loop {
        let _gate = app.write_gate.read().await;
        let served = app.table.snapshot().iter().find(|r| r.crd.as_deref() == Some(crd_name)).cloned();
        let (storage, prefix) = match served {
            Some(resource) => (resource.storage.clone(), resource.storage_prefix.clone()),
            None => app.provider.lock().await.storage(&crd.group, &crd.names.plural, true).await?,
        };
        let key = names::list_key(&prefix, "")?;
        let mut options = ListOptions { recursive: true, ..Default::default() };
        options.predicate.limit = DELETE_BATCH;
        let list = storage.get_list(&key, options).await?;
        let mut deleted = 0;
        for object in list.items {
            let key = names::object_key(&prefix, &object.metadata.namespace, &object.metadata.name)?;
            match storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await {
                Ok(_) => deleted += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        // Done, or a batch of objects that were already gone (never a loop without progress).
        if deleted == 0 {
            return Ok(());
        }
    }
}

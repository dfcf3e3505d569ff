//! Namespace lifecycle: the namespaces that always exist, the ones that may not be
//! deleted, and deleting a namespace's contents (kube's namespace controller, done inline).

use apistore::names;
use apistore::storage::{allow_all_deletions, DeleteOptions, GetOptions, ListOptions};
use apistore::Object;

use crate::server::{App, GateHold};
use crate::status::{ApiError, ApiResult};

/// Namespaces Kubernetes refuses to delete.
pub const IMMORTAL: &[&str] = &["default", "kube-system", "kube-public"];

/// Namespaces that always exist, as in Kubernetes.
pub const INITIAL: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Objects a namespace's deletion deletes between two looks at the write gate.
pub const DELETE_BATCH: i64 = 100;

/// Deletes every namespaced object in `namespace` (the namespace controller's job in kube),
/// [`DELETE_BATCH`] at a time: between batches the request lets a waiting migration cutover
/// run ([`GateHold::yield_to_cutover`]) and looks every storage up again, so a cutover
/// waits for one batch, and the batches after it delete on the target.
///
/// Errors: a storage's (listing or deleting; a missing object is not one).
pub async fn delete_contents(app: &App, gate: &GateHold, namespace: &str) -> ApiResult<()> {
    // Resources whose last batch deleted nothing (empty, or only objects already gone).
    let mut done: Vec<String> = Vec::new();
    loop {
        let mut deleted = false;
        let resources: Vec<_> = app
            .table
            .distinct_storages()
            .into_iter()
            .filter(|r| r.namespaced && !done.contains(&r.storage_prefix))
            .collect();
        for resource in resources {
            let key = names::list_key(&resource.storage_prefix, namespace)
                .map_err(|e| ApiError::from_storage(e, &resource.target("")))?;
            let mut options = ListOptions { recursive: true, ..Default::default() };
            options.predicate.limit = DELETE_BATCH;
            let list = resource
                .storage
                .get_list(&key, options)
                .await
                .map_err(|e| ApiError::from_storage(e, &resource.target("")))?;
            let mut progress = false;
            for object in list.items {
                let name = object.metadata.name.clone();
                let key = names::object_key(&resource.storage_prefix, namespace, &name)
                    .map_err(|e| ApiError::from_storage(e, &resource.target(&name)))?;
                match resource.storage.delete(&key, None, &allow_all_deletions, None, DeleteOptions::default()).await {
                    Ok(_) => progress = true,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(ApiError::from_storage(e, &resource.target(&name))),
                }
            }
            if !progress {
                done.push(resource.storage_prefix.clone());
                continue;
            }
            deleted = true;
            break;
        }
        if !deleted {
            return Ok(());
        }
        gate.yield_to_cutover().await;
    }
}

/// Creates `name` in the namespaces resource if it is missing (default, kube-system, ...).
pub async fn ensure_exists(app: &App, name: &str) -> Result<(), String> {
    let Some(namespaces) = app.table.namespaces() else {
        return Ok(());
    };
    let key = names::object_key(&namespaces.storage_prefix, "", name).map_err(|e| e.to_string())?;
    let exists = namespaces
        .storage
        .get(&key, GetOptions { ignore_not_found: true, ..GetOptions::default() })
        .await
        .map_err(|e| e.to_string())?;
    if exists.is_some() {
        return Ok(());
    }
    let mut object = Object::new("v1", "Namespace", "", name);
    crate::handlers::before_create(&namespaces, &mut object);
    match namespaces.storage.create(&key, object, 0).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_already_exists() => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

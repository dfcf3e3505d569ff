//! `POST` on a collection: kube's `createHandler` + `rest.BeforeCreate`.

use apistore::names;
use apistore::storage::GetOptions;
use apistore::Object;
use axum::http::StatusCode;
use axum::response::Response;

use super::{respond, Context};
use crate::clock;
use crate::managedfields::Manager;
use crate::negotiation::Output;
use crate::resources::Resource;
use crate::status::{ApiError, ApiResult};

impl Context<'_> {
    pub(super) async fn create(&self, body: &[u8], output: Output) -> ApiResult<Response> {
        if self.target.namespace.is_empty() && self.resource().namespaced {
            return Err(ApiError::not_found_path());
        }
        let object = self.decode(body)?;
        self.check_unknown_fields(&object, false)?;
        let manager = self.manager(None)?;
        let created = self.create_object(object, Some(&manager)).await?;
        // Encoded once, straight from the object.
        Ok(respond(StatusCode::CREATED, &created, output))
    }

    /// Prepares, validates and stores a new object (API shape); returns it as served.
    /// Server-side apply creates through here too.
    ///
    /// Errors: 400 for a namespace that disagrees with the path, 422 for an invalid name or
    /// object, 404 when the namespace does not exist, 409 when the object exists.
    /// `manager` records the create in `managedFields` (None: they are set already, as an
    /// apply that creates sets them).
    pub(super) async fn create_object(&self, mut object: Object, manager: Option<&Manager>) -> ApiResult<Object> {
        let resource = self.resource();
        if resource.terminating.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::forbidden("create not allowed while custom resource definition is terminating"));
        }
        self.check_namespace(&mut object)?;
        if object.metadata.name.is_empty() && !object.metadata.generate_name.is_empty() {
            object.metadata.name = generate_name(&object.metadata.generate_name);
        }
        resource.validate_name(&object.metadata.name)?;
        before_create(resource, &mut object);
        resource.validate(&object, None)?;
        if let Some(manager) = manager {
            object = resource.track_write(None, object, manager)?;
        }
        let name = object.metadata.name.clone();
        self.ensure_namespace().await?;
        let key = self.key(&name)?;
        if self.dry_run()? {
            if self.current(&name).await?.is_some() {
                return Err(ApiError::from_storage(apistore::Error::AlreadyExists { key }, &resource.target(&name)));
            }
            return Ok(object);
        }
        let created = resource
            .storage
            .create(&key, resource.to_storage(object), resource.ttl_seconds)
            .await
            .map_err(self.storage_error(&name))?;
        Ok(resource.served(created))
    }

    /// kube's NamespaceLifecycle admission: a namespaced object needs its namespace. Read
    /// live, not from the watch cache as kube's plugin reads its informer: here a namespace's
    /// DELETE removes its contents before it returns (there is no namespace controller to
    /// sweep later), so a create the cache's lag let through just after that DELETE would
    /// stay behind in a namespace that no longer exists.
    ///
    /// Errors: 404 `namespaces "<ns>" not found`.
    async fn ensure_namespace(&self) -> ApiResult<()> {
        if !self.resource().namespaced {
            return Ok(());
        }
        let Some(namespaces) = self.app.table.namespaces() else {
            return Ok(());
        };
        let key = names::object_key(&namespaces.storage_prefix, "", &self.target.namespace)
            .map_err(|e| ApiError::from_storage(e, &namespaces.target(&self.target.namespace)))?;
        match namespaces.storage.get(&key, GetOptions::default()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(ApiError::from_storage(e, &namespaces.target(&self.target.namespace))),
        }
    }
}

/// kube's `rest.BeforeCreate`: the server's fields of a new object (uid, creationTimestamp,
/// generation), what clients may not set cleared (deletion fields, selfLink; status of kinds
/// whose status is a subresource), then the kind's `PrepareForCreate`.
pub fn before_create(resource: &Resource, object: &mut Object) {
    let meta = &mut object.metadata;
    meta.uid = uuid::Uuid::new_v4().to_string();
    meta.creation_timestamp = Some(clock::rfc3339(clock::now_seconds()));
    meta.deletion_timestamp = None;
    meta.deletion_grace_period_seconds = None;
    meta.generation = if resource.tracks_generation() { 1 } else { 0 };
    meta.self_link.clear();
    if resource.has_status() {
        object.fields.remove("status");
    }
    resource.strategy.prepare_for_create(object);
}

/// `generateName` + 5 random characters from kube's alphabet.
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String =
        random.as_bytes().iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
    let prefix: String = prefix.chars().take(names::MAX_NAME_LENGTH - 5).collect();
    format!("{prefix}{suffix}")
}

//! `GuaranteedUpdate` and conditional `Delete`: optimistic loops on the key's mod_revision
//! (Kubernetes etcd3 `GuaranteedUpdate` / `conditionalDelete`).

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::TxnOutcome;
use crate::object::Object;
use crate::storage::{DeleteOptions, Preconditions, ResponseMeta, UpdateFn, ValidateDeletion};
use crate::version::format_resource_version;

use super::{ttl_duration, State, Store};

/// Message of an unsafe delete of a readable object.
const UNSAFE_DELETE_OF_READABLE: &str = "unsafe deletion is not allowed because the object is decodable from storage";

impl Store {
    pub(super) async fn update_loop(
        &self,
        key: &str,
        ignore_not_found: bool,
        preconditions: Option<&Preconditions>,
        try_update: UpdateFn<'_>,
        cached_existing: Option<Object>,
    ) -> Result<Object> {
        let backend_key = self.backend_key(key);
        // `current`: the state was read from the backend (not a caller's suggestion).
        let (mut state, mut current) = match cached_existing {
            Some(object) => (self.state_from_object(key, object)?, false),
            None => (self.current_state(key, &backend_key, ignore_not_found).await?, true),
        };
        loop {
            if let Some(preconditions) = preconditions {
                if let Err(err) = preconditions.check(key, &state.object) {
                    if current {
                        return Err(err);
                    }
                    state = self.current_state(key, &backend_key, ignore_not_found).await?;
                    current = true;
                    continue;
                }
            }

            let meta = ResponseMeta { resource_version: state.revision };
            // The state's object is not needed after this call: every path below either
            // replaces the state or returns `updated` (which then encodes to the state's data).
            let (mut updated, ttl) = match try_update(std::mem::take(&mut state.object), meta) {
                Ok(result) => result,
                Err(err) => {
                    if current {
                        return Err(err);
                    }
                    let suggested_revision = state.revision;
                    state = self.current_state(key, &backend_key, ignore_not_found).await?;
                    current = true;
                    if state.revision == suggested_revision {
                        return Err(err);
                    }
                    continue;
                }
            };

            let data = self.encode(key, &mut updated)?;
            if !state.stale && data == state.data {
                // Nothing changed. Confirm against storage when the state was a suggestion.
                if !current {
                    state = self.current_state(key, &backend_key, ignore_not_found).await?;
                    current = true;
                    if data != state.data {
                        continue;
                    }
                }
                if !state.stale {
                    // Unchanged: no write; `updated` encodes to exactly the stored data.
                    updated.metadata.resource_version = format_resource_version(state.revision);
                    return Ok(updated);
                }
            }

            let value = self.transform_to_storage(&backend_key, data)?;
            let ttl = ttl_duration(ttl.unwrap_or(0));
            match self.inner.backend.put(&backend_key, value, state.revision, ttl).await? {
                TxnOutcome::Succeeded { revision } => {
                    updated.metadata.resource_version = format_resource_version(revision);
                    return Ok(updated);
                }
                TxnOutcome::Failed { current: now, .. } => {
                    state = self.state_from_kv(key, now.as_ref(), ignore_not_found)?;
                    current = true;
                }
            }
        }
    }

    pub(super) async fn conditional_delete(
        &self,
        key: &str,
        preconditions: Option<&Preconditions>,
        validate_deletion: ValidateDeletion<'_>,
        cached_existing: Option<Object>,
        options: DeleteOptions,
    ) -> Result<Object> {
        let backend_key = self.backend_key(key);
        let unsafe_delete = options.expect_transform_or_decode_error;
        // For an unsafe delete the object is None when the stored data is unreadable.
        let (mut state, mut object, mut current) = match cached_existing {
            Some(cached) if !unsafe_delete => {
                let state = self.state_from_object(key, cached)?;
                let object = Some(state.object.clone());
                (state, object, false)
            }
            _ => {
                let (state, object) = self.delete_state(key, &backend_key, unsafe_delete).await?;
                (state, object, true)
            }
        };
        loop {
            let mut verdict = Ok(());
            if let Some(object) = &object {
                if let Some(preconditions) = preconditions {
                    verdict = preconditions.check(key, object);
                }
            }
            if verdict.is_ok() {
                verdict = validate_deletion(object.as_ref());
            }
            if let Err(err) = verdict {
                if current {
                    return Err(err);
                }
                let suggested_revision = state.revision;
                (state, object) = self.delete_state(key, &backend_key, unsafe_delete).await?;
                current = true;
                if state.revision == suggested_revision {
                    return Err(err);
                }
                continue;
            }

            match self.inner.backend.delete(&backend_key, state.revision).await? {
                TxnOutcome::Succeeded { revision } => {
                    return Ok(match object {
                        Some(mut deleted) => {
                            deleted.metadata.resource_version = format_resource_version(revision);
                            deleted
                        }
                        None => Object::default(),
                    });
                }
                TxnOutcome::Failed { current: now, .. } => {
                    let Some(kv) = now else {
                        return Err(Error::NotFound { key: key.to_owned() });
                    };
                    (state, object) = self.readable_state(key, &kv, unsafe_delete)?;
                    current = true;
                }
            }
        }
    }

    /// The current state for a delete; a missing key is [`Error::NotFound`].
    async fn delete_state(&self, key: &str, backend_key: &str, unsafe_delete: bool) -> Result<(State, Option<Object>)> {
        let response = self.inner.backend.get(backend_key, 0).await?;
        let kv = response.kv.ok_or_else(|| Error::NotFound { key: key.to_owned() })?;
        self.readable_state(key, &kv, unsafe_delete)
    }

    /// Decodes `kv`; under unsafe deletion an unreadable value is expected (object None) and
    /// a readable one is refused.
    fn readable_state(
        &self,
        key: &str,
        kv: &crate::kv::KeyValue,
        unsafe_delete: bool,
    ) -> Result<(State, Option<Object>)> {
        match (self.decode_kv(kv), unsafe_delete) {
            (Ok(state), false) => {
                let object = Some(state.object.clone());
                Ok((state, object))
            }
            (Ok(_), true) => {
                Err(Error::InvalidObject { key: key.to_owned(), message: UNSAFE_DELETE_OF_READABLE.to_owned() })
            }
            (Err(err), false) => Err(err),
            (Err(_), true) => Ok((
                State { object: Object::default(), data: Bytes::new(), revision: kv.mod_revision, stale: false },
                None,
            )),
        }
    }
}

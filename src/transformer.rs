//! Value transformers: what sits between the codec and the backend (encryption at rest).
//!
//! Kubernetes `value.Transformer`. Writes go through [`Transformer::transform_to_storage`];
//! reads through [`Transformer::transform_from_storage`], which also reports `stale` when the
//! data was readable but not written by the primary (first) provider — a no-op
//! `guaranteed_update` then rewrites it (key rotation / storage migration). The
//! authenticated data is the full backend key, binding a ciphertext to its key.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};

/// Prefix of every encrypted value (`k8s:enc:<provider>:v1:<key name>:`).
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Transforms stored values. Implementations must be cheap to call concurrently.
pub trait Transformer: Send + Sync + fmt::Debug + 'static {
    /// Decodes stored bytes. Returns the plain bytes (borrowed from `data` when they are stored
    /// as they are, e.g. by the identity transformer) and whether they are stale (written by a
    /// provider other than the primary one).
    ///
    /// Errors: [`Error::Internal`] when no provider can read the data.
    fn transform_from_storage<'a>(&self, data: &'a [u8], authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)>;

    /// Encodes plain bytes for storage with the primary provider. Takes the codec's buffer by
    /// value so that a transformer that stores bytes as they are returns it without a copy.
    fn transform_to_storage(&self, data: Bytes, authenticated_data: &[u8]) -> Result<Bytes>;
}

/// Shared handle to a transformer.
pub type DynTransformer = Arc<dyn Transformer>;

/// Stores values as they are. Refuses to read encrypted data (`k8s:enc:` prefix), like
/// Kubernetes' `identity.NewEncryptCheckTransformer`.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityTransformer;

impl Transformer for IdentityTransformer {
    fn transform_from_storage<'a>(&self, data: &'a [u8], _authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        if data.starts_with(ENCRYPTED_PREFIX) {
            return Err(Error::internal("identity transformer tried to read encrypted data"));
        }
        Ok((Cow::Borrowed(data), false))
    }

    /// The input itself (no copy).
    fn transform_to_storage(&self, data: Bytes, _authenticated_data: &[u8]) -> Result<Bytes> {
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_refuses_encrypted_data() {
        let t = IdentityTransformer;
        assert_eq!(t.transform_from_storage(b"{}", b"k"), Ok((Cow::Borrowed(&b"{}"[..]), false)));
        assert!(t.transform_from_storage(b"k8s:enc:aesgcm:v1:key1:xxx", b"k").is_err());
        let data = Bytes::from(b"{\"a\":1}".to_vec());
        let stored = t.transform_to_storage(data.clone(), b"k").expect("identity");
        assert_eq!(stored.as_ptr(), data.as_ptr(), "the identity transformer returns its input, not a copy");
    }
}

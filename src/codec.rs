//! Codecs: how an [`Object`] becomes stored bytes and back.
//!
//! The default is JSON (`application/json`), as for Kubernetes custom resources. A codec must
//! be deterministic: equal objects encode to equal bytes, which is how
//! `guaranteed_update` detects a no-op.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::object::Object;

/// Encodes and decodes objects for storage.
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// The media type, e.g. `application/json`.
    fn media_type(&self) -> &'static str;

    /// Encodes an object (its resourceVersion and selfLink already cleared).
    fn encode(&self, object: &Object) -> Result<Vec<u8>>;

    /// Decodes stored bytes. Errors: [`Error::Corrupt`]-worthy failures as
    /// [`Error::Internal`] naming the problem.
    fn decode(&self, data: &[u8]) -> Result<Object>;
}

/// Shared handle to a codec.
pub type DynCodec = Arc<dyn Codec>;

/// JSON codec (`application/json`).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn media_type(&self) -> &'static str {
        "application/json"
    }

    fn encode(&self, object: &Object) -> Result<Vec<u8>> {
        object.to_json()
    }

    fn decode(&self, data: &[u8]) -> Result<Object> {
        serde_json::from_slice(data).map_err(|e| Error::internal(format!("decoding stored object: {e}")))
    }
}

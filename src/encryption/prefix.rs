//! `PrefixTransformers`: the first transformer writes, every transformer whose prefix
//! matches may read (Kubernetes `value.NewPrefixTransformers`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::transformer::{DynTransformer, Transformer, ENCRYPTED_PREFIX};

/// A transformer and the prefix its output carries (`k8s:enc:aesgcm:v1:key1:`; empty for
/// identity).
#[derive(Clone, Debug)]
pub struct PrefixTransformer {
    /// Prepended on write, matched (and stripped) on read.
    pub prefix: Vec<u8>,
    /// The transformer of the payload after the prefix.
    pub transformer: DynTransformer,
}

impl PrefixTransformer {
    /// A prefix transformer.
    pub fn new(prefix: impl Into<Vec<u8>>, transformer: DynTransformer) -> Self {
        PrefixTransformer { prefix: prefix.into(), transformer }
    }
}

/// An ordered list of [`PrefixTransformer`]s. Writes use the first; reads try, in order,
/// each one whose prefix matches. A successful read by any but the first is `stale`, so a
/// no-op update rewrites the value with the first (key rotation). An identity transformer
/// (empty prefix) that fails to read is skipped silently, so `identity` may be listed first
/// to migrate away from encryption.
#[derive(Clone)]
pub struct PrefixTransformers {
    transformers: Arc<[PrefixTransformer]>,
}

impl fmt::Debug for PrefixTransformers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.transformers.iter().map(|t| String::from_utf8_lossy(&t.prefix))).finish()
    }
}

impl PrefixTransformers {
    /// The transformers in priority order.
    ///
    /// Errors: [`Error::Invalid`] when the list is empty.
    pub fn new(transformers: Vec<PrefixTransformer>) -> Result<Self> {
        if transformers.is_empty() {
            return Err(Error::invalid("providers", "[]", "at least one provider is required"));
        }
        Ok(PrefixTransformers { transformers: transformers.into() })
    }

    /// The prefixes in priority order (`""` for identity), for messages and tests.
    pub fn prefixes(&self) -> Vec<String> {
        self.transformers.iter().map(|t| String::from_utf8_lossy(&t.prefix).into_owned()).collect()
    }
}

/// The `k8s:enc:<provider>:v1:<key name>:` prefix a stored value carries, if it has one.
pub fn encryption_prefix_of(data: &[u8]) -> Option<String> {
    if !data.starts_with(ENCRYPTED_PREFIX) {
        return None;
    }
    // k8s:enc:<provider>:<version>:<key name>: — five colons (KMS: k8s:enc:kms:v1:<name>:).
    let mut colons = 0;
    for (index, byte) in data.iter().enumerate().take(512) {
        if *byte == b':' {
            colons += 1;
            if colons == 5 {
                return Some(String::from_utf8_lossy(&data[..=index]).into_owned());
            }
        }
    }
    Some(String::from_utf8_lossy(&data[..data.len().min(64)]).into_owned())
}

impl Transformer for PrefixTransformers {
    fn transform_from_storage<'a>(&self, data: &'a [u8], authenticated_data: &[u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        let mut errors = Vec::new();
        for (index, candidate) in self.transformers.iter().enumerate() {
            let Some(payload) = data.strip_prefix(candidate.prefix.as_slice()) else {
                continue;
            };
            match candidate.transformer.transform_from_storage(payload, authenticated_data) {
                Ok((plain, stale)) => return Ok((plain, stale || index != 0)),
                // Identity first in the list (migrating away from encryption) cannot read
                // encrypted data: not an error, the next transformer can.
                Err(_) if candidate.prefix.is_empty() => continue,
                Err(err) => {
                    errors.push(format!("{}: {}", String::from_utf8_lossy(&candidate.prefix), message_of(&err)))
                }
            }
        }
        let key = String::from_utf8_lossy(authenticated_data);
        if !errors.is_empty() {
            return Err(Error::internal(format!("unable to decrypt {key}: [{}]", errors.join("; "))));
        }
        let configured = self
            .prefixes()
            .iter()
            .map(|p| if p.is_empty() { "identity".to_owned() } else { p.clone() })
            .collect::<Vec<_>>()
            .join(", ");
        match encryption_prefix_of(data) {
            Some(prefix) => Err(Error::internal(format!(
                "no matching prefix found: the value of {key} was written with {prefix:?}, a provider key that is no longer in the encryption configuration (configured: [{configured}])"
            ))),
            None => Err(Error::internal(format!(
                "no matching prefix found: the value of {key} is not encrypted and no identity provider is configured (configured: [{configured}])"
            ))),
        }
    }

    fn transform_to_storage(&self, data: Bytes, authenticated_data: &[u8]) -> Result<Bytes> {
        let first = self.transformers.first().ok_or_else(|| Error::internal("no encryption provider configured"))?;
        let payload = first.transformer.transform_to_storage(data, authenticated_data)?;
        let mut out = Vec::with_capacity(first.prefix.len() + payload.len());
        out.extend_from_slice(&first.prefix);
        out.extend_from_slice(&payload);
        Ok(Bytes::from(out))
    }
}

fn message_of(err: &Error) -> String {
    match err {
        Error::Internal { message } => message.clone(),
        other => other.to_string(),
    }
}

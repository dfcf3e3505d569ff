//! Codecs: how an [`Object`] becomes stored bytes and back.
//!
//! The default is JSON (`application/json`), as for Kubernetes custom resources. A codec must
//! be deterministic: equal objects encode to equal bytes, which is how
//! `guaranteed_update` detects a no-op.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::object::Object;

/// Encodes and decodes objects for storage.
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// The media type, e.g. `application/json`.
    fn media_type(&self) -> &'static str;

    /// Encodes an object (its resourceVersion and selfLink already cleared). The buffer goes
    /// to the value transformer and the backend as it is (shared, never copied).
    fn encode(&self, object: &Object) -> Result<Bytes>;

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

    fn encode(&self, object: &Object) -> Result<Bytes> {
        object.to_json().map(Bytes::from)
    }

    fn decode(&self, data: &[u8]) -> Result<Object> {
        serde_json::from_slice(data).map_err(|e| Error::internal(format!("decoding stored object: {e}")))
    }
}

/// YAML codec (`application/yaml`): human-readable stored objects. Deterministic like
/// [`JsonCodec`] (fields keep their order).
#[derive(Clone, Copy, Debug, Default)]
pub struct YamlCodec;

impl Codec for YamlCodec {
    fn media_type(&self) -> &'static str {
        "application/yaml"
    }

    fn encode(&self, object: &Object) -> Result<Bytes> {
        serde_yaml::to_string(object)
            .map(Bytes::from)
            .map_err(|e| Error::internal(format!("encoding object as YAML: {e}")))
    }

    fn decode(&self, data: &[u8]) -> Result<Object> {
        serde_yaml::from_slice(data).map_err(|e| Error::internal(format!("decoding stored YAML object: {e}")))
    }
}

/// The codec of a storage media type: `application/json` or `application/yaml`.
///
/// Errors: [`Error::Invalid`] on `media_type` for anything else (protobuf needs typed objects).
pub fn codec_for_media_type(media_type: &str) -> Result<DynCodec> {
    match media_type {
        "application/json" => Ok(Arc::new(JsonCodec)),
        "application/yaml" => Ok(Arc::new(YamlCodec)),
        other => Err(Error::invalid(
            "media_type",
            other,
            "unsupported storage media type; supported: application/json, application/yaml",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_and_is_deterministic() {
        let object = Object::new("v1", "ConfigMap", "default", "a")
            .with_label("app", "x")
            .with_field("data", serde_json::json!({"k": "v", "n": "1"}));
        let codec = codec_for_media_type("application/yaml").expect("yaml");
        let bytes = codec.encode(&object).expect("encode");
        assert!(String::from_utf8_lossy(&bytes).contains("kind: ConfigMap"));
        assert_eq!(codec.encode(&object).expect("encode again"), bytes);
        assert_eq!(codec.decode(&bytes).expect("decode"), object);
        assert!(codec.decode(b"{not: [yaml").is_err());
        let json = codec_for_media_type("application/json").expect("json");
        assert_eq!(json.media_type(), "application/json");
        let encoded = json.encode(&object).expect("encode json");
        assert_eq!(encoded.as_ref(), object.to_json().expect("to_json").as_slice());
        assert_eq!(json.decode(&encoded).expect("decode json"), object);
        assert!(codec_for_media_type("application/vnd.kubernetes.protobuf").is_err());
    }
}

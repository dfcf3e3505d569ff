//! Content negotiation, as kube-apiserver does it (k8s.io/apiserver
//! `pkg/endpoints/handlers/negotiation`, `pkg/endpoints/handlers/rest.go`): which format a
//! request body is in (`Content-Type`, 415 when unknown) and which representation a response
//! is written in (`Accept`, 406 when nothing acceptable remains).
//!
//! Bodies are JSON or YAML. Responses are JSON or YAML, optionally transformed into a
//! `meta.k8s.io` `Table` or `PartialObjectMetadata` (`as=...;g=meta.k8s.io;v=v1`). Protobuf is
//! not served: a client asking for protobuf with JSON as an alternative (client-go's
//! `application/vnd.kubernetes.protobuf,application/json`) gets JSON, as kube serves custom
//! resources; asked for protobuf alone it gets 406.

use crate::status::ApiError;

/// A body or response serialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
}

impl Format {
    /// The media type written in `Content-Type`.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        }
    }
}

/// The media types a request body may be in, in kube's order for error messages.
pub const BODY_MEDIA_TYPES: &[&str] = &["application/json", "application/yaml"];

/// What a response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The object or list itself.
    Object,
    /// A `meta.k8s.io/v1` Table (`as=Table`).
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` (`as=PartialObjectMetadata[List]`).
    PartialMetadata,
}

/// The negotiated representation of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    /// The serialization.
    pub format: Format,
    /// What is serialized.
    pub shape: Shape,
}

impl Output {
    /// Plain JSON: the default when `Accept` is empty, and what errors are written in.
    pub const JSON: Output = Output { format: Format::Json, shape: Shape::Object };
}

/// What an endpoint can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A resource's get or list: JSON/YAML, Table, PartialObjectMetadata.
    Resource,
    /// A watch: a JSON stream (`application/json;stream=watch`), Table or metadata events.
    Watch,
    /// Anything else (writes, discovery, subresources): JSON or YAML objects only.
    Plain,
}

/// One clause of an `Accept` header.
#[derive(Debug, PartialEq)]
struct Clause<'a> {
    kind: &'a str,
    subtype: &'a str,
    params: Vec<(&'a str, &'a str)>,
    q: f32,
}

impl Clause<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
    fn wildcards(&self) -> usize {
        usize::from(self.kind == "*") + usize::from(self.subtype == "*")
    }
}

/// Parses `Accept` into clauses sorted as goautoneg's `ParseAccept`: by q (highest first),
/// specific before wildcard, then header order. Clauses with q=0 are dropped.
fn parse_accept(accept: &str) -> Vec<Clause<'_>> {
    let mut clauses: Vec<(usize, Clause<'_>)> = Vec::new();
    for (index, part) in accept.split(',').enumerate() {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim();
        if media.is_empty() {
            continue;
        }
        let (kind, subtype) = media.split_once('/').unwrap_or((media, "*"));
        let mut clause = Clause { kind: kind.trim(), subtype: subtype.trim(), params: Vec::new(), q: 1.0 };
        for param in pieces {
            let Some((key, value)) = param.split_once('=') else { continue };
            let (key, value) = (key.trim(), value.trim().trim_matches('"'));
            if key.eq_ignore_ascii_case("q") {
                clause.q = value.parse().unwrap_or(0.0);
            } else {
                clause.params.push((key, value));
            }
        }
        if clause.q > 0.0 {
            clauses.push((index, clause));
        }
    }
    clauses.sort_by(|(ia, a), (ib, b)| {
        b.q.partial_cmp(&a.q)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.wildcards().cmp(&b.wildcards()))
            .then(ia.cmp(ib))
    });
    clauses.into_iter().map(|(_, c)| c).collect()
}

/// The format a clause's media type names, if served (`*/*` and `application/*` mean JSON).
fn clause_format(clause: &Clause<'_>, endpoint: Endpoint) -> Option<Format> {
    match (clause.kind, clause.subtype) {
        ("*", "*") | ("application", "*") | ("application", "json") => Some(Format::Json),
        ("application", "yaml") if endpoint != Endpoint::Watch => Some(Format::Yaml),
        _ => None,
    }
}

/// The shape a clause's `as`/`g`/`v` parameters ask for, if this endpoint can produce it.
fn clause_shape(clause: &Clause<'_>, endpoint: Endpoint) -> Option<Shape> {
    let Some(target) = clause.param("as") else {
        return Some(Shape::Object);
    };
    if endpoint == Endpoint::Plain {
        return None;
    }
    let meta = clause.param("g") == Some("meta.k8s.io") && matches!(clause.param("v"), Some("v1" | "v1beta1"));
    match target {
        "Table" if meta => Some(Shape::Table),
        "PartialObjectMetadata" | "PartialObjectMetadataList" if meta => Some(Shape::PartialMetadata),
        _ => None,
    }
}

/// The response representation for `accept` at `endpoint`.
///
/// Errors: 406 NotAcceptable listing the served media types when no clause can be served.
pub fn negotiate(accept: &str, endpoint: Endpoint) -> Result<Output, ApiError> {
    if accept.trim().is_empty() {
        return Ok(Output::JSON);
    }
    for clause in parse_accept(accept) {
        let (Some(format), Some(shape)) = (clause_format(&clause, endpoint), clause_shape(&clause, endpoint)) else {
            continue;
        };
        return Ok(Output { format, shape });
    }
    let served = match endpoint {
        Endpoint::Watch => "application/json;stream=watch",
        _ => "application/json, application/yaml",
    };
    Err(ApiError::not_acceptable(served))
}

/// The format of a request body from its `Content-Type` (missing means JSON; parameters such
/// as `charset` are ignored).
///
/// Errors: 415 UnsupportedMediaType listing the accepted media types.
pub fn body_format(content_type: &str) -> Result<Format, ApiError> {
    match media_type(content_type).as_str() {
        "" | "application/json" => Ok(Format::Json),
        "application/yaml" => Ok(Format::Yaml),
        _ => Err(ApiError::unsupported_media_type(BODY_MEDIA_TYPES)),
    }
}

/// The media type of a `Content-Type` value, lowercased, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn empty_and_wildcards_mean_json() {
        assert_eq!(negotiate("", Endpoint::Resource).unwrap(), Output::JSON);
        assert_eq!(negotiate("*/*", Endpoint::Resource).unwrap(), Output::JSON);
        assert_eq!(negotiate("application/*", Endpoint::Plain).unwrap(), Output::JSON);
    }

    #[test]
    fn yaml_is_served_but_not_for_watches() {
        let yaml = Output { format: Format::Yaml, shape: Shape::Object };
        assert_eq!(negotiate("application/yaml", Endpoint::Resource).unwrap(), yaml);
        let e = negotiate("application/yaml", Endpoint::Watch).unwrap_err();
        assert_eq!(e.code(), 406);
        assert!(e.message.contains("application/json;stream=watch"), "{}", e.message);
    }

    #[test]
    fn protobuf_falls_back_to_json_and_alone_is_406() {
        let client_go = "application/vnd.kubernetes.protobuf,application/json";
        assert_eq!(negotiate(client_go, Endpoint::Resource).unwrap(), Output::JSON);
        let e = negotiate("application/vnd.kubernetes.protobuf", Endpoint::Resource).unwrap_err();
        assert_eq!((e.code(), e.reason.as_str()), (406, "NotAcceptable"));
        assert_eq!(e.message, "only the following media types are accepted: application/json, application/yaml");
    }

    #[test]
    fn tables_and_partial_metadata_where_allowed() {
        let table = negotiate(KUBECTL_GET, Endpoint::Resource).unwrap();
        assert_eq!(table, Output { format: Format::Json, shape: Shape::Table });
        assert_eq!(negotiate(KUBECTL_GET, Endpoint::Watch).unwrap().shape, Shape::Table);
        // A write answers with the object: the Table clauses are skipped for the plain one.
        assert_eq!(negotiate(KUBECTL_GET, Endpoint::Plain).unwrap(), Output::JSON);
        let meta = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(negotiate(meta, Endpoint::Resource).unwrap().shape, Shape::PartialMetadata);
        // An unknown transformation alone is not acceptable.
        assert_eq!(negotiate("application/json;as=Pod;g=;v=v1", Endpoint::Resource).unwrap_err().code(), 406);
        // Aggregated discovery asked with a JSON fallback: the fallback.
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(discovery, Endpoint::Plain).unwrap(), Output::JSON);
    }

    #[test]
    fn quality_orders_clauses() {
        let out = negotiate("application/json;q=0.5, application/yaml", Endpoint::Resource).unwrap();
        assert_eq!(out.format, Format::Yaml);
        let out = negotiate("*/*;q=0.9, application/yaml;q=0.8", Endpoint::Resource).unwrap();
        assert_eq!(out.format, Format::Json);
        assert_eq!(negotiate("application/json;q=0", Endpoint::Resource).unwrap_err().code(), 406);
    }

    #[test]
    fn body_formats_and_415() {
        assert_eq!(body_format("").unwrap(), Format::Json);
        assert_eq!(body_format("application/json; charset=utf-8").unwrap(), Format::Json);
        assert_eq!(body_format("application/yaml").unwrap(), Format::Yaml);
        let e = body_format("application/vnd.kubernetes.protobuf").unwrap_err();
        assert_eq!(e.code(), 415);
        assert_eq!(
            e.message,
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        );
    }
}

//! `GET` of one object: kube's `getHandler`, with the Table and PartialObjectMetadata
//! transformations a client may ask for in `Accept`.
//!
//! The object is read as its encoded bytes ([`apistore::Storage::get_encoded`]): from the watch
//! cache (a GET with a resourceVersion) those are the cached bytes, written as they are when they
//! are the served JSON; every other representation (the served JSON of another version or form,
//! YAML, PartialObjectMetadata and Table rows as JSON and YAML) is computed once per object
//! version and kept with them ([`crate::representations`]), and the response assembled from
//! those parts (a Table's `Age` cell computed per request). A consistent GET (no
//! resourceVersion) is read from the store, as kube-apiserver does.

use apistore::storage::{GetOptions, ResourceVersion};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::Context;
use crate::negotiation::{Format, Output, Shape};
use crate::representations::{self, Ages, Served, Serving};
use crate::status::{ApiError, ApiResult};
use crate::table;

impl Context<'_> {
    pub(super) async fn get(&self, name: &str, output: Output) -> ApiResult<Response> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let resource_version =
            ResourceVersion::parse_read(self.param("resourceVersion")).map_err(self.storage_error(name))?;
        let options = GetOptions { ignore_not_found: false, resource_version };
        let object = self.resource().storage.get_encoded(&key, options).await.map_err(self.storage_error(name))?;
        let object = object.ok_or_else(|| ApiError::not_found(&self.resource().target(name)))?;
        let resource = self.resource();
        let serving = Serving::of(resource);
        let served = Served::new(resource, &object, &serving);
        let body = match output.shape {
            Shape::Object => served.encoded(output.format)?,
            Shape::PartialMetadata => served.partial_metadata_in(output.format)?,
            Shape::Table => {
                let include = table::include(self.param("includeObject"))?;
                let table = match output.format {
                    Format::Json => representations::table_json(
                        resource,
                        &json!({}),
                        true,
                        std::iter::once(served.table_row(include)),
                    )?,
                    Format::Yaml => representations::table_yaml(
                        resource,
                        &json!({}),
                        std::iter::once(served.table_row_yaml(include, &mut Ages::default())),
                    )?,
                };
                Bytes::from(table)
            }
        };
        Ok(bytes_response(body, output.format))
    }
}

/// A 200 response of `body`, already in `format`.
pub(super) fn bytes_response(body: Bytes, format: Format) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    response
}

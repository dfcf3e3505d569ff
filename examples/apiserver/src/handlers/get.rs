//! `GET` of one object: kube's `getHandler`, with the Table and PartialObjectMetadata
//! transformations a client may ask for in `Accept`.

use apistore::storage::{GetOptions, ResourceVersion};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{respond, Context};
use crate::negotiation::{Output, Shape};
use crate::status::{ApiError, ApiResult};
use crate::table;

impl Context<'_> {
    pub(super) async fn get(&self, name: &str, output: Output) -> ApiResult<Response> {
        let key = self.key(name).map_err(|_| ApiError::not_found(&self.resource().target(name)))?;
        let resource_version =
            ResourceVersion::parse_read(self.param("resourceVersion")).map_err(self.storage_error(name))?;
        let options = GetOptions { ignore_not_found: false, resource_version };
        let object = self.resource().storage.get(&key, options).await.map_err(self.storage_error(name))?;
        let object = object.ok_or_else(|| ApiError::not_found(&self.resource().target(name)))?;
        let object = self.resource().served(object);
        let value = match output.shape {
            Shape::Table => table::table(
                self.resource(),
                std::slice::from_ref(&object),
                table::include(self.param("includeObject"))?,
                json!({}),
            ),
            Shape::PartialMetadata => table::partial_metadata(&object),
            Shape::Object => serde_json::to_value(&object).unwrap_or_default(),
        };
        Ok(respond(StatusCode::OK, &value, output))
    }
}

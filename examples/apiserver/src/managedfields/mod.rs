//! Server-side apply and field ownership (`metadata.managedFields`), as
//! k8s.io/apimachinery `pkg/util/managedfields` and structured-merge-diff do it.
//!
//! Entry points: [`update`] (create, PUT, non-apply PATCH) and [`apply`] (server-side
//! apply), both pure functions over JSON objects in API shape, typed by a [`schema::Node`]
//! ([`schema::builtin`] for the served built-in kinds). No HTTP here: [`ApplyError::code`]
//! says which status each error maps to.

pub mod compare;
pub mod conflict;
pub mod entries;
pub mod fieldmanager;
pub mod fieldpath;
pub mod fieldsv1;
pub mod merge;
pub mod remove;
pub mod schema;
pub mod tofieldset;
pub mod typed;
pub mod updater;
pub mod value;

// The API the handlers use (unused until they are wired).
#[allow(unused_imports)]
pub use conflict::{Conflict, ConflictCause};
#[allow(unused_imports)]
pub use entries::{ManagedFieldsEntry, ManagedFieldsError, Operation};
#[allow(unused_imports)]
pub use fieldmanager::{apply, update, ApplyError, Manager};
#[allow(unused_imports)]
pub use fieldpath::{Path, PathElement, Set};
#[allow(unused_imports)]
pub use fieldsv1::FieldsV1Error;

#[cfg(test)]
mod tests;

//! Server-side apply and field ownership (`metadata.managedFields`), as
//! k8s.io/apimachinery `pkg/util/managedfields` and structured-merge-diff do it.

pub mod schema;

//! CustomResourceDefinitions (apiextensions.k8s.io/v1) as kube's apiextensions-apiserver
//! handles them, without HTTP: [`crd`] defaults, validates and reads a CRD; [`schema`]
//! makes its versions' structural schemas, which validate, prune and default custom
//! resources and give server-side apply its type tree; [`columns`] prints them as Tables;
//! [`status`] computes the conditions kube's controllers would set.

pub mod columns;
pub mod crd;
mod defaulting;
mod dns;
mod duration;
mod formats;
mod jsonpath;
mod pruning;
pub mod schema;
mod smd;
pub mod status;
mod validate;

#[cfg(test)]
mod tests;

//! # apistore
//!
//! Storage for Kubernetes-style API servers: the layer kube-apiserver builds from
//! `StorageFactory`, `RESTOptionsGetter` and `storage.Interface`, in Rust, over pluggable
//! backends.
//!
//! ```text
//!  Config ──► StorageFactory (per GroupResource: backend, prefix, codec, transformer)
//!                 │                         │ backend name
//!                 ▼                         ▼
//!  RESTOptionsGetter ──► layers       registry (inventory): "sled" | "etcd3" | plugin
//!      (one LayerChain: watch cache,         │ StorageBackendFactory::create
//!       metrics, tracing over the store)     ▼
//!                 │                    Arc<dyn KvBackend>  — the backend contract (kv)
//!                 ▼                         │
//!          Arc<dyn Storage>  ◄── Store ─────┘   — Kubernetes storage.Interface (storage)
//! ```
//!
//! * [`kv::KvBackend`] — what a backend implements: etcd's revisioned key space.
//! * [`storage::Storage`] — what an API server uses: `storage.Interface` with Kubernetes'
//!   exact semantics; [`store::Store`] implements it once over any backend.
//! * [`registry`] — backends register a [`registry::StorageBackendFactory`] with `inventory`.
//! * [`layer`] — the one layer contract: a [`layer::Layer`] is handed a resource's context and
//!   the `Arc<dyn Storage>` below it and returns the storage above it; [`layer::LayerChain`]
//!   orders them.
//! * [`layers`] — the layers apistore ships and the production chain (metrics → cache → store).
//! * [`cacher`] — the watch cache (Kubernetes `Cacher` + `CacheDelegator`), a layer over any storage.
//! * [`config`] → [`factory`] → [`rest_options`] — the chain an API server uses:
//!   `Config` (TOML/YAML/JSON + kube-apiserver flags) → `StorageOptions::complete()` →
//!   `StorageFactoryConfig::build()` → `DefaultStorageFactory` (per-GroupResource backend,
//!   prefix, codec, encryption, cohabitation) → `StorageFactoryRestOptionsFactory::get_rest_options`
//!   → `RESTOptions::create_storage()` → `Arc<dyn Storage>`.
//! * [`encryption`] — encryption at rest from Kubernetes' `EncryptionConfiguration` file.
//! * [`layers::metrics`] / [`layers::trace`] — Prometheus metrics and `tracing` spans per call.
//! * [`ops`] — backup, restore and status on any backend (the `apistore` command's core).
//! * [`typed`] — [`TypedStorage<T>`]: your own serde types over any `Arc<dyn Storage>`.
//! * `testing` (feature `testing`) — the conformance suite every backend runs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cacher;
pub mod codec;
pub mod config;
pub mod continue_token;
pub mod encoded;
pub mod encryption;
pub mod error;
pub mod factory;
pub mod group_resource;
pub mod kv;
pub mod layer;
pub mod layers;
pub mod names;
pub mod object;
pub mod ops;
pub mod registry;
pub mod rest_options;
pub mod selector;
pub mod storage;
pub mod store;
pub mod transformer;
pub mod typed;
pub mod version;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::{Error, Result, StatusReason};
pub use kv::KvBackend;
pub use object::{Object, ObjectMeta};
pub use storage::Storage;
pub use store::{Store, StoreConfig};
pub use typed::TypedStorage;

/// Re-exported so backend crates register with the same `inventory` version.
pub use inventory;

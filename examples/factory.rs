//! Builds a `DefaultStorageFactory` from a config file and serves resources from different
//! backends through `RESTOptionsGetter`, printing what it does.
//!
//! ```text
//! cargo run -p apistore --example factory                       # examples/factory.toml
//! cargo run -p apistore --example factory -- my.yaml --watch-cache=false
//! cargo run -p apistore --example factory --features etcd -- --etcd-servers-overrides=/events#http://127.0.0.1:2379
//! ```
//!
//! With `examples/factory.toml`, configmaps (YAML) and secrets (encrypted with aesgcm) live in
//! sled and events in the in-memory plugin backend; the last command moves events to etcd.
//!
//! The first argument (optional) is a config file (`.toml`, `.yaml`, `.json`); the rest are
//! kube-apiserver storage flags (`--etcd-servers-overrides=/events#http://127.0.0.1:2379`,
//! `--watch-cache-sizes=...`, ...).

use apistore::factory::{check_backends, StorageOptions};
use apistore::group_resource::GroupResource;
use apistore::layer::LayerChain;
use apistore::layers::{StorageMetrics, TracingLayer, WatchCacheLayer};
use apistore::registry;
use apistore::rest_options::{RESTOptionsGetter, StorageFactoryRestOptionsFactory};
use apistore::storage::{GetOptions, ListOptions};
use apistore::{Object, Result};
use serde_json::json;

// Link the backend crates so their `inventory` registrations are found.
#[cfg(feature = "etcd")]
use apistore_etcd as _;
use apistore_memory as _;
use apistore_sled as _;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    apistore_sled::register();
    #[cfg(feature = "etcd")]
    apistore_etcd::register();
    apistore::registry::register(&apistore_memory::MemoryFactory);
    let mut args = std::env::args().skip(1).peekable();
    let path = match args.peek() {
        Some(first) if !first.starts_with("--") => args.next().unwrap_or_default(),
        _ => concat!(env!("CARGO_MANIFEST_DIR"), "/examples/factory.toml").to_owned(),
    };
    println!("config file:          {path}");
    println!("registered backends:  {:?}", registry::names());

    // StorageOptions (config + flags) → StorageFactoryConfig → DefaultStorageFactory.
    let mut options = StorageOptions::load(&path)?;
    options.apply_args(args)?;
    let completed = options.complete()?;
    let metrics = StorageMetrics::new();
    // One chain for every resource, innermost first: watch cache (where the config wants
    // one), tracing, metrics.
    let chain = LayerChain::new().with(WatchCacheLayer::default()).with(TracingLayer).with(metrics.layer());
    let getter = StorageFactoryRestOptionsFactory::from_config(&completed, chain);
    let _backends = check_backends(getter.factory().as_ref()).await?;
    println!("backends healthy:     {}", getter.factory().backends().len());

    let resources = [
        (GroupResource::core("configmaps"), "ConfigMap", json!({"data": {"greeting": "hello"}})),
        (GroupResource::core("events"), "Event", json!({"reason": "Started", "message": "factory example ran"})),
        (GroupResource::core("secrets"), "Secret", json!({"data": {"password": "aHVudGVyMg=="}})),
    ];
    for (gr, kind, body) in resources {
        let rest = getter.get_rest_options(&gr)?;
        let config = &rest.storage_config;
        println!();
        println!("{gr}:");
        println!(
            "  backend:          {} {}",
            config.backend.backend,
            serde_json::to_string(&config.backend.options).unwrap_or_default()
        );
        println!("  keys:             {}/{}/<namespace>/<name>", config.prefix, rest.resource_prefix);
        println!("  codec:            {}", config.media_type);
        println!("  watch cache:      {}", rest.watch_cache);
        println!("  layers:           {:?}", rest.layers.names());
        let storage = rest.create_storage().await?;

        // Upsert one object (the example can run again and again).
        let key = format!("/{}/default/example", rest.resource_prefix);
        let fields = body.as_object().cloned().unwrap_or_default();
        let stored = storage
            .guaranteed_update(
                &key,
                true,
                None,
                &mut |current, _| {
                    let mut object = if current.metadata.name.is_empty() {
                        Object::new("v1", kind, "default", "example")
                    } else {
                        current
                    };
                    object.fields.extend(fields.clone());
                    Ok((object, None))
                },
                None,
            )
            .await?;
        println!("  stored:           {key} at resourceVersion {}", stored.metadata.resource_version);
        let list = storage
            .get_list(
                &format!("/{}/default", rest.resource_prefix),
                ListOptions { recursive: true, ..Default::default() },
            )
            .await?;
        println!("  listed:           {} object(s) at resourceVersion {}", list.items.len(), list.resource_version);
        let read = storage.get(&key, GetOptions::default()).await?;
        println!("  read back:        {}", read.map(|o| o.metadata.name).unwrap_or_default());

        // What is really on the backend (the pooled instance the store uses).
        let backend = registry::open(&config.backend).await?;
        let raw_key = format!("{}/{}/default/example", config.prefix, rest.resource_prefix);
        if let Some(kv) = backend.get(&raw_key, 0).await?.kv {
            let shown: String =
                kv.value.iter().take(40).flat_map(|b| std::ascii::escape_default(*b)).map(char::from).collect();
            println!("  at rest:          {shown}...");
        }
    }

    println!();
    println!("metrics (excerpt):");
    for line in metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("apistore_requests_total") || l.starts_with("apiserver_storage_objects"))
    {
        println!("  {line}");
    }
    Ok(())
}

//! Fuzzing on stable Rust with proptest: every parser of untrusted input — continue tokens,
//! label and field selectors, resourceVersion parameters, the storage `Config` (TOML, YAML,
//! JSON), kube-apiserver flags, `EncryptionConfiguration` — gets generated inputs (random
//! text, and valid inputs with random parts) and must answer with a typed 4xx error or a
//! value, never a panic or an internal error.
//!
//! **One runner for every target.** A target is a [`FuzzTarget`] registered with
//! `inventory::submit!` by the crate that can reach what it fuzzes: this module registers the
//! parsers above; the API server example registers request bodies (decoded and patched, and
//! sent to a running server over HTTP) and sled's corrupted data directories. [`run_cli`]
//! executes N inputs per registered target (`--iterations N`); a binary that links every
//! crate — `apiserver fuzz` (feature `fuzz` of `apistore-apiserver`) — runs them all, and
//! `examples/audit_fuzz.rs` runs the ones linked into the core crate.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

use crate::config::{Config, ConfigFormat};
use crate::continue_token;
use crate::encryption::EncryptionConfiguration;
use crate::error::Error;
use crate::factory::StorageOptions;
use crate::selector::{FieldSelector, LabelSelector};
use crate::storage::ResourceVersionMatch;
use crate::version::{parse_list_resource_version, parse_resource_version, ResourceVersion};

/// The fuzz targets of this crate, by name.
pub const TARGETS: &[&str] = &[
    "continue_token",
    "label_selector",
    "field_selector",
    "resource_version",
    "config",
    "kube_flags",
    "encryption_config",
];

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuzzStats {
    /// Inputs executed.
    pub inputs: u64,
    /// Inputs that parsed.
    pub accepted: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// An error is "typed" when it is a client error (4xx), not an internal one.
fn typed(target: &str, input: &str, error: &Error) -> Result<(), TestCaseError> {
    if (400..500).contains(&error.code()) {
        Ok(())
    } else {
        Err(TestCaseError::fail(format!("{target}: {input:?} gave a {} error: {error}", error.code())))
    }
}

fn outcome<T>(target: &str, input: &str, result: crate::Result<T>) -> Result<bool, TestCaseError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => typed(target, input, &e).map(|_| false),
    }
}

/// Text for parsers of query parameters: any string, printable ASCII, or pieces of selector,
/// field-path and number syntax glued together (other crates' targets reuse it).
pub fn text() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        proptest::collection::vec(
            prop_oneof![
                Just("=".to_owned()),
                Just("==".to_owned()),
                Just("!=".to_owned()),
                Just(",".to_owned()),
                Just(" in ".to_owned()),
                Just(" notin ".to_owned()),
                Just("(".to_owned()),
                Just(")".to_owned()),
                Just("!".to_owned()),
                Just("a".to_owned()),
                Just("metadata.name".to_owned()),
                Just("k8s.io/x".to_owned()),
                Just("\\".to_owned()),
                Just("-".to_owned()),
                Just("0".to_owned()),
                "[a-z0-9./_-]{1,8}",
            ],
            0..12
        )
        .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

fn token() -> BoxedStrategy<String> {
    let json = (prop_oneof![Just("meta.k8s.io/v1".to_owned()), any::<String>()], any::<i64>(), text())
        .prop_map(|(v, rv, start)| serde_json::json!({ "v": v, "rv": rv, "start": start }).to_string());
    let bytes = prop_oneof![
        json,
        text(),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
    ];
    prop_oneof![
        bytes.clone().prop_map(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)),
        bytes.prop_map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
        text(),
    ]
    .boxed()
}

fn config_text() -> BoxedStrategy<(ConfigFormat, String)> {
    let key = prop_oneof![
        Just("storage_backend"),
        Just("backend"),
        Just("prefix"),
        Just("etcd_servers"),
        Just("watch_cache"),
        Just("default_watch_cache_size"),
        Just("storage_media_type"),
        Just("resources"),
        Just("sizes"),
        Just("compaction_interval"),
        Just("encryption_provider_config"),
        Just("x"),
    ];
    let value = prop_oneof![
        Just("\"sled\"".to_owned()),
        Just("\"etcd3\"".to_owned()),
        Just("true".to_owned()),
        Just("-1".to_owned()),
        Just("[\"http://a:1\"]".to_owned()),
        Just("{}".to_owned()),
        Just("\"\"".to_owned()),
        Just("1e400".to_owned()),
        "\"[ -~]{0,12}\"",
        any::<i64>().prop_map(|n| n.to_string()),
    ];
    let toml = proptest::collection::vec((key.clone(), value.clone()), 0..6)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>());
    let json = proptest::collection::vec((key.clone(), value.clone()), 0..6).prop_map(|kv| {
        format!("{{{}}}", kv.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(", "))
    });
    let yaml = proptest::collection::vec((key, value), 0..6)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| format!("{k}: {v}\n")).collect::<String>());
    prop_oneof![
        toml.prop_map(|t| (ConfigFormat::Toml, t)),
        json.prop_map(|t| (ConfigFormat::Json, t)),
        yaml.prop_map(|t| (ConfigFormat::Yaml, t)),
        text().prop_map(|t| (ConfigFormat::Toml, t)),
        text().prop_map(|t| (ConfigFormat::Yaml, t)),
        text().prop_map(|t| (ConfigFormat::Json, t)),
    ]
    .boxed()
}

fn flags() -> BoxedStrategy<Vec<String>> {
    let flag = prop_oneof![
        Just("--etcd-servers"),
        Just("--etcd-prefix"),
        Just("--storage-backend"),
        Just("--watch-cache"),
        Just("--watch-cache-sizes"),
        Just("--etcd-servers-overrides"),
        Just("--default-watch-cache-size"),
        Just("--storage-media-type"),
        Just("--etcd-compaction-interval"),
        Just("--encryption-provider-config"),
        Just("--unknown"),
    ];
    let value = prop_oneof![
        Just("http://127.0.0.1:2379".to_owned()),
        Just("/pods#http://a;http://b".to_owned()),
        Just("pods#5".to_owned()),
        Just("true".to_owned()),
        Just("5m".to_owned()),
        Just("-3".to_owned()),
        text(),
    ];
    proptest::collection::vec((flag, value, any::<bool>()), 0..5)
        .prop_map(|items| {
            items
                .into_iter()
                .flat_map(|(f, v, joined)| if joined { vec![format!("{f}={v}")] } else { vec![f.to_owned(), v] })
                .collect()
        })
        .boxed()
}

fn encryption_text() -> BoxedStrategy<String> {
    let provider = prop_oneof![
        Just("identity: {}".to_owned()),
        "aescbc:\n        keys:\n        - name: k\n          secret: [A-Za-z0-9+/=]{0,48}".prop_map(|s| s),
        "aesgcm:\n        keys:\n        - name: k\n          secret: [A-Za-z0-9+/=]{0,48}".prop_map(|s| s),
        "secretbox:\n        keys:\n        - name: k\n          secret: [A-Za-z0-9+/=]{0,48}".prop_map(|s| s),
        text(),
    ];
    let document = (prop_oneof![Just("pods"), Just("*.*"), Just("secrets"), Just("x.y")], provider).prop_map(|(r, p)| {
        format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n    - {r}\n    providers:\n      - {p}\n")
    });
    prop_oneof![document, text()].boxed()
}

/// A fuzz target any crate registers (`apistore::inventory::submit!`) for [`run_cli`].
pub struct FuzzTarget {
    /// Its name on the command line (`--target NAME`); unique across the linked crates.
    pub name: &'static str,
    /// What it feeds and what it demands, in one line (`--list`).
    pub about: &'static str,
    /// Runs `iterations` inputs from `seed`: Ok with what the run did, or Err describing the
    /// (shrunk, where the target can) input that broke the target's promise.
    pub run: fn(iterations: u32, seed: u64) -> Result<FuzzStats, String>,
}

inventory::collect!(FuzzTarget);

/// Every target linked into this binary, by name.
pub fn targets() -> Vec<&'static FuzzTarget> {
    let mut targets: Vec<&'static FuzzTarget> = inventory::iter::<FuzzTarget>.into_iter().collect();
    targets.sort_by_key(|t| t.name);
    targets
}

/// A proptest runner of `iterations` cases from `seed` (no failure files; shrinking bounded by
/// `max_shrink_iters`).
pub fn test_runner(iterations: u32, seed: u64, max_shrink_iters: u32) -> TestRunner {
    let config =
        RunnerConfig { cases: iterations, failure_persistence: None, max_shrink_iters, ..RunnerConfig::default() };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed_bytes);
    TestRunner::new_with_rng(config, rng)
}

macro_rules! core_targets {
    ($($name:literal: $about:literal),* $(,)?) => {
        $(inventory::submit! {
            FuzzTarget { name: $name, about: $about, run: |iterations, seed| parser(($name), iterations, seed) }
        })*
    };
}

core_targets! {
    "continue_token": "continue tokens (base64 of JSON with random parts): a 4xx error or a position",
    "label_selector": "label selectors: a 4xx error or a selector",
    "field_selector": "field selectors: a 4xx error or a selector",
    "resource_version": "resourceVersion and resourceVersionMatch parameters: a 4xx error or a version",
    "config": "the storage Config in TOML, YAML and JSON: a 4xx error or a valid config",
    "kube_flags": "kube-apiserver storage flags: a 4xx error or options",
    "encryption_config": "EncryptionConfiguration documents: a 4xx error or a valid configuration",
}

/// Runs `iterations` inputs of the registered target `target` from `seed`; Err names an
/// unknown target or describes the input that broke the target's promise.
pub fn fuzz(target: &str, iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    match targets().into_iter().find(|t| t.name == target) {
        Some(t) => (t.run)(iterations, seed).map_err(|e| format!("{target}: {e}")),
        None => {
            let names: Vec<&str> = targets().iter().map(|t| t.name).collect();
            Err(format!("unknown fuzz target {target:?}; targets: {names:?}"))
        }
    }
}

/// The command line of a fuzz runner: `--iterations N` (default 10,000) inputs per target,
/// `--seed S` (default 1), `--target NAME` (repeatable, or comma-separated; default every
/// registered target), `--list`. Prints one line per target and the total; every target
/// runs even after one fails, and the exit code is a failure if any did (its message on
/// stderr) or if the arguments are wrong.
pub fn run_cli(args: &[String]) -> ExitCode {
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let number = |name: &str, default: u64| match value(name) {
        None => Ok(default),
        Some(text) => text.replace('_', "").parse::<u64>().map_err(|e| format!("{name} {text:?}: {e}")),
    };
    let (iterations, seed) = match (number("--iterations", 10_000), number("--seed", 1)) {
        (Ok(n), Ok(s)) if n <= u64::from(u32::MAX) => (n as u32, s),
        (Ok(n), Ok(_)) => return usage(&format!("--iterations {n} is more than {}", u32::MAX)),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    if args.iter().any(|a| a == "--list") {
        for target in targets() {
            println!("{:<20} {}", target.name, target.about);
        }
        return ExitCode::SUCCESS;
    }
    let mut chosen: Vec<String> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if arg == "--target" {
            match args.get(i + 1) {
                Some(names) => chosen.extend(names.split(',').map(str::to_owned)),
                None => return usage("--target needs a name"),
            }
        }
    }
    if chosen.is_empty() {
        chosen = targets().iter().map(|t| t.name.to_owned()).collect();
    }
    let (mut total, mut failed) = (0u64, 0usize);
    for target in &chosen {
        match fuzz(target, iterations, seed) {
            Ok(stats) => {
                total += stats.inputs;
                println!(
                    "{target}: {} inputs ({} accepted) in {:.1} s, no panic, only typed errors",
                    stats.inputs,
                    stats.accepted,
                    stats.elapsed.as_secs_f64()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("FAILED {e}");
            }
        }
    }
    println!("total: {total} inputs over {} targets, {failed} failed", chosen.len());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{message}\nusage: [--iterations N] [--seed S] [--target NAME[,NAME]...] [--list]");
    ExitCode::from(2)
}

/// One of this crate's parser targets.
fn parser(target: &str, iterations: u32, seed: u64) -> Result<FuzzStats, String> {
    let mut runner = test_runner(iterations, seed, 500);
    let started = Instant::now();
    let accepted = std::sync::atomic::AtomicU64::new(0);
    let count = |ok: bool| {
        if ok {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let result: Result<(), String> = match target {
        "continue_token" => runner
            .run(&(token(), "[a-z/]{0,12}"), |(t, prefix)| {
                count(outcome(target, &t, continue_token::decode(&t, &format!("/{prefix}/")))?);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "label_selector" => runner
            .run(&text(), |s| {
                let parsed = LabelSelector::parse(&s);
                count(outcome(target, &s, parsed)?);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "field_selector" => runner
            .run(&text(), |s| {
                count(outcome(target, &s, FieldSelector::parse(&s))?);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "resource_version" => runner
            .run(&text(), |s| {
                count(outcome(target, &s, parse_resource_version(&s))?);
                outcome(target, &s, parse_list_resource_version(&s))?;
                outcome(target, &s, ResourceVersionMatch::parse(&s))?;
                // The typed value the API server parses once: the same inputs accepted.
                let read = outcome(target, &s, ResourceVersion::parse_read(&s))?;
                let watch = outcome(target, &s, ResourceVersion::parse_watch(&s))?;
                if read != watch {
                    return Err(TestCaseError::fail(format!("{s:?}: accepted by a read {read}, by a watch {watch}")));
                }
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "config" => runner
            .run(&config_text(), |(format, t)| {
                let parsed = Config::parse(&t, format);
                let ok = outcome(target, &t, parsed.and_then(|c| c.validate().map(|_| c)))?;
                count(ok);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "kube_flags" => runner
            .run(&flags(), |args| {
                let mut options = StorageOptions::new(Config::default());
                count(outcome(target, &args.join(" "), options.apply_args(&args))?);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        "encryption_config" => runner
            .run(&encryption_text(), |t| {
                let parsed = EncryptionConfiguration::parse(&t);
                count(outcome(target, &t, parsed.and_then(|c| c.validate().map(|_| c)))?);
                Ok(())
            })
            .map_err(|e| e.to_string()),
        other => return Err(format!("not a parser target: {other:?}; parser targets: {TARGETS:?}")),
    };
    result?;
    Ok(FuzzStats { inputs: u64::from(iterations), accepted: accepted.into_inner(), elapsed: started.elapsed() })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_survives_a_small_run() {
        for target in super::TARGETS {
            match super::fuzz(target, 300, 7) {
                Ok(stats) => assert_eq!(stats.inputs, 300),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn every_parser_target_is_registered_for_the_runner() {
        let names: Vec<&str> = super::targets().iter().map(|t| t.name).collect();
        for target in super::TARGETS {
            assert!(names.contains(target), "{target} is not registered: {names:?}");
        }
        assert!(super::fuzz("no_such_target", 1, 1).is_err());
    }
}

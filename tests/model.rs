//! Random operations against both backends, checked step by step against a model: a
//! `BTreeMap` of byte keys with absolute expirations, read under a clock that moves.

mod common;

use std::collections::BTreeMap;

use std::sync::LazyLock;
use std::time::Duration;

use kv_binding::backends::redis::RedisConfig;
use kv_binding::backends::sled::StoreConfig;
use kv_binding::store::{Entry, Namespace, PutOptions, Value};
use proptest::prelude::*;
use tempfile::TempDir;

/// Runs every operation: a local namespace's complete at once, a Redis one's on the network.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
});

fn wait<T>(work: impl std::future::Future<Output = T>) -> T {
    RUNTIME.block_on(work)
}

const START_MS: i64 = 1_900_000_000_000;

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: String,
        len: usize,
        ttl: Option<i32>,
        metadata: Option<u8>,
    },
    Delete(String),
    Get(String),
    List {
        prefix: String,
        limit: i32,
    },
    Advance(i64),
    /// Closes the store and opens it again (sled); the memory backend ignores it.
    Reopen,
}

#[derive(Clone, Debug, PartialEq)]
struct Stored {
    value: Vec<u8>,
    expiration: Option<i64>,
    metadata: Option<String>,
}

/// Keys from a small alphabet, so operations collide and prefixes match; some are long
/// enough that their values go to the blob tree.
fn key() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab/é😀]{1,4}").unwrap()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), prop_oneof![0..40usize, 1000..3000usize], proptest::option::of(60..200i32), proptest::option::of(any::<u8>()))
            .prop_map(|(key, len, ttl, metadata)| Op::Put { key, len, ttl, metadata }),
        1 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        2 => (proptest::string::string_regex("[ab/é]{0,2}").unwrap(), 0..4i32)
            .prop_map(|(prefix, limit)| Op::List { prefix, limit }),
        1 => (0..150_000i64).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
    ]
}

fn value_for(key: &str, len: usize, step: usize) -> Vec<u8> {
    let seed = format!("{key}#{step}#");
    seed.bytes().cycle().take(len).collect()
}

fn live(model: &BTreeMap<Vec<u8>, Stored>, now_ms: i64) -> Vec<(&Vec<u8>, &Stored)> {
    model
        .iter()
        .filter(|(_, stored)| stored.expiration.is_none_or(|s| now_ms < s * 1000))
        .collect()
}

fn loaded(entry: &Entry) -> Vec<u8> {
    match &entry.value {
        Value::Loaded(bytes) => bytes.to_vec(),
        Value::Owned(bytes) => bytes.clone(),
        Value::Deferred { .. } => panic!("deferred with no bound"),
    }
}

/// Runs `ops` through the handles `open` returns, taking turns, so that handles sharing a
/// store must see each other's writes. `Reopen` drops every handle and calls `open` again
/// when `reopens` is set.
fn run(open: &dyn Fn() -> Vec<Namespace>, reopens: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<Vec<u8>, Stored> = BTreeMap::new();
    let mut now = START_MS;
    let mut handles = open();
    for (step, op) in ops.iter().enumerate() {
        let namespace = &handles[step % handles.len()];
        match op {
            Op::Put {
                key,
                len,
                ttl,
                metadata,
            } => {
                let value = value_for(key, *len, step);
                let metadata = metadata.map(|m| m.to_string());
                let options = PutOptions {
                    expiration_ttl: *ttl,
                    metadata: metadata.clone(),
                    ..PutOptions::default()
                };
                wait(namespace.put_async(key, &value, &options, now)).unwrap();
                let expiration = ttl.map(|ttl| now.div_euclid(1000) + i64::from(ttl));
                model.insert(
                    key.as_bytes().to_vec(),
                    Stored {
                        value,
                        expiration,
                        metadata,
                    },
                );
            }
            Op::Delete(key) => {
                wait(namespace.delete_async(key)).unwrap();
                model.remove(key.as_bytes());
            }
            Op::Get(key) => {
                let got = wait(namespace.get_async(key, None, u64::MAX, now)).unwrap();
                let want = model
                    .get(key.as_bytes())
                    .filter(|s| s.expiration.is_none_or(|e| now < e * 1000));
                prop_assert_eq!(
                    got.is_some(),
                    want.is_some(),
                    "get {} at step {}",
                    key,
                    step
                );
                if let (Some(got), Some(want)) = (got, want) {
                    prop_assert_eq!(loaded(&got), want.value.clone());
                    prop_assert_eq!(got.expiration, want.expiration);
                    let metadata = got.metadata.map(|m| String::from_utf8(m.to_vec()).unwrap());
                    prop_assert_eq!(metadata, want.metadata.clone());
                }
            }
            Op::List { prefix, limit } => {
                // Page through everything, checking each page against the model.
                let want: Vec<_> = live(&model, now)
                    .into_iter()
                    .filter(|(key, _)| key.starts_with(prefix.as_bytes()))
                    .collect();
                let mut listed = Vec::new();
                let mut cursor = None;
                for pages in 1.. {
                    // A cursor that does not move on would page forever.
                    prop_assert!(pages <= want.len() + 1, "list {:?} does not end", prefix);
                    let page =
                        wait(namespace.list_async(prefix, *limit, cursor.as_deref(), now)).unwrap();
                    let page_size = if *limit <= 0 { 1000 } else { *limit as usize };
                    prop_assert!(page.keys.len() <= page_size);
                    listed.extend(page.keys);
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                prop_assert_eq!(
                    listed.len(),
                    want.len(),
                    "list {:?} at step {}",
                    prefix,
                    step
                );
                for (got, (key, stored)) in listed.iter().zip(want) {
                    prop_assert_eq!(got.name.as_ref(), key.as_slice());
                    prop_assert_eq!(got.expiration, stored.expiration);
                    let metadata = got
                        .metadata
                        .as_ref()
                        .map(|m| String::from_utf8(m.to_vec()).unwrap());
                    prop_assert_eq!(metadata, stored.metadata.clone());
                }
            }
            Op::Advance(ms) => now += ms,
            Op::Reopen if reopens => {
                handles.clear();
                handles = open();
            }
            Op::Reopen => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(64), ..ProptestConfig::default() })]

    #[test]
    fn memory_backend_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(&|| vec![Namespace::in_memory()], false, &ops)?;
    }

    #[test]
    fn sled_backend_matches_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = TempDir::new().unwrap();
        let open = || vec![Namespace::open(dir.path(), "model", &StoreConfig::default()).unwrap()];
        run(&open, true, &ops)?;
    }

    /// Two handles on one namespace, a record cache so small that it evicts all the time, and
    /// values from 2000 bytes up in value files.
    #[test]
    fn sled_handles_sharing_a_small_cache_match_the_model(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let dir = TempDir::new().unwrap();
        let config = StoreConfig {
            record_cache_capacity: 600,
            file_value_min: 2000,
            ..StoreConfig::default()
        };
        let open = || {
            let handle = || Namespace::open(dir.path(), "model", &config).unwrap();
            vec![handle(), handle()]
        };
        run(&open, true, &ops)?;
    }
}

/// Runs the model on Redis at `url`: two handles on one namespace per case, split into
/// `partitions` (so that list merges them); a reopen connects afresh.
fn run_on_redis(url: &str, cluster: bool, partitions: u32, cases: u32) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: common::cases(cases),
        ..ProptestConfig::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&proptest::collection::vec(op(), 1..120), |ops| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("model-{case}");
            let open = || {
                let handle = || {
                    let config = RedisConfig {
                        url: url.to_owned(),
                        cluster,
                        key_prefix: "kv:".into(),
                        timeout: Duration::from_secs(5),
                        tls: None,
                        partitions: Some(partitions),
                    };
                    Namespace::connect(&name, config).unwrap()
                };
                vec![handle(), handle()]
            };
            run(&open, true, &ops)
        })
        .unwrap();
}

/// On a single server of this test's own, stopped when it ends.
#[test]
fn redis_handles_match_the_model() {
    if let Some(server) = common::redis::RedisServer::start() {
        run_on_redis(&server.url, false, 3, 64);
    }
}

/// On a Valkey server of this test's own: the same commands and scripts as Redis.
#[test]
fn valkey_handles_match_the_model() {
    if let Some(server) = common::redis::RedisServer::start_valkey() {
        run_on_redis(&server.url, false, 3, 32);
    }
}

/// On a 3-shard Redis Cluster of this test's own, the namespace spread over 16 partitions
/// (fewer cases: every list there is 16 round trips).
#[test]
fn redis_cluster_handles_match_the_model() {
    if let Some(cluster) = common::redis::RedisCluster::start() {
        run_on_redis(&cluster.url, true, 16, 32);
    }
}

//! Simulated eventual consistency: random operations at three locations of one namespace,
//! checked step by step against a model of the store and of each location's read cache.

mod common;

use std::collections::{BTreeMap, HashMap};

use kv_binding::backends::sled::StoreConfig;
use kv_binding::store::{CacheStatus, Namespace, PutOptions};
use proptest::prelude::*;
use tempfile::TempDir;

const START_MS: i64 = 1_900_000_000_000;
const LOCATIONS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Put {
        at: usize,
        key: String,
        ttl: Option<i32>,
    },
    Delete {
        at: usize,
        key: String,
    },
    Get {
        at: usize,
        key: String,
        cache_ttl: Option<i32>,
    },
    List {
        at: usize,
        prefix: String,
    },
    Clear {
        at: usize,
    },
    Advance(i64),
}

fn key() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ab/]{1,3}").unwrap()
}

fn op() -> impl Strategy<Value = Op> {
    let at = 0..LOCATIONS;
    prop_oneof![
        3 => (at.clone(), key(), proptest::option::of(60..120i32))
            .prop_map(|(at, key, ttl)| Op::Put { at, key, ttl }),
        1 => (at.clone(), key()).prop_map(|(at, key)| Op::Delete { at, key }),
        4 => (at.clone(), key(), proptest::option::of(30..200i32))
            .prop_map(|(at, key, cache_ttl)| Op::Get { at, key, cache_ttl }),
        2 => (at.clone(), proptest::string::string_regex("[ab/]{0,2}").unwrap())
            .prop_map(|(at, prefix)| Op::List { at, prefix }),
        1 => at.prop_map(|at| Op::Clear { at }),
        2 => (0..90_000i64).prop_map(Op::Advance),
    ]
}

/// A value in the model's store: its text and absolute expiration in seconds.
type Stored = (String, Option<i64>);

fn alive(stored: &Stored, now_ms: i64) -> bool {
    stored.1.is_none_or(|seconds| now_ms < seconds * 1000)
}

/// The keys of a list page, with their expirations when listed.
type Listed = Vec<(String, Option<i64>)>;

/// One location of the model: what it read, until when.
#[derive(Default)]
struct Cache {
    reads: HashMap<String, (Option<Stored>, i64)>,
    pages: HashMap<String, (Listed, i64)>,
}

fn run(locations: &[Namespace], ops: &[Op]) -> Result<(), TestCaseError> {
    let mut store: BTreeMap<String, Stored> = BTreeMap::new();
    let mut caches: Vec<Cache> = (0..LOCATIONS).map(|_| Cache::default()).collect();
    let mut now = START_MS;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Put { at, key, ttl } => {
                let value = format!("{key}#{step}");
                let options = PutOptions {
                    expiration_ttl: *ttl,
                    ..PutOptions::default()
                };
                locations[*at]
                    .put(key, value.as_bytes(), &options, now)
                    .unwrap();
                let expiration = ttl.map(|ttl| now.div_euclid(1000) + i64::from(ttl));
                store.insert(key.clone(), (value, expiration));
                forget(&mut caches[*at], key);
            }
            Op::Delete { at, key } => {
                locations[*at].delete(key).unwrap();
                store.remove(key);
                forget(&mut caches[*at], key);
            }
            Op::Get { at, key, cache_ttl } => {
                let (got, status) = locations[*at]
                    .get_reporting(key, *cache_ttl, u64::MAX, now)
                    .unwrap();
                let got = got.map(|entry| {
                    let bytes = entry.value.bytes().unwrap().to_vec();
                    (String::from_utf8(bytes).unwrap(), entry.expiration)
                });
                let ttl_ms = i64::from(cache_ttl.unwrap_or(60)) * 1000;
                let cache = &mut caches[*at];
                let (want, want_status) = match cache.reads.get_mut(key) {
                    Some((answer, until)) if now < *until => {
                        *until = (*until).min(now + ttl_ms);
                        let answer = answer.clone().filter(|stored| alive(stored, now));
                        (answer, CacheStatus::Hit)
                    }
                    _ => {
                        let answer = store.get(key).filter(|s| alive(s, now)).cloned();
                        cache
                            .reads
                            .insert(key.clone(), (answer.clone(), now + ttl_ms));
                        (answer, CacheStatus::Miss)
                    }
                };
                prop_assert_eq!(got, want, "get {} at location {}, step {}", key, at, step);
                prop_assert_eq!(status, Some(want_status));
            }
            Op::List { at, prefix } => {
                let page = locations[*at].list(prefix, 0, None, now).unwrap();
                let got: Vec<String> = page
                    .keys
                    .iter()
                    .map(|key| String::from_utf8(key.name.to_vec()).unwrap())
                    .collect();
                let cache = &mut caches[*at];
                // A cached page loses the keys that expired since, as listed then.
                let listed = match cache.pages.get(prefix) {
                    Some((listed, until)) if now < *until => listed.clone(),
                    _ => {
                        let listed: Listed = store
                            .iter()
                            .filter(|(name, stored)| name.starts_with(prefix) && alive(stored, now))
                            .map(|(name, (_, expiration))| (name.clone(), *expiration))
                            .collect();
                        cache
                            .pages
                            .insert(prefix.clone(), (listed.clone(), now + 60_000));
                        listed
                    }
                };
                let want: Vec<String> = listed
                    .into_iter()
                    .filter(|(_, expiration)| expiration.is_none_or(|s| now < s * 1000))
                    .map(|(name, _)| name)
                    .collect();
                prop_assert_eq!(
                    got,
                    want,
                    "list {:?} at location {}, step {}",
                    prefix,
                    at,
                    step
                );
            }
            Op::Clear { at } => {
                locations[*at].clear().unwrap();
                store.clear();
                for cache in &mut caches {
                    *cache = Cache::default();
                }
            }
            Op::Advance(ms) => now += ms,
        }
    }
    Ok(())
}

// A write at a location forgets the key there, and the cached pages its key falls under.
fn forget(cache: &mut Cache, key: &str) {
    cache.reads.remove(key);
    cache
        .pages
        .retain(|prefix, _| !key.starts_with(prefix.as_str()));
}

fn locations_of(first: Namespace) -> Vec<Namespace> {
    let first = first.eventually_consistent();
    let others: Vec<Namespace> = (1..LOCATIONS).map(|_| first.at_new_location()).collect();
    std::iter::once(first).chain(others).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(64), ..ProptestConfig::default() })]

    #[test]
    fn memory_locations_match_the_model(ops in proptest::collection::vec(op(), 1..150)) {
        run(&locations_of(Namespace::in_memory()), &ops)?;
    }

    #[test]
    fn sled_locations_match_the_model(ops in proptest::collection::vec(op(), 1..150)) {
        let dir = TempDir::new().unwrap();
        let namespace = Namespace::open(dir.path(), "model", &StoreConfig::default()).unwrap();
        run(&locations_of(namespace), &ops)?;
    }
}

//! Many threads on one sled namespace at once: whatever order their operations take, no read
//! may see a value nobody wrote or one older than a value it saw before, and the record cache
//! must end up agreeing with sled. Races are caught by chance: a fill made without the cache
//! lock (read sled, let go, fill) failed 2 runs in 5 with a yield in its window, 1 in 6
//! without.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use kv_binding::backends::sled::StoreConfig;
use kv_binding::store::{Namespace, PutOptions};
use tempfile::TempDir;

const NOW_MS: i64 = 1_900_000_000_000;
const KEYS: usize = 24;
const WRITERS: usize = 3;
const ROUNDS: usize = 10_000;

fn key(i: usize) -> String {
    format!("key:{i:02}")
}

fn text(namespace: &Namespace, key: &str) -> Option<String> {
    let entry = namespace.get(key, None, u64::MAX, NOW_MS).unwrap()?;
    let Some(bytes) = entry.value.bytes() else {
        panic!("{key} was deferred")
    };
    Some(String::from_utf8(bytes.to_vec()).unwrap())
}

/// The value written in `round`: the round first, so readers can tell which is newer. Some
/// are long enough to live in the blob tree.
fn value(writer: usize, round: usize) -> String {
    let tag = format!("{round:06}:w{writer}");
    if round.is_multiple_of(5) {
        format!("{tag}:{}", "x".repeat(1500))
    } else {
        tag
    }
}

fn round_of(value: &str) -> usize {
    value[..6].parse().unwrap()
}

/// `hashed`: the keys exist before the store opens, so the namespace is cached by heat and
/// reads that miss fill the cache from sled while writers race them. Otherwise the namespace
/// is empty at open and held complete.
fn run(config: &StoreConfig, hashed: bool) {
    let dir = TempDir::new().unwrap();
    let seed = |namespace: &Namespace| {
        for i in 0..KEYS {
            let options = PutOptions::default();
            namespace.put(&key(i), b"seed", &options, NOW_MS).unwrap();
        }
    };
    if hashed {
        seed(&Namespace::open(dir.path(), "ns", config).unwrap());
    }
    let namespace = Namespace::open(dir.path(), "ns", config).unwrap();
    if !hashed {
        seed(&namespace);
    }
    let written: HashSet<String> = (0..WRITERS)
        .flat_map(|w| (0..ROUNDS).map(move |r| value(w, r)))
        .chain(["seed".to_owned()])
        .collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for reader in 0..2 {
            let (namespace, written, done) = (&namespace, &written, &done);
            scope.spawn(move || {
                // Each key has one writer, whose rounds only go up: a read older than one
                // already seen is a stale cache entry.
                let mut newest = [0; KEYS];
                let mut i = reader;
                while !done.load(Ordering::Relaxed) {
                    let k = i % KEYS;
                    if let Some(found) = text(namespace, &key(k)) {
                        assert!(written.contains(&found), "read {found:?}, never written");
                        let round = if found == "seed" { 0 } else { round_of(&found) };
                        assert!(round >= newest[k], "{} went back to {found:?}", key(k));
                        newest[k] = round;
                    }
                    i += 7;
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let namespace = &namespace;
                scope.spawn(move || {
                    for round in 1..ROUNDS {
                        let k = key((round * WRITERS + writer) % KEYS);
                        if round.is_multiple_of(11) {
                            namespace.delete(&k).unwrap();
                        } else {
                            let v = value(writer, round);
                            let options = PutOptions::default();
                            namespace.put(&k, v.as_bytes(), &options, NOW_MS).unwrap();
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    // What the cache answers now must be what sled holds: read both, then reopen and read
    // sled alone.
    let cached: Vec<_> = (0..KEYS).map(|i| text(&namespace, &key(i))).collect();
    let listed = namespace.list("", 1000, None, NOW_MS).unwrap().keys.len();
    drop(namespace);
    let reopened = Namespace::open(dir.path(), "ns", config).unwrap();
    let stored: Vec<_> = (0..KEYS).map(|i| text(&reopened, &key(i))).collect();
    assert_eq!(cached, stored);
    assert_eq!(listed, stored.iter().flatten().count());
}

#[test]
fn a_namespace_cached_by_heat_agrees_with_sled_after_racing_threads() {
    let config = StoreConfig {
        record_cache_capacity: 4 * 1024,
        ..StoreConfig::default()
    };
    run(&config, true);
}

#[test]
fn a_complete_namespace_agrees_with_sled_after_racing_threads() {
    run(&StoreConfig::default(), false);
}

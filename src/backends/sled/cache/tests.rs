//! The record cache's rules: complete namespaces, the hash cache, one byte budget.

use super::*;

#[test]
fn an_empty_namespace_is_complete_and_a_filled_one_is_not() {
    let cache = RecordCache::new(1 << 20);
    let fresh = cache.namespace("fresh", true);
    let old = cache.namespace("old", false);
    assert_eq!(cache.namespace("fresh", false), fresh);
    let mut guard = cache.lock();
    assert_eq!(guard.get(fresh, b"a"), Cached::Absent);
    assert_eq!(guard.get(old, b"a"), Cached::Unknown);
    guard.set(old, b"a", Some(&IVec::from(b"record")));
    assert_eq!(guard.get(old, b"a"), Cached::Record(IVec::from(b"record")));
    // Namespaces do not see each other's keys.
    assert_eq!(guard.get(fresh, b"a"), Cached::Absent);
    guard.set(old, b"a", None);
    assert_eq!(guard.get(old, b"a"), Cached::Unknown);
}

#[test]
fn outgrowing_the_budget_makes_only_that_namespace_incomplete() {
    let cache = RecordCache::new(64 * 1024);
    let busy = cache.namespace("busy", true);
    let quiet = cache.namespace("quiet", true);
    let mut guard = cache.lock();
    let record = IVec::from(vec![7; 200]);
    for i in 0..1000u32 {
        guard.set(busy, &i.to_be_bytes(), Some(&record));
    }
    let held = (0..1000u32)
        .filter(|i| matches!(guard.get(busy, &i.to_be_bytes()), Cached::Record(_)))
        .count();
    assert!(held < 1000, "everything stayed: {held}");
    // An evicted key must not read as absent.
    assert!((0..1000u32).any(|i| guard.get(busy, &i.to_be_bytes()) == Cached::Unknown));
    assert_eq!(guard.get(quiet, b"x"), Cached::Absent);
}

#[test]
fn clear_and_forget() {
    let cache = RecordCache::new(1 << 20);
    let ns = cache.namespace("ns", true);
    let other = cache.namespace("other", true);
    let mut guard = cache.lock();
    guard.set(ns, b"a", Some(&IVec::from(b"1")));
    guard.set(other, b"a", Some(&IVec::from(b"2")));
    guard.forget(ns, b"b");
    assert_eq!(guard.get(ns, b"b"), Cached::Unknown);
    guard.clear(ns, true);
    assert_eq!(guard.get(ns, b"a"), Cached::Absent);
    assert_eq!(guard.get(ns, b"b"), Cached::Absent);
    assert_eq!(guard.get(other, b"a"), Cached::Record(IVec::from(b"2")));
}

#[test]
fn a_cache_of_no_bytes_knows_nothing() {
    let cache = RecordCache::new(0);
    let ns = cache.namespace("ns", true);
    let mut guard = cache.lock();
    assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
    guard.set(ns, b"a", Some(&IVec::from(b"1")));
    assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
    guard.clear(ns, true);
    assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
}

#[test]
fn a_namespace_cached_by_heat_keeps_what_fits_and_never_a_stale_record() {
    let cache = RecordCache::new(64 * 1024);
    let ns = cache.namespace("ns", false);
    let mut guard = cache.lock();
    for round in 0..3u8 {
        for i in 0..1000u32 {
            guard.set(ns, &i.to_be_bytes(), Some(&IVec::from(vec![round; 100])));
        }
    }
    let mut held = 0;
    for i in 0..1000u32 {
        match guard.get(ns, &i.to_be_bytes()) {
            Cached::Record(record) => {
                assert_eq!(record, IVec::from(vec![2; 100]));
                held += 1;
            }
            found => assert_eq!(found, Cached::Unknown),
        }
    }
    assert!(held > 0 && held < 1000, "held {held}");
}

#[test]
fn replacing_a_record_keeps_the_namespace_complete() {
    let cache = RecordCache::new(1 << 20);
    let ns = cache.namespace("ns", true);
    let mut guard = cache.lock();
    guard.set(ns, b"a", Some(&IVec::from(b"first")));
    guard.set(ns, b"a", Some(&IVec::from(b"second")));
    assert_eq!(guard.get(ns, b"a"), Cached::Record(IVec::from(b"second")));
    assert_eq!(guard.get(ns, b"b"), Cached::Absent);
}

#[test]
fn a_record_too_large_to_cache_replaces_the_cached_one() {
    let cache = RecordCache::new(4096);
    let ns = cache.namespace("ns", true);
    let hashed = cache.namespace("hashed", false);
    let mut guard = cache.lock();
    guard.set(ns, b"a", Some(&IVec::from(b"small")));
    guard.set(ns, b"a", Some(&IVec::from(vec![1; 8192])));
    assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
    guard.set(hashed, b"a", Some(&IVec::from(b"small")));
    assert_eq!(
        guard.get(hashed, b"a"),
        Cached::Record(IVec::from(b"small"))
    );
    guard.set(hashed, b"a", Some(&IVec::from(vec![1; 8192])));
    assert_eq!(guard.get(hashed, b"a"), Cached::Unknown);
}

fn scanned(
    guard: &CacheGuard<'_>,
    ns: u32,
    prefix: &[u8],
    after: Option<&[u8]>,
) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut visit = |key: &[u8], _: &IVec| -> Result<bool, ()> {
        keys.push(String::from_utf8(key.to_vec()).unwrap());
        Ok(keys.len() < 3)
    };
    let scanned = guard.scan(ns, prefix, after, &mut visit)?;
    scanned.unwrap();
    Some(keys)
}

#[test]
fn a_complete_namespace_scans_in_key_order_and_an_incomplete_one_does_not() {
    let cache = RecordCache::new(1 << 20);
    let ns = cache.namespace("ns", true);
    let other = cache.namespace("other", true);
    let mut guard = cache.lock();
    for key in ["b2", "a", "b1", "b3", "b4", "c"] {
        guard.set(ns, key.as_bytes(), Some(&IVec::from(b"r")));
    }
    guard.set(other, b"b0", Some(&IVec::from(b"r")));
    guard.set(ns, b"b3", None);
    let page = scanned(&guard, ns, b"b", None).unwrap();
    assert_eq!(page, ["b1", "b2", "b4"]);
    assert_eq!(scanned(&guard, ns, b"b", Some(b"b2")).unwrap(), ["b4"]);
    assert_eq!(scanned(&guard, ns, b"", Some(b"b4")).unwrap(), ["c"]);
    guard.forget(ns, b"a");
    assert_eq!(scanned(&guard, ns, b"", None), None);
    assert_eq!(scanned(&guard, other, b"", None).unwrap(), ["b0"]);
    guard.clear(ns, true);
    assert_eq!(
        scanned(&guard, ns, b"", None).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn long_keys_are_kept_only_by_a_complete_namespace() {
    let cache = RecordCache::new(1 << 20);
    let complete = cache.namespace("complete", true);
    let hashed = cache.namespace("hashed", false);
    let mut guard = cache.lock();
    let long = vec![b'k'; MAX_KEY + 1];
    guard.set(complete, &long, Some(&IVec::from(b"1")));
    guard.set(hashed, &long, Some(&IVec::from(b"1")));
    assert_eq!(guard.get(complete, &long), Cached::Record(IVec::from(b"1")));
    assert_eq!(guard.get(hashed, &long), Cached::Unknown);
}

#[test]
fn a_complete_namespace_reads_and_scans_alike_after_any_writes() {
    // Gets are answered by key, scans in order: both must say what a plain map says.
    let cache = RecordCache::new(1 << 24);
    let ns = cache.namespace("ns", true);
    let mut guard = cache.lock();
    let mut model = BTreeMap::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for step in 0..20_000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = format!("k{:03}", seed % 400).into_bytes();
        if seed.is_multiple_of(3) {
            guard.set(ns, &key, None);
            model.remove(&key);
        } else {
            let record = IVec::from(format!("r{step}").as_bytes());
            guard.set(ns, &key, Some(&record));
            model.insert(key, record);
        }
    }
    for i in 0..400 {
        let key = format!("k{i:03}").into_bytes();
        let expected = model
            .get(&key)
            .map_or(Cached::Absent, |r| Cached::Record(r.clone()));
        assert_eq!(guard.get(ns, &key), expected);
    }
    let mut scanned = Vec::new();
    let mut visit = |key: &[u8], record: &IVec| -> Result<bool, ()> {
        scanned.push((key.to_vec(), record.clone()));
        Ok(true)
    };
    guard.scan(ns, b"", None, &mut visit).unwrap().unwrap();
    let expected: Vec<_> = model.into_iter().collect();
    assert_eq!(scanned, expected);
}

//! A bounded cache of index records in front of sled, one per open store, shared by every
//! handle on it (any namespace, any thread).
//!
//! A hot sled read costs about a microsecond of tree descent and page-cache bookkeeping; a
//! hash lookup costs a tenth of that. Every write to a store goes through its cache, under
//! the cache's lock, in the same step as the sled write, so the cache never disagrees with
//! sled: a reader that misses reads sled with the lock held and cannot install a record that a
//! racing writer has just replaced.
//!
//! While a namespace's records have all been seen by the cache (it was empty when the store
//! opened) and none has been evicted since, the cache is *complete* for that namespace: a key
//! it does not hold does not exist, and a miss costs no sled read either. A complete namespace
//! also keeps its records in key order, sharing their buffers, so that a list walks memory
//! instead of sled's iterator.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use quick_cache::unsync::Cache;

use super::backend::scan_start;
use quick_cache::{DefaultHashBuilder, Lifecycle, Weighter};
use sled::IVec;

/// What a cached entry costs beyond its key and record bytes: the `IVec` headers, the
/// record's shared allocation header, the cache's own slot and the ordered copy's share of a
/// tree node. An estimate, used for the byte budget only.
const ENTRY_OVERHEAD: u64 = 160;

/// Bytes a typical entry takes, to size the hash table up front.
const TYPICAL_ENTRY: u64 = 256;

/// Cache keys are a namespace's number (4 bytes, big-endian) followed by the key's bytes.
const TAG_LEN: usize = 4;

/// Longest key that a lookup builds on the stack; longer keys (which validation refuses
/// anyway) are not cached.
const MAX_KEY: usize = 512;

/// What the cache knows of a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Cached {
    /// The key's current index record.
    Record(IVec),
    /// The key does not exist.
    Absent,
    /// The cache does not know: read sled.
    Unknown,
}

#[derive(Clone)]
struct ByBytes;

impl Weighter<IVec, IVec> for ByBytes {
    fn weight(&self, key: &IVec, record: &IVec) -> u64 {
        key.len() as u64 + record.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Notes which namespaces lost an entry to eviction (or had one refused for its size).
#[derive(Clone, Default)]
struct Evictions;

impl Lifecycle<IVec, IVec> for Evictions {
    type RequestState = Vec<u32>;

    fn on_evict(&self, evicted: &mut Vec<u32>, key: IVec, _record: IVec) {
        evicted.push(namespace_of(&key));
    }
}

fn namespace_of(tagged: &[u8]) -> u32 {
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&tagged[..TAG_LEN]);
    u32::from_be_bytes(tag)
}

/// The record cache of one store.
pub struct RecordCache {
    state: Mutex<State>,
}

struct State {
    records: Cache<IVec, IVec, ByBytes, DefaultHashBuilder, Evictions>,
    /// Namespaces, by number.
    namespaces: Vec<NamespaceState>,
}

struct NamespaceState {
    name: String,
    /// While the cache holds every record of the namespace: all of them in key order (keys
    /// without their tag). `None` once the cache has lost or never seen one.
    sorted: Option<BTreeMap<IVec, IVec>>,
}

impl State {
    fn is_complete(&self, namespace: u32) -> bool {
        self.namespaces[namespace as usize].sorted.is_some()
    }

    fn sorted(&mut self, namespace: u32) -> Option<&mut BTreeMap<IVec, IVec>> {
        self.namespaces[namespace as usize].sorted.as_mut()
    }

    fn set_complete(&mut self, namespace: u32, complete: bool) {
        self.namespaces[namespace as usize].sorted = complete.then(BTreeMap::new);
    }
}

impl RecordCache {
    /// A cache holding up to about `capacity` bytes. A capacity of 0 caches nothing.
    pub fn new(capacity: u64) -> Self {
        let records = Cache::with(
            (capacity / TYPICAL_ENTRY).max(16) as usize,
            capacity,
            ByBytes,
            DefaultHashBuilder::default(),
            Evictions,
        );
        Self {
            state: Mutex::new(State {
                records,
                namespaces: Vec::new(),
            }),
        }
    }

    /// The number of namespace `name`, registering it on first use. `empty` says whether the
    /// namespace holds no records now; an empty namespace starts out complete.
    pub fn namespace(&self, name: &str, empty: bool) -> u32 {
        let mut state = self.lock().0;
        if let Some(index) = state.namespaces.iter().position(|n| n.name == name) {
            return index as u32;
        }
        state.namespaces.push(NamespaceState {
            name: name.to_owned(),
            sorted: empty.then(BTreeMap::new),
        });
        (state.namespaces.len() - 1) as u32
    }

    /// Locks the cache. Hold the guard across the sled operation whose outcome it records.
    pub fn lock(&self) -> CacheGuard<'_> {
        // Every update of the state is a single call that leaves it whole, so a panic while
        // the lock was held cannot have left it half-changed.
        CacheGuard(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The locked cache.
pub struct CacheGuard<'a>(MutexGuard<'a, State>);

/// `key` tagged with its namespace, on the stack; `None` for keys too long to cache.
fn tagged(namespace: u32, key: &[u8], buffer: &mut [u8; TAG_LEN + MAX_KEY]) -> Option<usize> {
    if key.len() > MAX_KEY {
        return None;
    }
    buffer[..TAG_LEN].copy_from_slice(&namespace.to_be_bytes());
    buffer[TAG_LEN..TAG_LEN + key.len()].copy_from_slice(key);
    Some(TAG_LEN + key.len())
}

impl CacheGuard<'_> {
    /// What the cache knows of `key` in `namespace`.
    pub fn get(&self, namespace: u32, key: &[u8]) -> Cached {
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        let Some(len) = tagged(namespace, key, &mut buffer) else {
            return Cached::Unknown;
        };
        match self.0.records.get(&buffer[..len]) {
            Some(record) => Cached::Record(record.clone()),
            None if self.0.is_complete(namespace) => Cached::Absent,
            None => Cached::Unknown,
        }
    }

    /// Records that `key` now holds `record`, or (`None`) that it no longer exists. The cache
    /// keeps `record` itself: pass a buffer of its own, not a slice of a larger one.
    pub fn set(&mut self, namespace: u32, key: &[u8], record: Option<&IVec>) {
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        let Some(len) = tagged(namespace, key, &mut buffer) else {
            return self.forget(namespace, key);
        };
        let state = &mut *self.0;
        match record {
            Some(record) => {
                let mut evicted = Vec::new();
                let tagged = IVec::from(&buffer[..len]);
                state
                    .records
                    .insert_with_lifecycle(tagged, record.clone(), &mut evicted);
                for lost in evicted {
                    state.set_complete(lost, false);
                }
                if let Some(sorted) = state.sorted(namespace) {
                    sorted.insert(IVec::from(key), record.clone());
                }
            }
            None => {
                state.records.remove(&buffer[..len]);
                if let Some(sorted) = state.sorted(namespace) {
                    sorted.remove(key);
                }
            }
        }
    }

    /// Forgets what the cache knew of `key`, after a sled write whose outcome is unknown.
    pub fn forget(&mut self, namespace: u32, key: &[u8]) {
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        if let Some(len) = tagged(namespace, key, &mut buffer) {
            self.0.records.remove(&buffer[..len]);
        }
        self.0.set_complete(namespace, false);
    }

    /// Drops every record of `namespace`; with `empty`, the namespace is now empty in sled,
    /// so the cache is complete for it again.
    pub fn clear(&mut self, namespace: u32, empty: bool) {
        let tag = namespace.to_be_bytes();
        self.0.records.retain(|key, _| !key.starts_with(&tag));
        self.0.set_complete(namespace, empty);
    }

    /// Walks the records of a complete namespace in key order, from the first key after
    /// `after` (or the first key at all) while keys start with `prefix`, until `visit`
    /// returns `false` or fails. `None` when the namespace is not complete: ask sled.
    pub fn scan<E>(
        &self,
        namespace: u32,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut visit: impl FnMut(&[u8], &IVec) -> Result<bool, E>,
    ) -> Option<Result<(), E>> {
        let sorted = self.0.namespaces[namespace as usize].sorted.as_ref()?;
        for (key, record) in sorted.range::<[u8], _>((scan_start(prefix, after), Bound::Unbounded))
        {
            if !key.starts_with(prefix) {
                break;
            }
            match visit(key, record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
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
    fn eviction_makes_only_its_namespace_incomplete() {
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
    fn a_cache_of_no_bytes_knows_only_that_an_untouched_namespace_is_empty() {
        let cache = RecordCache::new(0);
        let ns = cache.namespace("ns", true);
        let mut guard = cache.lock();
        assert_eq!(guard.get(ns, b"a"), Cached::Absent);
        guard.set(ns, b"a", Some(&IVec::from(b"1")));
        assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
        assert_eq!(guard.get(ns, b"b"), Cached::Unknown);
    }

    #[test]
    fn a_record_too_large_to_cache_replaces_the_cached_one() {
        let cache = RecordCache::new(4096);
        let ns = cache.namespace("ns", true);
        let mut guard = cache.lock();
        guard.set(ns, b"a", Some(&IVec::from(b"small")));
        guard.set(ns, b"a", Some(&IVec::from(vec![1; 8192])));
        assert_eq!(guard.get(ns, b"a"), Cached::Unknown);
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
    fn long_keys_are_never_cached() {
        let cache = RecordCache::new(1 << 20);
        let ns = cache.namespace("ns", true);
        let mut guard = cache.lock();
        let long = vec![b'k'; MAX_KEY + 1];
        guard.set(ns, &long, Some(&IVec::from(b"1")));
        assert_eq!(guard.get(ns, &long), Cached::Unknown);
        assert_eq!(guard.get(ns, b"short"), Cached::Unknown);
    }
}

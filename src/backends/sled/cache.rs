//! A bounded cache of index records in front of sled, one per open store, shared by every
//! handle on it (any namespace, any thread).
//!
//! A hot sled read costs about a microsecond of tree descent and page-cache bookkeeping; a
//! lookup in memory costs a fraction of that. Every write to a store goes through its cache,
//! under the cache's lock, in the same step as the sled write, so the cache never disagrees
//! with sled: a reader that misses reads sled with the lock held and cannot install a record
//! that a racing writer has just replaced.
//!
//! A namespace is cached in one of two ways:
//!
//! - *complete*: every record of the namespace, in key order. A namespace starts so when it is
//!   empty as the store opens, and stays so while its records fit the budget. Gets, misses and
//!   lists are all answered from memory: a key that is not there does not exist.
//! - otherwise its hot records sit in a hash cache (quick_cache, S3-FIFO) and a miss reads
//!   sled. A complete namespace that outgrows the budget drops to this.
//!
//! Both share one byte budget: the hash cache gets whatever the complete namespaces leave.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use quick_cache::unsync::Cache;
use quick_cache::Weighter;
use sled::IVec;

use crate::store::scan_start;

/// What a record costs beyond its key and record bytes, in a complete namespace (its share of
/// a tree node, and its slot in the hash table beside the tree) and in the hash cache (the
/// cache's slot and table). Estimates, used for the byte budget only.
const SORTED_OVERHEAD: u64 = 176;
const HASHED_OVERHEAD: u64 = 96;

/// Cache keys in the hash cache are a namespace's number (4 bytes, big-endian) followed by
/// the key's bytes.
const TAG_LEN: usize = 4;

/// Longest key that a lookup builds on the stack; longer keys (which validation refuses
/// anyway) are never in the hash cache.
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
        key.len() as u64 + record.len() as u64 + HASHED_OVERHEAD
    }
}

fn sorted_weight(key: &[u8], record: &[u8]) -> u64 {
    key.len() as u64 + record.len() as u64 + SORTED_OVERHEAD
}

/// The record cache of one store.
pub struct RecordCache {
    state: Mutex<State>,
}

struct State {
    /// The whole budget, in bytes.
    capacity: u64,
    /// Hot records of namespaces that are not complete, by tagged key.
    hashed: Cache<IVec, IVec, ByBytes>,
    /// Namespaces, by number.
    namespaces: Vec<NamespaceState>,
}

struct NamespaceState {
    name: String,
    /// Every record of the namespace, while it is complete: in key order for lists, and by
    /// hash for gets, whose descent of the tree (a comparison of keys at every level) costs a
    /// fifth of an awaited get of 50,000 keys.
    sorted: Option<Complete>,
    /// What `sorted` weighs.
    weight: u64,
}

/// The records of a complete namespace, kept twice: the same `IVec`s, shared (a key of up to
/// 22 bytes is held inline, so twice).
#[derive(Default)]
struct Complete {
    ordered: BTreeMap<IVec, IVec>,
    by_key: HashMap<IVec, IVec, foldhash::fast::FixedState>,
}

impl Complete {
    fn get(&self, key: &[u8]) -> Option<&IVec> {
        self.by_key.get(key)
    }

    fn insert(&mut self, key: &[u8], record: &IVec) -> Option<IVec> {
        let key = IVec::from(key);
        self.by_key.insert(key.clone(), record.clone());
        self.ordered.insert(key, record.clone())
    }

    fn remove(&mut self, key: &[u8]) -> Option<IVec> {
        self.by_key.remove(key);
        self.ordered.remove(key)
    }
}

impl State {
    /// What the complete namespaces weigh together.
    fn sorted_weight(&self) -> u64 {
        self.namespaces.iter().map(|state| state.weight).sum()
    }

    /// Makes `namespace` complete (it is empty in sled now) or not, dropping what it held.
    fn set_complete(&mut self, namespace: u32, complete: bool) {
        let state = &mut self.namespaces[namespace as usize];
        state.weight = 0;
        state.sorted = complete.then(Complete::default);
        self.fit_hashed();
    }

    /// Gives the hash cache what the complete namespaces leave of the budget. Resizes only in
    /// steps of 1/16 of the budget, since every resize is a pass over the cache's bookkeeping.
    fn fit_hashed(&mut self) {
        let target = self.capacity.saturating_sub(self.sorted_weight());
        let current = self.hashed.capacity();
        if target.abs_diff(current) >= self.capacity / 16 || (target == 0 && current != 0) {
            self.hashed.set_capacity(target);
        }
    }

    fn set_sorted(&mut self, namespace: u32, key: &[u8], record: Option<&IVec>) {
        let state = &mut self.namespaces[namespace as usize];
        let Some(sorted) = state.sorted.as_mut() else {
            return;
        };
        let old = match record {
            Some(record) => sorted.insert(key, record),
            None => sorted.remove(key),
        };
        let weight = |record: Option<&IVec>| record.map_or(0, |r| sorted_weight(key, r));
        state.weight = state.weight + weight(record) - weight(old.as_ref());
        if self.sorted_weight() > self.capacity {
            // Too big to keep whole: from now on the namespace is cached by heat.
            self.set_complete(namespace, false);
        } else {
            self.fit_hashed();
        }
    }
}

impl RecordCache {
    /// A cache holding up to about `capacity` bytes. A capacity of 0 caches nothing.
    pub fn new(capacity: u64) -> Self {
        Self {
            state: Mutex::new(State {
                capacity,
                // The table grows as entries come; most stores stay complete and never fill it.
                hashed: Cache::with_weighter(1024, capacity, ByBytes),
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
        let complete = empty && state.capacity > 0;
        state.namespaces.push(NamespaceState {
            name: name.to_owned(),
            sorted: complete.then(Complete::default),
            weight: 0,
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
        if let Some(sorted) = &self.0.namespaces[namespace as usize].sorted {
            return match sorted.get(key) {
                Some(record) => Cached::Record(record.clone()),
                None => Cached::Absent,
            };
        }
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        let Some(len) = tagged(namespace, key, &mut buffer) else {
            return Cached::Unknown;
        };
        match self.0.hashed.get(&buffer[..len]) {
            Some(record) => Cached::Record(record.clone()),
            None => Cached::Unknown,
        }
    }

    /// Records that `key` now holds `record`, or (`None`) that it no longer exists. The cache
    /// keeps `record` itself: pass a buffer of its own, not a slice of a larger one.
    pub fn set(&mut self, namespace: u32, key: &[u8], record: Option<&IVec>) {
        let state = &mut *self.0;
        if state.namespaces[namespace as usize].sorted.is_some() {
            return state.set_sorted(namespace, key, record);
        }
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        let Some(len) = tagged(namespace, key, &mut buffer) else {
            return;
        };
        match record {
            // A record too heavy for the cache is refused, and the one it replaces dropped.
            Some(record) => state
                .hashed
                .insert(IVec::from(&buffer[..len]), record.clone()),
            None => drop(state.hashed.remove(&buffer[..len])),
        }
    }

    /// Forgets what the cache knew of `key`, after a sled write whose outcome is unknown.
    pub fn forget(&mut self, namespace: u32, key: &[u8]) {
        let mut buffer = [0; TAG_LEN + MAX_KEY];
        if let Some(len) = tagged(namespace, key, &mut buffer) {
            self.0.hashed.remove(&buffer[..len]);
        }
        self.0.set_complete(namespace, false);
    }

    /// Drops every record of `namespace`; with `empty`, the namespace is now empty in sled,
    /// so the cache is complete for it again.
    pub fn clear(&mut self, namespace: u32, empty: bool) {
        let tag = namespace.to_be_bytes();
        self.0.hashed.retain(|key, _| !key.starts_with(&tag));
        let complete = empty && self.0.capacity > 0;
        self.0.set_complete(namespace, complete);
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
        let start = (scan_start(prefix, after), Bound::Unbounded);
        for (key, record) in sorted.ordered.range::<[u8], _>(start) {
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
mod tests;

//! Simulated eventual consistency: a location's read cache, as a Cloudflare location keeps one.
//!
//! A read at a location remembers what it found, a value or its absence, for the read's
//! `cacheTtl` (60 s by default) by the KV clock, and serves that answer until it runs out,
//! whatever other locations write meanwhile. A write or delete forgets the key at the location
//! that made it, so that location reads its own writes at once; other locations see it when
//! their cached answer runs out. A `list` page is remembered the same way, for 60 s, keyed by
//! its prefix, limit and cursor; a write forgets the pages whose prefix its key starts with.
//!
//! The cache sits in front of any backend. Every location of a namespace shares one
//! generation counter: `clear`, `restore` and `remove` (test tools, not KV operations) move it
//! on, which empties every location's cache at once. A read that such a step, or a write at its
//! own location, overtook while it was at the store is not cached (see [`Ticket`]).
//!
//! The locations of a namespace share a byte budget, as a location's cache has a size. A
//! location that would pass it drops what ran out, here and at the other locations, then
//! everything it holds, then everything the others hold. A location that is dropped gives its
//! bytes back.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use sled::IVec;

use super::types::{Entry, ListPage, Value};
use super::validate::is_expired;

/// How long a read is cached when it gives no `cacheTtl`, and how long a `list` page is.
pub const DEFAULT_CACHE_TTL_SECONDS: i64 = 60;

/// How many cached answers a location holds before it drops those that ran out.
const SWEEP_FLOOR: usize = 1024;

/// The bytes of cached answers all locations of a namespace hold together, unless told.
pub const DEFAULT_CACHE_BUDGET: usize = 64 << 20;

/// What a cached answer costs besides its keys and values: the map's slot, the record.
const ANSWER_OVERHEAD: usize = 96;

/// One location's cache of reads and list pages.
#[derive(Debug)]
pub struct Location {
    shared: Arc<Shared>,
    cache: Arc<Mutex<Cache>>,
}

/// What every location of a namespace shares.
#[derive(Debug)]
struct Shared {
    generation: AtomicU64,
    /// The bytes all locations may hold, and those they hold now.
    budget: usize,
    used: AtomicUsize,
    /// Every location's cache, to make room in when one is full.
    caches: Mutex<Vec<Weak<Mutex<Cache>>>>,
}

#[derive(Debug, Default)]
struct Cache {
    reads: HashMap<String, Cached<Option<Entry>>>,
    pages: HashMap<PageQuery, Cached<ListPage>>,
    // The size at which the next insert first drops what ran out.
    sweep_at: usize,
    // How many writes this location has made (see Ticket).
    writes: u64,
    // The bytes of what it holds (counted in the namespace's budget).
    bytes: usize,
}

/// Taken before a read goes to the store. What the read found is cached only if this location
/// wrote nothing, and no location cleared the namespace, while it read: an answer that may be
/// older than a write made here is never cached, whatever order concurrent calls finish in.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    generation: u64,
    writes: u64,
}

/// What a `list` call asked for: its cached page answers only the same question.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageQuery {
    pub prefix: String,
    pub limit: usize,
    pub cursor: Option<String>,
}

#[derive(Debug)]
struct Cached<T> {
    answer: T,
    until_ms: i64,
    generation: u64,
    bytes: usize,
}

impl<T> Cached<T> {
    fn fresh(&self, now_ms: i64, generation: u64) -> bool {
        self.generation == generation && now_ms < self.until_ms
    }
}

impl Location {
    /// The first location of a namespace, whose locations may hold `budget` bytes of cached
    /// answers in all.
    pub fn new(budget: usize) -> Self {
        Self::sharing(Arc::new(Shared {
            generation: AtomicU64::new(0),
            budget,
            used: AtomicUsize::new(0),
            caches: Mutex::new(Vec::new()),
        }))
    }

    /// Another location of the same namespace, with an empty cache of its own.
    pub fn sibling(&self) -> Self {
        Self::sharing(self.shared.clone())
    }

    fn sharing(shared: Arc<Shared>) -> Self {
        let cache = Arc::new(Mutex::new(Cache {
            sweep_at: SWEEP_FLOOR,
            ..Cache::default()
        }));
        {
            let mut caches = shared.caches();
            // Now and then, the caches of locations that went are forgotten.
            if caches.len().is_power_of_two() {
                caches.retain(|cache| cache.strong_count() > 0);
            }
            caches.push(Arc::downgrade(&cache));
        }
        Self { shared, cache }
    }

    /// The bytes of cached answers this location holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.cache().bytes
    }

    /// Makes room for an answer of `bytes` within the namespace's budget: drops what ran out
    /// here, then all this location holds; `false` if there is no room all the same.
    fn make_room(&self, cache: &mut Cache, bytes: usize, now_ms: i64, generation: u64) -> bool {
        let shared = &*self.shared;
        let fits = || shared.used.load(Ordering::Acquire) + bytes <= shared.budget;
        if bytes > shared.budget {
            return false;
        }
        if !fits() {
            cache.drop_stale(shared, now_ms, generation);
        }
        if !fits() {
            self.at_others(|other| other.drop_stale(shared, now_ms, generation));
        }
        if !fits() {
            cache.drop_all(shared);
        }
        if !fits() {
            self.at_others(|other| other.drop_all(shared));
        }
        fits()
    }

    /// Runs `work` on the cache of every other location of the namespace that is not busy
    /// (one busy now may be waiting for this one's: it is left alone, never waited for).
    fn at_others(&self, mut work: impl FnMut(&mut Cache)) {
        let mut caches = self.shared.caches();
        caches.retain(|cache| cache.strong_count() > 0);
        for other in caches.iter().filter_map(Weak::upgrade) {
            if Arc::ptr_eq(&other, &self.cache) {
                continue;
            }
            if let Ok(mut cache) = other.try_lock() {
                work(&mut cache);
            }
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // The cache holds no invariant a panic elsewhere could break halfway.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// What this location answers for `key` from its cache: `None` when it has nothing fresh
    /// (the caller takes a [`Location::ticket`], reads the store, then calls
    /// [`Location::remember`] with both), else the cached entry
    /// or absence. A `cacheTtl` shorter than what is left of the cached answer shortens it, as
    /// production does. A value longer than `max_len` comes back `Deferred`, for the caller
    /// to ask again where it can take it; an entry whose expiration has passed reads as
    /// missing, as expiration wins over `cacheTtl`.
    pub fn lookup(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Option<Option<Entry>> {
        let generation = self.generation();
        let mut cache = self.cache();
        let Cache { reads, bytes, .. } = &mut *cache;
        let cached = fresh(reads, key, now_ms, generation, bytes, &self.shared)?;
        cached.until_ms = cached.until_ms.min(until(now_ms, cache_ttl));
        let entry = match &cached.answer {
            Some(entry) if !is_expired(entry.expiration, now_ms) => entry,
            _ => return Some(None),
        };
        let len = entry.value.bytes().map_or(0, |bytes| bytes.len() as u64);
        if len > max_len {
            return Some(Some(Entry {
                value: Value::Deferred { len },
                ..entry.clone()
            }));
        }
        Some(Some(entry.clone()))
    }

    /// A ticket for a read about to go to the store (see [`Ticket`]).
    pub fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation(),
            writes: self.cache().writes,
        }
    }

    /// Caches what a read of `key` found in the store, unless `ticket` has run out, and hands
    /// it back. A value that was not read (`Deferred`) is not cached: the read that takes it in
    /// full caches it.
    pub fn remember(
        &self,
        key: &str,
        found: Option<Entry>,
        cache_ttl: Option<i32>,
        now_ms: i64,
        ticket: Ticket,
    ) -> Option<Entry> {
        let found = found.map(shareable);
        if let Some(Entry {
            value: Value::Deferred { .. },
            ..
        }) = found
        {
            return found;
        }
        let mut cache = self.cache();
        if !self.honours(&cache, ticket) {
            return found;
        }
        let bytes = ANSWER_OVERHEAD
            + key.len()
            + found.as_ref().map_or(0, |entry| {
                entry.value.bytes().map_or(0, <[u8]>::len)
                    + entry.metadata.as_ref().map_or(0, |m| m.len())
            });
        let cache = &mut *cache;
        if let Some(old) = cache.reads.remove(key) {
            cache.release(&self.shared, old.bytes);
        }
        if !self.make_room(cache, bytes, now_ms, ticket.generation) {
            return found;
        }
        let cached = Cached {
            answer: found.clone(),
            until_ms: until(now_ms, cache_ttl),
            generation: ticket.generation,
            bytes,
        };
        cache.reads.insert(key.to_owned(), cached);
        cache.hold(&self.shared, bytes);
        cache.sweep(&self.shared, now_ms, ticket.generation);
        found
    }

    fn honours(&self, cache: &Cache, ticket: Ticket) -> bool {
        ticket.writes == cache.writes && ticket.generation == self.generation()
    }

    /// The cached page for `query`, if fresh, without the keys that expired since.
    pub fn page(&self, query: &PageQuery, now_ms: i64) -> Option<ListPage> {
        let generation = self.generation();
        let mut cache = self.cache();
        let Cache { pages, bytes, .. } = &mut *cache;
        let cached = fresh(pages, query, now_ms, generation, bytes, &self.shared)?;
        let mut page = cached.answer.clone();
        page.keys.retain(|key| !is_expired(key.expiration, now_ms));
        Some(page)
    }

    /// Caches a `list` page for the default cache TTL, unless `ticket` has run out.
    pub fn remember_page(&self, query: PageQuery, page: &ListPage, now_ms: i64, ticket: Ticket) {
        let mut cache = self.cache();
        if !self.honours(&cache, ticket) {
            return;
        }
        let bytes = ANSWER_OVERHEAD
            + query.prefix.len()
            + 2 * query.cursor.as_ref().map_or(0, String::len)
            + page
                .keys
                .iter()
                .map(|key| 48 + key.name.len() + key.metadata.as_ref().map_or(0, |m| m.len()))
                .sum::<usize>();
        let cache = &mut *cache;
        if let Some(old) = cache.pages.remove(&query) {
            cache.release(&self.shared, old.bytes);
        }
        if !self.make_room(cache, bytes, now_ms, ticket.generation) {
            return;
        }
        let cached = Cached {
            answer: page.clone(),
            until_ms: until(now_ms, None),
            generation: ticket.generation,
            bytes,
        };
        cache.pages.insert(query, cached);
        cache.hold(&self.shared, bytes);
        cache.sweep(&self.shared, now_ms, ticket.generation);
    }

    /// Forgets what this location cached about `key`: after a write or delete here.
    pub fn forget(&self, key: &str) {
        let mut cache = self.cache();
        let cache = &mut *cache;
        cache.writes += 1;
        let freed = cache.reads.remove(key).map_or(0, |old| old.bytes)
            + drop_where(&mut cache.pages, |query, _| {
                key.starts_with(query.prefix.as_str())
            });
        cache.release(&self.shared, freed);
    }

    /// Empties the cache of every location of the namespace.
    pub fn forget_everywhere(&self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl Shared {
    fn caches(&self) -> MutexGuard<'_, Vec<Weak<Mutex<Cache>>>> {
        self.caches.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Location {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_BUDGET)
    }
}

/// A location that goes gives its bytes back to the namespace's budget.
impl Drop for Location {
    fn drop(&mut self) {
        let bytes = self.cache().bytes;
        self.shared.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl Cache {
    // Drops the answers that ran out once the cache has doubled since the last sweep, so that
    // a location reading ever new keys holds about as many as it read within one TTL.
    fn sweep(&mut self, shared: &Shared, now_ms: i64, generation: u64) {
        if self.reads.len() + self.pages.len() < self.sweep_at {
            return;
        }
        self.drop_stale(shared, now_ms, generation);
        self.sweep_at = ((self.reads.len() + self.pages.len()) * 2).max(SWEEP_FLOOR);
    }

    /// Drops every answer that ran out.
    fn drop_stale(&mut self, shared: &Shared, now_ms: i64, generation: u64) {
        let freed = drop_where(&mut self.reads, |_, cached| {
            !cached.fresh(now_ms, generation)
        }) + drop_where(&mut self.pages, |_, cached| {
            !cached.fresh(now_ms, generation)
        });
        self.release(shared, freed);
    }

    /// Drops every answer.
    fn drop_all(&mut self, shared: &Shared) {
        self.reads.clear();
        self.pages.clear();
        let bytes = self.bytes;
        self.release(shared, bytes);
    }

    fn hold(&mut self, shared: &Shared, bytes: usize) {
        self.bytes += bytes;
        shared.used.fetch_add(bytes, Ordering::AcqRel);
    }

    fn release(&mut self, shared: &Shared, bytes: usize) {
        self.bytes -= bytes;
        shared.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Drops the answers for which `gone` holds; returns their bytes.
fn drop_where<K, T>(
    answers: &mut HashMap<K, Cached<T>>,
    mut gone: impl FnMut(&K, &Cached<T>) -> bool,
) -> usize {
    let mut freed = 0;
    answers.retain(|key, cached| {
        let dropped = gone(key, cached);
        if dropped {
            freed += cached.bytes;
        }
        !dropped
    });
    freed
}

/// The fresh answer cached under `key` in `answers`, if any; one that ran out is dropped, and
/// its bytes taken off `held` and the namespace's count.
fn fresh<'a, K, Q, T>(
    answers: &'a mut HashMap<K, Cached<T>>,
    key: &Q,
    now_ms: i64,
    generation: u64,
    held: &mut usize,
    shared: &Shared,
) -> Option<&'a mut Cached<T>>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    if !answers.get(key)?.fresh(now_ms, generation) {
        if let Some(stale) = answers.remove(key) {
            *held -= stale.bytes;
            shared.used.fetch_sub(stale.bytes, Ordering::AcqRel);
        }
        return None;
    }
    answers.get_mut(key)
}

/// The instant a read made at `now_ms` with `cache_ttl` stops being served.
fn until(now_ms: i64, cache_ttl: Option<i32>) -> i64 {
    let seconds = cache_ttl.map_or(DEFAULT_CACHE_TTL_SECONDS, i64::from);
    now_ms.saturating_add(seconds.saturating_mul(1000))
}

/// `entry` with bytes that clone without a copy.
fn shareable(entry: Entry) -> Entry {
    match entry.value {
        Value::Owned(bytes) => Entry {
            value: Value::Loaded(IVec::from(bytes)),
            ..entry
        },
        _ => entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str, expiration: Option<i64>) -> Entry {
        Entry {
            expiration,
            metadata: None,
            value: Value::Owned(value.as_bytes().to_vec()),
        }
    }

    const NOW: i64 = 1_900_000_000_000;

    #[test]
    fn serves_a_read_until_its_ttl_runs_out() {
        let here = Location::default();
        assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
        here.remember("k", Some(entry("v", None)), None, NOW, here.ticket());
        let cached = here.lookup("k", None, u64::MAX, NOW + 59_999).unwrap();
        assert_eq!(cached.unwrap().value.bytes(), Some(&b"v"[..]));
        assert_eq!(here.lookup("k", None, u64::MAX, NOW + 60_000), None);
    }

    #[test]
    fn caches_absence_and_a_shorter_ttl_shortens_it() {
        let here = Location::default();
        here.remember("k", None, Some(300), NOW, here.ticket());
        assert_eq!(here.lookup("k", None, u64::MAX, NOW + 100_000), Some(None));
        // Read again with 30 s: the answer now runs out 30 s after this read.
        assert_eq!(
            here.lookup("k", Some(30), u64::MAX, NOW + 100_000),
            Some(None)
        );
        assert_eq!(here.lookup("k", None, u64::MAX, NOW + 129_999), Some(None));
        assert_eq!(here.lookup("k", None, u64::MAX, NOW + 130_000), None);
    }

    #[test]
    fn an_expiration_wins_over_the_cache() {
        let here = Location::default();
        let expiration = NOW / 1000 + 10;
        here.remember(
            "k",
            Some(entry("v", Some(expiration))),
            None,
            NOW,
            here.ticket(),
        );
        assert!(here
            .lookup("k", None, u64::MAX, NOW + 9_999)
            .unwrap()
            .is_some());
        assert_eq!(here.lookup("k", None, u64::MAX, NOW + 10_000), Some(None));
    }

    #[test]
    fn a_long_cached_value_is_deferred_and_a_deferred_one_is_not_cached() {
        let here = Location::default();
        here.remember("k", Some(entry("four", None)), None, NOW, here.ticket());
        let cached = here.lookup("k", None, 3, NOW).unwrap().unwrap();
        assert_eq!(cached.value, Value::Deferred { len: 4 });
        let deferred = Entry {
            expiration: None,
            metadata: None,
            value: Value::Deferred { len: 9 },
        };
        here.remember("long", Some(deferred), None, NOW, here.ticket());
        assert_eq!(here.lookup("long", None, u64::MAX, NOW), None);
    }

    #[test]
    fn forgetting_is_local_and_clearing_is_everywhere() {
        let here = Location::default();
        let there = here.sibling();
        for location in [&here, &there] {
            location.remember("k", Some(entry("old", None)), None, NOW, location.ticket());
            let query = PageQuery {
                prefix: "k".into(),
                limit: 1000,
                cursor: None,
            };
            location.remember_page(query, &ListPage::default(), NOW, location.ticket());
        }
        here.forget("k");
        let query = |prefix: &str| PageQuery {
            prefix: prefix.into(),
            limit: 1000,
            cursor: None,
        };
        assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
        assert_eq!(here.page(&query("k"), NOW), None);
        assert!(there.lookup("k", None, u64::MAX, NOW).is_some());
        assert!(there.page(&query("k"), NOW).is_some());
        here.forget_everywhere();
        assert_eq!(there.lookup("k", None, u64::MAX, NOW), None);
        assert_eq!(there.page(&query("k"), NOW), None);
    }

    #[test]
    fn a_read_that_a_write_or_clear_overtook_is_not_cached() {
        let here = Location::default();
        let there = here.sibling();
        // A read starts, a write here finishes, then the read does: its answer may predate
        // the write, so it is handed back but not kept.
        let ticket = here.ticket();
        here.forget("other");
        let found = here.remember("k", Some(entry("old", None)), None, NOW, ticket);
        assert!(found.is_some());
        assert_eq!(here.lookup("k", None, u64::MAX, NOW), None);
        let query = PageQuery {
            prefix: String::new(),
            limit: 1000,
            cursor: None,
        };
        let ticket = here.ticket();
        there.forget_everywhere();
        here.remember_page(query.clone(), &ListPage::default(), NOW, ticket);
        assert_eq!(here.page(&query, NOW), None);
        // A write elsewhere does not stop this location caching.
        let ticket = here.ticket();
        there.forget("k");
        here.remember("k", None, None, NOW, ticket);
        assert_eq!(here.lookup("k", None, u64::MAX, NOW), Some(None));
    }

    #[test]
    fn answers_that_ran_out_are_dropped_as_the_cache_grows() {
        let here = Location::default();
        for i in 0..SWEEP_FLOOR - 1 {
            here.remember(&format!("old{i}"), None, None, NOW, here.ticket());
        }
        // One TTL later, new reads sweep the old ones out.
        here.remember("new", None, None, NOW + 60_000, here.ticket());
        assert_eq!(here.cache().reads.len(), 1);
    }

    #[test]
    fn locations_share_a_byte_budget_and_give_it_back() {
        let value = "v".repeat(1000);
        let used = |here: &Location| here.shared.used.load(Ordering::Acquire);
        let here = Location::new(4096);
        for key in ["a", "b", "c"] {
            here.remember(key, Some(entry(&value, None)), None, NOW, here.ticket());
        }
        assert_eq!(here.bytes(), 3 * (ANSWER_OVERHEAD + 1 + 1000));
        // A fourth would pass the budget: what ran out goes, then (none did) everything.
        here.remember("d", Some(entry(&value, None)), None, NOW, here.ticket());
        assert_eq!(here.bytes(), ANSWER_OVERHEAD + 1 + 1000);
        assert!(here.lookup("a", None, u64::MAX, NOW).is_none());
        assert!(here.lookup("d", None, u64::MAX, NOW).is_some());
        // Another location caches within what is left, and nothing past it.
        let there = here.sibling();
        for key in ["e", "f", "g", "h"] {
            there.remember(key, Some(entry(&value, None)), None, NOW, there.ticket());
        }
        assert!(used(&here) <= 4096);
        assert_eq!(used(&here), here.bytes() + there.bytes());
        // Replacing an answer, forgetting one and dropping a location all give bytes back.
        here.remember("d", None, None, NOW, here.ticket());
        assert_eq!(here.bytes(), ANSWER_OVERHEAD + 1);
        here.forget("d");
        assert_eq!(here.bytes(), 0);
        drop(there);
        assert_eq!(used(&here), 0);
        // An answer larger than the whole budget is served, not cached.
        let huge = "v".repeat(5000);
        let found = here.remember("x", Some(entry(&huge, None)), None, NOW, here.ticket());
        assert_eq!(found.unwrap().value.bytes().map(<[u8]>::len), Some(5000));
        assert!(here.lookup("x", None, u64::MAX, NOW).is_none());
    }
}

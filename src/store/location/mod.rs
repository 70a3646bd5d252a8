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

mod answers;

use answers::{drop_where, fresh, shareable, until, Cache, Cached};

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::store::Bytes;

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

#[cfg(test)]
mod tests;

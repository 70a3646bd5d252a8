//! What a location's cache holds: cached answers with the instant they run out, swept and
//! dropped within the byte budget all locations share.

use super::*;

#[derive(Debug, Default)]
pub(super) struct Cache {
    pub(super) reads: HashMap<String, Cached<Option<Entry>>>,
    pub(super) pages: HashMap<PageQuery, Cached<ListPage>>,
    // The size at which the next insert first drops what ran out.
    pub(super) sweep_at: usize,
    // How many writes this location has made (see Ticket).
    pub(super) writes: u64,
    // The bytes of what it holds (counted in the namespace's budget).
    pub(super) bytes: usize,
}

#[derive(Debug)]
pub(super) struct Cached<T> {
    pub(super) answer: T,
    pub(super) until_ms: i64,
    pub(super) generation: u64,
    pub(super) bytes: usize,
}

impl<T> Cached<T> {
    pub(super) fn fresh(&self, now_ms: i64, generation: u64) -> bool {
        self.generation == generation && now_ms < self.until_ms
    }
}

impl Cache {
    // Drops the answers that ran out once the cache has doubled since the last sweep, so that
    // a location reading ever new keys holds about as many as it read within one TTL.
    pub(super) fn sweep(&mut self, shared: &Shared, now_ms: i64, generation: u64) {
        if self.reads.len() + self.pages.len() < self.sweep_at {
            return;
        }
        self.drop_stale(shared, now_ms, generation);
        self.sweep_at = ((self.reads.len() + self.pages.len()) * 2).max(SWEEP_FLOOR);
    }

    /// Drops every answer that ran out.
    pub(super) fn drop_stale(&mut self, shared: &Shared, now_ms: i64, generation: u64) {
        let freed = drop_where(&mut self.reads, |_, cached| {
            !cached.fresh(now_ms, generation)
        }) + drop_where(&mut self.pages, |_, cached| {
            !cached.fresh(now_ms, generation)
        });
        self.release(shared, freed);
    }

    /// Drops every answer.
    pub(super) fn drop_all(&mut self, shared: &Shared) {
        self.reads.clear();
        self.pages.clear();
        let bytes = self.bytes;
        self.release(shared, bytes);
    }

    pub(super) fn hold(&mut self, shared: &Shared, bytes: usize) {
        self.bytes += bytes;
        shared.used.fetch_add(bytes, Ordering::AcqRel);
    }

    pub(super) fn release(&mut self, shared: &Shared, bytes: usize) {
        self.bytes -= bytes;
        shared.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Drops the answers for which `gone` holds; returns their bytes.
pub(super) fn drop_where<K, T>(
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
pub(super) fn fresh<'a, K, Q, T>(
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
pub(super) fn until(now_ms: i64, cache_ttl: Option<i32>) -> i64 {
    let seconds = cache_ttl.map_or(DEFAULT_CACHE_TTL_SECONDS, i64::from);
    now_ms.saturating_add(seconds.saturating_mul(1000))
}

/// `entry` with bytes that clone without a copy.
pub(super) fn shareable(entry: Entry) -> Entry {
    match entry.value {
        Value::Owned(bytes) => Entry {
            value: Value::Loaded(Bytes::from(bytes)),
            ..entry
        },
        _ => entry,
    }
}

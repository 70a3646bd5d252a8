//! A namespace: the KV operations, over whichever backend holds the data.

mod bulk;
mod in_line;
mod list;
mod whole;

pub(crate) use bulk::check_entries;
pub use whole::Snapshot;

use std::sync::Arc;

use crate::store::Bytes;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::de::IgnoredAny;

use super::error::{Error, Op, Result};
use super::limits::{MAX_BULK_KEYS, MAX_BULK_SIZE};
use super::location::{Location, PageQuery};
use super::storage::Storage;
use super::types::{
    BulkEntry, CacheStatus, DamageSink, Entry, EntryMap, ListPage, ListedKey, PutEntry, ServedPage,
};
use super::validate::{
    check_bulk_key, check_put, is_expired, validate_bulk, validate_cache_ttl, validate_key,
    validate_list, BulkType, PutOptions,
};

/// One KV namespace: what a `KVNamespace` binding talks to.
///
/// Each operation is an `async fn` (`get_async`, `put_async`...), the one place its semantics
/// live. On a local backend (memory, sled) the same operation also has a plain form (`get`,
/// `put`...) that runs it on the calling thread; on Redis only the `async` forms work.
///
/// ```
/// use kv_binding::store::{Namespace, PutOptions, Value};
/// let kv = Namespace::in_memory();
/// let now = 1_900_000_000_000;
/// kv.put("greeting", b"hello", &PutOptions::default(), now).unwrap();
/// let entry = kv.get("greeting", None, u64::MAX, now).unwrap().unwrap();
/// assert_eq!(entry.value, Value::Loaded("hello".into()));
/// ```
pub struct Namespace {
    // Shared by the namespace's locations (see [`Namespace::at_new_location`]).
    storage: Arc<Storage>,
    page_cap: Option<usize>,
    // With simulated eventual consistency, this location's read cache.
    location: Option<Location>,
}

impl Namespace {
    pub fn with_storage(storage: Storage) -> Self {
        Self {
            storage: Arc::new(storage),
            page_cap: None,
            location: None,
        }
    }

    /// Simulates eventual consistency: this namespace becomes one location with a read cache
    /// of its own (`store/location.rs`); others come from [`Namespace::at_new_location`]. All
    /// of them together cache up to the default budget of bytes.
    pub fn eventually_consistent(self) -> Self {
        self.eventually_consistent_within(super::location::DEFAULT_CACHE_BUDGET)
    }

    /// [`Namespace::eventually_consistent`], with its locations caching up to `budget` bytes.
    pub fn eventually_consistent_within(mut self, budget: usize) -> Self {
        self.location = Some(Location::new(budget));
        self
    }

    /// Whether reads go through a location's cache.
    pub fn is_eventually_consistent(&self) -> bool {
        self.location.is_some()
    }

    /// The same namespace seen from another location: the same data, and, when consistency
    /// is simulated, a read cache of its own.
    pub fn at_new_location(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            page_cap: self.page_cap,
            location: self.location.as_ref().map(Location::sibling),
        }
    }

    // After a write of `key` here: this location reads it afresh.
    fn wrote(&self, key: &str) {
        if let Some(location) = &self.location {
            location.forget(key);
        }
    }

    pub(super) fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    // After the namespace was replaced as a whole: every location reads afresh.
    pub(super) fn replaced(&self) {
        if let Some(location) = &self.location {
            location.forget_everywhere();
        }
    }

    /// Whether the plain (not `async`) forms of the operations work: memory and sled.
    pub fn is_local(&self) -> bool {
        self.storage.is_local()
    }

    /// What the backend holding the namespace guarantees.
    pub fn capabilities(&self) -> super::backend::Capabilities {
        self.storage.capabilities()
    }

    /// Caps the pages `list` returns at `cap` keys, whatever `limit` asks for: a test then
    /// finds code that ignores `cursor` with 3 keys rather than 1001. Validation is unchanged.
    pub fn with_list_page_cap(mut self, cap: Option<usize>) -> Self {
        self.page_cap = cap.filter(|&cap| cap > 0);
        self
    }

    /// Reads `key`. Expired entries read as missing and are reclaimed on the way. Values longer
    /// than `max_len` come back as [`Value::Deferred`], for the caller to read elsewhere.
    pub async fn get_async(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Entry>> {
        let (entry, _) = self
            .get_reporting_async(key, cache_ttl, max_len, now_ms)
            .await?;
        Ok(entry)
    }

    /// [`Namespace::get_async`], also saying where the answer came from when consistency is
    /// simulated: this location's cache, or the store (`None` when it is not simulated).
    pub async fn get_reporting_async(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<(Option<Entry>, Option<CacheStatus>)> {
        validate_key(Op::Get, key)?;
        validate_cache_ttl(Op::Get, cache_ttl)?;
        let Some(location) = &self.location else {
            return Ok((self.read(key, max_len, now_ms).await?, None));
        };
        if let Some(cached) = location.lookup(key, cache_ttl, max_len, now_ms) {
            return Ok((cached, Some(CacheStatus::Hit)));
        }
        let ticket = location.ticket();
        let found = self.read(key, max_len, now_ms).await?;
        let found = location.remember(key, found, cache_ttl, now_ms, ticket);
        Ok((found, Some(CacheStatus::Miss)))
    }

    // Reads `key` from the store; expired entries read as missing and are reclaimed.
    async fn read(&self, key: &str, max_len: u64, now_ms: i64) -> Result<Option<Entry>> {
        match self.storage.get(key.as_bytes(), max_len).await? {
            Some(entry) if is_expired(entry.expiration, now_ms) => {
                self.storage
                    .delete_expired(&[key.as_bytes()], now_ms)
                    .await?;
                Ok(None)
            }
            found => Ok(found),
        }
    }

    /// Writes `value` with `options`, replacing value, metadata and expiration at once.
    pub async fn put_async(
        &self,
        key: &str,
        value: &[u8],
        options: &PutOptions,
        now_ms: i64,
    ) -> Result<()> {
        let expiration = check_put(key, options, value.len(), now_ms)?;
        let entry = PutEntry {
            key: key.as_bytes(),
            value,
            expiration,
            metadata: options.metadata.as_deref(),
        };
        let written = self.storage.put_all(&[entry]).await;
        self.wrote(key);
        written
    }

    /// Deletes `key`. Deleting a missing key succeeds.
    pub async fn delete_async(&self, key: &str) -> Result<()> {
        validate_key(Op::Delete, key)?;
        let deleted = self.storage.delete(key.as_bytes()).await;
        self.wrote(key);
        deleted
    }
}

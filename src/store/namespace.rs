//! A namespace: the KV operations, over whichever backend holds the data.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::de::IgnoredAny;
use sled::IVec;

use super::error::{Error, Op, Result};
use super::limits::{MAX_BULK_KEYS, MAX_BULK_SIZE};
use super::location::{Location, PageQuery};
use super::storage::Storage;
use super::types::{
    BulkEntry, CacheStatus, DamageSink, Entry, EntryMap, ListPage, ListedKey, PutEntry,
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

    // Reads `keys` (checked already) through this location's cache, if any: in request order,
    // `None` for missing or expired keys.
    async fn read_many(
        &self,
        keys: &[&str],
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Vec<Option<Entry>>> {
        let Some(location) = &self.location else {
            let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
            let found = self.storage.get_many(&keys, max_len).await?;
            return self.live(&keys, found, now_ms).await;
        };
        let mut entries = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let cached = location.lookup(key, cache_ttl, max_len, now_ms);
            if cached.is_none() {
                missing.push(index);
            }
            entries.push(cached.flatten());
        }
        if missing.is_empty() {
            return Ok(entries);
        }
        let wanted: Vec<&[u8]> = missing.iter().map(|&i| keys[i].as_bytes()).collect();
        let ticket = location.ticket();
        let found = self.storage.get_many(&wanted, max_len).await?;
        let found = self.live(&wanted, found, now_ms).await?;
        for (index, entry) in missing.into_iter().zip(found) {
            entries[index] = location.remember(keys[index], entry, cache_ttl, now_ms, ticket);
        }
        Ok(entries)
    }

    /// `entries` (read for `keys`) with the expired ones as `None`, reclaimed on the way.
    async fn live(
        &self,
        keys: &[&[u8]],
        mut entries: Vec<Option<Entry>>,
        now_ms: i64,
    ) -> Result<Vec<Option<Entry>>> {
        let mut expired = Vec::new();
        for (key, entry) in keys.iter().zip(&mut entries) {
            if entry
                .as_ref()
                .is_some_and(|entry| is_expired(entry.expiration, now_ms))
            {
                *entry = None;
                expired.push(*key);
            }
        }
        if !expired.is_empty() {
            self.storage.delete_expired(&expired, now_ms).await?;
        }
        Ok(entries)
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

    /// Deletes up to 100 keys: the experimental `deleteBulk`. Every key is checked as
    /// `delete` checks it before any is deleted.
    pub async fn delete_bulk_async(&self, keys: &[String]) -> Result<()> {
        if keys.len() > MAX_BULK_KEYS {
            return Err(Error::service(
                Op::Delete,
                400,
                format!("You can delete maximum of {MAX_BULK_KEYS} keys per request"),
            ));
        }
        for key in keys {
            validate_key(Op::Delete, key)?;
        }
        for key in keys {
            let deleted = self.storage.delete(key.as_bytes()).await;
            self.wrote(key);
            deleted?;
        }
        Ok(())
    }

    /// Reads up to 100 keys at once, in request order (`None` for missing or expired keys).
    /// Every value must be at most `max_len` bytes and all together too, or the read is
    /// refused with `Ok(None)` for the caller to redo elsewhere with a higher bound.
    ///
    /// As the service does, keys are checked and read one by one in request order: a value
    /// that is not JSON (with `kind` json) before a bad key is the error reported, a bad key
    /// before it is. The total size is checked last.
    pub async fn get_bulk_async(
        &self,
        keys: &[String],
        kind: Option<&str>,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Vec<Option<Entry>>>> {
        let kind = validate_bulk(keys, kind)?;
        // The keys before the first bad one are read; its error comes after theirs.
        let mut refused = Ok(());
        let mut readable = Vec::with_capacity(keys.len());
        for key in keys {
            refused = check_bulk_key(key, cache_ttl);
            if refused.is_err() {
                break;
            }
            readable.push(key.as_str());
        }
        let entries = self
            .read_many(&readable, cache_ttl, max_len, now_ms)
            .await?;
        let mut total: u64 = 0;
        for entry in entries.iter().flatten() {
            let Some(len) = entry.value.bytes().map(|bytes| bytes.len() as u64) else {
                return Ok(None);
            };
            total += len;
            if total > max_len {
                return Ok(None);
            }
        }
        // Deferred values returned above, so every value here has its bytes.
        let texts = entries
            .iter()
            .flatten()
            .map(|entry| String::from_utf8_lossy(entry.value.bytes().unwrap_or_default()));
        if kind == BulkType::Json
            && texts
                .clone()
                .any(|text| serde_json::from_str::<IgnoredAny>(&text).is_err())
        {
            return Err(Error::service(
                Op::GetBulk,
                400,
                "At least one of the requested keys corresponds to a non-json value",
            ));
        }
        refused?;
        // The service counts decoded string lengths, in UTF-16 units; a value never has more
        // of those than bytes, so the exact count is needed only past the limit.
        if total > MAX_BULK_SIZE as u64
            && texts.map(|text| text.encode_utf16().count()).sum::<usize>() > MAX_BULK_SIZE
        {
            return Err(Error::service(
                Op::GetBulk,
                413,
                format!(
                    "Total size of request exceeds the limit of {}MB",
                    MAX_BULK_SIZE / (1024 * 1024)
                ),
            ));
        }
        Ok(Some(entries))
    }

    /// Lists keys in UTF-8 byte order: up to `limit` (0 or less: 1000) keys starting with
    /// `prefix`, after `cursor`. Never reads values; expired keys are skipped and reclaimed.
    pub async fn list_async(
        &self,
        prefix: &str,
        limit: i32,
        cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<ListPage> {
        let limit = validate_list(limit, prefix)?;
        let limit = self.page_cap.map_or(limit, |cap| limit.min(cap));
        let Some(location) = &self.location else {
            return self.list_page(prefix, limit, cursor, now_ms).await;
        };
        let query = PageQuery {
            prefix: prefix.to_owned(),
            limit,
            cursor: cursor.map(str::to_owned),
        };
        if let Some(page) = location.page(&query, now_ms) {
            let cache_status = Some(CacheStatus::Hit);
            return Ok(ListPage {
                cache_status,
                ..page
            });
        }
        let ticket = location.ticket();
        let page = self.list_page(prefix, limit, cursor, now_ms).await?;
        location.remember_page(query, &page, now_ms, ticket);
        let cache_status = Some(CacheStatus::Miss);
        Ok(ListPage {
            cache_status,
            ..page
        })
    }

    // One `list` page, read from the store.
    async fn list_page(
        &self,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<ListPage> {
        let after = match cursor.map(decode_cursor) {
            // A cursor we never made points nowhere: the list is over.
            Some(None) => return Ok(ListPage::default()),
            Some(Some(after)) => Some(after),
            None => None,
        };
        let mut keys = Vec::new();
        let mut expired = Vec::new();
        let mut more = false;
        self.storage
            .scan(
                prefix.as_bytes(),
                after.as_deref(),
                limit + 1,
                &mut |key, expiration, metadata| {
                    if is_expired(expiration, now_ms) {
                        expired.push(key.to_vec());
                        return true;
                    }
                    if keys.len() == limit {
                        more = true;
                        return false;
                    }
                    keys.push(ListedKey {
                        name: IVec::from(key),
                        expiration,
                        metadata: metadata.cloned(),
                    });
                    true
                },
            )
            .await?;
        if !expired.is_empty() {
            let expired: Vec<&[u8]> = expired.iter().map(Vec::as_slice).collect();
            self.storage.delete_expired(&expired, now_ms).await?;
        }
        let cursor = match keys.last() {
            Some(last) if more => Some(BASE64.encode(&last.name)),
            _ => None,
        };
        Ok(ListPage {
            keys,
            cursor,
            cache_status: None,
        })
    }

    /// Writes every entry, or none: all are checked as `put` checks them, against the one
    /// instant `now_ms`, before any is written, and the first refused one is reported with its
    /// index and key; then all are written in one atomic step, so a failure while writing
    /// (a full disk) leaves none written either. (On a Redis Cluster, one step per partition:
    /// see the README.)
    pub async fn put_many_async(&self, entries: &[BulkEntry<'_>], now_ms: i64) -> Result<()> {
        let checked = check_entries(entries, 0, now_ms)?;
        let written = self.storage.put_all(&checked).await;
        for entry in entries {
            self.wrote(entry.key);
        }
        written
    }

    /// Every live entry in key order, values loaded. A damaged entry fails the dump, unless
    /// `skip` is given: then it is left out and handed to `skip` with its key, so that what
    /// can still be read is saved.
    pub async fn dump_async(
        &self,
        now_ms: i64,
        skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        let mut entries = self.storage.entries(skip).await?;
        entries.retain(|(_, entry)| !is_expired(entry.expiration, now_ms));
        Ok(entries)
    }

    /// Everything in the namespace now, expired entries included, to `restore` later. In
    /// memory it shares the namespace's map instead of copying it.
    pub async fn snapshot_async(&self) -> Result<Snapshot> {
        if let Some(map) = self.storage.share_map() {
            return Ok(Snapshot::Shared(map));
        }
        Ok(Snapshot::Entries(self.storage.entries(None).await?))
    }

    /// Makes the namespace hold exactly what `snapshot` held.
    pub async fn restore_async(&self, snapshot: &Snapshot) -> Result<()> {
        let restored = self.replace(snapshot).await;
        self.replaced();
        restored
    }

    async fn replace(&self, snapshot: &Snapshot) -> Result<()> {
        match snapshot {
            Snapshot::Shared(map) if self.storage.adopt_map(map.clone()) => Ok(()),
            Snapshot::Shared(map) => {
                let entries: Vec<(IVec, Entry)> = map
                    .iter()
                    .map(|(key, entry)| (key.clone(), entry.clone()))
                    .collect();
                self.storage.replace_all(&entries).await
            }
            Snapshot::Entries(entries) => self.storage.replace_all(entries).await,
        }
    }

    /// Deletes every entry.
    pub async fn clear_async(&self) -> Result<()> {
        let cleared = self.storage.replace_all(&[]).await;
        self.replaced();
        cleared
    }

    /// Deletes every entry and every trace of the namespace in its store (on Redis, its
    /// layout key): for namespaces made for one test run.
    pub async fn remove_async(&self) -> Result<()> {
        let removed = self.storage.remove().await;
        self.replaced();
        removed
    }

    /// Makes every write so far durable (a no-op in memory; on Redis, the server's
    /// configuration decides).
    pub async fn flush_async(&self) -> Result<()> {
        self.storage.flush().await
    }
}

/// The plain forms of the operations, for a local namespace: each runs its `async` form on
/// the calling thread (see [`Storage::local`]).
impl Namespace {
    pub fn get(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Entry>> {
        self.storage
            .local(self.get_async(key, cache_ttl, max_len, now_ms))
    }

    pub fn get_reporting(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<(Option<Entry>, Option<CacheStatus>)> {
        self.storage
            .local(self.get_reporting_async(key, cache_ttl, max_len, now_ms))
    }

    pub fn put(&self, key: &str, value: &[u8], options: &PutOptions, now_ms: i64) -> Result<()> {
        self.storage
            .local(self.put_async(key, value, options, now_ms))
    }

    pub fn delete_bulk(&self, keys: &[String]) -> Result<()> {
        self.storage.local(self.delete_bulk_async(keys))
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.storage.local(self.delete_async(key))
    }

    pub fn get_bulk(
        &self,
        keys: &[String],
        kind: Option<&str>,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Vec<Option<Entry>>>> {
        self.storage
            .local(self.get_bulk_async(keys, kind, cache_ttl, max_len, now_ms))
    }

    pub fn list(
        &self,
        prefix: &str,
        limit: i32,
        cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<ListPage> {
        self.storage
            .local(self.list_async(prefix, limit, cursor, now_ms))
    }

    pub fn put_many(&self, entries: &[BulkEntry<'_>], now_ms: i64) -> Result<()> {
        self.storage.local(self.put_many_async(entries, now_ms))
    }

    pub fn dump(
        &self,
        now_ms: i64,
        skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        self.storage.local(self.dump_async(now_ms, skip))
    }

    pub fn snapshot(&self) -> Result<Snapshot> {
        self.storage.local(self.snapshot_async())
    }

    pub fn restore(&self, snapshot: &Snapshot) -> Result<()> {
        self.storage.local(self.restore_async(snapshot))
    }

    pub fn clear(&self) -> Result<()> {
        self.storage.local(self.clear_async())
    }

    pub fn flush(&self) -> Result<()> {
        self.storage.local(self.flush_async())
    }
}

/// A cursor is the base64 of the last key returned; the next page starts strictly after it.
fn decode_cursor(cursor: &str) -> Option<Vec<u8>> {
    BASE64.decode(cursor).ok()
}

/// `entries` checked as `put` checks each, against `now_ms`, as they go to a backend; the
/// first refused one is reported with its index, counted from `first`.
pub(crate) fn check_entries<'a>(
    entries: &'a [BulkEntry<'_>],
    first: usize,
    now_ms: i64,
) -> Result<Vec<PutEntry<'a>>> {
    let mut checked = Vec::with_capacity(entries.len());
    for (index, entry) in (first..).zip(entries) {
        let refused = |source| Error::Entry {
            index,
            key: entry.key.to_owned(),
            source: Box::new(source),
        };
        let expiration =
            check_put(entry.key, &entry.options, entry.value.len(), now_ms).map_err(refused)?;
        checked.push(PutEntry {
            key: entry.key.as_bytes(),
            value: entry.value,
            expiration,
            metadata: entry.options.metadata.as_deref(),
        });
    }
    Ok(checked)
}

/// The contents of a namespace at one moment (see [`Namespace::snapshot`]).
#[derive(Clone, Debug)]
pub enum Snapshot {
    /// The entries, read from a store.
    Entries(Vec<(IVec, Entry)>),
    /// A namespace in memory's own map, shared with it until either is written.
    Shared(Arc<EntryMap>),
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::Entries(Vec::new())
    }
}

impl Snapshot {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        match self {
            Snapshot::Entries(entries) => entries.len(),
            Snapshot::Shared(map) => map.len(),
        }
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

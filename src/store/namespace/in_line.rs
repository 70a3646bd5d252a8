//! The plain forms of the operations, for a local namespace (memory, sled): each runs its
//! `async` form to completion on the calling thread (see [`Storage::local`]).

use super::*;

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

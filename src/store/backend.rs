//! The storage trait the namespace logic runs on, and its in-memory implementation.

use std::ops::Bound;
use std::sync::{Arc, RwLock};

use sled::IVec;

use super::error::Result;
use super::types::{DamageSink, Entry, EntryMap, PutEntry, ScanVisitor, Value};
use super::validate::is_expired;

/// Raw storage for one namespace. Backends know nothing of validation or expiry rules: they
/// store, fetch and delete entries whose keys are UTF-8 bytes.
pub trait Backend: Send + Sync {
    /// Reads the entry at `key`; values longer than `max_len` come back `Deferred`.
    fn get(&self, key: &[u8], max_len: u64) -> Result<Option<Entry>>;

    /// Replaces value, metadata and expiration of `key` in one atomic step.
    fn put(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Option<i64>,
        metadata: Option<&str>,
    ) -> Result<()>;

    /// Writes every entry in one atomic step, as `put` would one by one: when it fails (a
    /// full disk), none is written. A key given twice gets its last entry.
    fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()>;

    /// Removes `key`; a missing key is not an error.
    fn delete(&self, key: &[u8]) -> Result<()>;

    /// Removes `key` if the entry stored there now is expired at `now_ms`. Atomic with respect
    /// to writers: a newer, live write to the key is never removed.
    fn delete_expired(&self, key: &[u8], now_ms: i64) -> Result<()>;

    /// Visits entries in key order without reading their values: from the first key after
    /// `after` (or the first key at all), while keys start with `prefix`, until `visit`
    /// returns `false`. `visit` gets the key, its expiration and its metadata.
    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, visit: &mut ScanVisitor<'_>) -> Result<()>;

    /// Every entry in key order, values loaded. An entry found damaged (`Error::Corrupt`)
    /// fails the whole call, unless `skip` is given: then it is left out and handed to `skip`
    /// with its key.
    fn entries(&self, skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(IVec, Entry)>>;

    /// Replaces everything in the namespace with `entries` (values loaded), as `entries`
    /// returned them; an empty list clears the namespace.
    fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()>;

    /// Makes every write so far durable.
    fn flush(&self) -> Result<()>;

    /// Starts a staged write (see [`super::Staged`]): its entries come in parts, each written
    /// with what undoes it, until [`Backend::stage_commit`] keeps them all or
    /// [`Backend::stage_drop`] undoes them all. `None` when this backend does not stage: the
    /// caller then keeps the parts until the commit.
    fn stage_begin(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Writes `entries` as a part of `stage`; a key given again gets its last entry.
    fn stage_put(&self, _stage: u64, _entries: &[PutEntry<'_>]) -> Result<()> {
        Err(super::error::Error::Internal(
            "this backend does not stage".into(),
        ))
    }

    /// Keeps every part of `stage`, and ends it.
    fn stage_commit(&self, _stage: u64) -> Result<()> {
        Err(super::error::Error::Internal(
            "this backend does not stage".into(),
        ))
    }

    /// Ends `stage` with every part undone; an unknown stage is no error.
    fn stage_drop(&self, _stage: u64) -> Result<()> {
        Ok(())
    }

    /// The backend as a [`MemoryBackend`], whose snapshots share its map.
    fn as_memory(&self) -> Option<&MemoryBackend> {
        None
    }
}

/// Where a scan starts: strictly after `after` when that is inside or past the prefix range,
/// otherwise at the prefix itself.
pub(crate) fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// An isolated namespace held in memory: the default for tests. Nothing touches the disk.
///
/// Keys are `IVec`s, which hold keys of up to 22 bytes inline: a lookup then compares keys
/// inside the tree's nodes instead of following a pointer to each one.
///
/// The map is shared with the snapshots taken of it ([`Self::share`]) and copied only when
/// written while shared, so that a snapshot and a restore ([`Self::adopt`]) cost nothing
/// however many entries there are: a test that only reads after a restore never pays for one.
#[derive(Default)]
pub struct MemoryBackend {
    entries: RwLock<Arc<EntryMap>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Arc<EntryMap>> {
        // A panic while holding the lock cannot leave the map half-updated (every update is one
        // insert or remove), so a poisoned lock is still safe to use.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The map, to change through [`Arc::make_mut`], which first copies it if a snapshot
    /// shares it.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Arc<EntryMap>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything in the namespace now, shared rather than copied.
    pub fn share(&self) -> Arc<EntryMap> {
        self.read().clone()
    }

    /// Makes the namespace hold exactly `entries`, shared rather than copied.
    pub fn adopt(&self, entries: Arc<EntryMap>) {
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
    }
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8], max_len: u64) -> Result<Option<Entry>> {
        Ok(self.read().get(key).map(|entry| {
            let mut entry = entry.clone();
            if let Some(len) = entry.value.bytes().map(|bytes| bytes.len() as u64) {
                if len > max_len {
                    entry.value = Value::Deferred { len };
                }
            }
            entry
        }))
    }

    fn put(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Option<i64>,
        metadata: Option<&str>,
    ) -> Result<()> {
        self.put_all(&[PutEntry {
            key,
            value,
            expiration,
            metadata,
        }])
    }

    fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        let mut shared = self.write();
        let map = Arc::make_mut(&mut shared);
        for entry in entries {
            let stored = Entry {
                expiration: entry.expiration,
                metadata: entry.metadata.map(IVec::from),
                value: Value::Loaded(IVec::from(entry.value)),
            };
            map.insert(IVec::from(entry.key), stored);
        }
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        let mut shared = self.write();
        // A key that is not there changes nothing, and copies nothing.
        if shared.contains_key(key) {
            Arc::make_mut(&mut shared).remove(key);
        }
        Ok(())
    }

    fn delete_expired(&self, key: &[u8], now_ms: i64) -> Result<()> {
        let mut shared = self.write();
        if shared
            .get(key)
            .is_some_and(|entry| is_expired(entry.expiration, now_ms))
        {
            Arc::make_mut(&mut shared).remove(key);
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, visit: &mut ScanVisitor<'_>) -> Result<()> {
        let entries = self.read();
        let range = entries.range::<[u8], _>((scan_start(prefix, after), Bound::Unbounded));
        for (key, entry) in range {
            if !key.starts_with(prefix) || !visit(key, entry.expiration, entry.metadata.as_ref()) {
                break;
            }
        }
        Ok(())
    }

    fn entries(&self, _skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(IVec, Entry)>> {
        // Nothing in memory is ever damaged.
        Ok(self
            .read()
            .iter()
            .map(|(key, entry)| (key.clone(), entry.clone()))
            .collect())
    }

    fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        self.adopt(Arc::new(entries.iter().cloned().collect()));
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn as_memory(&self) -> Option<&MemoryBackend> {
        Some(self)
    }
}

//! The memory backend: an isolated namespace in a map, for tests.

use std::ops::Bound;
use std::sync::{Arc, RwLock};

use sled::IVec;

use crate::store::{is_expired, Capabilities};
use crate::store::{
    scan_start, Backend, DamageSink, Entry, EntryMap, Namespace, PutEntry, Result, ScanVisitor,
    Storage, Value,
};

impl Namespace {
    /// An isolated namespace in memory.
    pub fn in_memory() -> Self {
        Self::with_storage(Storage::Local(Box::new(MemoryBackend::new())))
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
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            in_line: true,
            atomic_bulk_writes: true,
            shared_snapshots: true,
            ..Capabilities::default()
        }
    }

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

    fn share_map(&self) -> Option<Arc<EntryMap>> {
        Some(self.share())
    }

    fn adopt_map(&self, map: Arc<EntryMap>) -> bool {
        self.adopt(map);
        true
    }
}

//! The namespace as a whole: dumps, snapshots and restores, clearing, removing, flushing.

use super::*;

/// The contents of a namespace at one moment (see [`Namespace::snapshot`]).
#[derive(Clone, Debug)]
pub enum Snapshot {
    /// The entries, read from a store.
    Entries(Vec<(Bytes, Entry)>),
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

impl Namespace {
    /// Every live entry in key order, values loaded. A damaged entry fails the dump, unless
    /// `skip` is given: then it is left out and handed to `skip` with its key, so that what
    /// can still be read is saved.
    pub async fn dump_async(
        &self,
        now_ms: i64,
        skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(Bytes, Entry)>> {
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

    pub(super) async fn replace(&self, snapshot: &Snapshot) -> Result<()> {
        match snapshot {
            Snapshot::Shared(map) if self.storage.adopt_map(map.clone()) => Ok(()),
            Snapshot::Shared(map) => {
                let entries: Vec<(Bytes, Entry)> = map
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

    /// The names of the namespaces in this namespace's store, in byte order; `None` in
    /// memory, where a namespace stands alone.
    pub async fn namespaces_async(&self) -> Result<Option<Vec<String>>> {
        self.storage.namespaces().await
    }

    /// The requests the store's holder answered for other processes after `after` in its
    /// log; `None` unless the store is shared through a holder.
    pub async fn served_async(&self, after: u64) -> Result<Option<ServedPage>> {
        self.storage.served(after).await
    }

    /// Makes every write so far durable (a no-op in memory; on Redis, the server's
    /// configuration decides).
    pub async fn flush_async(&self) -> Result<()> {
        self.storage.flush().await
    }
}

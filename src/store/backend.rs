//! The storage traits the namespace logic runs on.

use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::sync::Arc;

use super::types::Bytes;

use super::error::Error;
use super::error::Result;
use super::types::{DamageSink, Entries, Entry, EntryMap, PutEntry, ScanVisitor, ServedPage};

/// What a backend guarantees, read by the semantics, the binding and the tests instead of
/// which backend it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Every call answers on the calling thread (memory, a sled store this process holds).
    pub in_line: bool,
    /// The data outlives the process.
    pub persistent: bool,
    /// Other processes read and write the same data.
    pub shared: bool,
    /// A bulk write of any size is all or nothing, a crash included (on Redis only one that
    /// fits a script call is).
    pub atomic_bulk_writes: bool,
    /// `flush` makes every acknowledged write durable on disk.
    pub durable_flush: bool,
    /// A write given in parts is staged by the backend, not held in memory until its commit.
    pub staged_writes: bool,
    /// A snapshot shares the backend's entries rather than copying them, and a restore
    /// adopts them: both take microseconds, so they run in-line.
    pub shared_snapshots: bool,
}

/// Raw storage for one namespace. Backends know nothing of validation or expiry rules: they
/// store, fetch and delete entries whose keys are UTF-8 bytes.
pub trait Backend: Send + Sync {
    /// What this backend guarantees.
    fn capabilities(&self) -> Capabilities;

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
    fn entries(&self, skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(Bytes, Entry)>>;

    /// Replaces everything in the namespace with `entries` (values loaded), as `entries`
    /// returned them; an empty list clears the namespace.
    fn replace_all(&self, entries: &[(Bytes, Entry)]) -> Result<()>;

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

    /// The names of the namespaces in this namespace's store, this one included, in byte
    /// order: `None` when the backend keeps one namespace alone (memory).
    fn namespaces(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// The requests of other processes that this process answered as the store's holder,
    /// after `after` in its log (see [`ServedPage`]); asking keeps the log recording for a
    /// while. `None` when the backend is not a store others reach through this process.
    fn served(&self, _after: u64) -> Result<Option<ServedPage>> {
        Ok(None)
    }

    /// The backend's entries as one map, shared rather than copied, when it keeps them so
    /// (memory): a snapshot then costs nothing. `None` for the others.
    fn share_map(&self) -> Option<Arc<EntryMap>> {
        None
    }

    /// Makes `map` the backend's entries, shared, when it keeps them so; `false` when it
    /// does not (the caller then writes the entries).
    fn adopt_map(&self, _map: Arc<EntryMap>) -> bool {
        false
    }
}

/// What an operation of a [`RemoteBackend`] returns: a future, run on tokio.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Storage for one namespace reached over the network or a socket (Redis, a store another
/// process holds): [`Backend`]'s operations as futures. `scan` takes how many entries the
/// caller expects, so that one round trip can fetch them; `remove` deletes the namespace
/// with whatever else the backend keeps for it. A backend that does not stage writes answers
/// `stage_begin` with `None`.
pub trait RemoteBackend: Send + Sync {
    /// What this backend guarantees (never `in_line`).
    fn capabilities(&self) -> Capabilities;
    fn get<'a>(&'a self, key: &'a [u8]) -> Pending<'a, Option<Entry>>;
    fn get_many<'a>(&'a self, keys: &'a [&'a [u8]]) -> Pending<'a, Vec<Option<Entry>>>;
    fn put_all<'a>(&'a self, entries: &'a [PutEntry<'a>]) -> Pending<'a, ()>;
    fn delete<'a>(&'a self, key: &'a [u8]) -> Pending<'a, ()>;
    fn delete_expired<'a>(&'a self, keys: &'a [&'a [u8]], now_ms: i64) -> Pending<'a, ()>;
    fn scan<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        want: usize,
        visit: &'a mut ScanVisitor<'_>,
    ) -> Pending<'a, ()>;
    fn entries<'a>(&'a self, skip: Option<&'a mut DamageSink<'_>>) -> Pending<'a, Entries>;
    fn replace_all<'a>(&'a self, entries: &'a [(Bytes, Entry)]) -> Pending<'a, ()>;
    fn remove(&self) -> Pending<'_, ()>;
    fn flush(&self) -> Pending<'_, ()>;

    /// As [`Backend::namespaces`].
    fn namespaces(&self) -> Pending<'_, Option<Vec<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// As [`Backend::served`]: for a store another process holds, that holder's log.
    fn served(&self, _after: u64) -> Pending<'_, Option<ServedPage>> {
        Box::pin(async { Ok(None) })
    }

    fn stage_begin(&self) -> Pending<'_, Option<u64>> {
        Box::pin(async { Ok(None) })
    }

    fn stage_put<'a>(&'a self, _stage: u64, _entries: &'a [PutEntry<'a>]) -> Pending<'a, ()> {
        Box::pin(async { Err(Error::Internal("this backend does not stage".into())) })
    }

    fn stage_commit(&self, _stage: u64) -> Pending<'_, ()> {
        Box::pin(async { Err(Error::Internal("this backend does not stage".into())) })
    }

    fn stage_drop(&self, _stage: u64) -> Pending<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The operations of a [`RemoteBackend`] that `$backend` has as inherent `async fn`s of the
/// same names and arguments (`get`, `get_many`, `put_all`, `delete`, `delete_expired`,
/// `scan`, `entries`, `replace_all`), each boxed: written inside its `impl RemoteBackend`.
macro_rules! remote_operations {
    ($backend:ident) => {
        fn get<'a>(
            &'a self,
            key: &'a [u8],
        ) -> $crate::store::Pending<'a, Option<$crate::store::Entry>> {
            Box::pin($backend::get(self, key))
        }

        fn get_many<'a>(
            &'a self,
            keys: &'a [&'a [u8]],
        ) -> $crate::store::Pending<'a, Vec<Option<$crate::store::Entry>>> {
            Box::pin($backend::get_many(self, keys))
        }

        fn put_all<'a>(
            &'a self,
            entries: &'a [$crate::store::PutEntry<'a>],
        ) -> $crate::store::Pending<'a, ()> {
            Box::pin($backend::put_all(self, entries))
        }

        fn delete<'a>(&'a self, key: &'a [u8]) -> $crate::store::Pending<'a, ()> {
            Box::pin($backend::delete(self, key))
        }

        fn delete_expired<'a>(
            &'a self,
            keys: &'a [&'a [u8]],
            now_ms: i64,
        ) -> $crate::store::Pending<'a, ()> {
            Box::pin($backend::delete_expired(self, keys, now_ms))
        }

        fn scan<'a>(
            &'a self,
            prefix: &'a [u8],
            after: Option<&'a [u8]>,
            want: usize,
            visit: &'a mut $crate::store::ScanVisitor<'_>,
        ) -> $crate::store::Pending<'a, ()> {
            Box::pin($backend::scan(self, prefix, after, want, visit))
        }

        fn entries<'a>(
            &'a self,
            skip: Option<&'a mut $crate::store::DamageSink<'_>>,
        ) -> $crate::store::Pending<'a, $crate::store::Entries> {
            Box::pin($backend::entries(self, skip))
        }

        fn replace_all<'a>(
            &'a self,
            entries: &'a [($crate::store::Bytes, $crate::store::Entry)],
        ) -> $crate::store::Pending<'a, ()> {
            Box::pin($backend::replace_all(self, entries))
        }
    };
}
pub(crate) use remote_operations;

/// Where a scan starts: strictly after `after` when that is inside or past the prefix range,
/// otherwise at the prefix itself.
pub(crate) fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

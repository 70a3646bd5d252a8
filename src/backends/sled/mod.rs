//! The on-disk backend: one sled database per directory, shared by every namespace of the
//! process that uses that directory.
//!
//! sled locks its directory exclusively, even against a second open in the same process, so a
//! process-wide registry hands out one reference-counted database per canonical path. Before
//! sled opens, we take our own lock file (`kv.lock`, holding our pid) so that a second process
//! gets an error naming the owner instead of sled's bare "could not acquire lock".

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use fs2::FileExt;
use sled::IVec;

use crate::backends::record::{self, BlobRef, Body, Place, INLINE_VALUE_MAX};
use crate::store::is_expired;
use crate::store::random_id;
use crate::store::{panic_message, Error, Result};
use crate::store::{scan_start, Backend, Capabilities};
use crate::store::{DamageSink, Entries, Entry, PutEntry, ScanVisitor, ServedPage, Value};
use cache::{CacheGuard, Cached, RecordCache};
use dir::{FORMAT_FILE, LOCK_FILE};
use files::{FileValue, ValueFiles, FILE_VALUE_MIN};

pub(crate) mod cache;
pub(crate) mod dir;
pub(crate) mod files;
mod lease;
mod open;
mod operations;
mod records;
mod stage;
mod undo;

pub use lease::flush_all;
pub(crate) use lease::{Lease, Serving};
pub use open::{holder_shares, read_store_id, SHARING_MARK};
use open::{mark, open_db, sled_error, store_id, take_lock, write_lock};
use records::file_of;
pub(crate) use stage::STAGE_GONE;
use undo::{join_parts, split_parts, undo_record, undo_records};

/// The store format this build writes. Format 2 added value files (see [`ValueFiles`]), format
/// 3 their checksums (see [`record`]). This build reads formats 1 to 3, and marks an older
/// store as format 3 when it opens it, so that a build that knows only an older format refuses
/// it rather than misreading its records.
pub const FORMAT_VERSION: &str = "3";
const READABLE_FORMATS: [&str; 3] = ["1", "2", "3"];
const FORMAT_KEY: &[u8] = b"kv-binding/format";
/// The store's identity (8 bytes), made when it is first opened by a build that has one.
const STORE_ID_KEY: &[u8] = b"kv-binding/store-id";
/// How many of the sessions that closed the store cleanly the lock file remembers.
const CLEAN_SESSIONS_KEPT: usize = 64;

/// Who holds an open store, for the processes it serves (see [`crate::backends::shared`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The store's own id, kept in the store and in its format file: a socket that answers
    /// with another store's id is not this store's.
    pub store: u64,
    /// This opening of the store: the writes a client's holder acknowledged are durable once
    /// that session flushed them, or closed cleanly.
    pub session: u64,
    /// Earlier sessions that closed the store cleanly (flushed everything, then let go).
    pub clean: Vec<u64>,
}

/// How a store directory is opened. Read when the first namespace of a directory opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// sled's page cache, in bytes. sled's own default (1 GiB) is far too large for a laptop.
    pub cache_capacity: u64,
    /// The record cache in front of sled (see [`RecordCache`]), in bytes.
    pub record_cache_capacity: u64,
    /// How often sled writes dirty data to disk in the background, in ms.
    pub flush_every_ms: Option<u64>,
    /// Values longer than this go to value files (see [`ValueFiles`]).
    pub file_value_min: usize,
    /// Whether the store is shared with the other processes that open it (see
    /// [`crate::backends::shared`]): served to them while this process holds it, reached through its
    /// holder when another process does.
    pub share: bool,
    /// How long an operation on a store another process holds waits for that process.
    pub holder_timeout: Duration,
}

impl StoreConfig {
    /// Memory for caching, in bytes, when nothing else is said: 64 MiB.
    pub const DEFAULT_CACHE_BUDGET: u64 = 64 * 1024 * 1024;
    /// The smallest page cache sled is given, whatever the budget.
    pub const MIN_PAGE_CACHE: u64 = 1024 * 1024;

    /// Splits `bytes` of memory for caching evenly between the record cache, which answers
    /// reads, and sled's page cache, which writes and cache misses go through.
    pub fn with_cache_budget(self, bytes: u64) -> Self {
        Self {
            // sled refuses (panics on) a page cache under 256 bytes.
            cache_capacity: (bytes - bytes / 2).max(Self::MIN_PAGE_CACHE),
            record_cache_capacity: bytes / 2,
            ..self
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            cache_capacity: 0,
            record_cache_capacity: 0,
            flush_every_ms: Some(200),
            file_value_min: FILE_VALUE_MIN,
            share: true,
            holder_timeout: Duration::from_secs(30),
        }
        .with_cache_budget(Self::DEFAULT_CACHE_BUDGET)
    }
}

/// sled frees a closed database's last parts through crossbeam's epoch garbage, and they hold
/// its file lock until then. Pushes this thread's garbage out and lets the collector run.
fn release_garbage() {
    for _ in 0..8 {
        crossbeam_epoch::pin().flush();
    }
}

/// The most entries one sled batch of a write carries: sled keeps the garbage of a batch
/// until it is done (a batch of 1,000,000 small entries held 4 GB), so a larger write goes
/// in batches of this size (see [`SledBackend::put_chunked`]).
const WRITE_BATCH: usize = 1024;

/// One namespace in a sled database: an index tree and a blob tree (see [`record`]).
///
/// Every change to the index goes through the store's [`RecordCache`] with its lock held, so
/// reads can be answered from the cache.
/// A namespace's trees and its number in the record cache, as the store keeps them once
/// opened.
#[derive(Clone)]
pub(super) struct NamespaceTrees {
    index: sled::Tree,
    blobs: sled::Tree,
    undo: sled::Tree,
    number: u32,
}

pub struct SledBackend {
    // Trees hold the database open too, so they go before the lease.
    index: sled::Tree,
    blobs: sled::Tree,
    /// The records a large write replaced, until it is done (see [`SledBackend::put_chunked`]).
    undo: sled::Tree,
    /// This namespace's number in the store's record cache.
    number: u32,
    /// See [`StoreConfig::file_value_min`].
    file_value_min: usize,
    lease: Lease,
}

impl SledBackend {
    /// Entries in key order from the first key after `after` (or the first of all), values
    /// loaded, until `full` (asked after each entry) says there are enough: those entries,
    /// and, if it stopped there, the last key it looked at. An entry found damaged fails the
    /// call, unless `skip` is given: then it is left out and handed to `skip`.
    pub fn entries_after(
        &self,
        after: Option<&[u8]>,
        mut skip: Option<&mut DamageSink<'_>>,
        mut full: impl FnMut(&Entry) -> bool,
    ) -> Result<(Entries, Option<IVec>)> {
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        let mut entries = Vec::new();
        for item in self
            .index
            .range::<&[u8], _>((start, std::ops::Bound::Unbounded))
        {
            let (key, bytes) = item.map_err(|e| self.error(e))?;
            // A record replaced while we walk is read again; a deleted one is left out.
            let entry = match self.load(&key, bytes, u64::MAX) {
                Ok(None) => self.get(&key, u64::MAX),
                loaded => loaded,
            };
            match (entry, skip.as_deref_mut()) {
                (Ok(Some(entry)), _) => {
                    let stop = full(&entry);
                    entries.push((key.clone(), entry));
                    if stop {
                        return Ok((entries, Some(key)));
                    }
                }
                (Ok(None), _) => {}
                (Err(error @ Error::Corrupt { .. }), Some(skip)) => skip(key, error),
                (Err(error), _) => return Err(error),
            }
        }
        Ok((entries, None))
    }

    /// Opens (creating if needed) namespace `name` of the store in directory `path`.
    pub fn open(path: &Path, name: &str, config: &StoreConfig) -> Result<Self> {
        Self::with_lease(Lease::acquire(path, config)?, name, config)
    }

    /// Namespace `name` of the database that `lease` holds open. Its trees are opened once
    /// per opening of the store (a holder answers each request of its clients through this).
    pub(crate) fn with_lease(lease: Lease, name: &str, config: &StoreConfig) -> Result<Self> {
        let shared = lease.shared();
        let known = shared.namespace_trees(name);
        let (trees, first) = match known {
            Some(trees) => (trees, false),
            None => {
                let open_tree = |kind: &str| {
                    shared
                        .db
                        .open_tree(format!("kv/{name}/{kind}"))
                        .map_err(|e| sled_error(&shared.path, e))
                };
                let index = open_tree("index")?;
                let number = shared.cache.namespace(name, index.is_empty());
                let trees = NamespaceTrees {
                    index,
                    blobs: open_tree("blobs")?,
                    undo: open_tree("undo")?,
                    number,
                };
                (trees, true)
            }
        };
        let backend = Self {
            index: trees.index.clone(),
            blobs: trees.blobs.clone(),
            undo: trees.undo.clone(),
            number: trees.number,
            file_value_min: config.file_value_min,
            lease,
        };
        if first {
            // A large write that a crash cut short is undone, so that it is all or nothing.
            if !backend.undo.is_empty() {
                backend.roll_back(&mut backend.cache())?;
            }
            backend.lease.shared().keep_namespace_trees(name, trees);
        }
        Ok(backend)
    }

    /// Who holds the store: this process, in the session of its current opening.
    pub(crate) fn identity(&self) -> &Identity {
        self.lease.identity()
    }

    /// The store's directory, as opened.
    pub(crate) fn store_path(&self) -> &Path {
        self.path()
    }

    /// See [`Lease::serve`].
    pub(crate) fn serve<S: Serving + 'static>(&self, start: impl FnOnce() -> Option<S>) {
        self.lease.serve(start)
    }
}

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
use crate::store::{scan_start, Backend};
use crate::store::{DamageSink, Entries, Entry, PutEntry, ScanVisitor, Value};
use cache::{CacheGuard, Cached, RecordCache};
use dir::{FORMAT_FILE, LOCK_FILE};
use files::{FileValue, ValueFiles, FILE_VALUE_MIN};

pub(crate) mod cache;
pub(crate) mod dir;
pub(crate) mod files;
mod stage;
pub(crate) use stage::STAGE_GONE;

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

/// An open database. Field order matters: the serving stops first, and the database closes
/// before the lock is released.
struct Shared {
    /// What serves the store to other processes, kept for its drop, which stops the
    /// serving (see [`Lease::serve`]).
    server: Mutex<Option<Box<dyn Send + Sync>>>,
    db: sled::Db,
    cache: RecordCache,
    files: ValueFiles,
    flushing: Mutex<()>,
    path: PathBuf,
    identity: Identity,
    /// The staged writes begun in this opening of the store (see [`stage`]).
    stages: stage::Stages,
    /// What the lock file says after the pid (see [`SHARING_MARK`]).
    lock_mark: &'static str,
    _lock: File,
}

struct Slot {
    shared: Arc<Shared>,
    users: usize,
}

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Slot>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Slot>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// One user's share of an open database. The last lease to go closes the database, while the
/// registry is locked, so a concurrent open of the same path waits for the close to finish.
pub(crate) struct Lease {
    shared: Option<Arc<Shared>>,
}

impl Lease {
    fn acquire(path: &Path, config: &StoreConfig) -> Result<Self> {
        fs::create_dir_all(path).map_err(|e| Error::io(path, &e))?;
        let path = path.canonicalize().map_err(|e| Error::io(path, &e))?;
        let mut registry = registry();
        if let Some(slot) = registry.get_mut(&path) {
            slot.users += 1;
            return Ok(Self {
                shared: Some(slot.shared.clone()),
            });
        }
        dir::refuse_links(&path)?;
        let (lock, clean) = take_lock(&path, config.share)?;
        // We hold the lock and nobody has the store open: whatever sled left unfinished is
        // a leftover.
        dir::remove_unfinished_snapshots(&path)?;
        let db = open_db(&path, config)?;
        stage::roll_back_leftovers(&db, &path)?;
        let files = ValueFiles::new(&path);
        if files.any() {
            files.sweep(&live_files(&db).map_err(|e| sled_error(&path, e))?)?;
        }
        let store = store_id(&db, &path)?;
        mark(&path, store)?;
        let identity = Identity {
            store,
            session: random_id(),
            clean,
        };
        let shared = Arc::new(Shared {
            #[cfg(unix)]
            server: Mutex::new(None),
            db,
            cache: RecordCache::new(config.record_cache_capacity),
            files,
            flushing: Mutex::new(()),
            path: path.clone(),
            identity,
            stages: stage::Stages::default(),
            lock_mark: if config.share { SHARING_MARK } else { "" },
            _lock: lock,
        });
        registry.insert(
            path,
            Slot {
                shared: shared.clone(),
                users: 1,
            },
        );
        Ok(Self {
            shared: Some(shared),
        })
    }

    /// Another share of the database open at `path` (canonical), if this process has it open.
    pub(crate) fn existing(path: &Path) -> Option<Self> {
        let mut registry = registry();
        let slot = registry.get_mut(path)?;
        slot.users += 1;
        Some(Self {
            shared: Some(slot.shared.clone()),
        })
    }

    /// Makes every write so far durable.
    pub(crate) fn flush(&self) -> Result<()> {
        self.shared().flush()
    }

    /// Has the store served to other processes by what `start` makes, unless something
    /// serves it already; `start` runs with the serving locked, so it runs once per opening
    /// (unless it makes nothing). What it makes is dropped as the store closes, first.
    pub(crate) fn serve<S: Send + Sync + 'static>(&self, start: impl FnOnce() -> Option<S>) {
        let mut server = self
            .shared()
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if server.is_none() {
            *server = start().map(|made| Box::new(made) as Box<dyn Send + Sync>);
        }
    }

    /// Who holds the store: this process, in this session.
    pub(crate) fn identity(&self) -> &Identity {
        &self.shared().identity
    }

    fn shared(&self) -> &Shared {
        self.shared
            .as_ref()
            .expect("a lease holds its database until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut registry = registry();
        if let Some(slot) = registry.get_mut(&shared.path) {
            slot.users -= 1;
            if slot.users == 0 {
                let slot = registry.remove(&shared.path);
                drop(slot);
                // Nothing is answered from here on (the registry no longer has the store), so
                // a flush now covers every write this session acknowledged: recorded as such,
                // the processes it served know none of them was lost.
                shared.close_cleanly();
                // The last handle goes here, with the registry locked: sled flushes and
                // unlocks.
                drop(shared);
                release_garbage();
            }
        }
    }
}

impl Shared {
    /// Flushes, and once the flush is done records this session in the lock file as one
    /// that closed cleanly (in the lock file rather than the database, so that closing
    /// writes nothing more to sled: a store closed on a full disk still opens on it).
    fn close_cleanly(&self) {
        if self.flush().is_err() {
            return;
        }
        let mut clean = self.identity.clean.clone();
        clean.push(self.identity.session);
        let _ = write_lock(&self._lock, self.lock_mark, &clean);
    }

    /// Makes every write so far durable: value files first, then sled; then removes the value
    /// files that the flush has made unreachable.
    fn flush(&self) -> Result<()> {
        // One flush at a time: a flush that finished first must not report writes durable
        // whose value files another flush is still syncing.
        let _one_at_a_time = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = self.files.before_flush()?;
        match self.db.flush() {
            Ok(_) => {
                self.files.after_flush(ticket);
                Ok(())
            }
            Err(e) => {
                self.files.put_back(ticket);
                Err(sled_error(&self.path, e))
            }
        }
    }
}

/// The value file (id and length) that record `bytes` points to, if it points to one.
fn file_of(bytes: &[u8]) -> Option<(u64, u64)> {
    match record::decode(bytes) {
        Ok(record::Record {
            body: Body::File { id, len, .. },
            ..
        }) => Some((id, len)),
        _ => None,
    }
}

/// Parts (keys, records...) as one entry of an undo tree: each as a `u32` big-endian length
/// and its bytes.
fn join_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The parts of an entry [`join_parts`] made, in groups of `N`; reading stops at the first
/// group that does not fit whole.
fn split_parts<const N: usize>(entry: &[u8]) -> Vec<[&[u8]; N]> {
    let mut rest = entry;
    let mut part = || -> Option<&[u8]> {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        let (bytes, tail) = (tail.get(..len)?, &tail[len..]);
        rest = tail;
        Some(bytes)
    };
    let mut groups = Vec::new();
    loop {
        let mut group = [&[][..]; N];
        for slot in &mut group {
            match part() {
                Some(bytes) => *slot = bytes,
                None => return groups,
            }
        }
        groups.push(group);
    }
}

/// A record an undo entry holds: an empty part stands for none (a record is never empty).
fn undo_record(part: &[u8]) -> Option<IVec> {
    (!part.is_empty()).then(|| IVec::from(part))
}

/// An undo entry: each key with the record it had (none: an empty part).
fn undo_entry(replaced: &[(&[u8], Option<IVec>)]) -> Vec<u8> {
    join_parts(
        replaced
            .iter()
            .flat_map(|(key, old)| [*key, old.as_deref().unwrap_or_default()]),
    )
}

/// The keys and records of an undo entry; reading stops at the first pair that does not fit.
fn undo_records(entry: &[u8]) -> Vec<(IVec, Option<IVec>)> {
    split_parts::<2>(entry)
        .into_iter()
        .map(|[key, old]| (IVec::from(key), undo_record(old)))
        .collect()
}

/// The value files that some record of the store points to: in a namespace's index, or in
/// its undo tree (records a large write replaced, which rolling it back puts back).
fn live_files(db: &sled::Db) -> sled::Result<std::collections::HashSet<u64>> {
    let mut live = std::collections::HashSet::new();
    for name in db.tree_names() {
        if !(name.starts_with(b"kv/") && (name.ends_with(b"/index") || name.ends_with(b"/undo"))) {
            continue;
        }
        let undo = name.ends_with(b"/undo");
        for item in db.open_tree(name)?.iter().values() {
            let item = item?;
            if undo {
                let olds = undo_records(&item).into_iter().filter_map(|(_, old)| old);
                live.extend(olds.filter_map(|old| file_of(&old).map(|(id, _)| id)));
            } else {
                live.extend(file_of(&item).map(|(id, _)| id));
            }
        }
    }
    Ok(live)
}

/// Flushes every database open in this process; used when the process exits normally.
pub fn flush_all() -> Result<()> {
    // Flushing with the registry locked keeps a database from closing half-way through.
    for slot in registry().values() {
        slot.shared.flush()?;
    }
    Ok(())
}

/// The store's id, made now if it has none (a store from a build before ids).
fn store_id(db: &sled::Db, path: &Path) -> Result<u64> {
    let found = db.get(STORE_ID_KEY).map_err(|e| sled_error(path, e))?;
    if let Some(id) = found.as_deref().and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        return Ok(u64::from_le_bytes(id));
    }
    let id = random_id();
    db.insert(STORE_ID_KEY, &id.to_le_bytes())
        .and_then(|_| db.flush())
        .map_err(|e| sled_error(path, e))?;
    Ok(id)
}

/// What a sharing holder writes after its pid in the lock file: a process that finds the lock
/// taken and no socket waits for a hand-over only when the holder shares.
pub const SHARING_MARK: &str = "shared";

/// Writes the lock file: this process's pid and `mark` on the first line, then the last
/// [`CLEAN_SESSIONS_KEPT`] sessions of `clean`, in hex.
fn write_lock(mut file: &File, mark: &str, clean: &[u64]) -> std::io::Result<()> {
    let kept = &clean[clean.len().saturating_sub(CLEAN_SESSIONS_KEPT)..];
    let sessions: Vec<String> = kept.iter().map(|id| format!("{id:016x}")).collect();
    let text = format!("{} {mark}\n{}\n", std::process::id(), sessions.join(" "));
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())
}

/// Takes the store's lock, and the sessions that the lock file records as having closed the
/// store cleanly (its second line).
fn take_lock(dir: &Path, share: bool) -> Result<(File, Vec<u64>)> {
    let path = dir.join(LOCK_FILE);
    let storage = |e: std::io::Error| Error::io(dir, &e);
    let mut file = dir::no_follow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(&path)
    .map_err(storage)?;
    let started = Instant::now();
    while let Err(e) = file.try_lock_exclusive() {
        if e.kind() != fs2::lock_contended_error().kind() {
            return Err(storage(e));
        }
        let pid = holder_pid(&mut file);
        // Held by this very process: a store it has just closed, whose lock a child process
        // being started at that moment (between its fork and its exec) still shares. It lets
        // go at once.
        if pid == Some(std::process::id()) && started.elapsed() < LINGERING_CLOSE_WAIT {
            thread::sleep(Duration::from_millis(2));
            continue;
        }
        return Err(Error::Locked {
            path: dir.to_owned(),
            pid,
            reason: None,
        });
    }
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(storage)?;
    // A lock file is a line and a few hundred bytes: more is not ours, and is not read.
    let _ = (&file).take(4096).read_to_string(&mut text);
    let mut clean: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|id| u64::from_str_radix(id, 16).ok())
        .collect();
    clean.drain(..clean.len().saturating_sub(CLEAN_SESSIONS_KEPT));
    let mark = if share { SHARING_MARK } else { "" };
    write_lock(&file, mark, &clean).map_err(storage)?;
    Ok((file, clean))
}

/// The pid in a lock file another process holds. A holder that has just taken the lock may
/// not have written its pid yet, so an empty or partial file is read again, briefly.
fn holder_pid(file: &mut File) -> Option<u32> {
    for _ in 0..50 {
        let mut text = String::new();
        // A pid is a few digits: a larger file is not one we wrote, and is not read whole.
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.take(32).read_to_string(&mut text));
        let pid = read
            .ok()
            .and_then(|_| text.split_whitespace().next()?.parse().ok());
        if pid.is_some() {
            return pid;
        }
        thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Whether the lock file of `store` says that its holder shares the store: whether an open
/// that finds no socket may wait for one (a holder starting, or handing over as it leaves).
/// `None` while the file does not name a pid yet (a holder that has just taken the lock).
pub fn holder_shares(store: &Path) -> Option<bool> {
    let text = dir::read_small(&store.join(LOCK_FILE), 32).ok()?;
    let mut words = text.split_whitespace();
    words.next()?.parse::<u32>().ok()?;
    Some(words.next() == Some(SHARING_MARK))
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

/// How long an open waits for a database this process closed to let go of its lock.
const LINGERING_CLOSE_WAIT: Duration = Duration::from_secs(5);

fn open_db(path: &Path, config: &StoreConfig) -> Result<sled::Db> {
    let sled_config = sled::Config::new()
        .path(path)
        .cache_capacity(config.cache_capacity)
        .flush_every_ms(config.flush_every_ms)
        .mode(sled::Mode::LowSpace);
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let db = loop {
        // sled 0.34 panics on some damaged files instead of returning an error.
        let opened =
            panic::catch_unwind(AssertUnwindSafe(|| sled_config.open())).map_err(|panic| {
                Error::Corrupt {
                    path: path.to_owned(),
                    detail: panic_message(panic.as_ref()),
                }
            })?;
        match opened {
            Ok(db) => break db,
            // We hold kv.lock, so sled's own lock is held by a database that closed but whose
            // last parts are still waiting to be freed: wait for them, briefly.
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && started.elapsed() < LINGERING_CLOSE_WAIT =>
            {
                release_garbage();
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(sled_error(path, e)),
        }
    };
    check_format(&db, path)?;
    Ok(db)
}

fn check_format(db: &sled::Db, path: &Path) -> Result<()> {
    let corrupt = |detail: String| Error::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let created = fs::symlink_metadata(path.join(FORMAT_FILE)).is_ok();
    match db.get(FORMAT_KEY).map_err(|e| sled_error(path, e))? {
        Some(found) if found == FORMAT_VERSION.as_bytes() => {}
        Some(found) if READABLE_FORMATS.iter().any(|f| found == f.as_bytes()) => {
            db.insert(FORMAT_KEY, FORMAT_VERSION)
                .map_err(|e| sled_error(path, e))?;
            db.flush().map_err(|e| sled_error(path, e))?;
        }
        Some(found) => {
            return Err(corrupt(format!(
                "it is in store format {:?}, and this version of kv-binding reads format {:?}",
                String::from_utf8_lossy(&found),
                FORMAT_VERSION
            )))
        }
        None if created => {
            return Err(corrupt(
                "its database files are damaged or missing (sled found no data in a store \
                 kv-binding had written)"
                    .to_owned(),
            ))
        }
        None if db.tree_names().len() > 1 || !db.is_empty() => {
            return Err(corrupt(
                "it is a sled database that kv-binding did not create".to_owned(),
            ))
        }
        None => {
            db.insert(FORMAT_KEY, FORMAT_VERSION)
                .map_err(|e| sled_error(path, e))?;
            db.flush().map_err(|e| sled_error(path, e))?;
        }
    }
    Ok(())
}

/// The format file's text for a store of id `id`.
fn marker_text(id: u64) -> String {
    let text = serde_json::json!({
        "format": FORMAT_VERSION,
        "engine": "sled 0.34",
        "id": format!("{id:016x}"),
    });
    format!("{text}\n")
}

/// Writes the format file, unless it already says what it should (the format this build
/// writes, and the store's id, which the processes the store is served to read there).
fn mark(path: &Path, id: u64) -> Result<()> {
    let marker = path.join(FORMAT_FILE);
    let text = marker_text(id);
    if dir::read_small(&marker, 4096).is_ok_and(|found| found == text) {
        return Ok(());
    }
    dir::no_follow(OpenOptions::new().write(true).create(true).truncate(true))
        .open(&marker)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| Error::io(path, &e))
}

/// The id of the store in `path` as its format file gives it, without opening the store
/// (which its holder has locked).
pub fn read_store_id(path: &Path) -> Option<u64> {
    let text = dir::read_small(&path.join(FORMAT_FILE), 4096).ok()?;
    let marker: serde_json::Value = serde_json::from_str(&text).ok()?;
    u64::from_str_radix(marker["id"].as_str()?, 16).ok()
}

fn sled_error(path: &Path, error: sled::Error) -> Error {
    match error {
        sled::Error::Corruption { .. } => Error::Corrupt {
            path: path.to_owned(),
            detail: error.to_string(),
        },
        sled::Error::Io(error) => Error::io(path, &error),
        error => Error::Storage {
            path: path.to_owned(),
            detail: error.to_string(),
        },
    }
}

/// One namespace in a sled database: an index tree and a blob tree (see [`record`]).
///
/// Every change to the index goes through the store's [`RecordCache`] with its lock held, so
/// reads can be answered from the cache.
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

    /// Namespace `name` of the database that `lease` holds open.
    pub(crate) fn with_lease(lease: Lease, name: &str, config: &StoreConfig) -> Result<Self> {
        let shared = lease.shared();
        let open_tree = |kind: &str| {
            shared
                .db
                .open_tree(format!("kv/{name}/{kind}"))
                .map_err(|e| sled_error(&shared.path, e))
        };
        let index = open_tree("index")?;
        let number = shared.cache.namespace(name, index.is_empty());
        let undo = open_tree("undo")?;
        let backend = Self {
            index,
            blobs: open_tree("blobs")?,
            undo,
            number,
            file_value_min: config.file_value_min,
            lease,
        };
        // A large write that a crash cut short is undone, so that it is all or nothing.
        if !backend.undo.is_empty() {
            backend.roll_back(&mut backend.cache())?;
        }
        Ok(backend)
    }

    /// Writes `chunks` of (key, record), each at most [`WRITE_BATCH`] long, a chunk at a
    /// time, so that sled's garbage from one batch is let go before the next. Atomic all the
    /// same: before each batch, what it replaces is noted in the undo tree; a failure puts
    /// that back (then `undone` runs: the new records are no one's), as does the next open
    /// after a crash, and success forgets it. No key may come in two chunks.
    fn put_chunked(
        &self,
        cache: &mut CacheGuard<'_>,
        chunks: impl Iterator<Item = Result<Vec<(IVec, IVec)>>>,
        undone: impl FnOnce(),
    ) -> Result<()> {
        // What an earlier write could not undo is undone first: its entries would be
        // overwritten by this one's, which are numbered from 0.
        if !self.undo.is_empty() {
            self.roll_back(cache)?;
        }
        for (number, chunk) in (0u64..).zip(chunks) {
            // What the batch replaces is noted before the batch is written: sled recovers a
            // prefix of its writes, so no crash can leave a change without its undo.
            let applied = chunk.and_then(|chunk| {
                let written = self.note_replaced(cache, number, &chunk).and_then(|()| {
                    let mut batch = sled::Batch::default();
                    for (key, record) in &chunk {
                        batch.insert(key, record);
                    }
                    self.index.apply_batch(batch).map_err(|e| self.error(e))
                });
                for (key, _) in &chunk {
                    cache.forget(self.number, key);
                }
                written
            });
            release_garbage();
            if let Err(error) = applied {
                // If undoing failed, the next open finishes it.
                if self.roll_back(cache).is_ok() {
                    undone();
                }
                return Err(error);
            }
        }
        // Done: what it replaced is forgotten first, then freed (the records that point to
        // a blob or a file: the others hold nothing to free).
        let mut replaced = Vec::new();
        for entry in self.undo.iter().values() {
            let entry = entry.map_err(|e| self.error(e))?;
            let olds = undo_records(&entry).into_iter().filter_map(|(_, old)| old);
            replaced.extend(olds.filter(|old| record::is_stored_apart(old)));
        }
        self.undo.clear().map_err(|e| self.error(e))?;
        replaced
            .into_iter()
            .try_for_each(|old| self.release_blob(Some(old)))
    }

    /// Notes in the undo tree, as entry `number`, the records that `chunk` replaces (see
    /// [`undo_entry`]).
    fn note_replaced(
        &self,
        cache: &mut CacheGuard<'_>,
        number: u64,
        chunk: &[(IVec, IVec)],
    ) -> Result<()> {
        let mut replaced = Vec::with_capacity(chunk.len());
        for (key, _) in chunk {
            replaced.push((&key[..], self.record_locked(cache, key)?));
        }
        self.undo
            .insert(number.to_be_bytes(), undo_entry(&replaced))
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// Puts back every record the undo tree holds (removing the keys that were absent) and
    /// empties it; the blobs and files of the records taken out go.
    fn roll_back(&self, cache: &mut CacheGuard<'_>) -> Result<()> {
        let mut undone = Vec::new();
        for entry in self.undo.iter().values() {
            let entry = entry.map_err(|e| self.error(e))?;
            for (key, old) in undo_records(&entry) {
                let current = match &old {
                    Some(old) => self.index.insert(&key, old.clone()),
                    None => self.index.remove(&key),
                }
                .map_err(|e| self.error(e))?;
                cache.forget(self.number, &key);
                if let Some(current) = current.filter(|current| Some(current) != old.as_ref()) {
                    undone.push(current);
                }
            }
        }
        self.undo.clear().map_err(|e| self.error(e))?;
        self.discard(undone.iter());
        Ok(())
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
    pub(crate) fn serve<S: Send + Sync + 'static>(&self, start: impl FnOnce() -> Option<S>) {
        self.lease.serve(start)
    }

    fn cache(&self) -> CacheGuard<'_> {
        self.lease.shared().cache.lock()
    }

    /// The index record of `key`, from the cache when it knows, else from sled.
    fn record(&self, key: &[u8]) -> Result<Option<IVec>> {
        self.record_locked(&mut self.cache(), key)
    }

    /// [`Self::record`], for a caller that holds the cache lock.
    fn record_locked(&self, cache: &mut CacheGuard<'_>, key: &[u8]) -> Result<Option<IVec>> {
        match cache.get(self.number, key) {
            Cached::Record(record) => Ok(Some(record)),
            Cached::Absent => Ok(None),
            Cached::Unknown => {
                // Read with the cache locked, so that no write can slip in between the read
                // and the fill.
                let record = self.index.get(key).map_err(|e| self.error(e))?;
                if let Some(record) = &record {
                    // A copy: the cache must not keep alive whatever buffer sled read it from.
                    cache.set(self.number, key, Some(&IVec::from(&**record)));
                }
                Ok(record)
            }
        }
    }

    /// Writes `record` (or, with `None`, removes the key) in the index and the cache at once;
    /// returns the record it replaced.
    fn set_record(
        &self,
        cache: &mut CacheGuard<'_>,
        key: &[u8],
        record: Option<IVec>,
    ) -> Result<Option<IVec>> {
        let written = match &record {
            Some(record) => self.index.insert(key, record.clone()),
            None => self.index.remove(key),
        };
        match written {
            Ok(old) => {
                cache.set(self.number, key, record.as_ref());
                Ok(old)
            }
            Err(e) => {
                cache.forget(self.number, key);
                Err(self.error(e))
            }
        }
    }

    /// Writes `value`'s blob, if it needs one, and returns the index record for it.
    fn store_value(
        &self,
        value: &[u8],
        expiration: Option<i64>,
        metadata: Option<&str>,
    ) -> Result<IVec> {
        // The blob is written before the record that points to it; sled recovers a prefix of
        // its writes, so after a crash no record points to a missing blob.
        let blob = if value.len() > INLINE_VALUE_MAX {
            let shared = self.lease.shared();
            let id = shared.db.generate_id().map_err(|e| self.error(e))?;
            let place = if value.len() > self.file_value_min {
                Place::File {
                    crc32: shared.files.write(id, value)?,
                }
            } else {
                self.blobs
                    .insert(id.to_be_bytes(), value)
                    .map_err(|e| self.error(e))?;
                Place::Blob
            };
            Some(BlobRef {
                id,
                len: value.len() as u64,
                place,
            })
        } else {
            None
        };
        Ok(IVec::from(record::encode(
            expiration, metadata, value, blob,
        )))
    }

    fn path(&self) -> &Path {
        &self.lease.shared().path
    }

    fn error(&self, error: sled::Error) -> Error {
        sled_error(self.path(), error)
    }

    fn damaged(&self, key: &[u8], what: &str) -> Error {
        Error::Corrupt {
            path: self.path().to_owned(),
            detail: format!(
                "the entry for key {:?} {what}",
                String::from_utf8_lossy(key)
            ),
        }
    }

    /// The entry that record `bytes` of `key` describes, with its value read from the blob
    /// tree when it lives there. `None` when a concurrent put or delete replaced the record and
    /// freed its blob after `bytes` were read: the caller reads the record again.
    fn load(&self, key: &[u8], bytes: IVec, max_len: u64) -> Result<Option<Entry>> {
        let record = record::decode(&bytes)
            .map_err(|e| self.damaged(key, &format!("is damaged ({})", e.0)))?;
        let value = match &record.body {
            _ if record.value_len() > max_len => Value::Deferred {
                len: record.value_len(),
            },
            Body::Inline(range) => Value::Loaded(bytes.subslice(range.start, range.len())),
            Body::Blob { id, .. } => {
                let found = self.blobs.get(id.to_be_bytes());
                match found.map_err(|e| self.error(e))? {
                    Some(value) => Value::Loaded(value),
                    None => return self.vanished(key, &bytes),
                }
            }
            Body::File { id, len, crc32 } => {
                match self.lease.shared().files.read(*id, *len, *crc32)? {
                    FileValue::Found(value) => Value::Owned(value),
                    FileValue::Missing => return self.vanished(key, &bytes),
                    FileValue::Damaged => {
                        return Err(self.damaged(
                            key,
                            "has a value file whose bytes do not match its checksum",
                        ))
                    }
                }
            }
        };
        let metadata = record
            .metadata
            .map(|range| bytes.subslice(range.start, range.len()));
        Ok(Some(Entry {
            expiration: record.expiration,
            metadata,
            value,
        }))
    }

    /// What to do when the value record `bytes` of `key` points to is not there: if the
    /// record is unchanged, the value is really gone; otherwise a concurrent write freed it,
    /// and `None` has the caller read the record again. (Asking the cache, not sled: a cache
    /// that disagreed with sled would otherwise loop.)
    fn vanished(&self, key: &[u8], bytes: &IVec) -> Result<Option<Entry>> {
        if self.record(key)?.as_ref() == Some(bytes) {
            return Err(self.damaged(
                key,
                "points to a value that is missing or not of its recorded length",
            ));
        }
        Ok(None)
    }

    /// Removes the blobs and value files of records that were never written to the index: no
    /// reader can have seen them, so they go at once. Failures are left to the sweep at the
    /// next open (files) or are harmless (a blob no record names is never read).
    fn discard<'a>(&self, records: impl IntoIterator<Item = &'a IVec>) {
        for record in records {
            match record::decode(record).map(|r| r.body) {
                Ok(Body::Blob { id, .. }) => {
                    let _ = self.blobs.remove(id.to_be_bytes());
                }
                Ok(Body::File { id, .. }) => self.lease.shared().files.discard(id),
                _ => {}
            }
        }
    }

    /// Frees the blob or value file a replaced or deleted record pointed to, if any. A value
    /// file goes once a flush has made the change durable (see [`ValueFiles`]); when many
    /// bytes are waiting for that, this flushes.
    fn release_blob(&self, old: Option<IVec>) -> Result<()> {
        match old.as_deref().map(record::decode) {
            Some(Ok(record::Record {
                body: Body::Blob { id, .. },
                ..
            })) => {
                self.blobs
                    .remove(id.to_be_bytes())
                    .map_err(|e| self.error(e))?;
            }
            Some(Ok(record::Record {
                body: Body::File { id, len, .. },
                ..
            })) => {
                let shared = self.lease.shared();
                if shared.files.doom(id, len) {
                    shared.flush()?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8], max_len: u64) -> Result<Option<Entry>> {
        loop {
            let Some(bytes) = self.record(key)? else {
                return Ok(None);
            };
            if let Some(entry) = self.load(key, bytes, max_len)? {
                return Ok(Some(entry));
            }
        }
    }

    fn put(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Option<i64>,
        metadata: Option<&str>,
    ) -> Result<()> {
        let record = self.store_value(value, expiration, metadata)?;
        // What went into a blob or a file for a record that then fails to go in (a full disk)
        // is removed at once.
        let outside = (value.len() > INLINE_VALUE_MAX).then(|| record.clone());
        match self.set_record(&mut self.cache(), key, Some(record)) {
            Ok(old) => self.release_blob(old),
            Err(error) => {
                self.discard(&outside);
                Err(error)
            }
        }
    }

    fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        // One entry is a single insert, not a batch, whose global write lock many threads
        // writing at once must not all wait for.
        if let [one] = entries {
            return self.put(one.key, one.value, one.expiration, one.metadata);
        }
        // A key given twice gets its last entry; the others are never written.
        let last: std::collections::HashMap<&[u8], usize> = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| (entry.key, index))
            .collect();
        let mut records = Vec::with_capacity(last.len());
        for (index, entry) in entries.iter().enumerate() {
            if last[entry.key] != index {
                continue;
            }
            match self.store_value(entry.value, entry.expiration, entry.metadata) {
                Ok(record) => records.push((entry.key, record)),
                Err(error) => {
                    self.discard(records.iter().map(|(_, record)| record));
                    return Err(error);
                }
            }
        }
        let mut cache = self.cache();
        if records.len() > WRITE_BATCH {
            let chunks = records.chunks(WRITE_BATCH).map(|chunk| {
                Ok(chunk
                    .iter()
                    .map(|(key, record)| (IVec::from(*key), record.clone()))
                    .collect())
            });
            let undone = || self.discard(records.iter().map(|(_, record)| record));
            return self.put_chunked(&mut cache, chunks, undone);
        }
        let mut batch = sled::Batch::default();
        for (key, record) in &records {
            batch.insert(*key, record.clone());
        }
        let replaced: Result<Vec<_>> = records
            .iter()
            .map(|(key, _)| self.record_locked(&mut cache, key))
            .collect();
        let written = replaced.and_then(|replaced| {
            self.index
                .apply_batch(batch)
                .map(|()| replaced)
                .map_err(|e| self.error(e))
        });
        match written {
            Ok(replaced) => {
                for (key, record) in &records {
                    cache.set(self.number, key, Some(record));
                }
                drop(cache);
                replaced
                    .into_iter()
                    .try_for_each(|old| self.release_blob(old))
            }
            Err(error) => {
                for (key, _) in &records {
                    cache.forget(self.number, key);
                }
                drop(cache);
                self.discard(records.iter().map(|(_, record)| record));
                Err(error)
            }
        }
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        let old = self.set_record(&mut self.cache(), key, None)?;
        self.release_blob(old)
    }

    fn delete_expired(&self, key: &[u8], now_ms: i64) -> Result<()> {
        let mut cache = self.cache();
        let Some(bytes) = self.record_locked(&mut cache, key)? else {
            return Ok(());
        };
        if record::decode(&bytes).is_ok_and(|r| is_expired(r.expiration, now_ms)) {
            // Every index write holds the cache lock, so the record cannot change meanwhile.
            self.set_record(&mut cache, key, None)?;
            drop(cache);
            self.release_blob(Some(bytes))?;
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8], after: Option<&[u8]>, visit: &mut ScanVisitor<'_>) -> Result<()> {
        let mut visit_record = |key: &[u8], bytes: &IVec| {
            let record = record::decode(bytes)
                .map_err(|e| self.damaged(key, &format!("is damaged ({})", e.0)))?;
            let metadata = record
                .metadata
                .map(|range| bytes.subslice(range.start, range.len()));
            Ok(visit(key, record.expiration, metadata.as_ref()))
        };
        if let Some(scanned) = self
            .cache()
            .scan(self.number, prefix, after, &mut visit_record)
        {
            return scanned;
        }
        let range = self
            .index
            .range::<&[u8], _>((scan_start(prefix, after), std::ops::Bound::Unbounded));
        for item in range {
            let (key, bytes) = item.map_err(|e| self.error(e))?;
            if !key.starts_with(prefix) || !visit_record(&key, &bytes)? {
                break;
            }
        }
        Ok(())
    }

    fn entries(&self, skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(IVec, Entry)>> {
        self.entries_after(None, skip, |_| false)
            .map(|(entries, _)| entries)
    }

    fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        let mut cache = self.cache();
        let mut files = Vec::new();
        for item in self.index.iter().values() {
            files.extend(file_of(&item.map_err(|e| self.error(e))?));
        }
        let cleared = self.index.clear();
        // Whatever happened, the cache no longer knows this namespace.
        cache.clear(self.number, cleared.is_ok());
        cleared.map_err(|e| self.error(e))?;
        for (id, len) in files {
            self.lease.shared().files.doom(id, len);
        }
        self.blobs.clear().map_err(|e| self.error(e))?;
        for (key, entry) in entries {
            let Some(value) = entry.value.bytes() else {
                return Err(Error::Internal("replace_all needs loaded values".into()));
            };
            let metadata = entry.metadata.as_deref().map(std::str::from_utf8);
            let metadata = metadata
                .transpose()
                .map_err(|_| Error::Internal("metadata in a snapshot is not UTF-8".into()))?;
            let record = self.store_value(value, entry.expiration, metadata)?;
            self.set_record(&mut cache, key, Some(record))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.lease.shared().flush()
    }

    fn stage_begin(&self) -> Result<Option<u64>> {
        self.begin_stage().map(Some)
    }

    fn stage_put(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        self.put_staged(stage, entries)
    }

    fn stage_commit(&self, stage: u64) -> Result<()> {
        self.commit_stage(stage)
    }

    fn stage_drop(&self, stage: u64) -> Result<()> {
        self.drop_stage(stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undo_entry_reads_back_as_written_and_a_cut_one_as_far_as_it_goes() {
        let old = IVec::from(&b"record"[..]);
        let replaced: Vec<(&[u8], Option<IVec>)> = vec![
            (b"absent", None),
            (b"present", Some(old.clone())),
            (b"", None),
        ];
        let entry = undo_entry(&replaced);
        let read = undo_records(&entry);
        assert_eq!(
            read,
            vec![
                (IVec::from(&b"absent"[..]), None),
                (IVec::from(&b"present"[..]), Some(old)),
                (IVec::from(&b""[..]), None),
            ]
        );
        // Cut inside the second record: the first pair only.
        assert_eq!(undo_records(&entry[..20]).len(), 1);
        assert!(undo_records(&[0, 0, 0]).is_empty());
    }
}

//! Large values, one file each, beside a store's sled database.
//!
//! sled writes any log message over a quarter of a segment (128 KiB) to a file of its own,
//! and writes it again every time it rewrites the tree node holding it, which happens every
//! ten changes to the node and can carry up to sixteen large values at once: one 25 MiB put
//! measured up to 320 ms. Values above [`FILE_VALUE_MIN`] are therefore kept here, in
//! `values/<id>`, written once.
//!
//! Crash safety rests on order:
//!
//! - a file is written before the record that points to it, so no record ever points to a
//!   file that was not written (after a kill, the OS still has what was written);
//! - a flush syncs every file written since the last one before it flushes sled, so a record
//!   made durable by a flush never points to a file that is not;
//! - a file whose record was replaced or deleted is only *doomed*, and removed after a later
//!   flush has made that change durable: until then, a crash could bring the old record back;
//! - files that no record points to (a crash between writing a file and its record, or
//!   between a flush and the removal of what it freed) are swept when the store opens.
//!
//! A file holds the value's bytes and nothing else; the record that points to it holds its
//! length and CRC-32, and a read checks both as it goes.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::dir::{self, VALUES_DIR};
use crate::store::limits::MAX_VALUE_SIZE;
use crate::store::{Error, Result};

/// Values longer than this live in value files; shorter ones in sled.
pub const FILE_VALUE_MIN: usize = 128 * 1024;

/// Files are written and read, and their checksums computed, this many bytes at a time: a
/// chunk just read is checksummed while it is still in the cache.
const CHUNK: usize = 1024 * 1024;

/// What reading a value file found.
#[derive(Debug, PartialEq, Eq)]
pub enum FileValue {
    /// The value, with the length and checksum its record gives.
    Found(Vec<u8>),
    /// No such file, or one of another length: a concurrent write may have freed it.
    Missing,
    /// The file's bytes do not match the checksum its record gives.
    Damaged,
}

/// Doomed files are removed by a flush of the writer's own once they hold this many bytes,
/// even when nobody calls `flush()`.
const DOOMED_BYTES_LIMIT: u64 = 256 * 1024 * 1024;

pub struct ValueFiles {
    dir: PathBuf,
    state: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    /// Written since the last flush started.
    unsynced: Vec<u64>,
    /// Freed by a record change, with their lengths; removable after a flush that starts later.
    doomed: Vec<(u64, u64)>,
    doomed_bytes: u64,
}

/// What a flush must do around sled's: take it before, finish it after.
pub struct FlushTicket {
    doomed: Vec<(u64, u64)>,
}

impl ValueFiles {
    pub fn new(store: &Path) -> Self {
        Self {
            dir: store.join(VALUES_DIR),
            state: Mutex::default(),
        }
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(file_name(id))
    }

    fn storage(&self, error: std::io::Error) -> Error {
        Error::io(&self.dir, &error)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Every update is one push or one take, so a poisoned lock still holds whole lists.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes value file `id` and returns its bytes' CRC-32. Ids come from sled's
    /// `generate_id`, so they never repeat.
    pub fn write(&self, id: u64, value: &[u8]) -> Result<u32> {
        let open =
            || dir::no_follow(OpenOptions::new().write(true).create_new(true)).open(self.path(id));
        let mut file = match open() {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir).map_err(|e| self.storage(e))?;
                open()
            }
            opened => opened,
        }
        .map_err(|e| self.storage(e))?;
        match write_checksummed(&mut file, value) {
            Ok(crc32) => {
                self.pending().unsynced.push(id);
                Ok(crc32)
            }
            Err(e) => {
                // A part of a value is of no use to anyone, and on a full disk it keeps the disk
                // full: it goes at once.
                drop(file);
                let _ = fs::remove_file(self.path(id));
                Err(self.storage(e))
            }
        }
    }

    /// Reads value file `id`, which holds `len` bytes with CRC-32 `crc32` (unchecked when
    /// `None`, as in a format 2 record), checking the bytes as they are read.
    pub fn read(&self, id: u64, len: u64, crc32: Option<u32>) -> Result<FileValue> {
        let mut file = match dir::no_follow(OpenOptions::new().read(true)).open(self.path(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(FileValue::Missing),
            Err(e) => return Err(self.storage(e)),
        };
        // Its length first, so that a damaged record cannot make us allocate what it claims.
        let on_disk = file.metadata().map_err(|e| self.storage(e))?.len();
        if on_disk != len {
            return Ok(FileValue::Missing);
        }
        if len > MAX_VALUE_SIZE as u64 {
            return Ok(FileValue::Damaged);
        }
        match read_checksummed(&mut file, len as usize) {
            Ok((_, found)) if crc32.is_some_and(|want| want != found) => Ok(FileValue::Damaged),
            Ok((value, _)) => Ok(FileValue::Found(value)),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(FileValue::Missing),
            Err(e) => Err(self.storage(e)),
        }
    }

    /// Removes value file `id` at once: for a file that no record ever pointed to. (A flush
    /// that meets it gone has nothing to sync.)
    pub fn discard(&self, id: u64) {
        let _ = fs::remove_file(self.path(id));
    }

    /// Marks file `id` (of `len` bytes) as freed by a record change. Returns whether enough
    /// bytes are waiting that the caller should flush to remove them.
    pub fn doom(&self, id: u64, len: u64) -> bool {
        let mut pending = self.pending();
        pending.doomed.push((id, len));
        pending.doomed_bytes += len;
        pending.doomed_bytes >= DOOMED_BYTES_LIMIT
    }

    /// Starts a flush: syncs every file written so far, and takes the doomed files that the
    /// coming sled flush will make removable.
    pub fn before_flush(&self) -> Result<FlushTicket> {
        let (unsynced, doomed) = {
            let mut pending = self.pending();
            pending.doomed_bytes = 0;
            (
                std::mem::take(&mut pending.unsynced),
                std::mem::take(&mut pending.doomed),
            )
        };
        let synced = unsynced
            .iter()
            // Opened for writing: Windows syncs only files it may write to.
            .try_for_each(|id| {
                match dir::no_follow(OpenOptions::new().write(true)).open(self.path(*id)) {
                    Ok(file) => file.sync_all(),
                    // Doomed and removed by an earlier flush: nothing left to make durable.
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(e),
                }
            });
        let synced = synced.and_then(|()| {
            if unsynced.is_empty() {
                Ok(())
            } else {
                sync_dir(&self.dir)
            }
        });
        if let Err(e) = synced {
            // Nothing is lost: the next flush syncs these and removes those.
            let mut pending = self.pending();
            pending.unsynced.extend(unsynced);
            drop(pending);
            self.put_back(FlushTicket { doomed });
            return Err(self.storage(e));
        }
        Ok(FlushTicket { doomed })
    }

    /// Finishes a flush that succeeded: removes the files its ticket freed. A file that cannot
    /// be removed now (on Windows, one that a reader still has open) waits for the next flush;
    /// the flush itself has succeeded.
    pub fn after_flush(&self, ticket: FlushTicket) {
        let mut kept = Vec::new();
        for (id, len) in ticket.doomed {
            match fs::remove_file(self.path(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => kept.push((id, len)),
            }
        }
        if !kept.is_empty() {
            self.put_back(FlushTicket { doomed: kept });
        }
    }

    /// Puts back the doomed files of a flush that failed (or could not remove them), for the
    /// next one.
    pub fn put_back(&self, ticket: FlushTicket) {
        let mut pending = self.pending();
        pending.doomed_bytes += ticket.doomed.iter().map(|(_, len)| len).sum::<u64>();
        pending.doomed.extend(ticket.doomed);
    }

    /// Removes every value file whose id is not in `live`: regular files named as this module
    /// names them, nothing else. Only for a store that no one is using yet.
    pub fn sweep(&self, live: &HashSet<u64>) -> Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.storage(e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.storage(e))?;
            let regular = entry.file_type().is_ok_and(|kind| kind.is_file());
            let id = entry.file_name().to_str().and_then(id_of);
            // Anything else is not ours to remove.
            if regular && id.is_some_and(|id| !live.contains(&id)) {
                fs::remove_file(entry.path()).map_err(|e| self.storage(e))?;
            }
        }
        Ok(())
    }

    /// Whether the store has a value directory with anything in it.
    pub fn any(&self) -> bool {
        fs::read_dir(&self.dir).is_ok_and(|mut entries| entries.next().is_some())
    }
}

/// Values at least this long are checksummed on a thread of their own while the file is
/// written, so that the checksum (about 3 ms for 25 MiB) overlaps the write instead of adding
/// to it; for shorter ones a thread would cost more than it saves.
const PARALLEL_CHECKSUM_MIN: usize = 4 * 1024 * 1024;

/// Writes `value` to `file`, returning its CRC-32.
fn write_checksummed(file: &mut File, value: &[u8]) -> std::io::Result<u32> {
    let write = |file: &mut File| value.chunks(CHUNK).try_for_each(|c| file.write_all(c));
    if value.len() >= PARALLEL_CHECKSUM_MIN {
        let written = std::thread::scope(|scope| {
            let hasher = std::thread::Builder::new().spawn_scoped(scope, || crc32fast::hash(value));
            // Without a thread (the system may refuse one), the checksum is computed after.
            hasher
                .ok()
                .map(|hasher| write(file).map(|()| joined(hasher)))
        });
        if let Some(written) = written {
            return written;
        }
    }
    write(file)?;
    Ok(crc32fast::hash(value))
}

/// Reads the `len` bytes of `file`, checksumming each chunk as soon as it has been read, while
/// it is still in the cache: returns the bytes and their CRC-32. (The buffer is filled by
/// `read_to_end`, which needs no zeroing first, as `fs::read` does.)
fn read_checksummed(file: &mut File, len: usize) -> std::io::Result<(Vec<u8>, u32)> {
    let mut value = Vec::with_capacity(len);
    let mut crc = crc32fast::Hasher::new();
    while value.len() < len {
        let start = value.len();
        let want = CHUNK.min(len - start);
        file.take(want as u64).read_to_end(&mut value)?;
        if value.len() - start < want {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        crc.update(&value[start..]);
    }
    Ok((value, crc.finalize()))
}

/// What a checksum thread computed; a panic there goes on in the caller, where the binding
/// turns it into an error.
fn joined(hasher: std::thread::ScopedJoinHandle<'_, u32>) -> u32 {
    hasher
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// The name of value file `id`: 16 lowercase hex digits.
fn file_name(id: u64) -> String {
    format!("{id:016x}")
}

/// The id of the value file called `name`, if `name` is one [`file_name`] gives.
fn id_of(name: &str) -> Option<u64> {
    let id = u64::from_str_radix(name, 16).ok()?;
    (name == file_name(id)).then_some(id)
}

/// Makes the directory's entries (new and removed files) durable, where the OS allows it.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

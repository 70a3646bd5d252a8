//! The store directory, treated as untrusted input.
//!
//! Stores get committed to repositories and copied between machines, so a store directory may
//! hold anything: a symbolic link where a file should be, files nobody here wrote, what a
//! write that failed left behind. So:
//!
//! - no symbolic link is followed: a store with a link among the entries it uses is refused
//!   with an error naming the entry, and the files kv-binding opens itself are opened without
//!   following links where the platform allows it;
//! - only files whose names the store itself generates are ever removed;
//! - namespace names and keys are names inside the database, never paths.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

use crate::store::{Error, Result};

/// Holds the owner's pid; locked while a process has the store open.
pub const LOCK_FILE: &str = "kv.lock";
/// Written beside sled's files once a store exists. sled drops segments that fail their
/// checksum as torn writes, so without it a damaged store would reopen as an empty one.
pub const FORMAT_FILE: &str = "kv-format.json";
/// Holds the value files (see [`super::files`]).
pub const VALUES_DIR: &str = "values";
/// The socket on which the process holding the store serves it (see `backends::shared`).
pub const SOCKET_FILE: &str = "kv.sock";

/// The entries of a store directory that kv-binding or sled open: our own files (the socket
/// included), and sled's configuration, log, blob directory and snapshots.
fn is_used(name: &str) -> bool {
    matches!(
        name,
        LOCK_FILE | FORMAT_FILE | VALUES_DIR | SOCKET_FILE | "conf" | "db" | "blobs"
    ) || name.starts_with("snap.")
}

/// Refuses a store in which an entry that kv-binding or sled would open is a symbolic link,
/// at the top or inside the value and blob directories. Entries the store never uses are
/// left alone, so a store may sit in a directory that holds other things.
pub fn refuse_links(store: &Path) -> Result<()> {
    let mut dirs = vec![store.to_owned()];
    while let Some(dir) = dirs.pop() {
        let top = dir == store;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => return Err(Error::io(store, &e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(store, &e))?;
            let name = entry.file_name();
            if top && !name.to_str().is_some_and(is_used) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io(store, &e))?;
            if kind.is_symlink() {
                return Err(Error::Storage {
                    path: store.to_owned(),
                    detail: format!(
                        "{:?} is a symbolic link, and kv-binding follows no link inside a store, \
                         so that nothing outside it is ever read, written or deleted. Replace \
                         the link with what it points to",
                        entry.path()
                    ),
                });
            }
            if top && kind.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Whether `name` is one that sled gives a snapshot while writing it: `snap.`, 16 hex digits,
/// `.generating`.
fn is_snapshot_in_progress(name: &str) -> bool {
    name.strip_prefix("snap.")
        .and_then(|rest| rest.strip_suffix(".generating"))
        .is_some_and(|lsn| lsn.len() == 16 && lsn.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the snapshots sled left half-written. sled writes a snapshot as
/// `snap.<lsn>.generating` and renames it once whole, but when writing fails part-way (a full
/// disk, an I/O error, a crash) it leaves the file, and at the next open reads it back as the
/// newest snapshot: the store then fails to open as damaged although every write is in its
/// log. Without the file, sled starts from the snapshot before and replays the log.
///
/// Only for a store whose lock this process holds and has not opened: then nothing is
/// writing a snapshot, and any such file is a leftover.
pub fn remove_unfinished_snapshots(store: &Path) -> Result<()> {
    let entries = fs::read_dir(store).map_err(|e| Error::io(store, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(store, &e))?;
        let regular = entry.file_type().is_ok_and(|kind| kind.is_file());
        if regular
            && entry
                .file_name()
                .to_str()
                .is_some_and(is_snapshot_in_progress)
        {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(Error::io(store, &e)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// `options`, set not to follow a symbolic link in the last part of the path where the
/// platform allows it (a link elsewhere in a store is refused when it opens), and not to wait
/// in `open` for a FIFO put where a file should be (it then reads as empty; on a regular
/// file the flag changes nothing).
pub fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options
}

/// The text of a small file of the store (at most `max` bytes of it), not following a link.
pub fn read_small(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    no_follow(OpenOptions::new().read(true))
        .open(path)?
        .take(max)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sleds_own_unfinished_snapshot_names_are_leftovers() {
        assert!(is_snapshot_in_progress("snap.00000000001FFE5A.generating"));
        for name in [
            "snap.00000000001FFE5A",
            "snap.1FFE5A.generating",
            "snap.00000000001FFE5Z.generating",
            "snap.00000000001FFE5A.generating.bak",
            "xsnap.00000000001FFE5A.generating",
        ] {
            assert!(!is_snapshot_in_progress(name), "{name}");
        }
    }
}

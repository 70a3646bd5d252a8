//! Reads the KV state that `wrangler dev` and Miniflare 3/4 keep, without running them.
//!
//! A namespace's keys, expirations and metadata are rows of `_mf_entries` in a SQLite
//! database of the `miniflare-KVNamespaceObject` Durable Object, partly in its write-ahead
//! log; its values are files under `<namespace id>/blobs/`. The database and its log are
//! copied into a private directory and opened there, where SQLite replays the log: nothing
//! in the source state is written, and a database another process keeps open is read as its
//! last commit left it.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::backends::sled::dir::no_follow;

/// One row of `_mf_entries`: the key, the name of the file holding its value, when it
/// expires (milliseconds since the epoch) and its metadata (JSON text).
#[derive(Debug, PartialEq, Eq)]
pub struct StateEntry {
    pub key: String,
    pub blob: String,
    pub expiration_ms: Option<i64>,
    pub metadata: Option<String>,
}

/// Every row of the KV database at `db`, in key order. The error is one line that names the
/// file.
pub fn read_entries(db: &Path) -> Result<Vec<StateEntry>, String> {
    let fail = |why: String| format!("{} cannot be read: {why}", db.display());
    let scratch =
        Scratch::new().map_err(|e| fail(format!("no private copy could be made ({e})")))?;
    let copy = scratch.0.join("db.sqlite");
    copy_regular(db, &copy).map_err(&fail)?;
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if fs::symlink_metadata(&wal).is_ok() {
        copy_regular(&wal, &scratch.0.join("db.sqlite-wal")).map_err(&fail)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(&copy, flags).map_err(|e| fail(e.to_string()))?;
    guard(&connection).map_err(|e| fail(e.to_string()))?;
    // A view or anything but a table of that name could compute its rows without end.
    let kind = connection.query_row(
        "SELECT type FROM sqlite_master WHERE name = '_mf_entries'",
        [],
        |row| row.get::<_, String>(0),
    );
    let kind = match kind {
        Ok(kind) => Some(kind),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => return Err(fail(e.to_string())),
    };
    if kind.as_deref() != Some("table") {
        return Err(fail(UNKNOWN_FORMAT.into()));
    }
    let unknown = |e: rusqlite::Error| {
        let text = e.to_string();
        if text.contains("no such table") || text.contains("no such column") {
            fail(UNKNOWN_FORMAT.into())
        } else {
            fail(text)
        }
    };
    let mut query = connection
        .prepare("SELECT key, blob_id, expiration, metadata FROM _mf_entries ORDER BY key")
        .map_err(unknown)?;
    let rows = query
        .query_map([], |row| {
            Ok(StateEntry {
                key: row.get(0)?,
                blob: row.get(1)?,
                expiration_ms: row.get(2)?,
                metadata: row.get(3)?,
            })
        })
        .map_err(unknown)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(unknown)
}

/// What a database that is not Miniflare's KV database is told apart by.
const UNKNOWN_FORMAT: &str = "it is not a KV database of a Miniflare this version knows (no \
                              _mf_entries table of key, blob_id, expiration and metadata)";

/// The longest text a row of the state may hold: a key is at most 512 bytes, metadata at most
/// 1024, a blob id a few dozen.
const ROW_TEXT_MAX: i32 = 64 * 1024;

/// How long reading one database may take before it is given up.
const READ_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Bounds what a database given to read can make SQLite do: no text or blob longer than
/// [`ROW_TEXT_MAX`], no function the schema names that is not innocuous, and no statement
/// running past [`READ_TIME_MAX`].
fn guard(connection: &Connection) -> rusqlite::Result<()> {
    use rusqlite::limits::Limit;
    connection.set_limit(Limit::SQLITE_LIMIT_LENGTH, ROW_TEXT_MAX)?;
    connection.pragma_update(None, "trusted_schema", false)?;
    let started = std::time::Instant::now();
    connection.progress_handler(10_000, Some(move || started.elapsed() > READ_TIME_MAX));
    Ok(())
}

/// Copies the regular file at `from` to `to`, refusing a symbolic link or anything that is
/// not a regular file.
fn copy_regular(from: &Path, to: &Path) -> Result<(), String> {
    let mut source = open_regular(from, u64::MAX)?;
    let mut target = File::create(to).map_err(|e| e.to_string())?;
    std::io::copy(&mut source, &mut target)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Opens `path` for reading if it is a regular file of at most `max` bytes, without following
/// a symbolic link (the last component; a state directory is walked from its root).
pub fn open_regular(path: &Path, max: u64) -> Result<File, String> {
    let file = no_follow(OpenOptions::new().read(true))
        .open(path)
        .map_err(|e| {
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                format!(
                    "{} is a symbolic link, which is not followed",
                    path.display()
                )
            } else {
                format!("{}: {e}", path.display())
            }
        })?;
    let metadata = file.metadata().map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if metadata.len() > max {
        return Err(format!(
            "{} holds {} bytes, more than {max}",
            path.display(),
            metadata.len()
        ));
    }
    Ok(file)
}

/// The bytes of the regular file at `path`, if it holds at most `max`.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let file = open_regular(path, max)?;
    let mut bytes = Vec::new();
    // Read one byte past the bound: a file that grew since it was measured is refused too.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > max {
        return Err(format!("{} holds more than {max} bytes", path.display()));
    }
    Ok(bytes)
}

/// A private directory, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "kv-binding-state-{:016x}",
            crate::store::random_id()
        ));
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    #[test]
    fn reads_rows_committed_to_the_log_and_writes_nothing_beside_the_database() {
        let dir = temp();
        let db = dir.path().join("ns.sqlite");
        let writer = Connection::open(&db).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer
            .execute_batch(
                "PRAGMA wal_autocheckpoint = 0;
                 CREATE TABLE _mf_entries (key TEXT PRIMARY KEY, blob_id TEXT NOT NULL,
                   expiration INTEGER, metadata TEXT);
                 INSERT INTO _mf_entries VALUES ('b', 'blob-b', NULL, NULL);
                 INSERT INTO _mf_entries VALUES ('a', 'blob-a', 1900000000000, '{\"m\":1}');",
            )
            .unwrap();
        // The writer is still open: its rows are in the log, not the database file.
        let before: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let entries = read_entries(&db).unwrap();
        assert_eq!(
            entries,
            vec![
                StateEntry {
                    key: "a".into(),
                    blob: "blob-a".into(),
                    expiration_ms: Some(1_900_000_000_000),
                    metadata: Some(r#"{"m":1}"#.into()),
                },
                StateEntry {
                    key: "b".into(),
                    blob: "blob-b".into(),
                    expiration_ms: None,
                    metadata: None,
                },
            ]
        );
        let after: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before, after);
        drop(writer);
    }

    #[test]
    fn a_damaged_or_foreign_database_is_one_line_naming_it() {
        let dir = temp();
        let garbage = dir.path().join("garbage.sqlite");
        fs::write(&garbage, vec![7u8; 8192]).unwrap();
        let error = read_entries(&garbage).unwrap_err();
        assert!(error.starts_with(&format!("{} cannot be read: ", garbage.display())));
        assert!(!error.contains('\n'));
        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(read_entries(&other)
            .unwrap_err()
            .contains("no _mf_entries table"));
    }

    #[cfg(unix)]
    #[test]
    fn links_and_what_is_not_a_file_are_refused() {
        let dir = temp();
        let outside = dir.path().join("outside");
        fs::write(&outside, "secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(read_regular(&link, 100)
            .unwrap_err()
            .contains("symbolic link"));
        assert!(read_regular(dir.path(), 100)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read_regular(&outside, 3)
            .unwrap_err()
            .contains("more than 3"));
        assert_eq!(read_regular(&outside, 6).unwrap(), b"secret");
    }
}

//! Opening a store's directory: the lock file that names the process holding it, sled's
//! own open (which may panic on damaged files), the format marker and the store's id.

use super::*;

/// The store's id, made now if it has none (a store from a build before ids).
pub(super) fn store_id(db: &sled::Db, path: &Path) -> Result<u64> {
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
pub(super) fn write_lock(mut file: &File, mark: &str, clean: &[u64]) -> std::io::Result<()> {
    let kept = &clean[clean.len().saturating_sub(CLEAN_SESSIONS_KEPT)..];
    let sessions: Vec<String> = kept.iter().map(|id| format!("{id:016x}")).collect();
    let text = format!("{} {mark}\n{}\n", std::process::id(), sessions.join(" "));
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())
}

/// Takes the store's lock, and the sessions that the lock file records as having closed the
/// store cleanly (its second line).
pub(super) fn take_lock(dir: &Path, share: bool) -> Result<(File, Vec<u64>)> {
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
pub(super) fn holder_pid(file: &mut File) -> Option<u32> {
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

/// How long an open waits for a database this process closed to let go of its lock.
pub(super) const LINGERING_CLOSE_WAIT: Duration = Duration::from_secs(5);

pub(super) fn open_db(path: &Path, config: &StoreConfig) -> Result<sled::Db> {
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

pub(super) fn check_format(db: &sled::Db, path: &Path) -> Result<()> {
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
pub(super) fn marker_text(id: u64) -> String {
    let text = serde_json::json!({
        "format": FORMAT_VERSION,
        "engine": "sled 0.34",
        "id": format!("{id:016x}"),
    });
    format!("{text}\n")
}

/// Writes the format file, unless it already says what it should (the format this build
/// writes, and the store's id, which the processes the store is served to read there).
pub(super) fn mark(path: &Path, id: u64) -> Result<()> {
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

pub(super) fn sled_error(path: &Path, error: sled::Error) -> Error {
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

//! One open database per directory and process: the registry that hands out leases on it,
//! what closes it cleanly when the last lease goes, and the sweep of value files at open.

use super::*;

/// What serves a store to other processes (the shared backend's server), as the store knows
/// it: kept for its drop, which stops the serving, and asked what it served.
pub(crate) trait Serving: Send + Sync {
    /// The requests answered after `after` in its log (see [`ServedPage`]).
    fn served(&self, after: u64) -> ServedPage;
}

/// An open database. Field order matters: the serving stops first, and the database closes
/// before the lock is released.
pub(super) struct Shared {
    /// What serves the store to other processes, kept for its drop, which stops the
    /// serving (see [`Lease::serve`]).
    pub(super) server: Mutex<Option<Box<dyn Serving>>>,
    pub(super) db: sled::Db,
    pub(super) cache: RecordCache,
    pub(super) files: ValueFiles,
    pub(super) flushing: Mutex<()>,
    pub(super) path: PathBuf,
    pub(super) identity: Identity,
    /// The staged writes begun in this opening of the store (see [`stage`]).
    pub(super) stages: stage::Stages,
    /// The namespaces opened in this opening of the store (see [`SledBackend::with_lease`]).
    pub(super) namespaces: Mutex<HashMap<String, NamespaceTrees>>,
    /// What the lock file says after the pid (see [`SHARING_MARK`]).
    pub(super) lock_mark: &'static str,
    pub(super) _lock: File,
}

pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    pub(super) users: usize,
}

pub(super) fn registry() -> MutexGuard<'static, HashMap<PathBuf, Slot>> {
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
    pub(super) fn acquire(path: &Path, config: &StoreConfig) -> Result<Self> {
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
            namespaces: Mutex::default(),
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
    pub(crate) fn serve<S: Serving + 'static>(&self, start: impl FnOnce() -> Option<S>) {
        let mut server = self
            .shared()
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if server.is_none() {
            *server = start().map(|made| Box::new(made) as Box<dyn Serving>);
        }
    }

    /// What the store's server answered for other processes after `after`, if it is served.
    pub(crate) fn served(&self, after: u64) -> Option<ServedPage> {
        let server = self.shared().server.lock();
        let server = server.unwrap_or_else(|e| e.into_inner());
        server.as_ref().map(|server| server.served(after))
    }

    /// Whether something serves the store to other processes (see [`Lease::serve`]).
    /// The namespaces of the store (see [`namespace_names`]).
    pub(crate) fn namespaces(&self) -> Vec<String> {
        namespace_names(&self.shared().db)
    }

    pub(crate) fn is_served(&self) -> bool {
        let server = self.shared().server.lock();
        server.unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Who holds the store: this process, in this session.
    pub(crate) fn identity(&self) -> &Identity {
        &self.shared().identity
    }

    pub(super) fn shared(&self) -> &Shared {
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
    /// The trees of namespace `name`, once opened in this opening of the store.
    pub(super) fn namespace_trees(&self, name: &str) -> Option<NamespaceTrees> {
        let known = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        known.get(name).cloned()
    }

    /// Keeps the trees of namespace `name` for its next opening.
    pub(super) fn keep_namespace_trees(&self, name: &str, trees: NamespaceTrees) {
        let mut known = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        known.entry(name.to_owned()).or_insert(trees);
    }

    /// Flushes, and once the flush is done records this session in the lock file as one
    /// that closed cleanly (in the lock file rather than the database, so that closing
    /// writes nothing more to sled: a store closed on a full disk still opens on it).
    pub(super) fn close_cleanly(&self) {
        if self.flush().is_err() {
            return;
        }
        let mut clean = self.identity.clean.clone();
        clean.push(self.identity.session);
        let _ = write_lock(&self._lock, self.lock_mark, &clean);
    }

    /// Makes every write so far durable: value files first, then sled; then removes the value
    /// files that the flush has made unreachable.
    pub(super) fn flush(&self) -> Result<()> {
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

/// The value files that some record of the store points to: in a namespace's index, or in
/// its undo tree (records a large write replaced, which rolling it back puts back).
pub(super) fn live_files(db: &sled::Db) -> sled::Result<std::collections::HashSet<u64>> {
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

/// The namespaces of a store: those with an index tree, in byte order. A tree whose name no
/// KV could have made is not a namespace.
pub(crate) fn namespace_names(db: &sled::Db) -> Vec<String> {
    let mut names: Vec<String> = db
        .tree_names()
        .iter()
        .filter_map(|tree| {
            let name = tree.strip_prefix(b"kv/")?.strip_suffix(b"/index")?;
            String::from_utf8(name.to_vec())
                .ok()
                .filter(|name| crate::store::check_namespace_name(name).is_ok())
        })
        .collect();
    names.sort_unstable();
    names
}

/// Flushes every database open in this process; used when the process exits normally.
pub fn flush_all() -> Result<()> {
    // Flushing with the registry locked keeps a database from closing half-way through.
    for slot in registry().values() {
        slot.shared.flush()?;
    }
    Ok(())
}

//! Bulk writes given in parts, on sled: an import of any size, all or nothing, holding a part
//! at a time in memory.
//!
//! Each part is written to the index as it comes, in one batch, after an undo entry for it
//! in the stage's own tree (`kv/<namespace>/stage/<id>`): each key, the record it replaced,
//! and the length and CRC-32 of the record written. Committing frees what the parts replaced
//! and drops the tree. Dropping the stage (an entry refused, the caller gone) puts back, last
//! part first, each record the stage wrote that is still there; a key written since by
//! someone else keeps that write. Reads see each part once written: a stage is atomic for
//! its outcome, not for readers.
//!
//! A stage lives as long as the opening of the store that began it. The next open of the
//! store rolls back every stage tree it finds (a crash, or a holder killed, during an import)
//! before it sweeps unused value files; a part or commit that names a stage this opening
//! does not have fails with [`STAGE_GONE`].

use std::collections::HashSet;
use std::path::Path;

use sled::IVec;

use super::cache::CacheGuard;
use super::{join_parts, release_garbage, sled_error, split_parts, undo_record, SledBackend};
use crate::backends::record::{self, Body};
use crate::store::random_id;
use crate::store::PutEntry;
use crate::store::{Error, Result};

/// What a stage tree's name ends with, before the stage's id in 16 hex digits.
const STAGE_TREE: &str = "/stage/";

/// What a part or commit of a stage that this opening of the store does not have says.
pub(crate) const STAGE_GONE: &str = "a write given in parts was cut short: the store was \
     closed or passed to another process while it was given";

/// The stages of one opening of a store, by the names of their trees.
pub(super) type Stages = std::sync::Mutex<HashSet<Vec<u8>>>;

/// Whether `name` is a stage tree's: `kv/`, a namespace, [`STAGE_TREE`], 16 hex digits. (An
/// index or undo tree ends with `/index` or `/undo`, whatever its namespace's name.)
fn is_stage_tree(name: &[u8]) -> bool {
    let tail = STAGE_TREE.len() + 16;
    name.starts_with(b"kv/")
        && name.len() >= 3 + tail
        && name[name.len() - tail..].starts_with(STAGE_TREE.as_bytes())
        && name[name.len() - 16..].iter().all(u8::is_ascii_hexdigit)
}

/// What tells a record a stage wrote from any other: its length and CRC-32.
fn fingerprint(record: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out[..4].copy_from_slice(&(record.len() as u32).to_be_bytes());
    out[4..].copy_from_slice(&crc32fast::hash(record).to_be_bytes());
    out
}

/// What undoing one key of a stage does, given the record there now.
enum Undo {
    /// The stage's record is there: put `old` back; the stage's record is no one's.
    PutBack,
    /// Someone wrote the key since: their write stays, and `old` is no one's.
    Leave,
    /// The stage's write never happened: nothing changes.
    Nothing,
}

fn undo_of(current: Option<&IVec>, old: Option<&IVec>, made: &[u8]) -> Undo {
    match current {
        Some(current) if fingerprint(current) == made => Undo::PutBack,
        _ if current == old => Undo::Nothing,
        _ => Undo::Leave,
    }
}

/// Each key of a stage's undo entry: key, the record it replaced, the fingerprint of the one
/// written.
fn stage_records(entry: &[u8]) -> impl Iterator<Item = (IVec, Option<IVec>, Vec<u8>)> + '_ {
    split_parts::<3>(entry)
        .into_iter()
        .map(|[key, old, made]| (IVec::from(key), undo_record(old), made.to_vec()))
}

/// Rolls back every stage tree of the database and drops it: called when the store is
/// opened, before anything reads it and before the sweep of value files (which takes the
/// files of the records put back). Blobs in a blob tree are removed here.
pub(super) fn roll_back_leftovers(db: &sled::Db, path: &Path) -> Result<()> {
    let failed = |e| sled_error(path, e);
    for name in db.tree_names() {
        if !is_stage_tree(&name) {
            continue;
        }
        let namespace = &name[..name.len() - STAGE_TREE.len() - 16];
        let tree = |kind: &str| db.open_tree([namespace, b"/", kind.as_bytes()].concat());
        let (stage, index, blobs) = (
            db.open_tree(&name).map_err(failed)?,
            tree("index").map_err(failed)?,
            tree("blobs").map_err(failed)?,
        );
        let drop_blob = |record: Option<&IVec>| match record.map(|r| record::decode(r)) {
            Some(Ok(record::Record {
                body: Body::Blob { id, .. },
                ..
            })) => blobs.remove(id.to_be_bytes()).map(drop),
            _ => Ok(()),
        };
        for entry in stage.iter().values().rev() {
            for (key, old, made) in stage_records(&entry.map_err(failed)?) {
                let current = index.get(&key).map_err(failed)?;
                match undo_of(current.as_ref(), old.as_ref(), &made) {
                    Undo::PutBack => {
                        match &old {
                            Some(old) => index.insert(&key, old).map(drop),
                            None => index.remove(&key).map(drop),
                        }
                        .map_err(failed)?;
                        drop_blob(current.as_ref()).map_err(failed)?;
                    }
                    Undo::Leave => drop_blob(old.as_ref()).map_err(failed)?,
                    Undo::Nothing => {}
                }
            }
        }
        db.drop_tree(&name).map_err(failed)?;
    }
    Ok(())
}

impl SledBackend {
    fn stages(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        let stages = &self.lease.shared().stages;
        stages.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stage_name(&self, stage: u64) -> Vec<u8> {
        let index = self.index.name();
        let namespace = &index[..index.len() - "/index".len()];
        let mut name = namespace.to_vec();
        name.extend_from_slice(format!("{STAGE_TREE}{stage:016x}").as_bytes());
        name
    }

    /// The tree of `stage`, which this opening of the store must have begun.
    fn stage_tree(&self, stage: u64) -> Result<sled::Tree> {
        let name = self.stage_name(stage);
        if !self.stages().contains(&name) {
            return Err(Error::Storage {
                path: self.path().to_owned(),
                detail: STAGE_GONE.to_owned(),
            });
        }
        let db = &self.lease.shared().db;
        db.open_tree(name).map_err(|e| self.error(e))
    }

    pub(super) fn begin_stage(&self) -> Result<u64> {
        let stage = random_id();
        self.stages().insert(self.stage_name(stage));
        Ok(stage)
    }

    /// Writes a part: its undo entry first, then its records in one batch. A key given twice
    /// in the part gets its last entry.
    pub(super) fn put_staged(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        let tree = self.stage_tree(stage)?;
        let records = self.store_last(entries)?;
        let mut cache = self.cache();
        let written = self.write_part(&mut cache, &tree, &records);
        drop(cache);
        release_garbage();
        if written.is_err() {
            self.discard(records.iter().map(|(_, record)| record));
        }
        written
    }

    fn write_part(
        &self,
        cache: &mut CacheGuard<'_>,
        tree: &sled::Tree,
        records: &[(&[u8], IVec)],
    ) -> Result<()> {
        let mut undo = Vec::with_capacity(records.len());
        for (key, record) in records {
            undo.push((*key, self.record_locked(cache, key)?, fingerprint(record)));
        }
        let entry =
            join_parts(undo.iter().flat_map(|(key, old, made)| {
                [*key, old.as_deref().unwrap_or_default(), &made[..]]
            }));
        let db = &self.lease.shared().db;
        let number = db.generate_id().map_err(|e| self.error(e))?;
        tree.insert(number.to_be_bytes(), entry)
            .map_err(|e| self.error(e))?;
        let mut batch = sled::Batch::default();
        for (key, record) in records {
            batch.insert(*key, record);
        }
        let applied = self.index.apply_batch(batch).map_err(|e| self.error(e));
        for (key, _) in records {
            cache.forget(self.number, key);
        }
        if applied.is_err() {
            // Nothing of the part was written; its entry would undo nothing.
            let _ = tree.remove(number.to_be_bytes());
        }
        applied
    }

    /// Ends `stage` with all its parts kept: what they replaced is freed once the stage's
    /// tree, which could have put it back, is gone.
    pub(super) fn commit_stage(&self, stage: u64) -> Result<()> {
        let tree = self.stage_tree(stage)?;
        let mut replaced = Vec::new();
        for entry in tree.iter().values() {
            let entry = entry.map_err(|e| self.error(e))?;
            let olds = stage_records(&entry).filter_map(|(_, old, _)| old);
            replaced.extend(olds.filter(|old| record::is_stored_apart(old)));
        }
        self.end_stage(&tree)?;
        replaced
            .into_iter()
            .try_for_each(|old| self.release_blob(Some(old)))
    }

    /// Ends `stage` with nothing of it kept: its parts are undone, last first. An unknown
    /// stage is no error.
    pub(super) fn drop_stage(&self, stage: u64) -> Result<()> {
        let Ok(tree) = self.stage_tree(stage) else {
            return Ok(());
        };
        let mut cache = self.cache();
        for entry in tree.iter().values().rev() {
            let entry = entry.map_err(|e| self.error(e))?;
            for (key, old, made) in stage_records(&entry) {
                let current = self.record_locked(&mut cache, &key)?;
                let freed = match undo_of(current.as_ref(), old.as_ref(), &made) {
                    Undo::PutBack => {
                        self.set_record(&mut cache, &key, old)?;
                        current
                    }
                    Undo::Leave => old,
                    Undo::Nothing => None,
                };
                self.release_blob(freed)?;
            }
        }
        drop(cache);
        self.end_stage(&tree)
    }

    /// Forgets the stage of `tree` and drops the tree.
    fn end_stage(&self, tree: &sled::Tree) -> Result<()> {
        self.stages().remove(&tree.name()[..]);
        let dropped = self.lease.shared().db.drop_tree(tree.name());
        release_garbage();
        dropped.map(drop).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_trees_are_told_from_any_namespace_s_trees() {
        assert!(is_stage_tree(b"kv/ns/stage/0123456789abcdef"));
        assert!(is_stage_tree(b"kv//stage/0123456789abcdef"));
        assert!(!is_stage_tree(b"kv/ns/stage/0123456789abcdef/index"));
        assert!(!is_stage_tree(b"kv/ns/stage/0123456789abcdef/undo"));
        assert!(!is_stage_tree(b"kv/ns/stage/0123456789abcdeg"));
        assert!(!is_stage_tree(b"kv/ns/index"));
        assert!(!is_stage_tree(b"xx/ns/stage/0123456789abcdef"));
    }

    #[test]
    fn undoing_a_key_puts_back_only_what_the_stage_wrote() {
        let (old, ours, theirs) = (
            IVec::from(&b"old"[..]),
            IVec::from(&b"ours"[..]),
            IVec::from(&b"theirs"[..]),
        );
        let made = fingerprint(&ours);
        assert!(matches!(
            undo_of(Some(&ours), Some(&old), &made),
            Undo::PutBack
        ));
        assert!(matches!(undo_of(Some(&ours), None, &made), Undo::PutBack));
        assert!(matches!(
            undo_of(Some(&theirs), Some(&old), &made),
            Undo::Leave
        ));
        assert!(matches!(undo_of(None, Some(&old), &made), Undo::Leave));
        assert!(matches!(
            undo_of(Some(&old), Some(&old), &made),
            Undo::Nothing
        ));
        assert!(matches!(undo_of(None, None, &made), Undo::Nothing));
    }

    #[test]
    fn a_stage_left_by_a_crash_is_rolled_back_when_the_store_opens() {
        let dir = tempfile::TempDir::new().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let index = db.open_tree("kv/ns/index").unwrap();
        let blobs = db.open_tree("kv/ns/blobs").unwrap();
        let stage = db.open_tree("kv/ns/stage/00000000000000ab").unwrap();
        let record = |value: &[u8]| IVec::from(record::encode(None, None, value, None));
        let blob_record = |id: u64| {
            let blob = record::BlobRef {
                id,
                len: 5_000,
                place: record::Place::Blob,
            };
            IVec::from(record::encode(None, None, &[0; 5_000], Some(blob)))
        };
        let (old, ours, theirs) = (record(b"old"), blob_record(7), record(b"theirs"));
        // Part 1 replaced "a" (was "old") and made "b" and "c"; "c" was written again since.
        blobs.insert(7u64.to_be_bytes(), &[0; 5_000][..]).unwrap();
        index.insert("a", ours.clone()).unwrap();
        index.insert("b", record(b"b")).unwrap();
        index.insert("c", theirs.clone()).unwrap();
        let entry = join_parts([
            &b"a"[..],
            &old,
            &fingerprint(&ours)[..],
            b"b",
            b"",
            &fingerprint(&record(b"b"))[..],
            b"c",
            b"",
            &fingerprint(&record(b"c"))[..],
        ]);
        stage.insert(1u64.to_be_bytes(), entry).unwrap();
        roll_back_leftovers(&db, dir.path()).unwrap();
        assert_eq!(index.get("a").unwrap(), Some(old));
        assert_eq!(index.get("b").unwrap(), None);
        assert_eq!(index.get("c").unwrap(), Some(theirs));
        // The blob of the record taken out went with it; the stage is gone.
        assert!(blobs.is_empty());
        assert!(!db.tree_names().iter().any(|name| is_stage_tree(name)));
    }

    #[test]
    fn a_stage_entry_reads_back_as_written() {
        let entry = join_parts([
            &b"k"[..],
            b"",
            &fingerprint(b"r")[..],
            b"k2",
            b"old",
            &fingerprint(b"s")[..],
        ]);
        let read: Vec<_> = stage_records(&entry).collect();
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0],
            (IVec::from(&b"k"[..]), None, fingerprint(b"r").to_vec())
        );
        assert_eq!(read[1].1, Some(IVec::from(&b"old"[..])));
        assert_eq!(stage_records(&entry[..entry.len() - 1]).count(), 1);
    }
}

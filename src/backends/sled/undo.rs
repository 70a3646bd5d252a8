//! Large writes in batches, all or nothing: what each batch replaces is noted in the
//! namespace's undo tree first, put back on failure or at the next open, forgotten on
//! success.

use super::*;

/// Parts (keys, records...) as one entry of an undo tree: each as a `u32` big-endian length
/// and its bytes.
pub(super) fn join_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// The parts of an entry [`join_parts`] made, in groups of `N`; reading stops at the first
/// group that does not fit whole.
pub(super) fn split_parts<const N: usize>(entry: &[u8]) -> Vec<[&[u8]; N]> {
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
pub(super) fn undo_record(part: &[u8]) -> Option<IVec> {
    (!part.is_empty()).then(|| IVec::from(part))
}

/// An undo entry: each key with the record it had (none: an empty part).
pub(super) fn undo_entry(replaced: &[(&[u8], Option<IVec>)]) -> Vec<u8> {
    join_parts(
        replaced
            .iter()
            .flat_map(|(key, old)| [*key, old.as_deref().unwrap_or_default()]),
    )
}

/// The keys and records of an undo entry; reading stops at the first pair that does not fit.
pub(super) fn undo_records(entry: &[u8]) -> Vec<(IVec, Option<IVec>)> {
    split_parts::<2>(entry)
        .into_iter()
        .map(|[key, old]| (IVec::from(key), undo_record(old)))
        .collect()
}

impl SledBackend {
    /// Writes `chunks` of (key, record), each at most [`WRITE_BATCH`] long, a chunk at a
    /// time, so that sled's garbage from one batch is let go before the next. Atomic all the
    /// same: before each batch, what it replaces is noted in the undo tree; a failure puts
    /// that back (then `undone` runs: the new records are no one's), as does the next open
    /// after a crash, and success forgets it. No key may come in two chunks.
    pub(super) fn put_chunked(
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
    pub(super) fn note_replaced(
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
    pub(super) fn roll_back(&self, cache: &mut CacheGuard<'_>) -> Result<()> {
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

//! The backend operations of a sled namespace.

use super::*;

impl Backend for SledBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            in_line: true,
            persistent: true,
            shared: self.lease.is_served(),
            atomic_bulk_writes: true,
            durable_flush: true,
            staged_writes: true,
            shared_snapshots: false,
        }
    }

    fn namespaces(&self) -> Result<Option<Vec<String>>> {
        Ok(Some(self.lease.namespaces()))
    }

    fn served(&self, after: u64) -> Result<Option<ServedPage>> {
        Ok(self.lease.served(after))
    }

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
        let records = self.store_last(entries)?;
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

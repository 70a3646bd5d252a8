//! A namespace's records: through the record cache, with their values in-line, in the blob
//! tree or in value files; what a damaged or vanished value reads as; and freeing what a
//! replaced record pointed to.

use super::*;

/// The value file (id and length) that record `bytes` points to, if it points to one.
pub(super) fn file_of(bytes: &[u8]) -> Option<(u64, u64)> {
    match record::decode(bytes) {
        Ok(record::Record {
            body: Body::File { id, len, .. },
            ..
        }) => Some((id, len)),
        _ => None,
    }
}

impl SledBackend {
    pub(super) fn cache(&self) -> CacheGuard<'_> {
        self.lease.shared().cache.lock()
    }

    /// The index record of `key`, from the cache when it knows, else from sled.
    pub(super) fn record(&self, key: &[u8]) -> Result<Option<IVec>> {
        self.record_locked(&mut self.cache(), key)
    }

    /// [`Self::record`], for a caller that holds the cache lock.
    pub(super) fn record_locked(
        &self,
        cache: &mut CacheGuard<'_>,
        key: &[u8],
    ) -> Result<Option<IVec>> {
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
    pub(super) fn set_record(
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

    /// The records of `entries` (key, record), blobs and value files written: of a key given
    /// twice, only its last entry, the others never written. On failure, nothing is left.
    pub(super) fn store_last<'e>(&self, entries: &[PutEntry<'e>]) -> Result<Vec<(&'e [u8], IVec)>> {
        let last: std::collections::HashMap<&[u8], usize> = (0..)
            .zip(entries)
            .map(|(index, entry)| (entry.key, index))
            .collect();
        let mut records = Vec::with_capacity(last.len());
        for (index, entry) in (0..).zip(entries) {
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
        Ok(records)
    }

    /// Writes `value`'s blob, if it needs one, and returns the index record for it.
    pub(super) fn store_value(
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

    pub(super) fn path(&self) -> &Path {
        &self.lease.shared().path
    }

    pub(super) fn error(&self, error: sled::Error) -> Error {
        sled_error(self.path(), error)
    }

    pub(super) fn damaged(&self, key: &[u8], what: &str) -> Error {
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
    pub(super) fn load(&self, key: &[u8], bytes: IVec, max_len: u64) -> Result<Option<Entry>> {
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
    pub(super) fn vanished(&self, key: &[u8], bytes: &IVec) -> Result<Option<Entry>> {
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
    pub(super) fn discard<'a>(&self, records: impl IntoIterator<Item = &'a IVec>) {
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
    pub(super) fn release_blob(&self, old: Option<IVec>) -> Result<()> {
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

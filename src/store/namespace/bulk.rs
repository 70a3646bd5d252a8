//! The operations on many keys at once: bulk reads with their size rule, bulk deletes, and
//! bulk writes (all checked first, then written as one).

use super::*;

/// `entries` checked as `put` checks each, against `now_ms`, as they go to a backend; the
/// first refused one is reported with its index, counted from `first`.
pub(crate) fn check_entries<'a>(
    entries: &'a [BulkEntry<'_>],
    first: usize,
    now_ms: i64,
) -> Result<Vec<PutEntry<'a>>> {
    let mut checked = Vec::with_capacity(entries.len());
    for (index, entry) in (first..).zip(entries) {
        let refused = |source| Error::Entry {
            index,
            key: entry.key.to_owned(),
            source: Box::new(source),
        };
        let expiration =
            check_put(entry.key, &entry.options, entry.value.len(), now_ms).map_err(refused)?;
        checked.push(PutEntry {
            key: entry.key.as_bytes(),
            value: entry.value,
            expiration,
            metadata: entry.options.metadata.as_deref(),
        });
    }
    Ok(checked)
}

impl Namespace {
    // Reads `keys` (checked already) through this location's cache, if any: in request order,
    // `None` for missing or expired keys.
    pub(super) async fn read_many(
        &self,
        keys: &[&str],
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Vec<Option<Entry>>> {
        let Some(location) = &self.location else {
            let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
            let found = self.storage.get_many(&keys, max_len).await?;
            return self.live(&keys, found, now_ms).await;
        };
        let mut entries = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let cached = location.lookup(key, cache_ttl, max_len, now_ms);
            if cached.is_none() {
                missing.push(index);
            }
            entries.push(cached.flatten());
        }
        if missing.is_empty() {
            return Ok(entries);
        }
        let wanted: Vec<&[u8]> = missing.iter().map(|&i| keys[i].as_bytes()).collect();
        let ticket = location.ticket();
        let found = self.storage.get_many(&wanted, max_len).await?;
        let found = self.live(&wanted, found, now_ms).await?;
        for (index, entry) in missing.into_iter().zip(found) {
            entries[index] = location.remember(keys[index], entry, cache_ttl, now_ms, ticket);
        }
        Ok(entries)
    }

    /// `entries` (read for `keys`) with the expired ones as `None`, reclaimed on the way.
    pub(super) async fn live(
        &self,
        keys: &[&[u8]],
        mut entries: Vec<Option<Entry>>,
        now_ms: i64,
    ) -> Result<Vec<Option<Entry>>> {
        let mut expired = Vec::new();
        for (key, entry) in keys.iter().zip(&mut entries) {
            if entry
                .as_ref()
                .is_some_and(|entry| is_expired(entry.expiration, now_ms))
            {
                *entry = None;
                expired.push(*key);
            }
        }
        if !expired.is_empty() {
            self.storage.delete_expired(&expired, now_ms).await?;
        }
        Ok(entries)
    }

    /// Deletes up to 100 keys: the experimental `deleteBulk`. Every key is checked as
    /// `delete` checks it before any is deleted.
    pub async fn delete_bulk_async(&self, keys: &[String]) -> Result<()> {
        if keys.len() > MAX_BULK_KEYS {
            return Err(Error::service(
                Op::Delete,
                400,
                format!("You can delete maximum of {MAX_BULK_KEYS} keys per request"),
            ));
        }
        for key in keys {
            validate_key(Op::Delete, key)?;
        }
        for key in keys {
            let deleted = self.storage.delete(key.as_bytes()).await;
            self.wrote(key);
            deleted?;
        }
        Ok(())
    }

    /// Reads up to 100 keys at once, in request order (`None` for missing or expired keys).
    /// Every value must be at most `max_len` bytes and all together too, or the read is
    /// refused with `Ok(None)` for the caller to redo elsewhere with a higher bound.
    ///
    /// As the service does, keys are checked and read one by one in request order: a value
    /// that is not JSON (with `kind` json) before a bad key is the error reported, a bad key
    /// before it is. The total size is checked last.
    pub async fn get_bulk_async(
        &self,
        keys: &[String],
        kind: Option<&str>,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Vec<Option<Entry>>>> {
        let kind = validate_bulk(keys, kind)?;
        // The keys before the first bad one are read; its error comes after theirs.
        let mut refused = Ok(());
        let mut readable = Vec::with_capacity(keys.len());
        for key in keys {
            refused = check_bulk_key(key, cache_ttl);
            if refused.is_err() {
                break;
            }
            readable.push(key.as_str());
        }
        let entries = self
            .read_many(&readable, cache_ttl, max_len, now_ms)
            .await?;
        let mut total: u64 = 0;
        for entry in entries.iter().flatten() {
            let Some(len) = entry.value.bytes().map(|bytes| bytes.len() as u64) else {
                return Ok(None);
            };
            total += len;
            if total > max_len {
                return Ok(None);
            }
        }
        // Deferred values returned above, so every value here has its bytes.
        let texts = entries
            .iter()
            .flatten()
            .map(|entry| String::from_utf8_lossy(entry.value.bytes().unwrap_or_default()));
        if kind == BulkType::Json
            && texts
                .clone()
                .any(|text| serde_json::from_str::<IgnoredAny>(&text).is_err())
        {
            return Err(Error::service(
                Op::GetBulk,
                400,
                "At least one of the requested keys corresponds to a non-json value",
            ));
        }
        refused?;
        // The service counts decoded string lengths, in UTF-16 units; a value never has more
        // of those than bytes, so the exact count is needed only past the limit.
        if total > MAX_BULK_SIZE as u64
            && texts.map(|text| text.encode_utf16().count()).sum::<usize>() > MAX_BULK_SIZE
        {
            return Err(Error::service(
                Op::GetBulk,
                413,
                format!(
                    "Total size of request exceeds the limit of {}MB",
                    MAX_BULK_SIZE / (1024 * 1024)
                ),
            ));
        }
        Ok(Some(entries))
    }

    /// Writes every entry, or none: all are checked as `put` checks them, against the one
    /// instant `now_ms`, before any is written, and the first refused one is reported with its
    /// index and key; then all are written in one atomic step, so a failure while writing
    /// (a full disk) leaves none written either. (On a Redis Cluster, one step per partition:
    /// see the README.)
    pub async fn put_many_async(&self, entries: &[BulkEntry<'_>], now_ms: i64) -> Result<()> {
        let checked = check_entries(entries, 0, now_ms)?;
        let written = self.storage.put_all(&checked).await;
        for entry in entries {
            self.wrote(entry.key);
        }
        written
    }
}

//! Reads: one key, many keys, scans of a partition's index merged in key order, and whole
//! namespaces.

use super::*;

/// One partition during a scan: fetched keys not yet visited, and where to fetch next
/// (`None` once it has no more keys under the prefix).
struct Part {
    buffer: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    next: Option<Vec<u8>>,
}

impl RedisBackend {
    /// The entry at `key`: its value record and its partition's copy of the layout, read
    /// together with one `MGET` (one slot: they share the partition's hash tag).
    pub(super) async fn read(
        &self,
        connection: Connection,
        layout: &Layout,
        key: &[u8],
    ) -> Result<Option<Entry>> {
        let base = self.base(Self::partition_of(key, layout.partitions));
        let value_key = [base.as_bytes(), b"v:", key].concat();
        let mut mget = redis::cmd("MGET");
        mget.arg(value_key).arg(base + "layout");
        let (bytes, copy): (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.query(&connection, &mget).await?;
        if copy.as_deref() != Some(layout.text.as_bytes()) {
            return Err(self.layout_changed());
        }
        bytes.map(|bytes| self.entry(key, bytes)).transpose()
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.with(
            false,
            || None,
            |connection, layout| async move { self.read(connection, &layout, key).await },
        )
        .await
    }

    pub async fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Entry>>> {
        self.with(
            false,
            || vec![None; keys.len()],
            |connection, layout| async move {
                // Sent together on the one connection: a single round trip's wait.
                try_join_all(
                    keys.iter()
                        .map(|key| self.read(connection.clone(), &layout, key)),
                )
                .await
            },
        )
        .await
    }

    /// One batch of partition `p`: up to `count` keys from `start` (a ZRANGEBYLEX bound),
    /// with their list records.
    pub(super) async fn scan_batch(
        &self,
        mut connection: Connection,
        layout: &Layout,
        p: u32,
        start: Vec<u8>,
        count: usize,
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        let mut invocation = self.invocation(&self.scripts.scan, layout, &[p]);
        invocation
            .key(self.index_key(p))
            .key(self.meta_key(p))
            .arg(start)
            .arg(count);
        let flat: Vec<Option<Vec<u8>>> = self
            .request(
                self.copy_key(p).as_bytes(),
                invocation.invoke_async(&mut connection),
            )
            .await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(key), Some(record)) = (items.next(), items.next()) {
            let key = key.ok_or_else(|| self.corrupt("a partition index holds a nil".into()))?;
            out.push((key, record));
        }
        self.mend_records(&connection, layout, p, &mut out).await?;
        Ok(out)
    }

    /// Goes on where a list record is missing or damaged (a key evicted, a hash written by
    /// something else): the value record holds the same expiration and metadata, so it
    /// stands in. A key with neither is gone, and is left `None`; a damaged value record is
    /// kept, so that listing it fails naming the key, as reading it does.
    pub(super) async fn mend_records(
        &self,
        connection: &Connection,
        layout: &Layout,
        p: u32,
        items: &mut [(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<()> {
        let bad: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let (key, record) = &items[i];
                record
                    .as_ref()
                    .is_none_or(|record| self.listed(key, record).is_err())
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        // With the partition's copy of the layout, read in the same step.
        let mut mget = redis::cmd("MGET");
        for &i in &bad {
            mget.arg(self.value_key(p, &items[i].0));
        }
        mget.arg(self.copy_key(p));
        let mut values: Vec<Option<Vec<u8>>> = self.query(connection, &mget).await?;
        if values.pop().flatten().as_deref() != Some(layout.text.as_bytes()) {
            return Err(self.layout_changed());
        }
        for (&i, value) in bad.iter().zip(values) {
            items[i].1 = value;
        }
        Ok(())
    }

    pub async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        want: usize,
        visit: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        self.with(
            false,
            || (),
            |connection, layout| async move {
                let partitions = layout.partitions;
                // Every partition starts at the same ZRANGEBYLEX bound.
                let first = match after {
                    Some(after) if after >= prefix => [b"(", after].concat(),
                    _ => [b"[", prefix].concat(),
                };
                // Each partition in a buffer, refilled when empty; the smallest head is next.
                let count = (want * 2 / partitions as usize).clamp(16, BATCH_MAX);
                let mut parts: Vec<Part> = (0..partitions)
                    .map(|_| Part {
                        buffer: std::collections::VecDeque::new(),
                        next: Some(first.clone()),
                    })
                    .collect();
                loop {
                    let empty: Vec<u32> = (0..partitions)
                        .filter(|&p| {
                            let part = &parts[p as usize];
                            part.buffer.is_empty() && part.next.is_some()
                        })
                        .collect();
                    let batches = try_join_all(empty.iter().map(|&p| {
                        let start = parts[p as usize].next.clone().unwrap_or_default();
                        self.scan_batch(connection.clone(), &layout, p, start, count)
                    }))
                    .await?;
                    for (&p, batch) in empty.iter().zip(batches) {
                        let part = &mut parts[p as usize];
                        let full = batch.len() == count;
                        part.next = match batch.last() {
                            Some((last, _)) if full && last.starts_with(prefix) => {
                                Some([b"(", last.as_slice()].concat())
                            }
                            _ => None,
                        };
                        part.buffer.extend(
                            batch
                                .into_iter()
                                .take_while(|(key, _)| key.starts_with(prefix)),
                        );
                    }
                    let head = parts
                        .iter()
                        .enumerate()
                        .filter_map(|(p, part)| part.buffer.front().map(|(key, _)| (key, p)))
                        .min();
                    let Some((_, p)) = head else {
                        return Ok(());
                    };
                    let Some((key, record)) = parts[p].buffer.pop_front() else {
                        return Ok(());
                    };
                    // Neither a list record nor a value: the entry is gone.
                    let Some(record) = record else { continue };
                    let (expiration, metadata) = self.listed(&key, &record)?;
                    if !visit(&key, expiration, metadata.as_ref()) {
                        return Ok(());
                    }
                }
            },
        )
        .await
    }

    pub async fn entries(
        &self,
        mut skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        let found: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .with(false, Vec::new, |connection, layout| async move {
                let mut found = Vec::new();
                for p in 0..layout.partitions {
                    let copy: Option<Vec<u8>> = self
                        .query(&connection, redis::cmd("GET").arg(self.copy_key(p)))
                        .await?;
                    if copy.as_deref() != Some(layout.text.as_bytes()) {
                        return Err(self.layout_changed());
                    }
                    let keys: Vec<Vec<u8>> = self
                        .query(
                            &connection,
                            redis::cmd("ZRANGE").arg(self.index_key(p)).arg(0).arg(-1),
                        )
                        .await?;
                    for chunk in keys.chunks(256) {
                        let values = try_join_all(chunk.iter().map(|key| {
                            let connection = connection.clone();
                            async move {
                                self.query::<Option<Vec<u8>>>(
                                    &connection,
                                    redis::cmd("GET").arg(self.value_key(p, key)),
                                )
                                .await
                            }
                        }))
                        .await?;
                        found.extend(chunk.iter().cloned().zip(values));
                    }
                }
                Ok(found)
            })
            .await?;
        let mut entries = Vec::with_capacity(found.len());
        for (key, bytes) in found {
            // Deleted between the index read and the value read.
            let Some(bytes) = bytes else { continue };
            match (self.entry(&key, bytes), skip.as_deref_mut()) {
                (Ok(entry), _) => entries.push((IVec::from(key), entry)),
                (Err(error @ Error::CorruptRemote { .. }), Some(skip)) => {
                    skip(IVec::from(key), error)
                }
                (Err(error), _) => return Err(error),
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

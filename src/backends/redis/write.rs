//! Writes: bulk writes in bounded script calls, grouped by partition, deletes, removals of
//! expired entries, and whole-namespace replacement.

use super::*;

/// An entry to write: key, expiration, metadata, value.
pub(super) type WriteEntry<'e> = (&'e [u8], Option<i64>, Option<&'e str>, &'e [u8]);

/// `written` (entry numbers) cut into runs of at most [`CHUNK_ENTRIES`] entries and
/// [`CHUNK_BYTES`] bytes, in order; at least one run, which may be empty.
pub(super) fn chunks<'w>(written: &'w [usize], entries: &[WriteEntry<'_>]) -> Vec<&'w [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, &i) in written.iter().enumerate() {
        let (key, _, metadata, value) = entries[i];
        let size = key.len() + 2 * metadata.map_or(0, str::len) + value.len();
        if n > start && (n - start == CHUNK_ENTRIES || bytes + size > CHUNK_BYTES) {
            out.push(&written[start..n]);
            (start, bytes) = (n, 0);
        }
        bytes += size;
    }
    out.push(&written[start..]);
    out
}

/// The script calls of one write so far: how many were sent, and whether one was applied.
#[derive(Default)]
pub(super) struct Calls {
    sent: AtomicUsize,
    applied: AtomicBool,
}

/// Where the script calls of one part of a write go: the connection, the write's
/// [`Calls`], and a Redis key of the part's slot (for messages).
pub(super) struct Call<'a> {
    connection: &'a Connection,
    calls: &'a Calls,
    key: String,
}

impl RedisBackend {
    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        self.write(
            false,
            entries
                .iter()
                .map(|entry| (entry.key, entry.expiration, entry.metadata, entry.value)),
        )
        .await
    }

    /// A script call that starts by checking the layout copies of `partitions` (see
    /// [`CHECK_LAYOUT`]).
    pub(super) fn invocation<'s>(
        &self,
        script: &'s Script,
        layout: &Layout,
        partitions: &[u32],
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(layout.text.as_str()).arg(partitions.len());
        for &p in partitions {
            invocation.key(self.copy_key(p));
        }
        invocation
    }

    /// The partitions of `keys` and of `also`, each once, in order: those whose layout copy a
    /// script that changes them checks.
    pub(super) fn touched<'k>(
        keys: impl Iterator<Item = &'k [u8]>,
        also: &[u32],
        partitions: u32,
    ) -> Vec<u32> {
        let mut touched: Vec<u32> = keys
            .map(|key| Self::partition_of(key, partitions))
            .chain(also.iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// Which script call each partition's changes go in: all in one on a single server,
    /// where one script may touch any key; one partition per call on a cluster.
    pub(super) fn group_of(&self, p: u32) -> u32 {
        if self.cluster {
            p
        } else {
            0
        }
    }

    /// Writes entries (key, expiration, metadata, value), after clearing the namespace when
    /// `clear`. On a single server the partitions go together, on a cluster each on its own
    /// (a script reaches one slot). Each goes in script calls of bounded size, so none holds
    /// the server for long: one call, atomic, when the entries fit in one chunk and the
    /// partitions to clear hold at most [`CLEAR_MAX`] keys; otherwise several, in order.
    pub(super) async fn write<'e>(
        &self,
        clear: bool,
        entries: impl Iterator<Item = WriteEntry<'e>>,
    ) -> Result<()> {
        let entries: Vec<WriteEntry<'e>> = entries.collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Some((connection, layout)) = self.setup(true, deadline).await? else {
            return Ok(());
        };
        // The partitions each group clears, and the entries it writes.
        let mut groups: BTreeMap<u32, (Vec<u32>, Vec<usize>)> = BTreeMap::new();
        if clear {
            for p in 0..layout.partitions {
                groups.entry(self.group_of(p)).or_default().0.push(p);
            }
        }
        for (i, (key, ..)) in entries.iter().enumerate() {
            let p = Self::partition_of(key, layout.partitions);
            groups.entry(self.group_of(p)).or_default().1.push(i);
        }
        let calls = Calls::default();
        try_join_all(groups.iter().map(|(&group, (cleared, written))| {
            let chunks = chunks(written, &entries);
            let call = Call {
                connection: &connection,
                calls: &calls,
                key: self.copy_key(group),
            };
            self.write_group(call, &layout, cleared, chunks, &entries)
        }))
        .await
        .map(drop)
    }

    /// Clears the partitions `cleared`, then writes the entries of each chunk, a chunk per
    /// call. The first call carries the first chunk: if the partitions held few enough keys
    /// to be cleared in it, the whole clear-and-write is that one atomic call.
    pub(super) async fn write_group(
        &self,
        call: Call<'_>,
        layout: &Layout,
        cleared: &[u32],
        chunks: Vec<&[usize]>,
        entries: &[WriteEntry<'_>],
    ) -> Result<()> {
        let mut rest = chunks.as_slice();
        if !cleared.is_empty() {
            let mut with: &[usize] = chunks[0];
            // 1: more to clear, and nothing was written.
            while self
                .call(&call, &self.write_call(layout, cleared, with, entries))
                .await?
                == 1
            {
                with = &[];
            }
            if with.len() == chunks[0].len() {
                rest = &chunks[1..];
            }
        }
        for chunk in rest.iter().filter(|chunk| !chunk.is_empty()) {
            self.call(&call, &self.write_call(layout, &[], chunk, entries))
                .await?;
        }
        Ok(())
    }

    /// A call of [`WRITE`]: clears the partitions `cleared` (up to [`CLEAR_MAX`] keys) and,
    /// once they are empty, writes the entries numbered `written`.
    pub(super) fn write_call<'s>(
        &'s self,
        layout: &Layout,
        cleared: &[u32],
        written: &[usize],
        entries: &[WriteEntry<'_>],
    ) -> redis::ScriptInvocation<'s> {
        let keys = written.iter().map(|&i| entries[i].0);
        let touched = Self::touched(keys, cleared, layout.partitions);
        let mut invocation = self.invocation(&self.scripts.write, layout, &touched);
        invocation.arg(cleared.len()).arg(CLEAR_MAX);
        for &p in cleared {
            invocation.key(self.index_key(p)).key(self.meta_key(p));
            invocation.arg(self.base(p) + "v:");
        }
        for &i in written {
            let (key, expiration, metadata, value) = entries[i];
            let (index, meta, value_key) = self.entry_keys(key, layout.partitions);
            invocation.key(index).key(meta).key(value_key);
            invocation
                .arg(key)
                .arg(Self::sealed(expiration, metadata, b""))
                .arg(Self::sealed(expiration, metadata, value));
        }
        invocation
    }

    /// Runs one script call of a write, within the timeout. A failure says whether the write
    /// may have happened: it surely did not only when this was its one call so far and the
    /// server refused it, or the connection was refused before it was sent.
    pub(super) async fn call(
        &self,
        call: &Call<'_>,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<i64> {
        let calls = call.calls;
        let first = calls.sent.fetch_add(1, Ordering::SeqCst) == 0;
        let mut connection = call.connection.clone();
        let answer = crate::backends::deadline::within(
            tokio::time::Instant::now() + self.timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        let (error, refused) = match answer {
            Ok(Ok(more)) => {
                calls.applied.store(true, Ordering::SeqCst);
                let result = Ok(more);
                self.observe(&result);
                return result;
            }
            Ok(Err(error)) => {
                let refused = error.is_connection_refusal()
                    || !(error.is_io_error()
                        || error.is_timeout()
                        || error.is_connection_dropped());
                (self.error(error, call.key.as_bytes()), refused)
            }
            Err(_) => (self.no_answer(call.key.as_bytes()), false),
        };
        let alone = first && calls.sent.load(Ordering::SeqCst) == 1;
        let applied = calls.applied.load(Ordering::SeqCst);
        let result = if refused && alone && !applied {
            Err(error)
        } else {
            Err(Error::Unknown {
                source: Box::new(error),
                partly: applied,
            })
        };
        self.observe(&result);
        result
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.delete_if(&[(key, Vec::new())]).await
    }

    /// Deletes entries (key, and the list record it must still have; empty: any): one call
    /// on a single server, one per partition on a cluster.
    pub(super) async fn delete_if(&self, entries: &[(&[u8], Vec<u8>)]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Some((connection, layout)) = self.setup(false, deadline).await? else {
            return Ok(());
        };
        // Which entries (by index) each script call deletes.
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (key, _)) in entries.iter().enumerate() {
            let p = Self::partition_of(key, layout.partitions);
            groups.entry(self.group_of(p)).or_default().push(i);
        }
        let calls = Calls::default();
        try_join_all(groups.iter().map(|(&p, group)| {
            let keys = group.iter().map(|&i| entries[i].0);
            let touched = Self::touched(keys, &[], layout.partitions);
            let mut invocation = self.invocation(&self.scripts.delete_if, &layout, &touched);
            for (key, seen) in group.iter().map(|&i| &entries[i]) {
                let (index, meta, value_key) = self.entry_keys(key, layout.partitions);
                invocation.key(index).key(meta).key(value_key);
                invocation.arg(*key).arg(seen.as_slice());
            }
            let call = Call {
                connection: &connection,
                calls: &calls,
                key: self.copy_key(p),
            };
            async move { self.call(&call, &invocation).await }
        }))
        .await
        .map(drop)
    }

    /// Removes the keys whose entries are expired at `now_ms`, each only if nobody has
    /// written it since it was read here.
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        let records: Vec<Option<Vec<u8>>> = self
            .with(false, Vec::new, |connection, layout| async move {
                try_join_all(keys.iter().map(|key| {
                    let connection = connection.clone();
                    let layout = &layout;
                    async move {
                        let (_, meta, _) = self.entry_keys(key, layout.partitions);
                        self.query(&connection, redis::cmd("HGET").arg(meta).arg(*key))
                            .await
                    }
                }))
                .await
            })
            .await?;
        let mut expired = Vec::new();
        for (key, record) in keys.iter().zip(records) {
            let Some(record) = record else { continue };
            // A damaged record is not ours to remove: reading the key reports it.
            if let Ok((expiration, _)) = self.listed(key, &record) {
                if is_expired(expiration, now_ms) {
                    expired.push((*key, record));
                }
            }
        }
        if expired.is_empty() {
            return Ok(());
        }
        // Whether a reclaim happened does not matter to the read that asked for it.
        self.delete_if(&expired).await.map_err(|error| match error {
            Error::Unknown { source, .. } => *source,
            error => error,
        })
    }

    /// Removes every Redis key of the namespace, its layout (and its copies) included.
    pub async fn remove(&self) -> Result<()> {
        self.write(true, std::iter::empty()).await?;
        self.with(
            false,
            || (),
            |connection, layout| async move {
                self.query::<()>(&connection, redis::cmd("DEL").arg(self.layout_key()))
                    .await?;
                *self.cached_layout() = None;
                let mut forget = redis::cmd("SREM");
                forget.arg(self.namespaces_key()).arg(&self.name);
                self.query::<()>(&connection, &forget).await?;
                self.registered.store(false, Ordering::Release);
                try_join_all((0..layout.partitions).map(|p| {
                    let connection = connection.clone();
                    async move {
                        self.query::<()>(&connection, redis::cmd("DEL").arg(self.copy_key(p)))
                            .await
                    }
                }))
                .await
                .map(drop)
            },
        )
        .await
    }

    pub async fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        self.write(
            true,
            entries.iter().map(|(key, entry)| {
                (
                    key.as_ref(),
                    entry.expiration,
                    entry
                        .metadata
                        .as_ref()
                        .map(|m| std::str::from_utf8(m).unwrap_or_default()),
                    entry.value.bytes().unwrap_or_default(),
                )
            }),
        )
        .await
    }
}

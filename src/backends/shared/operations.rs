//! The backend operations of a client, each as a request to the holder or a call on the
//! store itself.

use super::*;

pub(super) fn done(response: Response) -> Option<Result<()>> {
    matches!(response, Response::Done).then_some(Ok(()))
}

impl RemoteBackend for SharedBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            persistent: true,
            shared: true,
            atomic_bulk_writes: true,
            durable_flush: true,
            staged_writes: true,
            ..Capabilities::default()
        }
    }

    crate::store::remote_operations!(SharedBackend);

    fn remove(&self) -> Pending<'_, ()> {
        Box::pin(SharedBackend::replace_all(self, &[]))
    }

    fn flush(&self) -> Pending<'_, ()> {
        Box::pin(SharedBackend::flush(self))
    }

    fn namespaces(&self) -> Pending<'_, Option<Vec<String>>> {
        Box::pin(async { SharedBackend::namespaces(self).await.map(Some) })
    }

    fn served(&self, after: u64) -> Pending<'_, Option<ServedPage>> {
        Box::pin(async move { SharedBackend::served(self, after).await.map(Some) })
    }

    fn stage_begin(&self) -> Pending<'_, Option<u64>> {
        Box::pin(async { SharedBackend::stage_begin(self).await.map(Some) })
    }

    fn stage_put<'a>(&'a self, stage: u64, entries: &'a [PutEntry<'a>]) -> Pending<'a, ()> {
        Box::pin(SharedBackend::stage_put(self, stage, entries))
    }

    fn stage_commit(&self, stage: u64) -> Pending<'_, ()> {
        Box::pin(SharedBackend::stage_commit(self, stage))
    }

    fn stage_drop(&self, stage: u64) -> Pending<'_, ()> {
        Box::pin(SharedBackend::stage_drop(self, stage))
    }
}

impl SharedBackend {
    pub async fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.run(
            |b| b.get(key, u64::MAX),
            |ns| {
                Ok(Request::Get {
                    ns,
                    key: ByteBuf::from(key),
                })
            },
            |response| match response {
                Response::Entry(entry) => Some(entry.map(|e| self.entry_for(key, e)).transpose()),
                _ => None,
            },
        )
        .await
    }

    /// What the store's holder answered for its clients after `after` in its log (this
    /// process's own log, once it holds the store).
    pub async fn served(&self, after: u64) -> Result<ServedPage> {
        self.run(
            |b| Ok(b.served(after)?.unwrap_or_default()),
            |_| Ok(Request::Served { after }),
            |response| match response {
                Response::Served(page) => Some(Ok(page)),
                _ => None,
            },
        )
        .await
    }

    /// The store's namespaces. A name no KV could have made, from a holder, is an error.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        let names = self
            .run(
                |b| Ok(b.namespaces()?.unwrap_or_default()),
                |_| Ok(Request::Namespaces),
                |response| match response {
                    Response::Names(names) => Some(Ok(names)),
                    _ => None,
                },
            )
            .await?;
        for name in &names {
            check_namespace_name(name).map_err(|_| {
                Error::Internal("the store's holder named a namespace no KV could have made".into())
            })?;
        }
        Ok(names)
    }

    pub async fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Entry>>> {
        self.run(
            |b| keys.iter().map(|key| b.get(key, u64::MAX)).collect(),
            |ns| {
                Ok(Request::GetMany {
                    ns,
                    keys: keys.iter().map(|key| ByteBuf::from(*key)).collect(),
                })
            },
            |response| match response {
                Response::Entries(entries) if entries.len() == keys.len() => Some(
                    entries
                        .into_iter()
                        .zip(keys)
                        .map(|(e, key)| e.map(|e| self.entry_for(key, e)).transpose())
                        .collect(),
                ),
                _ => None,
            },
        )
        .await
    }

    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        self.write(
            || Wrote::Keys(entries.iter().map(|e| e.key.to_vec()).collect()),
            |b| b.put_all(entries),
            |ns| wire::encode_put_all(&ns, entries),
            done,
        )
        .await
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.write(
            || Wrote::Keys(vec![key.to_vec()]),
            |b| b.delete(key),
            |ns| {
                Ok(Request::Delete {
                    ns,
                    key: ByteBuf::from(key),
                })
            },
            done,
        )
        .await
    }

    /// Not in the ledger: an expired entry reads as absent whether or not its removal is on
    /// disk.
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        self.run(
            |b| {
                keys.iter()
                    .try_for_each(|key| b.delete_expired(key, now_ms))
            },
            |ns| {
                Ok(Request::DeleteExpired {
                    ns,
                    keys: keys.iter().map(|key| ByteBuf::from(*key)).collect(),
                    now_ms,
                })
            },
            done,
        )
        .await
    }

    pub async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        want: usize,
        visit: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        let mut after = after.map(<[u8]>::to_vec);
        let want = u32::try_from(want.max(16)).unwrap_or(SCAN_BATCH_MAX);
        loop {
            let batch = self
                .run(
                    // Held here: the whole scan, in one go.
                    |b| b.scan(prefix, after.as_deref(), &mut *visit).map(|()| None),
                    |ns| {
                        Ok(Request::Scan {
                            ns,
                            prefix: ByteBuf::from(prefix),
                            after: after.as_deref().map(ByteBuf::from),
                            want,
                        })
                    },
                    |response| match response {
                        Response::Scanned { items, more } => Some(Ok(Some((items, more)))),
                        _ => None,
                    },
                )
                .await?;
            let Some((items, more)) = batch else {
                return Ok(());
            };
            // A holder scans in key order from after `after`, within the prefix: anything
            // else would make this list wrong, or page for ever.
            let mut previous = after.as_deref();
            for (key, _, metadata) in &items {
                let out_of_place = !key.starts_with(prefix)
                    || previous.is_some_and(|previous| key.as_slice() <= previous);
                let fault = out_of_place
                    .then_some("keys out of order or outside the prefix scanned")
                    .or_else(|| key_fault(key))
                    .or_else(|| metadata_fault(metadata.as_ref().map(|m| m.as_slice())));
                if let Some(what) = fault {
                    return Err(self.bad_answer(what));
                }
                previous = Some(key);
            }
            for (key, expiration, metadata) in &items {
                let metadata = metadata.as_ref().map(|m| IVec::from(m.as_slice()));
                if !visit(key, *expiration, metadata.as_ref()) {
                    return Ok(());
                }
            }
            match items.last() {
                Some((last, ..)) if more => after = Some(last.to_vec()),
                _ => return Ok(()),
            }
        }
    }

    /// Every entry, read a page at a time (see [`entries_page`]): pages read while others
    /// write may each see a different moment, but every entry is whole.
    pub async fn entries(
        &self,
        mut skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        let skip_damaged = skip.is_some();
        let mut all = Vec::new();
        let mut after: Option<IVec> = None;
        loop {
            let from = after.clone();
            let (entries, damaged, next) = self
                .run(
                    |b| entries_page(b, skip_damaged, from.as_deref()),
                    |ns| {
                        Ok(Request::EntriesPage {
                            ns,
                            skip_damaged,
                            after: from.as_ref().map(|key| ByteBuf::from(key.to_vec())),
                        })
                    },
                    |response| match response {
                        Response::Page {
                            entries,
                            damaged,
                            next,
                        } => Some(self.page(entries, damaged, next, from.as_deref())),
                        _ => None,
                    },
                )
                .await?;
            if let Some(sink) = skip.as_deref_mut() {
                for (key, error) in damaged {
                    sink(key, error);
                }
            }
            all.extend(entries);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// A page as the holder sent it, checked: entries in order after `after`, and a `next`
    /// that is its last key (a holder that lied could otherwise keep a reader going round
    /// forever).
    pub(super) fn page(
        &self,
        entries: Vec<WireEntry>,
        damaged: Vec<(ByteBuf, Error)>,
        next: Option<ByteBuf>,
        after: Option<&[u8]>,
    ) -> Result<Page> {
        let past = |key: &[u8]| after.is_none_or(|after| key > after);
        if !entries.first().is_none_or(|e| past(&e.key)) {
            return Err(self.bad_answer("a page that does not start after the last one"));
        }
        // A page ends at an entry it holds, so the next starts past it.
        if next.is_some()
            && next.as_ref().map(|k| k.as_slice()) != entries.last().map(|e| &e.key[..])
        {
            return Err(self.bad_answer("a page that does not end where it says"));
        }
        let entries = self.all_entries(entries)?;
        let damaged = damaged
            .into_iter()
            .map(|(key, error)| (IVec::from(key.into_vec()), error))
            .collect();
        Ok((entries, damaged, next.map(|key| IVec::from(key.into_vec()))))
    }

    pub async fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        self.write(
            || Wrote::Everything,
            |b| b.replace_all(entries),
            |ns| {
                let entries = entries
                    .iter()
                    .map(|(key, entry)| WireEntry::from_entry(key, entry))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Request::ReplaceAll { ns, entries })
            },
            done,
        )
        .await
    }

    pub async fn stage_begin(&self) -> Result<u64> {
        self.run(
            |b| b.stage_begin().map(Option::unwrap_or_default),
            |ns| Ok(Request::StageBegin { ns }),
            |response| match response {
                Response::Staged(stage) => Some(Ok(stage)),
                _ => None,
            },
        )
        .await
    }

    pub async fn stage_put(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        self.run(
            |b| b.stage_put(stage, entries),
            |ns| wire::encode_stage_put(&ns, stage, entries),
            done,
        )
        .await
    }

    /// A commit whose stage is gone may have been sent before, its answer lost with the
    /// holder that wrote it: so its outcome is unknown.
    pub async fn stage_commit(&self, stage: u64) -> Result<()> {
        self.write(
            || Wrote::Everything,
            |b| b.stage_commit(stage),
            |ns| Ok(Request::StageCommit { ns, stage }),
            done,
        )
        .await
        .map_err(|error| match error {
            Error::Storage { ref detail, .. } if detail == STAGE_GONE => Error::Unknown {
                source: Box::new(error),
                partly: false,
            },
            error => error,
        })
    }

    pub async fn stage_drop(&self, stage: u64) -> Result<()> {
        self.run(
            |b| b.stage_drop(stage),
            |ns| Ok(Request::StageDrop { ns, stage }),
            done,
        )
        .await
    }

    /// Makes every write so far durable. Fails with [`Error::Lost`] while a write that a
    /// holder acknowledged may have been lost (see [`Ledger`]).
    pub async fn flush(&self) -> Result<()> {
        self.settle().await?;
        match self.ledger().loss(&self.store) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

//! What a holder does with each request: run it on the store itself, on this thread or, for
//! the heavy ones, on a blocking thread.

use super::*;

/// The most entries in a page of a namespace read through the holder...
pub(super) const PAGE_ENTRIES: usize = 4096;

/// ... and the bytes of values after which a page ends (one value may take it past).
pub(super) const PAGE_BYTES: usize = 16 << 20;

/// The most bytes of values a write carries and still runs on the I/O thread.
pub(super) const LIGHT_WRITE_MAX: usize = 64 * 1024;

/// Whether a request may take long enough (an fsync, a whole namespace, large values) that it
/// runs on a blocking thread rather than hold up the other connections and this process's
/// own network I/O.
pub(super) fn is_heavy(request: &Request) -> bool {
    match request {
        Request::Flush
        | Request::EntriesPage { .. }
        | Request::ReplaceAll { .. }
        | Request::StageCommit { .. }
        | Request::StageDrop { .. } => true,
        Request::PutAll { entries, .. } | Request::StagePut { entries, .. } => {
            entries.iter().map(|e| e.value.len()).sum::<usize>() > LIGHT_WRITE_MAX
        }
        Request::GetMany { keys, .. } => keys.len() > 1,
        _ => false,
    }
}

/// The entries of a write read in place, once each is one a `KV` could have written.
fn checked<'a>(entries: &[wire::EntryRef<'a>]) -> Result<Vec<PutEntry<'a>>> {
    entries.iter().map(wire::EntryRef::checked).collect()
}

/// Runs a write read in place (see [`wire::decode_put`]) on the store, as [`answer`] runs
/// the same request decoded.
pub(super) fn answer_put(store: &Path, config: &StoreConfig, put: PutRef<'_>) -> Response {
    let Some(lease) = Lease::existing(store) else {
        return Response::Gone;
    };
    let outcome = match put {
        PutRef::All { ns, entries } => backend(lease, ns, config)
            .and_then(|b| b.put_all(&checked(&entries)?).map(|()| Response::Done)),
        PutRef::Stage { ns, stage, entries } => backend(lease, ns, config).and_then(|b| {
            b.stage_put(stage, &checked(&entries)?)
                .map(|()| Response::Done)
        }),
    };
    outcome.unwrap_or_else(Response::Failed)
}

/// Runs one request on the store, if this process still has it open.
pub(super) fn answer(store: &Path, config: &StoreConfig, request: Request) -> Response {
    let Some(lease) = Lease::existing(store) else {
        return Response::Gone;
    };
    let outcome = match request {
        Request::Hello { .. } => Err(Error::Internal("a second hello".into())),
        Request::Flush => lease.flush().map(|()| Response::Done),
        Request::Namespaces => Ok(Response::Names(lease.namespaces())),
        Request::Served { after } => Ok(Response::Served(lease.served(after).unwrap_or_default())),
        Request::Get { ns, key } => backend(lease, &ns, config)
            .and_then(|b| b.get(&key, u64::MAX))
            .and_then(|entry| {
                entry
                    .map(|entry| WireEntry::from_owned(&key, entry))
                    .transpose()
                    .map(Response::Entry)
            }),
        Request::GetMany { ns, keys } => backend(lease, &ns, config).and_then(|b| {
            keys.iter()
                .map(|key| {
                    b.get(key, u64::MAX)?
                        .map(|entry| WireEntry::from_owned(key, entry))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()
                .map(Response::Entries)
        }),
        Request::PutAll { ns, entries } => backend(lease, &ns, config).and_then(|b| {
            let entries = entries
                .iter()
                .map(|entry| entry.check().and_then(|()| entry.as_put()))
                .collect::<Result<Vec<PutEntry<'_>>>>()?;
            b.put_all(&entries).map(|()| Response::Done)
        }),
        Request::Delete { ns, key } => {
            backend(lease, &ns, config).and_then(|b| b.delete(&key).map(|()| Response::Done))
        }
        Request::DeleteExpired { ns, keys, now_ms } => backend(lease, &ns, config).and_then(|b| {
            keys.iter()
                .try_for_each(|key| b.delete_expired(key, now_ms))
                .map(|()| Response::Done)
        }),
        Request::Scan {
            ns,
            prefix,
            after,
            want,
        } => backend(lease, &ns, config).and_then(|b| {
            let want = want.clamp(1, SCAN_BATCH_MAX) as usize;
            let mut items = Vec::new();
            let mut more = false;
            b.scan(
                &prefix,
                after.as_ref().map(|a| a.as_slice()),
                &mut |key, expiration, metadata| {
                    if items.len() == want {
                        more = true;
                        return false;
                    }
                    let metadata = metadata.map(|m| ByteBuf::from(m.to_vec()));
                    items.push((ByteBuf::from(key), expiration, metadata));
                    true
                },
            )?;
            Ok(Response::Scanned { items, more })
        }),
        Request::EntriesPage {
            ns,
            skip_damaged,
            after,
        } => backend(lease, &ns, config).and_then(|b| {
            let (found, damaged, next) =
                entries_page(&b, skip_damaged, after.as_ref().map(|a| a.as_slice()))?;
            let entries = found
                .into_iter()
                .map(|(key, entry)| WireEntry::from_owned(&key, entry))
                .collect::<Result<Vec<_>>>()?;
            let damaged = damaged
                .into_iter()
                .map(|(key, error)| (ByteBuf::from(key.to_vec()), error))
                .collect();
            let next = next.map(|key| ByteBuf::from(key.to_vec()));
            Ok(Response::Page {
                entries,
                damaged,
                next,
            })
        }),
        Request::StageBegin { ns } => backend(lease, &ns, config)
            .and_then(|b| b.stage_begin())
            .map(|stage| Response::Staged(stage.unwrap_or_default())),
        Request::StagePut { ns, stage, entries } => backend(lease, &ns, config).and_then(|b| {
            let entries = entries
                .iter()
                .map(|entry| entry.check().and_then(|()| entry.as_put()))
                .collect::<Result<Vec<PutEntry<'_>>>>()?;
            b.stage_put(stage, &entries).map(|()| Response::Done)
        }),
        Request::StageCommit { ns, stage } => backend(lease, &ns, config)
            .and_then(|b| b.stage_commit(stage))
            .map(|()| Response::Done),
        Request::StageDrop { ns, stage } => backend(lease, &ns, config)
            .and_then(|b| b.stage_drop(stage))
            .map(|()| Response::Done),
        Request::ReplaceAll { ns, entries } => backend(lease, &ns, config).and_then(|b| {
            entries.iter().try_for_each(WireEntry::check)?;
            let entries: Vec<(IVec, Entry)> =
                entries.into_iter().map(WireEntry::into_entry).collect();
            b.replace_all(&entries).map(|()| Response::Done)
        }),
    };
    outcome.unwrap_or_else(Response::Failed)
}

/// A page of entries, the damaged ones left out, and the key after which the next starts.
pub(super) type Page = (Entries, Vec<(IVec, Error)>, Option<IVec>);

/// A page of a namespace's entries as a holder sends it: after `after`, up to
/// [`PAGE_ENTRIES`] entries and, past the first, [`PAGE_BYTES`] bytes of values, so that
/// reading a namespace of any size through the holder costs it a page's memory at a time.
/// The page, the damaged entries left out (with `skip_damaged`), and the key to go on after.
pub(super) fn entries_page(
    b: &SledBackend,
    skip_damaged: bool,
    after: Option<&[u8]>,
) -> Result<Page> {
    let mut damaged = Vec::new();
    let mut sink = |key: IVec, error: Error| damaged.push((key, error));
    let (mut count, mut bytes) = (0, 0);
    let (entries, next) = b.entries_after(
        after,
        skip_damaged.then_some(&mut sink as &mut DamageSink<'_>),
        |entry| {
            count += 1;
            bytes += entry.value.bytes().map_or(0, <[u8]>::len);
            count == PAGE_ENTRIES || bytes >= PAGE_BYTES
        },
    )?;
    Ok((entries, damaged, next))
}

/// Namespace `ns` of the open store: a name inside the database, checked as any other.
pub(super) fn backend(lease: Lease, ns: &str, config: &StoreConfig) -> Result<SledBackend> {
    crate::store::check_namespace_name(ns)?;
    SledBackend::with_lease(lease, ns, config)
}

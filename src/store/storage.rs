//! Where a namespace's data lives: a local backend (memory or sled), answered on the calling
//! thread, or a remote one (Redis, a store another process holds), answered with futures. The
//! namespace logic runs the same `async` code on both; for a local backend every future is
//! ready when first polled, so [`Storage::local`] runs it in-line with no runtime and no
//! allocation.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::types::Bytes;

use super::backend::{Backend, Capabilities, RemoteBackend};
use super::error::{Error, Result};
use super::types::{DamageSink, Entry, EntryMap, PutEntry, ScanVisitor, ServedPage};

/// A namespace's backend.
pub enum Storage {
    /// Memory or sled: every call completes on the calling thread.
    Local(Box<dyn Backend>),
    /// Network or socket I/O, awaited on tokio: a Redis or Valkey server or cluster, or a
    /// sled store that another process holds.
    Remote(Box<dyn RemoteBackend>),
}

/// Runs `work`, an operation on a local namespace, on the calling thread: polled once, as it
/// never waits (a local backend's futures hold no await point that can pend).
pub fn complete_local<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    match pin!(work).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(Error::Internal(
            "an operation on a local namespace waited".into(),
        )),
    }
}

/// Requests carrying more than this many bytes of values are made on the runtime, not on the
/// JS thread (see [`super::caller`]): they copy their values.
const CALLER_BYTES_MAX: usize = 64 * 1024;

async fn off_caller_if_large(entries: &[PutEntry<'_>]) {
    let bytes: usize = entries.iter().map(|e| e.value.len()).sum();
    if bytes > CALLER_BYTES_MAX {
        super::caller::off_caller().await;
    }
}

impl Storage {
    /// See [`Backend::share_map`].
    pub fn share_map(&self) -> Option<Arc<EntryMap>> {
        match self {
            Storage::Local(backend) => backend.share_map(),
            Storage::Remote(_) => None,
        }
    }

    /// See [`Backend::adopt_map`].
    pub fn adopt_map(&self, map: Arc<EntryMap>) -> bool {
        match self {
            Storage::Local(backend) => backend.adopt_map(map),
            Storage::Remote(_) => false,
        }
    }

    /// What the backend guarantees.
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Storage::Local(backend) => backend.capabilities(),
            Storage::Remote(remote) => remote.capabilities(),
        }
    }

    /// Whether calls complete in-line (see [`Storage::local`]).
    pub fn is_local(&self) -> bool {
        matches!(self, Storage::Local(_))
    }

    /// Runs `work` (a namespace operation) to completion on the calling thread. Only a local
    /// backend can: on a remote one this refuses rather than block a thread on the network.
    pub fn local<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        if !self.is_local() {
            return Err(Error::Internal(
                "a Redis or shared namespace was used synchronously; its operations must be \
                 awaited"
                    .into(),
            ));
        }
        complete_local(work)
    }

    pub async fn get(&self, key: &[u8], max_len: u64) -> Result<Option<Entry>> {
        match self {
            Storage::Local(backend) => backend.get(key, max_len),
            Storage::Remote(remote) => remote.get(key).await,
        }
    }

    /// Reads every key of `keys`, in order.
    pub async fn get_many(&self, keys: &[&[u8]], max_len: u64) -> Result<Vec<Option<Entry>>> {
        match self {
            Storage::Local(backend) => keys.iter().map(|key| backend.get(key, max_len)).collect(),
            Storage::Remote(remote) => remote.get_many(keys).await,
        }
    }

    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.put_all(entries),
            Storage::Remote(remote) => {
                off_caller_if_large(entries).await;
                remote.put_all(entries).await
            }
        }
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.delete(key),
            Storage::Remote(remote) => remote.delete(key).await,
        }
    }

    /// Removes each key of `keys` whose entry is expired at `now_ms` (see
    /// [`Backend::delete_expired`]).
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        match self {
            Storage::Local(backend) => keys
                .iter()
                .try_for_each(|key| backend.delete_expired(key, now_ms)),
            Storage::Remote(remote) => remote.delete_expired(keys, now_ms).await,
        }
    }

    /// As [`Backend::scan`]; `want` says how many entries the caller expects to visit, so
    /// that a remote backend can fetch them in one round trip.
    pub async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        want: usize,
        visit: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.scan(prefix, after, visit),
            Storage::Remote(remote) => remote.scan(prefix, after, want, visit).await,
        }
    }

    pub async fn entries(&self, skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(Bytes, Entry)>> {
        match self {
            Storage::Local(backend) => backend.entries(skip),
            Storage::Remote(remote) => remote.entries(skip).await,
        }
    }

    pub async fn replace_all(&self, entries: &[(Bytes, Entry)]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.replace_all(entries),
            Storage::Remote(remote) => {
                super::caller::off_caller().await;
                remote.replace_all(entries).await
            }
        }
    }

    /// Deletes every entry, and whatever else the backend keeps for the namespace.
    pub async fn remove(&self) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.replace_all(&[]),
            Storage::Remote(remote) => remote.remove().await,
        }
    }

    /// See [`Backend::stage_begin`].
    pub async fn stage_begin(&self) -> Result<Option<u64>> {
        match self {
            Storage::Local(backend) => backend.stage_begin(),
            Storage::Remote(remote) => remote.stage_begin().await,
        }
    }

    pub async fn stage_put(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_put(stage, entries),
            Storage::Remote(remote) => {
                off_caller_if_large(entries).await;
                remote.stage_put(stage, entries).await
            }
        }
    }

    pub async fn stage_commit(&self, stage: u64) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_commit(stage),
            Storage::Remote(remote) => remote.stage_commit(stage).await,
        }
    }

    pub async fn stage_drop(&self, stage: u64) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_drop(stage),
            Storage::Remote(remote) => remote.stage_drop(stage).await,
        }
    }

    pub async fn namespaces(&self) -> Result<Option<Vec<String>>> {
        match self {
            Storage::Local(backend) => backend.namespaces(),
            Storage::Remote(remote) => remote.namespaces().await,
        }
    }

    pub async fn served(&self, after: u64) -> Result<Option<ServedPage>> {
        match self {
            Storage::Local(backend) => backend.served(after),
            Storage::Remote(remote) => remote.served(after).await,
        }
    }

    pub async fn flush(&self) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.flush(),
            Storage::Remote(remote) => remote.flush().await,
        }
    }
}

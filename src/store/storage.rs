//! Where a namespace's data lives: a local backend (memory or sled), answered on the calling
//! thread, or a Redis server, answered over the network. The namespace logic runs the same
//! `async` code on both; for a local backend every future is ready when first polled, so
//! [`Storage::local`] runs it in-line with no runtime and no allocation.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use sled::IVec;

use super::backend::{Backend, MemoryBackend};
use super::error::{Error, Result};
use super::redis_backend::RedisBackend;
#[cfg(unix)]
use super::share::SharedBackend;
use super::types::{DamageSink, Entry, PutEntry, ScanVisitor};

/// A namespace's backend.
pub enum Storage {
    /// Memory or sled: every call completes on the calling thread.
    Local(Box<dyn Backend>),
    /// A Redis or Valkey server or cluster: every call is network I/O, awaited on tokio.
    Remote(Box<RedisBackend>),
    /// A sled store that another process holds: every call goes through its socket, or, once
    /// this process has taken the store over, to the store itself (awaited on tokio all the
    /// same).
    #[cfg(unix)]
    Shared(Box<SharedBackend>),
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

impl Storage {
    /// The memory backend, if this is one.
    pub fn memory(&self) -> Option<&MemoryBackend> {
        match self {
            Storage::Local(backend) => backend.as_memory(),
            _ => None,
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
            Storage::Remote(redis) => Box::pin(redis.get(key)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.get(key)).await,
        }
    }

    /// Reads every key of `keys`, in order.
    pub async fn get_many(&self, keys: &[&[u8]], max_len: u64) -> Result<Vec<Option<Entry>>> {
        match self {
            Storage::Local(backend) => keys.iter().map(|key| backend.get(key, max_len)).collect(),
            Storage::Remote(redis) => Box::pin(redis.get_many(keys)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.get_many(keys)).await,
        }
    }

    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.put_all(entries),
            Storage::Remote(redis) => Box::pin(redis.put_all(entries)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.put_all(entries)).await,
        }
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.delete(key),
            Storage::Remote(redis) => Box::pin(redis.delete(key)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.delete(key)).await,
        }
    }

    /// Removes each key of `keys` whose entry is expired at `now_ms` (see
    /// [`Backend::delete_expired`]).
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        match self {
            Storage::Local(backend) => keys
                .iter()
                .try_for_each(|key| backend.delete_expired(key, now_ms)),
            Storage::Remote(redis) => Box::pin(redis.delete_expired(keys, now_ms)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.delete_expired(keys, now_ms)).await,
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
            Storage::Remote(redis) => Box::pin(redis.scan(prefix, after, want, visit)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.scan(prefix, after, want, visit)).await,
        }
    }

    pub async fn entries(&self, skip: Option<&mut DamageSink<'_>>) -> Result<Vec<(IVec, Entry)>> {
        match self {
            Storage::Local(backend) => backend.entries(skip),
            Storage::Remote(redis) => Box::pin(redis.entries(skip)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.entries(skip)).await,
        }
    }

    pub async fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.replace_all(entries),
            Storage::Remote(redis) => Box::pin(redis.replace_all(entries)).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.replace_all(entries)).await,
        }
    }

    /// Deletes every entry and, on Redis, the namespace's layout too.
    pub async fn remove(&self) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.replace_all(&[]),
            Storage::Remote(redis) => Box::pin(redis.remove()).await,
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.replace_all(&[])).await,
        }
    }

    /// See [`Backend::stage_begin`]: Redis does not stage.
    pub async fn stage_begin(&self) -> Result<Option<u64>> {
        match self {
            Storage::Local(backend) => backend.stage_begin(),
            Storage::Remote(_) => Ok(None),
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.stage_begin()).await.map(Some),
        }
    }

    pub async fn stage_put(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_put(stage, entries),
            Storage::Remote(_) => Err(not_staged()),
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.stage_put(stage, entries)).await,
        }
    }

    pub async fn stage_commit(&self, stage: u64) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_commit(stage),
            Storage::Remote(_) => Err(not_staged()),
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.stage_commit(stage)).await,
        }
    }

    pub async fn stage_drop(&self, stage: u64) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.stage_drop(stage),
            Storage::Remote(_) => Ok(()),
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.stage_drop(stage)).await,
        }
    }

    pub async fn flush(&self) -> Result<()> {
        match self {
            Storage::Local(backend) => backend.flush(),
            // An answered write is on the server; how durable it is there is the server's
            // configuration (appendfsync).
            Storage::Remote(_) => Ok(()),
            #[cfg(unix)]
            Storage::Shared(shared) => Box::pin(shared.flush()).await,
        }
    }
}

fn not_staged() -> Error {
    Error::Internal("Redis does not stage writes".into())
}

//! Work for the libuv thread pool: each task runs a core call off the JS thread (catching
//! panics) and resolves its result, or a [`Failure`] that keeps the error's code.

use std::sync::Arc;

use napi::bindgen_prelude::*;

use super::convert::{bulk_entries, js_pair, owned_pair, text_of, BulkEntries, OwnedPair};
use super::{guarded, Failure, NativeSnapshot};
use crate::store::{self, Namespace};

/// Pool work that yields nothing but may fail: writes of large values, bulk writes, flush,
/// close, restore, clear.
pub struct Chore {
    work: Option<Box<dyn FnOnce() -> store::Result<()> + Send>>,
}

pub(super) fn chore(work: impl FnOnce() -> store::Result<()> + Send + 'static) -> AsyncTask<Chore> {
    AsyncTask::new(Chore {
        work: Some(Box::new(work)),
    })
}

impl Task for Chore {
    type Output = store::Result<()>;
    type JsValue = Option<Failure>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(self.work.take().map_or(Ok(()), guarded))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output.err().map(Failure::from))
    }
}

/// A dump of every live entry.
pub struct DumpTask {
    pub(super) namespace: Arc<Namespace>,
    pub(super) now: i64,
    pub(super) skip_damaged: bool,
}

/// One dumped entry: key, value, expiration, metadata.
type Dumped = (String, Buffer, Option<f64>, Option<String>);
/// An entry a dump left out: key, and why.
type Damaged = Vec<(String, String)>;

impl Task for DumpTask {
    type Output = store::Result<(Vec<(String, Vec<u8>, Option<f64>, Option<String>)>, Damaged)>;
    type JsValue = Either<(Vec<Dumped>, Damaged), Failure>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let mut damaged = Vec::new();
        let mut skip = |key: sled::IVec, error: store::Error| {
            damaged.push((text_of(&key), error.to_string()));
        };
        let skip: Option<&mut store::DamageSink<'_>> = if self.skip_damaged {
            Some(&mut skip)
        } else {
            None
        };
        let entries = guarded(|| self.namespace.dump(self.now, skip));
        Ok(entries.map(|entries| {
            let entries = entries
                .into_iter()
                .filter_map(|(key, entry)| {
                    let expiration = entry.expiration.map(|seconds| seconds as f64);
                    let (value, metadata) = owned_pair(entry, false)?;
                    let Either::B(bytes) = value else {
                        return None;
                    };
                    Some((text_of(&key), bytes, expiration, metadata))
                })
                .collect();
            (entries, damaged)
        }))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Err(error) => Either::B(error.into()),
            Ok((entries, damaged)) => Either::A((
                entries
                    .into_iter()
                    .map(|(key, bytes, expiration, metadata)| {
                        (key, bytes.into(), expiration, metadata)
                    })
                    .collect(),
                damaged,
            )),
        })
    }
}

/// A snapshot being taken.
pub struct SnapshotTask {
    pub(super) namespace: Arc<Namespace>,
}

impl Task for SnapshotTask {
    type Output = store::Result<store::Snapshot>;
    type JsValue = Either<NativeSnapshot, Failure>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(guarded(|| self.namespace.snapshot()))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Err(error) => Either::B(error.into()),
            Ok(snapshot) => Either::A(NativeSnapshot {
                inner: Arc::new(snapshot),
            }),
        })
    }
}

/// A read of a large value.
pub struct ReadTask {
    pub(super) namespace: Arc<Namespace>,
    pub(super) key: String,
    pub(super) as_text: bool,
    pub(super) now: i64,
}

impl Task for ReadTask {
    type Output = store::Result<Option<OwnedPair>>;
    type JsValue = Either<Option<(Either<String, Buffer>, Option<String>)>, Failure>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let entry = guarded(|| self.namespace.get(&self.key, None, u64::MAX, self.now));
        Ok(entry.map(|entry| entry.and_then(|entry| owned_pair(entry, self.as_text))))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Err(error) => Either::B(error.into()),
            Ok(pair) => Either::A(pair.map(js_pair)),
        })
    }
}

/// A bulk read of large values.
pub struct BulkTask {
    pub(super) namespace: Arc<Namespace>,
    pub(super) keys: Vec<String>,
    pub(super) kind: Option<String>,
    pub(super) cache_ttl: Option<i32>,
    pub(super) now: i64,
}

impl Task for BulkTask {
    type Output = store::Result<BulkEntries>;
    type JsValue = Either<BulkEntries, Failure>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let entries = guarded(|| {
            self.namespace.get_bulk(
                &self.keys,
                self.kind.as_deref(),
                self.cache_ttl,
                u64::MAX,
                self.now,
            )
        });
        Ok(entries.map(|entries| bulk_entries(entries.unwrap_or_default())))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(match output {
            Err(error) => Either::B(error.into()),
            Ok(entries) => Either::A(entries),
        })
    }
}

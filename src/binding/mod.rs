//! The Node-API face of the core: converts types, maps errors, and picks in-line or the
//! libuv thread pool. No KV semantics live here.
//!
//! Every error crosses as a JS `Error` whose `code` says what JS should throw: `"TypeError"`,
//! `"Error"` (production's own errors) or an `ERR_KV_*` code. `index.js` rebuilds it in the
//! caller's realm. Pool tasks cannot set a code on a rejection, so they resolve a
//! [`Failure`] object instead, which `index.js` turns into the same error.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;

use crate::backends::redis::{self, RedisConfig, TlsConfig};
#[cfg(unix)]
use crate::backends::shared;
use crate::backends::sled::{self, StoreConfig};
use crate::store::{self, BulkEntry, CacheStatus, Namespace, Op, PutOptions, Value};

mod convert;
mod error;
mod held;
mod read;
mod settle;
mod staged;
mod tasks;
mod text;
mod tools;
mod whole;
mod write;

use convert::{
    bulk_entries, js_pair, js_text, js_value, list_page, napi_failure, owned_pair, text_of,
    BulkEntries, JsValueOf, ListPage, OwnedPair, Read, Text,
};
use error::js_error;
pub(crate) use error::{guarded, Result};
use tasks::{nothing, start, Pending};

/// Values longer than this many bytes are read and written on the libuv thread pool, so no
/// call holds the event loop for long. index.js routes writes by the same bound.
#[napi]
pub const IN_LINE_MAX: u32 = 256 * 1024;

/// The largest value `put` takes, in bytes; index.js stops buffering a stream past it.
#[napi]
pub const MAX_VALUE_SIZE: u32 = store::limits::MAX_VALUE_SIZE as u32;

/// The most keys a bulk read takes; index.js converts no more than one past it, however long
/// the array, before the core refuses it.
#[napi]
pub const MAX_BULK_KEYS: u32 = store::limits::MAX_BULK_KEYS as u32;

/// The most partitions a Redis namespace can be split into.
#[napi]
pub const MAX_PARTITIONS: u32 = redis::MAX_PARTITIONS;

/// The most keys a `list` page holds, and so the largest `listPageCap`.
#[napi]
pub const MAX_LIST_KEYS: u32 = store::limits::MAX_LIST_KEYS as u32;

fn put_options(
    expiration: Option<i32>,
    expiration_ttl: Option<i32>,
    metadata: Option<String>,
) -> PutOptions {
    PutOptions {
        expiration,
        expiration_ttl,
        metadata,
    }
}

/// The entries of a bulk write as index.js hands them over: parallel arrays of keys, values,
/// expirations, TTLs and metadata.
type PutColumns = (
    Vec<String>,
    Vec<held::Held>,
    Vec<Option<i32>>,
    Vec<Option<i32>>,
    Vec<Option<String>>,
);

fn bulk_put_entries(columns: &PutColumns) -> Vec<BulkEntry<'_>> {
    let (keys, values, expirations, ttls, metadata) = columns;
    keys.iter()
        .zip(values)
        .zip(expirations.iter().zip(ttls))
        .zip(metadata)
        .map(|(((key, value), (expiration, ttl)), metadata)| BulkEntry {
            key,
            value,
            options: put_options(*expiration, *ttl, metadata.clone()),
        })
        .collect()
}

fn now_ms(now: f64) -> i64 {
    now.floor() as i64
}

/// Checks a key as production's runtime does for `put`, before it looks at the value.
#[napi]
pub fn validate_put_key(key: String) -> Result<()> {
    store::validate_key(Op::Put, &key).map_err(js_error)
}

/// Runs every check of `put` for a value of `value_len` bytes without the value itself: how
/// an oversized stream gets its error without being held in memory.
#[napi]
pub fn check_put(
    key: String,
    expiration: Option<i32>,
    expiration_ttl: Option<i32>,
    metadata: Option<String>,
    value_len: f64,
    now: f64,
) -> Result<()> {
    let options = put_options(expiration, expiration_ttl, metadata);
    store::check_put(&key, &options, value_len as usize, now_ms(now))
        .map(drop)
        .map_err(js_error)
}

/// Makes every write acknowledged so far, in every store this process has open, durable.
/// Runs on the calling thread: for a process about to end, which has nothing else to do.
#[napi]
pub fn flush_all_stores() -> Result<()> {
    guarded(sled::flush_all).map_err(js_error)
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn flush_at_exit() {
    // Nothing can be reported at exit; a failed flush leaves what sled's background flush
    // already wrote.
    let _ = guarded(sled::flush_all);
}

/// The runtime that remote operations wait on (see [`settle`]).
static RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();

/// The process-wide registry is a static, which Rust never drops, and `process.exit()` skips
/// Node-API cleanup hooks. A C `atexit` handler runs on every normal exit, so writes acknowledged
/// before it are flushed.
#[napi_derive::module_init]
fn init() {
    // SAFETY: `flush_at_exit` is a plain function that never unwinds (`guarded` catches panics).
    unsafe {
        atexit(flush_at_exit);
    }
    // Redis I/O needs little: one worker thread drives every connection of the process.
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kv-binding-io")
        .enable_all()
        .build()
    {
        // The same runtime serves the sled stores this process holds to other processes.
        #[cfg(unix)]
        shared::set_runtime(runtime.handle().clone());
        let _ = RUNTIME.set(runtime.handle().clone());
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}

/// [`store::Capabilities`], as JS reads them.
#[napi(object)]
pub struct BackendCapabilities {
    pub in_line: bool,
    pub persistent: bool,
    pub shared: bool,
    pub atomic_bulk_writes: bool,
    pub durable_flush: bool,
    pub staged_writes: bool,
    pub shared_snapshots: bool,
}

/// One namespace, on any backend; `None` once closed.
#[napi]
pub struct NativeNamespace {
    inner: Option<Arc<Namespace>>,
}

// Declared after the struct: napi must have seen it to expand the factories.
mod open;

#[napi]
impl NativeNamespace {
    /// Starts `work` on this namespace off the JS thread (see [`tasks::start`]).
    fn off_thread<'env, T, V, F>(
        &self,
        env: &'env Env,
        work: impl FnOnce(Arc<Namespace>) -> F,
        finish: fn(T) -> V,
    ) -> Result<Pending<'env, T, V>>
    where
        F: std::future::Future<Output = store::Result<T>> + Send + 'static,
        T: Send + 'static,
        V: ToNapiValue + TypeName + 'static,
    {
        let namespace = self.namespace()?;
        start(env, namespace, work(namespace.clone()), finish)
    }

    /// What the backend guarantees (see [`store::Capabilities`]); all false once closed.
    #[napi(getter)]
    pub fn capabilities(&self) -> BackendCapabilities {
        let found = self
            .inner
            .as_ref()
            .map(|namespace| namespace.capabilities());
        let store::Capabilities {
            in_line,
            persistent,
            shared,
            atomic_bulk_writes,
            durable_flush,
            staged_writes,
            shared_snapshots,
        } = found.unwrap_or_default();
        BackendCapabilities {
            in_line,
            persistent,
            shared,
            atomic_bulk_writes,
            durable_flush,
            staged_writes,
            shared_snapshots,
        }
    }

    /// Simulates eventual consistency: this handle becomes one location, with a read cache of
    /// its own; all its locations cache up to `budget` bytes together (a default without).
    /// Called once, right after the handle is made.
    #[napi]
    pub fn make_eventually_consistent(&mut self, budget: Option<f64>) -> Result<()> {
        let namespace = self
            .inner
            .take()
            .ok_or_else(|| js_error(store::Error::Closed))?;
        match Arc::try_unwrap(namespace) {
            Ok(namespace) => {
                let namespace = match budget {
                    Some(budget) => namespace.eventually_consistent_within(budget as usize),
                    None => namespace.eventually_consistent(),
                };
                self.inner = Some(Arc::new(namespace));
                Ok(())
            }
            Err(namespace) => {
                self.inner = Some(namespace);
                Err(js_error(store::Error::Internal(
                    "consistency can only be chosen before a namespace is used".into(),
                )))
            }
        }
    }

    /// The same namespace seen from another location: the same data, and, when consistency is
    /// simulated, a read cache of its own.
    #[napi]
    pub fn at_new_location(&self) -> Result<NativeNamespace> {
        Ok(Self {
            inner: Some(Arc::new(self.namespace()?.at_new_location())),
        })
    }

    fn namespace(&self) -> Result<&Arc<Namespace>> {
        self.inner
            .as_ref()
            .ok_or_else(|| js_error(store::Error::Closed))
    }
}

/// One dumped entry as the job makes it: key, value, expiration, metadata.
type Dump = (Vec<(String, Vec<u8>, Option<f64>, Option<String>)>, Damaged);
/// One dumped entry as JS gets it.
type Dumped = (String, Buffer, Option<f64>, Option<String>);
/// An entry a dump left out: key, and why.
type Damaged = Vec<(String, String)>;
/// A value and its metadata read in-line, and where it was read from when consistency is
/// simulated (without, the array is one element shorter: one conversion fewer per read).
type InLineRead<'env> = Either<
    (JsValueOf<'env>, Option<JsString<'env>>),
    (JsValueOf<'env>, Option<JsString<'env>>, &'static str),
>;
/// The same, read off the JS thread.
type OwnedRead = (OwnedPair, Option<CacheStatus>);
/// The same, as JS gets it from a pool task.
type JsRead = (
    Either<text::OwnedText, Buffer>,
    Option<String>,
    Option<String>,
);

//! The Node-API face of the core: converts types, maps errors, and picks in-line or the
//! libuv thread pool. No KV semantics live here.
//!
//! Every error crosses as a JS `Error` whose `code` says what JS should throw: `"TypeError"`,
//! `"Error"` (production's own errors) or an `ERR_KV_*` code. `index.js` rebuilds it in the
//! caller's realm. Pool tasks cannot set a code on a rejection, so they resolve a
//! [`Failure`] object instead, which `index.js` turns into the same error.

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;

use crate::store::{self, BulkEntry, Namespace, Op, PutOptions, StoreConfig, Value};

mod convert;
mod tasks;

use convert::{
    bulk_entries, js_text, js_value, list_page, napi_failure, BulkEntries, JsValueOf, ListPage,
    Read, Text,
};
use tasks::{chore, BulkTask, Chore, DumpTask, ReadTask, SnapshotTask};

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

/// The most keys a `list` page holds, and so the largest `listPageCap`.
#[napi]
pub const MAX_LIST_KEYS: u32 = store::limits::MAX_LIST_KEYS as u32;

pub(crate) type Result<T> = napi::Result<T, &'static str>;

fn js_error(error: store::Error) -> napi::Error<&'static str> {
    napi::Error::new(error_code(&error), error.to_string())
}

fn error_code(error: &store::Error) -> &'static str {
    match error.code() {
        Some(code) => code,
        None if error.is_type_error() => "TypeError",
        None => "Error",
    }
}

/// A failure reported by a pool task, resolved rather than rejected so it keeps its code.
#[napi(object)]
pub struct Failure {
    pub kv_error_code: String,
    pub message: String,
}

impl From<store::Error> for Failure {
    fn from(error: store::Error) -> Self {
        Self {
            kv_error_code: error_code(&error).to_owned(),
            message: error.to_string(),
        }
    }
}

/// Runs `work`, turning a panic into an error so it can never abort the process.
pub(crate) fn guarded<T>(work: impl FnOnce() -> store::Result<T>) -> store::Result<T> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        Err(store::Error::Internal(
            crate::store::panic_message(panic.as_ref()).to_string(),
        ))
    })
}

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
    guarded(store::flush_all).map_err(js_error)
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::os::raw::c_int;
}

extern "C" fn flush_at_exit() {
    // Nothing can be reported at exit; a failed flush leaves what sled's background flush
    // already wrote.
    let _ = guarded(store::flush_all);
}

/// The process-wide registry is a static, which Rust never drops, and `process.exit()` skips
/// Node-API cleanup hooks. A C `atexit` handler runs on every normal exit, so writes acknowledged
/// before it are flushed.
#[napi_derive::module_init]
fn flush_stores_at_exit() {
    // SAFETY: `flush_at_exit` is a plain function that never unwinds (`guarded` catches panics).
    unsafe {
        atexit(flush_at_exit);
    }
}

/// One namespace, in memory or in a sled store.
#[napi]
pub struct NativeNamespace {
    inner: Option<Arc<Namespace>>,
}

#[napi]
impl NativeNamespace {
    /// An isolated namespace in memory. `listPageCap` caps the keys a `list` page holds.
    #[napi(factory)]
    pub fn in_memory(list_page_cap: Option<u32>) -> Self {
        let namespace =
            Namespace::in_memory().with_list_page_cap(list_page_cap.map(|c| c as usize));
        Self {
            inner: Some(Arc::new(namespace)),
        }
    }

    /// Namespace `name` of the sled store in directory `path`.
    #[napi(factory, catch_unwind)]
    pub fn open(
        path: String,
        name: String,
        cache_capacity: Option<f64>,
        flush_every_ms: Option<f64>,
        list_page_cap: Option<u32>,
    ) -> Result<Self> {
        let mut config = StoreConfig::default();
        if let Some(bytes) = cache_capacity {
            config = config.with_cache_budget(bytes as u64);
        }
        if let Some(ms) = flush_every_ms {
            config.flush_every_ms = (ms > 0.0).then_some(ms as u64);
        }
        let namespace = guarded(|| Namespace::open(Path::new(&path), &name, &config))
            .map_err(js_error)?
            .with_list_page_cap(list_page_cap.map(|cap| cap as usize));
        Ok(Self {
            inner: Some(Arc::new(namespace)),
        })
    }

    fn namespace(&self) -> Result<&Arc<Namespace>> {
        self.inner
            .as_ref()
            .ok_or_else(|| js_error(store::Error::Closed))
    }

    fn read(&self, key: &str, cache_ttl: Option<i32>, now: f64) -> Result<Option<Value>> {
        let namespace = self.namespace()?;
        guarded(|| namespace.get(key, cache_ttl, u64::from(IN_LINE_MAX), now_ms(now)))
            .map(|entry| entry.map(|entry| entry.value))
            .map_err(js_error)
    }

    /// Reads `key` as text: a string, `null` when missing, or the value's length when it is too
    /// long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_text<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Read<JsString<'env>>> {
        Ok(match self.read(&key, cache_ttl, now)? {
            None => Either3::B(Null),
            Some(Value::Deferred { len }) => Either3::C(len as f64),
            Some(value) => Either3::A(js_text(env, value.bytes().unwrap_or_default())?),
        })
    }

    /// Reads `key` as bytes: a Buffer, `null` when missing, or the value's length when it is
    /// too long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_bytes<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Read<BufferSlice<'env>>> {
        Ok(match self.read(&key, cache_ttl, now)? {
            None => Either3::B(Null),
            Some(Value::Deferred { len }) => Either3::C(len as f64),
            Some(value) => {
                let bytes = value.bytes().unwrap_or_default();
                Either3::A(BufferSlice::copy_from(env, bytes).map_err(napi_failure)?)
            }
        })
    }

    /// Reads `key` with its metadata, both from one version of the entry: `[value, metadata]`
    /// (text or a Buffer; metadata JSON or `null`), `null` when missing, or the value's length
    /// when it is too long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_with_metadata<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        as_text: bool,
        now: f64,
    ) -> Result<Read<(JsValueOf<'env>, Option<JsString<'env>>)>> {
        let namespace = self.namespace()?;
        let entry = guarded(|| namespace.get(&key, cache_ttl, u64::from(IN_LINE_MAX), now_ms(now)))
            .map_err(js_error)?;
        let Some(entry) = entry else {
            return Ok(Either3::B(Null));
        };
        if let Value::Deferred { len } = entry.value {
            return Ok(Either3::C(len as f64));
        }
        let bytes = entry.value.bytes().unwrap_or_default();
        let metadata = entry
            .metadata
            .as_ref()
            .map(|m| js_text(env, m))
            .transpose()?;
        Ok(Either3::A((js_value(env, bytes, as_text)?, metadata)))
    }

    /// Reads `key` on the thread pool; resolves `[value, metadata]` (text when `asText`,
    /// otherwise a Buffer) or `null`.
    #[napi]
    pub fn read_async(&self, key: String, as_text: bool, now: f64) -> Result<AsyncTask<ReadTask>> {
        Ok(AsyncTask::new(ReadTask {
            namespace: self.namespace()?.clone(),
            key,
            as_text,
            now: now_ms(now),
        }))
    }

    /// Reads up to 100 keys as text: `[text, metadata]` or `null` per key, in request order,
    /// or `null` for the whole read when the values are too long to read in-line (then call
    /// `getBulkAsync`).
    #[napi(catch_unwind)]
    pub fn get_bulk(
        &self,
        keys: Vec<String>,
        kind: Option<String>,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Option<BulkEntries>> {
        let namespace = self.namespace()?;
        guarded(|| {
            namespace.get_bulk(
                &keys,
                kind.as_deref(),
                cache_ttl,
                u64::from(IN_LINE_MAX),
                now_ms(now),
            )
        })
        .map(|entries| entries.map(bulk_entries))
        .map_err(js_error)
    }

    /// `getBulk` on the thread pool, with no bound on value lengths.
    #[napi]
    pub fn get_bulk_async(
        &self,
        keys: Vec<String>,
        kind: Option<String>,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<AsyncTask<BulkTask>> {
        Ok(AsyncTask::new(BulkTask {
            namespace: self.namespace()?.clone(),
            keys,
            kind,
            cache_ttl,
            now: now_ms(now),
        }))
    }

    /// Lists up to `limit` keys (0 or less: 1000) that start with `prefix`, after `cursor`.
    #[napi(catch_unwind)]
    pub fn list<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        limit: i32,
        cursor: Option<String>,
        now: f64,
    ) -> Result<ListPage<'env>> {
        let namespace = self.namespace()?;
        let page = guarded(|| namespace.list(&prefix, limit, cursor.as_deref(), now_ms(now)))
            .map_err(js_error)?;
        list_page(env, page)
    }

    /// Writes a string value in-line.
    #[napi(catch_unwind)]
    pub fn put_text(
        &self,
        #[napi(ts_arg_type = "string")] key: Text,
        #[napi(ts_arg_type = "string")] value: Text,
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<()> {
        let options = put_options(expiration, expiration_ttl, metadata);
        let namespace = self.namespace()?;
        guarded(|| namespace.put(&key, value.as_bytes(), &options, now_ms(now))).map_err(js_error)
    }

    /// Writes a byte value in-line.
    #[napi(catch_unwind)]
    pub fn put_bytes(
        &self,
        #[napi(ts_arg_type = "string")] key: Text,
        value: &[u8],
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<()> {
        let options = put_options(expiration, expiration_ttl, metadata);
        let namespace = self.namespace()?;
        guarded(|| namespace.put(&key, value, &options, now_ms(now))).map_err(js_error)
    }

    /// Writes a byte value on the thread pool. The caller must not change `value` until the
    /// promise settles (index.js passes a private copy).
    #[napi]
    pub fn put_async(
        &self,
        key: String,
        value: Uint8Array,
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<AsyncTask<Chore>> {
        let namespace = self.namespace()?.clone();
        let options = put_options(expiration, expiration_ttl, metadata);
        Ok(chore(move || {
            namespace.put(&key, &value, &options, now_ms(now))
        }))
    }

    /// Writes many entries on the thread pool, all or none (`putMany` in the core). The
    /// arrays run in parallel, one element per entry.
    #[napi]
    pub fn put_many_async(
        &self,
        keys: Vec<String>,
        values: Vec<Buffer>,
        expirations: Vec<Option<i32>>,
        expiration_ttls: Vec<Option<i32>>,
        metadata: Vec<Option<String>>,
        now: f64,
    ) -> Result<AsyncTask<Chore>> {
        let namespace = self.namespace()?.clone();
        Ok(chore(move || {
            let entries: Vec<BulkEntry<'_>> = keys
                .iter()
                .zip(&values)
                .zip(expirations.into_iter().zip(expiration_ttls))
                .zip(metadata)
                .map(|(((key, value), (expiration, ttl)), metadata)| BulkEntry {
                    key,
                    value,
                    options: put_options(expiration, ttl, metadata),
                })
                .collect();
            namespace.put_many(&entries, now_ms(now))
        }))
    }

    /// Every live entry, read on the thread pool: `[entries, damaged]`, with
    /// `[key, value, expiration, metadata]` for each entry. A damaged entry fails the dump,
    /// unless `skipDamaged`: then it is left out and listed in `damaged` as
    /// `[key, message]`.
    #[napi]
    pub fn dump_async(&self, now: f64, skip_damaged: bool) -> Result<AsyncTask<DumpTask>> {
        Ok(AsyncTask::new(DumpTask {
            namespace: self.namespace()?.clone(),
            now: now_ms(now),
            skip_damaged,
        }))
    }

    /// Takes a snapshot of the namespace on the thread pool.
    #[napi]
    pub fn snapshot_async(&self) -> Result<AsyncTask<SnapshotTask>> {
        Ok(AsyncTask::new(SnapshotTask {
            namespace: self.namespace()?.clone(),
        }))
    }

    /// Puts the namespace back to `snapshot`, on the thread pool.
    #[napi]
    pub fn restore_async(&self, snapshot: &NativeSnapshot) -> Result<AsyncTask<Chore>> {
        let namespace = self.namespace()?.clone();
        let snapshot = snapshot.inner.clone();
        Ok(chore(move || namespace.restore(&snapshot)))
    }

    /// Deletes every entry, on the thread pool.
    #[napi]
    pub fn clear_async(&self) -> Result<AsyncTask<Chore>> {
        let namespace = self.namespace()?.clone();
        Ok(chore(move || namespace.clear()))
    }

    /// Deletes `key` in-line.
    #[napi(catch_unwind)]
    pub fn delete(&self, #[napi(ts_arg_type = "string")] key: Text) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.delete(&key)).map_err(js_error)
    }

    /// Makes every write so far durable, on the thread pool.
    #[napi]
    pub fn flush(&self) -> Result<AsyncTask<Chore>> {
        let namespace = self.namespace()?.clone();
        Ok(chore(move || namespace.flush()))
    }

    /// Flushes and lets go of the store; later calls fail with `ERR_KV_CLOSED`. Closing twice
    /// is fine. The last handle of a store closes it on the pool, after the flush.
    #[napi]
    pub fn close(&mut self) -> AsyncTask<Chore> {
        let namespace = self.inner.take();
        chore(move || namespace.map_or(Ok(()), |namespace| namespace.flush()))
    }
}

/// The contents of a namespace at one moment, held by `snapshot()` for `restore()`.
#[napi]
pub struct NativeSnapshot {
    pub(crate) inner: Arc<store::Snapshot>,
}

#[napi]
impl NativeSnapshot {
    /// How many entries it holds.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }
}

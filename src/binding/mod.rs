//! The Node-API face of the core: converts types, maps errors, and picks in-line or the
//! libuv thread pool. No KV semantics live here.
//!
//! Every error crosses as a JS `Error` whose `code` says what JS should throw: `"TypeError"`,
//! `"Error"` (production's own errors) or an `ERR_KV_*` code. `index.js` rebuilds it in the
//! caller's realm. Pool tasks cannot set a code on a rejection, so they resolve a
//! [`Failure`] object instead, which `index.js` turns into the same error.

use std::path::Path;
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
mod settle;
mod staged;
mod tasks;
mod tools;

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
    Vec<Buffer>,
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
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
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

    /// Namespace `name` of the sled store in directory `path`. When another process holds
    /// the store, it is reached through that process (unless `shared` is false), whose
    /// answers are awaited for `timeoutMs` at most.
    #[napi(factory, catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        path: String,
        name: String,
        cache_capacity: Option<f64>,
        flush_every_ms: Option<f64>,
        list_page_cap: Option<u32>,
        shared: Option<bool>,
        timeout_ms: Option<u32>,
    ) -> Result<Self> {
        let defaults = StoreConfig::default();
        let mut config = StoreConfig {
            share: shared.unwrap_or(true),
            holder_timeout: timeout_ms.map_or(defaults.holder_timeout, |ms| {
                std::time::Duration::from_millis(u64::from(ms))
            }),
            ..defaults
        };
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

    /// Namespace `name` on the Redis server (or, with `cluster`, the Redis Cluster) at `url`.
    /// Nothing is sent before the first operation.
    #[napi(factory, catch_unwind)]
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        url: String,
        name: String,
        cluster: bool,
        key_prefix: String,
        timeout_ms: u32,
        partitions: Option<u32>,
        list_page_cap: Option<u32>,
        tls_ca: Option<String>,
        tls_cert: Option<String>,
        tls_key: Option<String>,
    ) -> Result<Self> {
        let client = tls_cert
            .zip(tls_key)
            .map(|(c, k)| (c.into_bytes(), k.into_bytes()));
        let tls = (tls_ca.is_some() || client.is_some()).then(|| TlsConfig {
            ca: tls_ca.map(String::into_bytes),
            client,
        });
        let config = RedisConfig {
            url,
            cluster,
            key_prefix,
            timeout: std::time::Duration::from_millis(u64::from(timeout_ms)),
            tls,
            partitions,
        };
        let namespace = guarded(|| Namespace::connect(&name, config))
            .map_err(js_error)?
            .with_list_page_cap(list_page_cap.map(|cap| cap as usize));
        Ok(Self {
            inner: Some(Arc::new(namespace)),
        })
    }

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

    /// Whether operations can run in-line on the JS thread: memory, and a sled store this
    /// process holds. Not on Redis, nor on a store that another process holds.
    #[napi(getter)]
    pub fn is_local(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|namespace| namespace.is_local())
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

    /// Reads `key` with its metadata, both from one version of the entry:
    /// `[value, metadata, cacheStatus]` (text or a Buffer; metadata JSON or `null`;
    /// `"HIT"`/`"MISS"` when consistency is simulated, else `null`), `null` when missing, or
    /// the value's length when it is too long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_with_metadata<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        as_text: bool,
        now: f64,
    ) -> Result<Read<InLineRead<'env>>> {
        let namespace = self.namespace()?;
        let (entry, status) = guarded(|| {
            namespace.get_reporting(&key, cache_ttl, u64::from(IN_LINE_MAX), now_ms(now))
        })
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
        let value = js_value(env, bytes, as_text)?;
        Ok(Either3::A(match status {
            None => Either::A((value, metadata)),
            Some(status) => Either::B((value, metadata, status.as_str())),
        }))
    }

    /// Reads `key` off the JS thread; resolves `[value, metadata, cacheStatus]` (text when
    /// `asText`, otherwise a Buffer) or `null`.
    #[napi(
        ts_return_type = "Promise<[string | Buffer, string | null, string | null] | null | Failure>"
    )]
    pub fn read_async<'env>(
        &self,
        env: &'env Env,
        key: String,
        cache_ttl: Option<i32>,
        as_text: bool,
        now: f64,
    ) -> Result<Pending<'env, Option<OwnedRead>, Option<JsRead>>> {
        self.off_thread(
            env,
            |namespace| async move {
                let (entry, status) = namespace
                    .get_reporting_async(&key, cache_ttl, u64::MAX, now_ms(now))
                    .await?;
                Ok(entry
                    .and_then(|entry| owned_pair(entry, as_text))
                    .map(|pair| (pair, status)))
            },
            |read| {
                read.map(|(pair, status)| {
                    let (value, metadata) = js_pair(pair);
                    (value, metadata, status.map(|status| status.as_str().into()))
                })
            },
        )
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

    /// `getBulk` off the JS thread, with no bound on value lengths.
    #[napi(ts_return_type = "Promise<Array<[string, string | null] | null> | Failure>")]
    pub fn get_bulk_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        kind: Option<String>,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Pending<'env, Vec<Option<store::Entry>>, BulkEntries>> {
        self.off_thread(
            env,
            |namespace| async move {
                let entries = namespace
                    .get_bulk_async(&keys, kind.as_deref(), cache_ttl, u64::MAX, now_ms(now))
                    .await?;
                Ok(entries.unwrap_or_default())
            },
            bulk_entries,
        )
    }

    /// Lists up to `limit` keys (0 or less: 1000) that start with `prefix`, after `cursor`.
    #[napi(catch_unwind)]
    pub fn list(
        &self,
        prefix: String,
        limit: i32,
        cursor: Option<String>,
        now: f64,
    ) -> Result<ListPage> {
        let namespace = self.namespace()?;
        let page = guarded(|| namespace.list(&prefix, limit, cursor.as_deref(), now_ms(now)))
            .map_err(js_error)?;
        Ok(list_page(page))
    }

    /// `list` off the JS thread.
    #[napi(ts_return_type = "Promise<ListPage | Failure>")]
    pub fn list_async<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        limit: i32,
        cursor: Option<String>,
        now: f64,
    ) -> Result<Pending<'env, store::ListPage, ListPage>> {
        self.off_thread(
            env,
            |namespace| async move {
                namespace
                    .list_async(&prefix, limit, cursor.as_deref(), now_ms(now))
                    .await
            },
            list_page,
        )
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

    /// Writes a byte value off the JS thread. The caller must not change `value` until the
    /// promise settles (index.js passes a private copy).
    #[napi(ts_return_type = "Promise<void | Failure>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put_async<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Uint8Array,
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<Pending<'env, (), ()>> {
        let options = put_options(expiration, expiration_ttl, metadata);
        self.off_thread(
            env,
            |namespace| async move {
                namespace
                    .put_async(&key, &value, &options, now_ms(now))
                    .await
            },
            nothing,
        )
    }

    /// Writes many entries off the JS thread, all or none (`putMany` in the core). The
    /// arrays run in parallel, one element per entry.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put_many_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        values: Vec<Buffer>,
        expirations: Vec<Option<i32>>,
        expiration_ttls: Vec<Option<i32>>,
        metadata: Vec<Option<String>>,
        now: f64,
    ) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move {
                let columns = (keys, values, expirations, expiration_ttls, metadata);
                namespace
                    .put_many_async(&bulk_put_entries(&columns), now_ms(now))
                    .await
            },
            nothing,
        )
    }

    /// Every live entry, read off the JS thread: `[entries, damaged]`, with
    /// `[key, value, expiration, metadata]` for each entry. A damaged entry fails the dump,
    /// unless `skipDamaged`: then it is left out and listed in `damaged` as
    /// `[key, message]`.
    #[napi(
        ts_return_type = "Promise<[Array<[string, Buffer, number | null, string | null]>, Array<[string, string]>] | Failure>"
    )]
    pub fn dump_async<'env>(
        &self,
        env: &'env Env,
        now: f64,
        skip_damaged: bool,
    ) -> Result<Pending<'env, Dump, (Vec<Dumped>, Damaged)>> {
        self.off_thread(
            env,
            |namespace| async move {
                let mut damaged = Vec::new();
                let entries = {
                    let mut skip = |key: ::sled::IVec, error: store::Error| {
                        damaged.push((text_of(&key), error.to_string()));
                    };
                    let skip: Option<&mut store::DamageSink<'_>> =
                        if skip_damaged { Some(&mut skip) } else { None };
                    namespace.dump_async(now_ms(now), skip).await?
                };
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
                Ok((entries, damaged))
            },
            |(entries, damaged): Dump| {
                let entries = entries
                    .into_iter()
                    .map(|(key, bytes, expiration, metadata)| {
                        (key, bytes.into(), expiration, metadata)
                    })
                    .collect();
                (entries, damaged)
            },
        )
    }

    /// Takes a snapshot of the namespace off the JS thread.
    #[napi(ts_return_type = "Promise<NativeSnapshot | Failure>")]
    pub fn snapshot_async<'env>(
        &self,
        env: &'env Env,
    ) -> Result<Pending<'env, store::Snapshot, NativeSnapshot>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.snapshot_async().await },
            |snapshot| NativeSnapshot {
                inner: Arc::new(snapshot),
            },
        )
    }

    /// Puts the namespace back to `snapshot` on the JS thread: for a namespace in memory,
    /// where that takes microseconds and a trip to the thread pool would cost more.
    #[napi(catch_unwind)]
    pub fn restore(&self, snapshot: &NativeSnapshot) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.restore(&snapshot.inner)).map_err(js_error)
    }

    /// Puts the namespace back to `snapshot`, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn restore_async<'env>(
        &self,
        env: &'env Env,
        snapshot: &NativeSnapshot,
    ) -> Result<Pending<'env, (), ()>> {
        let snapshot = snapshot.inner.clone();
        self.off_thread(
            env,
            |namespace| async move { namespace.restore_async(&snapshot).await },
            nothing,
        )
    }

    /// Deletes every entry, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn clear_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.clear_async().await },
            nothing,
        )
    }

    /// Deletes every entry and every trace of the namespace in its store, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn remove_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.remove_async().await },
            nothing,
        )
    }

    /// Deletes `key` in-line.
    #[napi(catch_unwind)]
    pub fn delete(&self, #[napi(ts_arg_type = "string")] key: Text) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.delete(&key)).map_err(js_error)
    }

    /// Deletes `key` off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn delete_async<'env>(&self, env: &'env Env, key: String) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.delete_async(&key).await },
            nothing,
        )
    }

    /// Deletes up to 100 keys in-line (the experimental `deleteBulk`).
    #[napi(catch_unwind)]
    pub fn delete_bulk(&self, keys: Vec<String>) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.delete_bulk(&keys)).map_err(js_error)
    }

    /// Deletes up to 100 keys off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn delete_bulk_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
    ) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.delete_bulk_async(&keys).await },
            nothing,
        )
    }

    /// Makes every write so far durable, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.flush_async().await },
            nothing,
        )
    }

    /// Flushes and lets go of the store; later calls fail with `ERR_KV_CLOSED`. Closing twice
    /// is fine. The last handle of a store closes it off the JS thread, after the flush.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        let Some(namespace) = self.inner.take() else {
            // Closed already: nothing to flush, and any namespace's pool will do.
            return start(env, &Namespace::in_memory(), async { Ok(()) }, nothing);
        };
        let work = {
            let namespace = namespace.clone();
            async move { namespace.flush_async().await }
        };
        start(env, &namespace, work, nothing)
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
type JsRead = (Either<String, Buffer>, Option<String>, Option<String>);

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

//! The pure core: Workers KV semantics over a [`Backend`], with no Node-API in sight.
//!
//! Time is always an argument (`now_ms`, milliseconds since the UNIX epoch), so callers decide
//! what "now" is: `Date.now()` under Jest's fake timers, a fixed instant in a test.

mod backend;
mod error;
pub mod limits;
pub mod record;
mod sled_backend;
mod validate;

use std::path::Path;

pub use backend::{Backend, Entry, MemoryBackend, Value};
pub use error::{Error, Op, Result};
pub use sled_backend::{flush_all, panic_message, SledBackend, StoreConfig, FORMAT_VERSION};
pub use validate::{
    is_expired, now_seconds, validate_cache_ttl, validate_key, validate_put, PutOptions,
};

/// Longest namespace name, in UTF-8 bytes.
pub const MAX_NAMESPACE_SIZE: usize = 256;

/// One KV namespace: what a `KVNamespace` binding talks to.
///
/// ```
/// use kv_binding::store::{Namespace, PutOptions, Value};
/// let kv = Namespace::in_memory();
/// let now = 1_900_000_000_000;
/// kv.put("greeting", b"hello", &PutOptions::default(), now).unwrap();
/// let entry = kv.get("greeting", None, u64::MAX, now).unwrap().unwrap();
/// assert_eq!(entry.value, Value::Loaded("hello".into()));
/// ```
pub struct Namespace {
    backend: Box<dyn Backend>,
}

impl Namespace {
    /// An isolated namespace in memory.
    pub fn in_memory() -> Self {
        Self {
            backend: Box::new(MemoryBackend::new()),
        }
    }

    /// Namespace `name` of the sled store in directory `path` (created if missing).
    pub fn open(path: &Path, name: &str, config: &StoreConfig) -> Result<Self> {
        if name.is_empty() || name.len() > MAX_NAMESPACE_SIZE {
            return Err(Error::Invalid(format!(
                "The namespace name must be a string of 1 to {MAX_NAMESPACE_SIZE} UTF-8 bytes."
            )));
        }
        Ok(Self {
            backend: Box::new(SledBackend::open(path, name, config)?),
        })
    }

    /// Reads `key`. Expired entries read as missing and are reclaimed on the way. Values longer
    /// than `max_len` come back as [`Value::Deferred`], for the caller to read elsewhere.
    pub fn get(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        max_len: u64,
        now_ms: i64,
    ) -> Result<Option<Entry>> {
        validate_key(Op::Get, key)?;
        validate_cache_ttl(Op::Get, cache_ttl)?;
        match self.backend.get(key.as_bytes(), max_len)? {
            Some(entry) if is_expired(entry.expiration, now_ms) => {
                self.backend.delete_expired(key.as_bytes(), now_ms)?;
                Ok(None)
            }
            found => Ok(found),
        }
    }

    /// Writes `value` with `options`, replacing value, metadata and expiration at once.
    pub fn put(&self, key: &str, value: &[u8], options: &PutOptions, now_ms: i64) -> Result<()> {
        validate_key(Op::Put, key)?;
        let expiration = validate_put(options, value.len(), now_ms)?;
        self.backend.put(
            key.as_bytes(),
            value,
            expiration,
            options.metadata.as_deref(),
        )
    }

    /// Deletes `key`. Deleting a missing key succeeds.
    pub fn delete(&self, key: &str) -> Result<()> {
        validate_key(Op::Delete, key)?;
        self.backend.delete(key.as_bytes())
    }

    /// Makes every write so far durable (a no-op in memory).
    pub fn flush(&self) -> Result<()> {
        self.backend.flush()
    }
}

//! The pure core: Workers KV semantics over a [`Backend`], with no Node-API in sight.
//!
//! Time is always an argument (`now_ms`, milliseconds since the UNIX epoch), so callers decide
//! what "now" is: `Date.now()` under Jest's fake timers, a fixed instant in a test.

mod backend;
mod cache;
pub(crate) mod dir;
mod error;
mod files;
mod ids;
pub mod limits;
mod location;
mod namespace;
pub mod record;
mod redis_backend;
#[cfg(unix)]
mod share;
mod sled_backend;
mod staged;
mod storage;
mod types;
mod validate;
#[cfg(unix)]
mod wire;

pub use backend::{Backend, MemoryBackend};
pub use error::{Error, Op, Result};
pub use ids::random_id;
pub use limits::MAX_NAMESPACE_SIZE;
pub use location::DEFAULT_CACHE_TTL_SECONDS;
pub use namespace::{Namespace, Snapshot};
pub use redis_backend::{RedisConfig, TlsConfig, MAX_PARTITIONS, REDIS_FORMAT};
#[cfg(unix)]
pub use share::{set_runtime as set_share_runtime, SOCKET_FILE};
pub use sled_backend::{flush_all, panic_message, SledBackend, StoreConfig, FORMAT_VERSION};
pub use staged::Staged;
pub use storage::complete_local;
pub use types::{
    BulkEntry, CacheStatus, DamageSink, Entry, ListPage, ListedKey, PutEntry, ScanVisitor, Value,
};
pub use validate::{
    check_bulk_key, check_put, is_expired, now_seconds, validate_bulk, validate_cache_ttl,
    validate_key, validate_list, validate_put, BulkType, PutOptions,
};

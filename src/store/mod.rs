//! The pure core: Workers KV semantics over a [`Backend`] or a [`RemoteBackend`], with no
//! Node-API in sight and no backend named (they live in [`crate::backends`]).
//!
//! Time is always an argument (`now_ms`, milliseconds since the UNIX epoch), so callers decide
//! what "now" is: `Date.now()` under Jest's fake timers, a fixed instant in a test.

mod backend;
pub mod caller;
mod error;
mod ids;
pub mod limits;
mod location;
mod namespace;
mod staged;
mod storage;
mod types;
mod validate;

pub(crate) use backend::{remote_operations, scan_start};
pub use backend::{Backend, Capabilities, Pending, RemoteBackend};
pub use error::{panic_message, Error, Op, Result};
pub use ids::random_id;
pub use limits::MAX_NAMESPACE_SIZE;
pub use location::DEFAULT_CACHE_TTL_SECONDS;
pub use namespace::{Namespace, Snapshot};
pub use staged::Staged;
pub use storage::{complete_local, Storage};
pub use types::{
    BulkEntry, Bytes, CacheStatus, DamageSink, Entries, Entry, EntryMap, ListPage, ListedKey,
    PutEntry, ScanVisitor, Served, ServedPage, Value,
};
pub use validate::{
    check_bulk_key, check_namespace_name, check_put, is_expired, now_seconds, validate_bulk,
    validate_cache_ttl, validate_key, validate_list, validate_put, BulkType, PutOptions,
};

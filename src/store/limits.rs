//! The limits of production Workers KV, each defined once.

/// Longest key, in UTF-8 bytes (inclusive).
pub const MAX_KEY_SIZE: usize = 512;
/// Largest value, in bytes (inclusive): 25 MiB.
pub const MAX_VALUE_SIZE: usize = 25 * 1024 * 1024;
/// Largest serialised metadata, in UTF-8 bytes of JSON (inclusive).
pub const MAX_METADATA_SIZE: usize = 1024;
/// Shortest `expirationTtl`, and the least distance of `expiration` from now, in seconds.
pub const MIN_EXPIRATION_TTL: i64 = 60;
/// Shortest `cacheTtl` a read accepts, in seconds.
pub const MIN_CACHE_TTL: i64 = 30;
/// Most keys a `list` page holds, and its default size.
pub const MAX_LIST_KEYS: usize = 1000;
/// Most keys one bulk read may ask for.
pub const MAX_BULK_KEYS: usize = 100;
/// Most a bulk read may return, counted in UTF-16 units of the decoded values: 25 MiB.
pub const MAX_BULK_SIZE: usize = 25 * 1024 * 1024;
/// Longest namespace name, in UTF-8 bytes.
pub const MAX_NAMESPACE_SIZE: usize = 256;

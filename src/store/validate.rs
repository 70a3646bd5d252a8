//! Argument checks, in production's order and with production's wording.

use super::error::{Error, Op, Result};
use super::limits::{
    MAX_BULK_KEYS, MAX_KEY_SIZE, MAX_LIST_KEYS, MAX_METADATA_SIZE, MAX_NAMESPACE_SIZE,
    MAX_VALUE_SIZE, MIN_CACHE_TTL, MIN_EXPIRATION_TTL,
};

fn key_too_long(op: Op, key: &str) -> Error {
    Error::service(
        op,
        414,
        format!(
            "UTF-8 encoded length of {} exceeds key length limit of {MAX_KEY_SIZE}.",
            key.len()
        ),
    )
}

/// Checks a key for a single-key operation, as the runtime does before any I/O.
///
/// ```
/// use kv_binding::store::{validate_key, Op};
/// assert!(validate_key(Op::Get, "user:1").is_ok());
/// assert_eq!(
///     validate_key(Op::Put, "").unwrap_err().to_string(),
///     "Key name cannot be empty."
/// );
/// ```
pub fn validate_key(op: Op, key: &str) -> Result<()> {
    match key {
        "" => Err(Error::Type("Key name cannot be empty.".into())),
        "." => Err(Error::Type("\".\" is not allowed as a key name.".into())),
        ".." => Err(Error::Type("\"..\" is not allowed as a key name.".into())),
        _ if key.len() > MAX_KEY_SIZE => Err(key_too_long(op, key)),
        _ => Ok(()),
    }
}

/// Checks a read's `cacheTtl` (already converted to int32): it is otherwise ignored locally,
/// since the only edge location is this process.
pub fn validate_cache_ttl(op: Op, cache_ttl: Option<i32>) -> Result<()> {
    match cache_ttl {
        Some(ttl) if i64::from(ttl) < MIN_CACHE_TTL => Err(Error::service(
            op,
            400,
            format!("Invalid cache_ttl of {ttl}. Cache TTL must be at least {MIN_CACHE_TTL}."),
        )),
        _ => Ok(()),
    }
}

/// The options of `put`, after the runtime's int32 conversion and `JSON.stringify`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Absolute expiry, in seconds since the UNIX epoch.
    pub expiration: Option<i32>,
    /// Expiry relative to now, in seconds. Wins over `expiration` when both are given.
    pub expiration_ttl: Option<i32>,
    /// Serialised JSON metadata.
    pub metadata: Option<String>,
}

/// Seconds since the epoch at `now_ms`, as the service rounds it.
pub fn now_seconds(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000)
}

/// Every check of `put` in order: the runtime's key check, then the service's options and size
/// checks. Returns the absolute expiration to store, if any.
pub fn check_put(
    key: &str,
    options: &PutOptions,
    value_len: usize,
    now_ms: i64,
) -> Result<Option<i64>> {
    validate_key(Op::Put, key)?;
    validate_put(options, value_len, now_ms)
}

/// Validates `put`'s options and value size in the service's order and returns the absolute
/// expiration to store, if any.
pub fn validate_put(options: &PutOptions, value_len: usize, now_ms: i64) -> Result<Option<i64>> {
    let now = now_seconds(now_ms);
    let expiration = if let Some(ttl) = options.expiration_ttl {
        let ttl = i64::from(ttl);
        if ttl <= 0 {
            return Err(put_error(format!(
                "Invalid expiration_ttl of {ttl}. Please specify integer greater than 0."
            )));
        }
        if ttl < MIN_EXPIRATION_TTL {
            return Err(put_error(format!(
                "Invalid expiration_ttl of {ttl}. Expiration TTL must be at least \
                 {MIN_EXPIRATION_TTL}."
            )));
        }
        Some(now + ttl)
    } else if let Some(expiration) = options.expiration {
        let expiration = i64::from(expiration);
        if expiration <= now {
            return Err(put_error(format!(
                "Invalid expiration of {expiration}. Please specify integer greater than the \
                 current number of seconds since the UNIX epoch."
            )));
        }
        if expiration < now + MIN_EXPIRATION_TTL {
            return Err(put_error(format!(
                "Invalid expiration of {expiration}. Expiration times must be at least \
                 {MIN_EXPIRATION_TTL} seconds in the future."
            )));
        }
        Some(expiration)
    } else {
        None
    };
    if let Some(metadata) = &options.metadata {
        if metadata.len() > MAX_METADATA_SIZE {
            return Err(Error::service(
                Op::Put,
                413,
                format!(
                    "Metadata length of {} exceeds limit of {MAX_METADATA_SIZE}.",
                    metadata.len()
                ),
            ));
        }
    }
    if value_len > MAX_VALUE_SIZE {
        return Err(Error::service(
            Op::Put,
            413,
            format!("Value length of {value_len} exceeds limit of {MAX_VALUE_SIZE}."),
        ));
    }
    Ok(expiration)
}

fn put_error(message: String) -> Error {
    Error::service(Op::Put, 400, message)
}

/// Whether an entry with this absolute expiration (seconds) is gone at `now_ms`.
/// An entry expires at the instant of its expiration, not one second later.
pub fn is_expired(expiration: Option<i64>, now_ms: i64) -> bool {
    expiration.is_some_and(|seconds| now_ms >= seconds.saturating_mul(1000))
}

/// The value type of a bulk read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkType {
    Text,
    Json,
}

/// Checks a bulk read's type and number of keys, in the service's order. Each key is then
/// checked by [`check_bulk_key`] as the service reads it, one by one in request order. The
/// runtime checks nothing itself for bulk reads, so every message is the service's
/// `KV GET_BULK failed: ...`.
pub fn validate_bulk(keys: &[String], kind: Option<&str>) -> Result<BulkType> {
    let bulk_error = |message: String| Error::service(Op::GetBulk, 400, message);
    let kind = match kind {
        None | Some("text") => BulkType::Text,
        Some("json") => BulkType::Json,
        Some(other) => {
            return Err(bulk_error(format!(
                "\"{other}\" is not a valid type. Use \"json\" or \"text\""
            )))
        }
    };
    if keys.len() > MAX_BULK_KEYS {
        return Err(bulk_error(format!(
            "You can request a maximum of {MAX_BULK_KEYS} keys"
        )));
    }
    if keys.is_empty() {
        return Err(bulk_error("You must request a minimum of 1 key".into()));
    }
    Ok(kind)
}

/// Checks one key of a bulk read as the service does before reading it: its name, then
/// `cacheTtl` (checked again for every key, so an empty first key is reported before a bad
/// `cacheTtl`).
pub fn check_bulk_key(key: &str, cache_ttl: Option<i32>) -> Result<()> {
    match key {
        "" => Err(Error::service(
            Op::GetBulk,
            400,
            "Key names must not be empty",
        )),
        "." | ".." => Err(Error::service(
            Op::GetBulk,
            400,
            format!("Illegal key name \"{key}\". Please use a different name."),
        )),
        _ if key.len() > MAX_KEY_SIZE => Err(key_too_long(Op::GetBulk, key)),
        _ => validate_cache_ttl(Op::GetBulk, cache_ttl),
    }
}

/// Checks `list`'s limit and prefix in the service's order and returns the page size. A limit
/// of 0 or less means the default: the runtime does not send it.
pub fn validate_list(limit: i32, prefix: &str) -> Result<usize> {
    let limit = if limit <= 0 {
        MAX_LIST_KEYS
    } else {
        limit as usize
    };
    if limit > MAX_LIST_KEYS {
        return Err(Error::service(
            Op::Get,
            400,
            format!(
                "Invalid key_count_limit of {limit}. Please specify an integer less than \
                 {MAX_LIST_KEYS}."
            ),
        ));
    }
    if prefix.len() > MAX_KEY_SIZE {
        return Err(key_too_long(Op::Get, prefix));
    }
    Ok(limit)
}

/// Checks a namespace's name: 1 to [`MAX_NAMESPACE_SIZE`] UTF-8 bytes.
pub fn check_namespace_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAMESPACE_SIZE {
        return Err(Error::Invalid(format!(
            "The namespace name must be a string of 1 to {MAX_NAMESPACE_SIZE} UTF-8 bytes."
        )));
    }
    Ok(())
}

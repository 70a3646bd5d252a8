//! What no `KV` writes: the checks a holder makes of what a client sends, and a client of
//! what a holder answers.

use super::*;

/// What makes an entry one that no `KV` writes, if anything.
pub fn entry_fault(key: &[u8], value: &[u8], metadata: Option<&[u8]>) -> Option<&'static str> {
    key_fault(key)
        .or_else(|| (value.len() > MAX_VALUE_SIZE).then_some("a value over the value limit"))
        .or_else(|| metadata_fault(metadata))
}

/// What makes `key` one that no `KV` writes, if anything.
pub fn key_fault(key: &[u8]) -> Option<&'static str> {
    (key.is_empty() || key.len() > MAX_KEY_SIZE || std::str::from_utf8(key).is_err())
        .then_some("a key that no KV writes")
}

/// What makes `metadata` something no `KV` writes, if anything: it must be JSON text within
/// the metadata limit.
pub fn metadata_fault(metadata: Option<&[u8]>) -> Option<&'static str> {
    let metadata = metadata?;
    let text = std::str::from_utf8(metadata).ok();
    match text {
        Some(text)
            if text.len() <= MAX_METADATA_SIZE
                && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() =>
        {
            None
        }
        _ => Some("metadata that is not JSON within the metadata limit"),
    }
}

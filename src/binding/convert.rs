//! Conversions between the core's values and JS values: string arguments read in one call,
//! stored bytes as strings or Buffers, list pages and bulk results in the shapes index.js takes.

use napi::bindgen_prelude::*;
use napi::JsString;

use super::text::{OwnedText, EXTERNAL_MIN};
use super::Result;
use crate::store::{self, Entry, Value};

/// Values and sizes that cross from a read.
pub(super) type Read<T> = Either3<T, Null, f64>;

/// A value as JS reads it: text, or a Buffer copy of the bytes.
pub(super) type JsValueOf<'env> = Either<JsString<'env>, BufferSlice<'env>>;

pub(super) fn napi_failure(error: napi::Error) -> napi::Error<&'static str> {
    napi::Error::new("Error", error.reason.clone())
}

/// Bytes a [`Text`] argument reads without allocating (one less than its buffer, which also
/// holds a terminator).
const SHORT_TEXT: usize = 255;

/// A string argument, as UTF-8 (lone surrogates replaced). Node-API reads a string in two
/// calls (its length, then its bytes into a buffer of that size); a short one, such as any
/// key in practice, is read here in one call into a buffer on the stack.
pub struct Text {
    short: [u8; SHORT_TEXT + 1],
    len: usize,
    long: Option<String>,
}

impl Text {
    fn as_str(&self) -> &str {
        match &self.long {
            Some(long) => long,
            // SAFETY: Node-API writes valid UTF-8, and `from_napi_value` keeps only strings it
            // wrote whole.
            None => unsafe { std::str::from_utf8_unchecked(&self.short[..self.len]) },
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl TypeName for Text {
    fn type_name() -> &'static str {
        "String"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ValidateNapiValue for Text {}

impl FromNapiValue for Text {
    unsafe fn from_napi_value(
        env: napi::sys::napi_env,
        value: napi::sys::napi_value,
    ) -> napi::Result<Self> {
        let mut text = Text {
            short: [0; SHORT_TEXT + 1],
            len: 0,
            long: None,
        };
        // SAFETY: the buffer is valid for its length; Node-API writes at most that many bytes,
        // the last of them a terminator.
        let status = unsafe {
            napi::sys::napi_get_value_string_utf8(
                env,
                value,
                text.short.as_mut_ptr().cast(),
                text.short.len(),
                &mut text.len,
            )
        };
        if status != napi::sys::Status::napi_ok {
            // Not a string: the usual conversion reports it in its usual words.
            text.long = Some(unsafe { String::from_napi_value(env, value) }?);
            return Ok(text);
        }
        // Node-API stops before a character that does not fit whole, so a string that goes on
        // past the buffer leaves fewer than 4 bytes of it unused: read all of such a string.
        if text.len + 4 > SHORT_TEXT {
            text.long = Some(unsafe { String::from_napi_value(env, value) }?);
        }
        Ok(text)
    }
}

/// Decodes stored bytes into a JS string. ASCII bytes are copied as they are into a one-byte
/// string; other bytes go to V8's UTF-8 decoder, which replaces invalid sequences with U+FFFD
/// as a `TextDecoder` does.
pub(super) fn js_text<'env>(env: &'env Env, bytes: &[u8]) -> Result<JsString<'env>> {
    let mut value = std::ptr::null_mut();
    let ascii = bytes.is_ascii();
    if ascii && bytes.len() >= EXTERNAL_MIN {
        // A long one is read where it is, as a text read off the JS thread is (see text.rs):
        // one copy out of the store's buffer, none into V8's heap.
        // SAFETY: on the JS thread of `env`.
        let made = unsafe { OwnedText::to_napi_value(env.raw(), OwnedText::Ascii(bytes.to_vec())) };
        return made
            .and_then(|value| unsafe { JsString::from_napi_value(env.raw(), value) })
            .map_err(napi_failure);
    }
    let create = if ascii {
        napi::sys::napi_create_string_latin1
    } else {
        napi::sys::napi_create_string_utf8
    };
    // SAFETY: `bytes` is valid for `bytes.len()` bytes and Node-API copies them before it
    // returns; the length is explicit, so no terminator is needed.
    let status = unsafe {
        create(
            env.raw(),
            bytes.as_ptr().cast(),
            bytes.len() as isize,
            &mut value,
        )
    };
    if status != napi::sys::Status::napi_ok {
        return Err(napi::Error::new("Error", "could not create a string"));
    }
    // SAFETY: `value` was just created by Node-API as a string in `env`.
    unsafe { JsString::from_napi_value(env.raw(), value) }.map_err(napi_failure)
}

pub(super) fn js_value<'env>(
    env: &'env Env,
    bytes: &[u8],
    as_text: bool,
) -> Result<JsValueOf<'env>> {
    if as_text {
        js_text(env, bytes).map(Either::A)
    } else {
        BufferSlice::copy_from(env, bytes)
            .map(Either::B)
            .map_err(napi_failure)
    }
}

/// Text of stored bytes, with invalid UTF-8 replaced as a decoder would.
pub(super) fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An entry's value (read in full) and metadata as a pool task hands them over: converted
/// and copied on the pool, so that the JS thread only wraps them.
pub(super) type OwnedPair = (Either<OwnedText, Vec<u8>>, Option<String>);

pub(super) fn owned_pair(entry: Entry, as_text: bool) -> Option<OwnedPair> {
    let value = match (entry.value, as_text) {
        (Value::Deferred { .. }, _) => return None,
        (Value::Loaded(bytes), true) => Either::A(OwnedText::from_bytes(bytes.to_vec())),
        (Value::Loaded(bytes), false) => Either::B(bytes.to_vec()),
        // Bytes of our own: no copy unless the text needs repairing.
        (Value::Owned(bytes), true) => Either::A(OwnedText::from_bytes(bytes)),
        (Value::Owned(bytes), false) => Either::B(bytes),
    };
    Some((value, entry.metadata.map(|m| text_of(&m))))
}

/// `pair` for JS: the bytes become a Buffer over the same memory, without a copy, and ASCII
/// text a string over the same memory (see [`OwnedText`]).
pub(super) fn js_pair((value, metadata): OwnedPair) -> (Either<OwnedText, Buffer>, Option<String>) {
    let value = match value {
        Either::A(text) => Either::A(text),
        Either::B(bytes) => Either::B(bytes.into()),
    };
    (value, metadata)
}

/// One `list` page as `[names, lengths, expirations, metadata, cursor, cacheStatus]`. The
/// names come as one string, cut into keys by `lengths` (UTF-16 units each): one string
/// crosses instead of a thousand. `expirations` and `metadata` are parallel arrays, `null`
/// when no key on the page has any; `cursor` is `null` on the last page; `cacheStatus` is
/// `"HIT"` or `"MISS"` when consistency is simulated.
pub(super) type ListPage = (
    String,
    Uint32Array,
    Option<Vec<Option<f64>>>,
    Option<Vec<Option<String>>>,
    Option<String>,
    Option<String>,
);

pub(super) fn list_page(page: store::ListPage) -> ListPage {
    let keys = &page.keys;
    let mut names = String::with_capacity(keys.iter().map(|key| key.name.len()).sum());
    let mut lengths = Vec::with_capacity(keys.len());
    for key in keys {
        let name = String::from_utf8_lossy(&key.name);
        let units = if name.is_ascii() {
            name.len()
        } else {
            name.encode_utf16().count()
        };
        lengths.push(units as u32);
        names.push_str(&name);
    }
    let expirations = keys.iter().any(|key| key.expiration.is_some()).then(|| {
        keys.iter()
            .map(|key| key.expiration.map(|seconds| seconds as f64))
            .collect()
    });
    let metadata = keys.iter().any(|key| key.metadata.is_some()).then(|| {
        keys.iter()
            .map(|key| key.metadata.as_deref().map(text_of))
            .collect()
    });
    (
        names,
        Uint32Array::new(lengths),
        expirations,
        metadata,
        page.cursor,
        page.cache_status.map(|status| status.as_str().into()),
    )
}

/// Bulk read results in request order: `[text, metadata]`, or `null` for a missing key.
pub(super) type BulkEntries = Vec<Option<(String, Option<String>)>>;

pub(super) fn bulk_entries(entries: Vec<Option<Entry>>) -> BulkEntries {
    entries
        .into_iter()
        .map(|entry| {
            let entry = entry?;
            // A bulk read defers as a whole, never one value, so every value here is loaded.
            let bytes = entry.value.bytes()?;
            Some((text_of(bytes), entry.metadata.as_deref().map(text_of)))
        })
        .collect()
}

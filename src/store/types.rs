//! The plain data the semantics and every backend share: values, entries, list pages. The
//! floor of the core: it uses nothing else of it.

use std::collections::BTreeMap;

use super::validate::PutOptions;

/// The core's byte buffer: cheap to clone (reference-counted, with up to 22 bytes kept inline)
/// and made from any slice or `Vec`. It is the type sled hands out, so that a value read from
/// a sled store reaches JS without a copy; the one line of the core that names sled.
pub type Bytes = sled::IVec;

/// A stored value, or only its length when it is too long to read where the caller is.
#[derive(Clone, Debug)]
pub enum Value {
    /// Bytes shared with the store.
    Loaded(Bytes),
    /// Bytes read for this caller alone (from a value file), handed over without a copy.
    Owned(Vec<u8>),
    Deferred {
        len: u64,
    },
}

impl Value {
    /// The value's bytes; `None` when it was deferred.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Loaded(bytes) => Some(bytes),
            Value::Owned(bytes) => Some(bytes),
            Value::Deferred { .. } => None,
        }
    }
}

/// Values are equal when their bytes are, however they are held.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Deferred { len: a }, Value::Deferred { len: b }) => a == b,
            _ => self.bytes().is_some() && self.bytes() == other.bytes(),
        }
    }
}

impl Eq for Value {}

/// One entry as a backend hands it out. Buffers are shared, so cloning is cheap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Absolute expiry in seconds since the UNIX epoch.
    pub expiration: Option<i64>,
    /// Metadata as JSON text (always valid UTF-8).
    pub metadata: Option<Bytes>,
    pub value: Value,
}

/// One entry of a [`Backend::put_all`].
#[derive(Clone, Copy, Debug)]
pub struct PutEntry<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Absolute expiry in seconds since the UNIX epoch.
    pub expiration: Option<i64>,
    pub metadata: Option<&'a str>,
}

/// Entries with their keys, in key order, as [`Backend::entries`] returns them.
pub type Entries = Vec<(Bytes, Entry)>;

/// What [`Backend::entries`] hands each damaged entry it leaves out to: its key and why.
pub type DamageSink<'a> = dyn FnMut(Bytes, super::error::Error) + Send + 'a;

/// What [`Backend::scan`] calls for each entry: key, expiration, metadata; `false` stops.
pub type ScanVisitor<'a> = dyn FnMut(&[u8], Option<i64>, Option<&Bytes>) -> bool + Send + 'a;

/// A namespace's entries in key order, as memory holds them.
pub type EntryMap = BTreeMap<Bytes, Entry>;

/// Where a read's answer came from at a location: production's `CF-Cache-Status`, which
/// `getWithMetadata` and `list` report as `cacheStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the location's cache.
    Hit,
    /// From the store, and cached now.
    Miss,
}

impl CacheStatus {
    /// The header's text: `"HIT"` or `"MISS"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
        }
    }
}

/// One key of a `list` page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// The key's UTF-8 bytes.
    pub name: Bytes,
    /// Absolute expiry in seconds since the UNIX epoch.
    pub expiration: Option<i64>,
    /// Metadata as JSON text.
    pub metadata: Option<Bytes>,
}

/// A `list` page; `cursor` is set exactly when more keys follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<ListedKey>,
    pub cursor: Option<String>,
    /// Whether a location's cache answered, when consistency is simulated.
    pub cache_status: Option<CacheStatus>,
}

/// One entry of [`Namespace::put_many`].
#[derive(Clone, Debug)]
pub struct BulkEntry<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    pub options: PutOptions,
}

/// One request a store's holder answered for another process (see
/// [`Backend::served`](super::Backend::served)): what the data browser's operations view shows
/// of the processes that share a store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Served {
    /// Its place in the holder's log, from 1.
    pub seq: u64,
    /// When it was answered, in milliseconds since the UNIX epoch.
    pub at_ms: u64,
    /// The pid of the process that asked.
    pub client: u32,
    /// `get`, `put`, `delete`, `list`, `bulkPut`...
    pub op: String,
    pub namespace: String,
    /// The key (lossily as UTF-8), the listed prefix, or how many keys.
    pub key: String,
    /// Bytes of the value read or written, when one was.
    pub size: Option<u64>,
    /// Keys read, written or listed, for an operation on many.
    pub keys: Option<u64>,
    /// How long the holder took to answer, in microseconds.
    pub micros: u64,
    pub error: Option<String>,
}

/// The requests a holder answered after a point of its log, and the point to ask from next.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServedPage {
    pub operations: Vec<Served>,
    /// The `seq` of the last request logged: asking after it gives what follows.
    pub last: u64,
}

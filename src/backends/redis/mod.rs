//! A namespace kept on a Redis or Valkey server, or spread over a Redis Cluster.
//!
//! A namespace is split into partitions: key `k` belongs to partition `crc32(k) % partitions`.
//! Everything of one partition shares the hash tag `{<namespace>:<partition>}`, so that it
//! lives in one cluster slot and one server-side script can change it atomically:
//!
//! ```text
//! <prefix>{<namespace>}:layout         string  {"format":2,"partitions":P,"id":"..."}
//! <prefix>{<namespace>:<p>}:layout     string  the same text, a copy for each partition
//! <prefix>{<namespace>:<p>}:i          zset    every key of the partition, score 0 (byte order)
//! <prefix>{<namespace>:<p>}:m          hash    key -> CRC-32 + record without value (for list)
//! <prefix>{<namespace>:<p>}:v:<key>    string  CRC-32 + record with value (for get)
//! ```
//!
//! The prefix and the namespace are written escaped (see [`escape`]): `%`, `{` and `}` as
//! `%25`, `%7B` and `%7D`, and in the namespace `:` as `%3A` too. So no user byte opens or
//! closes a hash tag, the prefix ends at the first `{`, the namespace at the `}` or `:` after
//! it, and no two (prefix, namespace, key) triples share a Redis key.
//!
//! Every operation checks the partition's copy of the layout, in the same step as its own
//! work (a script, or one `MGET`): a server flushed, or a layout rewritten by another
//! process, fails the operation with `ERR_KV_STORAGE` instead of sending it to where its
//! keys no longer are. The layout is read first and made only by a write, so a user who may
//! only read can read.
//!
//! Records are the sled backend's format (`record::encode`), with the value in-line, behind a
//! big-endian CRC-32 of the record's bytes, so a damaged or foreign value reads as
//! `ERR_KV_CORRUPT`, never as wrong data. Every write is one Lua script, which Redis runs
//! atomically: an entry's index member, list record and value change together or not at all.
//! Expiry is the KV clock's decision alone; no Redis TTL is set.

mod connect;
mod layout;
mod read;
mod scripts;
mod write;

use scripts::Scripts;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Script};
use sled::IVec;

use crate::backends::record::{self, Body};
use crate::store::random_id;
use crate::store::{
    check_namespace_name, DamageSink, Entry, Namespace, Pending, PutEntry, RemoteBackend,
    ScanVisitor, Storage, Value,
};
use crate::store::{is_expired, Capabilities};
use crate::store::{Error, Result};

/// The layout this build writes (the `format` of the layout key). It reads format 1 too, the
/// layout before names were escaped and partitions kept copies of the layout, and upgrades it
/// (see [`RedisBackend::upgraded`]).
pub const REDIS_FORMAT: u32 = 2;

/// How many keys one round trip of `list` or `dump` fetches from a partition, at most.
const BATCH_MAX: usize = 1001;

/// How many entries one script call of a write carries, at most...
const CHUNK_ENTRIES: usize = 500;
/// ... and how many bytes of keys, values and metadata (an entry larger goes alone). Redis
/// runs a script without serving anyone else: these keep each call to a few milliseconds.
const CHUNK_BYTES: usize = 1 << 20;
/// How many keys one script call removes when it clears partitions.
const CLEAR_MAX: usize = 1000;

tokio::task_local! {
    /// When the operation running in this task gives up (see [`RedisBackend::by`]).
    static DEADLINE: tokio::time::Instant;
}

/// How long a cluster may fail every operation before the connection is made afresh.
const RECONNECT_AFTER: Duration = Duration::from_secs(3);

/// How to reach a namespace on Redis.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; with `cluster`, any node of the cluster.
    pub url: String,
    pub cluster: bool,
    /// Put in front of every Redis key kv-binding writes.
    pub key_prefix: String,
    /// How long an operation may wait for the server before it fails.
    pub timeout: Duration,
    /// For `rediss://`: PEM certificates of the authorities to trust instead of the system's,
    /// and a client certificate with its key for servers that ask for one.
    pub tls: Option<TlsConfig>,
    /// Partitions of a namespace that does not exist yet (`None`: 1 on a single server, 16 on
    /// a cluster). An existing namespace keeps the layout it was created with.
    pub partitions: Option<u32>,
}

/// Certificates for TLS, in PEM.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// The longest a namespace can be split.
pub const MAX_PARTITIONS: u32 = 1024;

/// A multiplexed connection: concurrent calls share it and are pipelined.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

enum Client {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(ClusterSeed),
}

/// The node named in the URL, and what a cluster client is built with: a new one is built
/// to reconnect, from every node known then (see [`RedisBackend::connect`]).
struct ClusterSeed {
    seed: redis::ConnectionInfo,
    certificates: Option<redis::TlsCertificates>,
    timeout: Duration,
}

/// A namespace's layout, as the server holds it.
struct Layout {
    partitions: u32,
    /// The layout key's text, which each partition keeps a copy of and every operation checks.
    text: String,
}

/// One namespace on Redis.
pub struct RedisBackend {
    client: Client,
    /// The connection, made by the first operation and made again on a cluster that kept
    /// failing (see [`RedisBackend::observe`]).
    connection: Mutex<Option<Connection>>,
    connecting: tokio::sync::Mutex<()>,
    /// On a cluster: the slot ranges each node served when last asked (`CLUSTER SLOTS`), to
    /// say which node failed and to reconnect through any of them.
    slots: Mutex<Vec<(u16, u16, String)>>,
    /// Since when operations have failed for want of the server, if they do.
    failing_since: Mutex<Option<std::time::Instant>>,
    /// Whether `failing_since` is set: read without its lock by every operation.
    failing: AtomicBool,
    /// The layout read from the server, until an operation finds that it changed there.
    layout: Mutex<Option<Arc<Layout>>>,
    /// Whether this handle has noted the namespace in its key prefix's set of namespaces
    /// (see [`RedisBackend::register`]).
    registered: AtomicBool,
    /// Held while the layout is read: the operations that find none cached wait for one
    /// reading rather than each read it.
    reading_layout: tokio::sync::Mutex<()>,
    /// `host:port` (or socket path) of the server, for messages: never the credentials.
    endpoint: String,
    /// The password, scrubbed from any message that might repeat it.
    secret: Option<String>,
    name: String,
    prefix: String,
    /// The prefix and the name as they are written in Redis keys (see [`escape`]).
    prefix_part: String,
    name_part: String,
    timeout: Duration,
    cluster: bool,
    new_partitions: u32,
    scripts: Scripts,
}

impl RedisBackend {}

/// `text` as Redis key names hold it: `%` and each byte of `special` (ASCII) as `%XX`, so that
/// those bytes appear only where the layout puts them.
fn escape(text: &str, special: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || (c.is_ascii() && special.contains(&(c as u8))) {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// The format and partition count of a layout key's text.
fn parse_layout(bytes: &[u8]) -> Option<(u64, u64)> {
    let layout: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some((layout["format"].as_u64()?, layout["partitions"].as_u64()?))
}

/// The Redis Cluster hash slot of `key`: CRC-16/XMODEM of its hash tag (or of all of it).
fn slot_of(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let close = key[open + 1..].iter().position(|&b| b == b'}')?;
            Some(&key[open + 1..open + 1 + close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % 16384
}

impl Namespace {
    /// Namespace `name` on the Redis server or cluster `config` names. Nothing is sent until
    /// the first operation, which connects.
    pub fn connect(name: &str, config: RedisConfig) -> Result<Namespace> {
        check_namespace_name(name)?;
        let backend = RedisBackend::new(name, config)?;
        Ok(Namespace::with_storage(Storage::Remote(Box::new(backend))))
    }
}

impl RemoteBackend for RedisBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            persistent: true,
            shared: true,
            ..Capabilities::default()
        }
    }

    crate::store::remote_operations!(RedisBackend);

    fn namespaces(&self) -> Pending<'_, Option<Vec<String>>> {
        Box::pin(async { RedisBackend::namespaces(self).await.map(Some) })
    }

    fn remove(&self) -> Pending<'_, ()> {
        Box::pin(RedisBackend::remove(self))
    }

    /// An answered write is on the server; how durable it is there is the server's
    /// configuration (appendfsync).
    fn flush(&self) -> Pending<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::write::{chunks, WriteEntry};
    use super::*;

    #[test]
    fn chunks_keep_order_and_bounds() {
        let small = vec![0u8; 10];
        let big = vec![0u8; CHUNK_BYTES + 1];
        let mut entries: Vec<WriteEntry<'_>> = (0..1200)
            .map(|_| (&b"k"[..], None, None, small.as_slice()))
            .collect();
        entries.insert(3, (&b"big"[..], None, Some("{}"), big.as_slice()));
        let written: Vec<usize> = (0..entries.len()).collect();
        let cut = chunks(&written, &entries);
        // In order, nothing lost or repeated.
        assert_eq!(cut.concat(), written);
        // The oversized entry goes alone; no run passes either bound.
        assert!(cut.contains(&&[3][..]));
        for run in &cut {
            assert!(run.len() <= CHUNK_ENTRIES);
            let bytes: usize = run.iter().map(|&i| entries[i].3.len()).sum();
            assert!(run.len() == 1 || bytes <= CHUNK_BYTES);
        }
        assert_eq!(cut.len(), 5); // [0..3], [3], then 1,197 entries in runs of 500
        let none: Vec<&[usize]> = vec![&[]];
        assert_eq!(chunks(&[], &entries), none);
    }

    #[test]
    fn slots_are_the_clusters() {
        // As CLUSTER KEYSLOT answers them.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        // An empty tag is no tag: the whole key is hashed.
        assert_ne!(slot_of(b"{}a"), slot_of(b"a"));
        assert_eq!(slot_of(b"kv:{ns:3}:v:k"), slot_of(b"kv:{ns:3}:layout"));
    }
}

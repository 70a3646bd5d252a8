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
use crate::store::is_expired;
use crate::store::random_id;
use crate::store::{
    check_namespace_name, DamageSink, Entries, Entry, Namespace, Pending, PutEntry, RemoteBackend,
    ScanVisitor, Storage, Value,
};
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

/// The server-side scripts, each loaded once per server and then run by its SHA-1.
struct Scripts {
    write: Script,
    delete_if: Script,
    scan: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            write: Script::new(&[CHECK_LAYOUT, CHECK_TYPES, WRITE].concat()),
            delete_if: Script::new(&[CHECK_LAYOUT, CHECK_TYPES, DELETE_IF].concat()),
            scan: Script::new(&[CHECK_LAYOUT, SCAN].concat()),
        }
    }
}

/// Checks that `KEYS[1]` to `KEYS[count]`, copies of the layout in the partitions a script
/// touches, hold `ARGV[1]`, the layout the caller used to find its keys: otherwise the
/// caller's keys may not be where it looks, and the script must stop before it acts.
const CHECK_LAYOUT: &str = r"
local function check_layout(count)
  for j = 1, count do
    if redis.call('GET', KEYS[j]) ~= ARGV[1] then
      return redis.error_reply('KVLAYOUT ' .. KEYS[j] .. ' does not hold the layout used')
    end
  end
end
";

/// Checks, before anything is written, that the index and list-record keys of each entry
/// hold what they should (or nothing): Redis does not undo a script's earlier writes when a
/// later command fails, so a type clash must stop the script before its first write.
/// `KEYS[first]`, `KEYS[first + step]`... up to `last` are index keys, each followed by its
/// meta key.
const CHECK_TYPES: &str = r"
local function check_types(first, last, step)
  for j = first, last, step do
    local index, meta = redis.call('TYPE', KEYS[j]).ok, redis.call('TYPE', KEYS[j + 1]).ok
    if (index ~= 'zset' and index ~= 'none') or (meta ~= 'hash' and meta ~= 'none') then
      return redis.error_reply('WRONGTYPE ' .. KEYS[j] .. ' or ' .. KEYS[j + 1] ..
        ' holds something other than a kv-binding index')
    end
  end
end
";

/// Clears the partitions named first, then writes entries, all in one atomic step, unless
/// the partitions hold more keys than the budget: then it removes that many and returns 1
/// without writing, and the caller calls again (see [`RedisBackend::write`]).
/// KEYS: the layout copy of each partition touched, the index and meta key of each partition
/// to clear, then index, meta and value key of each entry. ARGV: the layout, how many layout
/// copies, how many partitions to clear, how many keys one call may remove, the value-key
/// prefix of each partition to clear, then key, list record and value record of each entry.
const WRITE: &str = r"
local copies, cleared, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local bad = check_layout(copies)
if bad then return bad end
local k, a = copies + 2 * cleared, 4 + cleared
local clash = check_types(copies + 1, k, 2) or check_types(k + 1, #KEYS, 3)
if clash then return clash end
local more = 0
for p = 1, cleared do
  local index, meta = KEYS[copies + 2 * p - 1], KEYS[copies + 2 * p]
  local keys = {}
  if budget > 0 then
    keys = redis.call('ZRANGE', index, 0, budget - 1)
  end
  for _, key in ipairs(keys) do
    redis.call('DEL', ARGV[4 + p] .. key)
  end
  budget = budget - #keys
  if redis.call('ZCARD', index) == #keys then
    redis.call('DEL', index, meta)
  else
    if #keys > 0 then
      redis.call('ZREM', index, unpack(keys))
      redis.call('HDEL', meta, unpack(keys))
    end
    more = 1
  end
end
if more == 1 then
  return 1
end
for j = 1, (#ARGV - a) / 3 do
  local key = ARGV[a + 3 * j - 2]
  redis.call('ZADD', KEYS[k + 3 * j - 2], 0, key)
  redis.call('HSET', KEYS[k + 3 * j - 1], key, ARGV[a + 3 * j - 1])
  redis.call('SET', KEYS[k + 3 * j], ARGV[a + 3 * j])
end
return 0
";

/// Deletes each entry whose list record is still the one given (empty: delete whatever is
/// there). KEYS: the layout copy of each partition touched, then index, meta and value key
/// of each entry. ARGV: the layout, how many layout copies, then key and record of each.
const DELETE_IF: &str = r"
local copies = tonumber(ARGV[2])
local bad = check_layout(copies)
if bad then return bad end
local clash = check_types(copies + 1, #KEYS, 3)
if clash then return clash end
for j = 1, (#ARGV - 2) / 2 do
  local key, seen = ARGV[2 * j + 1], ARGV[2 * j + 2]
  local index, meta, value = KEYS[copies + 3 * j - 2], KEYS[copies + 3 * j - 1], KEYS[copies + 3 * j]
  if seen == '' or redis.call('HGET', meta, key) == seen then
    redis.call('ZREM', index, key)
    redis.call('HDEL', meta, key)
    redis.call('DEL', value)
  end
end
return 0
";

/// Up to ARGV[4] keys of a partition from ARGV[3] (a ZRANGEBYLEX bound) on, with their list
/// records. KEYS: the partition's layout copy, index and meta key. ARGV: the layout, 1.
const SCAN: &str = r"
local bad = check_layout(1)
if bad then return bad end
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[3], '+', 'LIMIT', 0, tonumber(ARGV[4]))
if #keys == 0 then return {} end
local records = redis.call('HMGET', KEYS[3], unpack(keys))
local out = {}
for i = 1, #keys do
  out[2 * i - 1] = keys[i]
  out[2 * i] = records[i]
end
return out
";

impl ClusterSeed {
    /// A cluster client that starts from the URL's node and from `nodes` (`host:port`).
    fn client(&self, nodes: &[String]) -> std::result::Result<ClusterClient, RedisError> {
        let Self {
            seed,
            certificates,
            timeout,
        } = self;
        let mut starts = vec![seed.clone()];
        for node in nodes {
            let Some((host, port)) = node.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse() else { continue };
            let host = host.to_owned();
            let addr = match seed.addr() {
                redis::ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => redis::ConnectionAddr::Tcp(host, port),
            };
            starts.push(seed.clone().set_addr(addr));
        }
        let mut builder = ClusterClientBuilder::new(starts)
            .connection_timeout(*timeout)
            .response_timeout(*timeout)
            .retries(2);
        if let Some(certificates) = certificates {
            builder = builder.certs(certificates.clone());
        }
        builder.build()
    }
}

impl RedisBackend {
    /// A backend for namespace `name`; no connection is made until the first operation.
    pub fn new(name: &str, config: RedisConfig) -> Result<Self> {
        let bad_url = || {
            Error::Invalid(
                "The url option must be a Redis URL: redis://[user:password@]host:port[/db] \
                 (or redis+unix:///path/to/socket)."
                    .to_owned(),
            )
        };
        let certificates = config.tls.map(|tls| redis::TlsCertificates {
            client_tls: tls
                .client
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: tls.ca,
        });
        if config.url.starts_with("rediss:") {
            // rustls needs its crypto chosen once per process; another library may have.
            let _ = rustls::crypto::ring::default_provider().install_default();
        } else if certificates.is_some() {
            return Err(Error::Invalid(
                "The tls option goes with a rediss:// URL.".to_owned(),
            ));
        }
        let bad_tls = || {
            Error::Invalid(
                "The tls option's certificates could not be read: give PEM text \
                 (-----BEGIN CERTIFICATE----- ...), and key with cert."
                    .to_owned(),
            )
        };
        let single = match &certificates {
            Some(certificates) => {
                redis::Client::build_with_tls(config.url.as_str(), certificates.clone())
                    .map_err(|_| bad_tls())?
            }
            None => redis::Client::open(config.url.as_str()).map_err(|_| bad_url())?,
        };
        let info = single.get_connection_info();
        let endpoint = info.addr().to_string();
        let secret = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let client = if config.cluster {
            let seed = ClusterSeed {
                seed: info.clone(),
                certificates,
                timeout: config.timeout,
            };
            seed.client(&[]).map_err(|_| bad_url())?;
            Client::Cluster(seed)
        } else {
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout))
                .set_number_of_retries(0)
                .set_max_delay(Duration::from_millis(200));
            Client::Single(single, manager_config)
        };
        let new_partitions = config
            .partitions
            .unwrap_or(if config.cluster { 16 } else { 1 });
        if !(1..=MAX_PARTITIONS).contains(&new_partitions) {
            return Err(Error::Invalid(format!(
                "The partitions option must be a whole number from 1 to {MAX_PARTITIONS}."
            )));
        }
        Ok(Self {
            client,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            slots: Mutex::new(Vec::new()),
            failing_since: Mutex::new(None),
            failing: AtomicBool::new(false),
            layout: Mutex::new(None),
            reading_layout: tokio::sync::Mutex::new(()),
            endpoint,
            secret,
            name: name.to_owned(),
            prefix_part: escape(&config.key_prefix, b"{}"),
            name_part: escape(name, b"{}:"),
            prefix: config.key_prefix,
            timeout: config.timeout,
            cluster: config.cluster,
            new_partitions,
            scripts: Scripts::new(),
        })
    }

    /// Runs `work` with the connection and the namespace's layout, within the timeout,
    /// connecting first when needed. A namespace that does not exist yet answers `absent()`
    /// without `work`, unless `create`, which makes it.
    async fn with<T, F>(
        &self,
        create: bool,
        absent: impl FnOnce() -> T,
        work: impl FnOnce(Connection, Arc<Layout>) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        match self.setup(create, deadline).await? {
            Some((connection, layout)) => {
                let result = self.by(deadline, work(connection, layout)).await;
                // The server answered (the setup may have answered from what was cached).
                if result.is_ok() {
                    self.observe(&result);
                }
                result
            }
            None => Ok(absent()),
        }
    }

    /// The connection and the namespace's layout (`None`: no layout, and not `create`), by
    /// `deadline`.
    async fn setup(
        &self,
        create: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Option<(Connection, Arc<Layout>)>> {
        self.by(deadline, async {
            let connection = self.connection().await?;
            let layout = self.layout(&connection, create).await?;
            Ok(layout.map(|layout| (connection, layout)))
        })
        .await
    }

    /// `work`'s result, or `Unavailable` if it has none by `deadline`. Each request in `work`
    /// gives up at `deadline` itself (see [`RedisBackend::request`]), so that its error can
    /// say which node did not answer; this is the bound if one did not.
    async fn by<T>(
        &self,
        deadline: tokio::time::Instant,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let bounded = tokio::time::timeout_at(deadline + Duration::from_millis(50), work);
        let result = DEADLINE
            .scope(deadline, bounded)
            .await
            .unwrap_or_else(|_| Err(self.no_answer(b"")));
        if result.is_err() {
            self.observe(&result);
        }
        result
    }

    /// What `request` answers, or `Unavailable` naming the node of Redis key `key` if there
    /// is no answer by the operation's deadline (or within the timeout, outside one).
    async fn request<T>(
        &self,
        key: &[u8],
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let deadline = DEADLINE
            .try_with(|deadline| *deadline)
            .unwrap_or_else(|_| tokio::time::Instant::now() + self.timeout);
        match tokio::time::timeout_at(deadline, request).await {
            Ok(answer) => answer.map_err(|e| self.error(e, key)),
            Err(_) => Err(self.no_answer(key)),
        }
    }

    /// Notes whether the server answered. On a cluster that has not answered for
    /// [`RECONNECT_AFTER`], the connection is dropped, so that the next operation connects
    /// afresh through every node known: a client whose view of the cluster went wrong
    /// (nodes restarted, slots moved while it could not follow) starts from the cluster's.
    fn observe<T>(&self, result: &Result<T>) {
        // Only a cluster is reconnected; an answer while nothing failed changes nothing.
        if !self.cluster || (result.is_ok() && !self.failing.load(Ordering::Relaxed)) {
            return;
        }
        let unavailable = match result {
            Ok(_) => false,
            Err(Error::Unknown { source, .. }) => matches!(**source, Error::Unavailable { .. }),
            Err(error) => matches!(error, Error::Unavailable { .. }),
        };
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        if !unavailable {
            if result.is_ok() {
                *since = None;
                self.failing.store(false, Ordering::Relaxed);
            }
            return;
        }
        let now = std::time::Instant::now();
        self.failing.store(true, Ordering::Relaxed);
        match *since {
            None => *since = Some(now),
            Some(start) if now - start >= RECONNECT_AFTER => {
                *since = Some(now);
                *self.cached_connection() = None;
            }
            Some(_) => {}
        }
    }

    fn cached_connection(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, made when there is none.
    async fn connection(&self) -> Result<Connection> {
        if let Some(connection) = self.cached_connection().clone() {
            return Ok(connection);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(connection) = self.cached_connection().clone() {
            return Ok(connection);
        }
        let connection = self.connect().await?;
        *self.cached_connection() = Some(connection.clone());
        Ok(connection)
    }

    /// The error of a request to the node of Redis key `key` that got no answer in time.
    fn no_answer(&self, key: &[u8]) -> Error {
        let detail = format!("no answer within {} ms", self.timeout.as_millis());
        match self.node_of(key) {
            Some((slot, node)) => Error::Unavailable {
                endpoint: node,
                detail: format!("{detail} (the cluster node serving slot {slot})"),
            },
            None => Error::Unavailable {
                endpoint: self.endpoint.clone(),
                detail,
            },
        }
    }

    async fn connect(&self) -> Result<Connection> {
        let layout_key = self.layout_key();
        let connection = match &self.client {
            Client::Single(client, config) => Connection::Single(
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map_err(|e| self.error(e, layout_key.as_bytes()))?,
            ),
            Client::Cluster(seed) => {
                let known: Vec<String> = self.known_slots().iter().map(|s| s.2.clone()).collect();
                let client = seed.client(&known).map_err(|e| self.error(e, b""))?;
                let connection = Connection::Cluster(
                    client
                        .get_async_connection()
                        .await
                        .map_err(|e| self.error(e, layout_key.as_bytes()))?,
                );
                self.read_slots(&connection).await;
                connection
            }
        };
        self.check_eviction(&connection).await?;
        Ok(connection)
    }

    fn known_slots(&self) -> std::sync::MutexGuard<'_, Vec<(u16, u16, String)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns which node serves which slots, for messages and reconnecting. Best effort: a
    /// user not allowed `CLUSTER SLOTS` keeps what was known.
    async fn read_slots(&self, connection: &Connection) {
        let Ok(ranges) = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut connection.clone())
            .await
        else {
            return;
        };
        let mut slots = Vec::new();
        for range in ranges {
            let redis::Value::Array(range) = range else {
                continue;
            };
            let (Some(first), Some(last), Some(redis::Value::Array(node))) =
                (range.first(), range.get(1), range.get(2))
            else {
                continue;
            };
            let (Ok(first), Ok(last)) = (
                redis::from_redis_value_ref::<u16>(first),
                redis::from_redis_value_ref::<u16>(last),
            ) else {
                continue;
            };
            let (Some(Ok(host)), Some(Ok(port))) = (
                node.first().map(redis::from_redis_value_ref::<String>),
                node.get(1).map(redis::from_redis_value_ref::<u16>),
            ) else {
                continue;
            };
            slots.push((first, last, format!("{host}:{port}")));
        }
        if !slots.is_empty() {
            *self.known_slots() = slots;
        }
    }

    /// The node that served the slot of Redis key `key` when last asked, on a cluster.
    fn node_of(&self, key: &[u8]) -> Option<(u16, String)> {
        if !self.cluster {
            return None;
        }
        let slot = slot_of(key);
        let slots = self.known_slots();
        let (.., node) = slots
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))?;
        Some((slot, node.clone()))
    }

    /// Refuses a server that evicts keys it did not mark as expiring: an evicted entry (or
    /// index, or layout copy) would vanish without an error. `noeviction` and the `volatile-*`
    /// policies never touch kv-binding's keys, which have no TTL. A user not allowed `INFO`
    /// is taken at its word.
    async fn check_eviction(&self, connection: &Connection) -> Result<()> {
        let Ok(info) = self
            .query::<String>(connection, redis::cmd("INFO").arg("memory"))
            .await
        else {
            return Ok(());
        };
        let policy = info
            .lines()
            .find_map(|line| line.strip_prefix("maxmemory_policy:"))
            .map(str::trim);
        match policy {
            Some(policy) if policy.starts_with("allkeys-") => Err(Error::StorageRemote {
                place: self.place(),
                detail: format!(
                    "the server evicts any key when its memory is full (maxmemory-policy \
                     {policy}), so entries would vanish without an error. Set \
                     maxmemory-policy to noeviction (or a volatile-* policy, which leaves keys \
                     without a TTL alone, as all of kv-binding's are)"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn cached_layout(&self) -> std::sync::MutexGuard<'_, Option<Arc<Layout>>> {
        self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace's layout: the one read before, or the server's, which is made (when
    /// `create`) if the namespace has none. Reading it writes nothing unless a partition's
    /// copy is missing, so a user who may only read can read.
    async fn layout(&self, connection: &Connection, create: bool) -> Result<Option<Arc<Layout>>> {
        if let Some(layout) = self.cached_layout().clone() {
            return Ok(Some(layout));
        }
        let _one_at_a_time = self.reading_layout.lock().await;
        if let Some(layout) = self.cached_layout().clone() {
            return Ok(Some(layout));
        }
        let mut text = self
            .query::<Option<Vec<u8>>>(connection, redis::cmd("GET").arg(self.layout_key()))
            .await?;
        if text.is_none() {
            text = self.upgraded(connection).await?;
        }
        if text.is_none() && create {
            text = self.make_layout(connection, self.new_partitions).await?;
        }
        let Some(text) = text else {
            return Ok(None);
        };
        let layout = Arc::new(self.read_layout(&text)?);
        self.copy_layout(connection, &layout).await?;
        *self.cached_layout() = Some(layout.clone());
        Ok(Some(layout))
    }

    /// Gives each partition its copy of `layout` where it has none (the process that made
    /// the layout may have stopped before it made them all).
    async fn copy_layout(&self, connection: &Connection, layout: &Layout) -> Result<()> {
        try_join_all((0..layout.partitions).map(|p| async move {
            let key = self.copy_key(p);
            let found: Option<Vec<u8>> =
                self.query(connection, redis::cmd("GET").arg(&key)).await?;
            let found = match found {
                Some(found) => Some(found),
                None => {
                    let mut set = redis::cmd("SET");
                    set.arg(&key).arg(&layout.text).arg("NX");
                    self.query::<Option<String>>(connection, &set).await?;
                    self.query(connection, redis::cmd("GET").arg(&key)).await?
                }
            };
            match found {
                Some(found) if found == layout.text.as_bytes() => Ok(()),
                _ => Err(self.layout_changed()),
            }
        }))
        .await
        .map(drop)
    }

    /// The layout text of a namespace written in format 1, upgraded to this format: format
    /// 1 kept the layout under `<prefix><namespace>:layout` and wrote names unescaped, which
    /// gives the same keys as now for names without `%`, `{`, `}` or `:`. A namespace with
    /// such a name cannot be upgraded in place: the error says how to move it.
    async fn upgraded(&self, connection: &Connection) -> Result<Option<Vec<u8>>> {
        let old_key = format!("{}{}:layout", self.prefix, self.name);
        let old: Option<Vec<u8>> = self
            .query(connection, redis::cmd("GET").arg(&old_key))
            .await?;
        let Some(old) = old else {
            return Ok(None);
        };
        let (format, partitions) = parse_layout(&old).ok_or_else(|| {
            self.corrupt(format!(
                "its layout key {old_key:?} does not hold a kv-binding layout"
            ))
        })?;
        if format != 1 {
            return Err(self.corrupt(format!(
                "its layout key {old_key:?} holds layout format {format}, and only format 1 \
                 kept its layout there"
            )));
        }
        if self.prefix_part != self.prefix || self.name_part != self.name {
            return Err(self.corrupt(format!(
                "it was written in layout format 1, whose key names could not hold a {} with \
                 '%', '{{', '}}' or ':'; dump() it with the kv-binding that wrote it and \
                 restore() it with this one",
                if self.name_part != self.name {
                    "namespace"
                } else {
                    "key prefix"
                }
            )));
        }
        let partitions = u32::try_from(partitions).unwrap_or(u32::MAX);
        self.make_layout(connection, partitions).await
    }

    /// Writes a new layout of `partitions` partitions unless the namespace has one by now,
    /// and gives the text the server holds.
    async fn make_layout(
        &self,
        connection: &Connection,
        partitions: u32,
    ) -> Result<Option<Vec<u8>>> {
        let fresh = format!(
            r#"{{"format":{REDIS_FORMAT},"partitions":{partitions},"id":"{:016x}"}}"#,
            random_id()
        );
        let mut set = redis::cmd("SET");
        set.arg(self.layout_key()).arg(&fresh).arg("NX");
        self.query::<Option<String>>(connection, &set).await?;
        self.query(connection, redis::cmd("GET").arg(self.layout_key()))
            .await
    }

    /// Sends one command.
    async fn query<T: redis::FromRedisValue>(
        &self,
        connection: &Connection,
        cmd: &Cmd,
    ) -> Result<T> {
        let key = match cmd.args_iter().nth(1) {
            Some(redis::Arg::Simple(key)) => key,
            _ => b"",
        };
        self.request(key, cmd.query_async(&mut connection.clone()))
            .await
    }

    fn read_layout(&self, bytes: &[u8]) -> Result<Layout> {
        let Some((format, partitions)) = parse_layout(bytes) else {
            return Err(self.corrupt(format!(
                "its layout key {:?} does not hold a kv-binding layout",
                self.layout_key()
            )));
        };
        if format != u64::from(REDIS_FORMAT) {
            return Err(self.corrupt(format!(
                "it was written in layout format {format}, which this version of kv-binding \
                 does not know (it writes format {REDIS_FORMAT}); use the version that wrote it"
            )));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| self.corrupt("its layout is not UTF-8".into()))?;
        match u32::try_from(partitions) {
            Ok(partitions) if (1..=MAX_PARTITIONS).contains(&partitions) => {
                Ok(Layout { partitions, text })
            }
            _ => Err(self.corrupt(format!("its layout names {partitions} partitions"))),
        }
    }

    /// The error of an operation that found a partition's copy of the layout other than the
    /// layout it was using. The layout is read again by the next operation.
    fn layout_changed(&self) -> Error {
        *self.cached_layout() = None;
        Error::StorageRemote {
            place: self.place(),
            detail: "its layout on the server is not the one this KV was using (the server \
                     was flushed or restarted empty, keys were evicted, or the namespace was \
                     removed and made again), so this operation stopped before it read or \
                     changed anything; the next one uses the layout the server holds now"
                .into(),
        }
    }

    /// Where messages say the namespace is.
    fn place(&self) -> String {
        format!(
            "{:?} on the Redis server at {} (key prefix {:?})",
            self.name, self.endpoint, self.prefix
        )
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::CorruptRemote {
            place: self.place(),
            detail,
        }
    }

    fn damaged(&self, key: &[u8], what: &str) -> Error {
        self.corrupt(format!(
            "the entry for key {:?} {what}",
            String::from_utf8_lossy(key)
        ))
    }

    /// A client error as the core's error: the server out of reach (or refusing our
    /// credentials) is `Unavailable`; anything else the server answers is `Storage`. On a
    /// cluster, an unavailable server is named: the node the cluster redirected to, or the
    /// one that served the slot of `key` (a Redis key of the operation) when last asked.
    fn error(&self, error: RedisError, key: &[u8]) -> Error {
        let mut detail = error.to_string();
        if let Some(secret) = &self.secret {
            detail = detail.replace(secret.as_str(), "***");
        }
        let code = error.code().unwrap_or_default();
        if code == "KVLAYOUT" {
            return self.layout_changed();
        }
        let redirect = error
            .redirect_node()
            .map(|(node, slot)| (slot, node.to_owned()));
        let unreachable = redirect.is_some()
            || error.is_io_error()
            || error.is_timeout()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || matches!(
                error.kind(),
                ErrorKind::AuthenticationFailed | ErrorKind::ClusterConnectionNotFound
            )
            || matches!(
                code,
                "NOAUTH"
                    | "WRONGPASS"
                    | "LOADING"
                    | "BUSY"
                    | "CLUSTERDOWN"
                    | "MASTERDOWN"
                    | "TRYAGAIN"
            );
        if !unreachable {
            return Error::StorageRemote {
                place: self.place(),
                detail,
            };
        }
        if matches!(code, "NOAUTH" | "WRONGPASS") || error.kind() == ErrorKind::AuthenticationFailed
        {
            detail = format!(
                "the server refused the credentials (check the user and password in the url): \
                 {detail}"
            );
        }
        let endpoint = match redirect.or_else(|| self.node_of(key)) {
            Some((slot, node)) => {
                detail = format!("{detail} (the cluster node serving slot {slot})");
                node
            }
            None => self.endpoint.clone(),
        };
        Error::Unavailable { endpoint, detail }
    }

    fn partition_of(key: &[u8], partitions: u32) -> u32 {
        crc32fast::hash(key) % partitions
    }

    /// Where the namespace's layout is recorded.
    fn layout_key(&self) -> String {
        format!("{}{{{}}}:layout", self.prefix_part, self.name_part)
    }

    /// The start of every Redis key of partition `p`.
    fn base(&self, p: u32) -> String {
        format!("{}{{{}:{p}}}:", self.prefix_part, self.name_part)
    }

    /// Partition `p`'s copy of the layout.
    fn copy_key(&self, p: u32) -> String {
        self.base(p) + "layout"
    }

    fn index_key(&self, p: u32) -> String {
        self.base(p) + "i"
    }

    fn meta_key(&self, p: u32) -> String {
        self.base(p) + "m"
    }

    fn value_key(&self, p: u32, key: &[u8]) -> Vec<u8> {
        let mut out = (self.base(p) + "v:").into_bytes();
        out.extend_from_slice(key);
        out
    }

    /// The three Redis keys an entry lives under: index, meta, value.
    fn entry_keys(&self, key: &[u8], partitions: u32) -> (String, String, Vec<u8>) {
        let p = Self::partition_of(key, partitions);
        (self.index_key(p), self.meta_key(p), self.value_key(p, key))
    }

    /// A record as every record is stored: behind the CRC-32 of its bytes, encoded in place
    /// so that a value is copied once.
    fn sealed(expiration: Option<i64>, metadata: Option<&str>, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0; 4];
        record::encode_into(&mut out, expiration, metadata, value, None);
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// The record inside a stored `bytes`, once its CRC-32 holds.
    fn unsealed<'a>(&self, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8]> {
        let (crc, body) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| self.damaged(key, "is too short to be a kv-binding record"))?;
        if u32::from_be_bytes(*crc) != crc32fast::hash(body) {
            return Err(self.damaged(key, "does not match its checksum"));
        }
        Ok(body)
    }

    /// Decodes a list record: expiration and metadata.
    fn listed(&self, key: &[u8], bytes: &[u8]) -> Result<(Option<i64>, Option<IVec>)> {
        let body = self.unsealed(key, bytes)?;
        let record = record::decode(body).map_err(|e| self.damaged(key, e.0))?;
        let metadata = record.metadata.map(|range| IVec::from(&body[range]));
        Ok((record.expiration, metadata))
    }

    /// Decodes a value record into an entry; the value's bytes are moved, not copied.
    fn entry(&self, key: &[u8], mut bytes: Vec<u8>) -> Result<Entry> {
        let body = self.unsealed(key, &bytes)?;
        let record = record::decode(body).map_err(|e| self.damaged(key, e.0))?;
        let Body::Inline(range) = record.body else {
            return Err(self.damaged(key, "points to a value outside Redis"));
        };
        let metadata = record.metadata.map(|m| IVec::from(&body[m]));
        let expiration = record.expiration;
        bytes.truncate(4 + range.end);
        bytes.drain(..4 + range.start);
        Ok(Entry {
            expiration,
            metadata,
            value: Value::Owned(bytes),
        })
    }

    /// The entry at `key`: its value record and its partition's copy of the layout, read
    /// together with one `MGET` (one slot: they share the partition's hash tag).
    async fn read(
        &self,
        connection: Connection,
        layout: &Layout,
        key: &[u8],
    ) -> Result<Option<Entry>> {
        let base = self.base(Self::partition_of(key, layout.partitions));
        let value_key = [base.as_bytes(), b"v:", key].concat();
        let mut mget = redis::cmd("MGET");
        mget.arg(value_key).arg(base + "layout");
        let (bytes, copy): (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.query(&connection, &mget).await?;
        if copy.as_deref() != Some(layout.text.as_bytes()) {
            return Err(self.layout_changed());
        }
        bytes.map(|bytes| self.entry(key, bytes)).transpose()
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.with(
            false,
            || None,
            |connection, layout| async move { self.read(connection, &layout, key).await },
        )
        .await
    }

    pub async fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Entry>>> {
        self.with(
            false,
            || vec![None; keys.len()],
            |connection, layout| async move {
                // Sent together on the one connection: a single round trip's wait.
                try_join_all(
                    keys.iter()
                        .map(|key| self.read(connection.clone(), &layout, key)),
                )
                .await
            },
        )
        .await
    }

    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        self.write(
            false,
            entries
                .iter()
                .map(|entry| (entry.key, entry.expiration, entry.metadata, entry.value)),
        )
        .await
    }

    /// A script call that starts by checking the layout copies of `partitions` (see
    /// [`CHECK_LAYOUT`]).
    fn invocation<'s>(
        &self,
        script: &'s Script,
        layout: &Layout,
        partitions: &[u32],
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(layout.text.as_str()).arg(partitions.len());
        for &p in partitions {
            invocation.key(self.copy_key(p));
        }
        invocation
    }

    /// The partitions of `keys` and of `also`, each once, in order: those whose layout copy a
    /// script that changes them checks.
    fn touched<'k>(
        keys: impl Iterator<Item = &'k [u8]>,
        also: &[u32],
        partitions: u32,
    ) -> Vec<u32> {
        let mut touched: Vec<u32> = keys
            .map(|key| Self::partition_of(key, partitions))
            .chain(also.iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    /// Which script call each partition's changes go in: all in one on a single server,
    /// where one script may touch any key; one partition per call on a cluster.
    fn group_of(&self, p: u32) -> u32 {
        if self.cluster {
            p
        } else {
            0
        }
    }

    /// Writes entries (key, expiration, metadata, value), after clearing the namespace when
    /// `clear`. On a single server the partitions go together, on a cluster each on its own
    /// (a script reaches one slot). Each goes in script calls of bounded size, so none holds
    /// the server for long: one call, atomic, when the entries fit in one chunk and the
    /// partitions to clear hold at most [`CLEAR_MAX`] keys; otherwise several, in order.
    async fn write<'e>(
        &self,
        clear: bool,
        entries: impl Iterator<Item = WriteEntry<'e>>,
    ) -> Result<()> {
        let entries: Vec<WriteEntry<'e>> = entries.collect();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Some((connection, layout)) = self.setup(true, deadline).await? else {
            return Ok(());
        };
        // The partitions each group clears, and the entries it writes.
        let mut groups: BTreeMap<u32, (Vec<u32>, Vec<usize>)> = BTreeMap::new();
        if clear {
            for p in 0..layout.partitions {
                groups.entry(self.group_of(p)).or_default().0.push(p);
            }
        }
        for (i, (key, ..)) in entries.iter().enumerate() {
            let p = Self::partition_of(key, layout.partitions);
            groups.entry(self.group_of(p)).or_default().1.push(i);
        }
        let calls = Calls::default();
        try_join_all(groups.iter().map(|(&group, (cleared, written))| {
            let chunks = chunks(written, &entries);
            let call = Call {
                connection: &connection,
                calls: &calls,
                key: self.copy_key(group),
            };
            self.write_group(call, &layout, cleared, chunks, &entries)
        }))
        .await
        .map(drop)
    }

    /// Clears the partitions `cleared`, then writes the entries of each chunk, a chunk per
    /// call. The first call carries the first chunk: if the partitions held few enough keys
    /// to be cleared in it, the whole clear-and-write is that one atomic call.
    async fn write_group(
        &self,
        call: Call<'_>,
        layout: &Layout,
        cleared: &[u32],
        chunks: Vec<&[usize]>,
        entries: &[WriteEntry<'_>],
    ) -> Result<()> {
        let mut rest = chunks.as_slice();
        if !cleared.is_empty() {
            let mut with: &[usize] = chunks[0];
            // 1: more to clear, and nothing was written.
            while self
                .call(&call, &self.write_call(layout, cleared, with, entries))
                .await?
                == 1
            {
                with = &[];
            }
            if with.len() == chunks[0].len() {
                rest = &chunks[1..];
            }
        }
        for chunk in rest.iter().filter(|chunk| !chunk.is_empty()) {
            self.call(&call, &self.write_call(layout, &[], chunk, entries))
                .await?;
        }
        Ok(())
    }

    /// A call of [`WRITE`]: clears the partitions `cleared` (up to [`CLEAR_MAX`] keys) and,
    /// once they are empty, writes the entries numbered `written`.
    fn write_call<'s>(
        &'s self,
        layout: &Layout,
        cleared: &[u32],
        written: &[usize],
        entries: &[WriteEntry<'_>],
    ) -> redis::ScriptInvocation<'s> {
        let keys = written.iter().map(|&i| entries[i].0);
        let touched = Self::touched(keys, cleared, layout.partitions);
        let mut invocation = self.invocation(&self.scripts.write, layout, &touched);
        invocation.arg(cleared.len()).arg(CLEAR_MAX);
        for &p in cleared {
            invocation.key(self.index_key(p)).key(self.meta_key(p));
            invocation.arg(self.base(p) + "v:");
        }
        for &i in written {
            let (key, expiration, metadata, value) = entries[i];
            let (index, meta, value_key) = self.entry_keys(key, layout.partitions);
            invocation.key(index).key(meta).key(value_key);
            invocation
                .arg(key)
                .arg(Self::sealed(expiration, metadata, b""))
                .arg(Self::sealed(expiration, metadata, value));
        }
        invocation
    }

    /// Runs one script call of a write, within the timeout. A failure says whether the write
    /// may have happened: it surely did not only when this was its one call so far and the
    /// server refused it, or the connection was refused before it was sent.
    async fn call(&self, call: &Call<'_>, invocation: &redis::ScriptInvocation<'_>) -> Result<i64> {
        let calls = call.calls;
        let first = calls.sent.fetch_add(1, Ordering::SeqCst) == 0;
        let mut connection = call.connection.clone();
        let answer = tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        let (error, refused) = match answer {
            Ok(Ok(more)) => {
                calls.applied.store(true, Ordering::SeqCst);
                let result = Ok(more);
                self.observe(&result);
                return result;
            }
            Ok(Err(error)) => {
                let refused = error.is_connection_refusal()
                    || !(error.is_io_error()
                        || error.is_timeout()
                        || error.is_connection_dropped());
                (self.error(error, call.key.as_bytes()), refused)
            }
            Err(_) => (self.no_answer(call.key.as_bytes()), false),
        };
        let alone = first && calls.sent.load(Ordering::SeqCst) == 1;
        let applied = calls.applied.load(Ordering::SeqCst);
        let result = if refused && alone && !applied {
            Err(error)
        } else {
            Err(Error::Unknown {
                source: Box::new(error),
                partly: applied,
            })
        };
        self.observe(&result);
        result
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.delete_if(&[(key, Vec::new())]).await
    }

    /// Deletes entries (key, and the list record it must still have; empty: any): one call
    /// on a single server, one per partition on a cluster.
    async fn delete_if(&self, entries: &[(&[u8], Vec<u8>)]) -> Result<()> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let Some((connection, layout)) = self.setup(false, deadline).await? else {
            return Ok(());
        };
        // Which entries (by index) each script call deletes.
        let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (key, _)) in entries.iter().enumerate() {
            let p = Self::partition_of(key, layout.partitions);
            groups.entry(self.group_of(p)).or_default().push(i);
        }
        let calls = Calls::default();
        try_join_all(groups.iter().map(|(&p, group)| {
            let keys = group.iter().map(|&i| entries[i].0);
            let touched = Self::touched(keys, &[], layout.partitions);
            let mut invocation = self.invocation(&self.scripts.delete_if, &layout, &touched);
            for (key, seen) in group.iter().map(|&i| &entries[i]) {
                let (index, meta, value_key) = self.entry_keys(key, layout.partitions);
                invocation.key(index).key(meta).key(value_key);
                invocation.arg(*key).arg(seen.as_slice());
            }
            let call = Call {
                connection: &connection,
                calls: &calls,
                key: self.copy_key(p),
            };
            async move { self.call(&call, &invocation).await }
        }))
        .await
        .map(drop)
    }

    /// Removes the keys whose entries are expired at `now_ms`, each only if nobody has
    /// written it since it was read here.
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        let records: Vec<Option<Vec<u8>>> = self
            .with(false, Vec::new, |connection, layout| async move {
                try_join_all(keys.iter().map(|key| {
                    let connection = connection.clone();
                    let layout = &layout;
                    async move {
                        let (_, meta, _) = self.entry_keys(key, layout.partitions);
                        self.query(&connection, redis::cmd("HGET").arg(meta).arg(*key))
                            .await
                    }
                }))
                .await
            })
            .await?;
        let mut expired = Vec::new();
        for (key, record) in keys.iter().zip(records) {
            let Some(record) = record else { continue };
            // A damaged record is not ours to remove: reading the key reports it.
            if let Ok((expiration, _)) = self.listed(key, &record) {
                if is_expired(expiration, now_ms) {
                    expired.push((*key, record));
                }
            }
        }
        if expired.is_empty() {
            return Ok(());
        }
        // Whether a reclaim happened does not matter to the read that asked for it.
        self.delete_if(&expired).await.map_err(|error| match error {
            Error::Unknown { source, .. } => *source,
            error => error,
        })
    }

    /// One batch of partition `p`: up to `count` keys from `start` (a ZRANGEBYLEX bound),
    /// with their list records.
    async fn scan_batch(
        &self,
        mut connection: Connection,
        layout: &Layout,
        p: u32,
        start: Vec<u8>,
        count: usize,
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        let mut invocation = self.invocation(&self.scripts.scan, layout, &[p]);
        invocation
            .key(self.index_key(p))
            .key(self.meta_key(p))
            .arg(start)
            .arg(count);
        let flat: Vec<Option<Vec<u8>>> = self
            .request(
                self.copy_key(p).as_bytes(),
                invocation.invoke_async(&mut connection),
            )
            .await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(key), Some(record)) = (items.next(), items.next()) {
            let key = key.ok_or_else(|| self.corrupt("a partition index holds a nil".into()))?;
            out.push((key, record));
        }
        self.mend_records(&connection, layout, p, &mut out).await?;
        Ok(out)
    }

    /// Goes on where a list record is missing or damaged (a key evicted, a hash written by
    /// something else): the value record holds the same expiration and metadata, so it
    /// stands in. A key with neither is gone, and is left `None`; a damaged value record is
    /// kept, so that listing it fails naming the key, as reading it does.
    async fn mend_records(
        &self,
        connection: &Connection,
        layout: &Layout,
        p: u32,
        items: &mut [(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<()> {
        let bad: Vec<usize> = (0..items.len())
            .filter(|&i| {
                let (key, record) = &items[i];
                record
                    .as_ref()
                    .is_none_or(|record| self.listed(key, record).is_err())
            })
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        // With the partition's copy of the layout, read in the same step.
        let mut mget = redis::cmd("MGET");
        for &i in &bad {
            mget.arg(self.value_key(p, &items[i].0));
        }
        mget.arg(self.copy_key(p));
        let mut values: Vec<Option<Vec<u8>>> = self.query(connection, &mget).await?;
        if values.pop().flatten().as_deref() != Some(layout.text.as_bytes()) {
            return Err(self.layout_changed());
        }
        for (&i, value) in bad.iter().zip(values) {
            items[i].1 = value;
        }
        Ok(())
    }

    pub async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        want: usize,
        visit: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        self.with(
            false,
            || (),
            |connection, layout| async move {
                let partitions = layout.partitions;
                // Every partition starts at the same ZRANGEBYLEX bound.
                let first = match after {
                    Some(after) if after >= prefix => [b"(", after].concat(),
                    _ => [b"[", prefix].concat(),
                };
                // Each partition in a buffer, refilled when empty; the smallest head is next.
                let count = (want * 2 / partitions as usize).clamp(16, BATCH_MAX);
                let mut parts: Vec<Part> = (0..partitions)
                    .map(|_| Part {
                        buffer: std::collections::VecDeque::new(),
                        next: Some(first.clone()),
                    })
                    .collect();
                loop {
                    let empty: Vec<u32> = (0..partitions)
                        .filter(|&p| {
                            let part = &parts[p as usize];
                            part.buffer.is_empty() && part.next.is_some()
                        })
                        .collect();
                    let batches = try_join_all(empty.iter().map(|&p| {
                        let start = parts[p as usize].next.clone().unwrap_or_default();
                        self.scan_batch(connection.clone(), &layout, p, start, count)
                    }))
                    .await?;
                    for (&p, batch) in empty.iter().zip(batches) {
                        let part = &mut parts[p as usize];
                        let full = batch.len() == count;
                        part.next = match batch.last() {
                            Some((last, _)) if full && last.starts_with(prefix) => {
                                Some([b"(", last.as_slice()].concat())
                            }
                            _ => None,
                        };
                        part.buffer.extend(
                            batch
                                .into_iter()
                                .take_while(|(key, _)| key.starts_with(prefix)),
                        );
                    }
                    let head = parts
                        .iter()
                        .enumerate()
                        .filter_map(|(p, part)| part.buffer.front().map(|(key, _)| (key, p)))
                        .min();
                    let Some((_, p)) = head else {
                        return Ok(());
                    };
                    let Some((key, record)) = parts[p].buffer.pop_front() else {
                        return Ok(());
                    };
                    // Neither a list record nor a value: the entry is gone.
                    let Some(record) = record else { continue };
                    let (expiration, metadata) = self.listed(&key, &record)?;
                    if !visit(&key, expiration, metadata.as_ref()) {
                        return Ok(());
                    }
                }
            },
        )
        .await
    }

    pub async fn entries(
        &self,
        mut skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        let found: Vec<(Vec<u8>, Option<Vec<u8>>)> = self
            .with(false, Vec::new, |connection, layout| async move {
                let mut found = Vec::new();
                for p in 0..layout.partitions {
                    let copy: Option<Vec<u8>> = self
                        .query(&connection, redis::cmd("GET").arg(self.copy_key(p)))
                        .await?;
                    if copy.as_deref() != Some(layout.text.as_bytes()) {
                        return Err(self.layout_changed());
                    }
                    let keys: Vec<Vec<u8>> = self
                        .query(
                            &connection,
                            redis::cmd("ZRANGE").arg(self.index_key(p)).arg(0).arg(-1),
                        )
                        .await?;
                    for chunk in keys.chunks(256) {
                        let values = try_join_all(chunk.iter().map(|key| {
                            let connection = connection.clone();
                            async move {
                                self.query::<Option<Vec<u8>>>(
                                    &connection,
                                    redis::cmd("GET").arg(self.value_key(p, key)),
                                )
                                .await
                            }
                        }))
                        .await?;
                        found.extend(chunk.iter().cloned().zip(values));
                    }
                }
                Ok(found)
            })
            .await?;
        let mut entries = Vec::with_capacity(found.len());
        for (key, bytes) in found {
            // Deleted between the index read and the value read.
            let Some(bytes) = bytes else { continue };
            match (self.entry(&key, bytes), skip.as_deref_mut()) {
                (Ok(entry), _) => entries.push((IVec::from(key), entry)),
                (Err(error @ Error::CorruptRemote { .. }), Some(skip)) => {
                    skip(IVec::from(key), error)
                }
                (Err(error), _) => return Err(error),
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Removes every Redis key of the namespace, its layout (and its copies) included.
    pub async fn remove(&self) -> Result<()> {
        self.write(true, std::iter::empty()).await?;
        self.with(
            false,
            || (),
            |connection, layout| async move {
                self.query::<()>(&connection, redis::cmd("DEL").arg(self.layout_key()))
                    .await?;
                *self.cached_layout() = None;
                try_join_all((0..layout.partitions).map(|p| {
                    let connection = connection.clone();
                    async move {
                        self.query::<()>(&connection, redis::cmd("DEL").arg(self.copy_key(p)))
                            .await
                    }
                }))
                .await
                .map(drop)
            },
        )
        .await
    }

    pub async fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        self.write(
            true,
            entries.iter().map(|(key, entry)| {
                (
                    key.as_ref(),
                    entry.expiration,
                    entry
                        .metadata
                        .as_ref()
                        .map(|m| std::str::from_utf8(m).unwrap_or_default()),
                    entry.value.bytes().unwrap_or_default(),
                )
            }),
        )
        .await
    }
}

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

/// An entry to write: key, expiration, metadata, value.
type WriteEntry<'e> = (&'e [u8], Option<i64>, Option<&'e str>, &'e [u8]);

/// `written` (entry numbers) cut into runs of at most [`CHUNK_ENTRIES`] entries and
/// [`CHUNK_BYTES`] bytes, in order; at least one run, which may be empty.
fn chunks<'w>(written: &'w [usize], entries: &[WriteEntry<'_>]) -> Vec<&'w [usize]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (n, &i) in written.iter().enumerate() {
        let (key, _, metadata, value) = entries[i];
        let size = key.len() + 2 * metadata.map_or(0, str::len) + value.len();
        if n > start && (n - start == CHUNK_ENTRIES || bytes + size > CHUNK_BYTES) {
            out.push(&written[start..n]);
            (start, bytes) = (n, 0);
        }
        bytes += size;
    }
    out.push(&written[start..]);
    out
}

/// The script calls of one write so far: how many were sent, and whether one was applied.
#[derive(Default)]
struct Calls {
    sent: AtomicUsize,
    applied: AtomicBool,
}

/// Where the script calls of one part of a write go: the connection, the write's
/// [`Calls`], and a Redis key of the part's slot (for messages).
struct Call<'a> {
    connection: &'a Connection,
    calls: &'a Calls,
    key: String,
}

/// One partition during a scan: fetched keys not yet visited, and where to fetch next
/// (`None` once it has no more keys under the prefix).
struct Part {
    buffer: std::collections::VecDeque<(Vec<u8>, Option<Vec<u8>>)>,
    next: Option<Vec<u8>>,
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
    fn get<'a>(&'a self, key: &'a [u8]) -> Pending<'a, Option<Entry>> {
        Box::pin(RedisBackend::get(self, key))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a [u8]]) -> Pending<'a, Vec<Option<Entry>>> {
        Box::pin(RedisBackend::get_many(self, keys))
    }

    fn put_all<'a>(&'a self, entries: &'a [PutEntry<'a>]) -> Pending<'a, ()> {
        Box::pin(RedisBackend::put_all(self, entries))
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> Pending<'a, ()> {
        Box::pin(RedisBackend::delete(self, key))
    }

    fn delete_expired<'a>(&'a self, keys: &'a [&'a [u8]], now_ms: i64) -> Pending<'a, ()> {
        Box::pin(RedisBackend::delete_expired(self, keys, now_ms))
    }

    fn scan<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        want: usize,
        visit: &'a mut ScanVisitor<'_>,
    ) -> Pending<'a, ()> {
        Box::pin(RedisBackend::scan(self, prefix, after, want, visit))
    }

    fn entries<'a>(&'a self, skip: Option<&'a mut DamageSink<'_>>) -> Pending<'a, Entries> {
        Box::pin(RedisBackend::entries(self, skip))
    }

    fn replace_all<'a>(&'a self, entries: &'a [(IVec, Entry)]) -> Pending<'a, ()> {
        Box::pin(RedisBackend::replace_all(self, entries))
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

//! Connecting: one server or a cluster, reconnecting after failures, the slot map that
//! names the node an error came from, and the bounds every request runs within.

use super::*;
use crate::backends::deadline::within;

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
                // Each request has a deadline of its own (see `request`), armed lazily.
                .set_response_timeout(None)
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
            registered: AtomicBool::new(false),
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
    pub(super) async fn with<T, F>(
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
    pub(super) async fn setup(
        &self,
        create: bool,
        deadline: tokio::time::Instant,
    ) -> Result<Option<(Connection, Arc<Layout>)>> {
        self.by(deadline, async {
            let connection = self.connection().await?;
            let layout = self.layout(&connection, create).await?;
            if create {
                self.register(&connection).await?;
            }
            Ok(layout.map(|layout| (connection, layout)))
        })
        .await
    }

    /// `work`'s result, or `Unavailable` if it has none by `deadline`. Each request in `work`
    /// gives up at `deadline` itself (see [`RedisBackend::request`]), so that its error can
    /// say which node did not answer; this is the bound if one did not.
    pub(super) async fn by<T>(
        &self,
        deadline: tokio::time::Instant,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let bounded = within(deadline + Duration::from_millis(50), work);
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
    pub(super) async fn request<T>(
        &self,
        key: &[u8],
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let deadline = DEADLINE
            .try_with(|deadline| *deadline)
            .unwrap_or_else(|_| tokio::time::Instant::now() + self.timeout);
        match within(deadline, request).await {
            Ok(answer) => answer.map_err(|e| self.error(e, key)),
            Err(_) => Err(self.no_answer(key)),
        }
    }

    /// Notes whether the server answered. On a cluster that has not answered for
    /// [`RECONNECT_AFTER`], the connection is dropped, so that the next operation connects
    /// afresh through every node known: a client whose view of the cluster went wrong
    /// (nodes restarted, slots moved while it could not follow) starts from the cluster's.
    pub(super) fn observe<T>(&self, result: &Result<T>) {
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

    pub(super) fn cached_connection(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection, made when there is none.
    pub(super) async fn connection(&self) -> Result<Connection> {
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
    pub(super) fn no_answer(&self, key: &[u8]) -> Error {
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

    pub(super) async fn connect(&self) -> Result<Connection> {
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

    pub(super) fn known_slots(&self) -> std::sync::MutexGuard<'_, Vec<(u16, u16, String)>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Learns which node serves which slots, for messages and reconnecting. Best effort: a
    /// user not allowed `CLUSTER SLOTS` keeps what was known.
    pub(super) async fn read_slots(&self, connection: &Connection) {
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
    pub(super) fn node_of(&self, key: &[u8]) -> Option<(u16, String)> {
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
    pub(super) async fn check_eviction(&self, connection: &Connection) -> Result<()> {
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
}

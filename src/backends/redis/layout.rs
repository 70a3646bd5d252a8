//! The namespace's layout (its format, partitions and id) and the names and bytes of the
//! Redis keys it implies: made by the first write, checked by every operation, upgraded
//! from format 1.

use super::*;

impl RedisBackend {
    pub(super) fn cached_layout(&self) -> std::sync::MutexGuard<'_, Option<Arc<Layout>>> {
        self.layout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace's layout: the one read before, or the server's, which is made (when
    /// `create`) if the namespace has none. Reading it writes nothing unless a partition's
    /// copy is missing, so a user who may only read can read.
    pub(super) async fn layout(
        &self,
        connection: &Connection,
        create: bool,
    ) -> Result<Option<Arc<Layout>>> {
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
    pub(super) async fn copy_layout(&self, connection: &Connection, layout: &Layout) -> Result<()> {
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
    pub(super) async fn upgraded(&self, connection: &Connection) -> Result<Option<Vec<u8>>> {
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
    pub(super) async fn make_layout(
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

    /// The key of the set of every namespace written under this key prefix. Its name has no
    /// `{`, so that no key of a namespace can be it.
    pub(super) fn namespaces_key(&self) -> String {
        format!("{}namespaces", self.prefix_part)
    }

    /// Notes the namespace in its key prefix's set of namespaces, once per handle: done by the
    /// first operation that may write, so that a user who may only read never writes.
    pub(super) async fn register(&self, connection: &Connection) -> Result<()> {
        if self.registered.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut add = redis::cmd("SADD");
        add.arg(self.namespaces_key()).arg(&self.name);
        self.query::<i64>(connection, &add).await?;
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// The namespaces written under this key prefix, in byte order. A member that no KV
    /// could have named is damage, reported as such.
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        self.by(deadline, async {
            let connection = self.connection().await?;
            let key = self.namespaces_key();
            let members: Vec<Vec<u8>> = self
                .query(&connection, redis::cmd("SMEMBERS").arg(&key))
                .await?;
            let mut names = members
                .into_iter()
                .map(|member| {
                    String::from_utf8(member)
                        .ok()
                        .filter(|name| check_namespace_name(name).is_ok())
                        .ok_or_else(|| {
                            self.corrupt(format!(
                                "the set {key:?} holds a namespace name no KV could have made"
                            ))
                        })
                })
                .collect::<Result<Vec<String>>>()?;
            names.sort_unstable();
            Ok(names)
        })
        .await
    }

    /// Sends one command.
    pub(super) async fn query<T: redis::FromRedisValue>(
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

    pub(super) fn read_layout(&self, bytes: &[u8]) -> Result<Layout> {
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
    pub(super) fn layout_changed(&self) -> Error {
        *self.cached_layout() = None;
        // What changed it may have taken the set of namespaces too: noted again on next write.
        self.registered.store(false, Ordering::Release);
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
    pub(super) fn place(&self) -> String {
        format!(
            "{:?} on the Redis server at {} (key prefix {:?})",
            self.name, self.endpoint, self.prefix
        )
    }

    pub(super) fn corrupt(&self, detail: String) -> Error {
        Error::CorruptRemote {
            place: self.place(),
            detail,
        }
    }

    pub(super) fn damaged(&self, key: &[u8], what: &str) -> Error {
        self.corrupt(format!(
            "the entry for key {:?} {what}",
            String::from_utf8_lossy(key)
        ))
    }

    /// A client error as the core's error: the server out of reach (or refusing our
    /// credentials) is `Unavailable`; anything else the server answers is `Storage`. On a
    /// cluster, an unavailable server is named: the node the cluster redirected to, or the
    /// one that served the slot of `key` (a Redis key of the operation) when last asked.
    pub(super) fn error(&self, error: RedisError, key: &[u8]) -> Error {
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

    pub(super) fn partition_of(key: &[u8], partitions: u32) -> u32 {
        crc32fast::hash(key) % partitions
    }

    /// Where the namespace's layout is recorded.
    pub(super) fn layout_key(&self) -> String {
        format!("{}{{{}}}:layout", self.prefix_part, self.name_part)
    }

    /// The start of every Redis key of partition `p`.
    pub(super) fn base(&self, p: u32) -> String {
        format!("{}{{{}:{p}}}:", self.prefix_part, self.name_part)
    }

    /// Partition `p`'s copy of the layout.
    pub(super) fn copy_key(&self, p: u32) -> String {
        self.base(p) + "layout"
    }

    pub(super) fn index_key(&self, p: u32) -> String {
        self.base(p) + "i"
    }

    pub(super) fn meta_key(&self, p: u32) -> String {
        self.base(p) + "m"
    }

    pub(super) fn value_key(&self, p: u32, key: &[u8]) -> Vec<u8> {
        let mut out = (self.base(p) + "v:").into_bytes();
        out.extend_from_slice(key);
        out
    }

    /// The three Redis keys an entry lives under: index, meta, value.
    pub(super) fn entry_keys(&self, key: &[u8], partitions: u32) -> (String, String, Vec<u8>) {
        let p = Self::partition_of(key, partitions);
        (self.index_key(p), self.meta_key(p), self.value_key(p, key))
    }

    /// A record as every record is stored: behind the CRC-32 of its bytes, encoded in place
    /// so that a value is copied once.
    pub(super) fn sealed(expiration: Option<i64>, metadata: Option<&str>, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0; 4];
        record::encode_into(&mut out, expiration, metadata, value, None);
        let crc = crc32fast::hash(&out[4..]);
        out[..4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// The record inside a stored `bytes`, once its CRC-32 holds.
    pub(super) fn unsealed<'a>(&self, key: &[u8], bytes: &'a [u8]) -> Result<&'a [u8]> {
        let (crc, body) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| self.damaged(key, "is too short to be a kv-binding record"))?;
        if u32::from_be_bytes(*crc) != crc32fast::hash(body) {
            return Err(self.damaged(key, "does not match its checksum"));
        }
        Ok(body)
    }

    /// Decodes a list record: expiration and metadata.
    pub(super) fn listed(&self, key: &[u8], bytes: &[u8]) -> Result<(Option<i64>, Option<IVec>)> {
        let body = self.unsealed(key, bytes)?;
        let record = record::decode(body).map_err(|e| self.damaged(key, e.0))?;
        let metadata = record.metadata.map(|range| IVec::from(&body[range]));
        Ok((record.expiration, metadata))
    }

    /// Decodes a value record into an entry; the value's bytes are moved, not copied.
    pub(super) fn entry(&self, key: &[u8], mut bytes: Vec<u8>) -> Result<Entry> {
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
}

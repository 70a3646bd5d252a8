//! The namespace as a whole: dumps, snapshots and restores, clearing, flushing, closing.

use super::*;

/// The names of a store's namespaces; `None` in memory.
type Names = Option<Vec<String>>;

/// One request a store's holder answered for another process (see [`store::Served`]).
#[napi(object)]
pub struct ServedOperation {
    pub seq: f64,
    /// Milliseconds since the UNIX epoch.
    pub at: f64,
    /// The pid of the process that asked (0 where the system does not tell it).
    pub client: u32,
    pub op: String,
    pub namespace: String,
    pub key: String,
    pub size: Option<f64>,
    pub keys: Option<f64>,
    /// How long the holder took, in milliseconds.
    pub ms: f64,
    pub error: Option<String>,
}

/// What a holder answered after a point of its log, and the point to ask from next.
#[napi(object)]
pub struct ServedOperations {
    pub operations: Vec<ServedOperation>,
    pub last: f64,
}

fn served_operations(page: Option<store::ServedPage>) -> Option<ServedOperations> {
    page.map(|page| ServedOperations {
        operations: page
            .operations
            .into_iter()
            .map(|served| ServedOperation {
                seq: served.seq as f64,
                at: served.at_ms as f64,
                client: served.client,
                op: served.op,
                namespace: served.namespace,
                key: served.key,
                size: served.size.map(|size| size as f64),
                keys: served.keys.map(|keys| keys as f64),
                ms: served.micros as f64 / 1000.0,
                error: served.error,
            })
            .collect(),
        last: page.last as f64,
    })
}

/// The contents of a namespace at one moment, held by `snapshot()` for `restore()`.
#[napi]
pub struct NativeSnapshot {
    pub(crate) inner: Arc<store::Snapshot>,
}

#[napi]
impl NativeSnapshot {
    /// How many entries it holds.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }
}

#[napi]
impl NativeNamespace {
    /// Every live entry, read off the JS thread: `[entries, damaged]`, with
    /// `[key, value, expiration, metadata]` for each entry. A damaged entry fails the dump,
    /// unless `skipDamaged`: then it is left out and listed in `damaged` as
    /// `[key, message]`.
    #[napi(
        ts_return_type = "Promise<[Array<[string, Buffer, number | null, string | null]>, Array<[string, string]>] | Failure>"
    )]
    pub fn dump_async<'env>(
        &self,
        env: &'env Env,
        now: f64,
        skip_damaged: bool,
    ) -> Result<Pending<'env, Dump, (Vec<Dumped>, Damaged)>> {
        self.off_thread(
            env,
            |namespace| async move {
                let mut damaged = Vec::new();
                let entries = {
                    let mut skip = |key: ::sled::IVec, error: store::Error| {
                        damaged.push((text_of(&key), error.to_string()));
                    };
                    let skip: Option<&mut store::DamageSink<'_>> =
                        if skip_damaged { Some(&mut skip) } else { None };
                    namespace.dump_async(now_ms(now), skip).await?
                };
                let entries = entries
                    .into_iter()
                    .filter_map(|(key, entry)| {
                        let expiration = entry.expiration.map(|seconds| seconds as f64);
                        let (value, metadata) = owned_pair(entry, false)?;
                        let Either::B(bytes) = value else {
                            return None;
                        };
                        Some((text_of(&key), bytes, expiration, metadata))
                    })
                    .collect();
                Ok((entries, damaged))
            },
            |(entries, damaged): Dump| {
                let entries = entries
                    .into_iter()
                    .map(|(key, bytes, expiration, metadata)| {
                        (key, bytes.into(), expiration, metadata)
                    })
                    .collect();
                (entries, damaged)
            },
        )
    }

    /// Takes a snapshot of the namespace off the JS thread.
    #[napi(ts_return_type = "Promise<NativeSnapshot | Failure>")]
    pub fn snapshot_async<'env>(
        &self,
        env: &'env Env,
    ) -> Result<Pending<'env, store::Snapshot, NativeSnapshot>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.snapshot_async().await },
            |snapshot| NativeSnapshot {
                inner: Arc::new(snapshot),
            },
        )
    }

    /// Puts the namespace back to `snapshot` on the JS thread: for a namespace in memory,
    /// where that takes microseconds and a trip to the thread pool would cost more.
    #[napi(catch_unwind)]
    pub fn restore(&self, snapshot: &NativeSnapshot) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.restore(&snapshot.inner)).map_err(js_error)
    }

    /// Puts the namespace back to `snapshot`, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn restore_async<'env>(
        &self,
        env: &'env Env,
        snapshot: &NativeSnapshot,
    ) -> Result<Pending<'env, (), ()>> {
        let snapshot = snapshot.inner.clone();
        self.off_thread(
            env,
            |namespace| async move { namespace.restore_async(&snapshot).await },
            nothing,
        )
    }

    /// Deletes every entry, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn clear_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.clear_async().await },
            nothing,
        )
    }

    /// Deletes every entry and every trace of the namespace in its store, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn remove_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.remove_async().await },
            nothing,
        )
    }

    /// The names of the namespaces in this namespace's store, in byte order (`null` in
    /// memory, where a namespace stands alone), off the JS thread.
    #[napi(ts_return_type = "Promise<Array<string> | null | Failure>")]
    pub fn namespaces_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, Names, Names>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.namespaces_async().await },
            std::convert::identity,
        )
    }

    /// The requests the store's holder answered for other processes after `after` in its
    /// log (`null` unless the store is shared through a holder), off the JS thread. Asking
    /// keeps the holder logging for ten seconds more.
    #[napi(ts_return_type = "Promise<ServedOperations | null | Failure>")]
    pub fn served_async<'env>(
        &self,
        env: &'env Env,
        after: f64,
    ) -> Result<Pending<'env, Option<store::ServedPage>, Option<ServedOperations>>> {
        let after = if after.is_finite() && after > 0.0 {
            after as u64
        } else {
            0
        };
        self.off_thread(
            env,
            move |namespace| async move { namespace.served_async(after).await },
            served_operations,
        )
    }

    /// Makes every write so far durable, off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn flush<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.flush_async().await },
            nothing,
        )
    }

    /// Flushes and lets go of the store; later calls fail with `ERR_KV_CLOSED`. Closing twice
    /// is fine. The last handle of a store closes it off the JS thread, after the flush.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        let Some(namespace) = self.inner.take() else {
            // Closed already: nothing to flush, and any namespace's pool will do.
            return start(env, &Namespace::in_memory(), async { Ok(()) }, nothing);
        };
        let work = {
            let namespace = namespace.clone();
            async move { namespace.flush_async().await }
        };
        start(env, &namespace, work, nothing)
    }
}

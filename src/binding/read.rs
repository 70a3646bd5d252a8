//! Reads: in-line when the value is short and the namespace local, off the JS thread
//! otherwise; bulk reads; list pages.

use super::*;

#[napi]
impl NativeNamespace {
    pub(super) fn read(
        &self,
        key: &str,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Option<Value>> {
        let namespace = self.namespace()?;
        guarded(|| namespace.get(key, cache_ttl, u64::from(IN_LINE_MAX), now_ms(now)))
            .map(|entry| entry.map(|entry| entry.value))
            .map_err(js_error)
    }

    /// Reads `key` as text: a string, `null` when missing, or the value's length when it is too
    /// long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_text<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Read<JsString<'env>>> {
        Ok(match self.read(&key, cache_ttl, now)? {
            None => Either3::B(Null),
            Some(Value::Deferred { len }) => Either3::C(len as f64),
            Some(value) => Either3::A(js_text(env, value.bytes().unwrap_or_default())?),
        })
    }

    /// Reads `key` as bytes: a Buffer, `null` when missing, or the value's length when it is
    /// too long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_bytes<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Read<BufferSlice<'env>>> {
        Ok(match self.read(&key, cache_ttl, now)? {
            None => Either3::B(Null),
            Some(Value::Deferred { len }) => Either3::C(len as f64),
            Some(value) => {
                let bytes = value.bytes().unwrap_or_default();
                Either3::A(BufferSlice::copy_from(env, bytes).map_err(napi_failure)?)
            }
        })
    }

    /// Reads `key` with its metadata, both from one version of the entry:
    /// `[value, metadata, cacheStatus]` (text or a Buffer; metadata JSON or `null`;
    /// `"HIT"`/`"MISS"` when consistency is simulated, else `null`), `null` when missing, or
    /// the value's length when it is too long to read in-line (then call `readAsync`).
    #[napi(catch_unwind)]
    pub fn get_with_metadata<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Text,
        cache_ttl: Option<i32>,
        as_text: bool,
        now: f64,
    ) -> Result<Read<InLineRead<'env>>> {
        let namespace = self.namespace()?;
        let (entry, status) = guarded(|| {
            namespace.get_reporting(&key, cache_ttl, u64::from(IN_LINE_MAX), now_ms(now))
        })
        .map_err(js_error)?;
        let Some(entry) = entry else {
            return Ok(Either3::B(Null));
        };
        if let Value::Deferred { len } = entry.value {
            return Ok(Either3::C(len as f64));
        }
        let bytes = entry.value.bytes().unwrap_or_default();
        let metadata = entry
            .metadata
            .as_ref()
            .map(|m| js_text(env, m))
            .transpose()?;
        let value = js_value(env, bytes, as_text)?;
        Ok(Either3::A(match status {
            None => Either::A((value, metadata)),
            Some(status) => Either::B((value, metadata, status.as_str())),
        }))
    }

    /// Reads `key` off the JS thread; resolves `[value, metadata, cacheStatus]` (text when
    /// `asText`, otherwise a Buffer) or `null`.
    #[napi(
        ts_return_type = "Promise<[string | Buffer, string | null, string | null] | null | Failure>"
    )]
    pub fn read_async<'env>(
        &self,
        env: &'env Env,
        key: String,
        cache_ttl: Option<i32>,
        as_text: bool,
        now: f64,
    ) -> Result<Pending<'env, Option<OwnedRead>, Option<JsRead>>> {
        self.off_thread(
            env,
            |namespace| async move {
                let (entry, status) = namespace
                    .get_reporting_async(&key, cache_ttl, u64::MAX, now_ms(now))
                    .await?;
                Ok(entry
                    .and_then(|entry| owned_pair(entry, as_text))
                    .map(|pair| (pair, status)))
            },
            |read| {
                read.map(|(pair, status)| {
                    let (value, metadata) = js_pair(pair);
                    (value, metadata, status.map(|status| status.as_str().into()))
                })
            },
        )
    }

    /// Reads up to 100 keys as text: `[text, metadata]` or `null` per key, in request order,
    /// or `null` for the whole read when the values are too long to read in-line (then call
    /// `getBulkAsync`).
    #[napi(catch_unwind)]
    pub fn get_bulk(
        &self,
        keys: Vec<String>,
        kind: Option<String>,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Option<BulkEntries>> {
        let namespace = self.namespace()?;
        guarded(|| {
            namespace.get_bulk(
                &keys,
                kind.as_deref(),
                cache_ttl,
                u64::from(IN_LINE_MAX),
                now_ms(now),
            )
        })
        .map(|entries| entries.map(bulk_entries))
        .map_err(js_error)
    }

    /// `getBulk` off the JS thread, with no bound on value lengths.
    #[napi(ts_return_type = "Promise<Array<[string, string | null] | null> | Failure>")]
    pub fn get_bulk_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        kind: Option<String>,
        cache_ttl: Option<i32>,
        now: f64,
    ) -> Result<Pending<'env, Vec<Option<store::Entry>>, BulkEntries>> {
        self.off_thread(
            env,
            |namespace| async move {
                let entries = namespace
                    .get_bulk_async(&keys, kind.as_deref(), cache_ttl, u64::MAX, now_ms(now))
                    .await?;
                Ok(entries.unwrap_or_default())
            },
            bulk_entries,
        )
    }

    /// Lists up to `limit` keys (0 or less: 1000) that start with `prefix`, after `cursor`.
    #[napi(catch_unwind)]
    pub fn list(
        &self,
        prefix: String,
        limit: i32,
        cursor: Option<String>,
        now: f64,
    ) -> Result<ListPage> {
        let namespace = self.namespace()?;
        let page = guarded(|| namespace.list(&prefix, limit, cursor.as_deref(), now_ms(now)))
            .map_err(js_error)?;
        Ok(list_page(page))
    }

    /// `list` off the JS thread.
    #[napi(ts_return_type = "Promise<ListPage | Failure>")]
    pub fn list_async<'env>(
        &self,
        env: &'env Env,
        prefix: String,
        limit: i32,
        cursor: Option<String>,
        now: f64,
    ) -> Result<Pending<'env, store::ListPage, ListPage>> {
        self.off_thread(
            env,
            |namespace| async move {
                namespace
                    .list_async(&prefix, limit, cursor.as_deref(), now_ms(now))
                    .await
            },
            list_page,
        )
    }
}

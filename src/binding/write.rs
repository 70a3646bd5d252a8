//! Writes: puts of text or bytes, bulk writes and deletes, in-line or off the JS thread.

use super::*;

#[napi]
impl NativeNamespace {
    /// Writes a string value in-line.
    #[napi(catch_unwind)]
    pub fn put_text(
        &self,
        #[napi(ts_arg_type = "string")] key: Text,
        #[napi(ts_arg_type = "string")] value: Text,
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<()> {
        let options = put_options(expiration, expiration_ttl, metadata);
        let namespace = self.namespace()?;
        guarded(|| namespace.put(&key, value.as_bytes(), &options, now_ms(now))).map_err(js_error)
    }

    /// Writes a byte value in-line.
    #[napi(catch_unwind)]
    pub fn put_bytes(
        &self,
        #[napi(ts_arg_type = "string")] key: Text,
        value: &[u8],
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<()> {
        let options = put_options(expiration, expiration_ttl, metadata);
        let namespace = self.namespace()?;
        guarded(|| namespace.put(&key, value, &options, now_ms(now))).map_err(js_error)
    }

    /// Writes a byte value off the JS thread. The caller must not change `value` until the
    /// promise settles (lib/kv/writes.js passes a private copy).
    #[napi(ts_return_type = "Promise<void | Failure>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put_async<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Uint8Array,
        expiration: Option<i32>,
        expiration_ttl: Option<i32>,
        metadata: Option<String>,
        now: f64,
    ) -> Result<Pending<'env, (), ()>> {
        let options = put_options(expiration, expiration_ttl, metadata);
        let value = held::Held::from(value);
        self.off_thread(
            env,
            |namespace| async move {
                namespace
                    .put_async(&key, &value, &options, now_ms(now))
                    .await
            },
            nothing,
        )
    }

    /// Writes many entries off the JS thread, all or none (`putMany` in the core). The
    /// arrays run in parallel, one element per entry.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put_many_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        values: Vec<Buffer>,
        expirations: Vec<Option<i32>>,
        expiration_ttls: Vec<Option<i32>>,
        metadata: Vec<Option<String>>,
        now: f64,
    ) -> Result<Pending<'env, (), ()>> {
        let values: Vec<held::Held> = values.into_iter().map(held::Held::from).collect();
        self.off_thread(
            env,
            |namespace| async move {
                let columns = (keys, values, expirations, expiration_ttls, metadata);
                namespace
                    .put_many_async(&bulk_put_entries(&columns), now_ms(now))
                    .await
            },
            nothing,
        )
    }

    /// Deletes `key` in-line.
    #[napi(catch_unwind)]
    pub fn delete(&self, #[napi(ts_arg_type = "string")] key: Text) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.delete(&key)).map_err(js_error)
    }

    /// Deletes `key` off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn delete_async<'env>(&self, env: &'env Env, key: String) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.delete_async(&key).await },
            nothing,
        )
    }

    /// Deletes up to 100 keys in-line (the experimental `deleteBulk`).
    #[napi(catch_unwind)]
    pub fn delete_bulk(&self, keys: Vec<String>) -> Result<()> {
        let namespace = self.namespace()?;
        guarded(|| namespace.delete_bulk(&keys)).map_err(js_error)
    }

    /// Deletes up to 100 keys off the JS thread.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn delete_bulk_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
    ) -> Result<Pending<'env, (), ()>> {
        self.off_thread(
            env,
            |namespace| async move { namespace.delete_bulk_async(&keys).await },
            nothing,
        )
    }
}

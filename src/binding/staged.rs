//! The Node-API face of [`store::Staged`]: a bulk write given in parts, which index.js makes
//! of `bulkPut(asyncIterable)`.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::held::Held;
use super::tasks::{nothing, start, Pending};
use super::{bulk_put_entries, now_ms, NativeNamespace, Result};
use crate::store::{self, Namespace, Staged};

/// A staged bulk write. Its calls go one at a time: each waits for the one before.
#[napi]
pub struct NativeStaged {
    namespace: Arc<Namespace>,
    staged: Arc<Mutex<Option<Staged>>>,
}

#[napi]
impl NativeNamespace {
    /// Begins a bulk write given in parts, off the JS thread.
    #[napi(ts_return_type = "Promise<NativeStaged | Failure>")]
    pub fn stage_async<'env>(
        &self,
        env: &'env Env,
    ) -> Result<Pending<'env, NativeStaged, NativeStaged>> {
        self.off_thread(
            env,
            |namespace| async move {
                let staged = namespace.stage_async().await?;
                Ok(NativeStaged {
                    namespace,
                    staged: Arc::new(Mutex::new(Some(staged))),
                })
            },
            std::convert::identity,
        )
    }
}

/// Takes the write out of its slot for one call, which puts it back (or ends it).
fn take(slot: &Mutex<Option<Staged>>) -> store::Result<Staged> {
    let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    taken.ok_or_else(|| {
        store::Error::Invalid("a bulk write given in parts is busy or already ended".into())
    })
}

#[napi]
impl NativeStaged {
    /// Adds a part: parallel arrays, one element per entry, as `putManyAsync` takes them,
    /// checked against `now`.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    #[allow(clippy::too_many_arguments)]
    pub fn put_async<'env>(
        &self,
        env: &'env Env,
        keys: Vec<String>,
        values: Vec<Buffer>,
        expirations: Vec<Option<i32>>,
        expiration_ttls: Vec<Option<i32>>,
        metadata: Vec<Option<String>>,
        now: f64,
    ) -> Result<Pending<'env, (), ()>> {
        let (namespace, slot) = (self.namespace.clone(), self.staged.clone());
        let values: Vec<Held> = values.into_iter().map(Held::from).collect();
        let work = async move {
            let mut staged = take(&slot)?;
            let columns = (keys, values, expirations, expiration_ttls, metadata);
            let entries = bulk_put_entries(&columns);
            let added = namespace
                .put_staged_async(&mut staged, &entries, now_ms(now))
                .await;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(staged);
            added
        };
        start(env, &self.namespace, work, nothing)
    }

    /// Writes every part, all or nothing, and ends the write.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn commit_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        let (namespace, slot) = (self.namespace.clone(), self.staged.clone());
        let work = async move { namespace.commit_staged_async(take(&slot)?).await };
        start(env, &self.namespace, work, nothing)
    }

    /// Ends the write with nothing of it written.
    #[napi(ts_return_type = "Promise<void | Failure>")]
    pub fn drop_async<'env>(&self, env: &'env Env) -> Result<Pending<'env, (), ()>> {
        let (namespace, slot) = (self.namespace.clone(), self.staged.clone());
        let work = async move {
            let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            match taken {
                Some(staged) => namespace.drop_staged_async(staged).await,
                None => Ok(()),
            }
        };
        start(env, &self.namespace, work, nothing)
    }
}

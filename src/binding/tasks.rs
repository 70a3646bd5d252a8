//! Work off the JS thread. A job is a core operation (a future) and how its result becomes a
//! JS value. On a local namespace the job runs on the libuv thread pool, where its future
//! completes when first polled; on Redis it runs on the addon's tokio runtime, where it waits
//! for the network without holding a thread. Either way a panic becomes an error, and a
//! failure resolves a [`Failure`], which keeps the error's code.

use std::future::Future;
use std::pin::Pin;

use napi::bindgen_prelude::*;

use super::error::{guarded, outcome, Outcome};
use crate::store::{self, Namespace};

type Work<T> = Pin<Box<dyn Future<Output = store::Result<T>> + Send>>;

/// A job's promise: from the thread pool or from tokio.
pub type Pending<'env, T, V> = Either<AsyncTask<PoolJob<T, V>>, PromiseRaw<'env, Outcome<V>>>;

/// A job run on the libuv thread pool.
pub struct PoolJob<T, V> {
    work: Option<Work<T>>,
    finish: fn(T) -> V,
}

impl<T: Send + 'static, V: ToNapiValue + TypeName + 'static> Task for PoolJob<T, V> {
    type Output = store::Result<T>;
    type JsValue = Outcome<V>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let Some(work) = self.work.take() else {
            return Ok(Err(store::Error::Internal("a job ran twice".into())));
        };
        Ok(guarded(|| store::complete_local(work)))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(outcome(output, self.finish))
    }
}

/// Starts `work` for `namespace`, off the JS thread; its promise resolves `finish` of the
/// result, made on the JS thread.
pub(super) fn start<'env, T, V>(
    env: &'env Env,
    namespace: &Namespace,
    work: impl Future<Output = store::Result<T>> + Send + 'static,
    finish: fn(T) -> V,
) -> super::Result<Pending<'env, T, V>>
where
    T: Send + 'static,
    V: ToNapiValue + TypeName + 'static,
{
    if namespace.is_local() {
        return Ok(Either::A(AsyncTask::new(PoolJob {
            work: Some(Box::pin(work)),
            finish,
        })));
    }
    super::settle::spawn(env, work, finish)
        .map(Either::B)
        .map_err(super::convert::napi_failure)
}

/// A job that yields nothing.
pub(super) fn nothing(_: ()) {}

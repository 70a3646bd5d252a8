//! Promises for work on the tokio runtime (Redis), settled in batches.
//!
//! napi-rs gives every future's promise a threadsafe function of its own, created and torn
//! down per call: most of an operation's cost when the network answers in tens of
//! microseconds. Here each JS thread has one threadsafe function for all such work. A call
//! makes a plain promise and keeps its deferred under an id; the finished future sends the id
//! and its result through the shared function, and Node hands the JS thread every result
//! that arrived together in one wake-up. The function keeps the event loop alive only while
//! some promise is pending.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::sys;

use super::tasks::{outcome, Outcome};
use crate::store;

/// Makes the JS value of a result, on the JS thread.
type Settle = Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value> + Send>;

/// What crosses the threadsafe function: whose promise, and its result.
struct Finished {
    id: u64,
    settle: Settle,
}

/// The threadsafe function, for the tokio side; `None` once the JS thread's environment is
/// being torn down, after which results are dropped rather than sent.
struct Channel(Mutex<Option<TsfnHandle>>);

struct TsfnHandle(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function may be called from any thread; that is its purpose. The
// mutex keeps a call from racing the teardown that invalidates it.
unsafe impl Send for TsfnHandle {}

/// The JS thread's side: its channel and the deferreds of its pending promises.
struct Queue {
    channel: Arc<Channel>,
    tsfn: sys::napi_threadsafe_function,
    pending: RefCell<HashMap<u64, sys::napi_deferred>>,
    next_id: Cell<u64>,
}

thread_local! {
    // One Node environment per JS thread (the main thread, or a worker thread).
    static QUEUE: RefCell<Option<&'static Queue>> = const { RefCell::new(None) };
}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!("could not {what}")))
    }
}

/// This JS thread's queue, made on first use.
fn queue(env: sys::napi_env) -> napi::Result<&'static Queue> {
    if let Some(queue) = QUEUE.with(|q| *q.borrow()) {
        return Ok(queue);
    }
    let mut name = ptr::null_mut();
    let label = "kv-binding redis";
    // SAFETY: plain Node-API calls on the JS thread, with valid out-pointers.
    unsafe {
        check(
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            ),
            "name the Redis completion queue",
        )?;
        let mut tsfn = ptr::null_mut();
        check(
            sys::napi_create_threadsafe_function(
                env,
                ptr::null_mut(),
                ptr::null_mut(),
                name,
                0,
                1,
                ptr::null_mut(),
                None,
                ptr::null_mut(),
                Some(deliver),
                &mut tsfn,
            ),
            "create the Redis completion queue",
        )?;
        // Idle until a promise is pending.
        check(
            sys::napi_unref_threadsafe_function(env, tsfn),
            "let the Redis completion queue idle",
        )?;
        // Lives as long as the environment: one per JS thread, never freed before it ends.
        let queue: &'static Queue = Box::leak(Box::new(Queue {
            channel: Arc::new(Channel(Mutex::new(Some(TsfnHandle(tsfn))))),
            tsfn,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
        }));
        // Registered after the threadsafe function, so it runs before Node finalizes it.
        check(
            sys::napi_add_env_cleanup_hook(
                env,
                Some(close_channel),
                ptr::from_ref(queue).cast_mut().cast(),
            ),
            "watch for the environment's end",
        )?;
        QUEUE.with(|q| *q.borrow_mut() = Some(queue));
        Ok(queue)
    }
}

/// At the environment's end: no result may be sent any more.
unsafe extern "C" fn close_channel(arg: *mut c_void) {
    // SAFETY: `arg` is the leaked `Queue` registered with this hook.
    let queue = unsafe { &*arg.cast::<Queue>() };
    if let Ok(mut handle) = queue.channel.0.lock() {
        *handle = None;
    }
    QUEUE.with(|q| *q.borrow_mut() = None);
}

/// Runs on the JS thread for each result sent: settles its promise.
unsafe extern "C" fn deliver(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    _context: *mut c_void,
    data: *mut c_void,
) {
    // SAFETY: every item sent is a `Box<Finished>` turned into a raw pointer by `spawn`.
    let finished = unsafe { Box::from_raw(data.cast::<Finished>()) };
    if env.is_null() {
        // The environment is going away: nobody is left to see the result.
        return;
    }
    let Some(queue) = QUEUE.with(|q| *q.borrow()) else {
        return;
    };
    let Some(deferred) = queue.pending.borrow_mut().remove(&finished.id) else {
        return;
    };
    // SAFETY: on the JS thread, with the deferred made by `spawn` in this environment.
    unsafe {
        match (finished.settle)(env) {
            Ok(value) => sys::napi_resolve_deferred(env, deferred, value),
            Err(error) => {
                let mut message = ptr::null_mut();
                let mut reason = ptr::null_mut();
                let text = error.reason;
                sys::napi_create_string_utf8(
                    env,
                    text.as_ptr().cast(),
                    text.len() as isize,
                    &mut message,
                );
                sys::napi_create_error(env, ptr::null_mut(), message, &mut reason);
                sys::napi_reject_deferred(env, deferred, reason)
            }
        };
        if queue.pending.borrow().is_empty() {
            sys::napi_unref_threadsafe_function(env, queue.tsfn);
        }
    }
}

/// Runs `work` on the tokio runtime; the promise returned resolves `finish` of its result
/// (or the [`Failure`](super::Failure) it ends with), made on the JS thread.
pub(super) fn spawn<'env, T, V>(
    env: &'env Env,
    work: impl Future<Output = store::Result<T>> + Send + 'static,
    finish: fn(T) -> V,
) -> napi::Result<PromiseRaw<'env, Outcome<V>>>
where
    T: Send + 'static,
    V: ToNapiValue + 'static,
{
    let raw = env.raw();
    let queue = queue(raw)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    // SAFETY: Node-API calls on the JS thread, with valid out-pointers.
    unsafe {
        check(
            sys::napi_create_promise(raw, &mut deferred, &mut promise),
            "create a promise",
        )?;
        if queue.pending.borrow().is_empty() {
            check(
                sys::napi_ref_threadsafe_function(raw, queue.tsfn),
                "keep the event loop alive for Redis",
            )?;
        }
    }
    let id = queue.next_id.get();
    queue.next_id.set(id + 1);
    queue.pending.borrow_mut().insert(id, deferred);
    let channel = queue.channel.clone();
    napi::bindgen_prelude::spawn(async move {
        let output = AssertUnwindSafe(work)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(store::Error::Internal(
                    store::panic_message(panic.as_ref()).to_string(),
                ))
            });
        // The JS value is made on the JS thread, where `deliver` runs this.
        let settle: Settle = Box::new(move |env| {
            let value: Outcome<V> = outcome(output, finish);
            // SAFETY: called by `deliver`, on the JS thread of `env`.
            unsafe { Outcome::<V>::to_napi_value(env, value) }
        });
        let data = Box::into_raw(Box::new(Finished { id, settle }));
        let sent = channel.0.lock().ok().and_then(|handle| {
            let handle = handle.as_ref()?;
            // SAFETY: the handle is valid while it is in the channel, which the lock holds.
            let status = unsafe {
                sys::napi_call_threadsafe_function(
                    handle.0,
                    data.cast(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
            (status == sys::Status::napi_ok).then_some(())
        });
        if sent.is_none() {
            // SAFETY: not handed to Node, so still ours to free.
            drop(unsafe { Box::from_raw(data) });
        }
    });
    Ok(PromiseRaw::new(raw, promise))
}

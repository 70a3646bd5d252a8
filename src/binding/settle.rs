//! Promises for work on the tokio runtime (Redis), started and settled in batches.
//!
//! napi-rs gives every future's promise a threadsafe function of its own and spawns every
//! future as a task of its own: most of an operation's cost when the network answers in tens
//! of microseconds. Here each JS thread has one threadsafe function and one outbox for all
//! such work, and both carry batches:
//!
//! - A call makes a plain promise, keeps its deferred under an id and puts its future in the
//!   outbox. The first call of a batch queues a microtask (a reaction to a resolved promise)
//!   that hands the whole outbox to the runtime as one task, so the operations a JS turn
//!   starts reach the connection together and are written to the server in a few system
//!   calls, not one each. An awaited operation alone waits for one microtask more.
//! - The results that one wake-up of the batch finishes are left on the channel together,
//!   which signals the threadsafe function only if none were waiting there; the JS thread
//!   then settles every result that waits, in one wake-up.
//!
//! The threadsafe function keeps the event loop alive only while some promise is pending.

mod batch;

use batch::start_batch;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use napi::bindgen_prelude::*;
use napi::sys;

use super::error::{outcome, Outcome};
use crate::store;

/// Makes the JS value of a result, on the JS thread.
type Settle = Box<dyn FnOnce(sys::napi_env) -> napi::Result<sys::napi_value> + Send>;

/// An operation's future, ending in its result for the JS thread.
type Job = Pin<Box<dyn Future<Output = Finished> + Send>>;

/// A result on its way to the JS thread: whose promise, and how to settle it.
struct Finished {
    id: u64,
    settle: Settle,
}

/// What the tokio side shares with the JS thread.
struct Channel(Mutex<Inbox>);

struct Inbox {
    /// The threadsafe function; `None` once the JS thread's environment is being torn down,
    /// after which results are dropped rather than sent.
    handle: Option<TsfnHandle>,
    /// Results not yet taken by the JS thread. The threadsafe function is signalled when the
    /// first one arrives, so an empty inbox means no signal is outstanding.
    results: Vec<Finished>,
}

struct TsfnHandle(sys::napi_threadsafe_function);

// SAFETY: a threadsafe function may be called from any thread; that is its purpose. The
// mutex keeps a call from racing the teardown that invalidates it.
unsafe impl Send for TsfnHandle {}

/// The JS thread's side: its channel, the deferreds of its pending promises and the jobs
/// not yet handed to the runtime.
struct Queue {
    channel: Arc<Channel>,
    tsfn: sys::napi_threadsafe_function,
    pending: RefCell<HashMap<u64, sys::napi_deferred>>,
    next_id: Cell<u64>,
    outbox: RefCell<Vec<Job>>,
    /// Whether a microtask to start the outbox's batch is queued.
    batch_queued: Cell<bool>,
    /// Results taken from the channel, being settled (kept for its allocation).
    settling: RefCell<Vec<Finished>>,
    /// A resolved promise and its `then`, to queue a microtask that calls `start_batch`,
    /// the native function that empties the outbox.
    resolved: sys::napi_ref,
    then: sys::napi_ref,
    start_batch: sys::napi_ref,
}

/// The most operations a batch holds: a JS turn that starts more sends them in batches this
/// size as it goes, so the server works on the first while the turn makes the next.
const BATCH_MAX: usize = 32;

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

/// A strong reference to `value`, which lives as long as the environment.
///
/// # Safety
/// On the JS thread of `env`, with a valid `value`.
unsafe fn keep(
    env: sys::napi_env,
    value: sys::napi_value,
    what: &str,
) -> napi::Result<sys::napi_ref> {
    let mut reference = ptr::null_mut();
    // SAFETY: as the caller promises.
    check(
        unsafe { sys::napi_create_reference(env, value, 1, &mut reference) },
        what,
    )?;
    Ok(reference)
}

/// This JS thread's queue, made on first use.
fn queue(env: sys::napi_env) -> napi::Result<&'static Queue> {
    if let Some(queue) = QUEUE.with(|q| *q.borrow()) {
        return Ok(queue);
    }
    let label = "kv-binding redis";
    // SAFETY: plain Node-API calls on the JS thread, with valid out-pointers.
    unsafe {
        let mut name = ptr::null_mut();
        check(
            sys::napi_create_string_utf8(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                &mut name,
            ),
            "name the Redis completion queue",
        )?;
        // A microtask through a promise reaction, not `queueMicrotask`, which fake timers
        // may replace: batches must start whatever a test does to the clock.
        let (mut deferred, mut resolved, mut then, mut undefined) = (
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        );
        check(
            sys::napi_get_undefined(env, &mut undefined),
            "reach undefined",
        )?;
        check(
            sys::napi_create_promise(env, &mut deferred, &mut resolved),
            "create a promise",
        )?;
        check(
            sys::napi_resolve_deferred(env, deferred, undefined),
            "resolve a promise",
        )?;
        check(
            sys::napi_get_named_property(env, resolved, c"then".as_ptr(), &mut then),
            "find Promise.prototype.then",
        )?;
        let mut start_batch = ptr::null_mut();
        check(
            sys::napi_create_function(
                env,
                label.as_ptr().cast(),
                label.len() as isize,
                Some(start_batch_callback),
                ptr::null_mut(),
                &mut start_batch,
            ),
            "make the Redis batch starter",
        )?;
        let resolved = keep(env, resolved, "keep a resolved promise")?;
        let then = keep(env, then, "keep Promise.prototype.then")?;
        let start_batch = keep(env, start_batch, "keep the Redis batch starter")?;
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
            channel: Arc::new(Channel(Mutex::new(Inbox {
                handle: Some(TsfnHandle(tsfn)),
                results: Vec::new(),
            }))),
            tsfn,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            outbox: RefCell::new(Vec::new()),
            batch_queued: Cell::new(false),
            settling: RefCell::new(Vec::new()),
            resolved,
            then,
            start_batch,
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
    if let Ok(mut inbox) = queue.channel.0.lock() {
        inbox.handle = None;
        inbox.results.clear();
    }
    queue.outbox.borrow_mut().clear();
    QUEUE.with(|q| *q.borrow_mut() = None);
}

/// The microtask queued by the first call of a batch: hands the outbox to the runtime.
unsafe extern "C" fn start_batch_callback(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    if let Some(queue) = QUEUE.with(|q| *q.borrow()) {
        queue.batch_queued.set(false);
        start_batch(env, queue);
    }
    ptr::null_mut()
}

/// Runs on the JS thread when results wait on the channel: settles their promises.
unsafe extern "C" fn deliver(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    _context: *mut c_void,
    _data: *mut c_void,
) {
    if env.is_null() {
        // The environment is going away: nobody is left to see the results.
        return;
    }
    let Some(queue) = QUEUE.with(|q| *q.borrow()) else {
        return;
    };
    let mut settling = queue.settling.borrow_mut();
    match queue.channel.0.lock() {
        Ok(mut inbox) => std::mem::swap(&mut inbox.results, &mut settling),
        Err(_) => return,
    }
    settle_now(env, queue, &mut settling);
}

/// Settles the promises of `results` (leaving it empty), on the JS thread of `env`.
fn settle_now(env: sys::napi_env, queue: &Queue, results: &mut Vec<Finished>) {
    for finished in results.drain(..) {
        let Some(deferred) = queue.pending.borrow_mut().remove(&finished.id) else {
            continue;
        };
        // SAFETY: on the JS thread, with the deferred made by `spawn` in this environment;
        // each result's values live in a handle scope of their own.
        unsafe {
            let mut scope = ptr::null_mut();
            sys::napi_open_handle_scope(env, &mut scope);
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
            sys::napi_close_handle_scope(env, scope);
        }
    }
    if queue.pending.borrow().is_empty() {
        // SAFETY: on the JS thread of `env`, which owns the threadsafe function.
        unsafe { sys::napi_unref_threadsafe_function(env, queue.tsfn) };
    }
}

/// Runs `work` on the tokio runtime; the promise returned resolves `finish` of its result
/// (or the [`Failure`](super::error::Failure) it ends with), made on the JS thread.
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
    // SAFETY: Node-API calls on the JS thread, with valid out-pointers and the references
    // this environment's queue keeps.
    unsafe {
        check(
            sys::napi_create_promise(raw, &mut deferred, &mut promise),
            "create a promise",
        )?;
        if !queue.batch_queued.get() {
            let (mut resolved, mut then, mut start_batch, mut reaction) = (
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            );
            check(
                sys::napi_get_reference_value(raw, queue.resolved, &mut resolved),
                "reach a resolved promise",
            )?;
            check(
                sys::napi_get_reference_value(raw, queue.then, &mut then),
                "reach Promise.prototype.then",
            )?;
            check(
                sys::napi_get_reference_value(raw, queue.start_batch, &mut start_batch),
                "reach the Redis batch starter",
            )?;
            check(
                sys::napi_call_function(raw, resolved, then, 1, &start_batch, &mut reaction),
                "queue the Redis batch",
            )?;
            queue.batch_queued.set(true);
        }
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
    queue.outbox.borrow_mut().push(Box::pin(async move {
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
        Finished { id, settle }
    }));
    if queue.outbox.borrow().len() >= BATCH_MAX {
        start_batch(raw, queue);
    }
    Ok(PromiseRaw::new(raw, promise))
}

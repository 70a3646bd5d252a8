//! A batch of finished jobs settled on the JS thread in one call, and the hand-off of
//! results from tokio's workers to it.

use super::*;

/// Starts the jobs in the outbox: polls them first here, on the JS thread, so that their
/// requests leave at once (see [`store::caller`]) and what is ready is settled now; the
/// runtime takes the rest over, as one task, when one of them is woken.
pub(super) fn start_batch(env: sys::napi_env, queue: &Queue) {
    let jobs: FuturesUnordered<Job> = queue.outbox.borrow_mut().drain(..).collect();
    if jobs.is_empty() {
        return;
    }
    let mut batch = Batch {
        jobs,
        channel: queue.channel.clone(),
        done: Vec::new(),
        on_runtime: false,
    };
    let Some(handle) = super::super::RUNTIME.get() else {
        napi::bindgen_prelude::spawn(batch);
        return;
    };
    let parked = Arc::new(Parked {
        handle: handle.clone(),
        state: Mutex::new(ParkState::Polling { woken: false }),
    });
    let waker = std::task::Waker::from(parked.clone());
    let finished = {
        let _runtime = handle.enter();
        let mut cx = Context::from_waker(&waker);
        // Twice: having polled each job once, the set of jobs wakes itself (to let other
        // tasks run), which would hand the batch to the runtime for nothing. A job that is
        // woken again wants the runtime (see `store::caller::off_caller`).
        store::caller::first_poll(|| batch.poll_jobs(&mut cx))
            || (parked.woken_again() && store::caller::first_poll(|| batch.poll_jobs(&mut cx)))
    };
    let mut done = std::mem::take(&mut batch.done);
    if !finished && parked.park(batch) {
        late::note(&parked);
    }
    settle_now(env, queue, &mut done);
}

/// Batches left waiting longer than [`store::caller::GRACE`] go to the runtime, woken or not:
/// there their futures arm the timers they left unarmed on the JS thread.
mod late {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Weak;
    use std::time::Instant;

    /// The batches left waiting, with when.
    static PARKED: Mutex<Vec<(Instant, Weak<Parked>)>> = Mutex::new(Vec::new());

    /// Whether the task that watches them runs.
    static WATCHING: AtomicBool = AtomicBool::new(false);

    /// How many looks find nothing left waiting before the task stops (it starts again with
    /// the next batch left waiting).
    const IDLE_LOOKS: u32 = 50;

    fn parked() -> std::sync::MutexGuard<'static, Vec<(Instant, Weak<Parked>)>> {
        PARKED.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a batch left waiting, starting the watch if it is not running.
    pub(super) fn note(batch: &Arc<Parked>) {
        parked().push((Instant::now(), Arc::downgrade(batch)));
        if !WATCHING.swap(true, Ordering::AcqRel) {
            batch.handle.spawn(watch());
        }
    }

    /// Hands each batch still waiting after the grace to the runtime.
    async fn watch() {
        let mut idle = 0;
        loop {
            tokio::time::sleep(store::caller::GRACE / 2).await;
            let now = Instant::now();
            let mut due = Vec::new();
            let left = {
                let mut parked = parked();
                parked.retain(|(at, batch)| match batch.upgrade() {
                    Some(batch) if batch.is_parked() => {
                        let late = now.duration_since(*at) >= store::caller::GRACE;
                        if late {
                            due.push(batch);
                        }
                        !late
                    }
                    _ => false,
                });
                parked.len()
            };
            // Spawned as if woken: the runtime polls every job of a batch again.
            for batch in due {
                std::task::Wake::wake_by_ref(&batch);
            }
            idle = if left == 0 { idle + 1 } else { 0 };
            if idle >= IDLE_LOOKS {
                WATCHING.store(false, Ordering::Release);
                // A batch noted since the last look, which saw the watch running, is looked
                // after by this one still.
                if parked().is_empty() || WATCHING.swap(true, Ordering::AcqRel) {
                    return;
                }
                idle = 0;
            }
        }
    }
}

/// A batch that its first poll left waiting, until something wakes it: then it is spawned on
/// the runtime, whose own waker it uses from there on.
struct Parked {
    handle: tokio::runtime::Handle,
    state: Mutex<ParkState>,
}

enum ParkState {
    /// Being polled on the JS thread; `woken` if woken meanwhile.
    Polling {
        woken: bool,
    },
    Parked(Batch),
    /// Spawned on the runtime.
    Spawned,
}

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, ParkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether it was woken while polled; forgets it.
    fn woken_again(&self) -> bool {
        let mut state = self.lock();
        let woken = matches!(*state, ParkState::Polling { woken: true });
        *state = ParkState::Polling { woken: false };
        woken
    }

    /// Leaves `batch` until it is woken, or spawns it if it was already; `true` if left.
    fn park(&self, batch: Batch) -> bool {
        let mut state = self.lock();
        if matches!(*state, ParkState::Polling { woken: true }) {
            *state = ParkState::Spawned;
            drop(state);
            self.handle.spawn(batch);
            false
        } else {
            *state = ParkState::Parked(batch);
            true
        }
    }

    fn is_parked(&self) -> bool {
        matches!(*self.lock(), ParkState::Parked(_))
    }
}

impl std::task::Wake for Parked {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, ParkState::Spawned) {
            ParkState::Polling { .. } => *state = ParkState::Polling { woken: true },
            ParkState::Parked(batch) => {
                drop(state);
                self.handle.spawn(batch);
            }
            ParkState::Spawned => {}
        }
    }
}

/// The jobs a JS turn started, run as one task. Their futures are first polled in call
/// order, so their commands reach each connection together and in that order; the results
/// that one poll finishes are sent together.
pub(super) struct Batch {
    jobs: FuturesUnordered<Job>,
    channel: Arc<Channel>,
    done: Vec<Finished>,
    /// Whether the runtime has polled it (rather than the JS thread only).
    on_runtime: bool,
}

impl Future for Batch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let batch = &mut *self;
        if !batch.on_runtime {
            // Every job is polled again once here, woken or not: on the runtime, their
            // deadlines arm the timers they left unarmed on the JS thread.
            batch.on_runtime = true;
            batch.jobs = std::mem::take(&mut batch.jobs).into_iter().collect();
        }
        let finished = batch.poll_jobs(cx);
        if !batch.done.is_empty() {
            send(&batch.channel, &mut batch.done);
        }
        if finished {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Batch {
    /// Polls the jobs, keeping the results in `done`; `true` once every job has finished.
    fn poll_jobs(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            match self.jobs.poll_next_unpin(cx) {
                Poll::Ready(Some(result)) => self.done.push(result),
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        }
    }
}

/// Moves `results` to the channel, signalling the JS thread if none were waiting there.
pub(super) fn send(channel: &Channel, results: &mut Vec<Finished>) {
    let Ok(mut inbox) = channel.0.lock() else {
        results.clear();
        return;
    };
    let Some(handle) = inbox.handle.as_ref().map(|handle| handle.0) else {
        results.clear();
        return;
    };
    if inbox.results.is_empty() {
        // SAFETY: the handle is valid while it is in the inbox, which the lock holds.
        let status = unsafe {
            sys::napi_call_threadsafe_function(
                handle,
                ptr::null_mut(),
                sys::ThreadsafeFunctionCallMode::nonblocking,
            )
        };
        if status != sys::Status::napi_ok {
            // Closing: the JS thread will not come for them.
            results.clear();
            return;
        }
    }
    inbox.results.append(results);
}

//! A batch of finished jobs settled on the JS thread in one call, and the hand-off of
//! results from tokio's workers to it.

use super::*;

/// Hands the jobs in the outbox to the runtime, as one task.
pub(super) fn start_batch(queue: &Queue) {
    let jobs: FuturesUnordered<Job> = queue.outbox.borrow_mut().drain(..).collect();
    if !jobs.is_empty() {
        napi::bindgen_prelude::spawn(Batch {
            jobs,
            channel: queue.channel.clone(),
            done: Vec::new(),
        });
    }
}

/// The jobs a JS turn started, run as one task. Their futures are first polled in call
/// order, so their commands reach each connection together and in that order; the results
/// that one poll finishes are sent together.
pub(super) struct Batch {
    jobs: FuturesUnordered<Job>,
    channel: Arc<Channel>,
    done: Vec<Finished>,
}

impl Future for Batch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let batch = &mut *self;
        let finished = loop {
            match batch.jobs.poll_next_unpin(cx) {
                Poll::Ready(Some(result)) => batch.done.push(result),
                Poll::Ready(None) => break Poll::Ready(()),
                Poll::Pending => break Poll::Pending,
            }
        };
        if !batch.done.is_empty() {
            send(&batch.channel, &mut batch.done);
        }
        finished
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

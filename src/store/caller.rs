//! The first poll of remote operations, on the thread that called them (the JS thread).
//!
//! An operation on Redis or on a store another process holds is a future. Polling it first on
//! the caller's thread lets it put its request on the wire at once, without waking the
//! runtime's thread to do it; the runtime takes the future over only when it waits. While the
//! caller polls:
//! - a future about to do blocking or long work (disk I/O, copying megabytes) awaits
//!   [`off_caller`] first, which moves it to the runtime;
//! - a connection defers its writes with [`after_poll`], so the requests that one poll makes
//!   leave together, in a few system calls;
//! - a deadline arms no timer: what is still pending after [`GRACE`] is polled again on the
//!   runtime, which arms it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What the caller's poll leaves pending is polled again on the runtime within this, so that
/// a future may leave its timers unarmed on the caller's thread (see
/// [`crate::backends::deadline`]).
pub const GRACE: Duration = Duration::from_millis(20);

type Deferred = Vec<Box<dyn FnOnce()>>;

thread_local! {
    /// The work deferred to the end of the caller's poll under way; `None` when none is.
    static POLLING: RefCell<Option<Deferred>> = const { RefCell::new(None) };
}

/// Runs `poll` as the caller's first poll of futures, then the work they deferred to its end,
/// in the order deferred.
pub fn first_poll<R>(poll: impl FnOnce() -> R) -> R {
    let outer = POLLING.with(|p| p.borrow_mut().replace(Vec::new()));
    let result = poll();
    loop {
        let deferred = POLLING.with(|p| p.borrow_mut().as_mut().map(std::mem::take));
        match deferred {
            Some(work) if !work.is_empty() => work.into_iter().for_each(|w| w()),
            _ => break,
        }
    }
    POLLING.with(|p| *p.borrow_mut() = outer);
    result
}

/// Whether the future being polled is polled by its caller (see [`first_poll`]).
pub fn on_caller() -> bool {
    POLLING.with(|p| p.borrow().is_some())
}

/// Runs `work` at the end of the caller's poll under way, or now when none is.
pub fn after_poll(work: impl FnOnce() + 'static) {
    let deferred = POLLING.with(|p| match p.borrow_mut().as_mut() {
        Some(deferred) => {
            deferred.push(Box::new(work));
            None
        }
        None => Some(work),
    });
    if let Some(work) = deferred {
        work();
    }
}

/// Ready on the runtime; on the caller's thread, pending (and woken), so that what follows
/// runs on the runtime.
pub fn off_caller() -> impl Future<Output = ()> {
    OffCaller
}

struct OffCaller;

impl Future for OffCaller {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !on_caller() {
            return Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn deferred_work_runs_after_the_poll_in_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let inside = first_poll(|| {
            let (a, b) = (log.clone(), log.clone());
            after_poll(move || a.borrow_mut().push("first"));
            after_poll(move || b.borrow_mut().push("second"));
            log.borrow_mut().push("poll");
            on_caller()
        });
        assert!(inside);
        assert!(!on_caller());
        assert_eq!(*log.borrow(), ["poll", "first", "second"]);
    }

    #[test]
    fn outside_a_poll_work_runs_at_once() {
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        after_poll(move || r.set(true));
        assert!(ran.get());
    }

    #[test]
    fn off_caller_pends_on_the_caller_only() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut off = Box::pin(off_caller());
        first_poll(|| assert!(off.as_mut().poll(&mut cx).is_pending()));
        first_poll(|| assert!(off.as_mut().poll(&mut cx).is_pending()));
        assert!(off.as_mut().poll(&mut cx).is_ready());
    }
}

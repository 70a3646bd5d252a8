//! Deadlines that arm no timer while the caller's thread polls.
//!
//! Arming a tokio timer from the JS thread wakes the runtime's thread whenever the new
//! deadline comes before the ones it sleeps towards: once an operation, for a deadline that
//! almost never passes. [`within`] arms its timer only when polled on the runtime; polled by
//! the caller (see [`crate::store::caller`]) it only looks at its future, and whoever polls
//! there promises to poll again on the runtime within [`caller::GRACE`] what is still
//! pending. A deadline is then kept to within that grace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

use crate::store::caller;

/// The deadline passed before the future finished.
#[derive(Debug)]
pub struct Late;

/// `inner`'s output, or [`Late`] once `deadline` passed without it.
pub fn within<F: Future>(deadline: Instant, inner: F) -> Within<F> {
    Within {
        inner: Box::pin(inner),
        deadline,
        sleep: None,
    }
}

pub struct Within<F: Future> {
    inner: Pin<Box<F>>,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Late>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(output) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if self.sleep.is_none() && caller::on_caller() {
            return Poll::Pending;
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).map(|()| Err(Late))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_deadline_holds_on_the_runtime_and_arms_nothing_on_the_caller() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let never = std::future::pending::<()>();
            let late = within(Instant::now() + Duration::from_millis(20), never).await;
            assert!(late.is_err());
            let soon = within(Instant::now() + Duration::from_secs(5), async { 7 }).await;
            assert_eq!(soon.unwrap(), 7);
            // On the caller a pending future stays pending, past its deadline too, until
            // polled on the runtime.
            let mut waiting = Box::pin(within(Instant::now(), std::future::pending::<()>()));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            tokio::time::sleep(Duration::from_millis(5)).await;
            caller::first_poll(|| assert!(waiting.as_mut().poll(&mut cx).is_pending()));
            assert!(waiting.await.is_err());
        });
    }
}

//! The answers a connection awaits: in the order its requests were written, each failed
//! at its deadline (its place kept, as the answer may still come) or when the connection ends.

use super::socket::ReadHalf;
use super::*;

/// A request on its way, and where its answer goes.
pub(super) type Reply = oneshot::Sender<std::result::Result<Response, FrameError>>;

/// The answers a connection awaits, in order; `None` once it has ended.
pub(super) type Waiting = Arc<Mutex<Option<VecDeque<Awaited>>>>;

/// An answer awaited: where it goes (`None` once its asker gave up: the answer is still read
/// and dropped) and when the asker gives up.
pub(super) struct Awaited {
    reply: Option<Reply>,
    deadline: Instant,
}

/// Queues `reply` for the next answer, awaited for `timeout`; `false` (and the reply failed)
/// once the connection ended.
pub(super) fn enqueue(waiting: &Waiting, reply: Reply, timeout: Duration) -> bool {
    let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
    match waiting.as_mut() {
        Some(queue) => {
            queue.push_back(Awaited {
                reply: Some(reply),
                deadline: Instant::now() + timeout,
            });
            true
        }
        None => {
            let _ = reply.send(Err(FrameError::Closed));
            false
        }
    }
}

/// Fails every answer still awaited: the connection has ended.
pub(super) fn end(waiting: &Waiting) {
    let queue = waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
    for reply in queue.into_iter().flatten().filter_map(|a| a.reply) {
        let _ = reply.send(Err(FrameError::Closed));
    }
}

/// How many times in a timeout [`watch`] looks: an answer awaited too long fails at most this
/// fraction of the timeout late.
const WATCHES_PER_TIMEOUT: u32 = 10;

/// Fails the answers awaited past their deadline, leaving their places (an answer that comes
/// later is read and dropped), until the connection ends. One timer a connection, not one a
/// request: a request made on the JS thread arms none (see [`crate::store::caller`]).
pub(super) async fn watch(
    waiting: std::sync::Weak<Mutex<Option<VecDeque<Awaited>>>>,
    timeout: Duration,
) {
    let every = (timeout / WATCHES_PER_TIMEOUT).max(Duration::from_millis(5));
    loop {
        tokio::time::sleep(every).await;
        let Some(waiting) = waiting.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = waiting.as_mut() else {
            return;
        };
        // In deadline order: each was queued after the one before, with the same timeout.
        for awaited in queue.iter_mut().take_while(|a| a.deadline <= now) {
            if let Some(reply) = awaited.reply.take() {
                let _ = reply.send(Err(FrameError::TimedOut));
            }
        }
    }
}

/// Reads answers, handing each to the oldest request awaiting one.
pub(super) async fn receive(mut read: BufReader<ReadHalf>, waiting: Waiting) {
    loop {
        let answer = wire::read_frame::<_, Response>(&mut read).await;
        let failed = answer.is_err();
        let reply = waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(VecDeque::pop_front);
        match reply {
            Some(Awaited { reply, .. }) => {
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            // An answer to nothing: the holder is not following the protocol.
            None => break,
        }
        if failed {
            break;
        }
    }
    end(&waiting);
}

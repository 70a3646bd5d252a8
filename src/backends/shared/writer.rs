//! Writing a connection's requests: from whichever thread makes them, at once when the socket
//! takes them, else by a task that waits until it can.

use super::awaited::{end, enqueue, Reply, Waiting};
use super::socket::Socket;
use super::*;

/// Requests not yet written, and the socket they go to. A request is written by the thread
/// that makes it when the socket takes it at once (deferred to the end of the caller's poll,
/// see [`crate::store::caller`], so that a batch leaves together); what the socket does not
/// take at once is left to the connection's writing task, which waits until it can.
pub(super) struct Writer {
    socket: Arc<Socket>,
    outgoing: Mutex<Outgoing>,
    /// Wakes the writing task: the socket was full, or the connection ended.
    stalled: tokio::sync::Notify,
    waiting: Waiting,
    /// How long an answer is awaited.
    timeout: Duration,
}

#[derive(Default)]
struct Outgoing {
    frames: VecDeque<Arc<Vec<u8>>>,
    /// Bytes of the first frame already written.
    written: usize,
    /// The writing task has the socket: it was full.
    full: bool,
    /// A write is deferred to the end of the caller's poll.
    deferred: bool,
    ended: bool,
}

/// The most frames one system call writes.
const FRAMES_PER_WRITE: usize = 64;

impl Writer {
    /// The writer of `socket`, whose requests' answers are awaited in `waiting` for `timeout`;
    /// its task is spawned.
    pub(super) fn start(socket: Arc<Socket>, waiting: Waiting, timeout: Duration) -> Arc<Self> {
        let writer = Arc::new(Writer {
            socket,
            outgoing: Mutex::default(),
            stalled: tokio::sync::Notify::new(),
            waiting,
            timeout,
        });
        tokio::spawn(send(writer.clone()));
        writer
    }

    /// Ends the connection: nothing more is written, and its task stops.
    pub(super) fn close(&self) {
        self.state().ended = true;
        self.stalled.notify_one();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Outgoing> {
        self.outgoing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `frame`, its answer to go to `reply`; `false` once the connection ended.
    pub(super) fn send(self: &Arc<Self>, frame: Arc<Vec<u8>>, reply: Reply) -> bool {
        let mut out = self.state();
        // Queued for an answer under the same lock as the frame: answers come in the order
        // frames are written.
        if out.ended || !enqueue(&self.waiting, reply, self.timeout) {
            return false;
        }
        out.frames.push_back(frame);
        if out.full || out.deferred {
            return true;
        }
        if crate::store::caller::on_caller() {
            out.deferred = true;
            let writer = self.clone();
            crate::store::caller::after_poll(move || {
                let mut out = writer.state();
                out.deferred = false;
                if !out.full {
                    writer.write(&mut out);
                }
            });
        } else {
            self.write(&mut out);
        }
        true
    }

    /// Writes what the socket takes now; leaves the rest to the writing task.
    fn write(&self, out: &mut Outgoing) {
        while !out.frames.is_empty() && !out.ended {
            let slices: Vec<std::io::IoSlice<'_>> = out
                .frames
                .iter()
                .take(FRAMES_PER_WRITE)
                .enumerate()
                .map(|(i, f)| std::io::IoSlice::new(if i == 0 { &f[out.written..] } else { f }))
                .collect();
            match self.socket.try_write_vectored(&slices) {
                Ok(mut n) => {
                    drop(slices);
                    while n > 0 {
                        let left = out.frames[0].len() - out.written;
                        if n < left {
                            out.written += n;
                            n = 0;
                        } else {
                            n -= left;
                            out.written = 0;
                            out.frames.pop_front();
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    out.full = true;
                    self.stalled.notify_one();
                    return;
                }
                Err(_) => {
                    out.ended = true;
                    out.frames.clear();
                    self.stalled.notify_one();
                    return;
                }
            }
        }
        out.full = false;
    }
}

/// The connection's writing task: writes what the socket did not take at once, as it can,
/// until the connection ends.
async fn send(writer: Arc<Writer>) {
    loop {
        writer.stalled.notified().await;
        loop {
            {
                let mut out = writer.state();
                if out.ended || !out.full {
                    break;
                }
                writer.write(&mut out);
                if !out.full {
                    break;
                }
            }
            if writer.socket.writable().await.is_err() {
                writer.state().ended = true;
                break;
            }
        }
        if writer.state().ended {
            break;
        }
    }
    // The holder reads the end of the stream and closes its side, which ends the reading.
    writer.socket.shut_writing();
    end(&writer.waiting);
}

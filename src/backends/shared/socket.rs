//! A connection's socket, watched for reading only.
//!
//! tokio watches a `UnixStream` for reading and writing at once, edge-triggered: each time the
//! other end reads what this end wrote, the socket turns writable again and wakes the
//! runtime's thread for nothing. Requests and answers are small and the socket takes them at
//! once, so here only reading is watched; a write that finds the socket full waits on a
//! second descriptor of it, watched for writing while that write waits, then let go. Writes
//! are `sendmsg` with `MSG_NOSIGNAL`: a peer that went away is an error, never a SIGPIPE.

use std::io::{IoSlice, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// `stream`, watched by the runtime for `interest`.
fn watch(stream: StdStream, interest: Interest) -> std::io::Result<AsyncFd<StdStream>> {
    // SAFETY: the stream is owned by the `AsyncFd`: its descriptor stays open, and the same,
    // until the `AsyncFd` is dropped.
    Ok(unsafe { AsyncFd::register_with_interest(stream, interest) }?)
}

/// One connection's socket, shared by its reading and writing sides.
pub(super) struct Socket {
    fd: AsyncFd<StdStream>,
}

impl Socket {
    /// Takes `stream` over from tokio (it must have nothing buffered on its way in).
    pub(super) fn new(stream: tokio::net::UnixStream) -> std::io::Result<Arc<Self>> {
        let stream = stream.into_std()?;
        stream.set_nonblocking(true)?;
        Ok(Arc::new(Socket {
            fd: watch(stream, Interest::READABLE)?,
        }))
    }

    /// Writes what the socket takes now, without waiting.
    pub(super) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        // SAFETY: a zeroed msghdr is valid; its iovecs point at `bufs`, live for the call
        // (`IoSlice` has the layout of `iovec` on Unix).
        let sent = unsafe {
            let mut message: libc::msghdr = std::mem::zeroed();
            message.msg_iov = bufs.as_ptr().cast_mut().cast();
            message.msg_iovlen = bufs.len() as _;
            libc::sendmsg(self.fd.as_raw_fd(), &message, libc::MSG_NOSIGNAL)
        };
        if sent < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    /// Writes what the socket takes now of `buf`, without waiting.
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        self.try_write_vectored(&[IoSlice::new(buf)])
    }

    /// No more is written: the other end reads the end of the stream.
    pub(super) fn shut_writing(&self) {
        let _ = self.fd.get_ref().shutdown(std::net::Shutdown::Write);
    }

    /// Waits until the socket has room, watching it for writing only meanwhile.
    pub(super) async fn writable(&self) -> std::io::Result<()> {
        let watched = watch(self.fd.get_ref().try_clone()?, Interest::WRITABLE)?;
        watched.writable().await?.retain_ready();
        Ok(())
    }
}

/// Reads a [`Socket`] as an `AsyncRead`.
pub(super) struct ReadHalf(pub(super) Arc<Socket>);

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match self.0.fd.get_ref().read(unfilled) {
                Ok(n) => {
                    // Less than asked: nothing is left, so no read is tried until the socket
                    // says there is more (as tokio's own streams do).
                    if n > 0 && n < room {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Writes a [`Socket`] as an `AsyncWrite`: at once when it has room, else once it does
/// (watched for writing only while a write waits).
pub(super) struct WriteHalf {
    socket: Arc<Socket>,
    /// The second descriptor watched for room, while a write waits.
    waiting: Option<AsyncFd<StdStream>>,
}

impl WriteHalf {
    pub(super) fn new(socket: Arc<Socket>) -> Self {
        WriteHalf {
            socket,
            waiting: None,
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            match self.socket.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                done => {
                    self.waiting = None;
                    return Poll::Ready(done);
                }
            }
            if self.waiting.is_none() {
                let dup = self.socket.fd.get_ref().try_clone()?;
                self.waiting = Some(watch(dup, Interest::WRITABLE)?);
            }
            let Some(waiting) = self.waiting.as_ref() else {
                continue;
            };
            let mut guard = ready!(waiting.poll_write_ready(cx))?;
            match self.socket.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => guard.clear_ready(),
                done => {
                    drop(guard);
                    self.waiting = None;
                    return Poll::Ready(done);
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.socket.shut_writing();
        Poll::Ready(Ok(()))
    }
}

//! A client's connection to the holder: connecting with the hellos, and requests sent
//! together and answered in order.

use super::socket::{ReadHalf, Socket};
use super::writer::Writer;
use super::*;

/// A request on its way, and where its answer goes.
pub(super) type Reply = oneshot::Sender<std::result::Result<Response, FrameError>>;

/// One connection to a holder: requests are written in order, from whichever thread makes
/// them, and answered in order, read by a task, so any number can be in flight.
#[derive(Clone)]
pub(super) struct Connection {
    link: Arc<Link>,
    /// Which connection this is, so that only the first caller to find it broken replaces it.
    pub(super) generation: u64,
    /// Who answers on it.
    pub(super) holder: Arc<Holder>,
}

/// The answers a connection awaits, in order; `None` once it has ended.
pub(super) type Waiting = Arc<Mutex<Option<VecDeque<Awaited>>>>;

/// An answer awaited: where it goes (`None` once its asker gave up: the answer is still read
/// and dropped) and when the asker gives up.
pub(super) struct Awaited {
    reply: Option<Reply>,
    deadline: Instant,
}

/// The writing side of a connection, shared by its clones; dropping the last ends it.
struct Link {
    writer: Arc<Writer>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.writer.close();
    }
}

impl Connection {
    /// Connects to the holder of `store`. An error of kind `InvalidData` says that what
    /// answers is not this store's holder, which waiting does not change.
    pub(super) async fn open(
        store: &Path,
        generation: u64,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let id = crate::backends::sled::read_store_id(store)
            .ok_or_else(|| std::io::Error::other("the store's format file names no store id"))?;
        let (path, _dir) = socket_path(store)?;
        let stream = UnixStream::connect(path).await?;
        if !same_user(&stream) {
            return Err(std::io::Error::other(
                "the store's socket belongs to another user",
            ));
        }
        let mut stream = stream;
        let hello = wire::encode(&Request::Hello {
            protocol: PROTOCOL,
            store: id,
        })
        .map_err(std::io::Error::other)?;
        stream.write_all(&hello).await?;
        // Read unbuffered: nothing past the hello may be taken from the socket yet.
        let holder = match wire::read_frame_within::<_, Response>(&mut stream, HELLO_MAX).await {
            Ok(Response::Hello {
                protocol: PROTOCOL,
                pid,
                store,
                session,
                clean,
            }) if store == id => Holder {
                pid,
                store,
                session,
                clean,
            },
            Ok(Response::Hello { store, .. }) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the socket in its directory is served by the holder of another \
                         store (id {store:016x}, not {id:016x})"
                    ),
                ))
            }
            _ => return Err(std::io::Error::other("the holder did not say hello")),
        };
        let waiting: Waiting = Arc::new(Mutex::new(Some(VecDeque::new())));
        let socket = Socket::new(stream)?;
        let writer = Writer::start(socket.clone(), waiting.clone(), timeout);
        tokio::spawn(watch(Arc::downgrade(&waiting), timeout));
        tokio::spawn(receive(BufReader::new(ReadHalf(socket)), waiting));
        Ok(Self {
            link: Arc::new(Link { writer }),
            generation,
            holder: Arc::new(holder),
        })
    }

    pub(super) async fn call(
        &self,
        frame: Arc<Vec<u8>>,
    ) -> std::result::Result<Response, FrameError> {
        let (reply, answer) = oneshot::channel();
        if !self.link.writer.send(frame, reply) {
            return Err(FrameError::Closed);
        }
        answer.await.unwrap_or(Err(FrameError::Closed))
    }
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

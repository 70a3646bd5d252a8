//! A client's connection to the holder: connecting with the hellos, and requests sent
//! together and answered in order.

use super::awaited::{receive, watch, Waiting};
use super::socket::{ReadHalf, Socket};
use super::writer::Writer;
use super::*;
use crate::backends::deadline::within;

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

/// The writing side of a connection, shared by its clones; dropping the last ends it.
struct Link {
    writer: Arc<Writer>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.writer.close();
    }
}

/// Connects to the socket at `path` and exchanges hellos with whoever answers, which must
/// be the holder of store `id`. An error of kind `InvalidData` says that it is another's.
async fn greet(path: &Path, id: u64) -> std::io::Result<(UnixStream, Holder)> {
    let mut stream = UnixStream::connect(path).await?;
    if !same_user(&stream) {
        return Err(std::io::Error::other(
            "the store's socket belongs to another user",
        ));
    }
    let hello = wire::encode(&Request::Hello {
        protocol: PROTOCOL,
        store: id,
    })
    .map_err(std::io::Error::other)?;
    stream.write_all(&hello).await?;
    // Read unbuffered: nothing past the hello may be taken from the socket yet.
    match wire::read_frame_within::<_, Response>(&mut stream, HELLO_MAX).await {
        Ok(Response::Hello {
            protocol: PROTOCOL,
            pid,
            store,
            session,
            clean,
        }) if store == id => Ok((
            stream,
            Holder {
                pid,
                store,
                session,
                clean,
            },
        )),
        Ok(Response::Hello { store, .. }) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the socket in its directory is served by the holder of another store (id \
                 {store:016x}, not {id:016x})"
            ),
        )),
        _ => Err(std::io::Error::other("the holder did not say hello")),
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
        // Within a bound: a holder stopped with the connection accepted would leave the
        // hello unanswered for as long as it stays stopped.
        let deadline = tokio::time::Instant::now() + PROBE_WAIT;
        let (stream, holder) = within(deadline, greet(&path, id)).await.map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("it did not say hello within {} ms", PROBE_WAIT.as_millis()),
            )
        })??;
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

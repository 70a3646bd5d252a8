//! A client's connection to the holder: probing a store's socket before trusting it,
//! connecting with the hellos, and requests sent together and answered in order.

use super::*;

/// Connects to the socket at `path` within [`PROBE_WAIT`]: a blocking connect to a holder
/// that is stopped with a full listen backlog would wait for as long as it stays stopped.
pub(super) fn connect_within(
    handle: &Handle,
    path: &Path,
) -> std::io::Result<std::os::unix::net::UnixStream> {
    let connect = async {
        tokio::time::timeout(PROBE_WAIT, UnixStream::connect(path))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    };
    let stream = handle.block_on(connect)?.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Why the holder of a store could not be reached: for the message of the store's
/// `ERR_KV_LOCKED`.
#[derive(Debug)]
pub enum Unreached {
    /// It may be reachable in a moment: it is starting, or handing the store over as it
    /// leaves. Worth trying again while the holder shares the store.
    Wait(String),
    /// It will not be: trying again changes nothing.
    Final(String),
}

/// What a file in place of the store's socket is, for messages.
pub(super) fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_symlink() {
        "symbolic link"
    } else {
        "regular file"
    }
}

/// Checks that the holder of `store` serves it: connects and says hello, naming the store.
pub fn probe(store: &Path) -> std::result::Result<(), Unreached> {
    use Unreached::{Final, Wait};
    let Some(handle) = runtime() else {
        return Err(Final("this build shares no store".into()));
    };
    let Some(id) = crate::backends::sled::read_store_id(store) else {
        return Err(Wait("its format file names no store id yet".into()));
    };
    let socket = store.join(SOCKET_FILE);
    match fs::symlink_metadata(&socket) {
        Err(_) => return Err(Wait(format!("it has no socket ({SOCKET_FILE}) yet"))),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(Final(format!(
                "{} is a {}, not the socket the store is served on; remove it and open the \
                 store again",
                socket.display(),
                kind_of(&meta)
            )))
        }
        Ok(_) => {}
    }
    let connected = socket_path(store).and_then(|(path, _dir)| connect_within(handle, &path));
    let mut stream = match connected {
        Ok(stream) => stream,
        // A full backlog: at once on a non-blocking connect, or after the wait.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            return Err(Final(format!(
                "it accepted no connection within {} ms; is it stopped?",
                PROBE_WAIT.as_millis()
            )))
        }
        Err(e) => return Err(Wait(format!("its socket accepted no connection ({e})"))),
    };
    if !same_user(&stream) {
        return Err(Final("it runs as another user".into()));
    }
    let mut talk = || -> std::io::Result<Option<Response>> {
        stream.set_read_timeout(Some(PROBE_WAIT))?;
        stream.set_write_timeout(Some(PROBE_WAIT))?;
        let hello = wire::encode(&Request::Hello {
            protocol: PROTOCOL,
            store: id,
        })
        .map_err(std::io::Error::other)?;
        stream.write_all(&hello)?;
        let mut header = [0; 4];
        stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header) as usize;
        if len > HELLO_MAX {
            return Ok(None);
        }
        let mut body = vec![0; len];
        stream.read_exact(&mut body)?;
        Ok(postcard::from_bytes(&body).ok())
    };
    match talk() {
        Ok(Some(Response::Hello {
            protocol: PROTOCOL,
            store,
            ..
        })) if store == id => Ok(()),
        Ok(Some(Response::Hello {
            protocol: PROTOCOL,
            store,
            ..
        })) => Err(Final(format!(
            "the socket in its directory is served by the holder of another store (id \
             {store:016x}, not {id:016x})"
        ))),
        Ok(_) => Err(Final(
            "it speaks another version of the store protocol".into(),
        )),
        // Connected and not answered: stopped, or busy beyond reason.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            Err(Final(format!(
                "it did not answer on {} within {} ms; is it stopped?",
                socket.display(),
                PROBE_WAIT.as_millis()
            )))
        }
        // The connection ended: a holder leaving.
        Err(e) => Err(Wait(format!(
            "it did not answer on {} ({e})",
            socket.display()
        ))),
    }
}

/// A request on its way, and where its answer goes.
pub(super) type Reply = oneshot::Sender<std::result::Result<Response, FrameError>>;

/// One connection to a holder: requests are written in order by one task and answered in
/// order, read by another, so any number can be in flight.
#[derive(Clone)]
pub(super) struct Connection {
    pub(super) requests: mpsc::UnboundedSender<(Arc<Vec<u8>>, Reply)>,
    /// Which connection this is, so that only the first caller to find it broken replaces it.
    pub(super) generation: u64,
    /// Who answers on it.
    pub(super) holder: Arc<Holder>,
}

/// The answers a connection awaits, in order; `None` once it has ended.
pub(super) type Waiting = Arc<Mutex<Option<VecDeque<Reply>>>>;

impl Connection {
    /// Connects to the holder of `store`. An error of kind `InvalidData` says that what
    /// answers is not this store's holder, which waiting does not change.
    pub(super) async fn open(store: &Path, generation: u64) -> std::io::Result<Self> {
        let id = crate::backends::sled::read_store_id(store)
            .ok_or_else(|| std::io::Error::other("the store's format file names no store id"))?;
        let (path, _dir) = socket_path(store)?;
        let stream = UnixStream::connect(path).await?;
        if !same_user(&stream) {
            return Err(std::io::Error::other(
                "the store's socket belongs to another user",
            ));
        }
        let (read, write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut write = BufWriter::new(write);
        let hello = wire::encode(&Request::Hello {
            protocol: PROTOCOL,
            store: id,
        })
        .map_err(std::io::Error::other)?;
        write.write_all(&hello).await?;
        write.flush().await?;
        let holder = match wire::read_frame_within::<_, Response>(&mut read, HELLO_MAX).await {
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
        let (requests, outgoing) = mpsc::unbounded_channel();
        let waiting: Waiting = Arc::new(Mutex::new(Some(VecDeque::new())));
        tokio::spawn(send(write, outgoing, waiting.clone()));
        tokio::spawn(receive(read, waiting));
        Ok(Self {
            requests,
            generation,
            holder: Arc::new(holder),
        })
    }

    pub(super) async fn call(
        &self,
        frame: Arc<Vec<u8>>,
    ) -> std::result::Result<Response, FrameError> {
        let (reply, answer) = oneshot::channel();
        let gone = || FrameError::Closed;
        self.requests.send((frame, reply)).map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Writes requests in the order they come, each after its answer is awaited.
pub(super) async fn send(
    mut write: BufWriter<OwnedWriteHalf>,
    mut outgoing: mpsc::UnboundedReceiver<(Arc<Vec<u8>>, Reply)>,
    waiting: Waiting,
) {
    while let Some((frame, reply)) = outgoing.recv().await {
        if !enqueue(&waiting, reply) || write.write_all(&frame).await.is_err() {
            break;
        }
        if outgoing.is_empty() && write.flush().await.is_err() {
            break;
        }
    }
    end(&waiting);
}

/// Queues `reply` for the next answer; `false` (and the reply failed) once the connection ended.
pub(super) fn enqueue(waiting: &Waiting, reply: Reply) -> bool {
    let mut waiting = waiting.lock().unwrap_or_else(|e| e.into_inner());
    match waiting.as_mut() {
        Some(queue) => {
            queue.push_back(reply);
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
    for reply in queue.into_iter().flatten() {
        let _ = reply.send(Err(FrameError::Closed));
    }
}

/// Reads answers, handing each to the oldest request awaiting one.
pub(super) async fn receive(mut read: BufReader<OwnedReadHalf>, waiting: Waiting) {
    loop {
        let answer = wire::read_frame::<_, Response>(&mut read).await;
        let failed = answer.is_err();
        let reply = waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .and_then(VecDeque::pop_front);
        match reply {
            Some(reply) => {
                let _ = reply.send(answer);
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

//! The holder's side: the socket it serves the store on, who may connect, and each
//! connection's requests answered in order (see [`answer`](super::answer) for what each does
//! on the store).

use super::socket::{ReadHalf, Socket, WriteHalf};
use super::*;

/// The KiB of requests a holder reads and acts on at once, over all its connections: one
/// request of the largest size fits, and a connection waits while others hold it all.
pub(super) const IN_FLIGHT_KIB: usize = wire::MAX_FRAME / 1024;

/// The most connections a holder serves at once; more are closed as they come.
pub(super) const CONNECTIONS_MAX: usize = 512;

/// How long a holder's accept loop rests after a failed accept (out of descriptors...), so
/// that it does not spin.
pub(super) const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// The serving of one open store; dropping it stops the serving and removes the socket.
pub struct Server {
    accept: tokio::task::AbortHandle,
    /// What it answered for its clients, while someone reads it.
    log: Arc<ServedLog>,
    socket: PathBuf,
    /// The device and inode of the socket made, so that only it is removed: the store's
    /// directory may have been renamed, and another store made at its old path since.
    made: (u64, u64),
}

/// The device and inode of the file at `path`, not following a link.
pub(super) fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

impl Server {
    /// Serves the store in `store`, which this process has just opened (holding its lock), if
    /// a runtime is there to do it. Whatever an earlier holder or anyone else left under the
    /// socket's name is replaced, unless it is a directory (clients then say so).
    pub fn start(store: &Path, config: &StoreConfig, identity: &Identity) -> Option<Server> {
        let handle = runtime()?;
        let socket = store.join(SOCKET_FILE);
        match fs::symlink_metadata(&socket) {
            Ok(meta) if meta.is_dir() => return None,
            Ok(_) => fs::remove_file(&socket).ok()?,
            Err(_) => {}
        }
        let (path, _dir) = socket_path(store).ok()?;
        let listener = std::os::unix::net::UnixListener::bind(path).ok()?;
        let serving = (|| {
            fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).ok()?;
            listener.set_nonblocking(true).ok()?;
            let _entered = handle.enter();
            UnixListener::from_std(listener).ok()
        })();
        let made = file_id(&socket);
        let (Some(listener), Some(made)) = (serving, made) else {
            let _ = fs::remove_file(&socket);
            return None;
        };
        let holder = Arc::new(Holder::serving(identity));
        let log = Arc::new(ServedLog::default());
        let serving = Serving {
            store: store.to_owned(),
            config: config.clone(),
            holder,
            log: log.clone(),
        };
        let accept = handle.spawn(accept(listener, serving)).abort_handle();
        Some(Server {
            accept,
            log,
            socket,
            made,
        })
    }
}

/// Opens namespace `name` of the store in `path` as [`SledBackend::open`] does and, when
/// `config.share` says so, serves the store to the other processes that open it (once per
/// opening of the store, whichever namespace opens it first).
pub fn open_serving(path: &Path, name: &str, config: &StoreConfig) -> Result<SledBackend> {
    let backend = SledBackend::open(path, name, config)?;
    if config.share {
        let (store, identity) = (backend.store_path().to_owned(), backend.identity().clone());
        backend.serve(|| Server::start(&store, config, &identity));
    }
    Ok(backend)
}

impl crate::backends::sled::Serving for Server {
    fn served(&self, after: u64) -> ServedPage {
        self.log.since(after)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stopping the accepting stops every connection (they live in its JoinSet). The store
        // still holds its lock here, so no next holder has made a socket in this directory;
        // but the directory's path may now name another store, whose socket is not ours.
        self.accept.abort();
        if file_id(&self.socket) == Some(self.made) {
            let _ = fs::remove_file(&self.socket);
        }
    }
}

/// What every connection of one server shares: the store, the holder it speaks for, the log
/// of what it answers.
#[derive(Clone)]
pub(super) struct Serving {
    store: PathBuf,
    config: StoreConfig,
    holder: Arc<Holder>,
    log: Arc<ServedLog>,
}

pub(super) async fn accept(listener: UnixListener, serving: Serving) {
    let mut connections = JoinSet::new();
    let budget = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_KIB));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < CONNECTIONS_MAX => {
                    connections.spawn(serve(stream, serving.clone(), budget.clone()));
                }
                // Over the limit: closed at once, so the client knows.
                Ok(_) => {}
                // Out of descriptors, most likely: accepting again at once would spin.
                Err(_) => tokio::time::sleep(ACCEPT_PAUSE).await,
            },
            // Reaps finished connections.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers one client's requests, in order, until it goes or sends something else. A
/// request holds its share of `budget` (see [`wire::read_body_budgeted`]) until answered.
pub(super) async fn serve(
    stream: UnixStream,
    serving: Serving,
    budget: Arc<tokio::sync::Semaphore>,
) {
    if !same_user(&stream) {
        return;
    }
    let client = peer(&stream).map_or(0, |(_, pid)| pid);
    let Serving {
        store,
        config,
        holder,
        log,
    } = serving;
    let mut stream = stream;
    // Read unbuffered: what the client sends after its hello stays in the socket.
    match wire::read_frame_within::<_, Request>(&mut stream, HELLO_MAX).await {
        Ok(Request::Hello {
            protocol,
            store: id,
        }) => {
            // Answered whatever was asked, so that the client can say what it found.
            let Ok(frame) = wire::encode(&holder.hello()) else {
                return;
            };
            if stream.write_all(&frame).await.is_err() {
                return;
            }
            if protocol != PROTOCOL || id != holder.store {
                return;
            }
        }
        _ => return,
    }
    let Ok(socket) = Socket::new(stream) else {
        return;
    };
    let mut read = BufReader::new(ReadHalf(socket.clone()));
    let mut write = BufWriter::new(WriteHalf::new(socket));
    // The stages this client began and has not ended go when it does.
    let mut stages = Vec::new();
    let asker = Asker {
        store: &store,
        config: &config,
        budget: &budget,
        log: &log,
        client,
    };
    answer_all(&mut read, &mut write, &asker, &mut stages).await;
    for (ns, stage) in stages {
        let (store, config) = (store.clone(), config.clone());
        let request = Request::StageDrop { ns, stage };
        let _ = tokio::task::spawn_blocking(move || answer(&store, &config, request)).await;
    }
}

/// The most stages one connection may have begun and not ended: each holds a tree and
/// records until it ends, or the connection does.
const STAGES_PER_CONNECTION: usize = 64;

/// One connection's side of the serving: the store, the budget of requests in flight it
/// shares, the log it reports to, and the pid of the process at its other end.
pub(super) struct Asker<'a> {
    store: &'a Path,
    config: &'a StoreConfig,
    budget: &'a Arc<tokio::sync::Semaphore>,
    log: &'a ServedLog,
    client: u32,
}

/// Answers a client's requests until it goes or sends something else, keeping in `stages`
/// the stages it began and has not ended.
pub(super) async fn answer_all(
    read: &mut BufReader<ReadHalf>,
    write: &mut BufWriter<WriteHalf>,
    asker: &Asker<'_>,
    stages: &mut Vec<(String, u64)>,
) {
    loop {
        let Ok((body, _held)) = wire::read_body_budgeted(read, asker.budget).await else {
            return;
        };
        let started = Instant::now();
        let answered = if body.len() > LIGHT_WRITE_MAX && wire::is_put(&body) {
            answer_large_put(body, asker).await
        } else {
            answer_request(body, asker, stages).await
        };
        // Not a message of the protocol: the client is dropped unanswered.
        let Some((response, asked)) = answered else {
            return;
        };
        if let Some(asked) = asked {
            asker.log.record(asked, &response, started.elapsed());
        }
        let frame = match wire::encode(&response) {
            Ok(frame) => frame,
            Err(error) => match wire::encode(&Response::Failed(error)) {
                Ok(frame) => frame,
                Err(_) => return,
            },
        };
        if write.write_all(&frame).await.is_err() {
            return;
        }
        // Requests sent together are answered together.
        if read.buffer().is_empty() && write.flush().await.is_err() {
            return;
        }
    }
}

/// The answer to a large write, read in place on a blocking thread so that its values are not
/// copied, and how the log names it when someone reads the log; `None` when `body` is not a
/// message of the protocol.
async fn answer_large_put(body: Vec<u8>, asker: &Asker<'_>) -> Option<(Response, Option<Asked>)> {
    let (watched, client) = (asker.log.watched(), asker.client);
    let (store, config) = (asker.store.to_owned(), asker.config.clone());
    let answered = tokio::task::spawn_blocking(move || {
        let put = wire::decode_put(&body).ok()?;
        let asked = watched.then(|| Asked::of_put(&put, client));
        Some((answer_put(&store, &config, put), asked))
    })
    .await;
    match answered {
        Ok(answered) => answered,
        Err(e) => Some((Response::Failed(Error::Internal(e.to_string())), None)),
    }
}

/// The answer to any other request, keeping in `stages` the stages the client began and has
/// not ended; `None` when `body` is not a message of the protocol.
async fn answer_request(
    body: Vec<u8>,
    asker: &Asker<'_>,
    stages: &mut Vec<(String, u64)>,
) -> Option<(Response, Option<Asked>)> {
    let request = wire::decode::<Request>(&body).ok()?;
    // The request holds what it needs: the frame (a restore may be large) goes now.
    drop(body);
    let begun = match &request {
        Request::StageBegin { ns } => Some(ns.clone()),
        Request::StageCommit { ns, stage } | Request::StageDrop { ns, stage } => {
            stages.retain(|(n, s)| (n, s) != (ns, stage));
            None
        }
        _ => None,
    };
    // Named before it is answered (the answer takes it), when someone reads the log.
    let asked = if asker.log.watched() {
        Asked::of(&request, asker.client)
    } else {
        None
    };
    let response = if begun.is_some() && stages.len() >= STAGES_PER_CONNECTION {
        Response::Failed(Error::Invalid(format!(
            "a client may have {STAGES_PER_CONNECTION} writes given in parts under way at once"
        )))
    } else if is_heavy(&request) {
        let (store, config) = (asker.store.to_owned(), asker.config.clone());
        tokio::task::spawn_blocking(move || answer(&store, &config, request))
            .await
            .unwrap_or_else(|e| Response::Failed(Error::Internal(e.to_string())))
    } else {
        answer(asker.store, asker.config, request)
    };
    if let (Some(ns), Response::Staged(stage)) = (begun, &response) {
        stages.push((ns, *stage));
    }
    Some((response, asked))
}

#[cfg(test)]
mod tests;

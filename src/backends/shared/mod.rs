//! One sled store, many processes.
//!
//! sled lets one process open a store. The process that holds it (its lock, `kv.lock`) also
//! serves it on a Unix socket inside the store directory, `kv.sock`, to the other processes
//! of the same user that open the store: they become its clients, with the same operations
//! and results, and each keeps the KV semantics ([`Namespace`](super::Namespace)) on its own
//! side. What crosses the socket is backend operations ([`wire`]).
//!
//! When the holder goes away (it closed the store, exited, or was killed), a client's next
//! operation takes the store over: it takes the lock and opens the store itself, or, when
//! another client was quicker, connects to that one. Every operation on the wire can be
//! repeated without changing its outcome (writes of whole entries, deletes, compare-and-
//! delete), so one caught by the holder's end is simply sent again.
//!
//! The socket file is made for its owner alone, and both sides check that the other end is
//! a process of the same user and that it means this store: the hellos carry the store's id
//! (kept in the store, and in its format file for clients to read). A connection that sends
//! anything but frames of the protocol, or more than a hello before its hello, is dropped
//! unanswered, and nothing it sent is acted on. A holder removes only the socket it made.
//!
//! Nothing acknowledged is lost unnoticed. A client remembers the writes each holder
//! acknowledged until a flush covers them; a holder that closes cleanly records its session
//! in the store after its last flush, so its clients know its writes are on disk. When a
//! holder dies instead, the writes it had acknowledged and not flushed may be lost: the next
//! flush (and so each durable write waiting for it) reports their keys, and keeps reporting
//! them until they are written again.

pub(crate) mod wire;

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use sled::IVec;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::backends::sled::{Identity, Lease, SledBackend, StoreConfig, STAGE_GONE};
use crate::store::Backend;
use crate::store::{DamageSink, Entries, Entry, Pending, PutEntry, RemoteBackend, ScanVisitor};
use crate::store::{Error, Result};
use wire::{
    key_fault, metadata_fault, FrameError, Request, Response, WireEntry, HELLO_MAX, PROTOCOL,
};

pub use crate::backends::sled::dir::SOCKET_FILE;

/// How long a client keeps trying to reach a store whose holder went away, while another
/// process takes it over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

/// How long opening a store waits for its holder to answer.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The most entries one scan request returns.
const SCAN_BATCH_MAX: u32 = 1024;

/// The most entries in a page of a namespace read through the holder...
const PAGE_ENTRIES: usize = 4096;
/// ... and the bytes of values after which a page ends (one value may take it past).
const PAGE_BYTES: usize = 16 << 20;

/// The KiB of requests a holder reads and acts on at once, over all its connections: one
/// request of the largest size fits, and a connection waits while others hold it all.
const IN_FLIGHT_KIB: usize = wire::MAX_FRAME / 1024;

/// The most connections a holder serves at once; more are closed as they come.
const CONNECTIONS_MAX: usize = 512;

/// How long a holder's accept loop rests after a failed accept (out of descriptors...), so
/// that it does not spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// Gives the runtime that serves stores and runs their clients. Without one (the pure core in
/// tests that set none), stores are not shared.
pub fn set_runtime(handle: Handle) {
    let _ = RUNTIME.set(handle);
}

fn runtime() -> Option<&'static Handle> {
    RUNTIME.get()
}

/// The uid of the process at the other end of a Unix socket.
fn peer_uid(socket: &impl AsRawFd) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: a valid socket and out-pointers of the sizes given.
        let status = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                std::ptr::from_mut(&mut cred).cast(),
                &mut len,
            )
        };
        (status == 0).then_some(cred.uid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: a valid socket and out-pointers.
        let status = unsafe { libc::getpeereid(socket.as_raw_fd(), &mut uid, &mut gid) };
        (status == 0).then_some(uid)
    }
}

/// Whether the other end of `socket` runs as this process's user.
fn same_user(socket: &impl AsRawFd) -> bool {
    // SAFETY: geteuid cannot fail.
    peer_uid(socket) == Some(unsafe { libc::geteuid() })
}

/// A path to the store's socket short enough for a socket address (about 100 bytes): the
/// path itself, or on Linux, for a deep directory, the same file seen through a descriptor of
/// the directory (`/proc/self/fd/N/kv.sock`), which the returned file keeps open.
fn socket_path(store: &Path) -> std::io::Result<(PathBuf, Option<fs::File>)> {
    let socket = store.join(SOCKET_FILE);
    #[cfg(target_os = "linux")]
    if socket.as_os_str().len() >= 100 {
        let dir = fs::File::open(store)?;
        let short = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", dir.as_raw_fd()));
        return Ok((short, Some(dir)));
    }
    Ok((socket, None))
}

// ----- the holder's side -----

/// The serving of one open store; dropping it stops the serving and removes the socket.
pub struct Server {
    accept: tokio::task::AbortHandle,
    socket: PathBuf,
    /// The device and inode of the socket made, so that only it is removed: the store's
    /// directory may have been renamed, and another store made at its old path since.
    made: (u64, u64),
}

/// The device and inode of the file at `path`, not following a link.
fn file_id(path: &Path) -> Option<(u64, u64)> {
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
        let accept = handle
            .spawn(accept(listener, store.to_owned(), config.clone(), holder))
            .abort_handle();
        Some(Server {
            accept,
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

async fn accept(listener: UnixListener, store: PathBuf, config: StoreConfig, holder: Arc<Holder>) {
    let mut connections = JoinSet::new();
    let budget = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_KIB));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < CONNECTIONS_MAX => {
                    let (store, config) = (store.clone(), config.clone());
                    connections.spawn(serve(stream, store, config, holder.clone(), budget.clone()));
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
/// request holds its share of `budget` (see [`wire::read_frame_budgeted`]) until answered.
async fn serve(
    stream: UnixStream,
    store: PathBuf,
    config: StoreConfig,
    holder: Arc<Holder>,
    budget: Arc<tokio::sync::Semaphore>,
) {
    if !same_user(&stream) {
        return;
    }
    let (read, write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut write = BufWriter::new(write);
    match wire::read_frame_within::<_, Request>(&mut read, HELLO_MAX).await {
        Ok(Request::Hello {
            protocol,
            store: id,
        }) => {
            // Answered whatever was asked, so that the client can say what it found.
            let Ok(frame) = wire::encode(&holder.hello()) else {
                return;
            };
            if write.write_all(&frame).await.is_err() || write.flush().await.is_err() {
                return;
            }
            if protocol != PROTOCOL || id != holder.store {
                return;
            }
        }
        _ => return,
    }
    // The stages this client began and has not ended go when it does.
    let mut stages = Vec::new();
    answer_all(&mut read, &mut write, &store, &config, &budget, &mut stages).await;
    for (ns, stage) in stages {
        let (store, config) = (store.clone(), config.clone());
        let request = Request::StageDrop { ns, stage };
        let _ = tokio::task::spawn_blocking(move || answer(&store, &config, request)).await;
    }
}

/// Answers a client's requests until it goes or sends something else, keeping in `stages`
/// the stages it began and has not ended.
async fn answer_all(
    read: &mut BufReader<OwnedReadHalf>,
    write: &mut BufWriter<OwnedWriteHalf>,
    store: &Path,
    config: &StoreConfig,
    budget: &Arc<tokio::sync::Semaphore>,
    stages: &mut Vec<(String, u64)>,
) {
    loop {
        let Ok((request, _held)) = wire::read_frame_budgeted::<_, Request>(read, budget).await
        else {
            return;
        };
        let begun = match &request {
            Request::StageBegin { ns } => Some(ns.clone()),
            Request::StageCommit { ns, stage } | Request::StageDrop { ns, stage } => {
                stages.retain(|(n, s)| (n, s) != (ns, stage));
                None
            }
            _ => None,
        };
        let response = if is_heavy(&request) {
            let (store, config) = (store.to_owned(), config.clone());
            tokio::task::spawn_blocking(move || answer(&store, &config, request))
                .await
                .unwrap_or_else(|e| Response::Failed(Error::Internal(e.to_string())))
        } else {
            answer(store, config, request)
        };
        if let (Some(ns), Response::Staged(stage)) = (begun, &response) {
            stages.push((ns, *stage));
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

/// The most bytes of values a write carries and still runs on the I/O thread.
const LIGHT_WRITE_MAX: usize = 64 * 1024;

/// Whether a request may take long enough (an fsync, a whole namespace, large values) that it
/// runs on a blocking thread rather than hold up the other connections and this process's
/// own network I/O.
fn is_heavy(request: &Request) -> bool {
    match request {
        Request::Flush
        | Request::EntriesPage { .. }
        | Request::ReplaceAll { .. }
        | Request::StageCommit { .. }
        | Request::StageDrop { .. } => true,
        Request::PutAll { entries, .. } | Request::StagePut { entries, .. } => {
            entries.iter().map(|e| e.value.len()).sum::<usize>() > LIGHT_WRITE_MAX
        }
        Request::GetMany { keys, .. } => keys.len() > 1,
        _ => false,
    }
}

/// Runs one request on the store, if this process still has it open.
fn answer(store: &Path, config: &StoreConfig, request: Request) -> Response {
    let Some(lease) = Lease::existing(store) else {
        return Response::Gone;
    };
    let outcome = match request {
        Request::Hello { .. } => Err(Error::Internal("a second hello".into())),
        Request::Flush => lease.flush().map(|()| Response::Done),
        Request::Get { ns, key } => backend(lease, &ns, config)
            .and_then(|b| b.get(&key, u64::MAX))
            .and_then(|entry| {
                entry
                    .map(|entry| WireEntry::from_entry(&key, &entry))
                    .transpose()
                    .map(Response::Entry)
            }),
        Request::GetMany { ns, keys } => backend(lease, &ns, config).and_then(|b| {
            keys.iter()
                .map(|key| {
                    b.get(key, u64::MAX)?
                        .map(|entry| WireEntry::from_entry(key, &entry))
                        .transpose()
                })
                .collect::<Result<Vec<_>>>()
                .map(Response::Entries)
        }),
        Request::PutAll { ns, entries } => backend(lease, &ns, config).and_then(|b| {
            let entries = entries
                .iter()
                .map(|entry| entry.check().and_then(|()| entry.as_put()))
                .collect::<Result<Vec<PutEntry<'_>>>>()?;
            b.put_all(&entries).map(|()| Response::Done)
        }),
        Request::Delete { ns, key } => {
            backend(lease, &ns, config).and_then(|b| b.delete(&key).map(|()| Response::Done))
        }
        Request::DeleteExpired { ns, keys, now_ms } => backend(lease, &ns, config).and_then(|b| {
            keys.iter()
                .try_for_each(|key| b.delete_expired(key, now_ms))
                .map(|()| Response::Done)
        }),
        Request::Scan {
            ns,
            prefix,
            after,
            want,
        } => backend(lease, &ns, config).and_then(|b| {
            let want = want.clamp(1, SCAN_BATCH_MAX) as usize;
            let mut items = Vec::new();
            let mut more = false;
            b.scan(
                &prefix,
                after.as_ref().map(|a| a.as_slice()),
                &mut |key, expiration, metadata| {
                    if items.len() == want {
                        more = true;
                        return false;
                    }
                    let metadata = metadata.map(|m| ByteBuf::from(m.to_vec()));
                    items.push((ByteBuf::from(key), expiration, metadata));
                    true
                },
            )?;
            Ok(Response::Scanned { items, more })
        }),
        Request::EntriesPage {
            ns,
            skip_damaged,
            after,
        } => backend(lease, &ns, config).and_then(|b| {
            let (found, damaged, next) =
                entries_page(&b, skip_damaged, after.as_ref().map(|a| a.as_slice()))?;
            let entries = found
                .iter()
                .map(|(key, entry)| WireEntry::from_entry(key, entry))
                .collect::<Result<Vec<_>>>()?;
            let damaged = damaged
                .into_iter()
                .map(|(key, error)| (ByteBuf::from(key.to_vec()), error))
                .collect();
            let next = next.map(|key| ByteBuf::from(key.to_vec()));
            Ok(Response::Page {
                entries,
                damaged,
                next,
            })
        }),
        Request::StageBegin { ns } => backend(lease, &ns, config)
            .and_then(|b| b.stage_begin())
            .map(|stage| Response::Staged(stage.unwrap_or_default())),
        Request::StagePut { ns, stage, entries } => backend(lease, &ns, config).and_then(|b| {
            let entries = entries
                .iter()
                .map(|entry| entry.check().and_then(|()| entry.as_put()))
                .collect::<Result<Vec<PutEntry<'_>>>>()?;
            b.stage_put(stage, &entries).map(|()| Response::Done)
        }),
        Request::StageCommit { ns, stage } => backend(lease, &ns, config)
            .and_then(|b| b.stage_commit(stage))
            .map(|()| Response::Done),
        Request::StageDrop { ns, stage } => backend(lease, &ns, config)
            .and_then(|b| b.stage_drop(stage))
            .map(|()| Response::Done),
        Request::ReplaceAll { ns, entries } => backend(lease, &ns, config).and_then(|b| {
            entries.iter().try_for_each(WireEntry::check)?;
            let entries: Vec<(IVec, Entry)> =
                entries.into_iter().map(WireEntry::into_entry).collect();
            b.replace_all(&entries).map(|()| Response::Done)
        }),
    };
    outcome.unwrap_or_else(Response::Failed)
}

/// A page of entries, the damaged ones left out, and the key after which the next starts.
type Page = (Entries, Vec<(IVec, Error)>, Option<IVec>);

/// A page of a namespace's entries as a holder sends it: after `after`, up to
/// [`PAGE_ENTRIES`] entries and, past the first, [`PAGE_BYTES`] bytes of values, so that
/// reading a namespace of any size through the holder costs it a page's memory at a time.
/// The page, the damaged entries left out (with `skip_damaged`), and the key to go on after.
fn entries_page(b: &SledBackend, skip_damaged: bool, after: Option<&[u8]>) -> Result<Page> {
    let mut damaged = Vec::new();
    let mut sink = |key: IVec, error: Error| damaged.push((key, error));
    let (mut count, mut bytes) = (0, 0);
    let (entries, next) = b.entries_after(
        after,
        skip_damaged.then_some(&mut sink as &mut DamageSink<'_>),
        |entry| {
            count += 1;
            bytes += entry.value.bytes().map_or(0, <[u8]>::len);
            count == PAGE_ENTRIES || bytes >= PAGE_BYTES
        },
    )?;
    Ok((entries, damaged, next))
}

/// Namespace `ns` of the open store: a name inside the database, checked as any other.
fn backend(lease: Lease, ns: &str, config: &StoreConfig) -> Result<SledBackend> {
    crate::store::check_namespace_name(ns)?;
    SledBackend::with_lease(lease, ns, config)
}

// ----- a client's side -----

/// A holder as the processes it serves know it: from its hello, or, once this process has
/// taken the store over, from its own lease.
#[derive(Debug)]
struct Holder {
    pid: u32,
    store: u64,
    session: u64,
    /// Earlier sessions that closed the store cleanly.
    clean: Vec<u64>,
}

impl Holder {
    fn serving(identity: &Identity) -> Self {
        Self {
            pid: std::process::id(),
            store: identity.store,
            session: identity.session,
            clean: identity.clean.clone(),
        }
    }

    fn hello(&self) -> Response {
        Response::Hello {
            protocol: PROTOCOL,
            pid: self.pid,
            store: self.store,
            session: self.session,
            clean: self.clean.clone(),
        }
    }

    /// Whether this is this process, holding the store itself.
    fn is_here(&self) -> bool {
        self.pid == std::process::id()
    }

    /// Whether a flush this holder answered vouches for the writes `session` acknowledged:
    /// its own, or those of a holder that closed the store cleanly before it.
    fn vouches_for(&self, session: u64) -> bool {
        session == self.session || self.clean.contains(&session)
    }
}

/// Connects to the socket at `path` within [`PROBE_WAIT`]: a blocking connect to a holder
/// that is stopped with a full listen backlog would wait for as long as it stays stopped.
fn connect_within(handle: &Handle, path: &Path) -> std::io::Result<std::os::unix::net::UnixStream> {
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
fn kind_of(meta: &fs::Metadata) -> &'static str {
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
type Reply = oneshot::Sender<std::result::Result<Response, FrameError>>;

/// One connection to a holder: requests are written in order by one task and answered in
/// order, read by another, so any number can be in flight.
#[derive(Clone)]
struct Connection {
    requests: mpsc::UnboundedSender<(Arc<Vec<u8>>, Reply)>,
    /// Which connection this is, so that only the first caller to find it broken replaces it.
    generation: u64,
    /// Who answers on it.
    holder: Arc<Holder>,
}

/// The answers a connection awaits, in order; `None` once it has ended.
type Waiting = Arc<Mutex<Option<VecDeque<Reply>>>>;

impl Connection {
    /// Connects to the holder of `store`. An error of kind `InvalidData` says that what
    /// answers is not this store's holder, which waiting does not change.
    async fn open(store: &Path, generation: u64) -> std::io::Result<Self> {
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

    async fn call(&self, frame: Arc<Vec<u8>>) -> std::result::Result<Response, FrameError> {
        let (reply, answer) = oneshot::channel();
        let gone = || FrameError::Closed;
        self.requests.send((frame, reply)).map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Writes requests in the order they come, each after its answer is awaited.
async fn send(
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
fn enqueue(waiting: &Waiting, reply: Reply) -> bool {
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
fn end(waiting: &Waiting) {
    let queue = waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
    for reply in queue.into_iter().flatten() {
        let _ = reply.send(Err(FrameError::Closed));
    }
}

/// Reads answers, handing each to the oldest request awaiting one.
async fn receive(mut read: BufReader<OwnedReadHalf>, waiting: Waiting) {
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

enum State {
    /// Not connected yet, or the connection ended: the next call reconnects or takes over.
    Idle {
        generation: u64,
    },
    Client(Connection),
    /// This process took the store over: calls go to it directly.
    Holder(Arc<SledBackend>, Arc<Holder>),
}

/// A namespace of a store another process holds: the client's side.
pub struct SharedBackend {
    store: PathBuf,
    name: String,
    config: StoreConfig,
    state: tokio::sync::Mutex<State>,
    ledger: Mutex<Ledger>,
    /// Whether a write is asking for a flush because the ledger is full (one at a time).
    settling: std::sync::atomic::AtomicBool,
}

/// How many acknowledged writes, and bytes of their keys, a [`Ledger`] holds before the client
/// asks its holder for a flush to settle them (a client that never flushes would otherwise
/// remember every write it made).
const LEDGER_WRITES_MAX: usize = 4096;
const LEDGER_KEYS_MAX: usize = 1 << 20;

/// What an acknowledged write changed, as the ledger remembers it.
enum Wrote {
    Keys(Vec<Vec<u8>>),
    /// The whole namespace (restore, clear).
    Everything,
}

/// One acknowledged write that no flush has vouched for yet.
struct Acknowledged {
    seq: u64,
    /// The session of the holder that acknowledged it, and that holder's pid.
    session: u64,
    pid: u32,
    wrote: Wrote,
}

/// The writes a client's holders acknowledged, until a flush vouches for them (see
/// [`Holder::vouches_for`]), and those that may have been lost: a holder that went away
/// without closing cleanly loses what it had not flushed. A loss is reported by every flush
/// until the keys are written again and that write is on disk.
#[derive(Default)]
struct Ledger {
    next: u64,
    pending: VecDeque<Acknowledged>,
    key_bytes: usize,
    /// Keys whose last write may have been lost, with the pid of the holder that lost it.
    lost: std::collections::BTreeMap<Vec<u8>, u32>,
    /// A write of unknown keys may have been lost, by the holder of this pid.
    lost_unknown: Option<u32>,
}

impl Ledger {
    /// Notes a write `holder` acknowledged. One this process made on a store it holds needs
    /// no flush to vouch for it: the session that wrote it is the one that will flush it, so
    /// the writes before it are settled now and it counts as on disk at once.
    fn wrote(&mut self, wrote: Wrote, holder: &Holder) {
        if holder.is_here() {
            self.flushed(self.next, holder);
            self.settle(wrote, true, holder.pid);
            return;
        }
        if let Wrote::Keys(keys) = &wrote {
            self.key_bytes += keys.iter().map(Vec::len).sum::<usize>();
        }
        self.pending.push_back(Acknowledged {
            seq: self.next,
            session: holder.session,
            pid: holder.pid,
            wrote,
        });
        self.next += 1;
    }

    /// Whether enough writes wait for a flush that the client should ask for one.
    fn is_full(&self) -> bool {
        self.pending.len() >= LEDGER_WRITES_MAX || self.key_bytes >= LEDGER_KEYS_MAX
    }

    /// Settles the writes acknowledged before `upto` after `holder` answered a flush: on disk
    /// if it vouches for them, else possibly lost.
    fn flushed(&mut self, upto: u64, holder: &Holder) {
        while self.pending.front().is_some_and(|w| w.seq < upto) {
            let Some(write) = self.pending.pop_front() else {
                break;
            };
            if let Wrote::Keys(keys) = &write.wrote {
                self.key_bytes -= keys.iter().map(Vec::len).sum::<usize>();
            }
            self.settle(write.wrote, holder.vouches_for(write.session), write.pid);
        }
    }

    /// Records what one write did: on disk (`durable`), it heals the keys it wrote; else they
    /// may have been lost, by the holder of `pid`.
    fn settle(&mut self, wrote: Wrote, durable: bool, pid: u32) {
        match wrote {
            Wrote::Keys(keys) => {
                for key in keys {
                    if durable {
                        self.lost.remove(&key);
                    } else {
                        self.lost.insert(key, pid);
                    }
                }
            }
            Wrote::Everything if durable => {
                self.lost.clear();
                self.lost_unknown = None;
            }
            Wrote::Everything => self.lost_unknown = Some(pid),
        }
    }

    /// The loss to report, if any.
    fn loss(&self, store: &Path) -> Option<Error> {
        let pid = self
            .lost_unknown
            .or_else(|| self.lost.values().next().copied())?;
        let keys = self.lost_unknown.is_none().then(|| {
            self.lost
                .keys()
                .map(|key| String::from_utf8_lossy(key).into_owned())
                .collect()
        });
        Some(Error::Lost {
            path: store.to_owned(),
            pid,
            keys,
        })
    }
}

impl SharedBackend {
    /// Namespace `name` of the store in `store` (a canonical path), held by a process that
    /// [`probe`] found serving it. Connects on the first call.
    pub fn new(store: PathBuf, name: &str, config: &StoreConfig) -> Self {
        Self {
            store,
            name: name.to_owned(),
            config: config.clone(),
            state: tokio::sync::Mutex::new(State::Idle { generation: 0 }),
            ledger: Mutex::default(),
            settling: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Runs an operation: on the store directly once this process holds it, else by asking
    /// the holder, taking the store over when the holder has gone.
    async fn run<T>(
        &self,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<Request>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<T> {
        self.answered(local, request, answer)
            .await
            .map(|(value, _)| value)
    }

    /// Runs a write as [`Self::run`] does, and notes in the ledger who acknowledged it.
    async fn write<T>(
        &self,
        wrote: impl FnOnce() -> Wrote,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<Request>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<T> {
        let (value, holder) = self.answered(local, request, answer).await?;
        let full = {
            let mut ledger = self.ledger();
            ledger.wrote(wrote(), &holder);
            ledger.is_full()
        };
        // Settling is not this write's concern: a failure shows at the next flush.
        if full
            && !self
                .settling
                .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let _ = self.settle().await;
            self.settling
                .store(false, std::sync::atomic::Ordering::Release);
        }
        Ok(value)
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Self::run`], with whoever answered: the holder at the other end of the connection,
    /// or this process once it holds the store.
    async fn answered<T>(
        &self,
        local: impl FnOnce(&SledBackend) -> Result<T>,
        request: impl FnOnce(String) -> Result<Request>,
        answer: impl FnOnce(Response) -> Option<Result<T>>,
    ) -> Result<(T, Arc<Holder>)> {
        let mut request = Some(request);
        let mut frame = None;
        let deadline = Instant::now() + TAKEOVER_WAIT;
        loop {
            let connection = {
                let mut state = self.state.lock().await;
                if let State::Idle { generation } = *state {
                    *state = self.reach(generation, deadline).await?;
                }
                match &*state {
                    State::Holder(backend, holder) => {
                        return local(backend).map(|v| (v, holder.clone()))
                    }
                    State::Client(connection) => connection.clone(),
                    State::Idle { .. } => continue,
                }
            };
            // Encoded once, however often it is sent.
            if frame.is_none() {
                let make = request.take().expect("a request is made once");
                frame = Some(Arc::new(wire::encode(&make(self.name.clone())?)?));
            }
            // Shared by every attempt, not copied: a value may be 25 MiB.
            let sent: Arc<Vec<u8>> = frame.clone().unwrap_or_default();
            let Ok(outcome) =
                tokio::time::timeout(self.config.holder_timeout, connection.call(sent)).await
            else {
                return Err(self.unreachable(&format!(
                    "it (pid {}) did not answer within {} ms; is it stopped?",
                    connection.holder.pid,
                    self.config.holder_timeout.as_millis()
                )));
            };
            match outcome {
                Ok(Response::Failed(error)) => return Err(error),
                Ok(Response::Gone) | Err(FrameError::Closed) => {
                    let mut state = self.state.lock().await;
                    if matches!(&*state, State::Client(c) if c.generation == connection.generation)
                    {
                        *state = State::Idle {
                            generation: connection.generation + 1,
                        };
                    }
                    if Instant::now() > deadline {
                        return Err(self.unreachable("its holder went away and nobody took over"));
                    }
                }
                Ok(response) => {
                    return answer(response)
                        .unwrap_or_else(|| Err(self.unreachable("its holder answered out of turn")))
                        .map(|value| (value, connection.holder.clone()))
                }
                Err(FrameError::Garbage(what)) => {
                    return Err(self.unreachable(&format!("its holder sent {what}")))
                }
            }
        }
    }

    /// Takes the store over if nobody holds it, else connects to whoever does.
    async fn reach(&self, generation: u64, deadline: Instant) -> Result<State> {
        loop {
            let (store, name, config) =
                (self.store.clone(), self.name.clone(), self.config.clone());
            let opened = tokio::task::spawn_blocking(move || open_serving(&store, &name, &config))
                .await
                .map_err(|e| Error::Internal(format!("taking over a store failed: {e}")))?;
            match opened {
                Ok(backend) => {
                    let holder = Arc::new(Holder::serving(backend.identity()));
                    return Ok(State::Holder(Arc::new(backend), holder));
                }
                Err(Error::Locked { .. }) => {}
                Err(error) => return Err(error),
            }
            match Connection::open(&self.store, generation).await {
                Ok(connection) => return Ok(State::Client(connection)),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Err(self.unreachable(&e.to_string()))
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => return Err(self.unreachable(&e.to_string())),
            }
        }
    }

    /// The error of an answer that no holder of a `KV`'s store gives.
    fn bad_answer(&self, what: &str) -> Error {
        self.unreachable(&format!("its holder sent {what}"))
    }

    /// The entry the holder answered for `key`, once it is that key's and one a `KV` could
    /// have written.
    fn entry_for(&self, key: &[u8], entry: WireEntry) -> Result<Entry> {
        let fault = (entry.key.as_slice() != key)
            .then_some("the entry of another key")
            .or_else(|| entry.fault());
        match fault {
            Some(what) => Err(self.bad_answer(what)),
            None => Ok(entry.into_entry().1),
        }
    }

    /// Every entry of the namespace as the holder answered them, once each is one a `KV`
    /// could have written and they come in key order, each key once.
    fn all_entries(&self, entries: Vec<WireEntry>) -> Result<Vec<(IVec, Entry)>> {
        let ordered = entries.windows(2).all(|pair| pair[0].key < pair[1].key);
        let fault = (!ordered)
            .then_some("entries out of key order")
            .or_else(|| entries.iter().find_map(WireEntry::fault));
        match fault {
            Some(what) => Err(self.bad_answer(what)),
            None => Ok(entries.into_iter().map(WireEntry::into_entry).collect()),
        }
    }

    fn unreachable(&self, why: &str) -> Error {
        Error::Storage {
            path: self.store.clone(),
            detail: format!("the process holding it could not be reached: {why}"),
        }
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Entry>> {
        self.run(
            |b| b.get(key, u64::MAX),
            |ns| {
                Ok(Request::Get {
                    ns,
                    key: ByteBuf::from(key),
                })
            },
            |response| match response {
                Response::Entry(entry) => Some(entry.map(|e| self.entry_for(key, e)).transpose()),
                _ => None,
            },
        )
        .await
    }

    pub async fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Entry>>> {
        self.run(
            |b| keys.iter().map(|key| b.get(key, u64::MAX)).collect(),
            |ns| {
                Ok(Request::GetMany {
                    ns,
                    keys: keys.iter().map(|key| ByteBuf::from(*key)).collect(),
                })
            },
            |response| match response {
                Response::Entries(entries) if entries.len() == keys.len() => Some(
                    entries
                        .into_iter()
                        .zip(keys)
                        .map(|(e, key)| e.map(|e| self.entry_for(key, e)).transpose())
                        .collect(),
                ),
                _ => None,
            },
        )
        .await
    }

    pub async fn put_all(&self, entries: &[PutEntry<'_>]) -> Result<()> {
        self.write(
            || Wrote::Keys(entries.iter().map(|e| e.key.to_vec()).collect()),
            |b| b.put_all(entries),
            |ns| {
                Ok(Request::PutAll {
                    ns,
                    entries: entries.iter().map(WireEntry::from_put).collect(),
                })
            },
            done,
        )
        .await
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        self.write(
            || Wrote::Keys(vec![key.to_vec()]),
            |b| b.delete(key),
            |ns| {
                Ok(Request::Delete {
                    ns,
                    key: ByteBuf::from(key),
                })
            },
            done,
        )
        .await
    }

    /// Not in the ledger: an expired entry reads as absent whether or not its removal is on
    /// disk.
    pub async fn delete_expired(&self, keys: &[&[u8]], now_ms: i64) -> Result<()> {
        self.run(
            |b| {
                keys.iter()
                    .try_for_each(|key| b.delete_expired(key, now_ms))
            },
            |ns| {
                Ok(Request::DeleteExpired {
                    ns,
                    keys: keys.iter().map(|key| ByteBuf::from(*key)).collect(),
                    now_ms,
                })
            },
            done,
        )
        .await
    }

    pub async fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        want: usize,
        visit: &mut ScanVisitor<'_>,
    ) -> Result<()> {
        let mut after = after.map(<[u8]>::to_vec);
        let want = u32::try_from(want.max(16)).unwrap_or(SCAN_BATCH_MAX);
        loop {
            let batch = self
                .run(
                    // Held here: the whole scan, in one go.
                    |b| b.scan(prefix, after.as_deref(), &mut *visit).map(|()| None),
                    |ns| {
                        Ok(Request::Scan {
                            ns,
                            prefix: ByteBuf::from(prefix),
                            after: after.as_deref().map(ByteBuf::from),
                            want,
                        })
                    },
                    |response| match response {
                        Response::Scanned { items, more } => Some(Ok(Some((items, more)))),
                        _ => None,
                    },
                )
                .await?;
            let Some((items, more)) = batch else {
                return Ok(());
            };
            // A holder scans in key order from after `after`, within the prefix: anything
            // else would make this list wrong, or page for ever.
            let mut previous = after.as_deref();
            for (key, _, metadata) in &items {
                let out_of_place = !key.starts_with(prefix)
                    || previous.is_some_and(|previous| key.as_slice() <= previous);
                let fault = out_of_place
                    .then_some("keys out of order or outside the prefix scanned")
                    .or_else(|| key_fault(key))
                    .or_else(|| metadata_fault(metadata.as_ref().map(|m| m.as_slice())));
                if let Some(what) = fault {
                    return Err(self.bad_answer(what));
                }
                previous = Some(key);
            }
            for (key, expiration, metadata) in &items {
                let metadata = metadata.as_ref().map(|m| IVec::from(m.as_slice()));
                if !visit(key, *expiration, metadata.as_ref()) {
                    return Ok(());
                }
            }
            match items.last() {
                Some((last, ..)) if more => after = Some(last.to_vec()),
                _ => return Ok(()),
            }
        }
    }

    /// Every entry, read a page at a time (see [`entries_page`]): pages read while others
    /// write may each see a different moment, but every entry is whole.
    pub async fn entries(
        &self,
        mut skip: Option<&mut DamageSink<'_>>,
    ) -> Result<Vec<(IVec, Entry)>> {
        let skip_damaged = skip.is_some();
        let mut all = Vec::new();
        let mut after: Option<IVec> = None;
        loop {
            let from = after.clone();
            let (entries, damaged, next) = self
                .run(
                    |b| entries_page(b, skip_damaged, from.as_deref()),
                    |ns| {
                        Ok(Request::EntriesPage {
                            ns,
                            skip_damaged,
                            after: from.as_ref().map(|key| ByteBuf::from(key.to_vec())),
                        })
                    },
                    |response| match response {
                        Response::Page {
                            entries,
                            damaged,
                            next,
                        } => Some(self.page(entries, damaged, next, from.as_deref())),
                        _ => None,
                    },
                )
                .await?;
            if let Some(sink) = skip.as_deref_mut() {
                for (key, error) in damaged {
                    sink(key, error);
                }
            }
            all.extend(entries);
            match next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// A page as the holder sent it, checked: entries in order after `after`, and a `next`
    /// that is its last key (a holder that lied could otherwise keep a reader going round
    /// forever).
    fn page(
        &self,
        entries: Vec<WireEntry>,
        damaged: Vec<(ByteBuf, Error)>,
        next: Option<ByteBuf>,
        after: Option<&[u8]>,
    ) -> Result<Page> {
        let past = |key: &[u8]| after.is_none_or(|after| key > after);
        if !entries.first().is_none_or(|e| past(&e.key)) {
            return Err(self.bad_answer("a page that does not start after the last one"));
        }
        // A page ends at an entry it holds, so the next starts past it.
        if next.is_some()
            && next.as_ref().map(|k| k.as_slice()) != entries.last().map(|e| &e.key[..])
        {
            return Err(self.bad_answer("a page that does not end where it says"));
        }
        let entries = self.all_entries(entries)?;
        let damaged = damaged
            .into_iter()
            .map(|(key, error)| (IVec::from(key.into_vec()), error))
            .collect();
        Ok((entries, damaged, next.map(|key| IVec::from(key.into_vec()))))
    }

    pub async fn replace_all(&self, entries: &[(IVec, Entry)]) -> Result<()> {
        self.write(
            || Wrote::Everything,
            |b| b.replace_all(entries),
            |ns| {
                let entries = entries
                    .iter()
                    .map(|(key, entry)| WireEntry::from_entry(key, entry))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Request::ReplaceAll { ns, entries })
            },
            done,
        )
        .await
    }

    pub async fn stage_begin(&self) -> Result<u64> {
        self.run(
            |b| b.stage_begin().map(Option::unwrap_or_default),
            |ns| Ok(Request::StageBegin { ns }),
            |response| match response {
                Response::Staged(stage) => Some(Ok(stage)),
                _ => None,
            },
        )
        .await
    }

    pub async fn stage_put(&self, stage: u64, entries: &[PutEntry<'_>]) -> Result<()> {
        self.run(
            |b| b.stage_put(stage, entries),
            |ns| {
                Ok(Request::StagePut {
                    ns,
                    stage,
                    entries: entries.iter().map(WireEntry::from_put).collect(),
                })
            },
            done,
        )
        .await
    }

    /// A commit whose stage is gone may have been sent before, its answer lost with the
    /// holder that wrote it: so its outcome is unknown.
    pub async fn stage_commit(&self, stage: u64) -> Result<()> {
        self.write(
            || Wrote::Everything,
            |b| b.stage_commit(stage),
            |ns| Ok(Request::StageCommit { ns, stage }),
            done,
        )
        .await
        .map_err(|error| match error {
            Error::Storage { ref detail, .. } if detail == STAGE_GONE => Error::Unknown {
                source: Box::new(error),
                partly: false,
            },
            error => error,
        })
    }

    pub async fn stage_drop(&self, stage: u64) -> Result<()> {
        self.run(
            |b| b.stage_drop(stage),
            |ns| Ok(Request::StageDrop { ns, stage }),
            done,
        )
        .await
    }

    /// Makes every write so far durable. Fails with [`Error::Lost`] while a write that a
    /// holder acknowledged may have been lost (see [`Ledger`]).
    pub async fn flush(&self) -> Result<()> {
        self.settle().await?;
        match self.ledger().loss(&self.store) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Flushes, and settles in the ledger the writes acknowledged before the flush began.
    async fn settle(&self) -> Result<()> {
        let upto = self.ledger().next;
        let ((), holder) = self
            .answered(|b| b.flush(), |_| Ok(Request::Flush), done)
            .await?;
        self.ledger().flushed(upto, &holder);
        Ok(())
    }
}

fn done(response: Response) -> Option<Result<()>> {
    matches!(response, Response::Done).then_some(Ok(()))
}

impl RemoteBackend for SharedBackend {
    fn get<'a>(&'a self, key: &'a [u8]) -> Pending<'a, Option<Entry>> {
        Box::pin(SharedBackend::get(self, key))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a [u8]]) -> Pending<'a, Vec<Option<Entry>>> {
        Box::pin(SharedBackend::get_many(self, keys))
    }

    fn put_all<'a>(&'a self, entries: &'a [PutEntry<'a>]) -> Pending<'a, ()> {
        Box::pin(SharedBackend::put_all(self, entries))
    }

    fn delete<'a>(&'a self, key: &'a [u8]) -> Pending<'a, ()> {
        Box::pin(SharedBackend::delete(self, key))
    }

    fn delete_expired<'a>(&'a self, keys: &'a [&'a [u8]], now_ms: i64) -> Pending<'a, ()> {
        Box::pin(SharedBackend::delete_expired(self, keys, now_ms))
    }

    fn scan<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
        want: usize,
        visit: &'a mut ScanVisitor<'_>,
    ) -> Pending<'a, ()> {
        Box::pin(SharedBackend::scan(self, prefix, after, want, visit))
    }

    fn entries<'a>(&'a self, skip: Option<&'a mut DamageSink<'_>>) -> Pending<'a, Entries> {
        Box::pin(SharedBackend::entries(self, skip))
    }

    fn replace_all<'a>(&'a self, entries: &'a [(IVec, Entry)]) -> Pending<'a, ()> {
        Box::pin(SharedBackend::replace_all(self, entries))
    }

    fn remove(&self) -> Pending<'_, ()> {
        Box::pin(SharedBackend::replace_all(self, &[]))
    }

    fn flush(&self) -> Pending<'_, ()> {
        Box::pin(SharedBackend::flush(self))
    }

    fn stage_begin(&self) -> Pending<'_, Option<u64>> {
        Box::pin(async { SharedBackend::stage_begin(self).await.map(Some) })
    }

    fn stage_put<'a>(&'a self, stage: u64, entries: &'a [PutEntry<'a>]) -> Pending<'a, ()> {
        Box::pin(SharedBackend::stage_put(self, stage, entries))
    }

    fn stage_commit(&self, stage: u64) -> Pending<'_, ()> {
        Box::pin(SharedBackend::stage_commit(self, stage))
    }

    fn stage_drop(&self, stage: u64) -> Pending<'_, ()> {
        Box::pin(SharedBackend::stage_drop(self, stage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid: u32, session: u64, clean: &[u64]) -> Holder {
        Holder {
            pid,
            store: 1,
            session,
            clean: clean.to_vec(),
        }
    }

    fn keys(names: &[&str]) -> Wrote {
        Wrote::Keys(names.iter().map(|n| n.as_bytes().to_vec()).collect())
    }

    fn lost(ledger: &Ledger) -> Option<Option<Vec<String>>> {
        match ledger.loss(Path::new("/store")) {
            Some(Error::Lost { keys, .. }) => Some(keys),
            _ => None,
        }
    }

    #[test]
    fn a_flush_by_the_same_holder_or_after_a_clean_close_vouches_for_its_writes() {
        let (first, second) = (holder(100, 7, &[]), holder(101, 8, &[7]));
        let mut ledger = Ledger::default();
        ledger.wrote(keys(&["a"]), &first);
        ledger.flushed(ledger.next, &first);
        ledger.wrote(keys(&["b"]), &first);
        ledger.flushed(ledger.next, &second);
        assert_eq!(lost(&ledger), None);
        assert!(ledger.pending.is_empty());
        assert_eq!(ledger.key_bytes, 0);
    }

    #[test]
    fn a_loss_is_reported_until_the_key_is_written_again_and_flushed() {
        let (dead, next) = (holder(100, 7, &[]), holder(101, 8, &[]));
        let mut ledger = Ledger::default();
        ledger.wrote(keys(&["a", "b"]), &dead);
        let upto = ledger.next;
        // A write after the flush began is not settled by it.
        ledger.wrote(keys(&["c"]), &dead);
        ledger.flushed(upto, &next);
        assert_eq!(lost(&ledger), Some(Some(vec!["a".into(), "b".into()])));
        ledger.flushed(upto, &next);
        assert_eq!(lost(&ledger), Some(Some(vec!["a".into(), "b".into()])));
        ledger.wrote(keys(&["a"]), &next);
        ledger.flushed(ledger.next, &next);
        assert_eq!(lost(&ledger), Some(Some(vec!["b".into(), "c".into()])));
        ledger.wrote(Wrote::Everything, &next);
        ledger.flushed(ledger.next, &next);
        assert_eq!(lost(&ledger), None);
    }

    #[test]
    fn a_lost_write_of_the_whole_namespace_names_no_keys() {
        let (dead, next) = (holder(100, 7, &[]), holder(101, 8, &[]));
        let mut ledger = Ledger::default();
        ledger.wrote(Wrote::Everything, &dead);
        ledger.flushed(ledger.next, &next);
        assert_eq!(lost(&ledger), Some(None));
    }

    #[test]
    fn a_write_this_process_made_as_holder_settles_the_others_and_heals_at_once() {
        let dead = holder(100, 7, &[]);
        let here = holder(std::process::id(), 8, &[]);
        let mut ledger = Ledger::default();
        ledger.wrote(keys(&["a", "b"]), &dead);
        ledger.wrote(keys(&["a"]), &here);
        assert!(ledger.pending.is_empty());
        assert_eq!(lost(&ledger), Some(Some(vec!["b".into()])));
    }

    #[test]
    fn the_ledger_asks_for_a_flush_before_it_grows_without_bound() {
        let other = holder(100, 7, &[]);
        let mut ledger = Ledger::default();
        for i in 0..LEDGER_WRITES_MAX {
            assert!(!ledger.is_full());
            ledger.wrote(keys(&[&i.to_string()]), &other);
        }
        assert!(ledger.is_full());
        ledger.flushed(ledger.next, &other);
        assert!(!ledger.is_full());
    }
}

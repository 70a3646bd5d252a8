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

mod answer;
mod awaited;
mod client;
mod connection;
mod ledger;
mod operations;
mod probe;
mod served;
mod server;
mod socket;
pub(crate) mod wire;
mod writer;

use answer::{answer, answer_put, entries_page, is_heavy, Page, LIGHT_WRITE_MAX};
use connection::Connection;
use ledger::{Ledger, Wrote};
use operations::done;
pub use probe::{probe, Unreached};
pub use server::{open_serving, Server};

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
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::backends::sled::{Identity, Lease, SledBackend, StoreConfig, STAGE_GONE};
use crate::store::ServedPage;
use crate::store::{check_namespace_name, Error, Result};
use crate::store::{Backend, Capabilities};
use crate::store::{DamageSink, Entries, Entry, Pending, PutEntry, RemoteBackend, ScanVisitor};
use served::{Asked, ServedLog};
use wire::{
    key_fault, metadata_fault, FrameError, IntoFrame, PutRef, Request, Response, WireEntry,
    HELLO_MAX, PROTOCOL,
};

pub use crate::backends::sled::dir::SOCKET_FILE;

/// How long a client keeps trying to reach a store whose holder went away, while another
/// process takes it over.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

/// How long opening a store waits for its holder to answer.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The most entries one scan request returns.
const SCAN_BATCH_MAX: u32 = 1024;

static RUNTIME: OnceLock<Handle> = OnceLock::new();

/// Gives the runtime that serves stores and runs their clients. Without one (the pure core in
/// tests that set none), stores are not shared.
pub fn set_runtime(handle: Handle) {
    let _ = RUNTIME.set(handle);
}

fn runtime() -> Option<&'static Handle> {
    RUNTIME.get()
}

/// The uid and pid (0 where the system does not tell it) of the process at the other end of
/// a Unix socket.
fn peer(socket: &impl AsRawFd) -> Option<(u32, u32)> {
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
        (status == 0).then_some((cred.uid, cred.pid.max(0) as u32))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: a valid socket and out-pointers.
        let status = unsafe { libc::getpeereid(socket.as_raw_fd(), &mut uid, &mut gid) };
        (status == 0).then_some((uid, 0))
    }
}

/// Whether the other end of `socket` runs as this process's user.
fn same_user(socket: &impl AsRawFd) -> bool {
    // SAFETY: geteuid cannot fail.
    peer(socket).map(|(uid, _)| uid) == Some(unsafe { libc::geteuid() })
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

impl SharedBackend {}

#[cfg(test)]
mod tests {
    use super::ledger::LEDGER_WRITES_MAX;
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

//! The core's one error type. The binding maps each variant to a JS error once, at the boundary.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The operation named in a `KV <OP> failed: <status> <message>` error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Get,
    GetBulk,
    Put,
    Delete,
}

impl Op {
    /// The name production puts in its error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Get => "GET",
            Op::GetBulk => "GET_BULK",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
        }
    }
}

/// Everything that can go wrong in the core. Serializable, so that the process holding a
/// store can hand its errors to the processes it serves.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Error {
    /// A `TypeError` production's runtime throws before any I/O, e.g. `Key name cannot be empty.`
    Type(String),
    /// An error production's KV service answers with: `KV <op> failed: <status> <message>`.
    Service {
        op: Op,
        status: u16,
        message: String,
    },
    /// The namespace was closed with `close()`.
    Closed,
    /// Another process holds the store directory and cannot share it: `reason` says why
    /// (`None` when sharing was not asked for).
    Locked {
        path: PathBuf,
        pid: Option<u32>,
        reason: Option<String>,
    },
    /// The store exists but cannot be read.
    Corrupt { path: PathBuf, detail: String },
    /// What Redis holds for a namespace cannot be read: `place` says which server, namespace
    /// and key prefix.
    CorruptRemote { place: String, detail: String },
    /// The Redis server answered an operation on the namespace at `place` with an error
    /// (out of memory, a read-only replica, a key of ours holding something else...).
    StorageRemote { place: String, detail: String },
    /// The store's directory cannot be used (permissions, not a directory, full disk...).
    Storage { path: PathBuf, detail: String },
    /// Writes that the process holding the store at `path` (pid `pid`) acknowledged may not
    /// be on disk: it went away (killed, or crashed) before it flushed them. `keys` names the
    /// keys whose last write that was, sorted; `None` when that is not known (a whole
    /// namespace was replaced).
    Lost {
        path: PathBuf,
        pid: u32,
        keys: Option<Vec<String>>,
    },
    /// The Redis server at `endpoint` (host and port, never credentials) did not answer, or
    /// refused the connection or the credentials.
    Unavailable { endpoint: String, detail: String },
    /// An argument that no production API shape accepts (our own options, namespace names...).
    Invalid(String),
    /// A bug: a panic caught at the boundary. The message says what panicked.
    Internal(String),
    /// A write failed for `source` after it was sent, or after part of it was applied: the
    /// server may hold all of it, part of it (`partly`: some of it surely is) or none.
    Unknown { source: Box<Error>, partly: bool },
    /// Entry `index` of a bulk write was refused for `source`; nothing was written.
    Entry {
        index: usize,
        key: String,
        source: Box<Error>,
    },
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn service(op: Op, status: u16, message: impl Into<String>) -> Self {
        Error::Service {
            op,
            status,
            message: message.into(),
        }
    }

    /// The store at `path` cannot be used because of `error`. A full disk says so in words,
    /// with what to do, since it is the one I/O error a user can always fix.
    pub(crate) fn io(path: impl Into<PathBuf>, error: &std::io::Error) -> Self {
        let detail = if error.kind() == std::io::ErrorKind::StorageFull {
            format!(
                "the disk is full ({error}). Free some space: the store then opens again \
                 with everything that reached the disk"
            )
        } else {
            error.to_string()
        };
        Error::Storage {
            path: path.into(),
            detail,
        }
    }

    /// A stable code for errors that production does not have (`None` for production's own).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::Type(_) | Error::Service { .. } => None,
            Error::Closed => Some("ERR_KV_CLOSED"),
            Error::Locked { .. } => Some("ERR_KV_LOCKED"),
            Error::Corrupt { .. } | Error::CorruptRemote { .. } => Some("ERR_KV_CORRUPT"),
            Error::Storage { .. } | Error::StorageRemote { .. } | Error::Lost { .. } => {
                Some("ERR_KV_STORAGE")
            }
            Error::Unavailable { .. } => Some("ERR_KV_UNAVAILABLE"),
            Error::Invalid(_) => Some("ERR_KV_INVALID_ARGUMENT"),
            Error::Internal(_) => Some("ERR_KV_INTERNAL"),
            Error::Entry { source, .. } | Error::Unknown { source, .. } => source.code(),
        }
    }

    /// `"unknown"` when a write may or may not have been applied (see [`Error::Unknown`]).
    pub fn outcome(&self) -> Option<&'static str> {
        matches!(self, Error::Unknown { .. }).then_some("unknown")
    }

    /// Whether JS should see a `TypeError` rather than a plain `Error`.
    pub fn is_type_error(&self) -> bool {
        match self {
            Error::Type(_) | Error::Invalid(_) => true,
            Error::Entry { source, .. } => source.is_type_error(),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Type(message) | Error::Invalid(message) => f.write_str(message),
            Error::Service {
                op,
                status,
                message,
            } => write!(f, "KV {} failed: {status} {message}", op.as_str()),
            Error::Closed => f.write_str(
                "This KV namespace has been closed. Create a new KV to use the store again.",
            ),
            Error::Locked { path, pid, reason } => {
                let owner = match pid {
                    Some(pid) => format!("another process (pid {pid})"),
                    None => "another process".to_owned(),
                };
                match reason {
                    Some(reason) => write!(
                        f,
                        "The store \"{}\" is in use by {owner}, which cannot share it: \
                         {reason}. Give each process its own path, or stop the other process.",
                        path.display()
                    ),
                    None => write!(
                        f,
                        "The store \"{}\" is in use by {owner}. With shared: false a store \
                         directory is open in one process at a time: give each process its own \
                         path (for example one that includes process.env.JEST_WORKER_ID), or \
                         stop the other process.",
                        path.display()
                    ),
                }
            }
            Error::Corrupt { path, detail } => write!(
                f,
                "The store \"{}\" cannot be read: {detail}. If its data can be thrown away, \
                 delete the directory and it will be created afresh.",
                path.display()
            ),
            Error::CorruptRemote { place, detail } => write!(
                f,
                "The namespace {place} cannot be read: {detail}. Delete or rewrite the damaged \
                 key to go on; dump({{ onDamaged }}) saves everything else."
            ),
            Error::StorageRemote { place, detail } => {
                write!(f, "The namespace {place} cannot be used: {detail}")
            }
            Error::Storage { path, detail } => {
                write!(
                    f,
                    "The store \"{}\" cannot be used: {detail}",
                    path.display()
                )
            }
            Error::Lost { path, pid, keys } => {
                write!(
                    f,
                    "Writes to the store \"{}\" may have been lost: the process that held it \
                     (pid {pid}) went away before they were on disk. ",
                    path.display()
                )?;
                match keys.as_deref() {
                    Some(keys) => {
                        let named: Vec<String> =
                            keys.iter().take(10).map(|k| format!("{k:?}")).collect();
                        let more = keys.len().saturating_sub(named.len());
                        write!(f, "Keys: {}", named.join(", "))?;
                        if more > 0 {
                            write!(f, " and {more} more")?;
                        }
                        f.write_str(
                            ". Write them again: until then, flush() and close() report them.",
                        )
                    }
                    None => f.write_str(
                        "Which keys is not known (a whole namespace was written): restore what \
                         matters; until a write of the whole namespace (restore() or clear()) \
                         is on disk, flush() and close() report this.",
                    ),
                }
            }
            Error::Unavailable { endpoint, detail } => write!(
                f,
                "The Redis server at {endpoint} is unavailable: {detail}. kv-binding reconnects \
                 by itself; try the operation again."
            ),
            Error::Internal(message) => write!(f, "Internal error in kv-binding: {message}"),
            Error::Unknown { source, partly } => {
                let what = if *partly {
                    "Part of this write was applied and the rest may or may not have been"
                } else {
                    "This write was sent, so it may or may not have been applied"
                };
                write!(f, "{source} {what}: read the keys to learn their state.")
            }
            Error::Entry { index, key, source } => write!(
                f,
                "Entry {index} (key {key:?}) was refused, so nothing was written: {source}"
            ),
        }
    }
}

impl std::error::Error for Error {}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

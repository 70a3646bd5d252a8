//! What a store's holder and the processes it serves say to each other over the store's
//! socket: backend operations (below KV semantics, which stay with each client's
//! [`Namespace`](super::Namespace)) and their results.
//!
//! A frame is a 4-byte little-endian length and that many bytes of a postcard-encoded
//! [`Request`] or [`Response`]. A frame longer than [`MAX_FRAME`], or one that does not decode
//! to exactly one message, ends the connection: nothing in it is acted on.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sled::IVec;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::limits::{MAX_KEY_SIZE, MAX_METADATA_SIZE, MAX_VALUE_SIZE};
use crate::store::Error;
use crate::store::{Entry, PutEntry, ServedPage, Value};

/// Bumped when a message changes shape; a client and a holder of different versions do not
/// talk (the client then reports the store as locked). Version 2 added the store's identity
/// and the holder's session to the hellos; version 3 reads a namespace's entries a page at
/// a time; version 4 stages bulk writes given in parts; version 5 lists the store's
/// namespaces; version 6 reads the log of what the holder served.
pub const PROTOCOL: u32 = 6;

/// The longest hello either side reads: a connection that says more before it has said who
/// it is, or sends bytes that are not the protocol's (`GET / HTTP/1.1` reads as a length of
/// half a gigabyte), is dropped at once.
pub const HELLO_MAX: usize = 4096;

/// The longest frame either side reads: a bulk write of the most a KV accepts at once, with
/// room to spare. Larger transfers (a restore of a huge snapshot) are refused as too large.
pub const MAX_FRAME: usize = 1 << 30;

/// A client's request, for namespace `ns` of the store.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// The first frame of a connection: which protocol the client speaks, and the id of the
    /// store it means to reach (from the store's format file).
    Hello {
        protocol: u32,
        store: u64,
    },
    Get {
        ns: String,
        key: ByteBuf,
    },
    GetMany {
        ns: String,
        keys: Vec<ByteBuf>,
    },
    PutAll {
        ns: String,
        entries: Vec<WireEntry>,
    },
    Delete {
        ns: String,
        key: ByteBuf,
    },
    DeleteExpired {
        ns: String,
        keys: Vec<ByteBuf>,
        now_ms: i64,
    },
    /// Up to `want` entries from the scan that [`Backend::scan`](super::Backend::scan) makes.
    Scan {
        ns: String,
        prefix: ByteBuf,
        after: Option<ByteBuf>,
        want: u32,
    },
    /// A page of every entry, values loaded, from the first key after `after` on.
    EntriesPage {
        ns: String,
        skip_damaged: bool,
        after: Option<ByteBuf>,
    },
    ReplaceAll {
        ns: String,
        entries: Vec<WireEntry>,
    },
    Flush,
    /// Begins a staged write (see [`super::Staged`]): answered with `Staged`.
    StageBegin {
        ns: String,
    },
    StagePut {
        ns: String,
        stage: u64,
        entries: Vec<WireEntry>,
    },
    StageCommit {
        ns: String,
        stage: u64,
    },
    StageDrop {
        ns: String,
        stage: u64,
    },
    /// The names of the store's namespaces: answered with `Names`.
    Namespaces,
    /// What the holder answered for its clients after `after` in its log: answered with
    /// `Served`.
    Served {
        after: u64,
    },
}

/// The holder's answer to one request.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The holder's answer to a hello: its protocol, pid, the id of the store it holds, its
    /// session, and the earlier sessions that closed the store cleanly (whose acknowledged
    /// writes are all on disk).
    Hello {
        protocol: u32,
        pid: u32,
        store: u64,
        session: u64,
        clean: Vec<u64>,
    },
    Entry(Option<WireEntry>),
    Entries(Vec<Option<WireEntry>>),
    Done,
    /// Scanned entries (key, expiration, metadata); `more` when the scan stopped at `want`.
    Scanned {
        items: Vec<(ByteBuf, Option<i64>, Option<ByteBuf>)>,
        more: bool,
    },
    /// A page of entries, and the damaged ones left out (when asked to skip them); `next`,
    /// when the page is not the last, is the key to ask for the next page after.
    Page {
        entries: Vec<WireEntry>,
        damaged: Vec<(ByteBuf, Error)>,
        next: Option<ByteBuf>,
    },
    Failed(Error),
    /// The holder has closed the store since the connection was made: take it over.
    Gone,
    /// The id of a stage begun.
    Staged(u64),
    /// The store's namespaces, in byte order.
    Names(Vec<String>),
    Served(ServedPage),
}

/// One entry on the wire: key, value, expiration and metadata.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEntry {
    pub key: ByteBuf,
    pub value: ByteBuf,
    pub expiration: Option<i64>,
    pub metadata: Option<ByteBuf>,
}

impl WireEntry {
    /// A put's entry as a `Request` carries it (a client sends its puts without this copy:
    /// see [`encode_put_all`]).
    #[cfg(test)]
    pub fn from_put(entry: &PutEntry<'_>) -> Self {
        Self {
            key: ByteBuf::from(entry.key),
            value: ByteBuf::from(entry.value),
            expiration: entry.expiration,
            metadata: entry.metadata.map(|m| ByteBuf::from(m.as_bytes())),
        }
    }

    /// `entry` at `key`, whose value must be loaded (a holder reads values whole).
    pub fn from_entry(key: &[u8], entry: &Entry) -> Result<Self, Error> {
        let value = entry
            .value
            .bytes()
            .ok_or_else(|| Error::Internal("a deferred value was sent".into()))?;
        Ok(Self {
            key: ByteBuf::from(key),
            value: ByteBuf::from(value),
            expiration: entry.expiration,
            metadata: entry.metadata.as_deref().map(ByteBuf::from),
        })
    }

    /// `entry` at `key`, as [`Self::from_entry`], taking the value over without a copy when
    /// it was read for this caller alone (a value file's bytes: the large ones).
    pub fn from_owned(key: &[u8], entry: Entry) -> Result<Self, Error> {
        let Entry {
            value,
            expiration,
            metadata,
        } = entry;
        let value = match value {
            Value::Owned(bytes) => ByteBuf::from(bytes),
            Value::Loaded(bytes) => ByteBuf::from(bytes.as_ref()),
            Value::Deferred { .. } => {
                return Err(Error::Internal("a deferred value was sent".into()))
            }
        };
        Ok(Self {
            key: ByteBuf::from(key),
            value,
            expiration,
            metadata: metadata.as_deref().map(ByteBuf::from),
        })
    }

    /// Refuses an entry that no KV writes: a key that is empty, not UTF-8 or over the key
    /// limit, a value over the value limit, metadata that is not JSON text within its limit.
    /// A holder checks what a client sends, so that its store only ever holds what a `KV`
    /// could have put there, whoever is at the other end of the socket.
    pub fn check(&self) -> Result<(), Error> {
        match self.fault() {
            Some(what) => Err(Error::Invalid(format!("a client sent {what}"))),
            None => Ok(()),
        }
    }

    /// What makes this an entry no `KV` could have written, if anything: what a holder
    /// refuses from a client, and a client from a holder.
    pub fn fault(&self) -> Option<&'static str> {
        entry_fault(
            &self.key,
            &self.value,
            self.metadata.as_deref().map(|m| &m[..]),
        )
    }

    /// Metadata as text: the wire carries what a backend stored, which is always UTF-8.
    pub fn metadata_str(&self) -> Result<Option<&str>, Error> {
        self.metadata
            .as_ref()
            .map(|m| std::str::from_utf8(m))
            .transpose()
            .map_err(|_| Error::Internal("metadata that is not UTF-8 came over the socket".into()))
    }

    pub fn as_put(&self) -> Result<PutEntry<'_>, Error> {
        Ok(PutEntry {
            key: &self.key,
            value: &self.value,
            expiration: self.expiration,
            metadata: self.metadata_str()?,
        })
    }

    pub fn into_entry(self) -> (IVec, Entry) {
        let entry = Entry {
            expiration: self.expiration,
            metadata: self.metadata.map(|m| IVec::from(m.into_vec())),
            value: Value::Owned(self.value.into_vec()),
        };
        (IVec::from(self.key.into_vec()), entry)
    }
}

/// Why a frame could not be exchanged.
#[derive(Debug)]
pub enum FrameError {
    /// The connection ended or failed.
    Closed,
    /// The other side sent something that is not a frame of this protocol.
    Garbage(&'static str),
    /// No answer came in time.
    TimedOut,
}

impl From<std::io::Error> for FrameError {
    fn from(_: std::io::Error) -> Self {
        FrameError::Closed
    }
}

/// Encodes `message` as a frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, Error> {
    encode_after(&[], message)
}

/// A frame whose body is `start` (at most a few bytes), then `message`.
pub(super) fn encode_after<T: Serialize>(start: &[u8], message: &T) -> Result<Vec<u8>, Error> {
    let mut frame = [0; 4].to_vec();
    frame.extend_from_slice(start);
    let mut frame = postcard::to_extend(message, frame)
        .map_err(|e| Error::Internal(format!("a message could not be encoded: {e}")))?;
    let len = frame.len() - 4;
    if len > MAX_FRAME {
        return Err(Error::Invalid(format!(
            "This operation carries {len} bytes, more than the {MAX_FRAME} that can be sent to \
             the process holding the store; split it."
        )));
    }
    frame[..4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Reads one frame and decodes it. The buffer grows as bytes arrive, so a length that
/// promises more than is sent costs nothing.
pub async fn read_frame<R, T>(input: &mut R) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    read_frame_within(input, MAX_FRAME).await
}

/// Reads one frame's body (to [`decode`], or [`decode_put`] in place), taking a permit from
/// `budget` for each KiB of it before reading those bytes, and hands the permits back with
/// the body: what all the frames being read or acted on hold together stays within the
/// budget. A frame waits for
/// room as it arrives, holding only what it has sent, so one that promises a gigabyte and
/// sends nothing holds nothing.
pub async fn read_body_budgeted<R: AsyncRead + Unpin>(
    input: &mut R,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, OwnedSemaphorePermit), FrameError> {
    const STEP: usize = 64 * 1024;
    let len = read_length(input, MAX_FRAME).await?;
    let closed = |_| FrameError::Closed;
    let mut held = budget.clone().acquire_many_owned(0).await.map_err(closed)?;
    let mut body = Vec::with_capacity(len.min(STEP));
    while body.len() < len {
        let step = (len - body.len()).min(STEP);
        let kib = step.div_ceil(1024) as u32;
        held.merge(
            budget
                .clone()
                .acquire_many_owned(kib)
                .await
                .map_err(closed)?,
        );
        let read = input.take(step as u64).read_to_end(&mut body).await?;
        if read != step {
            return Err(FrameError::Closed);
        }
    }
    Ok((body, held))
}

/// Reads one frame of at most `max` bytes and decodes it.
pub async fn read_frame_within<R, T>(input: &mut R, max: usize) -> Result<T, FrameError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let len = read_length(input, max).await?;
    let mut body = Vec::with_capacity(len.min(1 << 16));
    let read = input.take(len as u64).read_to_end(&mut body).await?;
    if read != len {
        return Err(FrameError::Closed);
    }
    decode(&body)
}

/// A frame's length, read from its header, if at most `max`.
async fn read_length<R: AsyncRead + Unpin>(input: &mut R, max: usize) -> Result<usize, FrameError> {
    let mut header = [0; 4];
    input.read_exact(&mut header).await?;
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(FrameError::Garbage(
            "a frame longer than the protocol allows",
        ));
    }
    Ok(len)
}

/// The one message `body` holds.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((message, [])) => Ok(message),
        _ => Err(FrameError::Garbage(
            "a frame that is not a message of this protocol",
        )),
    }
}

mod borrowed;
mod faults;
pub use borrowed::{
    decode_put, encode_put_all, encode_stage_put, is_put, EntryRef, IntoFrame, PutRef,
};
pub use faults::{entry_fault, key_fault, metadata_fault};

#[cfg(test)]
mod tests;

//! Writes that cross without copies of their values. A client encodes a `PutAll` or
//! `StagePut` from the caller's bytes, and a holder reads a large one in place, its keys,
//! values and metadata borrowed from the frame's bytes, rather than decoding it into a
//! [`Request`] that holds a copy of every value: a 25 MiB put then holds 25 MiB in the holder
//! while it is written, not 50. On the wire nothing changes.

use std::sync::OnceLock;

use super::*;

/// An entry of a write as [`WireEntry`] carries it, borrowing its bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryRef<'a> {
    #[serde(borrow, with = "serde_bytes")]
    pub key: &'a [u8],
    #[serde(borrow, with = "serde_bytes")]
    pub value: &'a [u8],
    pub expiration: Option<i64>,
    #[serde(borrow, with = "serde_bytes")]
    pub metadata: Option<&'a [u8]>,
}

impl<'a> EntryRef<'a> {
    /// The entry to write, once it is one a `KV` could have written (see
    /// [`WireEntry::check`]).
    pub fn checked(&self) -> Result<PutEntry<'a>, Error> {
        if let Some(what) = entry_fault(self.key, self.value, self.metadata) {
            return Err(Error::Invalid(format!("a client sent {what}")));
        }
        Ok(PutEntry {
            key: self.key,
            value: self.value,
            expiration: self.expiration,
            // UTF-8, as the check made sure.
            metadata: self.metadata.and_then(|m| std::str::from_utf8(m).ok()),
        })
    }
}

/// A write read in place: `PutAll` or `StagePut`, with the fields of those requests.
#[derive(Debug)]
pub enum PutRef<'a> {
    All {
        ns: &'a str,
        entries: Vec<EntryRef<'a>>,
    },
    Stage {
        ns: &'a str,
        stage: u64,
        entries: Vec<EntryRef<'a>>,
    },
}

#[derive(Serialize, Deserialize)]
struct AllFields<'a> {
    #[serde(borrow)]
    ns: &'a str,
    #[serde(borrow)]
    entries: Vec<EntryRef<'a>>,
}

#[derive(Serialize, Deserialize)]
struct StageFields<'a> {
    #[serde(borrow)]
    ns: &'a str,
    stage: u64,
    #[serde(borrow)]
    entries: Vec<EntryRef<'a>>,
}

/// The first byte of a `PutAll` and of a `StagePut` body: their variant's index, taken from
/// the encoding of each, so that it follows the order of [`Request`]'s variants.
fn tags() -> (u8, u8) {
    static TAGS: OnceLock<(u8, u8)> = OnceLock::new();
    *TAGS.get_or_init(|| {
        let first = |request: &Request| postcard::to_allocvec(request).map_or(u8::MAX, |b| b[0]);
        let all = first(&Request::PutAll {
            ns: String::new(),
            entries: Vec::new(),
        });
        let stage = first(&Request::StagePut {
            ns: String::new(),
            stage: 0,
            entries: Vec::new(),
        });
        (all, stage)
    })
}

/// A request encoded already (see [`encode_put_all`]).
pub struct Frame(pub Vec<u8>);

/// What a client sends: a request, encoded as it is sent, or a frame encoded already.
pub trait IntoFrame {
    fn into_frame(self) -> Result<Vec<u8>, Error>;
}

impl IntoFrame for Request {
    fn into_frame(self) -> Result<Vec<u8>, Error> {
        encode(&self)
    }
}

impl IntoFrame for Frame {
    fn into_frame(self) -> Result<Vec<u8>, Error> {
        Ok(self.0)
    }
}

impl<'a> From<&PutEntry<'a>> for EntryRef<'a> {
    fn from(entry: &PutEntry<'a>) -> Self {
        EntryRef {
            key: entry.key,
            value: entry.value,
            expiration: entry.expiration,
            metadata: entry.metadata.map(str::as_bytes),
        }
    }
}

/// The frame of `Request::PutAll { ns, entries }`, encoded from the entries' own bytes.
pub fn encode_put_all(ns: &str, entries: &[PutEntry<'_>]) -> Result<Frame, Error> {
    let entries = entries.iter().map(EntryRef::from).collect();
    encode_after(&[tags().0], &AllFields { ns, entries }).map(Frame)
}

/// The frame of `Request::StagePut { ns, stage, entries }`, as [`encode_put_all`] makes one.
pub fn encode_stage_put(ns: &str, stage: u64, entries: &[PutEntry<'_>]) -> Result<Frame, Error> {
    let entries = entries.iter().map(EntryRef::from).collect();
    encode_after(&[tags().1], &StageFields { ns, stage, entries }).map(Frame)
}

/// Whether `body` is a write that [`decode_put`] reads (whether it decodes is for it to say).
pub fn is_put(body: &[u8]) -> bool {
    let (all, stage) = tags();
    matches!(body.first(), Some(&tag) if tag == all || tag == stage)
}

/// The write that `body` holds, read in place; an error, as for [`Request`]s, for anything
/// that is not one whole message of the protocol.
pub fn decode_put(body: &[u8]) -> Result<PutRef<'_>, FrameError> {
    let (all, stage) = tags();
    let put = match body.split_first() {
        Some((&tag, fields)) if tag == all => match postcard::take_from_bytes(fields) {
            Ok((AllFields { ns, entries }, [])) => Some(PutRef::All { ns, entries }),
            _ => None,
        },
        Some((&tag, fields)) if tag == stage => match postcard::take_from_bytes(fields) {
            Ok((StageFields { ns, stage, entries }, [])) => {
                Some(PutRef::Stage { ns, stage, entries })
            }
            _ => None,
        },
        _ => None,
    };
    put.ok_or(FrameError::Garbage(
        "a frame that is not a message of this protocol",
    ))
}

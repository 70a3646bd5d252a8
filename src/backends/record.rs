//! The on-disk record of one key in the sled backend.
//!
//! Each namespace has an index tree (key → record) and a blob tree (blob id → value bytes),
//! and the store has a directory of value files (one file per large value). A record holds
//! the expiration, the metadata and either the value itself (small values) or the id and
//! length of its blob or file. So `list` reads records but never large values, and a `put`
//! swaps the record in one atomic `insert`.
//!
//! Layout (format 3; format 2 had no bit 4, format 1 no bit 3), all integers big-endian:
//!
//! ```text
//! flags: u8                      bit 0: expiration, bit 1: metadata, bit 2: value in a blob,
//!                                bit 3: value in a file, bit 4: the file's checksum
//! expiration: i64                if bit 0 (seconds since the UNIX epoch)
//! metadata_len: u32, metadata    if bit 1 (JSON text)
//! id: u64, value_len: u64        if bit 2 or bit 3
//! crc32: u32                     if bit 4 (CRC-32 of the value file's bytes)
//! value                          otherwise: the rest of the record
//! ```
//!
//! Values in the record and in the blob tree are covered by sled's own checksums; a value file
//! is covered by the checksum in its record, which this format always writes.

use std::ops::Range;

/// Values up to this many bytes live in their record; longer ones get a blob.
pub const INLINE_VALUE_MAX: usize = 1024;

const HAS_EXPIRATION: u8 = 1;
const HAS_METADATA: u8 = 1 << 1;
const IN_BLOB: u8 = 1 << 2;
const IN_FILE: u8 = 1 << 3;
const HAS_CHECKSUM: u8 = 1 << 4;
const KNOWN_FLAGS: u8 = HAS_EXPIRATION | HAS_METADATA | IN_BLOB | IN_FILE | HAS_CHECKSUM;

/// Where a record's value is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// In the record, at this range of its bytes.
    Inline(Range<usize>),
    /// In the blob tree under `id`.
    Blob { id: u64, len: u64 },
    /// In value file `id`, whose bytes have CRC-32 `crc32` (`None` in a format 2 record).
    File {
        id: u64,
        len: u64,
        crc32: Option<u32>,
    },
}

/// A decoded record; ranges point into the bytes it was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub expiration: Option<i64>,
    pub metadata: Option<Range<usize>>,
    pub body: Body,
}

impl Record {
    /// The value's length in bytes.
    pub fn value_len(&self) -> u64 {
        match &self.body {
            Body::Inline(range) => range.len() as u64,
            Body::Blob { len, .. } | Body::File { len, .. } => *len,
        }
    }
}

/// Why a record could not be decoded. Only a damaged store produces one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

/// What to write for a value that lives outside its record.
pub struct BlobRef {
    pub id: u64,
    pub len: u64,
    pub place: Place,
}

/// Where a value outside its record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The blob tree.
    Blob,
    /// A value file whose bytes have this CRC-32.
    File { crc32: u32 },
}

/// Encodes a record. `blob` is `Some` when the value lives in the blob tree or a value file;
/// otherwise `value` is stored inline.
pub fn encode(
    expiration: Option<i64>,
    metadata: Option<&str>,
    value: &[u8],
    blob: Option<BlobRef>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, expiration, metadata, value, blob);
    out
}

/// [`encode`], appending the record to `out` (whatever `out` already holds stays in front).
pub fn encode_into(
    out: &mut Vec<u8>,
    expiration: Option<i64>,
    metadata: Option<&str>,
    value: &[u8],
    blob: Option<BlobRef>,
) {
    let mut flags = 0;
    let mut len = 1;
    if expiration.is_some() {
        flags |= HAS_EXPIRATION;
        len += 8;
    }
    if let Some(metadata) = metadata {
        flags |= HAS_METADATA;
        len += 4 + metadata.len();
    }
    match &blob {
        Some(BlobRef {
            place: Place::Blob, ..
        }) => {
            flags |= IN_BLOB;
            len += 16;
        }
        Some(BlobRef {
            place: Place::File { .. },
            ..
        }) => {
            flags |= IN_FILE | HAS_CHECKSUM;
            len += 20;
        }
        None => len += value.len(),
    }
    out.reserve(len);
    out.push(flags);
    if let Some(expiration) = expiration {
        out.extend_from_slice(&expiration.to_be_bytes());
    }
    if let Some(metadata) = metadata {
        out.extend_from_slice(&(metadata.len() as u32).to_be_bytes());
        out.extend_from_slice(metadata.as_bytes());
    }
    match blob {
        Some(BlobRef { id, len, place }) => {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            if let Place::File { crc32 } = place {
                out.extend_from_slice(&crc32.to_be_bytes());
            }
        }
        None => out.extend_from_slice(value),
    }
}

/// Whether a record's value is kept apart from it, in a blob or a value file: replacing
/// such a record leaves something to free. A record that cannot be read says no.
pub fn is_stored_apart(bytes: &[u8]) -> bool {
    matches!(
        decode(bytes).map(|record| record.body),
        Ok(Body::Blob { .. } | Body::File { .. })
    )
}

/// Decodes a record. Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let flags = reader.take(1)?[0];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError("unknown record flags"));
    }
    let expiration = if flags & HAS_EXPIRATION != 0 {
        Some(i64::from_be_bytes(reader.array()?))
    } else {
        None
    };
    let metadata = if flags & HAS_METADATA != 0 {
        let len = u32::from_be_bytes(reader.array()?) as usize;
        let start = reader.at;
        let text = reader.take(len)?;
        if std::str::from_utf8(text).is_err() {
            return Err(DecodeError("metadata is not UTF-8"));
        }
        Some(start..start + len)
    } else {
        None
    };
    let body = if flags & (IN_BLOB | IN_FILE | HAS_CHECKSUM) != 0 {
        if flags & IN_BLOB != 0 && flags & IN_FILE != 0 {
            return Err(DecodeError("value both in a blob and in a file"));
        }
        if flags & HAS_CHECKSUM != 0 && flags & IN_FILE == 0 {
            return Err(DecodeError("a checksum for a value that is not in a file"));
        }
        let id = u64::from_be_bytes(reader.array()?);
        let len = u64::from_be_bytes(reader.array()?);
        let crc32 = if flags & HAS_CHECKSUM != 0 {
            Some(u32::from_be_bytes(reader.array()?))
        } else {
            None
        };
        if reader.at != bytes.len() {
            return Err(DecodeError("trailing bytes after a blob reference"));
        }
        if flags & IN_FILE != 0 {
            Body::File { id, len, crc32 }
        } else {
            Body::Blob { id, len }
        }
    } else {
        Body::Inline(reader.at..bytes.len())
    };
    Ok(Record {
        expiration,
        metadata,
        body,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(DecodeError("record is truncated"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_record_round_trips_every_field() {
        let bytes = encode(Some(1_900_000_000), Some("{\"a\":1}"), b"hello", None);
        let record = decode(&bytes).unwrap();
        assert_eq!(record.expiration, Some(1_900_000_000));
        assert_eq!(&bytes[record.metadata.clone().unwrap()], b"{\"a\":1}");
        match record.body {
            Body::Inline(range) => assert_eq!(&bytes[range], b"hello"),
            body => panic!("expected an inline body, got {body:?}"),
        }
    }

    #[test]
    fn blob_record_round_trips_id_length_and_checksum() {
        for place in [Place::Blob, Place::File { crc32: 0xdead_beef }] {
            let blob = BlobRef {
                id: 7,
                len: 5_000,
                place,
            };
            let record = decode(&encode(None, None, &[], Some(blob))).unwrap();
            assert_eq!(record.expiration, None);
            assert_eq!(record.metadata, None);
            let want = match place {
                Place::File { crc32 } => Body::File {
                    id: 7,
                    len: 5_000,
                    crc32: Some(crc32),
                },
                Place::Blob => Body::Blob { id: 7, len: 5_000 },
            };
            assert_eq!(record.body, want);
            assert_eq!(record.value_len(), 5_000);
        }
    }

    #[test]
    fn empty_value_is_kept_as_empty_not_missing() {
        let bytes = encode(None, None, b"", None);
        assert_eq!(decode(&bytes).unwrap().value_len(), 0);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let good = encode(Some(5), Some("{}"), b"v", None);
        let header_len = 1 + 8 + 4 + 2;
        for cut in 0..header_len {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut} decoded");
        }
        assert_eq!(decode(&[]), Err(DecodeError("record is truncated")));
        assert_eq!(decode(&[0x80]), Err(DecodeError("unknown record flags")));
        assert_eq!(
            decode(&[IN_BLOB | IN_FILE]),
            Err(DecodeError("value both in a blob and in a file"))
        );
        assert_eq!(
            decode(&[IN_BLOB | HAS_CHECKSUM]),
            Err(DecodeError("a checksum for a value that is not in a file"))
        );
        let mut unchecked = vec![IN_FILE];
        unchecked.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(&unchecked).unwrap().body,
            Body::File {
                id: 0,
                len: 0,
                crc32: None
            },
            "a format 2 record has no checksum"
        );
        assert_eq!(
            decode(&[HAS_METADATA, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError("record is truncated"))
        );
        assert_eq!(
            decode(&[HAS_METADATA, 0, 0, 0, 1, 0xff]),
            Err(DecodeError("metadata is not UTF-8"))
        );
    }
}

//! Property tests of the record format: whatever bytes a damaged store holds, decoding them
//! never panics, and every record encoded decodes to its fields.

mod common;

use kv_binding::backends::record::{decode, encode, BlobRef, Body, Place};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(4096), ..ProptestConfig::default() })]

    /// Whatever a damaged store holds, decoding it is an error or a record whose ranges lie
    /// within the bytes: never a panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(record) = decode(&bytes) {
            if let Some(metadata) = record.metadata {
                prop_assert!(metadata.end <= bytes.len());
            }
            if let Body::Inline(value) = record.body {
                prop_assert!(value.end <= bytes.len());
            }
        }
    }

    /// Every record we encode decodes to what went in.
    #[test]
    fn encoded_records_decode_to_their_fields(
        expiration in proptest::option::of(any::<i64>()),
        metadata in proptest::option::of(".{0,20}"),
        value in proptest::collection::vec(any::<u8>(), 0..40),
        blob in proptest::option::of((any::<u64>(), any::<u64>(), proptest::option::of(any::<u32>()))),
    ) {
        let bytes = encode(
            expiration,
            metadata.as_deref(),
            &value,
            blob.map(|(id, len, crc32)| BlobRef {
                id,
                len,
                place: crc32.map_or(Place::Blob, |crc32| Place::File { crc32 }),
            }),
        );
        let record = decode(&bytes).unwrap();
        prop_assert_eq!(record.expiration, expiration);
        prop_assert_eq!(record.metadata.map(|r| &bytes[r]), metadata.as_deref().map(str::as_bytes));
        match (record.body, blob) {
            (Body::Inline(range), None) => prop_assert_eq!(&bytes[range], &value[..]),
            (Body::Blob { id, len }, Some((want_id, want_len, None))) => {
                prop_assert_eq!((id, len), (want_id, want_len))
            }
            (Body::File { id, len, crc32 }, Some((want_id, want_len, Some(want_crc)))) => {
                prop_assert_eq!((id, len, crc32), (want_id, want_len, Some(want_crc)))
            }
            (body, _) => prop_assert!(false, "unexpected body {:?}", body),
        }
    }
}

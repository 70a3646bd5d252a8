//! The Node-API face of [`crate::tools`]: what the CLI needs to read wrangler's state.

use std::path::Path;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::tools::miniflare;

/// A row of a Miniflare KV database as JS gets it: key, blob id, expiration (ms), metadata.
type StateRow = (String, String, Option<f64>, Option<String>);

/// The rows of a Miniflare KV database: `[key, blobId, expiration in ms | null, metadata
/// JSON | null]`, in key order. Throws one line naming the file when it cannot be read.
#[napi]
pub fn read_miniflare_entries(db: String) -> napi::Result<Vec<StateRow>> {
    let entries = miniflare::read_entries(Path::new(&db)).map_err(napi::Error::from_reason)?;
    Ok(entries
        .into_iter()
        .map(|e| {
            (
                e.key,
                e.blob,
                e.expiration_ms.map(|ms| ms as f64),
                e.metadata,
            )
        })
        .collect())
}

/// The bytes of the regular file at `path`, if it holds at most `max` bytes; a symbolic
/// link is not followed. Throws one line naming the file otherwise.
#[napi]
pub fn read_regular_file(path: String, max: f64) -> napi::Result<Buffer> {
    miniflare::read_regular(Path::new(&path), max as u64)
        .map(Buffer::from)
        .map_err(napi::Error::from_reason)
}

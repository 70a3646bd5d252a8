//! The bytes of a JS value that work off the JS thread reads.
//!
//! napi-rs releases a JS buffer dropped on another thread by calling back into the JS thread:
//! a wake-up of the event loop for each value, which costs a small write more than copying it
//! would. Small values are therefore copied at the call and their JS buffers released on the
//! JS thread at once; large ones are read in place.

use std::ops::Deref;

use napi::bindgen_prelude::{Buffer, Uint8Array};

/// The most bytes copied rather than read in place.
const COPY_MAX: usize = 64 * 1024;

pub enum Held {
    Copied(Vec<u8>),
    Array(Uint8Array),
    Buffer(Buffer),
}

impl Held {
    /// `value` copied when small, else kept as `keep` makes it.
    fn of<T: Deref<Target = [u8]>>(value: T, keep: fn(T) -> Held) -> Held {
        if value.len() <= COPY_MAX {
            Held::Copied(value.to_vec())
        } else {
            keep(value)
        }
    }
}

impl From<Uint8Array> for Held {
    fn from(value: Uint8Array) -> Self {
        Held::of(value, Held::Array)
    }
}

impl From<Buffer> for Held {
    fn from(value: Buffer) -> Self {
        Held::of(value, Held::Buffer)
    }
}

impl Deref for Held {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Held::Copied(bytes) => bytes,
            Held::Array(array) => array,
            Held::Buffer(buffer) => buffer,
        }
    }
}

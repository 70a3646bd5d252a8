//! The floor of the binding: how a core error crosses to JS (a code and a message), and
//! what a task's promise resolves. Every other file of the binding builds on it.

use std::panic::{self, AssertUnwindSafe};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::store;

pub(crate) type Result<T> = napi::Result<T, &'static str>;

pub(super) fn js_error(error: store::Error) -> napi::Error<&'static str> {
    napi::Error::new(error_code(&error), error.to_string())
}

pub(super) fn error_code(error: &store::Error) -> &'static str {
    match error.code() {
        Some(code) => code,
        None if error.is_type_error() => "TypeError",
        None => "Error",
    }
}

/// A failure reported by a pool task, resolved rather than rejected so it keeps its code.
#[napi(object)]
pub struct Failure {
    pub kv_error_code: String,
    pub message: String,
    /// For writes that may have been lost: their keys, when known, so that a durable write
    /// of another key, which the same flush covered, is not failed with them.
    pub lost_keys: Option<Vec<String>>,
    /// `"unknown"` for a write that may or may not have been applied.
    pub outcome: Option<String>,
}

impl From<store::Error> for Failure {
    fn from(error: store::Error) -> Self {
        let lost_keys = match &error {
            store::Error::Lost { keys, .. } => keys.clone(),
            _ => None,
        };
        Self {
            kv_error_code: error_code(&error).to_owned(),
            message: error.to_string(),
            outcome: error.outcome().map(str::to_owned),
            lost_keys,
        }
    }
}

/// Runs `work`, turning a panic into an error so it can never abort the process.
pub(crate) fn guarded<T>(work: impl FnOnce() -> store::Result<T>) -> store::Result<T> {
    panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        Err(store::Error::Internal(
            crate::store::panic_message(panic.as_ref()).to_string(),
        ))
    })
}

/// What a job's promise resolves: its value, or the failure.
pub type Outcome<V> = Either<V, Failure>;

pub(super) fn outcome<T, V>(output: store::Result<T>, finish: fn(T) -> V) -> Outcome<V> {
    match output {
        Ok(value) => Either::A(finish(value)),
        Err(error) => Either::B(error.into()),
    }
}

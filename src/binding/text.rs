//! Long text made a JS string without copying it into V8's heap when it can be: most large
//! values people store as text are ASCII (JSON, HTML, base64), which V8 can read in place as
//! an external one-byte string. Text read off the JS thread comes here as an [`OwnedText`];
//! a long value read in-line, through [`super::convert::js_text`]. Other text is decoded from
//! UTF-8 as usual.

use std::cell::Cell;
use std::os::raw::{c_char, c_void};
use std::sync::OnceLock;

use napi::bindgen_prelude::*;
use napi::sys;

/// Below this, a string is made the usual way: V8 copies short external strings anyway.
pub const EXTERNAL_MIN: usize = 64 * 1024;

/// A value read as text, ready to become a JS string on the JS thread.
pub enum OwnedText {
    /// ASCII bytes: a one-byte string that V8 reads where they are.
    Ascii(Vec<u8>),
    Utf8(String),
}

impl OwnedText {
    /// The text of stored bytes, invalid UTF-8 replaced as a decoder would; `bytes` are kept,
    /// not copied, when they are ASCII or valid UTF-8.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        if bytes.len() >= EXTERNAL_MIN && bytes.is_ascii() {
            return OwnedText::Ascii(bytes);
        }
        match String::from_utf8(bytes) {
            Ok(text) => OwnedText::Utf8(text),
            Err(error) => OwnedText::Utf8(String::from_utf8_lossy(error.as_bytes()).into_owned()),
        }
    }
}

impl TypeName for OwnedText {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl ValidateNapiValue for OwnedText {}

// Results are typed by their elements' conversions both ways; a string read from JS is text.
impl FromNapiValue for OwnedText {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        unsafe { String::from_napi_value(env, value) }.map(OwnedText::Utf8)
    }
}

impl ToNapiValue for OwnedText {
    unsafe fn to_napi_value(env: sys::napi_env, text: Self) -> Result<sys::napi_value> {
        match text {
            OwnedText::Utf8(text) => unsafe { String::to_napi_value(env, text) },
            OwnedText::Ascii(bytes) => match external_latin1() {
                Some(create) => unsafe { external(env, create, bytes) },
                None => unsafe { latin1(env, &bytes) },
            },
        }
    }
}

/// `node_api_create_external_string_latin1`, looked up where this Node has it (Node-API 10;
/// Node 20.4 and later as experimental), so that an older Node still loads the addon.
type CreateExternalLatin1 = unsafe extern "C" fn(
    sys::napi_env,
    *mut c_char,
    isize,
    sys::napi_finalize,
    *mut c_void,
    *mut sys::napi_value,
    *mut bool,
) -> sys::napi_status;

fn external_latin1() -> Option<CreateExternalLatin1> {
    static FOUND: OnceLock<Option<CreateExternalLatin1>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        #[cfg(unix)]
        {
            let name = c"node_api_create_external_string_latin1";
            // SAFETY: a lookup in the symbols already loaded (the node binary's); a symbol of
            // this name has this signature in every Node that exports it.
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            (!found.is_null())
                .then(|| unsafe { std::mem::transmute::<*mut c_void, CreateExternalLatin1>(found) })
        }
        #[cfg(not(unix))]
        {
            None
        }
    })
}

thread_local! {
    /// Bytes of this thread's external strings still alive, and how many V8 was last told of.
    /// V8 counts an external string's header alone: told of the bytes, it collects garbage
    /// as their memory grows, as it would for strings in its heap. The count is brought up to
    /// date as each string is made, not as one is freed: a finalizer may run during a garbage
    /// collection, when Node-API may not be called.
    static EXTERNAL: Cell<(i64, i64)> = const { Cell::new((0, 0)) };
}

/// Tells V8 of the external bytes made and freed since it was last told.
unsafe fn report_external(env: sys::napi_env, made: i64) {
    let (alive, told) = EXTERNAL.get();
    let alive = alive + made;
    let mut total = 0;
    // SAFETY: on the JS thread of `env`, outside any finalizer.
    unsafe { sys::napi_adjust_external_memory(env, alive - told, &mut total) };
    EXTERNAL.set((alive, alive));
}

/// Frees the bytes of an external string once V8 no longer needs them (or at once, when it
/// copied them).
unsafe extern "C" fn release(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the box `external` leaked for this string, released once.
    let bytes = unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) };
    let _ = EXTERNAL.try_with(|count| {
        let (alive, told) = count.get();
        count.set((alive - bytes.len() as i64, told));
    });
}

unsafe fn external(
    env: sys::napi_env,
    create: CreateExternalLatin1,
    bytes: Vec<u8>,
) -> Result<sys::napi_value> {
    let len = bytes.len();
    let held = Box::new(bytes);
    let data = held.as_ptr().cast::<c_char>().cast_mut();
    let hint = Box::into_raw(held).cast::<c_void>();
    let mut value = std::ptr::null_mut();
    let mut copied = false;
    // SAFETY: the bytes live in the box until `release` frees it, which Node-API calls once
    // the string is collected (or before returning, when it copies); V8 never writes them.
    let status = unsafe {
        create(
            env,
            data,
            len as isize,
            Some(release),
            hint,
            &mut value,
            &mut copied,
        )
    };
    if status != sys::Status::napi_ok {
        // Not made: the finalizer will not run, so the bytes are freed here.
        drop(unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) });
        return Err(Error::new(
            Status::GenericFailure,
            "could not create a string",
        ));
    }
    // Copied, the bytes are in V8's heap, which counts them itself, and `release` has already
    // taken them off the count: adding them nets to nothing. Else they are external now.
    unsafe { report_external(env, len as i64) };
    Ok(value)
}

unsafe fn latin1(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut value = std::ptr::null_mut();
    // SAFETY: `bytes` is valid for its length, which is given, and Node-API copies it.
    let status = unsafe {
        sys::napi_create_string_latin1(env, bytes.as_ptr().cast(), bytes.len() as isize, &mut value)
    };
    if status != sys::Status::napi_ok {
        return Err(Error::new(
            Status::GenericFailure,
            "could not create a string",
        ));
    }
    Ok(value)
}

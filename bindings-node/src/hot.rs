//! The per-message calls of a stream (`send`, `recv`) as plain Node-API
//! functions, beside the `#[napi]` class methods that do everything else.
//!
//! Why: napi-rs 3 wraps every `#[napi]` method call in borrow bookkeeping (a
//! scope with its own allocation, thread-local stacks, a class-identity check
//! and hash-map lookups). Measured on a 2-vCPU Xeon, a method that does
//! nothing costs about 370 ns, more than sealing and opening a 64 B message
//! together, and a round trip makes four such calls on its critical path.
//! These functions do what a call needs and no more: read their arguments,
//! find the stream by id in a registry, call [`StreamShared`]. A send's
//! buffer is only referenced (`napi_create_reference`) when the message must
//! wait in the outbox; one that goes into the ring now is read in place.
//!
//! The functions are internal (`lib/stream.js` calls them with arguments it
//! checked); a wrong argument still gets a thrown error, never undefined
//! behaviour, and a panic is caught here, never crossing into Node.
//!
//! Safety argument, in one place: Node calls these callbacks on the
//! JavaScript thread with a live `env` and `info`; every napi value used is
//! an argument of the current call (alive for its duration) or created in
//! it; the bytes of a send's Buffer are read during the call only (an
//! ArrayBuffer's backing store does not move, and the caller holds the
//! Buffer), and kept beyond it only through a reference (napi-rs `Buffer`).

use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, FromNapiValue, ToNapiValue};
use napi::{sys, JsError, Status};
use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind};

use crate::dispatch::lock;
use crate::errors::{closed, js_error, to_js, Code};
use crate::inbox::recv_result;
use crate::stream::StreamShared;
use crate::uv::check;

/// Stream ids are unique and handed out in sequence: they hash to themselves.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_i64(&mut self, id: i64) {
        self.0 = id as u64;
    }
}

type Registry = HashMap<i64, Arc<StreamShared>, BuildHasherDefault<IdHasher>>;

/// The streams JavaScript holds a `NativeStream` of, by id.
static STREAMS: Mutex<Option<Registry>> = Mutex::new(None);

/// Makes `stream` reachable from these functions (while its `NativeStream` lives).
pub(crate) fn register(stream: &Arc<StreamShared>) {
    lock(&STREAMS).get_or_insert_with(Registry::default).insert(stream.id, Arc::clone(stream));
}

/// The `NativeStream` of `id` is gone.
pub(crate) fn unregister(id: i64) {
    if let Some(streams) = lock(&STREAMS).as_mut() {
        streams.remove(&id);
    }
}

fn stream(id: i64) -> Result<Arc<StreamShared>, CoreError> {
    lock(&STREAMS).as_ref().and_then(|s| s.get(&id).cloned()).ok_or_else(|| closed("stream"))
}

type CallResult = Result<sys::napi_value, napi::Error<Code>>;

fn napi_failed(status: sys::napi_status, what: &str) -> napi::Error<Code> {
    napi::Error::new(Code::from(Status::from(status)), format!("{what} failed"))
}

/// Runs `body` with the call's first `N` arguments (undefined past those
/// given); throws its error, or a panic's, into JavaScript.
///
/// # Safety
/// `env` and `info` are those Node passed to the callback now running.
unsafe fn call<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
    body: impl FnOnce([sys::napi_value; N]) -> CallResult,
) -> sys::napi_value {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = N;
        let mut argv = [ptr::null_mut(); N];
        // SAFETY: `argv` has room for `argc` values; Node fills the ones not
        // given with undefined.
        let status =
            unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
        if status != sys::Status::napi_ok {
            return Err(napi_failed(status, "napi_get_cb_info"));
        }
        body(argv)
    }));
    let error = match result {
        Ok(Ok(value)) => return value,
        Ok(Err(error)) => error,
        Err(_) => js_error(ErrorKind::Io, "internal error: a native stream call panicked (please report it)"),
    };
    // SAFETY: on the JavaScript thread of `env`, in a callback (see `call`).
    unsafe { JsError::from(error).throw_into(env) };
    ptr::null_mut()
}

/// An integer argument (a stream id or an op).
///
/// # Safety
/// As [`call`]; `value` is one of its arguments.
unsafe fn integer(env: sys::napi_env, value: sys::napi_value, what: &str) -> Result<i64, napi::Error<Code>> {
    let mut out = 0;
    // SAFETY: see the function's contract.
    let status = unsafe { sys::napi_get_value_int64(env, value, &mut out) };
    if status != sys::Status::napi_ok {
        return Err(js_error(ErrorKind::InvalidArgument, format!("{what} must be a number")));
    }
    Ok(out)
}

/// The bytes of a Buffer (or Uint8Array) argument, for the current call only.
///
/// # Safety
/// As [`integer`]; the slice must not be used after the call returns.
unsafe fn bytes<'call>(env: sys::napi_env, value: sys::napi_value) -> Result<&'call [u8], napi::Error<Code>> {
    let mut data: *mut c_void = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: see the function's contract.
    let status = unsafe { sys::napi_get_buffer_info(env, value, &mut data, &mut len) };
    if status != sys::Status::napi_ok {
        return Err(js_error(ErrorKind::InvalidArgument, "data must be a Buffer"));
    }
    if len == 0 || data.is_null() {
        return Ok(&[]);
    }
    // SAFETY: Node says `data` holds `len` bytes; the caller holds the Buffer
    // for the whole call and its backing store does not move.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

fn is_nullish(env: sys::napi_env, value: sys::napi_value) -> bool {
    let mut kind = 0;
    // SAFETY: `value` is an argument of the running call on this env.
    let status = unsafe { sys::napi_typeof(env, value, &mut kind) };
    status == sys::Status::napi_ok && (kind == sys::ValueType::napi_undefined || kind == sys::ValueType::napi_null)
}

/// `send(id, op, data)`: true when the message is in the ring now, else false
/// and `op` completes once it is (see [`StreamShared::send`]).
unsafe extern "C" fn send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: Node's arguments to this callback.
    unsafe {
        call(env, info, |[id, op, data]: [sys::napi_value; 3]| {
            let stream = stream(integer(env, id, "id")?).map_err(to_js)?;
            let op = integer(env, op, "op")?;
            let message = bytes(env, data)?;
            // Referenced only when it must wait.
            let keep = || {
                Buffer::from_napi_value(env, data).map_err(|e| {
                    CoreError::new(ErrorKind::ResourceExhausted, format!("cannot keep the message: {}", e.reason))
                })
            };
            let sent = stream.send(op, message, keep).map_err(to_js)?;
            ToNapiValue::to_napi_value(env, sent).map_err(|e| napi_failed(e.status.into(), "napi_get_boolean"))
        })
    }
}

/// A timeout argument in milliseconds (undefined or null: none).
///
/// # Safety
/// As [`integer`].
unsafe fn timeout(env: sys::napi_env, value: sys::napi_value) -> Result<Option<Duration>, napi::Error<Code>> {
    if is_nullish(env, value) {
        return Ok(None);
    }
    let mut ms = 0.0;
    // SAFETY: see the function's contract.
    let status = unsafe { sys::napi_get_value_double(env, value, &mut ms) };
    if status != sys::Status::napi_ok || ms.is_nan() || ms < 0.0 {
        return Err(js_error(ErrorKind::InvalidArgument, "timeout must be a number of milliseconds >= 0"));
    }
    Ok(Some(Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)))
}

/// `recv(id, op, into?, timeout?)`: the message (or, with `into`, its length)
/// if one is there now, else null and `op` completes later (see
/// [`StreamShared::recv`]); `timeout`: the receive's own, in ms.
unsafe extern "C" fn recv(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: Node's arguments to this callback.
    unsafe {
        call(env, info, |[id, op, into, limit]: [sys::napi_value; 4]| {
            let stream = stream(integer(env, id, "id")?).map_err(to_js)?;
            let op = integer(env, op, "op")?;
            let into = if is_nullish(env, into) {
                None
            } else {
                let buffer = Buffer::from_napi_value(env, into)
                    .map_err(|_| js_error(ErrorKind::InvalidArgument, "buffer must be a Buffer"))?;
                Some(buffer)
            };
            let limit = timeout(env, limit)?;
            let result = recv_result(stream.recv(op, into, limit).map_err(to_js)?)?;
            ToNapiValue::to_napi_value(env, result).map_err(|e| napi_failed(e.status.into(), "returning a message"))
        })
    }
}

/// A plain object holding the functions above, for `lib/stream.js`.
pub(crate) struct HotCalls;

impl ToNapiValue for HotCalls {
    unsafe fn to_napi_value(env: sys::napi_env, _: Self) -> napi::Result<sys::napi_value> {
        type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;
        let functions: [(&std::ffi::CStr, Callback); 2] = [(c"send", send), (c"recv", recv)];
        let mut object = ptr::null_mut();
        // SAFETY: called by napi-rs on the JavaScript thread with its env; the
        // names are NUL-terminated and outlive the calls.
        unsafe {
            check(sys::napi_create_object(env, &mut object), "napi_create_object")?;
            for (name, callback) in functions {
                let mut function = ptr::null_mut();
                let status = sys::napi_create_function(
                    env,
                    name.as_ptr(),
                    name.to_bytes().len() as isize,
                    Some(callback),
                    ptr::null_mut(),
                    &mut function,
                );
                check(status, "napi_create_function")?;
                check(sys::napi_set_named_property(env, object, name.as_ptr(), function), "napi_set_named_property")?;
            }
        }
        Ok(object)
    }
}

/// Internal: the per-message stream calls as plain functions (see the module
/// comment): `send(id, op, data)` and `recv(id, op, into?, timeout?)`.
#[napi(
    ts_return_type = "{ send(id: number, op: number, data: Buffer): boolean; recv(id: number, op: number, into?: Buffer, timeout?: number): Buffer | number | null }"
)]
pub fn hot_calls() -> HotCalls {
    HotCalls
}

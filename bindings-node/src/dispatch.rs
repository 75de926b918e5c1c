//! Results for JavaScript: the events handed to the JavaScript layer's
//! `dispatch` function, and the one thread-safe function through which the
//! rare results computed on other threads (a connect that waits for its
//! server with `wait` or for room in a full queue, a subscribe, a close that
//! waited for ring space, a reliable publish) reach it.
//!
//! Results of the JavaScript thread's own waiting (receives, sends, accepts,
//! connects)
//! are delivered directly by [`uv::deliver`](crate::uv::deliver); nothing per
//! message goes through the thread-safe function.
//!
//! Nothing here keeps Node's event loop alive by itself: the thread-safe
//! function is created weak, and the JavaScript layer refs it while it has
//! pending operations or open Server/Client objects (`setActive`).

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsValue;
use napi_derive::napi;
use shmsock::Error as CoreError;

use crate::errors::code_of;
use crate::native_stream::NativeStream;
use crate::pool;
use crate::stream::StreamShared;
use crate::subscriber::{NativeSubscriber, SubShared};
use crate::uv::check;

/// Locks a mutex, ignoring poisoning (no lock here is held across user code).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kinds of events, as the first element of each event array in JavaScript.
pub(crate) mod kind {
    /// `[0, op, Buffer]`: a receive completed.
    pub const RECV: u32 = 0;
    /// `[1, op]`: a send or close completed.
    pub const DONE: u32 = 1;
    /// `[2, op, null, code, message]`: an operation failed.
    pub const FAILED: u32 = 2;
    /// `[3, op, NativeStream]`: an accept or connect completed.
    pub const STREAM: u32 = 3;
    /// `[4, streamId, Buffer]`: a message on a flowing stream.
    pub const DATA: u32 = 4;
    /// `[5, streamId, null, code|null, message|null]`: a flowing stream ended
    /// (code null: a clean close by either side).
    pub const END: u32 = 5;
    /// `[6, listenerId, NativeStream]`: a serving listener accepted a client.
    pub const CONNECTION: u32 = 6;
    /// `[7, listenerId, null, code, message]`: a client failed the handshake.
    pub const REJECTED: u32 = 7;
    /// `[8, op, length]`: a `recvInto` completed.
    pub const RECV_INTO: u32 = 8;
    /// `[9, op, NativeSubscriber]`: a subscribe completed.
    pub const SUBSCRIBER: u32 = 9;
}

/// A received message on its way to JavaScript as a `Buffer`. A small one is
/// copied into a buffer Node allocates (`napi_create_buffer_copy`): for a
/// few hundred bytes that costs less than handing over the `Vec` as an
/// external buffer (a boxed owner, a finalizer, and GC bookkeeping per
/// message). A large one is handed over without a copy.
pub struct Message(pub(crate) Vec<u8>);

/// The largest message copied rather than handed over (see [`Message`]).
const COPY_MAX: usize = 4096;

impl ToNapiValue for Message {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let data = val.0;
        if data.is_empty() {
            // SAFETY: called by napi-rs on the JavaScript thread with its env.
            return unsafe { ToNapiValue::to_napi_value(env, Buffer::from(data)) };
        }
        let data = if data.len() > COPY_MAX {
            // SAFETY: on the JavaScript thread with its env (as above).
            match unsafe { external(env, data) } {
                Ok(value) => return Ok(value),
                // External buffers refused (a runtime with a V8 sandbox): copied below.
                Err(data) => data,
            }
        } else {
            data
        };
        let mut value = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread with its env; Node copies `len`
        // bytes from `data`, which lives until the end of this function; no
        // pointer to the copy is kept (the out parameter is null).
        let status = unsafe {
            sys::napi_create_buffer_copy(env, data.len(), data.as_ptr().cast(), std::ptr::null_mut(), &mut value)
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::from(status), "could not allocate a Buffer for a message"));
        }
        Ok(value)
    }
}

/// `data` as an external Buffer whose finalizer gives its block back to the
/// [`pool`](crate::pool); `Err(data)` when the runtime refuses external buffers.
///
/// # Safety
/// On the JavaScript thread, with its `env`.
unsafe fn external(env: sys::napi_env, data: Vec<u8>) -> std::result::Result<sys::napi_value, Vec<u8>> {
    unsafe extern "C" fn finalize(env: sys::napi_env, _data: *mut std::ffi::c_void, hint: *mut std::ffi::c_void) {
        // SAFETY: `hint` is the box made below, handed to this finalizer only,
        // which Node calls once.
        let block = unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) };
        let extra = block.capacity() - block.len();
        if extra > 0 {
            let mut total = 0;
            // SAFETY: Node calls finalizers with a usable env on its thread.
            unsafe { sys::napi_adjust_external_memory(env, -(extra as i64), &mut total) };
        }
        pool::give_back(*block);
    }
    let len = data.len();
    let extra = data.capacity() - len;
    let mut block = Box::new(data);
    let ptr = block.as_mut_ptr();
    let hint = Box::into_raw(block);
    let mut value = std::ptr::null_mut();
    // SAFETY: `ptr` points to `len` initialized bytes owned by the box at
    // `hint`, which stays alive (and its heap block unmoved) until Node calls
    // `finalize`, once, when the Buffer is collected.
    let status =
        unsafe { sys::napi_create_external_buffer(env, len, ptr.cast(), Some(finalize), hint.cast(), &mut value) };
    if status != sys::Status::napi_ok {
        // SAFETY: the call failed, so Node did not take the box: it is ours again.
        return Err(*unsafe { Box::from_raw(hint) });
    }
    if extra > 0 {
        // V8 counts the Buffer's length; the block's rounding up is ours to
        // report, so that collections come as soon as the memory warrants.
        let mut total = 0;
        // SAFETY: on the JavaScript thread with its env.
        unsafe { sys::napi_adjust_external_memory(env, extra as i64, &mut total) };
    }
    Ok(value)
}

impl TypeName for Message {
    fn type_name() -> &'static str {
        "Buffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

/// One result for JavaScript.
pub(crate) enum Event {
    Recv { op: i64, data: Vec<u8> },
    Done { op: i64 },
    Failed { op: i64, error: CoreError },
    Stream { op: i64, stream: Arc<StreamShared> },
    Data { id: i64, data: Vec<u8> },
    RecvInto { op: i64, len: u32 },
    End { id: i64, error: Option<CoreError> },
    Connection { listener: i64, stream: Arc<StreamShared> },
    Rejected { listener: i64, error: CoreError },
    Subscriber { op: i64, sub: Arc<SubShared> },
}

/// How many values an event has at most: `[kind, id, value, code, message]`.
pub(crate) const EVENT_ARGS: usize = 5;

/// A JavaScript value for `v`.
///
/// # Safety
/// On the JavaScript thread, with its `env`.
unsafe fn js<T: ToNapiValue>(env: sys::napi_env, v: T) -> Result<sys::napi_value> {
    // SAFETY: as the caller promised.
    unsafe { T::to_napi_value(env, v) }
}

impl Event {
    /// The event's values, `[kind, id, value, code, message]`, those it lacks
    /// `undefined`: the arguments of a `dispatch` call for this event alone,
    /// or the elements of its array in a batch. `land`: a small message goes
    /// to the landing buffer and its value is its length (`uv::land`); only
    /// for an event delivered alone, which JavaScript copies out at once.
    ///
    /// # Safety
    /// On the JavaScript thread, with its `env`.
    pub(crate) unsafe fn into_values(self, env: sys::napi_env, land: bool) -> Result<[sys::napi_value; EVENT_ARGS]> {
        let mut undefined = std::ptr::null_mut();
        // SAFETY: on the JavaScript thread with its env (the caller's promise).
        check(unsafe { sys::napi_get_undefined(env, &mut undefined) }, "napi_get_undefined")?;
        let mut values = [undefined; EVENT_ARGS];
        let (kind, id) = match &self {
            Event::Recv { op, .. } => (kind::RECV, *op),
            Event::Done { op } => (kind::DONE, *op),
            Event::Failed { op, .. } => (kind::FAILED, *op),
            Event::Stream { op, .. } => (kind::STREAM, *op),
            Event::Data { id, .. } => (kind::DATA, *id),
            Event::RecvInto { op, .. } => (kind::RECV_INTO, *op),
            Event::End { id, .. } => (kind::END, *id),
            Event::Connection { listener, .. } => (kind::CONNECTION, *listener),
            Event::Rejected { listener, .. } => (kind::REJECTED, *listener),
            Event::Subscriber { op, .. } => (kind::SUBSCRIBER, *op),
        };
        // SAFETY (every `js` call): on the JavaScript thread with its env.
        unsafe {
            values[0] = js(env, kind)?;
            values[1] = js(env, id)?;
            let error = match self {
                Event::Recv { data, .. } | Event::Data { data, .. } => {
                    values[2] = if land && crate::uv::land(&data) {
                        js(env, data.len() as u32)?
                    } else {
                        js(env, Message(data))?
                    };
                    None
                }
                Event::RecvInto { len, .. } => {
                    values[2] = js(env, len)?;
                    None
                }
                Event::Stream { stream, .. } | Event::Connection { stream, .. } => {
                    values[2] = js(env, NativeStream::wrap(stream))?;
                    None
                }
                Event::Subscriber { sub, .. } => {
                    values[2] = js(env, NativeSubscriber::wrap(sub))?;
                    None
                }
                Event::Failed { error, .. } | Event::Rejected { error, .. } => Some(error),
                Event::End { error, .. } => error,
                Event::Done { .. } => None,
            };
            if let Some(error) = error {
                values[3] = js(env, code_of(error.kind()))?;
                values[4] = js(env, error.message().to_string())?;
            }
        }
        Ok(values)
    }
}

impl ToNapiValue for Event {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        // SAFETY: called by napi-rs on the JavaScript thread with its env.
        unsafe {
            let values = val.into_values(env, false)?;
            let mut array = std::ptr::null_mut();
            check(sys::napi_create_array_with_length(env, EVENT_ARGS, &mut array), "napi_create_array_with_length")?;
            for (i, value) in values.into_iter().enumerate() {
                check(sys::napi_set_element(env, array, i as u32, value), "napi_set_element")?;
            }
            Ok(array)
        }
    }
}

/// Work for the JavaScript thread, sent from another thread: it runs there and
/// pushes the events to deliver.
pub(crate) type Job = Box<dyn FnOnce(&mut Vec<Event>) + Send>;

type Dispatch = ThreadsafeFunction<Job, (), Vec<Event>, Status, false, true, 0>;

static DISPATCH: Mutex<Option<Dispatch>> = Mutex::new(None);

/// Registers the JavaScript function that receives every batch of events.
/// Called once by the JavaScript layer when it loads.
/// `landing`: the Buffer small messages are copied into (see `uv::land`).
#[napi(
    ts_args_type = "dispatch: (events: Array<Array<unknown>> | number, id?: number, value?: unknown, code?: string, message?: string) => void, landing: Buffer"
)]
pub fn init(env: Env, dispatch: Function<Vec<Event>, ()>, landing: Buffer) -> Result<()> {
    crate::uv::init(env.raw(), dispatch.value().value, landing)?;
    let tsfn = dispatch.build_threadsafe_function::<Job>().callee_handled::<false>().weak::<true>().build_callback(
        |ctx: ThreadsafeCallContext<Job>| {
            let mut events = Vec::new();
            (ctx.value)(&mut events);
            Ok(events)
        },
    )?;
    *lock(&DISPATCH) = Some(tsfn);
    Ok(())
}

/// Keeps Node's event loop alive (true) or lets it exit (false) while another
/// thread may still post results. The JavaScript layer calls it when its count
/// of pending operations and open Server/Client objects leaves or reaches 0.
#[napi]
pub fn set_active(env: Env, active: bool) -> Result<()> {
    let guard = lock(&DISPATCH);
    if let Some(tsfn) = guard.as_ref() {
        // SAFETY: on the JavaScript thread, with the env that created the function.
        let status = unsafe {
            if active {
                sys::napi_ref_threadsafe_function(env.raw(), tsfn.raw())
            } else {
                sys::napi_unref_threadsafe_function(env.raw(), tsfn.raw())
            }
        };
        if status != sys::Status::napi_ok {
            return Err(Error::new(Status::from(status), "could not ref/unref the dispatch function"));
        }
    }
    Ok(())
}

/// Runs `job` on the JavaScript thread (from any thread, never blocking).
pub(crate) fn post(job: Job) {
    let guard = lock(&DISPATCH);
    if let Some(tsfn) = guard.as_ref() {
        tsfn.call(job, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

//! Streams: connect, send, receive, close, and what a stream knows about itself.

use std::ffi::{c_char, c_int, c_void, CString};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::Instant;

use shmsock::{CipherSuite, Credentials, ErrorKind, RecvBuf, Role, Stats, Stream};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_backend, shmsock_options};
use crate::result::{c_string_lossy, shmsock_result, FfiResult};
use crate::util::{self, Out};

/// An encrypted, authenticated message stream to one peer, from
/// shmsock_stream_connect() or shmsock_listener_accept().
///
/// Thread safety: every function except shmsock_stream_free() may be called
/// from several threads at once. A sender and a receiver run in parallel;
/// concurrent senders (or receivers) take turns per whole message. Closing
/// from one thread wakes a call blocked in another, which then fails with
/// SHMSOCK_CLOSED. shmsock_stream_free() must not run while another thread
/// uses the stream.
pub struct shmsock_stream {
    pub(crate) inner: Stream,
}

/// The transport cipher of a connection. The values are the protocol's wire
/// identifiers.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_cipher {
    /// ChaCha20-Poly1305 (RFC 8439).
    SHMSOCK_CIPHER_CHACHA20_POLY1305 = 1,
    /// AEGIS-128L (used when both sides have AES instructions).
    SHMSOCK_CIPHER_AEGIS_128L = 2,
}

impl From<CipherSuite> for shmsock_cipher {
    fn from(cipher: CipherSuite) -> Self {
        match cipher {
            CipherSuite::ChaCha20Poly1305 => shmsock_cipher::SHMSOCK_CIPHER_CHACHA20_POLY1305,
            CipherSuite::Aegis128L => shmsock_cipher::SHMSOCK_CIPHER_AEGIS_128L,
        }
    }
}

/// Which end of a connection a stream is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmsock_role {
    /// The side that connected.
    SHMSOCK_ROLE_CLIENT = 1,
    /// The side that accepted.
    SHMSOCK_ROLE_SERVER = 2,
}

/// Message and byte counts of a connection (plaintext bytes, as the
/// applications see them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmsock_stats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

impl From<Stats> for shmsock_stats {
    fn from(s: Stats) -> shmsock_stats {
        shmsock_stats {
            messages_sent: s.messages_sent,
            bytes_sent: s.bytes_sent,
            messages_received: s.messages_received,
            bytes_received: s.bytes_received,
        }
    }
}

/// The peer process's identity per the kernel (SO_PEERCRED), taken when the
/// connection was made.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmsock_credentials {
    /// Process id, in our pid namespace (0 if the peer is outside it).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl From<Credentials> for shmsock_credentials {
    fn from(c: Credentials) -> shmsock_credentials {
        shmsock_credentials { pid: c.pid, uid: c.uid, gid: c.gid }
    }
}

handle!(shmsock_stream, "stream" => inner: Stream);

// ------------------------------------------------------------------ receiving

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (the `try_` functions).
    No,
    /// Up to the stream's receive timeout.
    Default,
    /// Up to the deadline of a `timeout_ms` argument (None: forever).
    Until(Option<Instant>),
}

impl Wait {
    fn recv(self, stream: &Stream, buf: &mut (impl RecvBuf + ?Sized)) -> shmsock::Result<usize> {
        match self {
            Wait::No => stream.try_recv_with(buf),
            Wait::Default => stream.recv_with(buf, stream.default_recv_deadline()),
            Wait::Until(deadline) => stream.recv_with(buf, deadline),
        }
    }
}

/// Receives into the caller's buffer; on BUFFER_TOO_SMALL, `*out_len` is the size needed.
unsafe fn recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
    wait: Wait,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: `buf` holds `len` writable bytes, or is NULL with len 0.
    let buf = unsafe { util::bytes_mut(buf, len, "buf") }?;
    // SAFETY: a writable size_t or NULL (caller's contract).
    let out_len = unsafe { Out::new(out_len, "out_len") }?;
    match wait.recv(stream, buf) {
        Ok(n) => {
            out_len.write(n);
            Ok(())
        }
        Err(e) => {
            if let (ErrorKind::BufferTooSmall, Some(needed)) = (e.kind(), e.needed()) {
                out_len.write(needed);
            }
            Err(e.into())
        }
    }
}

/// A message in memory from malloc(3), for shmsock_buffer_free(): allocated
/// by the core's receive once the message's length is known.
struct Malloced {
    /// NULL until `prepare`; then max(len, 1) bytes from calloc, so an empty
    /// message also has a non-NULL buffer.
    ptr: *mut u8,
    len: usize,
}

impl RecvBuf for Malloced {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        if !self.ptr.is_null() && self.len == len {
            // Again for the same message, after a timeout: the same memory.
            return Ok(());
        }
        // calloc: the memory is initialised before Rust forms a slice over it.
        // SAFETY: plain allocation; NULL is checked.
        let ptr = unsafe { libc::calloc(len.max(1), 1) }.cast::<u8>();
        if ptr.is_null() {
            return Err(shmsock::Error::new(
                ErrorKind::ResourceExhausted,
                format!("out of memory allocating {len} bytes for a received message; it is kept for the next call"),
            ));
        }
        // SAFETY: NULL or from calloc, not handed out (free(NULL) is a no-op).
        unsafe { libc::free(self.ptr.cast::<c_void>()) };
        *self = Malloced { ptr, len };
        Ok(())
    }

    fn bytes(&mut self) -> &mut [u8] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: `ptr` holds max(len, 1) zeroed bytes from calloc, owned here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Malloced {
    fn drop(&mut self) {
        // SAFETY: NULL or from calloc, not handed out.
        unsafe { libc::free(self.ptr.cast::<c_void>()) }
    }
}

/// Receives a message into a new malloc'd buffer of exactly its size, in one
/// core call.
unsafe fn recv_alloc(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
    wait: Wait,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: writable pointers or NULL (caller's contract).
    let out_buf = unsafe { Out::new(out_buf, "out_buf") }?;
    // SAFETY: as above.
    let out_len = unsafe { Out::new(out_len, "out_len") }?;
    let mut buffer = Malloced { ptr: std::ptr::null_mut(), len: 0 };
    let n = wait.recv(stream, &mut buffer)?;
    if buffer.ptr.is_null() {
        // Every message is prepared; this keeps "never NULL" unconditional.
        buffer.prepare(0)?;
    }
    out_len.write(n);
    out_buf.write(std::mem::replace(&mut buffer.ptr, std::ptr::null_mut()));
    Ok(())
}

/// Connects to the server of endpoint `name` and completes the handshake.
///
/// `name` is a NUL-terminated endpoint name (1 to 100 characters of
/// `[A-Za-z0-9._-]`). `options` must pin the server's key
/// (shmsock_options_set_server_key()); its keypair, if any, is this client's
/// identity (else a fresh one is made). The options are copied.
///
/// Blocks up to the handshake timeout. Thread-safe. On success `*out` receives
/// a new stream, owned by the caller, to be freed with shmsock_stream_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_UTF8, SHMSOCK_INVALID_NAME,
/// SHMSOCK_INVALID_ARGUMENT (no server key pinned), SHMSOCK_NOT_FOUND (no
/// server), SHMSOCK_SERVER_KEY_MISMATCH, SHMSOCK_HANDSHAKE_REJECTED,
/// SHMSOCK_PROTOCOL_VERSION, SHMSOCK_NO_COMMON_CIPHER,
/// SHMSOCK_PROTOCOL_VIOLATION, SHMSOCK_TIMEOUT, SHMSOCK_PEER_GONE,
/// SHMSOCK_RESOURCE_EXHAUSTED, SHMSOCK_PERMISSION_DENIED, SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_connect(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_stream,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let stream = Stream::connect(name, &options)?;
        out.write(handle::into_raw(shmsock_stream { inner: stream }));
        Ok(())
    })
}

unsafe fn send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
    how: impl FnOnce(&Stream, &[u8]) -> shmsock::Result<()>,
) -> FfiResult<()> {
    // SAFETY: a live stream or NULL (caller's contract).
    let stream = unsafe { handle::arg(stream) }?;
    // SAFETY: `data` holds `len` readable bytes, or is NULL with len 0.
    let data = unsafe { util::bytes(data, len, "data") }?;
    how(stream, data)?;
    Ok(())
}

/// Sends one message of `len` bytes (0 is allowed; `data` may then be NULL).
///
/// Blocks while the ring is full, up to the stream's send timeout
/// (shmsock_options_set_send_timeout(); forever by default). The message is
/// sent whole or not at all. The data is encrypted straight into shared memory
/// and not kept: the buffer may be reused when this returns.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_MESSAGE_TOO_LARGE (over the peer's
/// maximum), SHMSOCK_TIMEOUT (nothing was sent), SHMSOCK_CLOSED,
/// SHMSOCK_PEER_CLOSED, SHMSOCK_PEER_GONE, SHMSOCK_PROTOCOL_VIOLATION.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.send(d)) })
}

/// As shmsock_stream_send(), waiting for ring space up to `timeout_ms`
/// milliseconds (SHMSOCK_FOREVER: no limit) instead of the stream's timeout.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_send_timeout(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.send_timeout(d, util::timeout(timeout_ms))) })
}

/// Sends one message only if all of it fits in the ring now; else
/// SHMSOCK_WOULD_BLOCK and nothing is sent. Never blocks.
///
/// Errors: as shmsock_stream_send(), with SHMSOCK_WOULD_BLOCK instead of
/// SHMSOCK_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_send(
    stream: *mut shmsock_stream,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { send(stream, data, len, |s, d| s.try_send(d)) })
}

/// Receives the next message into the caller's buffer `buf` of `len` bytes,
/// waiting up to the stream's receive timeout (shmsock_options_set_recv_timeout();
/// forever by default).
///
/// On success `*out_len` receives the message's length (0 for an empty message;
/// `buf` may be NULL when `len` is 0). When the message is longer than `len`,
/// returns SHMSOCK_BUFFER_TOO_SMALL with `*out_len` = the length needed, and
/// keeps the message for the next call: retry with a buffer that large. The
/// decrypted message is written straight into `buf`: no allocation, no copy.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL, SHMSOCK_TIMEOUT,
/// SHMSOCK_CLOSED, SHMSOCK_PEER_CLOSED (every message the peer sent was
/// received), SHMSOCK_PEER_GONE, SHMSOCK_AUTHENTICATION_FAILED,
/// SHMSOCK_PROTOCOL_VIOLATION, SHMSOCK_MESSAGE_TOO_LARGE.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::Default) })
}

/// As shmsock_stream_recv_into(), waiting up to `timeout_ms` milliseconds
/// (SHMSOCK_FOREVER: no limit; 0: only what has arrived) instead of the
/// stream's timeout.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_into_timeout(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
    timeout_ms: u64,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::Until(util::deadline(timeout_ms))) })
}

/// As shmsock_stream_recv_into() without waiting: SHMSOCK_WOULD_BLOCK when no
/// complete message is there (also when another thread is receiving). After
/// SHMSOCK_WOULD_BLOCK the stream's pollable fd (shmsock_stream_pollable_fd())
/// becomes readable when a message, a close or the peer's death is pending:
/// wait on it with poll/epoll, then call this until SHMSOCK_WOULD_BLOCK again.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_recv_into(
    stream: *mut shmsock_stream,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_into(stream, buf, len, out_len, Wait::No) })
}

/// Receives the next message into a new buffer owned by the caller, waiting up
/// to the stream's receive timeout.
///
/// On success `*out_buf` receives the message (never NULL, also for an empty
/// message) and `*out_len` its length; free the buffer with
/// shmsock_buffer_free(). Prefer shmsock_stream_recv_into() on hot paths: it
/// allocates nothing.
///
/// Errors: as shmsock_stream_recv_into() (but never SHMSOCK_BUFFER_TOO_SMALL),
/// and SHMSOCK_RESOURCE_EXHAUSTED when the buffer cannot be allocated (the
/// message is kept for the next call).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::Default) })
}

/// As shmsock_stream_recv(), waiting up to `timeout_ms` milliseconds
/// (SHMSOCK_FOREVER: no limit; 0: only what has arrived).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_recv_timeout(
    stream: *mut shmsock_stream,
    timeout_ms: u64,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::Until(util::deadline(timeout_ms))) })
}

/// As shmsock_stream_recv() without waiting: SHMSOCK_WOULD_BLOCK when no
/// complete message is there (see shmsock_stream_try_recv_into() for the
/// pollable fd).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_try_recv(
    stream: *mut shmsock_stream,
    out_buf: *mut *mut u8,
    out_len: *mut usize,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { recv_alloc(stream, out_buf, out_len, Wait::No) })
}

/// Frees a buffer returned by shmsock_stream_recv(), shmsock_stream_recv_timeout()
/// or shmsock_stream_try_recv(). NULL is a no-op. The buffer comes from
/// malloc(3), so free(3) may be used as well.
#[no_mangle]
pub unsafe extern "C" fn shmsock_buffer_free(buf: *mut u8) {
    boundary!(|| {
        // SAFETY: NULL or a buffer from calloc handed out by this library, not
        // freed before (caller's contract); free(NULL) is a no-op.
        unsafe { libc::free(buf.cast::<c_void>()) }
    })
}

/// Closes the stream: the peer receives every message sent before, then
/// SHMSOCK_PEER_CLOSED. Idempotent: closing again returns SHMSOCK_OK. Every
/// later call on the stream (but the queries of its keys, credentials, stats
/// and cipher) fails with SHMSOCK_CLOSED, and calls blocked in other threads
/// return SHMSOCK_CLOSED. The handle stays valid until shmsock_stream_free().
/// Never blocks for long (waits up to 100 ms for a sender in another thread).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_close(stream: *mut shmsock_stream) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        unsafe { handle::arg(stream) }?.close()?;
        Ok(())
    })
}

/// Frees a stream, closing it first if needed. NULL is a no-op. The stream
/// must not be in use on another thread; freeing twice is undefined
/// behaviour, as with free(3) (closing twice is fine).
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_free(stream: *mut shmsock_stream) {
    // SAFETY: a stream from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(stream) })
}

/// Sets `*out_closed` to true once shmsock_stream_close() was called on this
/// stream. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_is_closed(
    stream: *const shmsock_stream,
    out_closed: *mut bool,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable bool or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out_closed, "out_closed")?) };
        out.write(stream.is_closed());
        Ok(())
    })
}

/// Copies the peer's static public key (authenticated by the handshake: for a
/// client, the pinned server key) into `out` of `out_len` >= SHMSOCK_KEY_LEN
/// bytes. Works after close too. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_public_key(
    stream: *const shmsock_stream,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let key = unsafe { handle::arg(stream) }?.peer_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Copies this side's static public key into `out` of `out_len` >=
/// SHMSOCK_KEY_LEN bytes. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_local_public_key(
    stream: *const shmsock_stream,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let key = unsafe { handle::arg(stream) }?.local_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Writes the peer process's pid, uid and gid (from the kernel, SO_PEERCRED)
/// to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_credentials(
    stream: *const shmsock_stream,
    out: *mut shmsock_credentials,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable struct or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.peer_credentials().into());
        Ok(())
    })
}

/// Writes the stream's message and byte counts to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_stats(
    stream: *const shmsock_stream,
    out: *mut shmsock_stats,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable struct or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.stats().into());
        Ok(())
    })
}

/// Writes the stream's pollable file descriptor to `*out_fd`: it becomes
/// readable when, after a `try_` receive returned SHMSOCK_WOULD_BLOCK, a
/// message, a close or the peer's death is pending. Add it to poll/epoll/select
/// for reading, then call shmsock_stream_try_recv_into() until
/// SHMSOCK_WOULD_BLOCK. The fd belongs to the stream: do not read, write or
/// close it; it is valid until shmsock_stream_free(). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_pollable_fd(
    stream: *const shmsock_stream,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable int or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out_fd, "out_fd")?) };
        out.write(stream.pollable_fd().as_raw_fd());
        Ok(())
    })
}

/// Writes the transport cipher in use (a shmsock_cipher) to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_cipher(
    stream: *const shmsock_stream,
    out: *mut shmsock_cipher,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.cipher().into());
        Ok(())
    })
}

/// The name of a shmsock_cipher value ("chacha20-poly1305", "aegis-128l"), or
/// "unknown": a static string, never NULL. Never blocks. Thread-safe.
#[no_mangle]
pub extern "C" fn shmsock_cipher_name(cipher: u32) -> *const c_char {
    // The core's names as C strings, made once: (wire id, name).
    static NAMES: OnceLock<Vec<(u32, CString)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (1..=u8::MAX).filter_map(CipherSuite::from_id).map(|c| (u32::from(c.id()), c_string_lossy(c.name()))).collect()
    });
    names.iter().find(|(id, _)| *id == cipher).map_or(c"unknown", |(_, name)| name.as_c_str()).as_ptr()
}

/// Writes the segment backend in use (a shmsock_backend) to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_backend(
    stream: *const shmsock_stream,
    out: *mut shmsock_backend,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.backend().into());
        Ok(())
    })
}

/// Writes which end of the connection this is (a shmsock_role) to `*out`.
/// Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_role(stream: *const shmsock_stream, out: *mut shmsock_role) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(match stream.role() {
            Role::Client => shmsock_role::SHMSOCK_ROLE_CLIENT,
            Role::Server => shmsock_role::SHMSOCK_ROLE_SERVER,
        });
        Ok(())
    })
}

/// Writes the capacity of each ring, in bytes, to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_ring_size(stream: *const shmsock_stream, out: *mut u32) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.ring_size());
        Ok(())
    })
}

/// Writes the largest message the peer accepts, in bytes, to `*out`: sending
/// more fails with SHMSOCK_MESSAGE_TOO_LARGE. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_peer_max_message_size(
    stream: *const shmsock_stream,
    out: *mut u32,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL; a writable value or NULL.
        let (stream, out) = unsafe { (handle::arg(stream)?, Out::new(out, "out")?) };
        out.write(stream.peer_max_message_size());
        Ok(())
    })
}

/// Writes the endpoint name and a NUL into `buf` of `len` bytes (101 is
/// always enough). `out_len` (may be NULL) receives the name's length without
/// the NUL, also on SHMSOCK_BUFFER_TOO_SMALL (when nothing is written). Never
/// blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_stream_endpoint(
    stream: *const shmsock_stream,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live stream or NULL (caller's contract).
        let stream = unsafe { handle::arg(stream) }?;
        // SAFETY: `buf` holds `len` bytes; `out_len` is NULL or writable.
        unsafe { util::write_text(stream.endpoint(), buf, len, out_len, "buf") }
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn cipher_values_and_names_are_the_core_ones() {
        for cipher in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
            let value = shmsock_cipher::from(cipher) as u32;
            assert_eq!(value, u32::from(cipher.id()), "{cipher:?}");
            // SAFETY: a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(shmsock_cipher_name(value)) };
            assert_eq!(name.to_str().unwrap(), cipher.name());
        }
        for unknown in [0, 3, 256 + 1, u32::MAX] {
            // SAFETY: as above.
            assert_eq!(unsafe { CStr::from_ptr(shmsock_cipher_name(unknown)) }, c"unknown");
        }
    }
}

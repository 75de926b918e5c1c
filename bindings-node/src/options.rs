//! Options as JavaScript passes them (times in milliseconds), to core `Options`.

use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::{Backend, ErrorKind, Options};

use crate::errors::{js_error, Code};
use crate::keys::{public_key_of, JsKeypair};

/// Options of listeners and streams (already checked and normalised by the
/// JavaScript layer; keys are 32-byte Buffers, times are milliseconds).
#[napi(object)]
pub struct NativeOptions {
    /// The server key a client pins.
    pub server_key: Option<Buffer>,
    /// The client keys a server accepts (default: any).
    pub allowed_clients: Option<Vec<Buffer>>,
    /// The peer uids a server accepts (default: any).
    pub allowed_uids: Option<Vec<u32>>,
    /// Capacity of each ring in bytes.
    pub ring_size: Option<u32>,
    /// The largest message this side accepts.
    pub max_message_size: Option<u32>,
    /// Limit on the bytes waiting to be sent on a Server connection.
    pub max_queued_bytes: Option<u32>,
    /// Limit on the bytes of large messages a listener's connections gather at once.
    pub max_reassembly_bytes: Option<u32>,
    /// Most handshakes past the client's HELLO at once (a listener), or
    /// subscriber handshakes in progress (a topic); at least 1.
    pub max_pending_handshakes: Option<u32>,
    /// The same bound for the clients of one uid; at least 1.
    pub max_pending_handshakes_per_uid: Option<u32>,
    /// Limit on a send waiting for ring space.
    pub send_timeout: Option<f64>,
    /// Default limit on `recv`.
    pub recv_timeout: Option<f64>,
    /// Limit on connecting and on each server-side handshake.
    pub handshake_timeout: Option<f64>,
    /// `memfd` or `named`.
    pub backend: Option<String>,
    /// Use ChaCha20-Poly1305 even where AEGIS-128L is available.
    pub require_chacha: Option<bool>,
}

pub(crate) fn millis(ms: f64, what: &str) -> napi::Result<Duration, Code> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(js_error(
            ErrorKind::InvalidArgument,
            format!("{what} must be a finite number of milliseconds >= 0, not {ms}"),
        ));
    }
    Duration::try_from_secs_f64(ms / 1000.0)
        .map_err(|_| js_error(ErrorKind::InvalidArgument, format!("{what} of {ms} ms is too long to represent")))
}

/// Core options from JavaScript's, with `keypair` as this side's identity.
pub(crate) fn to_core(
    keypair: Option<&JsKeypair>,
    opts: Option<NativeOptions>,
) -> napi::Result<(Options, Option<Duration>), Code> {
    let mut o = Options::new();
    if let Some(kp) = keypair {
        o = o.keypair(kp.inner.clone());
    }
    let Some(opts) = opts else {
        return Ok((o, None));
    };
    if let Some(key) = &opts.server_key {
        o = o.server_key(public_key_of(key)?);
    }
    if let Some(keys) = &opts.allowed_clients {
        let keys = keys.iter().map(|k| public_key_of(k)).collect::<napi::Result<Vec<_>, Code>>()?;
        o = o.allow_clients(keys);
    }
    if let Some(uids) = opts.allowed_uids {
        o = o.allow_uids(uids);
    }
    if let Some(size) = opts.ring_size {
        o = o.ring_size(size);
    }
    if let Some(size) = opts.max_message_size {
        o = o.max_message_size(size);
    }
    if let Some(bytes) = opts.max_queued_bytes {
        o = o.max_queued_bytes(bytes as usize);
    }
    if let Some(bytes) = opts.max_reassembly_bytes {
        o = o.max_reassembly_bytes(bytes as usize);
    }
    if opts.max_pending_handshakes.is_some() || opts.max_pending_handshakes_per_uid.is_some() {
        // The one not given keeps the core's default; zero is refused by `validate`.
        let overall = opts.max_pending_handshakes.map_or(o.max_pending_handshakes, |n| n as usize);
        let per_uid = opts.max_pending_handshakes_per_uid.map_or(o.max_pending_handshakes_per_uid, |n| n as usize);
        o = o.max_pending_handshakes(overall, per_uid);
    }
    if let Some(ms) = opts.send_timeout {
        o = o.send_timeout(Some(millis(ms, "sendTimeout")?));
    }
    if let Some(ms) = opts.handshake_timeout {
        o = o.handshake_timeout(millis(ms, "handshakeTimeout")?);
    }
    if let Some(name) = &opts.backend {
        let backend = Backend::from_name(name).ok_or_else(|| {
            js_error(ErrorKind::InvalidArgument, format!("backend must be 'memfd' or 'named', not '{name}'"))
        })?;
        o = o.backend(backend);
    }
    if let Some(chacha) = opts.require_chacha {
        o = o.require_chacha(chacha);
    }
    let recv_timeout = opts.recv_timeout.map(|ms| millis(ms, "recvTimeout")).transpose()?;
    o.validate().map_err(crate::errors::to_js)?;
    Ok((o, recv_timeout))
}

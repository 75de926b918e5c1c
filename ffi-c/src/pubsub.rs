//! Publish/subscribe: a publisher seals each message once for every
//! subscriber of its topic (PROTOCOL.md section 14).

use std::ffi::{c_char, c_int};
use std::os::fd::AsRawFd;
use std::time::Duration;

use shmsock::pubsub::{Delivery, SlowSubscribers, TopicOptions};
use shmsock::{ErrorKind, Publisher, Subscriber};

use crate::boundary::boundary;
use crate::handle::{self, handle};
use crate::options::{options_arg, shmsock_options};
use crate::result::{shmsock_result, FfiError, FfiResult};
use crate::stream::shmsock_cipher;
use crate::util::{self, Out};

/// The publishing end of a topic, from shmsock_publisher_bind().
///
/// Thread safety: every function except shmsock_publisher_free() may be
/// called from several threads at once (publishes take turns). Freeing closes
/// the topic.
pub struct shmsock_publisher {
    inner: Publisher,
}

/// A subscription to a topic, from shmsock_subscriber_connect().
///
/// Thread safety: as a stream: receivers take turns; shmsock_subscriber_free()
/// must not run while another thread uses it.
pub struct shmsock_subscriber {
    inner: Subscriber,
}

/// Slow-subscriber policy of a topic: the publisher waits for a subscriber a
/// whole ring behind, up to `reliable_timeout_ms`, then drops it.
pub const SHMSOCK_SLOW_RELIABLE: u32 = 1;
/// Slow-subscriber policy of a topic: the ring overwrites; a subscriber that
/// fell behind is told how many messages it lost.
pub const SHMSOCK_SLOW_LATEST: u32 = 2;

/// The shape and policy of a topic. Start from shmsock_topic_config_default().
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct shmsock_topic_config {
    /// Slots in the ring: a power of two from 2 to 65536 (default 64).
    pub slots: u32,
    /// The largest message in bytes (default 65536).
    pub max_message_size: u32,
    /// SHMSOCK_SLOW_RELIABLE (default) or SHMSOCK_SLOW_LATEST.
    pub policy: u32,
    /// Reliable topics: how long a publish waits for a slow subscriber (default 5000).
    pub reliable_timeout_ms: u64,
    /// Rotate the group key this often; 0: only when a subscriber leaves (default 600000).
    pub rekey_interval_ms: u64,
}

/// Where shmsock_subscriber_recv_into() put a message.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct shmsock_delivery {
    /// The message's length (on SHMSOCK_BUFFER_TOO_SMALL: the length needed).
    pub len: usize,
    /// Its sequence number on the topic.
    pub sequence: u64,
    /// Messages lost to lag just before it (latest topics).
    pub lost: u64,
}

impl From<Delivery> for shmsock_delivery {
    fn from(d: Delivery) -> shmsock_delivery {
        shmsock_delivery { len: d.len, sequence: d.sequence, lost: d.lost }
    }
}

/// The default topic configuration (64 slots of 64 KiB, reliable with a 5 s
/// timeout, a new key every 10 minutes). Never blocks. Thread-safe.
#[no_mangle]
pub extern "C" fn shmsock_topic_config_default() -> shmsock_topic_config {
    let d = TopicOptions::default();
    shmsock_topic_config {
        slots: d.slots,
        max_message_size: d.max_message_size,
        policy: SHMSOCK_SLOW_RELIABLE,
        reliable_timeout_ms: shmsock::pubsub::DEFAULT_RELIABLE_TIMEOUT.as_millis() as u64,
        rekey_interval_ms: shmsock::pubsub::DEFAULT_REKEY_INTERVAL.as_millis() as u64,
    }
}

fn topic_options(c: &shmsock_topic_config) -> Result<TopicOptions, FfiError> {
    let policy = match c.policy {
        SHMSOCK_SLOW_RELIABLE => SlowSubscribers::Reliable { timeout: Duration::from_millis(c.reliable_timeout_ms) },
        SHMSOCK_SLOW_LATEST => SlowSubscribers::Latest,
        other => {
            return Err(shmsock::Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown slow-subscriber policy {other}"),
            )
            .into())
        }
    };
    let rekey = (c.rekey_interval_ms > 0).then(|| Duration::from_millis(c.rekey_interval_ms));
    Ok(TopicOptions::new().slots(c.slots).max_message_size(c.max_message_size).policy(policy).rekey_interval(rekey))
}

/// Binds topic `name` (NUL-terminated, as an endpoint name). `options` must
/// hold the publisher's keypair; its allow-list, uid list, handshake timeout,
/// spin and require-ChaCha settings apply. `config` may be NULL for the
/// defaults. Both are copied. Never blocks for long. Thread-safe. On success
/// `*out` receives a new publisher, to be freed with shmsock_publisher_free().
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_INVALID_UTF8, SHMSOCK_INVALID_NAME,
/// SHMSOCK_INVALID_ARGUMENT (no keypair, a bad config), SHMSOCK_ADDRESS_IN_USE,
/// SHMSOCK_RESOURCE_EXHAUSTED, SHMSOCK_PERMISSION_DENIED, SHMSOCK_IO.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_bind(
    name: *const c_char,
    options: *const shmsock_options,
    config: *const shmsock_topic_config,
    out: *mut *mut shmsock_publisher,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: NULL or a readable config (caller's contract).
        let config = unsafe { config.as_ref() }.copied().unwrap_or_else(|| shmsock_topic_config_default());
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let publisher = Publisher::bind_with(name, &options, &topic_options(&config)?)?;
        out.write(handle::into_raw(shmsock_publisher { inner: publisher }));
        Ok(())
    })
}

handle!(shmsock_publisher, "publisher" => inner: Publisher);

handle!(shmsock_subscriber, "subscriber" => inner: Subscriber);

/// Publishes one message of `len` bytes (0 allowed; `data` may then be NULL),
/// sealed once for every subscriber. A reliable topic may wait for a slow
/// subscriber, up to its timeout, then drops it; a latest topic never waits.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_MESSAGE_TOO_LARGE, SHMSOCK_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_publish(
    publisher: *mut shmsock_publisher,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; `data` holds `len` bytes or is NULL with 0.
        let (p, data) = unsafe { (handle::arg(publisher)?, util::bytes(data, len, "data")?) };
        p.publish(data)?;
        Ok(())
    })
}

/// Publishes one message without waiting. On a reliable topic whose slowest
/// subscriber still holds the oldest slot: SHMSOCK_WOULD_BLOCK and nothing is
/// published; poll shmsock_publisher_pollable_fd() (readable when a subscriber
/// moves on or leaves) and call again, and no later than
/// shmsock_publisher_publish_deadline() says, when the call drops the
/// subscribers still in the way and publishes. A latest topic never blocks.
/// Do not mix with shmsock_publisher_publish() on another thread.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_WOULD_BLOCK, SHMSOCK_MESSAGE_TOO_LARGE,
/// SHMSOCK_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_try_publish(
    publisher: *mut shmsock_publisher,
    data: *const u8,
    len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; `data` holds `len` bytes or is NULL with 0.
        let (p, data) = unsafe { (handle::arg(publisher)?, util::bytes(data, len, "data")?) };
        p.try_publish(data)?;
        Ok(())
    })
}

/// Writes the publisher's pollable fd to `*out_fd`: readable when a blocked
/// shmsock_publisher_try_publish() may succeed. Poll it; never read or close it.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_pollable_fd(
    publisher: *const shmsock_publisher,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable int or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out_fd, "out_fd")?) };
        out.write(p.pollable_fd().as_raw_fd());
        Ok(())
    })
}

/// Writes to `*out_ms` how long from now a blocked
/// shmsock_publisher_try_publish() may wait before it drops the subscribers
/// in its way (0: call it now), or SHMSOCK_FOREVER when no publish is blocked.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_publish_deadline(
    publisher: *const shmsock_publisher,
    out_ms: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable u64 or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out_ms, "out_ms")?) };
        out.write(p.publish_deadline().map_or(util::SHMSOCK_FOREVER, |d| {
            // Rounded up: a timer set for this many ms fires at or after the deadline.
            let left = d.saturating_duration_since(std::time::Instant::now());
            u64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u64::MAX - 1).min(util::SHMSOCK_FOREVER - 1)
        }));
        Ok(())
    })
}

/// Waits until at least `n` subscribers are connected, up to `timeout_ms`
/// (SHMSOCK_FOREVER: no limit).
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_TIMEOUT, SHMSOCK_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_wait_for_subscribers(
    publisher: *mut shmsock_publisher,
    n: usize,
    timeout_ms: u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL.
        let p = unsafe { handle::arg(publisher) }?;
        p.wait_for_subscribers(n, util::timeout(timeout_ms))?;
        Ok(())
    })
}

/// For event loops, shmsock_publisher_wait_for_subscribers() without
/// waiting: SHMSOCK_OK when at least `n` subscribers are connected, else
/// SHMSOCK_WOULD_BLOCK, and the fd of shmsock_publisher_membership_fd()
/// becomes readable at the next join or departure: call again then.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_WOULD_BLOCK, SHMSOCK_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_try_wait_for_subscribers(
    publisher: *const shmsock_publisher,
    n: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL.
        let p = unsafe { handle::arg(publisher) }?;
        if p.try_wait_for_subscribers(n)? {
            Ok(())
        } else {
            Err(shmsock::Error::new(ErrorKind::WouldBlock, format!("fewer than {n} subscribers are connected")).into())
        }
    })
}

/// Writes to `*out_fd` the publisher's membership fd: readable when a
/// subscriber joined or left (or the topic closed) since the last
/// shmsock_publisher_try_wait_for_subscribers(). Poll it; never read or close
/// it.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_membership_fd(
    publisher: *const shmsock_publisher,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable int or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out_fd, "out_fd")?) };
        out.write(p.membership_fd().as_raw_fd());
        Ok(())
    })
}

/// Writes the number of subscribers now to `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_subscriber_count(
    publisher: *const shmsock_publisher,
    out: *mut usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable size_t or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out, "out")?) };
        out.write(p.subscriber_count());
        Ok(())
    })
}

/// Writes the current group-key epoch (1, then +1 per rotation) to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_epoch(publisher: *const shmsock_publisher, out: *mut u64) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable u64 or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out, "out")?) };
        out.write(p.epoch());
        Ok(())
    })
}

/// Writes the sequence number the next message will get (the count of
/// messages published so far) to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_sequence(
    publisher: *const shmsock_publisher,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable u64 or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out, "out")?) };
        out.write(p.sequence());
        Ok(())
    })
}

/// Writes the number of subscribers dropped so far (for falling behind a
/// reliable topic, or for a bad cursor) to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_dropped_count(
    publisher: *const shmsock_publisher,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL; a writable u64 or NULL.
        let (p, out) = unsafe { (handle::arg(publisher)?, Out::new(out, "out")?) };
        out.write(p.dropped_count());
        Ok(())
    })
}

/// Rotates the group key now (it also rotates when a subscriber leaves and on
/// the topic's schedule).
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_rotate_key(publisher: *mut shmsock_publisher) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL.
        unsafe { handle::arg(publisher) }?.rotate_key()?;
        Ok(())
    })
}

/// Closes the topic: subscribers receive everything published, then
/// SHMSOCK_PEER_CLOSED; the name is free at once. Idempotent.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_close(publisher: *mut shmsock_publisher) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live publisher or NULL.
        unsafe { handle::arg(publisher) }?.close();
        Ok(())
    })
}

/// Frees a publisher, closing its topic. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn shmsock_publisher_free(publisher: *mut shmsock_publisher) {
    // SAFETY: a publisher from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(publisher) })
}

/// Subscribes to topic `name`; `options` must pin the publisher's key
/// (shmsock_options_set_server_key()); its receive timeout applies to
/// shmsock_subscriber_recv_into(). Reading starts with the next message
/// published. Blocks up to the handshake timeout. On success `*out` receives a
/// new subscriber, to be freed with shmsock_subscriber_free().
///
/// Errors: as shmsock_stream_connect(), and SHMSOCK_MESSAGE_TOO_LARGE (the
/// topic's messages exceed this side's maximum).
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_connect(
    name: *const c_char,
    options: *const shmsock_options,
    out: *mut *mut shmsock_subscriber,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: NUL-terminated string or NULL (caller's contract).
        let name = unsafe { util::string(name, "name") }?;
        // SAFETY: a live options object or NULL (caller's contract).
        let options = unsafe { options_arg(options) }?;
        // SAFETY: a writable pointer or NULL (caller's contract).
        let out = unsafe { Out::new(out, "out") }?;
        let subscriber = Subscriber::connect(name, &options)?;
        out.write(handle::into_raw(shmsock_subscriber { inner: subscriber }));
        Ok(())
    })
}

unsafe fn sub_recv(
    subscriber: *mut shmsock_subscriber,
    buf: *mut u8,
    len: usize,
    out: *mut shmsock_delivery,
    recv: impl FnOnce(&Subscriber, &mut [u8]) -> shmsock::Result<Delivery>,
) -> FfiResult<()> {
    // SAFETY: a live subscriber or NULL; `buf` holds `len` writable bytes
    // or is NULL with 0; a writable delivery or NULL.
    let (s, buf, out) = unsafe { (handle::arg(subscriber)?, util::bytes_mut(buf, len, "buf")?, Out::new(out, "out")?) };
    match recv(s, buf) {
        Ok(d) => {
            out.write(d.into());
            Ok(())
        }
        Err(e) => {
            if let (ErrorKind::BufferTooSmall, Some(needed)) = (e.kind(), e.needed()) {
                out.write(shmsock_delivery { len: needed, ..Default::default() });
            }
            Err(e.into())
        }
    }
}

/// Receives the next message into `buf` of `len` bytes, waiting up to
/// `timeout_ms` (SHMSOCK_FOREVER: no limit; 0: only what is there). On success
/// `*out` says its length, sequence number and how many messages were lost to
/// lag just before it. A message longer than `len` gives
/// SHMSOCK_BUFFER_TOO_SMALL with `out->len` = the length needed, and is kept.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL, SHMSOCK_TIMEOUT,
/// SHMSOCK_CLOSED, SHMSOCK_PEER_CLOSED (the topic was closed, or this
/// subscriber removed or dropped), SHMSOCK_PEER_GONE,
/// SHMSOCK_AUTHENTICATION_FAILED, SHMSOCK_PROTOCOL_VIOLATION.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_recv_into(
    subscriber: *mut shmsock_subscriber,
    buf: *mut u8,
    len: usize,
    timeout_ms: u64,
    out: *mut shmsock_delivery,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { sub_recv(subscriber, buf, len, out, |s, b| s.recv_with(b, util::deadline(timeout_ms))) })
}

/// As shmsock_subscriber_recv_into() without waiting: SHMSOCK_WOULD_BLOCK when
/// no message is there; the pollable fd then becomes readable when one is.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_try_recv_into(
    subscriber: *mut shmsock_subscriber,
    buf: *mut u8,
    len: usize,
    out: *mut shmsock_delivery,
) -> shmsock_result {
    // SAFETY: forwarded caller's contract.
    boundary!(|| unsafe { sub_recv(subscriber, buf, len, out, |s, b| s.try_recv_into(b)) })
}

/// Writes the subscriber's pollable fd to `*out_fd` (see
/// shmsock_stream_pollable_fd(); the same rules). Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_pollable_fd(
    subscriber: *const shmsock_subscriber,
    out_fd: *mut c_int,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL; a writable int or NULL.
        let (s, out) = unsafe { (handle::arg(subscriber)?, Out::new(out_fd, "out_fd")?) };
        out.write(s.pollable_fd().as_raw_fd());
        Ok(())
    })
}

/// Writes the number of messages lost to lag so far to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_lost(
    subscriber: *const shmsock_subscriber,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL; a writable u64 or NULL.
        let (s, out) = unsafe { (handle::arg(subscriber)?, Out::new(out, "out")?) };
        out.write(s.lost());
        Ok(())
    })
}

/// Writes the number of messages received so far to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_received(
    subscriber: *const shmsock_subscriber,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL; a writable u64 or NULL.
        let (s, out) = unsafe { (handle::arg(subscriber)?, Out::new(out, "out")?) };
        out.write(s.received());
        Ok(())
    })
}

/// Writes the group-key epoch this subscriber last received to `*out`.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_epoch(
    subscriber: *const shmsock_subscriber,
    out: *mut u64,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL; a writable u64 or NULL.
        let (s, out) = unsafe { (handle::arg(subscriber)?, Out::new(out, "out")?) };
        out.write(s.epoch());
        Ok(())
    })
}

/// Writes the topic's cipher (a shmsock_cipher, chosen by the publisher) to
/// `*out`. Never blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_cipher(
    subscriber: *const shmsock_subscriber,
    out: *mut shmsock_cipher,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL; a writable value or NULL.
        let (s, out) = unsafe { (handle::arg(subscriber)?, Out::new(out, "out")?) };
        out.write(s.cipher().into());
        Ok(())
    })
}

/// Copies the publisher's static public key (the pinned key the handshake
/// authenticated) into `out` of `out_len` >= SHMSOCK_KEY_LEN bytes. Never
/// blocks.
///
/// Errors: SHMSOCK_NULL_ARGUMENT, SHMSOCK_BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_publisher_public_key(
    subscriber: *const shmsock_subscriber,
    out: *mut u8,
    out_len: usize,
) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL (caller's contract).
        let key = unsafe { handle::arg(subscriber) }?.publisher_public_key();
        // SAFETY: `out` holds `out_len` writable bytes (caller's contract).
        unsafe { util::write_key(key.as_bytes(), out, out_len, "out") }
    })
}

/// Leaves the topic (the publisher rotates its key). Idempotent; later
/// receives fail with SHMSOCK_CLOSED.
///
/// Errors: SHMSOCK_NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_close(subscriber: *mut shmsock_subscriber) -> shmsock_result {
    boundary!(|| {
        // SAFETY: a live subscriber or NULL.
        unsafe { handle::arg(subscriber) }?.close();
        Ok(())
    })
}

/// Frees a subscriber, leaving the topic. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn shmsock_subscriber_free(subscriber: *mut shmsock_subscriber) {
    // SAFETY: a subscriber from this library or NULL, not freed before.
    boundary!(|| unsafe { handle::free(subscriber) })
}

// Subscribing for event loops.
mod subscribing;

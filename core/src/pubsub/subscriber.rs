//! `Subscriber`: the receiving end of a topic once subscribed (the handshake
//! is `subscribing.rs`): maps its broadcast ring read-only, and opens each
//! message from a private copy with the group key.
//!
//! Reading message `seq`: copy its slot out between two looks at the slot's
//! stamp (see [`broadcast`](super::broadcast)); record the new position in the
//! cursor (freeing the slot for a reliable publisher); find the key of the
//! slot's epoch, reading any KEY records waiting on the control socket; open the
//! copy into the caller's buffer. A slot overwritten before or during the copy
//! is lag: the subscriber skips to the oldest message still in the ring and
//! says how many it lost. Any authentication failure or impossible value ends
//! the subscription.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cipher::{CipherSuite, RecvCipher};
use crate::error::{Error, ErrorKind, Result};
use crate::keys::PublicKey;
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake, Sleeper};
use crate::recv_buf::{self, RecvBuf};
use crate::stream::deadline_after;
use crate::wait::SpinHistory;

use super::broadcast::{Broadcast, SlotRead};
use super::cursor::{should_wake, Cursor, SleepWord};
use super::group_key::GroupKey;
use super::records::{self, ByeReason};

/// Keys kept for messages still unread from earlier epochs (a slow subscriber
/// of a reliable topic may meet many rotations before it reads their messages;
/// 80 bytes each).
const KEPT_KEYS: usize = 1024;
/// Most bytes of unparsed control records held at once.
pub(super) const INBOX_LIMIT: usize = 64 * 1024;

/// A received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The plaintext.
    pub data: Vec<u8>,
    /// Its sequence number on the topic.
    pub sequence: u64,
    /// Messages lost to lag just before this one (latest topics).
    pub lost: u64,
}

/// Where [`Subscriber::recv_into`] put a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Its length.
    pub len: usize,
    /// Its sequence number on the topic.
    pub sequence: u64,
    /// Messages lost to lag just before this one.
    pub lost: u64,
}

struct Rx {
    position: u64,
    keys: VecDeque<GroupKey>,
    recv: RecvCipher,
    inbox: Vec<u8>,
    bye: Option<(ByeReason, u64)>,
    hung_up: bool,
    failure: Option<Error>,
    sealed: Vec<u8>,
    lost_total: u64,
    received: u64,
    sleep: SleepWord,
    last_publisher_woken: u32,
    /// Whether spinning finds the publisher's messages (it does not when the
    /// publisher is slow or shares this core).
    spins: SpinHistory,
}

/// What the handshake hands over to [`Subscriber::established`].
pub(super) struct Established {
    pub(super) control: UnixStream,
    pub(super) credentials: Credentials,
    pub(super) publisher: PublicKey,
    pub(super) local: PublicKey,
    pub(super) broadcast: Broadcast,
    pub(super) publisher_wake: OwnedFd,
    pub(super) cursor: Cursor,
    pub(super) own_wake: OwnWake,
    pub(super) recv: RecvCipher,
    /// Control bytes read after the first key.
    pub(super) inbox: Vec<u8>,
    pub(super) first: GroupKey,
    /// The publisher's side of the socket was closed already.
    pub(super) hung_up: bool,
}

/// The receiving end of a topic.
pub struct Subscriber {
    control: UnixStream,
    publisher_wake: OwnedFd,
    broadcast: Broadcast,
    cursor: Cursor,
    sleeper: Sleeper,
    rx: Mutex<Rx>,
    closed: AtomicBool,
    /// The process that subscribed (see [`platform::Origin`]).
    origin: platform::Origin,
    topic: String,
    publisher: PublicKey,
    local: PublicKey,
    credentials: Credentials,
    spin: Duration,
    recv_timeout: Option<Duration>,
}

fn violation(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::ProtocolViolation, what)
}

impl Subscriber {
    /// The subscriber once its handshake (`subscribing.rs`) got the first
    /// group key.
    pub(super) fn established(name: &str, options: &Options, e: Established) -> Result<Subscriber> {
        let Established {
            control,
            credentials,
            publisher,
            local,
            broadcast,
            publisher_wake,
            cursor,
            own_wake,
            recv,
            inbox,
            first,
            hung_up,
        } = e;
        let position = first.first_seq;
        cursor.set_position(position)?;
        let sleeper = Sleeper::new(own_wake, control.as_fd())?;
        let rx = Rx {
            position,
            keys: VecDeque::from([first]),
            recv,
            inbox,
            bye: None,
            hung_up,
            failure: None,
            sealed: Vec::new(),
            lost_total: 0,
            received: 0,
            sleep: SleepWord::default(),
            last_publisher_woken: 0,
            spins: SpinHistory::default(),
        };
        Ok(Subscriber {
            control,
            publisher_wake,
            broadcast,
            cursor,
            sleeper,
            rx: Mutex::new(rx),
            closed: AtomicBool::new(false),
            origin: platform::Origin::here(),
            topic: name.to_string(),
            publisher,
            local,
            credentials,
            spin: options.spin,
            recv_timeout: options.recv_timeout,
        })
    }

    // -------------------------------------------------------------- receiving

    /// Receives the next message, waiting up to the receive timeout.
    pub fn recv(&self) -> Result<Message> {
        self.recv_timeout(self.recv_timeout)
    }

    /// Receives the next message, waiting up to `timeout` (None: forever).
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Result<Message> {
        let mut data = Vec::new();
        let d = self.receive(&mut data, deadline_after(timeout), false)?;
        Ok(Message { data, sequence: d.sequence, lost: d.lost })
    }

    /// Receives the next message if one is there now; else WouldBlock (and the
    /// pollable fd becomes readable when one arrives).
    pub fn try_recv(&self) -> Result<Message> {
        let mut data = Vec::new();
        let d = self.receive(&mut data, None, true)?;
        Ok(Message { data, sequence: d.sequence, lost: d.lost })
    }

    /// Receives the next message into `buf`. A buffer too small gives
    /// BufferTooSmall with the size needed, and the message is kept (a latest
    /// topic may overwrite it meanwhile: then it counts as lost).
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<Delivery> {
        self.recv_into_timeout(buf, self.recv_timeout)
    }

    /// As [`recv_into`](Subscriber::recv_into), waiting up to `timeout`.
    pub fn recv_into_timeout(&self, buf: &mut [u8], timeout: Option<Duration>) -> Result<Delivery> {
        self.receive(buf, deadline_after(timeout), false)
    }

    /// As [`recv_into`](Subscriber::recv_into) without waiting.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<Delivery> {
        self.receive(buf, None, true)
    }

    /// Receives the next message into `buf`, which [`RecvBuf::prepare`] makes
    /// ready once the message's length is known, waiting until `deadline`
    /// (None: no limit). The message is the first `Delivery::len` bytes of
    /// `buf.bytes()`. An error from `prepare` keeps the message (as
    /// BufferTooSmall does for [`recv_into`](Subscriber::recv_into)).
    pub fn recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B, deadline: Option<Instant>) -> Result<Delivery> {
        self.receive(buf, deadline, false)
    }

    /// As [`recv_with`](Subscriber::recv_with) without waiting.
    pub fn try_recv_with<B: RecvBuf + ?Sized>(&self, buf: &mut B) -> Result<Delivery> {
        self.receive(buf, None, true)
    }

    fn receive<B: RecvBuf + ?Sized>(&self, out: &mut B, deadline: Option<Instant>, try_only: bool) -> Result<Delivery> {
        if self.origin.forked() {
            return Err(platform::Origin::forked_error("subscriber"));
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the subscriber was closed"));
        }
        let mut rx = if try_only {
            self.rx.try_lock().ok_or_else(|| Error::new(ErrorKind::WouldBlock, "another thread is receiving"))?
        } else {
            self.rx.lock()
        };
        let rx = &mut *rx;
        if let Some(e) = &rx.failure {
            return Err(e.clone());
        }
        match self.receive_locked(rx, out, deadline, try_only) {
            // Our own close ends a receive in progress as the socket's end
            // would: that is Closed, not the publisher gone.
            Err(e) if e.kind() != ErrorKind::Closed && self.closed.load(Ordering::Acquire) => {
                Err(Error::new(ErrorKind::Closed, "the subscriber was closed"))
            }
            Err(e) if e.kind().ends_connection() && e.kind() != ErrorKind::Closed => {
                rx.failure = Some(e.clone());
                platform::shutdown(self.control.as_fd());
                Err(e)
            }
            other => other,
        }
    }

    fn receive_locked<B: RecvBuf + ?Sized>(
        &self,
        rx: &mut Rx,
        out: &mut B,
        deadline: Option<Instant>,
        try_only: bool,
    ) -> Result<Delivery> {
        let mut lost = 0u64;
        let slots = u64::from(self.broadcast.geometry().slots);
        loop {
            // Records already read (with the first key, or before a wait) are
            // opened before anything else: their socket may not wake us again.
            if !rx.inbox.is_empty() {
                self.open_inbox(rx)?;
            }
            if let Some((reason, final_seq)) = rx.bye {
                if reason != ByeReason::Closed || rx.position >= final_seq {
                    return Err(reason.to_error(&self.topic));
                }
            }
            let seq = rx.position;
            match self.broadcast.read(seq, &mut rx.sealed)? {
                SlotRead::Ready { epoch, len } => {
                    out.prepare(len as usize)?;
                    // Checked before the slot is freed, so a short buffer keeps the message.
                    recv_buf::part(out, 0, len as usize)?;
                    // The copy is private now: free the slot before decrypting.
                    rx.position = seq + 1;
                    self.cursor.set_position(rx.position)?;
                    if let Ok(word) = self.broadcast.publisher_waiting() {
                        if should_wake(word, &mut rx.last_publisher_woken) {
                            platform::wake_peer(self.publisher_wake.as_fd());
                        }
                    }
                    if !rx.keys.iter().rev().any(|k| k.epoch == epoch) {
                        self.pump_control(rx)?;
                    }
                    let Some(key) = rx.keys.iter().rev().find(|k| k.epoch == epoch) else {
                        if let Some((reason, _)) = rx.bye {
                            return Err(reason.to_error(&self.topic));
                        }
                        if rx.hung_up {
                            return Err(self.gone());
                        }
                        return Err(violation(format!(
                            "published message {seq} names key epoch {epoch}, which the publisher never sent us"
                        )));
                    };
                    key.open(seq, &rx.sealed, recv_buf::part(out, 0, len as usize)?)?;
                    // Epochs never go back along the sequence: older keys are done.
                    while rx.keys.front().is_some_and(|k| k.epoch < epoch) {
                        rx.keys.pop_front();
                    }
                    rx.received += 1;
                    return Ok(Delivery { len: len as usize, sequence: seq, lost });
                }
                SlotRead::Overwritten => {
                    let written = self.broadcast.write_seq()?;
                    // An honest publisher overwrites message `seq` only while
                    // writing message `seq + slots` or later.
                    if written < seq.saturating_add(slots) {
                        return Err(violation(format!(
                            "the broadcast ring claims message {seq} was overwritten, but only {written} were published"
                        )));
                    }
                    let next = (seq + 1).max(written - slots);
                    lost += next - seq;
                    rx.lost_total += next - seq;
                    rx.position = next;
                    self.cursor.set_position(next)?;
                }
                SlotRead::NotYet => {
                    if try_only {
                        self.pump_control(rx)?;
                        if rx.bye.is_some() {
                            continue;
                        }
                        // Make the pollable fd report the next message: consume
                        // the old wake-ups, say we sleep, and look once more.
                        if let Ok(w) = self.sleeper.wait(Some(Duration::ZERO)) {
                            if w.control {
                                self.pump_control(rx)?;
                                // A BYE that came since the first look, maybe
                                // with the hang-up: the topic's end, not the
                                // publisher gone.
                                if rx.bye.is_some() {
                                    continue;
                                }
                            }
                        }
                        self.cursor.set_sleep_word(rx.sleep.arm())?;
                        if self.broadcast.looks_ready(rx.position)? {
                            self.cursor.set_sleep_word(rx.sleep.disarm())?;
                            continue;
                        }
                        if rx.hung_up {
                            return Err(self.gone());
                        }
                        return Err(Error::new(ErrorKind::WouldBlock, "no message yet"));
                    }
                    self.wait(rx, deadline)?;
                }
            }
        }
    }

    fn gone(&self) -> Error {
        Error::new(
            ErrorKind::PeerGone,
            format!("the publisher of '{}' exited or was killed without closing the topic", self.topic),
        )
    }

    /// Waits until message `rx.position` looks published, a control record
    /// arrives, or the deadline passes: a bounded spin, then sleep.
    fn wait(&self, rx: &mut Rx, deadline: Option<Instant>) -> Result<()> {
        if let Some(budget) = rx.spins.budget(self.spin) {
            let until = Instant::now() + budget;
            let mut rounds = 0u32;
            loop {
                std::hint::spin_loop();
                if self.broadcast.looks_ready(rx.position)? {
                    rx.spins.found();
                    return Ok(());
                }
                rounds += 1;
                if rounds % 64 == 0 && Instant::now() >= until {
                    break;
                }
            }
            rx.spins.missed();
        }
        self.cursor.set_sleep_word(rx.sleep.arm())?;
        let result = (|| {
            if self.broadcast.looks_ready(rx.position)? {
                return Ok(());
            }
            if rx.hung_up {
                return Err(self.gone());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::new(ErrorKind::Timeout, "recv timed out: no message was published"));
            }
            let woken = self.sleeper.wait(deadline.map(|d| d.saturating_duration_since(now)))?;
            if woken.control {
                self.pump_control(rx)?;
            }
            Ok(())
        })();
        // A receive that timed out stays armed, as try_recv does: whoever
        // polls the pollable fd next is woken by the next message.
        if !result.as_ref().is_err_and(|e| e.kind() == ErrorKind::Timeout) {
            self.cursor.set_sleep_word(rx.sleep.disarm())?;
        }
        result
    }

    /// Reads and opens every control record waiting on the socket (KEY, BYE),
    /// without blocking; notes end of stream.
    fn pump_control(&self, rx: &mut Rx) -> Result<()> {
        if !rx.hung_up && !platform::recv_available(self.control.as_fd(), &mut rx.inbox, INBOX_LIMIT)? {
            rx.hung_up = true;
        }
        self.open_inbox(rx)
    }

    /// Opens every whole record in the inbox.
    fn open_inbox(&self, rx: &mut Rx) -> Result<()> {
        let suite = self.broadcast.geometry().suite;
        let mut used_total = 0;
        while let Some((kind, plain, used)) = records::open_front(&rx.inbox[used_total..], &mut rx.recv)? {
            used_total += used;
            if kind == records::KEY {
                let key = GroupKey::decode(suite, &plain)?;
                if rx.keys.back().is_some_and(|k| key.epoch <= k.epoch) {
                    return Err(violation("the publisher sent a key for an epoch that is not new"));
                }
                rx.keys.push_back(key);
                if rx.keys.len() > KEPT_KEYS {
                    rx.keys.pop_front();
                }
            } else {
                rx.bye = Some(records::parse_bye(&plain)?);
            }
        }
        rx.inbox.drain(..used_total);
        Ok(())
    }

    // ---------------------------------------------------------------- closing

    /// Leaves the topic: the publisher sees the socket close and rotates its
    /// key. Idempotent; later calls fail with Closed.
    pub fn close(&self) {
        // (A child of fork() closes only its copy: the subscription is the parent's.)
        if !self.closed.swap(true, Ordering::AcqRel) && !self.origin.forked() {
            platform::shutdown(self.control.as_fd());
        }
    }

    // ------------------------------------------------------------ information

    /// Messages lost to lag so far (latest topics).
    pub fn lost(&self) -> u64 {
        self.rx.lock().lost_total
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.rx.lock().received
    }

    /// The sequence number of the next message this subscriber reads.
    pub fn position(&self) -> u64 {
        self.rx.lock().position
    }

    /// The newest key epoch received.
    pub fn epoch(&self) -> u64 {
        self.rx.lock().keys.back().map_or(0, |k| k.epoch)
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The publisher's static public key (the pinned one).
    pub fn publisher_public_key(&self) -> PublicKey {
        self.publisher
    }

    /// This side's static public key.
    pub fn local_public_key(&self) -> PublicKey {
        self.local
    }

    /// The publisher process's pid, uid and gid, from the kernel.
    pub fn publisher_credentials(&self) -> Credentials {
        self.credentials
    }

    /// The topic's AEAD.
    pub fn cipher(&self) -> CipherSuite {
        self.broadcast.geometry().suite
    }

    /// The topic's largest message.
    pub fn max_message_size(&self) -> u32 {
        self.broadcast.geometry().max_message
    }

    /// The pollable fd: readable when, after `try_recv` said WouldBlock, a
    /// message, a key, a close or the publisher's death is pending. An epoll
    /// set of this side's wake-up eventfd and the control socket.
    pub fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.sleeper.as_fd()
    }

    /// The broadcast segment's descriptor, as received (read-only). For tests
    /// of the segment's protection; nothing else needs it.
    #[doc(hidden)]
    pub fn broadcast_fd(&self) -> BorrowedFd<'_> {
        self.broadcast.fd()
    }

    /// Writes `position` into this subscriber's cursor as a hostile subscriber
    /// could. For tests of the publisher's validation; nothing else may call it.
    #[doc(hidden)]
    pub fn write_cursor_position(&self, position: u64) -> Result<()> {
        self.cursor.set_position(position)
    }

    /// Tries to open message `seq` from the ring with the keys held now, without
    /// reading the control socket or moving the position. For tests showing a
    /// removed subscriber's keys are useless on later messages.
    #[doc(hidden)]
    pub fn open_with_held_keys(&self, seq: u64) -> Result<Vec<u8>> {
        let rx = self.rx.lock();
        let mut sealed = Vec::new();
        match self.broadcast.read(seq, &mut sealed)? {
            SlotRead::Ready { epoch, len } => {
                let key = rx.keys.iter().rev().find(|k| k.epoch == epoch).or(rx.keys.back());
                let key = key.ok_or_else(|| violation("no key held"))?;
                let mut out = vec![0u8; len as usize];
                // With another epoch's key this fails authentication, as it must.
                let relabelled = GroupKey { epoch, first_seq: key.first_seq, key: key.key.clone(), suite: key.suite };
                relabelled.open(seq, &sealed, &mut out)?;
                Ok(out)
            }
            other => Err(violation(format!("message {seq} is not in the ring ({other:?})"))),
        }
    }
}

impl AsRawFd for Subscriber {
    fn as_raw_fd(&self) -> RawFd {
        self.pollable_fd().as_raw_fd()
    }
}

impl AsFd for Subscriber {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pollable_fd()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("topic", &self.topic)
            .field("publisher", &self.publisher.fingerprint())
            .field("cipher", &self.cipher())
            .finish()
    }
}

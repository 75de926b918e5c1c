//! `Publisher`: binds a topic, admits subscribers, seals each message once into
//! the broadcast ring, rotates the group key, and deals with slow subscribers.
//!
//! A background thread watches the listening socket and every subscriber's
//! control socket: a new connection gets its handshake on a short-lived thread
//! of its own (so a silent client delays nobody), and a closed socket means the
//! subscriber left, which rotates the key at once. Publishing never waits for
//! that thread; the two share one lock over the topic's state, held briefly.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustix::event::PollFlags;

use crate::cipher::{CipherSuite, SendCipher};
use crate::control;
use crate::endpoint::{self, Bound};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{Backend, RejectReason, Responder, ServerPolicy, MIN_RING_SIZE, SUPPORTED_VERSIONS};
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake, Poller, WAKE_TOKEN};
use crate::sodium;

use super::broadcast::{Broadcast, Geometry};
use super::cursor::{should_wake, Cursor, SleepWord};
use super::group_key::GroupKey;
use super::records::{self, ByeReason};
use super::{SlowSubscribers, TopicOptions};

mod admission;

/// Poller token of the listening socket.
const LISTENER_TOKEN: u64 = u64::MAX - 1;

/// A subscriber as the publisher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// The publisher's number for it, for [`Publisher::remove`].
    pub id: u64,
    /// Its static public key, authenticated by the handshake.
    pub public_key: PublicKey,
    /// Its process, per the kernel.
    pub credentials: Credentials,
    /// The sequence number it started at.
    pub joined_at: u64,
}

struct Member {
    info: SubscriberInfo,
    socket: UnixStream,
    cursor: Cursor,
    wake: OwnedFd,
    sender: SendCipher,
    last_woken: u32,
}

struct State {
    next_seq: u64,
    key: GroupKey,
    members: Vec<Member>,
    next_id: u64,
    scratch: Vec<u8>,
    /// A lower bound of every member's position (reliable topics).
    min_position: u64,
    sleep: SleepWord,
    last_rotation: Instant,
    dropped: u64,
    closed: bool,
    /// Since when a reliable topic's try_publish has found no room.
    blocked_since: Option<Instant>,
}

struct Shared {
    topic: String,
    bound: Bound,
    keypair: Keypair,
    options: Options,
    topic_options: TopicOptions,
    policy: ServerPolicy,
    broadcast: Broadcast,
    own_wake: OwnWake,
    /// Signalled when a subscriber joins or leaves, or the topic closes (see
    /// `membership_fd`).
    membership: OwnWake,
    poller: Poller,
    state: Mutex<State>,
    /// Notified with `membership` (see `membership_changed`).
    changed: Condvar,
    closed: AtomicBool,
    admissions: Mutex<admission::Admissions>,
}

/// The publishing end of a topic. Dropping it closes the topic.
pub struct Publisher {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The process that bound the topic (see [`platform::Origin`]).
    origin: platform::Origin,
}

impl Publisher {
    /// Binds topic `name` with the default [`TopicOptions`]. `options.keypair`
    /// is required (subscribers pin its public key); `allowed_clients`,
    /// `allowed_uids`, `handshake_timeout`, `max_pending_handshakes` (and per
    /// uid), `spin` and `require_chacha` apply as for a listener.
    pub fn bind(name: &str, options: &Options) -> Result<Publisher> {
        Publisher::bind_with(name, options, &TopicOptions::default())
    }

    /// Binds topic `name` with the given topic shape and policy.
    pub fn bind_with(name: &str, options: &Options, topic: &TopicOptions) -> Result<Publisher> {
        sodium::init()?;
        options.validate()?;
        if !cfg!(target_os = "linux") {
            return Err(Error::new(ErrorKind::InvalidArgument, "publish/subscribe needs Linux memfd seals"));
        }
        let keypair = options.keypair.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "a publisher needs a keypair (Options::keypair): subscribers pin its public key",
            )
        })?;
        if topic.max_subscribers == 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "max_subscribers must be at least 1"));
        }
        if let SlowSubscribers::Reliable { timeout } = topic.policy {
            if timeout.is_zero() {
                return Err(Error::new(ErrorKind::InvalidArgument, "a reliable topic needs a positive timeout"));
            }
        }
        let suite = CipherSuite::local_offer(options.require_chacha)[0];
        let geometry = Geometry { slots: topic.slots, max_message: topic.max_message_size, suite };
        let broadcast = Broadcast::create(geometry)?;
        let bound = endpoint::bind(name)?;
        let poller = Poller::new()?;
        poller.add(bound.listener.as_fd(), LISTENER_TOKEN)?;
        let policy = ServerPolicy {
            versions: SUPPORTED_VERSIONS.to_vec(),
            ciphers: vec![suite],
            max_message: topic.max_message_size,
            ring_size: MIN_RING_SIZE,
            allowed: options.allowed_clients.clone(),
            backend: Backend::Memfd,
        };
        let state = State {
            next_seq: 0,
            key: GroupKey::generate(suite, 1, 0),
            members: Vec::new(),
            next_id: 0,
            scratch: Vec::new(),
            min_position: 0,
            sleep: SleepWord::default(),
            last_rotation: Instant::now(),
            dropped: 0,
            closed: false,
            blocked_since: None,
        };
        let shared = Arc::new(Shared {
            topic: name.to_string(),
            bound,
            keypair,
            options: options.clone(),
            topic_options: topic.clone(),
            policy,
            broadcast,
            own_wake: OwnWake::new()?,
            membership: OwnWake::new()?,
            poller,
            state: Mutex::new(state),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            admissions: Mutex::new(admission::Admissions::new(options)),
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("shmsock-pub-{name}"))
            .spawn(move || admission::control_loop(&for_thread))
            .map_err(|e| Error::io("starting the publisher's thread", e))?;
        Ok(Publisher { shared, thread: Mutex::new(Some(thread)), origin: platform::Origin::here() })
    }

    /// Seals `message` once into the ring for every subscriber. A reliable topic
    /// waits for room, at most its timeout, then drops the subscribers in the
    /// way; a latest topic never waits. Publishing with no subscribers is fine
    /// (the message is sealed for whoever is subscribed: nobody).
    pub fn publish(&self, message: &[u8]) -> Result<()> {
        let sh = &*self.shared;
        self.check_usable()?;
        // Before any wait: a message that cannot be published must not hold
        // the topic up, nor get a slow subscriber dropped.
        self.check_size(message.len())?;
        let mut st = sh.state.lock();
        let seq = st.next_seq;
        if let SlowSubscribers::Reliable { timeout } = sh.topic_options.policy {
            sh.make_room(&mut st, seq, timeout)?;
        }
        sh.write(&mut st, seq, message)
    }

    /// Publishes `message` if the ring has room now, never waiting: for event
    /// loops. On a reliable topic whose slowest subscriber still holds the
    /// oldest slot it fails with WouldBlock and publishes nothing; the
    /// [`pollable_fd`](Publisher::pollable_fd) then becomes readable when a
    /// subscriber moves on or leaves. Once the topic's timeout has passed since
    /// the first such WouldBlock ([`publish_deadline`](Publisher::publish_deadline)),
    /// the next call drops the subscribers still in the way and publishes, as
    /// [`publish`](Publisher::publish) does after waiting. A latest topic
    /// never blocks. Do not mix with a blocking `publish` on another thread:
    /// each may take the other's wake-up.
    pub fn try_publish(&self, message: &[u8]) -> Result<()> {
        let sh = &*self.shared;
        self.check_usable()?;
        self.check_size(message.len())?;
        // The wake-up that brought the caller here is used up now.
        sh.own_wake.drain();
        let mut st = sh.state.lock();
        let seq = st.next_seq;
        if let SlowSubscribers::Reliable { timeout } = sh.topic_options.policy {
            if !sh.has_room(&mut st, seq) {
                let since = *st.blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < timeout {
                    // Armed before the last look: a subscriber moving on after
                    // it wakes the pollable fd.
                    let word = st.sleep.arm();
                    let _ = sh.broadcast.set_publisher_waiting(word);
                    if !sh.has_room(&mut st, seq) {
                        return Err(Error::new(
                            ErrorKind::WouldBlock,
                            "the slowest subscriber still holds the oldest slot; nothing was published",
                        ));
                    }
                } else {
                    let slots = u64::from(sh.broadcast.geometry().slots);
                    let behind = sh.laggards(&mut st, seq, slots);
                    sh.drop_members(&mut st, &behind, ByeReason::TooSlow);
                    sh.rotate(&mut st);
                }
            }
            let _ = sh.broadcast.set_publisher_waiting(st.sleep.disarm());
        }
        sh.write(&mut st, seq, message)
    }

    /// When a reliable topic's [`try_publish`](Publisher::try_publish), blocked
    /// since its first WouldBlock, will drop the subscribers in its way: an
    /// event loop's timer. None when no publish is blocked.
    pub fn publish_deadline(&self) -> Option<Instant> {
        let SlowSubscribers::Reliable { timeout } = self.shared.topic_options.policy else { return None };
        self.shared.state.lock().blocked_since.map(|since| since + timeout)
    }

    /// Readable when a blocked [`try_publish`](Publisher::try_publish) may
    /// succeed: a subscriber moved on or left. For poll/epoll and event loops;
    /// do not read it (try_publish does).
    pub fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.shared.own_wake.as_fd()
    }

    /// MessageTooLarge when a message of `len` bytes exceeds the topic's
    /// maximum, which [`publish`](Publisher::publish) would refuse.
    pub fn check_size(&self, len: usize) -> Result<()> {
        self.shared.broadcast.check_len(len).map(drop)
    }

    /// Err in a child of `fork()`, or once the topic is closed.
    fn check_usable(&self) -> Result<()> {
        if self.origin.forked() {
            return Err(platform::Origin::forked_error("publisher"));
        }
        self.shared.check_open()
    }

    /// The subscribers now.
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        self.shared.state.lock().members.iter().map(|m| m.info.clone()).collect()
    }

    /// How many subscribers there are now.
    pub fn subscriber_count(&self) -> usize {
        self.shared.state.lock().members.len()
    }

    /// Waits until at least `n` subscribers are connected, up to `timeout`.
    pub fn wait_for_subscribers(&self, n: usize, timeout: Option<Duration>) -> Result<()> {
        let deadline = crate::stream::deadline_after(timeout);
        let mut st = self.shared.state.lock();
        while st.members.len() < n {
            if st.closed {
                return Err(Error::new(ErrorKind::Closed, "the topic was closed"));
            }
            match deadline {
                Some(d) => {
                    if self.shared.changed.wait_until(&mut st, d).timed_out() && st.members.len() < n {
                        return Err(Error::new(
                            ErrorKind::Timeout,
                            format!("{} of {n} subscribers connected in time", st.members.len()),
                        ));
                    }
                }
                None => self.shared.changed.wait(&mut st),
            }
        }
        Ok(())
    }

    /// For event loops, what [`wait_for_subscribers`](Publisher::wait_for_subscribers)
    /// does without blocking: true when at least `n` subscribers are
    /// connected. Else false, and [`membership_fd`](Publisher::membership_fd)
    /// becomes readable at the next join or departure: call again then.
    /// Closed once the topic was closed.
    pub fn try_wait_for_subscribers(&self, n: usize) -> Result<bool> {
        // Drained before looking, so a change after the look signals again.
        self.shared.membership.drain();
        let st = self.shared.state.lock();
        if st.members.len() >= n {
            return Ok(true);
        }
        if st.closed {
            return Err(Error::new(ErrorKind::Closed, "the topic was closed"));
        }
        Ok(false)
    }

    /// Readable after a subscriber joined or left, or the topic closed, since
    /// the last [`try_wait_for_subscribers`](Publisher::try_wait_for_subscribers).
    /// For poll/epoll and event loops; do not read it.
    pub fn membership_fd(&self) -> BorrowedFd<'_> {
        self.shared.membership.as_fd()
    }

    /// Removes a subscriber: it gets a BYE, its socket is closed, and the group
    /// key is rotated before this returns, so nothing published afterwards is
    /// readable with what it holds.
    pub fn remove(&self, id: u64) -> Result<()> {
        let sh = &*self.shared;
        let mut st = sh.state.lock();
        if !st.members.iter().any(|m| m.info.id == id) {
            return Err(Error::new(ErrorKind::NotFound, format!("no subscriber {id} on topic '{}'", sh.topic)));
        }
        sh.drop_members(&mut st, &[id], ByeReason::Removed);
        sh.rotate(&mut st);
        Ok(())
    }

    /// Rotates the group key now (it also rotates on every departure and on the
    /// topic's schedule).
    pub fn rotate_key(&self) -> Result<()> {
        let sh = &*self.shared;
        let mut st = sh.state.lock();
        sh.rotate(&mut st);
        Ok(())
    }

    /// The current key epoch (1, then +1 per rotation).
    pub fn epoch(&self) -> u64 {
        self.shared.state.lock().key.epoch
    }

    /// The number of messages published.
    pub fn sequence(&self) -> u64 {
        self.shared.state.lock().next_seq
    }

    /// How many subscribers were dropped for falling behind a reliable topic
    /// or for a bad cursor.
    pub fn dropped_count(&self) -> u64 {
        self.shared.state.lock().dropped
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// The publisher's public key, which subscribers pin.
    pub fn public_key(&self) -> PublicKey {
        *self.shared.keypair.public()
    }

    /// The topic's AEAD.
    pub fn cipher(&self) -> CipherSuite {
        self.shared.broadcast.geometry().suite
    }

    /// The largest message.
    pub fn max_message_size(&self) -> u32 {
        self.shared.broadcast.geometry().max_message
    }

    /// Writes `bytes` at `offset` of the broadcast segment through the
    /// publisher's own mapping, the only writable one: for tests that play a
    /// hostile publisher. Nothing else may call it.
    #[doc(hidden)]
    pub fn tamper(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.shared.broadcast.tamper(offset, bytes)
    }

    /// The broadcast segment's size in bytes (for the same tests).
    #[doc(hidden)]
    pub fn segment_len(&self) -> u64 {
        self.shared.broadcast.geometry().total()
    }

    /// Closes the topic: subscribers get every message published so far, then
    /// PeerClosed; the name is free at once. Idempotent.
    pub fn close(&self) {
        let sh = &*self.shared;
        if sh.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.origin.forked() {
            // A child of fork() closes only its copy: the topic, its
            // subscribers and its thread are the parent's (joining a thread
            // this process does not have would never return).
            std::mem::forget(self.thread.lock().take());
            return;
        }
        {
            let mut st = sh.state.lock();
            st.closed = true;
            let ids: Vec<u64> = st.members.iter().map(|m| m.info.id).collect();
            sh.drop_members(&mut st, &ids, ByeReason::Closed);
            sh.membership_changed();
        }
        sh.bound.release();
        sh.poller.notify();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("topic", &self.shared.topic).finish()
    }
}

impl Shared {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, format!("the topic '{}' was closed", self.topic)));
        }
        Ok(())
    }

    /// Seals message `seq` into its slot (the caller made room) and wakes the
    /// subscribers that sleep.
    fn write(&self, st: &mut State, seq: u64, message: &[u8]) -> Result<()> {
        self.broadcast.write(seq, &st.key, message, &mut st.scratch)?;
        st.next_seq = seq + 1;
        st.blocked_since = None;
        for m in &mut st.members {
            if let Ok(word) = m.cursor.sleep_word() {
                if should_wake(word, &mut m.last_woken) {
                    platform::wake_peer(m.wake.as_fd());
                }
            }
        }
        Ok(())
    }

    /// Reliable topics: whether message `seq`'s slot may be reused now (every
    /// member has read message `seq - slots`).
    fn has_room(&self, st: &mut State, seq: u64) -> bool {
        let slots = u64::from(self.broadcast.geometry().slots);
        seq < slots || seq - st.min_position < slots || self.laggards(st, seq, slots).is_empty()
    }

    /// Reliable topics: waits until every member has read message
    /// `seq - slots`, so its slot may be reused, dropping the members still in
    /// the way when `timeout` passes.
    fn make_room(&self, st: &mut parking_lot::MutexGuard<'_, State>, seq: u64, timeout: Duration) -> Result<()> {
        let slots = u64::from(self.broadcast.geometry().slots);
        if seq < slots || seq - st.min_position < slots {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let spin_until = Instant::now() + self.options.spin;
        loop {
            let behind = self.laggards(st, seq, slots);
            if behind.is_empty() {
                return Ok(());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::new(ErrorKind::Closed, "the topic was closed"));
            }
            let now = Instant::now();
            if now >= deadline {
                self.drop_members(st, &behind, ByeReason::TooSlow);
                self.rotate(st);
                continue;
            }
            if now < spin_until {
                parking_lot::MutexGuard::unlocked(st, std::hint::spin_loop);
                continue;
            }
            let word = st.sleep.arm();
            let _ = self.broadcast.set_publisher_waiting(word);
            if self.laggards(st, seq, slots).is_empty() {
                let _ = self.broadcast.set_publisher_waiting(st.sleep.disarm());
                return Ok(());
            }
            parking_lot::MutexGuard::unlocked(st, || {
                let _ = platform::wait_fd(self.own_wake.as_fd(), PollFlags::IN, Some(deadline));
                self.own_wake.drain();
            });
            let _ = self.broadcast.set_publisher_waiting(st.sleep.disarm());
        }
    }

    /// The members that have not read message `seq - slots` yet; members whose
    /// cursor is impossible are dropped on the spot. Updates the cached minimum.
    fn laggards(&self, st: &mut State, seq: u64, slots: u64) -> Vec<u64> {
        let mut behind = Vec::new();
        let mut bad = Vec::new();
        let mut min = seq;
        for m in &st.members {
            match m.cursor.position() {
                // A position beyond what was published is impossible.
                Ok(p) if p > seq => bad.push(m.info.id),
                Ok(p) => {
                    let p = p.max(m.info.joined_at);
                    min = min.min(p);
                    if seq - p >= slots {
                        behind.push(m.info.id);
                    }
                }
                Err(_) => bad.push(m.info.id),
            }
        }
        if !bad.is_empty() {
            self.drop_members(st, &bad, ByeReason::Violation);
            self.rotate(st);
        }
        st.min_position = min;
        behind
    }

    /// Ends these members' subscriptions: a BYE (best effort), then the socket
    /// is shut down. The caller rotates the key.
    fn drop_members(&self, st: &mut State, ids: &[u64], reason: ByeReason) {
        let final_seq = st.next_seq;
        let mut kept = Vec::with_capacity(st.members.len());
        for mut m in std::mem::take(&mut st.members) {
            if !ids.contains(&m.info.id) {
                kept.push(m);
                continue;
            }
            if let Ok(bye) = records::seal(records::BYE, &mut m.sender, &records::bye_plaintext(reason, final_seq)) {
                let _ = platform::send_now(m.socket.as_fd(), &bye);
            }
            self.poller.remove(m.socket.as_fd());
            platform::shutdown(m.socket.as_fd());
            if matches!(reason, ByeReason::TooSlow | ByeReason::Violation) {
                st.dropped += 1;
            }
        }
        st.members = kept;
        st.min_position = 0;
        self.membership_changed();
    }

    /// Wakes whoever waits for subscribers: threads in `wait_for_subscribers`
    /// and event loops watching `membership_fd`.
    fn membership_changed(&self) {
        self.changed.notify_all();
        platform::wake_peer(self.membership.for_peer());
    }

    /// A new epoch: a fresh key for every message from now on, sent to each
    /// remaining member before any message is sealed under it. A member whose
    /// socket cannot take the KEY record now is dropped (it could not read on).
    fn rotate(&self, st: &mut State) {
        let suite = st.key.suite;
        st.key = GroupKey::generate(suite, st.key.epoch + 1, st.next_seq);
        st.last_rotation = Instant::now();
        let plain = st.key.encode();
        let (mut full, mut gone) = (Vec::new(), Vec::new());
        for m in &mut st.members {
            let sent = records::seal(records::KEY, &mut m.sender, plain.expose())
                .and_then(|rec| platform::send_now(m.socket.as_fd(), &rec));
            match sent {
                Ok(()) => {}
                // It left meanwhile (its departure is not yet processed).
                Err(e) if e.kind() == ErrorKind::PeerGone => gone.push(m.info.id),
                Err(_) => full.push(m.info.id),
            }
        }
        // They never got this key: no further rotation is needed.
        if !gone.is_empty() {
            self.drop_members(st, &gone, ByeReason::Removed);
        }
        if !full.is_empty() {
            self.drop_members(st, &full, ByeReason::TooSlow);
        }
    }
}

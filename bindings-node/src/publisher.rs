//! `NativePublisher`: the publishing end of a topic (wrapped by the JavaScript
//! `Publisher` class).
//!
//! Publishing never waits and uses no thread: it is the core's `try_publish`,
//! on the JavaScript thread. When a reliable topic's ring is full (its slowest
//! subscriber still holds the oldest slot), the message waits, in order, in the
//! publisher's queue; a libuv poll handle on the publisher's pollable fd
//! (readable when a subscriber moves on or leaves) publishes what waits, and
//! the JavaScript layer calls `flush` at `publishDeadline`, when the core drops
//! the subscribers still in the way. `waitForSubscribers` watches the
//! publisher's membership fd (readable when a subscriber joins or leaves)
//! with a second poll handle while someone waits; its timeout and abort are
//! the JavaScript layer's, which cancel the wait.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Publisher, SlowSubscribers, TopicOptions};

use crate::dispatch::{lock, Event};
use crate::errors::{closed, js_error, to_js, Code};
use crate::keys::JsKeypair;
use crate::native_stream::PeerCredentials;
use crate::options::{millis, to_core, NativeOptions};
use crate::uv::{deliver, Poll, Ready};

/// The shape and policy of a topic (checked by the JavaScript layer; times in ms).
#[napi(object)]
pub struct NativeTopicOptions {
    /// Slots in the ring (a power of two).
    pub slots: Option<u32>,
    /// The largest message.
    pub max_message_size: Option<u32>,
    /// `reliable` or `latest`.
    pub policy: Option<String>,
    /// How long a reliable publish waits for a slow subscriber.
    pub reliable_timeout: Option<f64>,
    /// Time between scheduled key rotations.
    pub rekey_interval: Option<f64>,
    /// No scheduled key rotation (only on departures and `rotateKey`).
    pub no_rekey: Option<bool>,
    /// Most subscribers at once.
    pub max_subscribers: Option<u32>,
}

fn topic_options(opts: Option<NativeTopicOptions>) -> napi::Result<TopicOptions, Code> {
    let mut t = TopicOptions::new();
    let Some(o) = opts else { return Ok(t) };
    if let Some(slots) = o.slots {
        t = t.slots(slots);
    }
    if let Some(size) = o.max_message_size {
        t = t.max_message_size(size);
    }
    let timeout = o.reliable_timeout.map(|ms| millis(ms, "reliableTimeout")).transpose()?;
    match o.policy.as_deref() {
        None | Some("reliable") => {
            if let Some(timeout) = timeout {
                t = t.policy(SlowSubscribers::Reliable { timeout });
            }
        }
        Some("latest") => t = t.policy(SlowSubscribers::Latest),
        Some(other) => {
            return Err(js_error(
                ErrorKind::InvalidArgument,
                format!("policy must be 'reliable' or 'latest', not '{other}'"),
            ))
        }
    }
    if o.no_rekey == Some(true) {
        t = t.rekey_interval(None);
    } else if let Some(ms) = o.rekey_interval {
        t = t.rekey_interval(Some(millis(ms, "rekeyInterval")?));
    }
    if let Some(n) = o.max_subscribers {
        t = t.max_subscribers(n as usize);
    }
    Ok(t)
}

/// A subscriber as the publisher sees it.
#[napi(object)]
pub struct SubscriberInfo {
    /// The publisher's number for it, for `remove`.
    pub id: i64,
    /// Its static public key (32 bytes), proven by the handshake.
    pub public_key: Buffer,
    /// Its process, per the kernel.
    pub credentials: PeerCredentials,
    /// The sequence number of the first message it can read.
    pub joined_at: f64,
}

/// Messages waiting for room in a reliable topic's ring, oldest first, and
/// the poll handle that says when to try again.
#[derive(Default)]
struct PubState {
    closed: bool,
    waiting: VecDeque<(i64, Vec<u8>)>,
    poll: Option<Poll>,
    /// `waitForSubscribers` calls still waiting: (op, how many).
    member_waits: Vec<(i64, usize)>,
    /// On the membership fd, while someone waits.
    member_poll: Option<Poll>,
}

/// What the membership poll handle serves.
struct Membership(Arc<Shared>);

impl Ready for Membership {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let shared = &self.0;
        let mut st = lock(&shared.st);
        if !st.closed {
            shared.serve_member_waits(&mut st, events);
            shared.update_member_poll(&mut st);
        }
    }
}

struct Shared {
    publisher: Publisher,
    st: Mutex<PubState>,
}

impl Ready for Shared {
    fn ready(self: Arc<Self>, events: &mut Vec<Event>) {
        let mut st = lock(&self.st);
        if !st.closed {
            self.flush(&mut st, events);
            self.update_poll(&mut st);
        }
    }
}

impl Shared {
    /// Publishes what waits, in order, until the ring is full again.
    fn flush(&self, st: &mut PubState, events: &mut Vec<Event>) {
        while let Some((op, message)) = st.waiting.front() {
            let op = *op;
            match self.publisher.try_publish(message) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Ok(()) => events.push(Event::Done { op }),
                Err(error) => events.push(Event::Failed { op, error }),
            }
            st.waiting.pop_front();
        }
    }

    /// Completes the `waitForSubscribers` calls that enough subscribers met
    /// (all of them, failed, once the topic was closed).
    fn serve_member_waits(&self, st: &mut PubState, events: &mut Vec<Event>) {
        // Drains the membership fd first, so a change after the count below
        // makes it readable again.
        if let Err(error) = self.publisher.try_wait_for_subscribers(usize::MAX) {
            for (op, _) in st.member_waits.drain(..) {
                events.push(Event::Failed { op, error: error.clone() });
            }
            return;
        }
        let count = self.publisher.subscriber_count();
        st.member_waits.retain(|&(op, n)| {
            if n <= count {
                events.push(Event::Done { op });
            }
            n > count
        });
    }

    /// Watches the membership fd, and keeps the process alive, while a
    /// `waitForSubscribers` waits.
    fn update_member_poll(self: &Arc<Self>, st: &mut PubState) {
        let watch = !st.closed && !st.member_waits.is_empty();
        if st.member_poll.is_none() {
            if !watch {
                return;
            }
            let ready: Arc<dyn Ready> = Arc::new(Membership(Arc::clone(self)));
            match Poll::new(self.publisher.membership_fd().as_raw_fd(), ready) {
                Ok(poll) => st.member_poll = Some(poll),
                Err(_) => return,
            }
        }
        if let Some(poll) = st.member_poll.as_mut() {
            poll.set(watch, watch);
        }
    }

    /// Watches the pollable fd, and keeps the process alive, while messages
    /// wait. Creates the poll handle on first use.
    fn update_poll(self: &Arc<Self>, st: &mut PubState) {
        let watch = !st.closed && !st.waiting.is_empty();
        if st.poll.is_none() {
            if !watch {
                return;
            }
            // The fd outlives the handle: `close` closes the handle before the
            // publisher can be dropped.
            match Poll::new(self.publisher.pollable_fd().as_raw_fd(), Arc::clone(self) as Arc<dyn Ready>) {
                Ok(poll) => st.poll = Some(poll),
                Err(_) => return,
            }
        }
        if let Some(poll) = st.poll.as_mut() {
            poll.set(watch, watch);
        }
    }
}

/// Internal: the publishing end of a topic (wrapped by the JavaScript `Publisher`).
#[napi]
pub struct NativePublisher {
    shared: Arc<Shared>,
    reliable: bool,
}

impl Drop for NativePublisher {
    /// Garbage-collected without `close()`: close the topic (pending publishes
    /// keep the JavaScript object reachable, so none is pending).
    fn drop(&mut self) {
        self.close_now();
    }
}

impl NativePublisher {
    /// Closes the topic; returns the ops of the messages still waiting (the
    /// caller fails them with CLOSED).
    fn close_now(&self) -> Vec<i64> {
        let mut st = lock(&self.shared.st);
        if st.closed {
            return Vec::new();
        }
        st.closed = true;
        let mut ops: Vec<i64> = st.waiting.drain(..).map(|(op, _)| op).collect();
        ops.extend(st.member_waits.drain(..).map(|(op, _)| op));
        if let Some(poll) = st.poll.take() {
            poll.close();
        }
        if let Some(poll) = st.member_poll.take() {
            poll.close();
        }
        drop(st);
        // Subscribers get what was published, then PeerClosed.
        self.shared.publisher.close();
        ops
    }

    fn check_open(&self) -> Result<(), CoreError> {
        if lock(&self.shared.st).closed {
            return Err(closed("publisher"));
        }
        Ok(())
    }
}

#[napi]
impl NativePublisher {
    /// Binds topic `name` with `keypair` as the publisher's identity.
    #[napi(factory)]
    pub fn bind(
        name: String,
        keypair: &JsKeypair,
        options: Option<NativeOptions>,
        topic: Option<NativeTopicOptions>,
    ) -> napi::Result<NativePublisher, Code> {
        let (options, _) = to_core(Some(keypair), options)?;
        let topic = topic_options(topic)?;
        let reliable = matches!(topic.policy, SlowSubscribers::Reliable { .. });
        let publisher = Publisher::bind_with(&name, &options, &topic).map_err(to_js)?;
        let shared = Arc::new(Shared { publisher, st: Mutex::new(PubState::default()) });
        Ok(NativePublisher { shared, reliable })
    }

    /// Publishes `data`: returns true when it is in the ring now, else false
    /// and completes `op` once it is (a reliable topic's ring is full; in
    /// order with earlier publishes).
    #[napi]
    pub fn publish(&self, op: i64, data: Buffer) -> napi::Result<bool, Code> {
        let mut st = lock(&self.shared.st);
        if st.closed {
            return Err(to_js(closed("publisher")));
        }
        if st.waiting.is_empty() {
            match self.shared.publisher.try_publish(&data) {
                Ok(()) => return Ok(true),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(to_js(e)),
            }
        } else {
            // Refused now rather than when its turn comes: the caller learns at once.
            self.shared.publisher.check_size(data.len()).map_err(to_js)?;
        }
        st.waiting.push_back((op, data.to_vec()));
        self.shared.update_poll(&mut st);
        Ok(false)
    }

    /// Publishes what waits as far as the ring allows; past the topic's
    /// deadline the core drops the subscribers in the way first. Called by
    /// the JavaScript layer's timer at `publishDeadline`.
    #[napi]
    pub fn flush(&self) {
        let mut st = lock(&self.shared.st);
        if st.closed {
            return;
        }
        let mut events = Vec::new();
        self.shared.flush(&mut st, &mut events);
        self.shared.update_poll(&mut st);
        drop(st);
        deliver(events);
    }

    /// Milliseconds until a blocked publish makes the core drop the
    /// subscribers in its way (0: flush now); null when nothing waits.
    #[napi(getter)]
    pub fn publish_deadline(&self) -> Option<f64> {
        if lock(&self.shared.st).waiting.is_empty() {
            return None;
        }
        let deadline = self.shared.publisher.publish_deadline()?;
        Some(deadline.saturating_duration_since(Instant::now()).as_secs_f64() * 1000.0)
    }

    /// Waits until `n` subscribers are connected: true when they are now,
    /// else completes `op` once they are (the membership fd says when to
    /// look). The JavaScript layer's timeout and abort call
    /// `cancel_wait_for_subscribers`.
    #[napi]
    pub fn wait_for_subscribers(&self, op: i64, n: u32) -> napi::Result<bool, Code> {
        self.check_open().map_err(to_js)?;
        if self.shared.publisher.try_wait_for_subscribers(n as usize).map_err(to_js)? {
            return Ok(true);
        }
        let mut st = lock(&self.shared.st);
        st.member_waits.push((op, n as usize));
        self.shared.update_member_poll(&mut st);
        Ok(false)
    }

    /// Gives up waiting `op` (timeout, abort): false if it completed.
    #[napi]
    pub fn cancel_wait_for_subscribers(&self, op: i64) -> bool {
        let mut st = lock(&self.shared.st);
        let before = st.member_waits.len();
        st.member_waits.retain(|&(o, _)| o != op);
        let cancelled = st.member_waits.len() != before;
        self.shared.update_member_poll(&mut st);
        cancelled
    }

    /// How many subscribers there are now.
    #[napi(getter)]
    pub fn subscriber_count(&self) -> u32 {
        self.shared.publisher.subscriber_count() as u32
    }

    /// The subscribers now.
    #[napi]
    pub fn subscribers(&self) -> Vec<SubscriberInfo> {
        self.shared
            .publisher
            .subscribers()
            .into_iter()
            .map(|s| SubscriberInfo {
                id: s.id as i64,
                public_key: Buffer::from(s.public_key.as_bytes().to_vec()),
                credentials: PeerCredentials { pid: s.credentials.pid, uid: s.credentials.uid, gid: s.credentials.gid },
                joined_at: s.joined_at as f64,
            })
            .collect()
    }

    /// Removes subscriber `id` (it gets an error; the key is rotated first).
    #[napi]
    pub fn remove(&self, id: i64) -> napi::Result<(), Code> {
        self.check_open().map_err(to_js)?;
        let id = u64::try_from(id)
            .map_err(|_| js_error(ErrorKind::NotFound, format!("no subscriber {id} on this topic")))?;
        self.shared.publisher.remove(id).map_err(to_js)
    }

    /// Rotates the group key now.
    #[napi]
    pub fn rotate_key(&self) -> napi::Result<(), Code> {
        self.check_open().map_err(to_js)?;
        self.shared.publisher.rotate_key().map_err(to_js)
    }

    /// The current key epoch.
    #[napi(getter)]
    pub fn epoch(&self) -> f64 {
        self.shared.publisher.epoch() as f64
    }

    /// The number of messages published.
    #[napi(getter)]
    pub fn sequence(&self) -> f64 {
        self.shared.publisher.sequence() as f64
    }

    /// Subscribers dropped for falling behind a reliable topic (or a bad cursor).
    #[napi(getter)]
    pub fn dropped_count(&self) -> f64 {
        self.shared.publisher.dropped_count() as f64
    }

    /// The topic name.
    #[napi(getter)]
    pub fn topic(&self) -> String {
        self.shared.publisher.topic().to_string()
    }

    /// The publisher's public key (32 bytes), which subscribers pin.
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        Buffer::from(self.shared.publisher.public_key().as_bytes().to_vec())
    }

    /// The topic's AEAD: `aegis-128l` or `chacha20-poly1305`.
    #[napi(getter)]
    pub fn cipher(&self) -> String {
        self.shared.publisher.cipher().name().to_string()
    }

    /// The largest message.
    #[napi(getter)]
    pub fn max_message_size(&self) -> u32 {
        self.shared.publisher.max_message_size()
    }

    /// `reliable` or `latest`.
    #[napi(getter)]
    pub fn policy(&self) -> String {
        if self.reliable { "reliable" } else { "latest" }.to_string()
    }

    /// True once closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.shared.st).closed
    }

    /// Closes the topic: subscribers get what was published, then the end.
    /// Returns the ops of publishes that had not completed (fail them with
    /// SHMSOCK_CLOSED). Idempotent.
    #[napi]
    pub fn close(&self) -> Vec<i64> {
        self.close_now()
    }
}

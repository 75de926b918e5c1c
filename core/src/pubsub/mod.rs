//! Encrypted publish/subscribe: one publisher, many subscribers, each message
//! sealed once.
//!
//! A [`Publisher`] binds a topic name (the same namespace as stream endpoints)
//! and owns a *broadcast segment*: a ring of fixed-size slots in a memfd that
//! only it can write (sealed FUTURE_WRITE after it mapped it; see
//! [`broadcast`]). A [`Subscriber`] connects with the publisher's pinned key
//! through the same Noise IK handshake and allow-list as a stream, but with its
//! own record types ([`records`]), receives a read-only descriptor of the
//! broadcast segment and the current *group key* ([`group_key`]), and passes
//! the publisher a one-page *cursor segment* ([`cursor`]) that only it writes:
//! its read position and sleep word.
//!
//! Each message is sealed once under the group key, with its sequence number as
//! nonce, and every subscriber opens it from a private copy. The key is rotated
//! (a new epoch, a fresh random key) when a subscriber leaves or is removed,
//! since it keeps its mapping, and on a schedule; new keys go to the remaining
//! subscribers as KEY records sealed under each one's Noise session on the
//! control socket, always before the first message sealed under them.
//!
//! Slow subscribers ([`SlowSubscribers`]): *reliable* topics make the publisher
//! wait for the slowest subscriber, at most a timeout, after which that
//! subscriber is dropped with an error; *latest* topics overwrite the oldest
//! slot and never wait, and a subscriber that fell behind learns how many
//! messages it lost (a seqlock-style stamp per slot tells an overwritten slot
//! from a tampered one, so lag is never reported as tampering, and a torn or
//! stale message is never delivered).
//!
//! [`Subscriber::connect`] subscribes in one blocking call; event loops use
//! [`Subscribing`], the same handshake driven by readiness of one fd.
//!
//! Linux only (memfd seals); the named-segment backend has no equivalent of
//! FUTURE_WRITE, so topics do not offer it.

pub mod broadcast;
pub mod cursor;
pub mod group_key;
mod publisher;
pub mod records;
mod subscriber;
mod subscribing;

use std::time::Duration;

pub use publisher::{Publisher, SubscriberInfo};
pub use subscriber::{Delivery, Message, Subscriber};
pub use subscribing::{SubscribeProgress, Subscribing};

/// What a topic does when a subscriber falls behind by a whole ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowSubscribers {
    /// The publisher waits for the slowest subscriber, up to `timeout`, then
    /// drops the subscribers still in the way (they get an error saying so).
    Reliable {
        /// How long one publish may wait for room.
        timeout: Duration,
    },
    /// The ring overwrites its oldest slot; the publisher never waits, and a
    /// subscriber that fell behind is told how many messages it lost.
    Latest,
}

/// Default number of slots of a topic's ring.
pub const DEFAULT_SLOTS: u32 = 64;
/// Default largest message of a topic.
pub const DEFAULT_MAX_MESSAGE: u32 = 64 * 1024;
/// Default time between scheduled key rotations.
pub const DEFAULT_REKEY_INTERVAL: Duration = Duration::from_secs(600);
/// Default limit on subscribers of one topic.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 256;
/// Default wait of a reliable publisher for a slow subscriber.
pub const DEFAULT_RELIABLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shape and policy of a topic, chosen by the publisher.
#[derive(Clone, Debug)]
pub struct TopicOptions {
    /// Slots in the ring (a power of two, 2 to 65536).
    pub slots: u32,
    /// The largest message (each slot holds one whole message).
    pub max_message_size: u32,
    /// What happens to slow subscribers.
    pub policy: SlowSubscribers,
    /// Rotate the group key this often even if nobody leaves (None: only on leave).
    pub rekey_interval: Option<Duration>,
    /// Most subscribers at once.
    pub max_subscribers: usize,
}

impl Default for TopicOptions {
    fn default() -> TopicOptions {
        TopicOptions {
            slots: DEFAULT_SLOTS,
            max_message_size: DEFAULT_MAX_MESSAGE,
            policy: SlowSubscribers::Reliable { timeout: DEFAULT_RELIABLE_TIMEOUT },
            rekey_interval: Some(DEFAULT_REKEY_INTERVAL),
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
        }
    }
}

impl TopicOptions {
    /// The defaults: 64 slots of 64 KiB, reliable with a 5 s timeout, a new key
    /// every 10 minutes and on every departure.
    pub fn new() -> TopicOptions {
        TopicOptions::default()
    }
    /// Sets the number of slots.
    pub fn slots(mut self, slots: u32) -> TopicOptions {
        self.slots = slots;
        self
    }
    /// Sets the largest message.
    pub fn max_message_size(mut self, bytes: u32) -> TopicOptions {
        self.max_message_size = bytes;
        self
    }
    /// Sets the slow-subscriber policy.
    pub fn policy(mut self, policy: SlowSubscribers) -> TopicOptions {
        self.policy = policy;
        self
    }
    /// Sets the scheduled key rotation interval.
    pub fn rekey_interval(mut self, interval: Option<Duration>) -> TopicOptions {
        self.rekey_interval = interval;
        self
    }
    /// Sets the subscriber limit.
    pub fn max_subscribers(mut self, n: usize) -> TopicOptions {
        self.max_subscribers = n;
        self
    }
}

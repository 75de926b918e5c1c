//! `Publisher` and `Subscriber`: encrypted publish/subscribe (the core's
//! `pubsub`, PROTOCOL.md section 14).
//!
//! The topic's shape and policy cross the bridge as a plain struct
//! (`TopicOptionsData`), turned into the core's `TopicOptions` here; every
//! check of its values is the core's.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shmsock::pubsub::Delivery;
use shmsock::{Error, ErrorKind, Publisher, SlowSubscribers, Subscriber, TopicOptions};

use crate::errors::{guard, key_into, name_from_bytes, BridgeResult, Guarded, Timeout};
use crate::ffi::{CredentialsData, DeliveryData, SubscriberInfoData, TopicOptionsData};
use crate::options::OptionsBox;
use crate::stream::credentials_data;

fn duration(ns: i64, what: &str) -> shmsock::Result<Option<Duration>> {
    match Timeout::from_ns(ns)? {
        Timeout::Limit(limit) => Ok(limit),
        Timeout::Default => Err(Error::new(ErrorKind::InvalidArgument, format!("the {what} needs a value"))),
    }
}

/// The core's topic options of the C++ struct.
fn topic_options(data: &TopicOptionsData) -> shmsock::Result<TopicOptions> {
    let policy = if data.latest {
        SlowSubscribers::Latest
    } else {
        let timeout = duration(data.reliable_timeout_ns, "reliable timeout")?.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "a reliable topic needs a finite timeout (a slow subscriber is dropped after it)",
            )
        })?;
        SlowSubscribers::Reliable { timeout }
    };
    Ok(TopicOptions::new()
        .slots(data.slots)
        .max_message_size(data.max_message_size)
        .policy(policy)
        .rekey_interval(duration(data.rekey_interval_ns, "rekey interval")?)
        .max_subscribers(data.max_subscribers))
}

/// The core's defaults, for the C++ `TopicOptions` constructor.
pub fn topic_options_default() -> BridgeResult<TopicOptionsData> {
    guard(|| {
        let d = TopicOptions::default();
        let (latest, timeout) = match d.policy {
            SlowSubscribers::Latest => (true, shmsock::pubsub::DEFAULT_RELIABLE_TIMEOUT),
            SlowSubscribers::Reliable { timeout } => (false, timeout),
        };
        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Ok(TopicOptionsData {
            slots: d.slots,
            max_message_size: d.max_message_size,
            latest,
            reliable_timeout_ns: ns(timeout),
            rekey_interval_ns: d.rekey_interval.map_or(-1, ns),
            max_subscribers: d.max_subscribers,
        })
    })
}

// ------------------------------------------------------------------ publisher

/// A publisher, shared by every C++ thread that uses it (the core's is Sync).
pub struct PublisherBox {
    publisher: Guarded<Publisher>,
    closed: AtomicBool,
}

/// Binds topic `name`.
pub fn publisher_bind(name: &[u8], options: &OptionsBox, topic: &TopicOptionsData) -> BridgeResult<Box<PublisherBox>> {
    guard(|| {
        let publisher = Publisher::bind_with(name_from_bytes(name)?, &options.0, &topic_options(topic)?)?;
        Ok(Box::new(PublisherBox { publisher: Guarded::new(publisher), closed: AtomicBool::new(false) }))
    })
}

impl PublisherBox {
    fn usable(&self) -> shmsock::Result<&Publisher> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("the publisher of '{}' was closed", self.publisher.topic()),
            ));
        }
        Ok(&self.publisher)
    }

    /// Seals one message for every subscriber.
    pub fn publish(&self, data: &[u8]) -> BridgeResult<()> {
        guard(|| self.usable()?.publish(data))
    }

    /// Publishes without waiting: false (nothing published) while a reliable
    /// topic's ring is full.
    pub fn try_publish(&self, data: &[u8]) -> BridgeResult<bool> {
        guard(|| Ok(would_block(self.usable()?.try_publish(data))?.is_some()))
    }

    /// Nanoseconds until a blocked try_publish drops the subscribers in its
    /// way (0: call it now); -1 when no publish is blocked.
    pub fn publish_deadline_ns(&self) -> BridgeResult<i64> {
        guard(|| {
            Ok(self.usable()?.publish_deadline().map_or(-1, |d| {
                let left = d.saturating_duration_since(std::time::Instant::now());
                i64::try_from(left.as_nanos()).unwrap_or(i64::MAX)
            }))
        })
    }

    /// The pollable fd: readable when a blocked try_publish may succeed.
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.usable()?.pollable_fd().as_raw_fd()))
    }

    /// Waits until `n` subscribers are connected.
    pub fn wait_for_subscribers(&self, n: usize, timeout_ns: i64) -> BridgeResult<()> {
        guard(|| {
            let limit = duration(timeout_ns, "timeout")?;
            self.usable()?.wait_for_subscribers(n, limit)
        })
    }

    /// True when at least `n` subscribers are connected; else false, and the
    /// membership fd becomes readable at the next join or departure.
    pub fn try_wait_for_subscribers(&self, n: usize) -> BridgeResult<bool> {
        guard(|| self.usable()?.try_wait_for_subscribers(n))
    }

    /// Readable when a subscriber joined or left.
    pub fn membership_fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.usable()?.membership_fd().as_raw_fd()))
    }

    /// How many subscribers there are now.
    pub fn subscriber_count(&self) -> BridgeResult<usize> {
        guard(|| Ok(self.publisher.subscriber_count()))
    }

    /// The subscribers now.
    pub fn subscribers(&self) -> BridgeResult<Vec<SubscriberInfoData>> {
        guard(|| {
            Ok(self
                .publisher
                .subscribers()
                .into_iter()
                .map(|s| SubscriberInfoData {
                    id: s.id,
                    public_key: *s.public_key.as_bytes(),
                    credentials: credentials_data(s.credentials),
                    joined_at: s.joined_at,
                })
                .collect())
        })
    }

    /// Removes a subscriber and rotates the key.
    pub fn remove(&self, id: u64) -> BridgeResult<()> {
        guard(|| self.usable()?.remove(id))
    }

    /// Rotates the group key now.
    pub fn rotate_key(&self) -> BridgeResult<()> {
        guard(|| self.usable()?.rotate_key())
    }

    /// The current key epoch.
    pub fn epoch(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.publisher.epoch()))
    }

    /// The number of messages published.
    pub fn sequence(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.publisher.sequence()))
    }

    /// Subscribers dropped for falling behind (or a bad cursor).
    pub fn dropped_count(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.publisher.dropped_count()))
    }

    /// The topic name.
    pub fn topic(&self) -> BridgeResult<String> {
        guard(|| Ok(self.publisher.topic().to_string()))
    }

    /// The publisher's public key.
    pub fn public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.publisher.public_key(), out))
    }

    /// The topic's AEAD.
    pub fn cipher(&self) -> BridgeResult<String> {
        guard(|| Ok(self.publisher.cipher().name().to_string()))
    }

    /// The topic's largest message.
    pub fn max_message_size(&self) -> BridgeResult<u32> {
        guard(|| Ok(self.publisher.max_message_size()))
    }

    /// Closes the topic (idempotent).
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| {
            self.closed.store(true, Ordering::Release);
            self.publisher.close();
            Ok(())
        })
    }

    /// True once closed.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.closed.load(Ordering::Acquire)))
    }
}

// ----------------------------------------------------------------- subscriber

/// A subscriber, shared by every C++ thread that uses it (the core's is Sync).
pub struct SubscriberBox {
    subscriber: Guarded<Subscriber>,
    closed: AtomicBool,
}

/// Subscribes to topic `name`.
pub fn subscriber_connect(name: &[u8], options: &OptionsBox) -> BridgeResult<Box<SubscriberBox>> {
    guard(|| Ok(SubscriberBox::boxed(Subscriber::connect(name_from_bytes(name)?, &options.0)?)))
}

fn delivery_data(len: usize, sequence: u64, lost: u64) -> DeliveryData {
    DeliveryData { len, sequence, lost }
}

fn would_block<T>(result: shmsock::Result<T>) -> shmsock::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

impl SubscriberBox {
    pub(crate) fn boxed(subscriber: Subscriber) -> Box<SubscriberBox> {
        Box::new(SubscriberBox { subscriber: Guarded::new(subscriber), closed: AtomicBool::new(false) })
    }

    /// Receives the next message into `out`.
    pub fn recv(&self, out: &mut Vec<u8>, timeout_ns: i64) -> BridgeResult<DeliveryData> {
        guard(|| {
            let message = match Timeout::from_ns(timeout_ns)? {
                Timeout::Default => self.subscriber.recv(),
                Timeout::Limit(limit) => self.subscriber.recv_timeout(limit),
            }?;
            let d = delivery_data(message.data.len(), message.sequence, message.lost);
            *out = message.data;
            Ok(d)
        })
    }

    /// Receives the next message into `out` if one is there now (false: none).
    pub fn try_recv(&self, out: &mut Vec<u8>, delivery: &mut DeliveryData) -> BridgeResult<bool> {
        guard(|| match would_block(self.subscriber.try_recv())? {
            Some(message) => {
                *delivery = delivery_data(message.data.len(), message.sequence, message.lost);
                *out = message.data;
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// Receives the next message into `buf`.
    pub fn recv_into(&self, buf: &mut [u8], timeout_ns: i64) -> BridgeResult<DeliveryData> {
        guard(|| {
            let d: Delivery = match Timeout::from_ns(timeout_ns)? {
                Timeout::Default => self.subscriber.recv_into(buf),
                Timeout::Limit(limit) => self.subscriber.recv_into_timeout(buf, limit),
            }?;
            Ok(delivery_data(d.len, d.sequence, d.lost))
        })
    }

    /// As `recv_into` without waiting (false: no message now).
    pub fn try_recv_into(&self, buf: &mut [u8], delivery: &mut DeliveryData) -> BridgeResult<bool> {
        guard(|| match would_block(self.subscriber.try_recv_into(buf))? {
            Some(d) => {
                *delivery = delivery_data(d.len, d.sequence, d.lost);
                Ok(true)
            }
            None => Ok(false),
        })
    }

    /// Messages lost to lag so far.
    pub fn lost(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.subscriber.lost()))
    }

    /// Messages received so far.
    pub fn received(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.subscriber.received()))
    }

    /// The sequence number of the next message to read.
    pub fn position(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.subscriber.position()))
    }

    /// The newest key epoch received.
    pub fn epoch(&self) -> BridgeResult<u64> {
        guard(|| Ok(self.subscriber.epoch()))
    }

    /// The topic name.
    pub fn topic(&self) -> BridgeResult<String> {
        guard(|| Ok(self.subscriber.topic().to_string()))
    }

    /// The publisher's (pinned) public key.
    pub fn publisher_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.subscriber.publisher_public_key(), out))
    }

    /// This side's public key.
    pub fn local_public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(&self.subscriber.local_public_key(), out))
    }

    /// The publisher process, per the kernel.
    pub fn publisher_credentials(&self) -> BridgeResult<CredentialsData> {
        guard(|| Ok(credentials_data(self.subscriber.publisher_credentials())))
    }

    /// The topic's AEAD.
    pub fn cipher(&self) -> BridgeResult<String> {
        guard(|| Ok(self.subscriber.cipher().name().to_string()))
    }

    /// The topic's largest message.
    pub fn max_message_size(&self) -> BridgeResult<u32> {
        guard(|| Ok(self.subscriber.max_message_size()))
    }

    /// The pollable fd, while the subscriber is open.
    pub(crate) fn pollable_fd(&self) -> shmsock::Result<BorrowedFd<'_>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the subscriber was closed"));
        }
        Ok(self.subscriber.pollable_fd())
    }

    /// The pollable fd (owned by the subscriber).
    pub fn fd(&self) -> BridgeResult<i32> {
        guard(|| Ok(self.pollable_fd()?.as_raw_fd()))
    }

    /// Leaves the topic (idempotent).
    pub fn close(&self) -> BridgeResult<()> {
        guard(|| {
            self.closed.store(true, Ordering::Release);
            self.subscriber.close();
            Ok(())
        })
    }

    /// True once closed.
    pub fn is_closed(&self) -> BridgeResult<bool> {
        guard(|| Ok(self.closed.load(Ordering::Acquire)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_options_round_trip_through_the_struct() {
        let d = topic_options_default().unwrap();
        let t = topic_options(&d).unwrap();
        let core = TopicOptions::default();
        assert_eq!(
            (t.slots, t.max_message_size, t.policy, t.rekey_interval),
            (core.slots, core.max_message_size, core.policy, core.rekey_interval)
        );
        let latest = TopicOptionsData { latest: true, rekey_interval_ns: -1, ..d };
        let t = topic_options(&latest).unwrap();
        assert_eq!(t.policy, SlowSubscribers::Latest);
        assert_eq!(t.rekey_interval, None);
        let forever = TopicOptionsData { reliable_timeout_ns: -1, ..d };
        assert_eq!(topic_options(&forever).unwrap_err().kind(), ErrorKind::InvalidArgument);
        let negative = TopicOptionsData { rekey_interval_ns: -7, ..d };
        assert_eq!(topic_options(&negative).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
}

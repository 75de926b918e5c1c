//! `NativePublisher`: the publishing end of a topic (wrapped by the JavaScript
//! `Publisher` class).
//!
//! Publishing on a *latest* topic never waits (the core overwrites the oldest
//! slot), so it runs on the JavaScript thread and is complete when `publish`
//! returns. On a *reliable* topic the core may wait for the slowest subscriber,
//! up to the topic's timeout, and the core has no non-blocking publish with a
//! readiness signal to wait on from the event loop; so reliable publishes go,
//! in order, to one publishing thread per publisher (started with it), which
//! completes each one's op. `waitForSubscribers` waits on a short-lived thread.
//! Both deliver through the dispatch thread-safe function, whose pending
//! operations keep the process alive.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::{Error as CoreError, ErrorKind, Publisher, SlowSubscribers, TopicOptions};

use crate::dispatch::{lock, post, Event};
use crate::errors::{closed, js_error, to_js, Code};
use crate::keys::JsKeypair;
use crate::native_stream::PeerCredentials;
use crate::options::{millis, to_core, NativeOptions};

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

/// Reliable publishes waiting for the publishing thread, in order.
#[derive(Default)]
struct Queue {
    items: VecDeque<(i64, Vec<u8>)>,
    /// The op being published now (failed at once by `close`).
    current: Option<i64>,
    closed: bool,
}

struct Shared {
    publisher: Publisher,
    queue: Mutex<Queue>,
    more: Condvar,
}

/// The publishing thread of a reliable topic: publishes in order until closed.
fn publishing_thread(sh: Arc<Shared>) {
    loop {
        let (op, message) = {
            let mut q = lock(&sh.queue);
            loop {
                if q.closed {
                    return;
                }
                if let Some(item) = q.items.pop_front() {
                    q.current = Some(item.0);
                    break item;
                }
                q = sh.more.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = sh.publisher.publish(&message);
        lock(&sh.queue).current = None;
        post(Box::new(move |events: &mut Vec<Event>| {
            events.push(match result {
                Ok(()) => Event::Done { op },
                Err(error) => Event::Failed { op, error },
            })
        }));
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
    /// Closes the topic and stops the publishing thread; returns the ops that
    /// had not completed (the caller fails them with CLOSED).
    fn close_now(&self) -> Vec<i64> {
        let ops = {
            let mut q = lock(&self.shared.queue);
            if q.closed {
                return Vec::new();
            }
            q.closed = true;
            let mut ops: Vec<i64> = q.current.take().into_iter().collect();
            ops.extend(q.items.drain(..).map(|(op, _)| op));
            ops
        };
        self.shared.more.notify_all();
        // Subscribers get what was published, then PeerClosed; a publish still
        // waiting for room in the core fails with Closed on its own thread.
        self.shared.publisher.close();
        ops
    }

    fn check_open(&self) -> Result<(), CoreError> {
        if lock(&self.shared.queue).closed {
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
        let shared = Arc::new(Shared { publisher, queue: Mutex::new(Queue::default()), more: Condvar::new() });
        if reliable {
            let for_thread = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("shmsock-publish".into())
                .spawn(move || publishing_thread(for_thread))
                .map_err(|e| to_js(CoreError::io("starting the publishing thread", e)))?;
        }
        Ok(NativePublisher { shared, reliable })
    }

    /// Publishes `data`: returns true when it is published now (latest
    /// topics), else false and completes `op` once it is (reliable topics, in
    /// order with earlier publishes).
    #[napi]
    pub fn publish(&self, op: i64, data: Buffer) -> napi::Result<bool, Code> {
        self.check_open().map_err(to_js)?;
        if !self.reliable {
            self.shared.publisher.publish(&data).map_err(to_js)?;
            return Ok(true);
        }
        // Refused here rather than on the thread: the caller learns at once.
        self.shared.publisher.check_size(data.len()).map_err(to_js)?;
        let mut q = lock(&self.shared.queue);
        q.items.push_back((op, data.to_vec()));
        drop(q);
        self.shared.more.notify_one();
        Ok(false)
    }

    /// Waits on a short-lived thread until `n` subscribers are connected, up
    /// to `timeout` ms, and completes `op`.
    #[napi]
    pub fn wait_for_subscribers(&self, op: i64, n: u32, timeout: Option<f64>) -> napi::Result<(), Code> {
        self.check_open().map_err(to_js)?;
        let timeout: Option<Duration> = timeout.map(|ms| millis(ms, "timeout")).transpose()?;
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("shmsock-wait-subs".into())
            .spawn(move || {
                let result = shared.publisher.wait_for_subscribers(n as usize, timeout);
                post(Box::new(move |events: &mut Vec<Event>| {
                    events.push(match result {
                        Ok(()) => Event::Done { op },
                        Err(error) => Event::Failed { op, error },
                    })
                }));
            })
            .map_err(|e| to_js(CoreError::io("starting a thread", e)))?;
        Ok(())
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
        lock(&self.shared.queue).closed
    }

    /// Closes the topic: subscribers get what was published, then the end.
    /// Returns the ops of publishes that had not completed (fail them with
    /// SHMSOCK_CLOSED). Idempotent.
    #[napi]
    pub fn close(&self) -> Vec<i64> {
        self.close_now()
    }
}

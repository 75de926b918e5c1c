//! `Publisher` and `SubscriberInfo`: the publishing end of the core's
//! encrypted publish/subscribe (PROTOCOL.md section 14), with Python arguments,
//! errors and threading. Every call that can wait releases the GIL;
//! `wait_for_subscribers` waits in slices so Ctrl-C interrupts it.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use shmsock::pubsub::SubscriberInfo;
use shmsock::{Publisher, SlowSubscribers, TopicOptions};

use crate::buffer::Data;
use crate::errors::{self, OrRaise};
use crate::keys::PyPublicKey;
use crate::options::{self, Entry, Given};
use crate::stream::PyCredentials;
use crate::wait::{nothing, sliced, Timeout};

/// Messages below this size are sealed with the GIL held by a latest topic's
/// publish (it never waits); larger ones, and every reliable publish (which
/// may wait for room), release it.
const KEEP_GIL_BELOW: usize = 64 * 1024;

/// The topic options given from Python.
fn topic_options(given: &Given<'_>) -> PyResult<TopicOptions> {
    let reliable_timeout = given.get("reliable_timeout")?;
    let policy = given.text("policy")?.unwrap_or_else(|| "reliable".to_owned());
    // Omitted: the default interval; None: rotate only when a subscriber leaves.
    let rekey_interval = match given.raw("rekey_interval")? {
        None => Timeout::Default,
        Some(v) => v.extract::<Timeout>()?,
    };
    let mut topic = TopicOptions::new();
    // Ranges (slots a power of two, sizes) are the core's to check: its
    // InvalidArgument is a ValueError.
    if let Some(s) = given.int::<u32>("slots")? {
        topic = topic.slots(s);
    }
    if let Some(m) = given.int::<u32>("max_message_size")? {
        topic = topic.max_message_size(m);
    }
    let timeout = match &reliable_timeout {
        None => shmsock::pubsub::DEFAULT_RELIABLE_TIMEOUT,
        Some(t) => match crate::wait::seconds(t, "reliable_timeout")? {
            Some(d) if !d.is_zero() => d,
            _ => return Err(PyValueError::new_err("reliable_timeout must be a positive number of seconds")),
        },
    };
    topic = match policy.as_str() {
        "reliable" => topic.policy(SlowSubscribers::Reliable { timeout }),
        "latest" if reliable_timeout.is_some() => {
            return Err(PyValueError::new_err("reliable_timeout applies to policy='reliable' only"))
        }
        "latest" => topic.policy(SlowSubscribers::Latest),
        other => return Err(PyValueError::new_err(format!("policy must be 'reliable' or 'latest', not '{other}'"))),
    };
    topic = match rekey_interval {
        Timeout::Default => topic,
        Timeout::Forever => topic.rekey_interval(None),
        Timeout::After(d) if d.is_zero() => {
            return Err(PyValueError::new_err("rekey_interval must be positive (or None: rotate only on departures)"))
        }
        Timeout::After(d) => topic.rekey_interval(Some(d)),
    };
    if let Some(n) = given.int::<usize>("max_subscribers")? {
        topic = topic.max_subscribers(n);
    }
    Ok(topic)
}

/// The publishing end of a topic: each message is sealed once, into a ring
/// that only this process can write, for every subscriber.
///
/// ``Publisher.bind(name, keypair=...)`` claims the topic name (the same
/// namespace as stream endpoints); subscribers pin ``public_key``. Use it as a
/// context manager or call ``close()``: subscribers then receive every message
/// published before, then PeerClosed. Usable from any thread.
#[pyclass(module = "shmsock", name = "Publisher", frozen, weakref)]
pub struct PyPublisher {
    inner: Mutex<Option<Arc<Publisher>>>,
    name: String,
    reliable: Option<Duration>,
}

impl PyPublisher {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<Publisher>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| errors::closed(py, "publisher"))
    }

    fn take(&self) -> Option<Arc<Publisher>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[pymethods]
impl PyPublisher {
    /// Binds topic ``name`` with this publisher's ``keypair`` (which
    /// subscribers pin). Topic options: ``slots`` (ring slots, a power of two,
    /// default 64), ``max_message_size`` (default 64 KiB; each slot holds one
    /// message), ``policy`` (``"reliable"``: ``publish`` waits for the slowest
    /// subscriber up to ``reliable_timeout`` seconds, default 5, then drops it;
    /// ``"latest"``: the ring overwrites and slow subscribers are told what they
    /// lost), ``rekey_interval`` (seconds between scheduled key rotations,
    /// default 600; None: only when a subscriber leaves), ``max_subscribers``
    /// (default 256). ``max_pending_handshakes`` and
    /// ``max_pending_handshakes_per_uid`` (64 each by default) bound the
    /// subscriber handshakes in progress: when one is reached, the oldest
    /// client (of that uid) that has not sent its SUBSCRIBE gives way, else the
    /// newcomer is refused (``ResourceExhausted``). ``allowed_clients``,
    /// ``allowed_uids``, ``handshake_timeout``, ``spin`` and ``require_chacha``
    /// are as for ``Listener.bind``. Raises AddressInUse when a live process
    /// serves the name.
    #[staticmethod]
    #[pyo3(signature = (name, *, keypair, **options))]
    fn bind(
        py: Python<'_>,
        name: &str,
        keypair: &Bound<'_, PyAny>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyPublisher> {
        let given = Given::new(Entry::Publish, options)?;
        let topic = topic_options(&given)?;
        let built = options::server(keypair, &given)?;
        let owned = name.to_owned();
        let publisher = py.detach(|| Publisher::bind_with(&owned, &built.options, &topic)).or_raise(py)?;
        let reliable = match topic.policy {
            SlowSubscribers::Reliable { timeout } => Some(timeout),
            SlowSubscribers::Latest => None,
        };
        Ok(PyPublisher { inner: Mutex::new(Some(Arc::new(publisher))), name: owned, reliable })
    }

    /// Publishes one message (bytes, bytearray, memoryview or any buffer) to
    /// every subscriber. A reliable topic waits (GIL released) while the
    /// slowest subscriber holds the oldest slot, at most ``reliable_timeout``,
    /// then drops that subscriber and publishes; a latest topic never waits.
    /// Raises MessageTooLarge above ``max_message_size`` (nothing is published;
    /// the topic stays usable). Publishing with no subscribers is fine.
    fn publish(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let publisher = self.get(py)?;
        let data = Data::from_py(data)?;
        let bytes = data.as_slice();
        let result = if self.reliable.is_none() && bytes.len() < KEEP_GIL_BELOW {
            publisher.publish(bytes)
        } else {
            py.detach(|| publisher.publish(bytes))
        };
        result.or_raise(py)
    }

    /// Publishes one message without waiting. On a reliable topic whose
    /// slowest subscriber still holds the oldest slot it raises WouldBlock and
    /// publishes nothing: wait until ``fileno()`` is readable (a subscriber
    /// moved on or left), or ``publish_deadline`` seconds at most, and call
    /// again; past that deadline the call drops the subscribers still in the
    /// way and publishes. A latest topic never blocks. For event loops; do
    /// not mix with ``publish`` on another thread.
    fn try_publish(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let publisher = self.get(py)?;
        let data = Data::from_py(data)?;
        publisher.try_publish(data.as_slice()).or_raise(py)
    }

    /// Seconds from now until a blocked ``try_publish`` drops the subscribers
    /// in its way (0.0: call it now), or None when no publish is blocked.
    #[getter]
    fn publish_deadline(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        let deadline = self.get(py)?.publish_deadline();
        Ok(deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()).as_secs_f64()))
    }

    /// The descriptor that becomes readable when a blocked ``try_publish`` may
    /// succeed (for select, selectors, asyncio's add_reader). Do not read it.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.get(py)?.pollable_fd().as_raw_fd())
    }

    /// Waits until at least ``n`` subscribers are connected, up to ``timeout``
    /// seconds (None: forever), then raises Timeout.
    #[pyo3(signature = (n, timeout=None))]
    fn wait_for_subscribers(&self, py: Python<'_>, n: usize, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let publisher = self.get(py)?;
        let timeout = crate::wait::opt_seconds(timeout, "timeout")?;
        sliced(py, timeout, nothing, |t| publisher.wait_for_subscribers(n, t))?.or_raise(py)
    }

    /// For event loops, ``wait_for_subscribers`` without waiting: True when
    /// at least ``n`` subscribers are connected; else False, and
    /// ``membership_fileno()`` becomes readable at the next join or departure
    /// (call again then). Raises Closed once the topic was closed.
    fn try_wait_for_subscribers(&self, py: Python<'_>, n: usize) -> PyResult<bool> {
        self.get(py)?.try_wait_for_subscribers(n).or_raise(py)
    }

    /// The descriptor that becomes readable when a subscriber joins or leaves
    /// (see ``try_wait_for_subscribers``). Do not read it.
    fn membership_fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.get(py)?.membership_fd().as_raw_fd())
    }

    /// How many subscribers are connected now.
    #[getter]
    fn subscriber_count(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.get(py)?.subscriber_count())
    }

    /// The subscribers now, as ``SubscriberInfo`` (by id).
    #[getter]
    fn subscribers(&self, py: Python<'_>) -> PyResult<Vec<PySubscriberInfo>> {
        let mut list: Vec<PySubscriberInfo> = self.get(py)?.subscribers().into_iter().map(Into::into).collect();
        list.sort_by_key(|s| s.id);
        Ok(list)
    }

    /// Removes subscriber ``id`` (from ``subscribers``): it is told so, and the
    /// group key is rotated before this returns, so it can read nothing
    /// published afterwards. NotFound for an unknown id.
    fn remove(&self, py: Python<'_>, id: u64) -> PyResult<()> {
        let publisher = self.get(py)?;
        py.detach(|| publisher.remove(id)).or_raise(py)
    }

    /// Rotates the group key now (it also rotates whenever a subscriber leaves
    /// and every ``rekey_interval``).
    fn rotate_key(&self, py: Python<'_>) -> PyResult<()> {
        let publisher = self.get(py)?;
        py.detach(|| publisher.rotate_key()).or_raise(py)
    }

    /// The current key epoch (1, then one more per rotation).
    #[getter]
    fn epoch(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.epoch())
    }

    /// How many messages were published.
    #[getter]
    fn sequence(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.sequence())
    }

    /// How many subscribers were dropped for holding up a reliable topic (or
    /// for a bad cursor).
    #[getter]
    fn dropped_count(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.dropped_count())
    }

    /// The publisher's public key, which subscribers pin.
    #[getter]
    fn public_key(&self, py: Python<'_>) -> PyResult<PyPublicKey> {
        Ok(PyPublicKey { key: self.get(py)?.public_key() })
    }

    /// The topic's AEAD: ``"aegis-128l"`` or ``"chacha20-poly1305"``.
    #[getter]
    fn cipher(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.get(py)?.cipher().name())
    }

    /// The largest message the topic carries.
    #[getter]
    fn max_message_size(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.get(py)?.max_message_size())
    }

    /// ``"reliable"`` or ``"latest"``.
    #[getter]
    fn policy(&self) -> &'static str {
        if self.reliable.is_some() {
            "reliable"
        } else {
            "latest"
        }
    }

    /// How long a reliable publish may wait for room, in seconds (None for a
    /// latest topic, which never waits).
    #[getter]
    fn reliable_timeout(&self) -> Option<f64> {
        self.reliable.map(|t| t.as_secs_f64())
    }

    /// The topic name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Closes the topic: subscribers receive every message published so far,
    /// then PeerClosed; the name is free at once. Idempotent; later calls
    /// raise Closed.
    fn close(&self, py: Python<'_>) {
        if let Some(publisher) = self.take() {
            // Joins the topic's thread, which never needs the GIL.
            py.detach(move || {
                publisher.close();
                drop(publisher);
            });
        }
    }

    /// True once ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        match self.inner.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            None => format!("<shmsock.Publisher name='{}' closed>", self.name),
            Some(p) => format!(
                "<shmsock.Publisher name='{}' key={} policy={} subscribers={}>",
                self.name,
                p.public_key().fingerprint(),
                self.policy(),
                p.subscriber_count()
            ),
        }
    }
}

impl Drop for PyPublisher {
    fn drop(&mut self) {
        if let Some(publisher) = self.take() {
            Python::attach(|py| py.detach(move || publisher.close()));
        }
    }
}

/// A subscriber as its publisher sees it (a snapshot).
#[pyclass(module = "shmsock", name = "SubscriberInfo", frozen)]
pub struct PySubscriberInfo {
    /// The publisher's number for it (for ``Publisher.remove``).
    #[pyo3(get)]
    id: u64,
    key: shmsock::PublicKey,
    credentials: shmsock::Credentials,
    /// The sequence number of the first message it could read.
    #[pyo3(get)]
    joined_at: u64,
}

impl From<SubscriberInfo> for PySubscriberInfo {
    fn from(s: SubscriberInfo) -> PySubscriberInfo {
        PySubscriberInfo { id: s.id, key: s.public_key, credentials: s.credentials, joined_at: s.joined_at }
    }
}

#[pymethods]
impl PySubscriberInfo {
    /// Its static public key, authenticated by the handshake.
    #[getter]
    fn public_key(&self) -> PyPublicKey {
        PyPublicKey { key: self.key }
    }

    /// Its process's pid, uid and gid, from the kernel.
    #[getter]
    fn credentials(&self) -> PyCredentials {
        PyCredentials::from(self.credentials)
    }

    fn __repr__(&self) -> String {
        format!(
            "SubscriberInfo(id={}, public_key={}, pid={}, joined_at={})",
            self.id,
            self.key.fingerprint(),
            self.credentials.pid,
            self.joined_at
        )
    }
}

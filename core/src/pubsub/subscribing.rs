//! The subscriber's handshake: [`Subscribing`], a non-blocking state machine
//! for event loops, on which the blocking [`Subscriber::connect`] is built.
//!
//! [`Subscribing::start`] connects the control socket and sends the
//! SUBSCRIBE without waiting (a publisher that is not there yet, with
//! [`Options::connect_wait`], or one whose queue of waiting connections is
//! full, is looked for again as a stream's connect does: `reaching.rs`);
//! [`Subscribing::advance`] takes each step once what it needs is there: the
//! WELCOME (then the READY with this side's cursor and wake-up), then the
//! first KEY record. It never waits. An event loop watches
//! [`Subscribing::fd`] (the same fd for the whole handshake), calls `advance`
//! when it is readable, and once more at [`Subscribing::deadline`] (it then
//! fails with Timeout; read the deadline again after each `advance`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use rustix::event::PollFlags;

use super::broadcast::Broadcast;
use super::cursor::Cursor;
use super::group_key::GroupKey;
use super::records;
use super::subscriber::{Established, Subscriber, INBOX_LIMIT};
use crate::cipher::{CipherSuite, RecvCipher};
use crate::connecting::ClientHandshake;
use crate::control::{self, RecordReader};
use crate::error::{Error, ErrorKind, Result};
use crate::handshake::{Backend, ClientOffer, Initiator, RejectReason};
use crate::keys::{Keypair, PublicKey};
use crate::options::Options;
use crate::platform::{self, Credentials, OwnWake};
use crate::reaching::{self, Reached, Reaching, WaitSet};
use crate::sodium;

/// What one call to [`Subscribing::advance`] achieved.
// Returned once per advance and unpacked at once: boxing would cost an
// allocation per step for nothing.
#[allow(clippy::large_enum_variant)]
pub enum SubscribeProgress {
    /// The publisher's answer has not come whole: wait for
    /// [`Subscribing::fd`] (or the deadline) and advance again.
    Waiting(Subscribing),
    /// Subscribed.
    Done(Subscriber),
}

/// A subscription in progress.
pub struct Subscribing {
    name: String,
    options: Options,
    server_key: PublicKey,
    keypair: Keypair,
    phase: Phase,
}

// The common states are the large ones: boxing them would cost every
// subscription an allocation, and it is moved only once per advance.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Not connected yet: the publisher was not there, or its queue was full.
    Reaching(Reaching),
    /// The SUBSCRIBE is sent; the WELCOME (or a REJECT) is awaited.
    Welcome(Welcome),
    /// The READY is sent; the first group key is awaited.
    Key(KeyWait),
}

/// What every phase past the connect holds.
struct Connected {
    control: UnixStream,
    credentials: Credentials,
    /// The fd of a subscription that waited for its publisher.
    waiting: Option<WaitSet>,
    /// When the handshake times out.
    deadline: Instant,
}

struct Welcome {
    connected: Connected,
    initiator: Initiator,
    reader: RecordReader,
}

struct KeyWait {
    connected: Connected,
    suite: CipherSuite,
    publisher: PublicKey,
    broadcast: Broadcast,
    publisher_wake: OwnedFd,
    cursor: Cursor,
    own_wake: OwnWake,
    recv: RecvCipher,
    /// Control bytes read and not opened yet.
    inbox: Vec<u8>,
}

/// Checks what every subscription needs; the pinned publisher key.
pub(super) fn check(options: &Options) -> Result<PublicKey> {
    sodium::init()?;
    options.validate()?;
    options.server_key.ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            "subscribing needs the publisher's public key: set Options::server_key (shmsock never trusts a key the publisher sends)",
        )
    })
}

fn violation(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::ProtocolViolation, what)
}

impl Subscribing {
    /// Subscribes to topic `name`, whose publisher's key `options.server_key`
    /// pins, without waiting (see the module documentation). The handshake
    /// must complete within `options.handshake_timeout` once the publisher
    /// took the connection. Reading starts with the next message published.
    pub fn start(name: &str, options: &Options) -> Result<Subscribing> {
        let server_key = check(options)?;
        let keypair = options.keypair.clone().unwrap_or_else(Keypair::generate);
        let phase = match reaching::start(name, options)? {
            Reached::Pending(reaching) => Phase::Reaching(reaching),
            Reached::Connected { control, waiting, deadline } => {
                let ids = Ids { name, options, keypair: &keypair, server_key: &server_key };
                Phase::Welcome(ids.subscribe(control, waiting, deadline)?)
            }
        };
        Ok(Subscribing { name: name.to_string(), options: options.clone(), server_key, keypair, phase })
    }

    /// Sends the SUBSCRIBE on a control socket connected with a blocking
    /// connect (see [`Subscriber::connect`]).
    pub(super) fn on_socket(
        name: &str,
        options: &Options,
        server_key: PublicKey,
        control: UnixStream,
        deadline: Instant,
    ) -> Result<Subscribing> {
        let keypair = options.keypair.clone().unwrap_or_else(Keypair::generate);
        let ids = Ids { name, options, keypair: &keypair, server_key: &server_key };
        let phase = Phase::Welcome(ids.subscribe(control, None, deadline)?);
        Ok(Subscribing { name: name.to_string(), options: options.clone(), server_key, keypair, phase })
    }

    /// Readable when [`advance`](Subscribing::advance) may make progress.
    /// The same fd for the whole handshake.
    pub fn fd(&self) -> BorrowedFd<'_> {
        let connected = match &self.phase {
            Phase::Reaching(reaching) => return reaching.fd(),
            Phase::Welcome(welcome) => &welcome.connected,
            Phase::Key(key) => &key.connected,
        };
        connected.waiting.as_ref().map_or(connected.control.as_fd(), WaitSet::fd)
    }

    /// When `advance` gives up at the latest: call it then, if the fd said
    /// nothing before. It moves when the publisher takes a subscription that
    /// waited: read it again after each `advance`.
    pub fn deadline(&self) -> Instant {
        match &self.phase {
            Phase::Reaching(reaching) => reaching.deadline(),
            Phase::Welcome(welcome) => welcome.connected.deadline,
            Phase::Key(key) => key.connected.deadline,
        }
    }

    /// Takes every step whose input is there: the subscriber, or this
    /// subscription back while it waits. Never waits. A REJECT is the error
    /// it says; past the deadline, Timeout. After an error the subscription is
    /// over, and its socket closed.
    pub fn advance(self) -> Result<SubscribeProgress> {
        let Subscribing { name, options, server_key, keypair, mut phase } = self;
        let ids = Ids { name: &name, options: &options, keypair: &keypair, server_key: &server_key };
        let waiting = loop {
            phase = match phase {
                Phase::Reaching(reaching) => match reaching.retry(&name, &options)? {
                    Reached::Pending(reaching) => break Phase::Reaching(reaching),
                    Reached::Connected { control, waiting, deadline } => {
                        Phase::Welcome(ids.subscribe(control, waiting, deadline)?)
                    }
                },
                Phase::Welcome(mut welcome) => match ids.read_welcome(&mut welcome)? {
                    Some((kind, body)) => Phase::Key(ids.welcomed(welcome, kind, &body)?),
                    None => break Phase::Welcome(welcome),
                },
                Phase::Key(mut key) => match ids.read_key(&mut key)? {
                    Some((first, open)) => return ids.finish(key, first, open).map(SubscribeProgress::Done),
                    None => break Phase::Key(key),
                },
            };
        };
        Ok(SubscribeProgress::Waiting(Subscribing { name, options, server_key, keypair, phase: waiting }))
    }
}

impl ClientHandshake for Subscribing {
    type Output = Subscriber;
    fn fd(&self) -> BorrowedFd<'_> {
        Subscribing::fd(self)
    }
    fn deadline(&self) -> Instant {
        Subscribing::deadline(self)
    }
    fn step(self) -> Result<std::result::Result<Subscriber, Subscribing>> {
        Ok(match self.advance()? {
            SubscribeProgress::Done(subscriber) => Ok(subscriber),
            SubscribeProgress::Waiting(subscribing) => Err(subscribing),
        })
    }
}

/// Who subscribes to what: what each step of the handshake reads.
struct Ids<'a> {
    name: &'a str,
    options: &'a Options,
    keypair: &'a Keypair,
    server_key: &'a PublicKey,
}

impl Ids<'_> {
    /// Sends the SUBSCRIBE on a connected control socket.
    fn subscribe(&self, control: UnixStream, waiting: Option<WaitSet>, deadline: Instant) -> Result<Welcome> {
        control.set_nonblocking(true).map_err(|e| Error::io("configuring the control socket", e))?;
        let socket = control.as_fd();
        let credentials = platform::peer_credentials(socket)?;
        let options = self.options;
        let offer = ClientOffer::local(options.require_chacha, options.max_message_size, 0, Backend::Memfd.bit());
        let mut initiator = Initiator::new(self.keypair, self.server_key, self.name, offer)?;
        control::send_first(socket, &control::encode(records::SUBSCRIBE, &initiator.write_hello()?), self.name)?;
        Ok(Welcome {
            connected: Connected { control, credentials, waiting, deadline },
            initiator,
            reader: RecordReader::default(),
        })
    }

    /// The publisher's answer once it came whole (its kind and body).
    fn read_welcome(&self, welcome: &mut Welcome) -> Result<Option<(u8, Vec<u8>)>> {
        let name = self.name;
        let connected = &welcome.connected;
        let read = welcome.reader.read(connected.control.as_fd(), "the publisher").map_err(|e| match e.kind() {
            ErrorKind::PeerGone => Error::new(
                ErrorKind::PeerGone,
                format!(
                    "'{name}' closed the connection while subscribing: is it a stream listener rather than a topic?"
                ),
            ),
            _ => e.context(&format!("subscribing to '{name}'")),
        })?;
        match read {
            Some((header, body)) => Ok(Some((header[0], body))),
            None if Instant::now() >= connected.deadline => Err(Error::new(
                ErrorKind::Timeout,
                format!("the publisher of '{name}' did not answer within {:?}", self.options.handshake_timeout),
            )),
            None => Ok(None),
        }
    }

    /// After the WELCOME: the session, the broadcast segment, the READY.
    fn welcomed(&self, mut welcome: Welcome, kind: u8, body: &[u8]) -> Result<KeyWait> {
        let name = self.name;
        if kind == control::REJECT && body.len() >= 2 {
            let reason =
                RejectReason::from_code(u16::from_le_bytes([body[0], body[1]])).unwrap_or(RejectReason::ServerError);
            return Err(reason.to_error(name, &String::from_utf8_lossy(&body[2..])));
        }
        if kind != records::WELCOME {
            return Err(violation(format!("'{name}' answered a subscription with record type {kind}: not a topic")));
        }
        let session = welcome.initiator.read_reply(body)?;
        let suite = session.choice.cipher;
        let mut fds = std::mem::take(welcome.reader.fds()).into_iter();
        let (Some(broadcast_fd), Some(publisher_wake), None) = (fds.next(), fds.next(), fds.next()) else {
            return Err(violation(
                "the publisher's WELCOME must carry exactly two descriptors (the broadcast memfd, then its wake-up eventfd)",
            ));
        };
        platform::check_peer_wake(publisher_wake.as_fd())?;
        let broadcast = Broadcast::open(broadcast_fd, suite)?;
        if broadcast.geometry().max_message != session.choice.max_message {
            return Err(violation("the broadcast segment's max message differs from the handshake's"));
        }
        if session.choice.max_message > self.options.max_message_size {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "topic '{name}' carries messages up to {} bytes, more than this subscriber's max_message_size of {}",
                    session.choice.max_message, self.options.max_message_size
                ),
            ));
        }
        let cursor = Cursor::create()?;
        let own_wake = OwnWake::new()?;
        let socket = welcome.connected.control.as_fd();
        control::send(socket, &control::encode(control::READY, &[]), &[cursor.fd(), own_wake.for_peer()])?;
        Ok(KeyWait {
            connected: welcome.connected,
            suite,
            publisher: session.peer,
            broadcast,
            publisher_wake,
            cursor,
            own_wake,
            recv: session.recv,
            inbox: Vec::new(),
        })
    }

    /// The first group key once it came, and whether the socket is still
    /// open after it.
    fn read_key(&self, key: &mut KeyWait) -> Result<Option<(GroupKey, bool)>> {
        let name = self.name;
        let socket = key.connected.control.as_fd();
        let open = platform::recv_available(socket, &mut key.inbox, INBOX_LIMIT)?;
        if let Some((kind, plain, used)) = records::open_front(&key.inbox, &mut key.recv)? {
            key.inbox.drain(..used);
            if kind != records::KEY {
                let (reason, _) = records::parse_bye(&plain)?;
                return Err(reason.to_error(name));
            }
            return Ok(Some((GroupKey::decode(key.suite, &plain)?, open)));
        }
        if !open {
            return Err(Error::new(
                ErrorKind::PeerGone,
                format!("the publisher of '{name}' closed the connection before sending the group key"),
            ));
        }
        if Instant::now() >= key.connected.deadline {
            return Err(Error::new(ErrorKind::Timeout, format!("the publisher of '{name}' sent no group key in time")));
        }
        Ok(None)
    }

    fn finish(&self, key: KeyWait, first: GroupKey, open: bool) -> Result<Subscriber> {
        let KeyWait { connected, publisher, broadcast, publisher_wake, cursor, own_wake, recv, inbox, .. } = key;
        let Connected { control, credentials, .. } = connected;
        let established = Established {
            control,
            credentials,
            publisher,
            local: *self.keypair.public(),
            broadcast,
            publisher_wake,
            cursor,
            own_wake,
            recv,
            inbox,
            first,
            hung_up: !open,
        };
        Subscriber::established(self.name, self.options, established)
    }
}

impl Subscriber {
    /// Subscribes to topic `name`, whose publisher's key `options.server_key`
    /// pins, within `options.handshake_timeout` (waiting first for the
    /// publisher to appear: [`Options::connect_wait`]). Reading starts with
    /// the next message published. Event loops use [`Subscribing`] instead.
    pub fn connect(name: &str, options: &Options) -> Result<Subscriber> {
        let server_key = check(options)?;
        let (control, deadline) = crate::connect_wait::control_socket(name, options)?;
        let mut subscribing = Subscribing::on_socket(name, options, server_key, control, deadline)?;
        loop {
            subscribing = match subscribing.advance()? {
                SubscribeProgress::Done(subscriber) => return Ok(subscriber),
                SubscribeProgress::Waiting(subscribing) => subscribing,
            };
            platform::wait_fd(subscribing.fd(), PollFlags::IN, Some(subscribing.deadline()))?;
        }
    }
}

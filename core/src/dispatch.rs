//! A server's dispatch thread: one [`Reactor`] over its connections and, on the
//! first thread, the listener and the handshakes in progress.
//!
//! Fairness: every ready connection gets one message per turn, in turn order;
//! one that has more goes to the back of the line. Safety from peers: handshakes
//! advance only on what the client already sent and end at their own deadline;
//! pending handshakes are bounded overall and per uid by what they cost (see
//! [`Limits`]: the oldest client still without its HELLO gives way to a
//! newcomer, a HELLO beyond the segments allowed is refused with a REJECT, and
//! silent clients otherwise wait for their deadline); connections are bounded
//! overall and per uid (a refused client gets REJECT 7); a connection whose
//! outbound queue waits for ring space is served again when its pollable fd
//! says the peer freed some (the stream keeps that wake-up even when a receive
//! drains it first), and its messages are not read while that queue is full
//! (backpressure, see `outbound.rs`); a close is handed to the closer thread.
//!
//! Waiting: each connection is watched through its pollable fd (an epoll set
//! nested in this thread's), and a connection that delivered a message is
//! served again after one look at the epoll set, before it is armed (or,
//! when it is the only one in line, as soon as its ring shows the client's
//! next message, see `Shard::next_message_here`). Between
//! two cores that look (a system call) usually outlasts the client's turn, so
//! its next message is there, the connection is never armed and the client
//! never wakes this thread through the kernel (4.6k receives in 1M found
//! nothing, one system call per message in all). Two alternatives measured
//! slower there, A/B interleaved in one launch: watching each stream's eventfd
//! (edge-triggered) and control socket directly, which saves the nested set's
//! drain, made this thread find nothing on ~60% of receives and arm, so the
//! client paid a wake-up each time (0.78x the round trips/s, median of 8
//! pairs; +10% on one core); and spinning on the rings of the connections just
//! served instead of the epoll set, without arming them (0.16 system calls per
//! message), gave 0.79x (median of 10 pairs).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::accept::{Handshake, Limits, Progress};
use crate::error::{Error, ErrorKind};
use crate::handshake::RejectReason;
use crate::reactor::{Event, Reactor, TimerId, Waker};
use crate::server::{Connection, Shared};
use crate::wait::SpinHistory;

/// Token of the listener.
const LISTENER_TOKEN: u64 = u64::MAX - 1;
/// Token of the timer that watches the listener again after running out of fds.
const LISTENER_RETRY: u64 = u64::MAX - 2;
/// How long the listener rests after accept ran out of file descriptors (it
/// stays readable, so watching it would spin).
const FD_BACKOFF: Duration = Duration::from_millis(100);
/// Tokens of handshakes have this bit set (connection ids never reach it).
const HANDSHAKE_BIT: u64 = 1 << 62;
/// Clients accepted per turn at most while no connection is served on this
/// thread...
const ACCEPTS_PER_TURN: usize = 16;
/// ...and while some are: silent connections re-made as fast as they are
/// refused keep the listener readable, and each costs an accept, a REJECT and
/// a close; the connections' turns must not wait for many of them.
const ACCEPTS_PER_BUSY_TURN: usize = 4;
/// First size of the receive buffer (it grows to the largest message).
const FIRST_BUFFER: usize = 64 * 1024;
/// How long this thread watches the ring of the one connection it just served
/// for that client's next message, before it looks at the epoll set...
const NEXT_MESSAGE_SPIN: Duration = Duration::from_micros(2);
/// ...and how many messages in a row it may take that way before it looks at
/// the epoll set anyway (other clients, the listener, the mailbox, timers).
const LOOK_EVERY: u32 = 16;

/// What other threads ask a dispatch thread to do.
#[derive(Default)]
struct Requests {
    /// Connections established on another thread, to serve here.
    adopt: Vec<Connection>,
    /// Connections whose outbound queue became non-empty.
    backlog: Vec<u64>,
    /// Connections to close.
    close: Vec<u64>,
}

/// A dispatch thread's inbox, reachable from any thread.
pub(crate) struct Mailbox {
    requests: Mutex<Requests>,
    waker: Waker,
}

impl Mailbox {
    fn post(&self, f: impl FnOnce(&mut Requests)) {
        f(&mut self.requests.lock());
        self.waker.wake();
    }

    pub(crate) fn post_backlog(&self, id: u64) {
        self.post(|r| r.backlog.push(id));
    }

    pub(crate) fn post_close(&self, id: u64) {
        self.post(|r| r.close.push(id));
    }

    pub(crate) fn wake(&self) {
        self.waker.wake();
    }
}

struct Pending {
    handshake: Handshake,
    timer: TimerId,
}

/// One dispatch thread's state.
pub(crate) struct Shard {
    index: usize,
    reactor: Reactor,
    mailbox: Arc<Mailbox>,
    connections: HashMap<u64, Connection>,
    ready: VecDeque<u64>,
    queued: HashSet<u64>,
    /// Handshakes in progress by token; tokens grow, so the first is the oldest.
    handshakes: BTreeMap<u64, Pending>,
    limits: Limits,
    next_handshake: u64,
    buffer: Vec<u8>,
    /// Whether watching a served connection's ring finds its next message.
    next_spins: SpinHistory,
    /// How long to watch it: [`NEXT_MESSAGE_SPIN`], or the options' shorter
    /// spin (zero: never).
    next_spin: Duration,
    /// Messages taken in a row without a look at the epoll set.
    unlooked: u32,
}

impl Shard {
    pub(crate) fn new(index: usize, options: &crate::Options) -> crate::Result<Shard> {
        let reactor = Reactor::new(options.spin)?;
        let mailbox = Arc::new(Mailbox { requests: Mutex::new(Requests::default()), waker: reactor.waker() });
        Ok(Shard {
            index,
            reactor,
            mailbox,
            connections: HashMap::new(),
            ready: VecDeque::new(),
            queued: HashSet::new(),
            handshakes: BTreeMap::new(),
            limits: Limits::new(options),
            next_handshake: 0,
            buffer: vec![0; FIRST_BUFFER],
            next_spins: SpinHistory::default(),
            next_spin: options.spin.min(NEXT_MESSAGE_SPIN),
            unlooked: 0,
        })
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn mailbox(&self) -> Arc<Mailbox> {
        Arc::clone(&self.mailbox)
    }

    /// The dispatch loop, until the server stops.
    pub(crate) fn run(mut self, shared: &Arc<Shared>) {
        if self.index == 0 {
            if let Err(e) = self.reactor.register(shared.listener.socket_fd(), LISTENER_TOKEN) {
                shared.call("on_error", None, |h| h.on_error(None, &e));
            }
        }
        let mut events = Vec::new();
        while !shared.stopping.load(Ordering::Acquire) {
            if self.next_message_here() {
                self.unlooked += 1;
                events.clear();
            } else {
                self.unlooked = 0;
                let timeout = if self.ready.is_empty() { None } else { Some(Duration::ZERO) };
                if let Err(e) = self.reactor.poll(&mut events, timeout) {
                    shared.call("on_error", None, |h| h.on_error(None, &e));
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
            for &event in &events {
                match event {
                    Event::Readable(LISTENER_TOKEN) => self.accept_clients(shared),
                    Event::Readable(token) | Event::Timer(token) if token & HANDSHAKE_BIT != 0 => {
                        self.advance_handshake(shared, token)
                    }
                    Event::Readable(id) => self.mark_ready(id),
                    Event::Timer(LISTENER_RETRY) => {
                        if let Err(e) = self.reactor.register(shared.listener.socket_fd(), LISTENER_TOKEN) {
                            shared.call("on_error", None, |h| h.on_error(None, &e));
                        }
                    }
                    Event::Timer(_) => {}
                    Event::Woken => self.take_requests(shared),
                }
            }
            let turn = self.ready.len();
            for _ in 0..turn {
                let Some(id) = self.ready.pop_front() else { break };
                self.queued.remove(&id);
                if self.serve(shared, id) {
                    self.mark_ready(id);
                }
            }
            if turn > 0 {
                self.reactor.note_activity();
            }
        }
        for (_, pending) in std::mem::take(&mut self.handshakes) {
            self.reactor.deregister(pending.handshake.fd());
        }
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.remove(shared, id, None);
        }
    }

    /// True when the one connection in the line, just served, has its next
    /// message in its ring already or within [`NEXT_MESSAGE_SPIN`]: then it is
    /// served without a look at the epoll set. Between two cores that look (a
    /// system call, and a nested epoll set) can outlast the client's turn: on
    /// a 2-vCPU EPYC one client's 64 B round trip through the server took
    /// 0.99-1.00 µs with the look first, 1.74-1.85x that of Stream↔Stream, and
    /// 0.64-0.78 µs (1.14-1.22x) with this (four interleaved pairs; one core
    /// and 16 or 64 clients unchanged). It is skipped while these spins keep
    /// missing (a client on this core, or a slow one), when the machine is
    /// crowded, and every [`LOOK_EVERY`] messages, so other sources wait at
    /// most that many messages of one client.
    fn next_message_here(&mut self) -> bool {
        if self.ready.len() != 1 || self.unlooked >= LOOK_EVERY {
            return false;
        }
        let Some(connection) = self.ready.front().and_then(|id| self.connections.get(id)) else { return false };
        let stream = &connection.inner.stream;
        let now = Instant::now();
        if crate::placement::crowded(now) {
            return false;
        }
        if let Some(budget) = self.next_spins.budget(self.next_spin) {
            let until = now + budget;
            loop {
                if stream.next_message_len().is_some() {
                    self.next_spins.found();
                    return true;
                }
                std::hint::spin_loop();
                if Instant::now() >= until {
                    self.next_spins.missed();
                    break;
                }
            }
        }
        // A client on this CPU (two processes on one core): hand the CPU over
        // to it, as a blocking wait does (`Stream::hand_over`). Nothing is
        // armed, so neither side writes an eventfd or sleeps: the client,
        // which hands over in turn (this side's CPU goes into the
        // connection's placement hint here), takes the reply and sends its
        // next message while this thread yields. One core of a 2-vCPU EPYC,
        // one client: 3.7 µs per round trip through the server against 5.7 µs
        // with the client sleeping (0.82x a futex ping-pong between two
        // threads). Publishing the hint alone, the client handing over and
        // this thread sleeping, measured worse (7.05 µs): this thread was then
        // woken for every message. An error is for the receive to report.
        stream.hand_over().unwrap_or(true)
    }

    fn mark_ready(&mut self, id: u64) {
        if self.queued.insert(id) {
            self.ready.push_back(id);
        }
    }

    fn take_requests(&mut self, shared: &Arc<Shared>) {
        let requests = std::mem::take(&mut *self.mailbox.requests.lock());
        for connection in requests.adopt {
            self.adopt(shared, connection);
        }
        for id in requests.backlog {
            if self.connections.contains_key(&id) {
                self.mark_ready(id);
            }
        }
        for id in requests.close {
            self.remove(shared, id, None);
        }
    }

    /// Serves one connection for one turn: sends what its queue can, then
    /// delivers at most one message. True when more may be waiting.
    fn serve(&mut self, shared: &Arc<Shared>, id: u64) -> bool {
        let Some(connection) = self.connections.get(&id).cloned() else { return false };
        let inner = &connection.inner;
        if inner.close_requested.load(Ordering::Acquire) {
            self.remove(shared, id, None);
            return false;
        }
        // What does not fit stays queued, and the stream is armed for space.
        let flushed = {
            let mut outbound = inner.outbound.lock();
            outbound.flush(&inner.stream).map(|()| outbound.pauses_reading())
        };
        match flushed {
            Err(e) => {
                self.fail(shared, &connection, e);
                return false;
            }
            // Backpressure: the peer is not taking its replies. Its messages
            // wait (without keeping the pollable fd readable); the wake-up for
            // freed space brings it back here.
            Ok(true) => {
                if let Err(e) = inner.stream.pause_receiving() {
                    self.fail(shared, &connection, e);
                }
                return false;
            }
            Ok(false) => {}
        }
        match inner.stream.try_recv_into(&mut self.buffer) {
            Ok(n) => {
                let data = &self.buffer[..n];
                shared.call("on_data", Some(&connection), |h| h.on_data(&connection, data));
                true
            }
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => {
                let needed = e.needed().unwrap_or(self.buffer.len() * 2);
                self.buffer.resize(needed, 0);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) if matches!(e.kind(), ErrorKind::PeerClosed | ErrorKind::Closed) => {
                self.remove(shared, id, None);
                false
            }
            Err(e) => {
                self.fail(shared, &connection, e);
                false
            }
        }
    }

    fn fail(&mut self, shared: &Arc<Shared>, connection: &Connection, e: Error) {
        shared.call("on_error", Some(connection), |h| h.on_error(Some(connection), &e));
        self.remove(shared, connection.id(), Some(&e));
    }

    /// Takes a connection off this thread: the closer sends what is queued and
    /// the close; `on_close` runs here.
    fn remove(&mut self, shared: &Arc<Shared>, id: u64, reason: Option<&Error>) {
        let Some(connection) = self.connections.remove(&id) else { return };
        self.reactor.deregister(connection.inner.stream.pollable_fd());
        connection.inner.removed.store(true, Ordering::Release);
        shared.connections.lock().remove(id);
        shared.closer.close(connection.clone());
        shared.call("on_close", Some(&connection), |h| h.on_close(&connection, reason));
    }

    /// Starts serving an established connection on this thread.
    fn adopt(&mut self, shared: &Arc<Shared>, connection: Connection) {
        let id = connection.id();
        if let Err(e) = self.reactor.register(connection.inner.stream.pollable_fd(), id) {
            shared.connections.lock().remove(id);
            shared.call("on_error", Some(&connection), |h| h.on_error(Some(&connection), &e));
            shared.closer.close(connection);
            return;
        }
        self.connections.insert(id, connection.clone());
        shared.call("on_connect", Some(&connection), |h| h.on_connect(&connection));
        // Messages may already wait, and try_recv arms the wake-up.
        self.mark_ready(id);
    }

    // -------------------------------------------------------------- accepting

    fn accept_clients(&mut self, shared: &Arc<Shared>) {
        // A bounded number per turn: clients connecting without pause must not
        // keep the loop from its connections (the listener stays readable).
        let budget = if self.connections.is_empty() { ACCEPTS_PER_TURN } else { ACCEPTS_PER_BUSY_TURN };
        for _ in 0..budget {
            let pending = match shared.listener.try_accept_pending() {
                Ok(Some(pending)) => pending,
                Ok(None) => return,
                Err(e) if e.kind() == ErrorKind::Closed => return,
                Err(e) => {
                    // Out of fds, most likely: say so, and rest the listener a
                    // moment (it stays readable: watching it now would spin).
                    shared.call("on_error", None, |h| h.on_error(None, &e));
                    self.reactor.deregister(shared.listener.socket_fd());
                    self.reactor.add_timer(Instant::now() + FD_BACKOFF, LISTENER_RETRY);
                    return;
                }
            };
            let deadline = Instant::now() + shared.options.handshake_timeout;
            let mut handshake = Handshake::new(pending, deadline);
            let uid = handshake.credentials().uid;
            if let Some(why) = shared.connections.lock().refusal(uid, &shared.options) {
                let err = Error::new(ErrorKind::ResourceExhausted, why);
                self.refused(shared, handshake.refuse(RejectReason::ServerError, err));
                continue;
            }
            self.make_room(shared, uid);
            self.next_handshake += 1;
            let token = HANDSHAKE_BIT | self.next_handshake;
            if let Err(e) = self.reactor.register(handshake.fd(), token) {
                self.refused(shared, handshake.refuse(RejectReason::ServerError, e));
                continue;
            }
            let timer = self.reactor.add_timer(deadline, token);
            self.handshakes.insert(token, Pending { handshake, timer });
            // The HELLO is often there already.
            self.advance_handshake(shared, token);
        }
    }

    /// Makes room for one more client of `uid` among the handshakes awaiting
    /// their HELLO: while the limits say one must give way, the oldest is looked
    /// at first (its HELLO may be there) and refused if it still sent none.
    fn make_room(&mut self, shared: &Arc<Shared>, uid: u32) {
        // Bounded: each look refuses, finishes or moves past its HELLO the
        // handshake it looked at.
        for _ in 0..=self.handshakes.len() {
            let handshakes = self.handshakes.iter().map(|(token, p)| (*token, &p.handshake));
            let Some(token) = self.limits.to_evict(uid, handshakes) else { return };
            self.advance_handshake(shared, token);
            let still_waiting = self.handshakes.get(&token).is_some_and(|p| p.handshake.awaits_hello());
            if still_waiting {
                if let Some(mut pending) = self.take_handshake(token) {
                    let err = Error::new(
                        ErrorKind::ResourceExhausted,
                        "the server is busy and this client had not sent its HELLO; try again",
                    );
                    self.refused(shared, pending.handshake.refuse(RejectReason::ServerError, err));
                }
            }
        }
    }

    fn take_handshake(&mut self, token: u64) -> Option<Pending> {
        let pending = self.handshakes.remove(&token)?;
        self.forget_handshake(&pending);
        Some(pending)
    }

    /// Stops watching a handshake taken out of the map.
    fn forget_handshake(&mut self, pending: &Pending) {
        self.reactor.deregister(pending.handshake.fd());
        self.reactor.cancel_timer(pending.timer);
    }

    fn refused(&self, shared: &Arc<Shared>, e: Error) {
        shared.listener.note_rejection(e.clone());
        shared.call("on_error", None, |h| h.on_error(None, &e));
    }

    fn advance_handshake(&mut self, shared: &Arc<Shared>, token: u64) {
        // Out of the map while it advances, so that the limits can look at the others.
        let Some(mut pending) = self.handshakes.remove(&token) else { return };
        let uid = pending.handshake.credentials().uid;
        if pending.handshake.awaits_hello()
            && !self.limits.room_for_segment(uid, self.handshakes.values().map(|p| &p.handshake))
        {
            self.finish_answered(shared);
        }
        let (limits, others) = (self.limits, &self.handshakes);
        let room = || limits.room_for_segment(uid, others.values().map(|p| &p.handshake));
        match pending.handshake.advance(&shared.listener, room) {
            Ok(Progress::Waiting) => {
                self.handshakes.insert(token, pending);
            }
            Ok(Progress::Done(stream)) => {
                self.forget_handshake(&pending);
                self.established(shared, *stream);
            }
            Err(e) => {
                self.forget_handshake(&pending);
                self.refused(shared, e);
            }
        }
    }

    /// Advances the handshakes that hold a segment (their READY may be
    /// there): a client that sent its READY must not take the place a
    /// newcomer needs, whichever socket the reactor reported first.
    fn finish_answered(&mut self, shared: &Arc<Shared>) {
        let holding: Vec<u64> =
            self.handshakes.iter().filter(|(_, p)| p.handshake.holds_segment()).map(|(token, _)| *token).collect();
        for token in holding {
            self.advance_handshake(shared, token);
        }
    }

    /// Registers a new connection and hands it to its dispatch thread.
    fn established(&mut self, shared: &Arc<Shared>, stream: crate::stream::Stream) {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let target = (id as usize) % shared.mailboxes.len();
        let connection =
            Connection::new(id, stream, shared.options.max_queued_bytes, Arc::clone(&shared.mailboxes[target]));
        shared.connections.lock().insert(connection.clone());
        if target == self.index {
            self.adopt(shared, connection);
        } else {
            shared.mailboxes[target].post(|r| r.adopt.push(connection));
        }
    }
}

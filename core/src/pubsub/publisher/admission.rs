//! The publisher's background thread: it watches the listening socket and every
//! subscriber's control socket, runs each new subscriber's handshake on a
//! short-lived thread of its own (so a silent client delays nobody), and notes
//! a closed socket as a subscriber that left.
//!
//! Handshakes in progress are bounded, overall and per uid, by the options'
//! `max_pending_handshakes` and `max_pending_handshakes_per_uid`. When a
//! bound is reached, the oldest client (of that uid, for the uid's bound)
//! that has not sent its SUBSCRIBE yet gives way to the newcomer (it gets a
//! REJECT and its handshake ends), as a listener's silent clients do:
//! connections that never speak, made again as fast as they end, cannot keep
//! subscribers out. Only when every handshake in the way has spoken is the
//! newcomer refused, with a REJECT saying so; with a per-uid bound below the
//! overall one, clients of one uid that speak and then stall cannot keep
//! another uid's subscribers out.

use std::collections::VecDeque;

use super::*;

/// The subscriber handshakes in progress, oldest first, and their bounds.
pub(super) struct Admissions {
    next_id: u64,
    running: VecDeque<Admission>,
    /// Most handshakes at once.
    overall: usize,
    /// Most handshakes at once of one uid.
    per_uid: usize,
}

/// One handshake in progress, on its own thread.
struct Admission {
    id: u64,
    /// Who connected, per the kernel.
    uid: u32,
    /// A duplicate of its socket, to end it if it must give way.
    socket: OwnedFd,
    /// Set by its thread once its first record arrived (or here, once one
    /// was seen waiting in the socket).
    spoke: Arc<AtomicBool>,
}

impl Admission {
    /// Whether the client sent its first record: its thread read one, or one
    /// waits in the socket (the thread of a client that spoke may not have
    /// run yet). Remembered once seen.
    fn has_spoken(&self) -> bool {
        if !self.spoke.load(Ordering::Acquire) && platform::has_unread_bytes(self.socket.as_fd()) {
            self.spoke.store(true, Ordering::Release);
        }
        self.spoke.load(Ordering::Acquire)
    }
}

/// Why a newcomer was refused: mostly the bound that every handshake in its
/// way (all of them, or those of its uid) had reached, having spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Busy {
    /// `max_pending_handshakes` clients are joining.
    Overall(usize),
    /// `max_pending_handshakes_per_uid` clients of this uid are joining.
    Uid { uid: u32, limit: usize },
    /// The publisher could not duplicate the socket (out of descriptors).
    NoDescriptor,
}

impl Busy {
    fn message(self, topic: &str) -> String {
        match self {
            Busy::Overall(n) => format!("topic '{topic}' is busy with {n} subscribers joining; try again"),
            Busy::Uid { uid, limit } => {
                format!("uid {uid} is at its limit of {limit} subscribers joining topic '{topic}' at once; try again")
            }
            Busy::NoDescriptor => format!("the publisher of topic '{topic}' is out of file descriptors; try again"),
        }
    }
}

/// Refuses a client whose handshake cannot go on now (REJECT 7, best effort).
fn refuse_busy(socket: BorrowedFd<'_>, why: &str) {
    let _ = control::send(socket, &control::encode_reject(RejectReason::ServerError, why), &[]);
}

impl Admissions {
    /// No handshakes yet, with the bounds `options` set.
    pub(super) fn new(options: &Options) -> Admissions {
        Admissions {
            next_id: 0,
            running: VecDeque::new(),
            overall: options.max_pending_handshakes,
            per_uid: options.max_pending_handshakes_per_uid,
        }
    }

    /// Room for one more handshake on `socket`, of `uid`: its id and the flag
    /// its thread sets when the client speaks. When a bound is reached, the
    /// oldest silent handshake within it is ended (REJECT, shutdown); the
    /// bound is the error when none is silent.
    fn enter(&mut self, socket: BorrowedFd<'_>, uid: u32) -> std::result::Result<(u64, Arc<AtomicBool>), Busy> {
        let of_uid = self.running.iter().filter(|a| a.uid == uid).count();
        let full = if of_uid >= self.per_uid {
            Some(Busy::Uid { uid, limit: self.per_uid })
        } else if self.running.len() >= self.overall {
            Some(Busy::Overall(self.overall))
        } else {
            None
        };
        if let Some(busy) = full {
            let within = |a: &Admission| matches!(busy, Busy::Overall(_)) || a.uid == uid;
            let silent = self.running.iter().position(|a| within(a) && !a.has_spoken()).ok_or(busy)?;
            if let Some(ended) = self.running.remove(silent) {
                refuse_busy(
                    ended.socket.as_fd(),
                    "the topic is busy and this client had not sent its SUBSCRIBE; try again",
                );
                platform::shutdown(ended.socket.as_fd());
            }
        }
        // Without a duplicate the handshake could not be made to give way.
        let duplicate = socket.try_clone_to_owned().map_err(|_| Busy::NoDescriptor)?;
        let (id, spoke) = (self.next_id, Arc::new(AtomicBool::new(false)));
        self.next_id += 1;
        self.running.push_back(Admission { id, uid, socket: duplicate, spoke: Arc::clone(&spoke) });
        Ok((id, spoke))
    }

    /// Handshake `id` ended (or was ended).
    fn leave(&mut self, id: u64) {
        self.running.retain(|a| a.id != id);
    }
}

impl Shared {
    /// Runs the publisher side of a subscription on an accepted socket, whose
    /// place among the handshakes in progress (`admission`) it gives up just
    /// before the subscriber learns it is in.
    pub(super) fn admit(
        &self,
        socket: UnixStream,
        credentials: Credentials,
        admission: u64,
        spoke: &AtomicBool,
    ) -> Result<()> {
        let fd = socket.as_fd();
        let deadline = Instant::now() + self.options.handshake_timeout;
        let reject = |err: Error| {
            let reason = RejectReason::for_error(err.kind());
            let _ = control::send(fd, &control::encode_reject(reason, err.message()), &[]);
            err
        };
        let mut fds = Vec::new();
        let (kind, body) = records::receive_raw(fd, &mut fds, Some(deadline))?;
        spoke.store(true, Ordering::Release);
        if let Some(uids) = &self.options.allowed_uids {
            if !uids.contains(&credentials.uid) {
                return Err(reject(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("uid {} is not allowed to subscribe", credentials.uid),
                )));
            }
        }
        if kind == control::HELLO {
            return Err(reject(Error::new(
                ErrorKind::ProtocolViolation,
                format!("'{}' is a publish/subscribe topic: subscribe to it, a stream cannot connect", self.topic),
            )));
        }
        if kind != records::SUBSCRIBE || !fds.is_empty() {
            return Err(reject(Error::new(ErrorKind::ProtocolViolation, "expected a SUBSCRIBE record")));
        }
        let mut responder = Responder::new(&self.keypair, &self.topic)?;
        let accepted = responder.read_hello(&body, &self.policy).map_err(reject)?;
        if self.state.lock().members.len() >= self.topic_options.max_subscribers {
            return Err(reject(Error::new(
                ErrorKind::ResourceExhausted,
                format!("topic '{}' has its maximum of {} subscribers", self.topic, self.topic_options.max_subscribers),
            )));
        }
        let (reply, session) = responder.write_reply(&accepted.choice)?;
        let read_only = platform::reopen_read_only(self.broadcast.fd()).map_err(reject)?;
        control::send(fd, &control::encode(records::WELCOME, &reply), &[read_only.as_fd(), self.own_wake.for_peer()])?;
        drop(read_only);
        let (kind, body) = records::receive_raw(fd, &mut fds, Some(deadline))?;
        if kind != control::READY || !body.is_empty() || fds.len() != 2 {
            return Err(Error::new(
                ErrorKind::ProtocolViolation,
                "expected a READY record with the cursor memfd and the subscriber's wake-up eventfd",
            ));
        }
        let mut fds = fds.into_iter();
        let (Some(cursor_fd), Some(wake)) = (fds.next(), fds.next()) else {
            return Err(Error::new(ErrorKind::ProtocolViolation, "READY lost its descriptors"));
        };
        platform::check_peer_wake(wake.as_fd())?;
        let cursor = Cursor::open(cursor_fd)?;
        let mut st = self.state.lock();
        if st.closed {
            return Err(Error::new(ErrorKind::Closed, "the topic was closed"));
        }
        let id = st.next_id;
        st.next_id += 1;
        let start = st.next_seq;
        let mut sender = session.send;
        // The first key says where this subscriber starts: the next message.
        let mut first = st.key.clone();
        first.first_seq = start;
        let record = records::seal(records::KEY, &mut sender, first.encode().expose())?;
        // Its place is free before the subscriber knows it is in: the next
        // client it (or its uid) starts never finds this one in the way.
        self.admissions.lock().leave(admission);
        platform::send_now(fd, &record)?;
        self.poller.add(fd, id)?;
        let info = SubscriberInfo { id, public_key: accepted.client, credentials, joined_at: start };
        st.members.push(Member { info, socket, cursor, wake, sender, last_woken: 0 });
        self.membership_changed();
        Ok(())
    }

    /// A member's socket became readable: it left (end of stream), or it wrote
    /// something, which a subscriber never does after set-up.
    pub(super) fn member_readable(&self, id: u64) {
        let mut st = self.state.lock();
        let Some(m) = st.members.iter().find(|m| m.info.id == id) else { return };
        let mut buf = Vec::new();
        let (open, bytes) = match platform::recv_available(m.socket.as_fd(), &mut buf, 64) {
            Ok(open) => (open, buf.len()),
            Err(_) => (false, 0),
        };
        if !open || bytes > 0 {
            let reason = if bytes > 0 { ByeReason::Violation } else { ByeReason::Removed };
            self.drop_members(&mut st, &[id], reason);
            self.rotate(&mut st);
            drop(st);
            // A publisher waiting for this member's progress looks again.
            platform::wake_peer(self.own_wake.for_peer());
        }
    }
}

/// The publisher's thread: accepts, notices departures, rotates on schedule.
pub(super) fn control_loop(sh: &Arc<Shared>) {
    let mut tokens = Vec::new();
    while !sh.closed.load(Ordering::Acquire) {
        let timeout = sh.topic_options.rekey_interval.map(|i| {
            let since = sh.state.lock().last_rotation.elapsed();
            i.saturating_sub(since).max(Duration::from_millis(1))
        });
        if sh.poller.wait(&mut tokens, timeout).is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if sh.closed.load(Ordering::Acquire) {
            break;
        }
        for &token in &tokens {
            match token {
                WAKE_TOKEN => {}
                LISTENER_TOKEN => accept_all(sh),
                id => sh.member_readable(id),
            }
        }
        if let Some(interval) = sh.topic_options.rekey_interval {
            let mut st = sh.state.lock();
            if st.last_rotation.elapsed() >= interval {
                sh.rotate(&mut st);
            }
        }
    }
}

/// Accepts every waiting connection and starts its handshake on a thread.
fn accept_all(sh: &Arc<Shared>) {
    loop {
        let socket = match sh.bound.listener.accept() {
            Ok((socket, _)) => socket,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(_) => return,
        };
        let credentials =
            match socket.set_nonblocking(true).ok().and_then(|()| platform::peer_credentials(socket.as_fd()).ok()) {
                Some(c) => c,
                None => continue,
            };
        let entered = sh.admissions.lock().enter(socket.as_fd(), credentials.uid);
        let (id, spoke) = match entered {
            Ok(entered) => entered,
            Err(busy) => {
                refuse_busy(socket.as_fd(), &busy.message(&sh.topic));
                continue;
            }
        };
        let sh2 = Arc::clone(sh);
        let spawned = std::thread::Builder::new().name("shmsock-sub-handshake".into()).spawn(move || {
            let _ = sh2.admit(socket, credentials, id, &spoke);
            sh2.admissions.lock().leave(id);
        });
        if spawned.is_err() {
            sh.admissions.lock().leave(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A client's socket as the publisher holds it, and the client's end.
    fn client(spoke: bool) -> (UnixStream, UnixStream) {
        let (publisher_end, mut client_end) = UnixStream::pair().expect("socketpair");
        if spoke {
            client_end.write_all(b"SUBSCRIBE").expect("write");
        }
        (publisher_end, client_end)
    }

    fn admissions(overall: usize, per_uid: usize) -> Admissions {
        Admissions::new(&Options::new().max_pending_handshakes(overall, per_uid))
    }

    /// True if the publisher ended this client: a REJECT came, then the end.
    fn was_refused(mut client_end: UnixStream) -> bool {
        client_end.set_nonblocking(true).expect("nonblocking");
        let mut got = Vec::new();
        client_end.read_to_end(&mut got).is_ok() && got.first() == Some(&control::REJECT)
    }

    #[test]
    fn a_uid_at_its_bound_is_refused_while_another_uid_gets_in() {
        let mut a = admissions(8, 2);
        let clients: Vec<_> = (0..3).map(|_| client(true)).collect();
        assert!(a.enter(clients[0].0.as_fd(), 1000).is_ok());
        assert!(a.enter(clients[1].0.as_fd(), 1000).is_ok());
        assert_eq!(a.enter(clients[2].0.as_fd(), 1000).err(), Some(Busy::Uid { uid: 1000, limit: 2 }));
        let other = client(true);
        assert!(a.enter(other.0.as_fd(), 1001).is_ok(), "another uid has room");
        assert!(Busy::Uid { uid: 1000, limit: 2 }.message("t").contains("uid 1000 is at its limit of 2"));
    }

    #[test]
    fn at_a_uid_bound_its_oldest_silent_client_gives_way_not_another_uids() {
        let mut a = admissions(8, 2);
        let (others_silent, others_end) = client(false);
        a.enter(others_silent.as_fd(), 7).expect("room");
        let (silent, silent_end) = client(false);
        let (spoken, spoken_end) = client(true);
        a.enter(silent.as_fd(), 1000).expect("room");
        a.enter(spoken.as_fd(), 1000).expect("room");
        let newcomer = client(true);
        a.enter(newcomer.0.as_fd(), 1000).expect("the silent one gives way");
        assert_eq!(a.running.len(), 3);
        assert!(was_refused(silent_end), "the uid's silent client got a REJECT and the end");
        assert!(!was_refused(spoken_end), "the client that spoke keeps its place");
        assert!(!was_refused(others_end), "another uid's silent client keeps its place");
    }

    #[test]
    fn when_all_places_are_taken_a_silent_client_of_any_uid_gives_way() {
        let mut a = admissions(2, 2);
        let (silent, silent_end) = client(false);
        let spoken = client(true);
        a.enter(silent.as_fd(), 1).expect("room");
        a.enter(spoken.0.as_fd(), 2).expect("room");
        let newcomer = client(true);
        a.enter(newcomer.0.as_fd(), 3).expect("the silent one gives way");
        assert!(was_refused(silent_end));
        // Now everyone has spoken: the next newcomer is refused, and one leaving makes room.
        let late = client(true);
        assert_eq!(a.enter(late.0.as_fd(), 4).err(), Some(Busy::Overall(2)));
        let first = a.running.front().map(|e| e.id).expect("two running");
        a.leave(first);
        assert!(a.enter(late.0.as_fd(), 4).is_ok());
    }
}

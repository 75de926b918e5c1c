//! The publisher's background thread: it watches the listening socket and every
//! subscriber's control socket, runs each new subscriber's handshake on a
//! short-lived thread of its own (so a silent client delays nobody), and notes
//! a closed socket as a subscriber that left.
//!
//! Handshakes in progress are bounded ([`MAX_PENDING`]). When they are all
//! taken, the oldest client that has not sent its SUBSCRIBE yet gives way to
//! the newcomer (it gets a REJECT and its handshake ends), as a listener's
//! silent clients do: connections that never speak, made again as fast as
//! they end, cannot keep subscribers out. Only when every handshake in
//! progress has spoken is the newcomer refused, with a REJECT saying so.

use std::collections::VecDeque;

use super::*;

/// The subscriber handshakes in progress, oldest first.
#[derive(Default)]
pub(super) struct Admissions {
    next_id: u64,
    running: VecDeque<Admission>,
}

/// One handshake in progress, on its own thread.
struct Admission {
    id: u64,
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

/// Refuses a client whose handshake cannot go on now (REJECT 7, best effort).
fn refuse_busy(socket: BorrowedFd<'_>, why: &str) {
    let _ = control::send(socket, &control::encode_reject(RejectReason::ServerError, why), &[]);
}

impl Admissions {
    /// Room for one more handshake on `socket`: its id and the flag its
    /// thread sets when the client speaks. When every place is taken, the
    /// oldest silent handshake is ended (REJECT, shutdown); None when none is
    /// silent (or the socket cannot be duplicated).
    fn enter(&mut self, socket: &UnixStream) -> Option<(u64, Arc<AtomicBool>)> {
        if self.running.len() >= MAX_PENDING {
            let silent = self.running.iter().position(|a| !a.has_spoken())?;
            let ended = self.running.remove(silent)?;
            refuse_busy(
                ended.socket.as_fd(),
                "the topic is busy and this client had not sent its SUBSCRIBE; try again",
            );
            platform::shutdown(ended.socket.as_fd());
        }
        let duplicate = socket.as_fd().try_clone_to_owned().ok()?;
        let (id, spoke) = (self.next_id, Arc::new(AtomicBool::new(false)));
        self.next_id += 1;
        self.running.push_back(Admission { id, socket: duplicate, spoke: Arc::clone(&spoke) });
        Some((id, spoke))
    }

    /// Handshake `id` ended (or was ended).
    fn leave(&mut self, id: u64) {
        self.running.retain(|a| a.id != id);
    }
}

impl Shared {
    /// Runs the publisher side of a subscription on an accepted socket.
    pub(super) fn admit(&self, socket: UnixStream, credentials: Credentials, spoke: &AtomicBool) -> Result<()> {
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
        let Some((id, spoke)) = sh.admissions.lock().enter(&socket) else {
            refuse_busy(
                socket.as_fd(),
                &format!("topic '{}' is busy with {MAX_PENDING} subscribers joining; try again", sh.topic),
            );
            continue;
        };
        let sh2 = Arc::clone(sh);
        let spawned = std::thread::Builder::new().name("shmsock-sub-handshake".into()).spawn(move || {
            let _ = sh2.admit(socket, credentials, &spoke);
            sh2.admissions.lock().leave(id);
        });
        if spawned.is_err() {
            sh.admissions.lock().leave(id);
        }
    }
}

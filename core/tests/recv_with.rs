//! `Stream::recv_with` and `RecvBuf`: receiving into storage the caller makes
//! ready once the message's length is known, with one `Instant` deadline.
//! Both ends run in this process (a listener thread accepts); the sender's
//! `send_resumable` leaves a message half in the ring to stop it mid-message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmsock::{ErrorKind, Keypair, Listener, Options, RecvBuf, SendProgress, Stream};

/// Long enough for anything that should happen on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

fn pair(ring: u32) -> (Stream, Stream) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("recv-with-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let kp = Keypair::generate();
    let listener = Listener::bind(&name, &Options::new().keypair(kp.clone()).ring_size(ring)).unwrap();
    let key = *kp.public();
    let client = std::thread::spawn(move || Stream::connect(&name, &Options::new().server_key(key).ring_size(ring)));
    let server = listener.accept_timeout(Some(WAIT)).unwrap();
    (client.join().unwrap().unwrap(), server)
}

fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn soon() -> Option<Instant> {
    Some(Instant::now() + WAIT)
}

/// A RecvBuf that records each `prepare`, as a binding's allocator would.
#[derive(Default)]
struct Recorded {
    storage: Vec<u8>,
    prepared: Vec<usize>,
}

impl RecvBuf for Recorded {
    fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
        self.prepared.push(len);
        self.storage = vec![0; len];
        Ok(())
    }
    fn bytes(&mut self) -> &mut [u8] {
        &mut self.storage
    }
}

#[test]
fn a_message_larger_than_a_first_guess_is_received_whole_in_one_call() {
    let (client, server) = pair(4096);
    for (len, seed) in [(0usize, 1u8), (1, 2), (5000, 3), (100_000, 4)] {
        let sent = message(len, seed);
        let sender = std::thread::scope(|s| {
            let h = s.spawn(|| client.send_timeout(&sent, Some(WAIT)));
            let mut buf = Recorded::default();
            let n = server.recv_with(&mut buf, soon()).unwrap();
            assert_eq!(n, len);
            assert_eq!(buf.prepared, vec![len], "prepare is called once, with the message's length");
            assert!(buf.storage == sent, "{len} B: other bytes arrived");
            h.join().unwrap()
        });
        sender.unwrap();
    }
    // A Vec and a slice are RecvBufs too; a slice too small keeps the message.
    client.send(&message(300, 5)).unwrap();
    let mut small = [0u8; 10];
    let e = server.recv_with(&mut small[..], soon()).unwrap_err();
    assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(300)));
    let mut v = Vec::new();
    assert_eq!(server.recv_with(&mut v, soon()).unwrap(), 300);
    assert_eq!(v, message(300, 5));
}

#[test]
fn a_deadline_already_passed_takes_only_what_has_arrived() {
    let (client, server) = pair(4096);
    let mut v = Vec::new();
    let past = Some(Instant::now());
    assert_eq!(server.recv_with(&mut v, past).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(server.try_recv_with(&mut v).unwrap_err().kind(), ErrorKind::WouldBlock);
    client.send(b"here").unwrap();
    // The message is in the ring: a past deadline still delivers it.
    assert_eq!(server.recv_with(&mut v, past).unwrap(), 4);
    assert_eq!(v, b"here");
}

#[test]
fn a_timeout_mid_message_keeps_it_for_the_next_receive() {
    let (client, server) = pair(4096);
    let sent = message(30_000, 9);
    // Half the message goes into the ring; the sender then stops.
    assert!(matches!(client.send_resumable(&sent).unwrap(), SendProgress::Partial { .. }));
    let mut buf = Recorded::default();
    let t = Instant::now();
    let e = server.recv_with(&mut buf, Some(t + Duration::from_millis(100))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(buf.prepared, vec![30_000], "the length was known from the first fragment");
    assert_eq!(server.try_recv_with(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    assert_eq!(server.stats().messages_received, 0);
    // The sender goes on; the next receive (with a fresh buffer) completes the
    // message, the part received before included.
    std::thread::scope(|s| {
        s.spawn(|| {
            let until = Instant::now() + WAIT;
            while let SendProgress::Partial { .. } = client.send_resumable(&sent).unwrap() {
                assert!(Instant::now() < until, "the receiver never made room");
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let mut again = Recorded::default();
        assert_eq!(server.recv_with(&mut again, soon()).unwrap(), 30_000);
        assert_eq!(again.prepared, vec![30_000]);
        assert!(again.storage == sent, "the resumed message differs");
    });
    client.send(b"next").unwrap();
    let mut v = Vec::new();
    assert_eq!(server.recv_with(&mut v, soon()).unwrap(), 4);
    assert_eq!(v, b"next");
}

/// A RecvBuf that refuses (as an allocator out of memory would) keeps the
/// message queued, and the stream goes on.
#[test]
fn a_refusing_buffer_keeps_the_message() {
    struct Refuses;
    impl RecvBuf for Refuses {
        fn prepare(&mut self, len: usize) -> shmsock::Result<()> {
            Err(shmsock::Error::new(ErrorKind::ResourceExhausted, format!("no memory for {len} B")))
        }
        fn bytes(&mut self) -> &mut [u8] {
            &mut []
        }
    }
    /// Says yes but gives less than it promised: an InvalidArgument, never a panic.
    struct Lies;
    impl RecvBuf for Lies {
        fn prepare(&mut self, _len: usize) -> shmsock::Result<()> {
            Ok(())
        }
        fn bytes(&mut self) -> &mut [u8] {
            &mut []
        }
    }
    // The whole message fits the ring: it is sent at once.
    let (client, server) = pair(64 * 1024);
    client.send(&message(20_000, 3)).unwrap();
    let e = server.recv_with(&mut Refuses, soon()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
    let e = server.recv_with(&mut Lies, soon()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let mut v = Vec::new();
    assert_eq!(server.recv_with(&mut v, soon()).unwrap(), 20_000);
    assert_eq!(v, message(20_000, 3));
}

#[test]
fn a_closed_or_gone_peer_ends_the_receive() {
    let (client, server) = pair(4096);
    client.send(b"last").unwrap();
    client.close().unwrap();
    let mut v = Vec::new();
    assert_eq!(server.recv_with(&mut v, soon()).unwrap(), 4, "messages sent before the close arrive");
    assert_eq!(server.recv_with(&mut v, soon()).unwrap_err().kind(), ErrorKind::PeerClosed);
    assert_eq!(server.try_recv_with(&mut v).unwrap_err().kind(), ErrorKind::PeerClosed);

    // Dropped without close while the receiver waits: PeerClosed (the drop
    // closes) or PeerGone, never a hang.
    let (client, server) = pair(4096);
    std::thread::scope(|s| {
        let h = s.spawn(|| server.recv_with(&mut Vec::new(), soon()));
        std::thread::sleep(Duration::from_millis(20));
        drop(client);
        let kind = h.join().unwrap().unwrap_err().kind();
        assert!(matches!(kind, ErrorKind::PeerClosed | ErrorKind::PeerGone), "{kind:?}");
    });
    server.close().unwrap();
    assert_eq!(server.recv_with(&mut Vec::new(), soon()).unwrap_err().kind(), ErrorKind::Closed);
}

/// `next_message_len` tells the length of what is there without taking it:
/// a whole small message, the first fragment of a large one, a message partly
/// received; nothing on an empty ring or after the peer's close.
#[test]
fn next_message_len_looks_without_taking() {
    let (a, b) = pair(4096);
    assert_eq!(b.next_message_len(), None, "nothing sent yet");
    a.send(b"hello").unwrap();
    assert_eq!(b.next_message_len(), Some(5));
    assert_eq!(b.next_message_len(), Some(5), "looking takes nothing");
    assert_eq!(b.try_recv().unwrap(), b"hello");
    assert_eq!(b.next_message_len(), None);

    // Larger than the ring: the first fragment says the whole length.
    let big = message(20_000, 3);
    let sender = {
        let big = big.clone();
        std::thread::spawn(move || {
            a.send(&big).unwrap();
            a
        })
    };
    let mut seen = None;
    for _ in 0..10_000 {
        seen = b.next_message_len();
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(seen, Some(20_000));
    // Partly received (a try takes what is there and keeps it): still the
    // whole length. (The sender may have kept up and completed it.)
    match b.try_recv() {
        Ok(got) => assert_eq!(got, big),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
            assert_eq!(b.next_message_len(), Some(20_000), "the partial message's length");
            assert_eq!(b.recv_timeout(Some(WAIT)).unwrap(), big);
        }
    }
    let a = sender.join().unwrap();
    a.close().unwrap();
    assert_eq!(b.next_message_len(), None, "a CLOSE is no message");
}

//! Publish/subscribe in one process: delivery, both slow-subscriber policies,
//! key rotation and removal, the read-only broadcast segment, a hostile
//! publisher, and bad input. (Multi-process cases: `pubsub_procs.rs`.)

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use shmsock::pubsub::broadcast::{SLOTS_OFFSET, SLOT_HEADER, WRITE_SEQ};
use shmsock::{ErrorKind, Keypair, Listener, Options, Publisher, SlowSubscribers, Stream, Subscriber, TopicOptions};

const T: Option<Duration> = Some(WAIT);

fn publisher(name: &str, topic: &TopicOptions) -> (Publisher, Keypair) {
    init();
    let kp = Keypair::generate();
    let p = Publisher::bind_with(name, &Options::new().keypair(kp.clone()), topic).expect("bind topic");
    (p, kp)
}

fn subscribe(name: &str, kp: &Keypair) -> Subscriber {
    Subscriber::connect(name, &Options::new().server_key(*kp.public()).recv_timeout(T)).expect("subscribe")
}

fn latest(slots: u32) -> TopicOptions {
    TopicOptions::new().slots(slots).max_message_size(4096).policy(SlowSubscribers::Latest)
}

fn reliable(slots: u32, timeout: Duration) -> TopicOptions {
    TopicOptions::new().slots(slots).max_message_size(4096).policy(SlowSubscribers::Reliable { timeout })
}

#[test]
fn every_subscriber_gets_every_message_in_order() {
    for require_chacha in [false, true] {
        let name = unique_name("ps-all");
        init();
        let kp = Keypair::generate();
        let topic = reliable(8, WAIT);
        let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()).require_chacha(require_chacha), &topic)
            .unwrap();
        assert_eq!(p.cipher(), expected_cipher(require_chacha));
        let subs: Vec<Subscriber> = (0..3).map(|_| subscribe(&name, &kp)).collect();
        p.wait_for_subscribers(3, T).unwrap();
        const N: u64 = 300;
        let readers: Vec<_> = subs
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    for i in 0..N {
                        let m = s.recv().unwrap();
                        assert_eq!((m.sequence, m.lost), (i, 0));
                        assert_eq!(check_message(&m.data), Some(i), "message {i} intact");
                    }
                    s.cipher()
                })
            })
            .collect();
        for i in 0..N {
            p.publish(&message(i, 16 + (i as usize * 37) % 4000)).unwrap();
        }
        for r in readers {
            assert_eq!(r.join().unwrap(), expected_cipher(require_chacha));
        }
        assert_eq!(p.dropped_count(), 0);
    }
}

#[test]
fn zero_length_and_max_length_messages() {
    let name = unique_name("ps-len");
    let (p, kp) = publisher(&name, &latest(4));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    p.publish(b"").unwrap();
    p.publish(&message(1, 4096)).unwrap();
    assert_eq!(s.recv().unwrap().data, b"");
    assert_eq!(check_message(&s.recv().unwrap().data), Some(1));
    let e = p.publish(&[0u8; 4097]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge, "{e}");
}

#[test]
fn latest_topic_reports_lag_and_never_waits() {
    let name = unique_name("ps-lag");
    let (p, kp) = publisher(&name, &latest(8));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    // A subscriber that never reads costs the publisher nothing: these all
    // return without waiting (a wait would need the subscriber).
    for i in 0..100 {
        p.publish(&message(i, 64)).unwrap();
    }
    let first = s.recv().unwrap();
    assert_eq!(first.lost, 92, "messages 0..92 were overwritten");
    assert_eq!(first.sequence, 92);
    assert_eq!(check_message(&first.data), Some(92));
    for i in 93..100 {
        let m = s.recv().unwrap();
        assert_eq!((m.sequence, m.lost), (i, 0));
        assert_eq!(check_message(&m.data), Some(i));
    }
    assert_eq!(s.lost(), 92);
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn reliable_topic_drops_a_subscriber_that_never_reads_after_its_timeout() {
    let name = unique_name("ps-slow");
    let (p, kp) = publisher(&name, &reliable(4, Duration::from_millis(200)));
    let stuck = subscribe(&name, &kp);
    let reader = subscribe(&name, &kp);
    p.wait_for_subscribers(2, T).unwrap();
    let reading = std::thread::spawn(move || {
        for i in 0..20 {
            let m = reader.recv().unwrap();
            assert_eq!((m.sequence, m.lost, check_message(&m.data)), (i, 0, Some(i)));
        }
        reader
    });
    for i in 0..20 {
        p.publish(&message(i, 100)).unwrap();
    }
    let reader = reading.join().unwrap();
    assert_eq!(p.dropped_count(), 1);
    assert_eq!(p.subscriber_count(), 1);
    // The stuck subscriber learns why; it may first read what it still can.
    let mut ended = None;
    for _ in 0..10 {
        match stuck.recv() {
            Ok(m) => assert!(check_message(&m.data).is_some()),
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    let e = ended.expect("the dropped subscriber gets an error");
    assert_eq!(e.kind(), ErrorKind::PeerClosed, "{e}");
    assert!(e.message().contains("fell behind"), "{e}");
    // The other one goes on.
    p.publish(&message(20, 10)).unwrap();
    assert_eq!(reader.recv().unwrap().sequence, 20);
}

#[test]
fn an_oversized_message_on_a_full_reliable_topic_waits_for_nobody() {
    let name = unique_name("ps-oversized");
    // A timeout far longer than the test: publish must not wait for it.
    let (p, kp) = publisher(&name, &reliable(4, Duration::from_secs(3600)));
    let slow = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    for i in 0..4 {
        p.publish(&message(i, 10)).unwrap();
    }
    // The ring is full and the subscriber reads nothing.
    let e = p.publish(&vec![0; 4097]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge, "{e}");
    assert_eq!(p.check_size(4097).unwrap_err().kind(), ErrorKind::MessageTooLarge);
    p.check_size(4096).unwrap();
    assert_eq!((p.dropped_count(), p.subscriber_count(), p.sequence()), (0, 1, 4));
    assert_eq!(slow.recv().unwrap().sequence, 0);
}

fn readable(fd: std::os::fd::BorrowedFd<'_>, wait: Duration) -> bool {
    let mut fds = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: one valid pollfd; bounded wait.
    unsafe { libc::poll(fds.as_mut_ptr(), 1, wait.as_millis() as i32) == 1 }
}

#[test]
fn try_publish_says_would_block_and_the_pollable_fd_says_when_to_retry() {
    let name = unique_name("ps-try");
    let (p, kp) = publisher(&name, &reliable(4, Duration::from_secs(3600)));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    for i in 0..4 {
        p.try_publish(&message(i, 32)).unwrap();
    }
    assert_eq!(p.publish_deadline(), None);
    let e = p.try_publish(&message(4, 32)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock, "{e}");
    assert_eq!(p.sequence(), 4, "nothing was published");
    assert!(p.publish_deadline().is_some());
    assert!(!readable(p.pollable_fd(), Duration::ZERO), "nothing moved yet");
    // The subscriber reads one: the publisher's fd says so, and the retry goes in.
    assert_eq!(s.recv().unwrap().sequence, 0);
    assert!(readable(p.pollable_fd(), WAIT), "the subscriber's progress wakes the publisher");
    p.try_publish(&message(4, 32)).unwrap();
    assert_eq!(p.publish_deadline(), None);
    assert!(!readable(p.pollable_fd(), Duration::ZERO), "try_publish consumed the wake-up");
    for i in 1..5 {
        let m = s.recv().unwrap();
        assert_eq!((m.sequence, check_message(&m.data)), (i, Some(i)));
    }
}

#[test]
fn try_publish_drops_a_stuck_subscriber_once_the_timeout_passed() {
    let name = unique_name("ps-try-drop");
    let (p, kp) = publisher(&name, &reliable(2, Duration::from_millis(30)));
    let stuck = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    p.try_publish(&message(0, 10)).unwrap();
    p.try_publish(&message(1, 10)).unwrap();
    assert_eq!(p.try_publish(&message(2, 10)).unwrap_err().kind(), ErrorKind::WouldBlock);
    let deadline = p.publish_deadline().expect("a blocked publish has a deadline");
    std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
    p.try_publish(&message(2, 10)).unwrap();
    assert_eq!((p.dropped_count(), p.subscriber_count(), p.sequence()), (1, 0, 3));
    drop(stuck);
}

#[test]
fn try_publish_on_a_latest_topic_never_blocks() {
    let name = unique_name("ps-try-latest");
    let (p, kp) = publisher(&name, &latest(2));
    let _s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    for i in 0..10 {
        p.try_publish(&message(i, 10)).unwrap();
    }
    assert_eq!(p.try_publish(&vec![0; 4097]).unwrap_err().kind(), ErrorKind::MessageTooLarge);
    p.close();
    assert_eq!(p.try_publish(b"x").unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn a_removed_subscriber_cannot_read_later_messages() {
    let name = unique_name("ps-rm");
    let (p, kp) = publisher(&name, &latest(16));
    let stays = subscribe(&name, &kp);
    let removed = subscribe(&name, &kp);
    p.wait_for_subscribers(2, T).unwrap();
    p.publish(&message(0, 50)).unwrap();
    assert_eq!(removed.recv().unwrap().sequence, 0);
    assert_eq!(stays.recv().unwrap().sequence, 0);
    let id = p.subscribers().iter().map(|s| s.id).max().unwrap();
    let epoch = p.epoch();
    p.remove(id).unwrap();
    assert_eq!(p.epoch(), epoch + 1);
    p.publish(&message(1, 50)).unwrap();
    assert_eq!(check_message(&stays.recv().unwrap().data), Some(1));
    // It keeps its mapping and its old key: the new message does not open.
    let e = removed.open_with_held_keys(1).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{e}");
    // The old message still does (it was published while it belonged).
    assert_eq!(check_message(&removed.open_with_held_keys(0).unwrap()), Some(0));
    let e = removed.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerClosed, "{e}");
    assert!(e.message().contains("removed"), "{e}");
    assert_eq!(p.remove(id).unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn a_leaving_subscriber_rotates_the_key() {
    let name = unique_name("ps-leave");
    let (p, kp) = publisher(&name, &latest(16));
    let stays = subscribe(&name, &kp);
    let leaves = subscribe(&name, &kp);
    p.wait_for_subscribers(2, T).unwrap();
    assert_eq!(p.epoch(), 1);
    leaves.close();
    eventually("the publisher notices the departure", || p.subscriber_count() == 1);
    assert_eq!(p.epoch(), 2);
    p.publish(&message(7, 100)).unwrap();
    let m = stays.recv().unwrap();
    assert_eq!(check_message(&m.data), Some(7));
    assert_eq!(stays.epoch(), 2);
    assert_eq!(leaves.recv().unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn scheduled_rotation_keeps_delivering() {
    let name = unique_name("ps-rekey");
    let topic = latest(64).rekey_interval(Some(Duration::from_millis(20)));
    let (p, kp) = publisher(&name, &topic);
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    let mut i = 0;
    while p.epoch() < 4 {
        p.publish(&message(i, 40)).unwrap();
        let m = s.recv().unwrap();
        assert_eq!(check_message(&m.data), Some(i));
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    p.publish(&message(i, 40)).unwrap();
    assert_eq!(check_message(&s.recv().unwrap().data), Some(i));
    assert!(s.epoch() >= 4);
}

#[test]
fn closing_the_topic_delivers_what_was_published_then_peer_closed() {
    let name = unique_name("ps-close");
    let (p, kp) = publisher(&name, &latest(16));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    for i in 0..5 {
        p.publish(&message(i, 30)).unwrap();
    }
    p.close();
    assert_eq!(p.publish(b"x").unwrap_err().kind(), ErrorKind::Closed);
    for i in 0..5 {
        assert_eq!(check_message(&s.recv().unwrap().data), Some(i));
    }
    let e = s.recv().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PeerClosed, "{e}");
    assert_no_endpoint_files(&name);
    // The name is free at once.
    drop(publisher(&name, &latest(2)));
}

#[test]
fn recv_into_keeps_a_message_that_does_not_fit() {
    let name = unique_name("ps-into");
    let (p, kp) = publisher(&name, &latest(4));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    p.publish(&message(3, 100)).unwrap();
    let mut small = [0u8; 10];
    let e = s.recv_into(&mut small).unwrap_err();
    assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(100)));
    let mut buf = [0u8; 200];
    let d = s.recv_into(&mut buf).unwrap();
    assert_eq!((d.len, d.sequence, d.lost), (100, 0, 0));
    assert_eq!(check_message(&buf[..100]), Some(3));
}

#[test]
fn pollable_fd_reports_a_message_after_would_block() {
    let name = unique_name("ps-poll");
    let (p, kp) = publisher(&name, &latest(4));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
    let readable = || {
        let mut fds = [libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) == 1 }
    };
    assert!(!readable());
    p.publish(b"wake").unwrap();
    let mut fds = [libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: one valid pollfd; bounded wait.
    assert_eq!(unsafe { libc::poll(fds.as_mut_ptr(), 1, WAIT.as_millis() as i32) }, 1);
    assert_eq!(s.try_recv().unwrap().data, b"wake");
    assert_eq!(s.try_recv().unwrap_err().kind(), ErrorKind::WouldBlock);
}

#[test]
fn pollable_fd_reports_a_message_after_a_receive_timed_out() {
    let name = unique_name("ps-poll-timeout");
    let (p, kp) = publisher(&name, &latest(4));
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    assert_eq!(s.recv_timeout(Some(Duration::ZERO)).unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(s.recv_timeout(Some(Duration::from_millis(5))).unwrap_err().kind(), ErrorKind::Timeout);
    p.publish(b"wake").unwrap();
    let mut fds = [libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
    // SAFETY: one valid pollfd; bounded wait.
    assert_eq!(unsafe { libc::poll(fds.as_mut_ptr(), 1, WAIT.as_millis() as i32) }, 1);
    assert_eq!(s.try_recv().unwrap().data, b"wake");
}

#[test]
fn closing_a_subscriber_ends_a_receive_in_progress_with_closed() {
    let name = unique_name("ps-close-recv");
    let (p, kp) = publisher(&name, &latest(4));
    let s = Arc::new(subscribe(&name, &kp));
    p.wait_for_subscribers(1, T).unwrap();
    let receiver = {
        let s = Arc::clone(&s);
        std::thread::spawn(move || s.recv_timeout(T))
    };
    // The receive is waiting (or about to): either way it must end Closed.
    std::thread::sleep(Duration::from_millis(50));
    s.close();
    let e = receiver.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    assert_eq!(s.recv_timeout(T).unwrap_err().kind(), ErrorKind::Closed);
}

#[test]
fn wrong_key_allow_list_and_kind_confusion_are_refused() {
    let name = unique_name("ps-refuse");
    init();
    let kp = Keypair::generate();
    let allowed = Keypair::generate();
    let p =
        Publisher::bind_with(&name, &Options::new().keypair(kp.clone()).allow_clients([*allowed.public()]), &latest(4))
            .unwrap();
    let e = Subscriber::connect(&name, &Options::new().server_key(*Keypair::generate().public())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerKeyMismatch, "{e}");
    let e = Subscriber::connect(&name, &Options::new().server_key(*kp.public())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::HandshakeRejected, "{e}");
    let ok = Subscriber::connect(&name, &Options::new().server_key(*kp.public()).keypair(allowed.clone())).unwrap();
    // A stream client cannot connect to a topic...
    let e = Stream::connect(&name, &Options::new().server_key(*kp.public()).keypair(allowed)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{e}");
    assert!(e.message().contains("publish/subscribe"), "{e}");
    // ...nor a subscriber to a stream listener.
    let lname = unique_name("ps-listener");
    let listener = Arc::new(Listener::bind(&lname, &Options::new().keypair(kp.clone())).unwrap());
    let l2 = Arc::clone(&listener);
    let accepting = std::thread::spawn(move || l2.accept_timeout(Some(Duration::from_millis(500))).is_err());
    let e = Subscriber::connect(&lname, &Options::new().server_key(*kp.public())).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::PeerGone | ErrorKind::ProtocolViolation), "{e}");
    assert!(accepting.join().unwrap());
    assert_eq!(p.subscriber_count(), 1);
    drop(ok);
}

#[test]
fn bad_options_are_clear_errors() {
    init();
    let kp = Keypair::generate();
    let opts = Options::new().keypair(kp.clone());
    for topic in [
        TopicOptions::new().slots(3),
        TopicOptions::new().slots(1),
        TopicOptions::new().slots(1 << 20),
        TopicOptions::new().slots(1 << 16).max_message_size(1 << 20),
        TopicOptions::new().max_subscribers(0),
        TopicOptions::new().policy(SlowSubscribers::Reliable { timeout: Duration::ZERO }),
    ] {
        let e = Publisher::bind_with(&unique_name("ps-bad"), &opts, &topic).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{topic:?}: {e}");
    }
    let e = Publisher::bind(&unique_name("ps-bad"), &Options::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = Subscriber::connect(&unique_name("ps-none"), &Options::new().server_key(*kp.public())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = Subscriber::connect("bad/name", &Options::new().server_key(*kp.public())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidName);
    let e = Subscriber::connect(&unique_name("ps-nokey"), &Options::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let name = unique_name("ps-inuse");
    let _p = Publisher::bind(&name, &opts).unwrap();
    assert_eq!(Publisher::bind(&name, &opts).unwrap_err().kind(), ErrorKind::AddressInUse);
    // A subscriber whose limit is below the topic's refuses it.
    let e = Subscriber::connect(&name, &Options::new().server_key(*kp.public()).max_message_size(100)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge, "{e}");
}

// ----------------------------------------------------- the read-only segment

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn a_subscriber_cannot_write_the_broadcast_segment_by_any_route() {
    let name = unique_name("ps-ro");
    let (p, kp) = publisher(&name, &latest(4));
    let s = subscribe(&name, &kp);
    let len = p.segment_len() as usize;
    let fd = s.broadcast_fd().as_raw_fd();
    // SAFETY (whole test): system calls on descriptors we hold; mappings are
    // checked before use and unmapped.
    unsafe {
        // 1. A writable shared mapping of the descriptor received.
        let m = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0);
        assert_eq!(m, libc::MAP_FAILED, "mmap PROT_WRITE must fail");
        // 2. mprotect of a read-only mapping to writable.
        let m = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd, 0);
        assert_ne!(m, libc::MAP_FAILED);
        assert_eq!(libc::mprotect(m, len, libc::PROT_READ | libc::PROT_WRITE), -1, "mprotect must fail");
        assert!(matches!(errno(), libc::EACCES | libc::EPERM));
        libc::munmap(m, len);
        // 3. write(2) on the descriptor.
        assert_eq!(libc::pwrite(fd, b"x".as_ptr().cast(), 1, 0x80), -1, "write must fail");
        // 4. Reopen through /proc read-write, then write, map writable, resize.
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
        let rw = libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        // The kernel lets the owner reopen a memfd read-write; the seals are
        // what stop every write through it.
        assert!(rw >= 0, "reopen read-write: errno {}", errno());
        {
            assert_eq!(libc::pwrite(rw, b"x".as_ptr().cast(), 1, 0x80), -1, "write after reopen must fail");
            assert_eq!(errno(), libc::EPERM);
            let m = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, rw, 0);
            assert_eq!(m, libc::MAP_FAILED, "writable mmap after reopen must fail");
            assert_eq!(errno(), libc::EPERM);
            assert_eq!(libc::ftruncate(rw, 0), -1, "shrinking must fail");
            assert_eq!(libc::fallocate(rw, 0, 0, (len * 2) as i64), -1, "growing must fail");
            libc::close(rw);
        }
        // A private (copy-on-write) writable mapping is allowed, but writes
        // to it stay in this process: the publisher's segment is untouched.
        let m = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE, fd, 0);
        if m != libc::MAP_FAILED {
            std::ptr::write_bytes(m.cast::<u8>(), 0xff, len);
            libc::munmap(m, len);
        }
    }
    p.wait_for_subscribers(1, T).unwrap();
    p.publish(&message(5, 64)).unwrap();
    assert_eq!(check_message(&s.recv().unwrap().data), Some(5));
    let _ = s.as_fd();
}

// ------------------------------------------------------ a hostile publisher

#[test]
fn garbage_in_a_slot_is_an_error_never_a_message() {
    let name = unique_name("ps-garbage");
    let (p, kp) = publisher(&name, &latest(4));
    let slot_size = (p.segment_len() as usize - SLOTS_OFFSET) / 4;
    // Cases: flip a ciphertext byte; an impossible length; a stamp that claims
    // an overwrite the write counter denies; a blank slot.
    for case in 0..4 {
        let s = subscribe(&name, &kp);
        p.wait_for_subscribers(1, T).unwrap();
        let seq = p.sequence();
        p.publish(&message(seq, 64)).unwrap();
        let off = SLOTS_OFFSET + (seq as usize % 4) * slot_size;
        match case {
            0 => p.tamper(off + SLOT_HEADER + 20, &[0x5a]).unwrap(),
            1 => p.tamper(off + 16, &u32::MAX.to_le_bytes()).unwrap(),
            2 => p.tamper(off, &(2 * seq + 2 + 8).to_le_bytes()).unwrap(),
            // A blank slot that claims to be complete (epoch 0 was never sent).
            _ => {
                let mut blank = vec![0u8; slot_size];
                blank[..8].copy_from_slice(&(2 * seq + 2).to_le_bytes());
                p.tamper(off, &blank).unwrap();
            }
        }
        let e = s.recv().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::AuthenticationFailed | ErrorKind::ProtocolViolation), "case {case}: {e}");
        // The failure ends the subscription.
        assert_eq!(s.recv().unwrap_err().kind(), e.kind());
        drop(s);
        eventually("the failed subscriber leaves", || p.subscriber_count() == 0);
    }
}

#[test]
fn a_scribbling_publisher_never_gets_a_wrong_message_delivered() {
    let name = unique_name("ps-scribble");
    let (p, kp) = publisher(&name, &latest(8));
    let p = Arc::new(p);
    let s = subscribe(&name, &kp);
    p.wait_for_subscribers(1, T).unwrap();
    let len = p.segment_len() as usize;
    let scribbler = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            let mut rng = Rng::from_env_or_time("scribble");
            for i in 0..20_000u64 {
                p.publish(&message(i, 16 + (i as usize % 500))).unwrap();
                if i % 7 == 0 {
                    // Garbage anywhere in the ring or the counters.
                    let at = if i % 21 == 0 {
                        WRITE_SEQ
                    } else {
                        SLOTS_OFFSET + rng.below((len - SLOTS_OFFSET - 8) as u64) as usize
                    };
                    let mut junk = [0u8; 8];
                    rng.fill(&mut junk);
                    p.tamper(at, &junk).unwrap();
                }
            }
        })
    };
    let mut last = None;
    let mut delivered = 0u64;
    let end = loop {
        match s.recv_timeout(Some(Duration::from_secs(2))) {
            Ok(m) => {
                assert_eq!(check_message(&m.data), Some(m.sequence), "a delivered message is always the real one");
                assert!(last.is_none_or(|l| m.sequence > l), "sequence numbers only grow");
                last = Some(m.sequence);
                delivered += 1;
            }
            Err(e) => break e,
        }
    };
    scribbler.join().unwrap();
    eprintln!("scribbling publisher: {delivered} messages delivered, then {end}");
    assert!(
        matches!(end.kind(), ErrorKind::AuthenticationFailed | ErrorKind::ProtocolViolation | ErrorKind::Timeout),
        "{end} after {delivered} messages"
    );
}

#[test]
fn a_topic_closed_while_the_subscriber_connects_still_delivers() {
    for round in 0..20 {
        let name = unique_name("ps-race");
        let (p, kp) = publisher(&name, &latest(4));
        let key = *kp.public();
        let n = name.clone();
        let sub = std::thread::spawn(move || {
            let s = Subscriber::connect(&n, &Options::new().server_key(key).recv_timeout(T)).unwrap();
            let first = s.recv();
            (first, s.recv())
        });
        p.wait_for_subscribers(1, T).unwrap();
        p.publish(&message(round, 20)).unwrap();
        p.close();
        let (first, second) = sub.join().unwrap();
        assert_eq!(check_message(&first.unwrap().data), Some(round));
        assert_eq!(second.unwrap_err().kind(), ErrorKind::PeerClosed);
    }
}

#[test]
fn a_subscriber_claiming_an_impossible_position_is_dropped() {
    let name = unique_name("ps-cursor");
    let (p, kp) = publisher(&name, &reliable(2, WAIT));
    let liar = subscribe(&name, &kp);
    let honest = subscribe(&name, &kp);
    p.wait_for_subscribers(2, T).unwrap();
    // Ahead of anything published: impossible. The reliable publisher checks
    // cursors when the ring is full, and drops the liar instead of trusting it.
    liar.write_cursor_position(1 << 40).unwrap();
    for i in 0..4 {
        p.publish(&message(i, 30)).unwrap();
        assert_eq!(check_message(&honest.recv().unwrap().data), Some(i));
    }
    assert_eq!(p.dropped_count(), 1);
    assert_eq!(p.subscriber_count(), 1);
    let mut end = None;
    for _ in 0..4 {
        if let Err(e) = liar.recv() {
            end = Some(e);
            break;
        }
    }
    let e = end.expect("the liar is told");
    assert_eq!(e.kind(), ErrorKind::ProtocolViolation, "{e}");
    // A position far behind only holds the publisher up to its timeout, like a
    // subscriber that does not read (see the reliable timeout test).
}

/// `try_wait_for_subscribers` and `membership_fd`, what an event loop uses
/// instead of the blocking `wait_for_subscribers`: the fd becomes readable at
/// a join and at a departure, and stays quiet otherwise.
#[test]
fn try_wait_for_subscribers_follows_the_membership_fd() {
    use rustix::event::PollFlags;
    let name = unique_name("ps-members");
    let (p, kp) = publisher(&name, &latest(4));
    let readable_soon = |p: &Publisher| {
        shmsock::platform::wait_fd(p.membership_fd(), PollFlags::IN, Some(std::time::Instant::now() + WAIT)).unwrap()
    };
    let readable_now = |p: &Publisher| {
        shmsock::platform::wait_fd(p.membership_fd(), PollFlags::IN, Some(std::time::Instant::now())).unwrap()
    };
    assert!(!p.try_wait_for_subscribers(1).unwrap());
    assert!(!readable_now(&p), "readable with nothing changed");
    let s = subscribe(&name, &kp);
    let mut joined = false;
    while !joined {
        assert!(readable_soon(&p), "the join did not make the fd readable");
        joined = p.try_wait_for_subscribers(1).unwrap();
    }
    assert!(p.try_wait_for_subscribers(0).unwrap());
    assert!(!p.try_wait_for_subscribers(2).unwrap());
    assert!(!readable_now(&p), "readable after a look with nothing changed");
    drop(s);
    assert!(readable_soon(&p), "the departure did not make the fd readable");
    while p.subscriber_count() != 0 {
        assert!(readable_soon(&p));
        p.try_wait_for_subscribers(1).unwrap();
    }
    p.close();
    assert_eq!(p.try_wait_for_subscribers(1).unwrap_err().kind(), ErrorKind::Closed);
}

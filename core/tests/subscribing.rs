//! `Subscribing`, the subscriber's handshake for event loops: driven by
//! polling its fd (the same fd throughout), it subscribes without ever waiting
//! in a call; with a connect wait, a topic that binds later is found; no topic
//! is NotFound at once; a server that never answers is Timeout.

mod common;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use rustix::event::PollFlags;
use shmsock::{ErrorKind, Keypair, Listener, Options, Publisher, SubscribeProgress, Subscriber, Subscribing};

/// Drives `subscribing` as an event loop would, checking that its fd stays
/// the same.
fn drive(mut subscribing: Subscribing) -> shmsock::Result<Subscriber> {
    let fd = subscribing.fd().as_raw_fd();
    loop {
        subscribing = match subscribing.advance()? {
            SubscribeProgress::Done(subscriber) => return Ok(subscriber),
            SubscribeProgress::Waiting(subscribing) => subscribing,
        };
        assert_eq!(subscribing.fd().as_raw_fd(), fd, "the fd of a subscription changed");
        let until = subscribing.deadline().min(Instant::now() + WAIT);
        shmsock::platform::wait_fd(subscribing.fd(), PollFlags::IN, Some(until))?;
    }
}

#[test]
fn an_event_loop_subscribes_and_receives() {
    init();
    let name = unique_name("sg-talks");
    let kp = Keypair::generate();
    let publisher = Publisher::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let subscribing = Subscribing::start(&name, &Options::new().server_key(*kp.public())).unwrap();
    let subscriber = drive(subscribing).unwrap();
    assert_eq!(subscriber.publisher_public_key(), *kp.public());
    publisher.wait_for_subscribers(1, Some(WAIT)).unwrap();
    publisher.publish(b"through the loop").unwrap();
    assert_eq!(subscriber.recv_timeout(Some(WAIT)).unwrap().data, b"through the loop");
}

#[test]
fn with_a_wait_a_topic_that_binds_later_is_found() {
    init();
    let name = unique_name("sg-later");
    let kp = Keypair::generate();
    let options = Options::new().server_key(*kp.public()).connect_wait(WAIT);
    let subscribing = Subscribing::start(&name, &options).expect("waits for the topic");
    let topic = name.clone();
    let publisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let publisher = Publisher::bind(&topic, &Options::new().keypair(kp)).unwrap();
        publisher.wait_for_subscribers(1, Some(WAIT)).unwrap();
        publisher.publish(b"found you").unwrap();
        publisher
    });
    let subscriber = drive(subscribing).unwrap();
    assert_eq!(subscriber.recv_timeout(Some(WAIT)).unwrap().data, b"found you");
    let _publisher = publisher.join().unwrap();
}

#[test]
fn no_topic_is_not_found_at_once_or_at_the_end_of_the_wait() {
    init();
    let options = Options::new().server_key(*Keypair::generate().public());
    let err = Subscribing::start(&unique_name("sg-none"), &options).err().expect("nothing listens");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let options = options.connect_wait(Duration::from_millis(100));
    let subscribing = Subscribing::start(&unique_name("sg-never"), &options).expect("waits");
    let err = drive(subscribing).expect_err("nothing binds");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A stream listener that never answers the SUBSCRIBE: Timeout at the deadline.
#[test]
fn a_server_that_never_answers_times_out() {
    init();
    let name = unique_name("sg-silent");
    let kp = Keypair::generate();
    let _listener = Listener::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let options = Options::new().server_key(*kp.public()).handshake_timeout(Duration::from_millis(200));
    let subscribing = Subscribing::start(&name, &options).unwrap();
    let err = drive(subscribing).expect_err("nobody answers");
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.message().contains("did not answer"), "{err}");
}

/// Silent connections to a topic, made again as fast as they end, while
/// subscribers join: each subscriber gets in (the oldest silent handshake
/// gives way to it) and receives what is published. Before, once 32 silent
/// handshakes were running every newcomer was dropped at once, and a
/// subscriber failed with PeerGone ("is it a stream listener rather than a
/// topic?").
#[test]
fn silent_connections_do_not_keep_subscribers_out() {
    init();
    let name = unique_name("sg-flood");
    let kp = Keypair::generate();
    let publisher = Publisher::bind(&name, &Options::new().keypair(kp.clone())).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = std::thread::spawn({
        let (name, stop) = (name.clone(), stop.clone());
        move || {
            let mut silent = std::collections::VecDeque::new();
            let mut made = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match shmsock::endpoint::connect_now(&name) {
                    Ok(socket) => {
                        made += 1;
                        silent.push_back(socket);
                        if silent.len() > 200 {
                            silent.pop_front();
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            made
        }
    });
    // Time for the flood to take every place (a subscriber joining earlier
    // would only make the test easier).
    std::thread::sleep(Duration::from_millis(300));
    let options = Options::new().server_key(*kp.public()).connect_wait(WAIT).recv_timeout(Some(WAIT));
    for i in 0..5u8 {
        let subscriber = Subscriber::connect(&name, &options).unwrap_or_else(|e| panic!("subscriber {i}: {e}"));
        publisher.publish(&[i]).unwrap();
        assert_eq!(subscriber.recv().unwrap().data, [i]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let made = flood.join().unwrap();
    assert!(made > 32, "the flood made only {made} connections");
}

/// Clients that send their SUBSCRIBE and then stall hold at most
/// `max_pending_handshakes_per_uid` places: one more of their uid is refused
/// at once, with a REJECT that says why (not left to time out), and once one
/// of them gives up, a subscriber of that uid gets in again.
#[test]
fn clients_that_stall_after_subscribing_hold_at_most_their_uids_places() {
    init();
    let name = unique_name("sg-stall");
    let kp = Keypair::generate();
    let bounds = Options::new().keypair(kp.clone()).max_pending_handshakes(8, 2).handshake_timeout(WAIT * 4);
    let publisher = Publisher::bind(&name, &bounds).unwrap();
    let options = Options::new().server_key(*kp.public()).handshake_timeout(WAIT);
    let mut stalled: Vec<Subscribing> = (0..2).map(|_| Subscribing::start(&name, &options).unwrap()).collect();
    let err = Subscribing::start(&name, &options).and_then(drive).expect_err("a third client of this uid");
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    assert!(err.message().contains("at its limit of 2 subscribers joining"), "{err}");
    drop(stalled.pop());
    // The publisher notices the departure on its own time: try until it has.
    let until = Instant::now() + WAIT;
    let subscriber = loop {
        match Subscribing::start(&name, &options).and_then(drive) {
            Ok(subscriber) => break subscriber,
            Err(e) if Instant::now() < until && e.message().contains("subscribers joining") => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("a place was given up, yet: {e}"),
        }
    };
    publisher.wait_for_subscribers(1, Some(WAIT)).unwrap();
    publisher.publish(b"in").unwrap();
    assert_eq!(subscriber.recv_timeout(Some(WAIT)).unwrap().data, b"in");
    drop(stalled);
}

/// With one place for handshakes, subscribers that join one after another all
/// get in: a subscriber's place is free before it learns it is in. Before,
/// the next one could find the last one's handshake still in the way.
#[test]
fn with_one_place_subscribers_joining_one_after_another_all_get_in() {
    init();
    let name = unique_name("sg-one-place");
    let kp = Keypair::generate();
    let publisher = Publisher::bind(&name, &Options::new().keypair(kp.clone()).max_pending_handshakes(1, 1)).unwrap();
    let options = Options::new().server_key(*kp.public()).recv_timeout(Some(WAIT));
    let subscribers: Vec<Subscriber> = (0..20)
        .map(|i| Subscriber::connect(&name, &options).unwrap_or_else(|e| panic!("subscriber {i}: {e}")))
        .collect();
    publisher.wait_for_subscribers(20, Some(WAIT)).unwrap();
    publisher.publish(b"all").unwrap();
    for s in &subscribers {
        assert_eq!(s.recv().unwrap().data, b"all");
    }
}

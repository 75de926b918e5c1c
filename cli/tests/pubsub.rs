//! `shmsock pub` and `shmsock sub` as real processes: lines and binary records
//! reach every subscriber, the topic's close ends them with 0, a dead publisher
//! ends them with 6, and bad input is a clear error.

mod common;

use common::{record, split_records, unique, Env};

#[test]
fn pub_stdin_reaches_every_subscriber_and_all_exit_0() {
    let env = Env::new();
    let public = env.keygen("pub.key");
    let name = unique("ps-text");
    let mut publisher = env.spawn(&["pub", &name, "-i", "pub.key", "--subscribers", "2"]);
    publisher.wait_stderr("publishing");
    let a = env.spawn(&["sub", &name, "-s", &public, "--wait", "30"]);
    let b = env.spawn(&["sub", &name, "-s", "pub.key.pub", "--wait", "30"]);
    publisher.feed_stdin(b"one\ntwo\n\nlast without newline".to_vec());
    let publisher = publisher.finish();
    assert_eq!(publisher.code(), 0, "{}", publisher.stderr);
    for sub in [a, b] {
        let sub = sub.finish();
        assert_eq!(sub.code(), 0, "{}", sub.stderr);
        assert_eq!(sub.stdout_text(), "one\ntwo\n\nlast without newline\n");
        assert!(sub.stderr.contains("closed the topic"), "{}", sub.stderr);
    }
}

#[test]
fn binary_records_round_trip() {
    let env = Env::new();
    env.keygen("pub.key");
    let name = unique("ps-bin");
    let messages: Vec<Vec<u8>> = vec![vec![], vec![0, 10, 13, 255], vec![7u8; 5000]];
    let mut publisher = env.spawn(&["pub", &name, "-i", "pub.key", "-n", "1", "--binary", "--latest", "-q"]);
    let sub = env.spawn(&["sub", &name, "-s", "pub.key.pub", "--wait", "30", "--binary", "-q"]);
    publisher.feed_stdin(messages.iter().flat_map(|m| record(m)).collect());
    assert_eq!(publisher.finish().code(), 0);
    let sub = sub.finish();
    assert_eq!(sub.code(), 0, "{}", sub.stderr);
    assert_eq!(split_records(&sub.stdout), messages);
    assert_eq!(sub.stderr, "");
}

#[test]
fn a_killed_publisher_ends_subscribers_with_peer_gone() {
    let env = Env::new();
    env.keygen("pub.key");
    let name = unique("ps-kill");
    let mut publisher = env.spawn(&["pub", &name, "-i", "pub.key", "-n", "1"]);
    let mut sub = env.spawn(&["sub", &name, "-s", "pub.key.pub", "--wait", "30", "-q"]);
    publisher.write_stdin(b"before\n");
    assert_eq!(sub.read_line(), "before");
    publisher.signal(libc::SIGKILL);
    let sub = sub.finish();
    assert_eq!(sub.code(), 6, "{}", sub.stderr);
    assert!(sub.assert_one_error_line().contains(&name));
}

#[test]
fn bad_input_is_a_clear_error() {
    let env = Env::new();
    env.keygen("pub.key");
    let name = unique("ps-bad");
    let out = env.run(&["sub", &name, "-s", "pub.key.pub"], b"");
    assert_eq!(out.code(), 3, "no publisher: {}", out.stderr);
    out.assert_one_error_line();
    let out = env.run(&["pub", &name, "-i", "pub.key", "--slots", "3"], b"");
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("power-of-two"), "{}", out.stderr);
    let out = env.run(&["pub", &name, "-i", "pub.key", "--max-message", "4", "-q"], b"12345\n");
    assert_eq!(out.code(), 1, "{}", out.stderr);
    out.assert_one_error_line();
    let out = env.run(&["pub", "bad/name"], b"");
    assert_eq!(out.code(), 2);
}

//! Publish/subscribe across real processes: delivery to subscribers in other
//! processes, and SIGKILL of the publisher or a subscriber at random instants
//! (the others see it at once, nothing is left behind).
//!
//! Children are this test binary run again (see `common`'s process harness),
//! playing the roles below: `ppub` (a publisher driven by commands) and `psub`
//! (a subscriber that checks every message and reports in events).

mod common;

use std::io::BufRead;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use shmsock::{ErrorKind, Keypair, Options, PublicKey, Publisher, SlowSubscribers, Subscriber, TopicOptions};

/// The child process entry point (a no-op in the parent).
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    init();
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_MAX_LIFETIME);
        std::process::exit(70);
    });
    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
        // The parent is gone: do not outlive it.
        std::process::exit(71);
    });
    match role.as_str() {
        "ppub" => run_publisher(commands),
        "psub" => run_subscriber(commands),
        other => panic!("unknown role {other}"),
    }
}

fn setting(key: &str) -> Option<String> {
    std::env::var(format!("{ENV_PREFIX}{key}")).ok()
}

fn topic_options(policy: &str) -> TopicOptions {
    let policy = match policy {
        "latest" => SlowSubscribers::Latest,
        _ => SlowSubscribers::Reliable { timeout: Duration::from_secs(120) },
    };
    TopicOptions::new().slots(8).max_message_size(8192).policy(policy)
}

/// A publisher: `pub N` publishes N checkable messages, `flood` publishes until
/// killed, `quit` closes the topic and exits.
fn run_publisher(commands: mpsc::Receiver<String>) {
    let name = setting("NAME").unwrap();
    let kp = Keypair::from_file_text(&setting("KEY").unwrap(), "SHMSOCK_TEST_KEY").unwrap();
    let policy = setting("POLICY").unwrap_or_default();
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp), &topic_options(&policy)).unwrap();
    emit("BOUND");
    for line in commands {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["wait", n] => {
                p.wait_for_subscribers(n.parse().unwrap(), Some(WAIT)).unwrap();
                emit(format!("SUBS {n}"));
            }
            ["pub", n] => {
                for _ in 0..n.parse::<u64>().unwrap() {
                    let seq = p.sequence();
                    p.publish(&message(seq, 16 + (seq as usize * 131) % 8000)).unwrap();
                }
                emit(format!("PUBLISHED {}", p.sequence()));
            }
            ["flood"] => {
                emit("FLOODING");
                loop {
                    let seq = p.sequence();
                    p.publish(&message(seq, 16 + (seq as usize * 131) % 8000)).unwrap();
                }
            }
            ["quit"] => {
                p.close();
                emit("BYE");
                return;
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// A subscriber: reads `COUNT` messages (0: none until told `read`), checking
/// each, then reports `DONE <count> <lost>`; any error is reported as
/// `END <kind>`.
fn run_subscriber(commands: mpsc::Receiver<String>) {
    let name = setting("NAME").unwrap();
    let key = PublicKey::from_text(&setting("SERVER").unwrap()).unwrap();
    let count: u64 = setting("COUNT").unwrap_or_default().parse().unwrap_or(0);
    let s = Subscriber::connect(&name, &Options::new().server_key(key).recv_timeout(Some(WAIT))).unwrap();
    emit("SUBSCRIBED");
    let read = |n: Option<u64>| {
        let mut got = 0u64;
        while n.is_none_or(|n| got < n) {
            match s.recv() {
                Ok(m) => {
                    assert_eq!(check_message(&m.data), Some(m.sequence), "every delivered message is intact");
                    got += 1;
                }
                Err(e) => {
                    emit(format!("END {} after {got}", e.kind().name()));
                    return;
                }
            }
        }
        emit(format!("DONE {got} {}", s.lost()));
    };
    if count > 0 {
        read(Some(count));
    }
    for line in commands {
        match line.as_str() {
            "read" => read(None),
            "quit" => return,
            other => panic!("unknown command {other:?}"),
        }
    }
}

fn spawn_subscriber(label: &str, name: &str, key: &PublicKey, count: u64) -> Child {
    let mut c = Child::spawn(
        label,
        "psub",
        &[("NAME", name.to_string()), ("SERVER", key.to_string()), ("COUNT", count.to_string())],
    );
    c.expect("SUBSCRIBED");
    c
}

fn spawn_publisher(name: &str, kp: &Keypair, policy: &str) -> Child {
    let mut c = Child::spawn(
        "publisher",
        "ppub",
        &[("NAME", name.to_string()), ("KEY", kp.to_file_text()), ("POLICY", policy.to_string())],
    );
    c.expect("BOUND");
    c
}

#[test]
fn subscribers_in_other_processes_get_every_message() {
    let name = unique_name("pp-all");
    init();
    let kp = Keypair::generate();
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()), &topic_options("reliable")).unwrap();
    let mut subs: Vec<Child> = (0..3).map(|i| spawn_subscriber(&format!("sub{i}"), &name, kp.public(), 400)).collect();
    p.wait_for_subscribers(3, Some(WAIT)).unwrap();
    for i in 0..400u64 {
        p.publish(&message(i, 16 + (i as usize * 131) % 8000)).unwrap();
    }
    for s in &mut subs {
        s.expect("DONE 400 0");
    }
    for s in &mut subs {
        s.quit();
    }
    eventually("every subscriber left", || p.subscriber_count() == 0);
    // One rotation per departure.
    assert_eq!(p.epoch(), 4);
    assert_eq!(p.dropped_count(), 0);
}

#[test]
fn a_publisher_killed_at_any_instant_is_seen_at_once_and_leaves_nothing() {
    let mut rng = Rng::from_env_or_time("pp-kill-pub");
    for round in 0..4 {
        let name = unique_name("pp-kill-pub");
        let kp = Keypair::generate();
        let mut publisher = spawn_publisher(&name, &kp, "latest");
        let s = Subscriber::connect(&name, &Options::new().server_key(*kp.public()).recv_timeout(Some(WAIT))).unwrap();
        publisher.cmd("wait 1");
        publisher.expect("SUBS 1");
        // Even rounds: killed mid-flood while we read; odd: while we sleep in recv.
        if round % 2 == 0 {
            publisher.cmd("flood");
            publisher.expect("FLOODING");
        }
        let killer = {
            let pid = publisher.pid;
            let delay = Duration::from_micros(rng.below(20_000));
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            })
        };
        let end = loop {
            match s.recv() {
                Ok(m) => assert_eq!(check_message(&m.data), Some(m.sequence)),
                Err(e) => break e,
            }
        };
        killer.join().unwrap();
        assert_eq!(end.kind(), ErrorKind::PeerGone, "round {round}: {end}");
        publisher.wait_exit();
        drop(s);
        reclaim_and_check(&name);
    }
}

#[test]
fn a_subscriber_killed_at_any_instant_is_seen_at_once() {
    let mut rng = Rng::from_env_or_time("pp-kill-sub");
    let name = unique_name("pp-kill-sub");
    init();
    let kp = Keypair::generate();
    let p = Publisher::bind_with(&name, &Options::new().keypair(kp.clone()), &topic_options("reliable")).unwrap();
    let mut stays = spawn_subscriber("stays", &name, kp.public(), 0);
    stays.cmd("read");
    for round in 0..3 {
        // A subscriber that never reads: the reliable publisher blocks on it
        // (its timeout is two minutes) until it dies; death, not the timeout,
        // must free the publisher (a timeout would count it as dropped).
        let mut victim = spawn_subscriber(&format!("victim{round}"), &name, kp.public(), 0);
        p.wait_for_subscribers(2, Some(WAIT)).unwrap();
        let epoch = p.epoch();
        let killer = {
            let pid = victim.pid;
            let delay = Duration::from_micros(rng.below(30_000));
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            })
        };
        for _ in 0..20 {
            let seq = p.sequence();
            p.publish(&message(seq, 100)).unwrap();
        }
        killer.join().unwrap();
        victim.wait_exit();
        eventually("the publisher sees the death", || p.subscriber_count() == 1);
        assert!(p.epoch() > epoch, "the key rotated when the subscriber died");
        assert_eq!(p.dropped_count(), 0, "freed by the death, not by the timeout");
    }
    p.close();
    stays.take("the staying subscriber ends cleanly", |e| e.starts_with("END PEER_CLOSED"));
    stays.quit();
    assert_no_endpoint_files(&name);
}

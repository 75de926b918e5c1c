//! The topic_receive target: a real publisher and subscriber (in process), a
//! script of publishes, key rotations, receives and hostile writes into the
//! broadcast segment through the publisher's own mapping (the only writable
//! one: a hostile publisher).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shmsock::{ErrorKind, Options, Publisher, SlowSubscribers, Subscriber, TopicOptions};

use crate::{client_static, server_static, suite_of};

/// Slots of the fuzzed topic: few, so inputs reach wrap-around and lag soon.
pub const SLOTS: u32 = 4;
/// The largest message of the fuzzed topic.
pub const MAX_TOPIC_MESSAGE: u32 = 512;

/// One step of a topic_receive input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicOp {
    /// Publish a message of this length (bytes from the sequence number).
    Publish(u16),
    /// Write these bytes at this offset (modulo the segment's length).
    Tamper(u16, Vec<u8>),
    /// Receive until WouldBlock or an error.
    Receive,
    /// Rotate the group key.
    Rotate,
}

/// Encodes ops after a configuration byte (bit 0: 1 = AEGIS-128L, else
/// ChaCha20-Poly1305; bit 1: latest, else reliable).
pub fn encode_topic_ops(config: u8, ops: &[TopicOp]) -> Vec<u8> {
    let mut out = vec![config];
    for op in ops {
        match op {
            TopicOp::Publish(len) => {
                out.push(0);
                out.extend_from_slice(&len.to_le_bytes());
            }
            TopicOp::Tamper(offset, bytes) => {
                out.push(1);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            TopicOp::Receive => out.push(2),
            TopicOp::Rotate => out.push(3),
        }
    }
    out
}

/// The inverse of [`encode_topic_ops`] (after the configuration byte); a
/// truncated last op is dropped, an unknown opcode reads as Receive.
pub fn decode_topic_ops(mut data: &[u8]) -> Vec<TopicOp> {
    let mut ops = Vec::new();
    while let Some((&code, rest)) = data.split_first() {
        data = rest;
        let op = match code % 4 {
            0 if data.len() >= 2 => {
                let len = u16::from_le_bytes([data[0], data[1]]);
                data = &data[2..];
                TopicOp::Publish(len)
            }
            1 if data.len() >= 3 => {
                let offset = u16::from_le_bytes([data[0], data[1]]);
                let take = (data[2] as usize).min(data.len() - 3);
                let bytes = data[3..3 + take].to_vec();
                data = &data[3 + take..];
                TopicOp::Tamper(offset, bytes)
            }
            0 | 1 => break,
            2 => TopicOp::Receive,
            _ => TopicOp::Rotate,
        };
        ops.push(op);
    }
    ops
}

/// Message `seq` of `len` bytes.
fn message(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (seq as usize).wrapping_mul(7).wrapping_add(j) as u8).collect()
}

/// Runs a topic_receive input; returns the sequence numbers delivered.
/// Asserts what must hold whatever the input: every delivered message is the
/// one published under its sequence number (a hostile publisher can lose or
/// refuse messages, never change one), nothing is delivered after the
/// subscriber failed, and no call panics or hangs.
pub fn replay_topic(data: &[u8]) -> Vec<u64> {
    static TOPICS: AtomicU64 = AtomicU64::new(0);
    let Some((&config, rest)) = data.split_first() else { return Vec::new() };
    let name = format!("fuzz-topic-{}-{}", std::process::id(), TOPICS.fetch_add(1, Ordering::Relaxed));
    let policy = if config & 2 != 0 {
        SlowSubscribers::Latest
    } else {
        // A publish waits at most this for the subscriber, then drops it.
        SlowSubscribers::Reliable { timeout: Duration::from_millis(1) }
    };
    let topic = TopicOptions::new().slots(SLOTS).max_message_size(MAX_TOPIC_MESSAGE).policy(policy);
    let options =
        Options::new().keypair(server_static()).require_chacha(suite_of(config) != shmsock::CipherSuite::Aegis128L);
    let publisher = Publisher::bind_with(&name, &options, &topic).expect("a topic to fuzz");
    let client = Options::new()
        .keypair(client_static())
        .server_key(*server_static().public())
        .require_chacha(suite_of(config) != shmsock::CipherSuite::Aegis128L);
    let subscriber = Subscriber::connect(&name, &client).expect("a subscriber to fuzz");
    publisher.wait_for_subscribers(1, Some(Duration::from_secs(10))).expect("the subscriber counted");

    let mut published: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut delivered = Vec::new();
    let mut failed = false;
    let segment_len = publisher.segment_len() as usize;
    for op in decode_topic_ops(rest) {
        match op {
            TopicOp::Publish(len) => {
                let seq = publisher.sequence();
                let body = message(seq, len as usize);
                if publisher.publish(&body).is_ok() {
                    published.insert(seq, body);
                }
            }
            TopicOp::Tamper(offset, bytes) => {
                let at = offset as usize % segment_len;
                let take = bytes.len().min(segment_len - at);
                let _ = publisher.tamper(at, &bytes[..take]);
            }
            TopicOp::Rotate => {
                let _ = publisher.rotate_key();
            }
            TopicOp::Receive => {
                // Each receive takes a message or stops: bounded by the slots.
                for _ in 0..=SLOTS * 2 {
                    match subscriber.try_recv() {
                        Ok(m) => {
                            assert!(!failed, "a message was delivered after the subscriber failed");
                            let expected = published.get(&m.sequence);
                            assert_eq!(Some(&m.data), expected, "message {} is not the one published", m.sequence);
                            delivered.push(m.sequence);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            failed = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    subscriber.close();
    publisher.close();
    delivered
}

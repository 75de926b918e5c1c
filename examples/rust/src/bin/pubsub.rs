//! Publish/subscribe: one publisher, each message sealed once for every
//! subscriber.
//!
//! `pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS]` runs the publisher: it binds
//! topic NAME, prints its public key, waits for SUBSCRIBERS subscribers
//! (default 1), publishes COUNT messages (default 1000) and closes the topic.
//! `pubsub -s NAME SERVER_KEY` runs a subscriber: it prints
//! `received N messages, lost L` when the publisher closes the topic.

use shmsock::{ErrorKind, Options, Publisher, Subscriber, TopicOptions};
use shmsock_examples::{die, load_or_create, public_key_arg};

fn publish(name: &str, key: &str, count: u64, subscribers: usize) {
    let keypair = load_or_create(key.as_ref()).unwrap_or_else(|e| die("key", e));
    println!("publisher of '{name}', key {}", keypair.public());
    let options = Options::new().keypair(keypair);
    let topic = Publisher::bind_with(name, &options, &TopicOptions::new()).unwrap_or_else(|e| die("bind", e));
    topic.wait_for_subscribers(subscribers, None).unwrap_or_else(|e| die("wait", e));
    for i in 0..count {
        topic.publish(format!("tick {i}").as_bytes()).unwrap_or_else(|e| die("publish", e));
    }
    topic.close();
    println!("published {count} messages");
}

fn subscribe(name: &str, server_key: &str) {
    let key = public_key_arg(server_key).unwrap_or_else(|e| die("server key", e));
    let sub = Subscriber::connect(name, &Options::new().server_key(key)).unwrap_or_else(|e| die("subscribe", e));
    let mut received = 0u64;
    loop {
        match sub.recv() {
            Ok(_) => received += 1,
            Err(e) if e.kind() == ErrorKind::PeerClosed => break,
            Err(e) => die("recv", e),
        }
    }
    println!("received {received} messages, lost {}", sub.lost());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |s: &str| s.parse().unwrap_or_else(|e| die("number", e));
    match &args[1..] {
        [flag, name, key] if flag == "-s" => subscribe(name, key),
        [name, key] => publish(name, key, 1000, 1),
        [name, key, count] => publish(name, key, number(count), 1),
        [name, key, count, subs] => publish(name, key, number(count), number(subs) as usize),
        _ => die("usage", "pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS] | pubsub -s NAME SERVER_KEY"),
    }
}

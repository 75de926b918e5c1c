//! The producer/consumer of the original sketch.
//!
//! `producer_consumer NAME KEYFILE` runs the consumer: it serves NAME, prints its
//! public key, and prints `consumed 1k messages`, `consumed 2k messages`, ...
//! `producer_consumer -p NAME SERVER_KEY [COUNT]` runs the producer: it connects
//! and sends COUNT messages (default 10000).

use shmsock::{ErrorKind, Listener, Options, Stream};
use shmsock_examples::{die, load_or_create, public_key_arg};

fn consume(name: &str, key: &str) {
    let keypair = load_or_create(key.as_ref()).unwrap_or_else(|e| die("key", e));
    println!("consumer on '{name}', key {}", keypair.public());
    let listener = Listener::bind(name, &Options::new().keypair(keypair)).unwrap_or_else(|e| die("bind", e));
    let mut consumed = 0u64;
    loop {
        let stream = listener.accept().unwrap_or_else(|e| die("accept", e));
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.recv_into(&mut buf) {
                Ok(_) => {
                    consumed += 1;
                    if consumed % 1000 == 0 {
                        println!("consumed {}k messages", consumed / 1000);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::PeerClosed | ErrorKind::PeerGone) => break,
                Err(e) => die("recv", e),
            }
        }
    }
}

fn produce(name: &str, server_key: &str, count: u64) {
    let key = public_key_arg(server_key).unwrap_or_else(|e| die("server key", e));
    let stream = Stream::connect(name, &Options::new().server_key(key)).unwrap_or_else(|e| die("connect", e));
    for i in 0..count {
        stream.send(format!("message {i}").as_bytes()).unwrap_or_else(|e| die("send", e));
    }
    stream.close().unwrap_or_else(|e| die("close", e));
    println!("produced {count} messages");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match &args[1..] {
        [flag, name, key] if flag == "-p" => produce(name, key, 10_000),
        [flag, name, key, count] if flag == "-p" => {
            produce(name, key, count.parse().unwrap_or_else(|e| die("count", e)))
        }
        [name, key] => consume(name, key),
        _ => die("usage", "producer_consumer NAME KEYFILE | producer_consumer -p NAME SERVER_KEY [COUNT]"),
    }
}

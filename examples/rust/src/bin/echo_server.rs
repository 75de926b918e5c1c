//! Echo server: `echo_server NAME KEYFILE` serves NAME with the keypair in KEYFILE
//! (created if missing) and sends every message back.

use shmsock::{Connection, Error, Options, Server, ServerHandler};
use shmsock_examples::{die, load_or_create};

struct Echo;

impl ServerHandler for Echo {
    fn on_connect(&self, c: &Connection) {
        println!("client {} connected ({})", c.id(), c.peer_public_key().fingerprint());
    }
    fn on_data(&self, c: &Connection, data: &[u8]) {
        // Never blocks: the ring, or the connection's bounded queue. A client
        // that does not read its replies fills its queue: that reply is
        // dropped (WouldBlock), the server stops reading the client until it
        // reads (its own sends wait), and everyone else is served as before.
        if let Err(e) = c.send(data) {
            eprintln!("echo to client {} dropped: {e}", c.id());
        }
    }
    fn on_error(&self, c: Option<&Connection>, e: &Error) {
        eprintln!("error ({}): {e}", c.map_or("handshake".into(), |c| format!("client {}", c.id())));
    }
    fn on_close(&self, c: &Connection, reason: Option<&Error>) {
        println!("client {} left{}", c.id(), reason.map_or(String::new(), |e| format!(": {e}")));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, name, key] = &args[..] else { die("usage", "echo_server NAME KEYFILE") };
    let keypair = load_or_create(key.as_ref()).unwrap_or_else(|e| die("key", e));
    println!("serving '{name}' as {}", keypair.public());
    let _server = Server::start(name, &Options::new().keypair(keypair), Echo).unwrap_or_else(|e| die("bind", e));
    loop {
        std::thread::park();
    }
}

//! Echo client: `echo_client NAME SERVER_KEY [MESSAGE...]` sends each message and
//! prints the echo. SERVER_KEY is `shmsock-pk:...` or the server's key file.

use shmsock::{Options, Stream};
use shmsock_examples::{die, public_key_arg};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        die("usage", "echo_client NAME SERVER_KEY [MESSAGE...]");
    }
    let server_key = public_key_arg(&args[2]).unwrap_or_else(|e| die("server key", e));
    let stream =
        Stream::connect(&args[1], &Options::new().server_key(server_key)).unwrap_or_else(|e| die("connect", e));
    let messages: Vec<&str> =
        if args.len() > 3 { args[3..].iter().map(String::as_str).collect() } else { vec!["hello"] };
    for message in messages {
        stream.send(message.as_bytes()).unwrap_or_else(|e| die("send", e));
        let echo = stream.recv().unwrap_or_else(|e| die("recv", e));
        println!("{}", String::from_utf8_lossy(&echo));
    }
    stream.close().unwrap_or_else(|e| die("close", e));
}

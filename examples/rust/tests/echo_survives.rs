//! The shipped echo server survives a client that sends without ever reading
//! its replies: the server stops reading that client once its queue is full,
//! another client is still served, and a new one still connects.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use shmsock::{Options, PublicKey, Stream};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn echo_server_survives_a_client_that_never_reads() {
    let dir = std::env::temp_dir().join(format!("shmsock-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let name = format!("echo-survives-{}", std::process::id());
    let mut server = Command::new(env!("CARGO_BIN_EXE_echo_server"))
        .args([name.as_str(), dir.join("server.key").to_str().unwrap()])
        .env("SHMSOCK_RUNTIME_DIR", &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::env::set_var("SHMSOCK_RUNTIME_DIR", &dir);
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let key_text = first.trim().rsplit(' ').next().unwrap();
    let key = PublicKey::from_text(key_text).expect("the server prints its key");
    let options = Options::new().server_key(key).recv_timeout(Some(WAIT)).send_timeout(Some(WAIT));

    // The rude client: up to 20 MB of requests, no reads.
    // The server prints its key just before it binds: retry until it listens.
    let mut attempts = 0;
    let rude = loop {
        match Stream::connect(&name, &options) {
            Ok(stream) => break stream,
            Err(e) if e.kind() == shmsock::ErrorKind::NotFound && attempts < 200 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connecting to the echo server: {e}"),
        }
    };
    // Its replies fill its ring and its queue; the server then stops reading
    // it (backpressure), so its sends wait and, here, time out: far fewer than
    // 20 MB get through.
    let chunk = vec![1u8; 64 * 1024];
    let mut sent = 0;
    let stopped = loop {
        match rude.send_timeout(&chunk, Some(Duration::from_millis(500))) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 320, "the server kept reading a client that never reads its replies");
    };
    assert_eq!(stopped.kind(), shmsock::ErrorKind::Timeout, "{stopped}");

    let polite = Stream::connect(&name, &options).expect("a new client connects");
    for i in 0..100u32 {
        polite.send(&i.to_le_bytes()).unwrap();
        assert_eq!(polite.recv().expect("the polite client is served"), i.to_le_bytes());
    }
    polite.close().unwrap();
    drop(rude);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

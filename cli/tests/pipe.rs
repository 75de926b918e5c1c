//! `shmsock listen` and `shmsock connect` as a pipe: text and binary records
//! both ways, clean ends, a closed stdout, a dead peer, signals.

mod common;

use common::{close_alone, record, split_records, unique, Env};

/// Clients wait for the listener with --wait, so no test depends on timing.
const WAIT: &str = "30";

#[test]
fn client_stdin_reaches_server_stdout_and_both_exit_0() {
    let env = Env::new();
    env.keygen("server.key");
    let name = unique("text-up");
    let listen = env.spawn(&["listen", &name, "-i", "server.key"]);
    let connect = env.run(&["connect", &name, "--server-key", "server.key.pub", "--wait", WAIT], b"a\nb\n");
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert_eq!(listen.stdout_text(), "a\nb\n");
    assert!(listen.stderr.contains("listening on"), "{}", listen.stderr);
}

#[test]
fn server_stdin_reaches_client_stdout_with_close_on_eof() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("text-down");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "--close-on-eof"]);
    listen.write_stdin(b"one\ntwo\n\nlast without newline");
    listen.close_stdin();
    let connect = env.run(&["connect", &name, "-s", &public, "-d", "--wait", WAIT], b"");
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    assert_eq!(connect.stdout_text(), "one\ntwo\n\nlast without newline\n");
    assert_eq!(listen.finish().code(), 0);
}

#[test]
fn one_session_carries_messages_both_ways() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("both");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key"]);
    let mut connect = env.spawn(&["connect", &name, "-s", &public, "--wait", WAIT]);
    connect.write_stdin(b"from client\n");
    assert_eq!(listen.read_line(), "from client");
    listen.write_stdin(b"from server\n");
    assert_eq!(connect.read_line(), "from server");
    connect.write_stdin(b"bye\n");
    assert_eq!(listen.read_line(), "bye");
    // The client's stdin ends: it closes cleanly, and the server ends too.
    connect.close_stdin();
    let connect = connect.finish();
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert!(listen.stderr.contains("the client closed the connection"), "{}", listen.stderr);
}

fn binary_messages() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..200 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    vec![Vec::new(), big, b"x".to_vec(), Vec::new(), b"line\nwith\nnewlines\0and nul".to_vec()]
}

#[test]
fn binary_records_round_trip_client_to_server() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("bin-up");
    let listen = env.spawn(&["listen", &name, "-i", "server.key", "--binary"]);
    let messages = binary_messages();
    let input: Vec<u8> = messages.iter().flat_map(|m| record(m)).collect();
    let connect = env.run(&["connect", &name, "-s", &public, "--binary", "--wait", WAIT], &input);
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert_eq!(listen.stdout, input);
    assert_eq!(split_records(&listen.stdout), messages);
}

#[test]
fn binary_records_round_trip_server_to_client() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("bin-down");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-b", "-N"]);
    let messages = binary_messages();
    let input: Vec<u8> = messages.iter().flat_map(|m| record(m)).collect();
    listen.feed_stdin(input);
    let connect = env.run(&["connect", &name, "-s", &public, "-b", "-d", "--wait", WAIT], b"");
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    assert_eq!(split_records(&connect.stdout), messages);
    assert_eq!(listen.finish().code(), 0);
}

#[test]
fn a_truncated_binary_record_is_an_error() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("bin-trunc");
    let _listen = env.spawn(&["listen", &name, "-i", "server.key", "-b", "-q"]);
    let connect = env.run(&["connect", &name, "-s", &public, "-b", "-q", "--wait", WAIT], &[5, 0, 0, 0, b'a']);
    assert_eq!(connect.code(), 1);
    assert!(connect.assert_one_error_line().contains("inside a record"));
}

#[test]
fn keep_open_serves_clients_one_after_another() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("keep");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "--keep-open", "-d"]);
    for i in 0..3 {
        let input = format!("client {i}\n");
        let c = env.run(&["connect", &name, "-s", &public, "-q", "--wait", WAIT], input.as_bytes());
        assert_eq!(c.code(), 0, "{}", c.stderr);
        assert_eq!(listen.read_line(), format!("client {i}"));
    }
    // TERM ends it cleanly, with the documented 128+15.
    listen.signal(libc::SIGTERM);
    let listen = listen.finish();
    assert_eq!(listen.code(), 143, "{}", listen.stderr);
    // The name was released.
    let list = env.run(&["list", "--json"], b"");
    let all: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(all.as_array().unwrap().iter().all(|e| e["name"] != name.as_str()), "{all}");
}

#[test]
fn a_signal_closes_the_connection_cleanly() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("sigint");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    let mut connect = env.spawn(&["connect", &name, "-s", &public, "--wait", WAIT]);
    connect.write_stdin(b"hello\n");
    assert_eq!(listen.read_line(), "hello");
    connect.signal(libc::SIGINT);
    let connect = connect.finish();
    assert_eq!(connect.code(), 130, "{}", connect.stderr);
    // The server saw a clean close, not a crash.
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("epipe");
    let mut listen = env.spawn_raw_stdout(&["listen", &name, "-i", "server.key", "-d", "-q"]);
    let mut out = std::io::BufReader::new(listen.take_stdout());
    let mut connect = env.spawn(&["connect", &name, "-s", &public, "-q", "--wait", WAIT]);
    connect.write_stdin(b"first\n");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "first\n");
    close_alone(out); // as `| head -1` does
    connect.write_stdin(b"second\n");
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert_eq!(listen.stderr, "");
    // The client sees the server's clean close, with its stdin still open.
    let connect = connect.finish();
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
}

#[test]
fn a_dead_server_is_peer_gone() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("gone");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "-d"]);
    let connect = env.spawn(&["connect", &name, "-s", &public, "-d", "-q", "--wait", WAIT]);
    // The server has the client's READY: the client is connected.
    listen.wait_stderr("client connected");
    listen.signal(libc::SIGKILL);
    let connect = connect.finish();
    assert_eq!(connect.code(), 6, "{}", connect.stderr);
    let line = connect.assert_one_error_line();
    assert!(line.starts_with("shmsock: receiving from") && line.contains("without closing"), "{line}");
}

#[test]
fn listen_json_prints_one_ready_line_with_the_key() {
    let env = Env::new();
    let public = env.keygen("server.key");
    let name = unique("ready");
    let mut listen = env.spawn(&["listen", &name, "-i", "server.key", "--json"]);
    let line = listen.wait_stderr("\"event\"");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("the ready line is JSON");
    assert_eq!(ready["event"], "ready", "{ready}");
    assert_eq!(ready["name"], name.as_str(), "{ready}");
    assert_eq!(ready["public_key"], public.as_str(), "{ready}");
    assert_eq!(ready["pid"], listen.id(), "{ready}");
    assert!(ready["fingerprint"].as_str().is_some_and(|f| f.len() == 19), "{ready}");
    // A script connects with the key it read from the ready line.
    let key = ready["public_key"].as_str().unwrap().to_string();
    let connect = env.run(&["connect", &name, "-s", &key, "--wait", WAIT], b"hi\n");
    assert_eq!(connect.code(), 0, "{}", connect.stderr);
    let listen = listen.finish();
    assert_eq!(listen.code(), 0, "{}", listen.stderr);
    assert_eq!(listen.stdout_text(), "hi\n", "stdout carries only messages");
    // Only the ready line: no human informational lines.
    let lines: Vec<&str> = listen.stderr.lines().collect();
    assert_eq!(lines, [line.as_str()], "{}", listen.stderr);
}

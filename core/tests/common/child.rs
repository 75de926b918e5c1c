//! The child's side: [`child_main`] picks the role, and the `server` and
//! `client` roles run the connection command language ([`run_command`]).

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmsock::{Backend, Error, ErrorKind, Keypair, Listener, Options, PublicKey, Stream};

use super::*;

// --------------------------------------------------------------------- the child

/// Prints one event for the parent.
pub fn emit(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{EVENT_MARK}{}", line.as_ref());
    let _ = out.flush();
}

pub(super) fn setting(key: &str) -> Option<String> {
    std::env::var(format!("{ENV_PREFIX}{key}")).ok().filter(|v| !v.is_empty())
}

pub(super) fn setting_num<T: std::str::FromStr>(key: &str) -> Option<T> {
    setting(key).map(|v| v.parse().unwrap_or_else(|_| panic!("bad {key}: {v}")))
}

/// The options a server or client child builds from its settings.
pub(super) fn options_from_settings(server: bool) -> Options {
    let mut o = Options::new();
    let key = setting("KEY").expect("SHMSOCK_TEST_KEY");
    if server {
        o = o.keypair(Keypair::from_file_text(&key, "SHMSOCK_TEST_KEY").expect("server keypair"));
    } else {
        o = o.server_key(PublicKey::from_text(&key).expect("server public key"));
        if let Some(own) = setting("CLIENT_KEY") {
            o = o.keypair(Keypair::from_file_text(&own, "SHMSOCK_TEST_CLIENT_KEY").expect("client keypair"));
        }
    }
    if let Some(allow) = setting("ALLOW") {
        o = o.allow_clients(allow.split(',').map(|k| PublicKey::from_text(k).expect("allowed key")));
    }
    if let Some(uids) = setting("ALLOW_UIDS") {
        o = o.allow_uids(uids.split(',').map(|u| u.parse().expect("uid")));
    }
    if let Some(b) = setting("BACKEND") {
        o = o.backend(Backend::from_name(&b).expect("backend name"));
    }
    if setting("CHACHA").as_deref() == Some("1") {
        o = o.require_chacha(true);
    }
    if let Some(r) = setting_num("RING") {
        o = o.ring_size(r);
    }
    if let Some(m) = setting_num("MAXMSG") {
        o = o.max_message_size(m);
    }
    if let Some(ms) = setting_num("HS_MS") {
        o = o.handshake_timeout(Duration::from_millis(ms));
    }
    if let Some(us) = setting_num("SPIN_US") {
        o = o.spin(Duration::from_micros(us));
    }
    o
}

/// The entry point of every role; a no-op unless `SHMSOCK_TEST_ROLE` is set.
pub fn child_main() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    init();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        emit(format!("PANIC {}", info.to_string().replace('\n', " | ")));
        default_hook(info);
    }));
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_MAX_LIFETIME);
        emit("WATCHDOG");
        eprintln!("child watchdog: exiting after {CHILD_MAX_LIFETIME:?}");
        std::process::exit(70);
    });
    let (tx, commands) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                return;
            }
        }
        // The parent is gone (or closed our stdin): do not outlive it (after a
        // grace period for a quit that is under way).
        std::thread::sleep(Duration::from_secs(5));
        std::process::exit(71);
    });
    match role.as_str() {
        "server" => run_server(commands),
        "client" => run_client(commands),
        "silent_server" => run_silent_server(commands),
        "half_hello" => run_half_hello(commands),
        "evil_segment_server" => run_evil_segment_server(commands),
        "evil_ready_client" => run_evil_ready_client(commands),
        "connect_loop" => run_connect_loop(),
        other => panic!("unknown role {other}"),
    }
}

/// Reports (once each) the named segments this process has mapped, so the
/// parent can check that none is left in /dev/shm.
fn emit_segments(seen: &Mutex<BTreeSet<String>>) {
    let mut seen = seen.lock().unwrap();
    for name in own_named_segments() {
        if seen.insert(name.clone()) {
            emit(format!("SEG {name}"));
        }
    }
}

fn describe(stream: &Stream) -> String {
    format!("{:?} {:?} {} {}", stream.cipher(), stream.backend(), stream.ring_size(), stream.peer_max_message_size())
}

/// A server's connections by id: the stream and its command queue.
type Connections = HashMap<usize, (Arc<Stream>, Sender<String>)>;

/// A server: binds, accepts connections on a thread (numbering them from 0),
/// runs each connection's commands on its own thread. With `AUTO=echo` each new
/// connection starts echoing at once. `quit` closes everything and returns (so
/// the listener's files are removed).
fn run_server(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(true);
    let listener = match Listener::bind(&name, &options) {
        Ok(l) => l,
        Err(e) => {
            emit(format!("BIND_ERR {:?}", e.kind()));
            eprintln!("bind error: {e}");
            // Wait for quit so the parent can read the event.
            let _ = commands.recv_timeout(WAIT);
            return;
        }
    };
    emit("BOUND");
    let auto = setting("AUTO");
    let conns: Arc<Mutex<Connections>> = Arc::default();
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(BTreeSet::new());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut next = 0usize;
            let mut rejected = 0;
            while !stop.load(Ordering::Acquire) {
                let result = listener.accept_timeout(Some(Duration::from_millis(100)));
                if listener.rejected_count() != rejected {
                    rejected = listener.rejected_count();
                    let why = listener.last_rejection().map(|e| format!("{:?}", e.kind())).unwrap_or_default();
                    emit(format!("REJECTED {rejected} {why}"));
                }
                match result {
                    Ok(stream) => {
                        let id = next;
                        next += 1;
                        let described = describe(&stream);
                        let stream = Arc::new(stream);
                        let (tx, rx) = mpsc::channel::<String>();
                        if let Some(cmd) = &auto {
                            tx.send(cmd.clone()).unwrap();
                        }
                        conns.lock().unwrap().insert(id, (stream.clone(), tx));
                        // Announce only once the connection takes commands.
                        emit_segments(&seen);
                        emit(format!("{id} ACCEPTED {described}"));
                        std::thread::spawn(move || {
                            for line in rx {
                                run_command(id, &stream, &line);
                            }
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => {}
                    Err(e) => {
                        emit(format!("ACCEPT_ERR {:?} {}", e.kind(), e.message().replace('\n', " ")));
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
        for line in commands {
            if line == "quit" {
                break;
            }
            let (id, rest) = line.split_once(' ').expect("command: <conn> <words>");
            let id: usize = id.parse().expect("connection id");
            match conns.lock().unwrap().get(&id) {
                Some((_, tx)) => tx.send(rest.to_string()).unwrap(),
                None => emit(format!("NOCONN {id}")),
            }
        }
        stop.store(true, Ordering::Release);
    });
    for (stream, _) in conns.lock().unwrap().values() {
        let _ = stream.close();
    }
    drop(listener);
    emit("QUIT");
}

/// A client: connects once (connection 0) and runs commands; `quit` closes.
fn run_client(commands: Receiver<String>) {
    let name = setting("NAME").expect("NAME");
    let options = options_from_settings(false);
    let start = Instant::now();
    let stream = match Stream::connect(&name, &options) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            emit(format!("CONNECT_ERR {:?} {}", e.kind(), start.elapsed().as_millis()));
            eprintln!("connect error: {e}");
            let _ = commands.recv_timeout(WAIT);
            return;
        }
    };
    emit_segments(&Mutex::new(BTreeSet::new()));
    emit(format!("0 CONNECTED {}", describe(&stream)));
    for line in commands {
        if line == "quit" {
            break;
        }
        let rest = line.strip_prefix("0 ").expect("a client has connection 0 only");
        run_command(0, &stream, rest);
    }
    let _ = stream.close();
    emit("QUIT");
}

fn ms(word: Option<&str>) -> Option<Duration> {
    word.map(|w| Duration::from_millis(w.parse().expect("milliseconds")))
}

fn num<T: std::str::FromStr>(word: Option<&str>) -> T {
    word.and_then(|w| w.parse().ok()).expect("numeric argument")
}

fn err_words(e: &Error) -> String {
    match e.needed() {
        Some(n) => format!("{:?} {n}", e.kind()),
        None => format!("{:?}", e.kind()),
    }
}

/// Runs one command on a connection, reporting as `<id> <EVENT> ...`:
///
/// - `bg <command>`: run the command on a new thread;
/// - `recv [ms]`, `try_recv`, `recv_into <buflen> [ms]`, `try_recv_into <buflen>`:
///   `GOT <len> <fnv>` or `ERR <kind> [needed]`;
/// - `send <len> <tag> [ms]`, `try_send <len> <tag>`: `SENT <len>` or `ERR <kind>`;
/// - `sendn <count> <len> <tag>`: messages tag, tag+1...: `SENTN <count>` or `ERR <kind> <i>`;
/// - `echo [quiet]`: echo until an error; `ECHO <len> <fnv>` per message (unless
///   quiet), `BAD` for a self-describing message that is not intact, `END <kind> <count>`;
/// - `drain [ms]`: receive until an error: `GOT` per message, then `END <kind> <count>`;
/// - `flood <len> <tag>`: send messages tag, tag+1... until an error:
///   `FLOODING` after the first, then `END <kind> <count>`;
/// - `verify`: receive until an error, checking each message and that tags
///   increase by one: `BAD` or `END <kind> <count>`;
/// - `burst <threads> <count>`: threads send `count` messages each at once,
///   tag = thread << 32 | seq, length [`burst_len`]: `BURST_DONE <total>` or `ERR`;
/// - `recv_check <count>`: receive `count` burst messages, check each and the
///   order per thread: `CHECKED <count>`, `BAD` or `ERR`;
/// - `roundtrip <count> <tag> <sizes,...>`: send, receive the echo, compare:
///   `RT_OK <count>`, `BAD` or `ERR <kind> <i>`;
/// - `close`: `CLOSED`; `after_close`: the kinds of send, try_send, recv,
///   try_recv, recv_into: `AFTER <k1> .. <k5>`; `stats`: `STATS <ms> <bs> <mr> <br>`.
pub fn run_command(id: usize, stream: &Arc<Stream>, line: &str) {
    let mut w = line.split_whitespace();
    let cmd = w.next().unwrap_or("");
    let ev = |s: String| emit(format!("{id} {s}"));
    let got = |r: Result<Vec<u8>, Error>| match r {
        Ok(m) => ev(format!("GOT {}", digest(&m))),
        Err(e) => ev(format!("ERR {}", err_words(&e))),
    };
    match cmd {
        "bg" => {
            let rest: String = line["bg".len()..].trim().to_string();
            let s = stream.clone();
            std::thread::spawn(move || run_command(id, &s, &rest));
        }
        "recv" => got(stream.recv_timeout(ms(w.next()))),
        "try_recv" => got(stream.try_recv()),
        "recv_into" | "try_recv_into" => {
            let mut buf = vec![0u8; num(w.next())];
            let r = if cmd == "recv_into" {
                stream.recv_into_timeout(&mut buf, ms(w.next()))
            } else {
                stream.try_recv_into(&mut buf)
            };
            got(r.map(|n| buf[..n].to_vec()))
        }
        "send" | "try_send" => {
            let len: usize = num(w.next());
            let m = message(num(w.next()), len);
            let r = if cmd == "send" { stream.send_timeout(&m, ms(w.next())) } else { stream.try_send(&m) };
            match r {
                Ok(()) => ev(format!("SENT {len}")),
                Err(e) => ev(format!("ERR {}", err_words(&e))),
            }
        }
        "sendn" => {
            let count: u64 = num(w.next());
            let len: usize = num(w.next());
            let tag: u64 = num(w.next());
            for i in 0..count {
                if let Err(e) = stream.send(&message(tag + i, len)) {
                    ev(format!("ERR {} {i}", err_words(&e)));
                    return;
                }
            }
            ev(format!("SENTN {count}"));
        }
        "echo" => {
            let quiet = w.next() == Some("quiet");
            let mut count = 0u64;
            let end = loop {
                let m = match stream.recv() {
                    Ok(m) => m,
                    Err(e) => break e,
                };
                if m.len() >= 16 && check_message(&m).is_none() {
                    ev(format!("BAD echo {}", digest(&m)));
                }
                if !quiet {
                    ev(format!("ECHO {}", digest(&m)));
                }
                count += 1;
                if let Err(e) = stream.send(&m) {
                    break e;
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "drain" => {
            let timeout = ms(w.next());
            let mut count = 0u64;
            let end = loop {
                match stream.recv_timeout(timeout) {
                    Ok(m) => {
                        count += 1;
                        ev(format!("GOT {}", digest(&m)));
                    }
                    Err(e) => break e,
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "flood" => {
            let len: usize = num(w.next());
            let tag: u64 = num(w.next());
            let mut count = 0u64;
            let end = loop {
                if let Err(e) = stream.send(&message(tag + count, len)) {
                    break e;
                }
                count += 1;
                if count == 1 {
                    ev("FLOODING".into());
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "verify" => {
            let mut count = 0u64;
            let mut expect: Option<u64> = None;
            let end = loop {
                match stream.recv() {
                    Ok(m) => {
                        let Some(tag) = check_message(&m) else {
                            ev(format!("BAD not-intact {} after {count}", digest(&m)));
                            continue;
                        };
                        if expect.is_some_and(|e| e != tag) {
                            ev(format!("BAD out-of-order tag {tag} expected {}", expect.unwrap()));
                        }
                        expect = Some(tag + 1);
                        count += 1;
                        if count == 1 {
                            ev("VERIFYING".into());
                        }
                    }
                    Err(e) => break e,
                }
            };
            ev(format!("END {:?} {count}", end.kind()));
        }
        "burst" => {
            let threads: u64 = num(w.next());
            let count: u64 = num(w.next());
            let failed = Arc::new(Mutex::new(None));
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let failed = failed.clone();
                    scope.spawn(move || {
                        for seq in 0..count {
                            if let Err(e) = stream.send(&message(t << 32 | seq, burst_len(t, seq))) {
                                *failed.lock().unwrap() = Some(e);
                                return;
                            }
                        }
                    });
                }
            });
            let failure = failed.lock().unwrap().take();
            match failure {
                None => ev(format!("BURST_DONE {}", threads * count)),
                Some(e) => ev(format!("ERR {}", err_words(&e))),
            }
        }
        "recv_check" => {
            let count: u64 = num(w.next());
            let mut next_seq: HashMap<u64, u64> = HashMap::new();
            for i in 0..count {
                let m = match stream.recv_timeout(Some(WAIT)) {
                    Ok(m) => m,
                    Err(e) => {
                        ev(format!("ERR {} {i}", err_words(&e)));
                        return;
                    }
                };
                let Some(tag) = check_message(&m) else {
                    ev(format!("BAD not-intact message {i}: {}", digest(&m)));
                    return;
                };
                let (t, seq) = (tag >> 32, tag & 0xffff_ffff);
                let want = next_seq.entry(t).or_insert(0);
                if seq != *want || m.len() != burst_len(t, seq) {
                    ev(format!("BAD thread {t} sent seq {seq}, expected {want}"));
                    return;
                }
                *want += 1;
            }
            ev(format!("CHECKED {count}"));
        }
        "roundtrip" => {
            let count: u64 = num(w.next());
            let tag: u64 = num(w.next());
            let sizes: Vec<usize> = w.next().unwrap().split(',').map(|s| s.parse().unwrap()).collect();
            for i in 0..count {
                let m = message(tag + i, sizes[i as usize % sizes.len()]);
                if let Err(e) = stream.send(&m) {
                    ev(format!("ERR {} {i}", err_words(&e)));
                    return;
                }
                match stream.recv_timeout(Some(WAIT)) {
                    Ok(back) if back == m => {}
                    Ok(back) => {
                        ev(format!("BAD echo of message {i} differs: sent {} got {}", digest(&m), digest(&back)));
                        return;
                    }
                    Err(e) => {
                        ev(format!("ERR {} {i}", err_words(&e)));
                        return;
                    }
                }
            }
            ev(format!("RT_OK {count}"));
        }
        "close" => {
            let _ = stream.close();
            ev("CLOSED".into());
        }
        "after_close" => {
            let k = |r: Result<(), Error>| r.err().map(|e| format!("{:?}", e.kind())).unwrap_or_else(|| "Ok".into());
            let mut buf = [0u8; 64];
            let kinds = [
                k(stream.send(b"x")),
                k(stream.try_send(b"x")),
                k(stream.recv_timeout(Some(Duration::from_millis(10))).map(|_| ())),
                k(stream.try_recv().map(|_| ())),
                k(stream.recv_into_timeout(&mut buf, Some(Duration::from_millis(10))).map(|_| ())),
            ];
            ev(format!("AFTER {}", kinds.join(" ")));
        }
        "stats" => {
            let s = stream.stats();
            ev(format!("STATS {} {} {} {}", s.messages_sent, s.bytes_sent, s.messages_received, s.bytes_received));
        }
        other => panic!("unknown command {other:?}"),
    }
}

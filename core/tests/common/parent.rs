//! The parent's side of a multi-process test: [`Child`] (spawn a role, send it
//! commands, wait for its events) and the settings of the usual roles.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shmsock::{Keypair, PublicKey};

use super::*;

// ------------------------------------------------------------------- the parent

/// A child process running one role. Killed (SIGKILL) and reaped on drop.
pub struct Child {
    proc: std::process::Child,
    pub pid: u32,
    pub label: String,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    pending: VecDeque<String>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// Settings for a child: `(NAME, value)` becomes `SHMSOCK_TEST_NAME=value`.
pub type Settings<'a> = &'a [(&'a str, String)];

impl Child {
    /// Starts this test binary again as a child playing `role`.
    pub fn spawn(label: &str, role: &str, settings: Settings<'_>) -> Child {
        init();
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", "child", "--nocapture", "--test-threads=1", "--color", "never"])
            .env(ROLE_ENV, role)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in settings {
            cmd.env(format!("{ENV_PREFIX}{k}"), v);
        }
        let mut proc = cmd.spawn().expect("spawning a child test process");
        let pid = proc.id();
        let label = format!("{label}[{pid}]");
        let (tx, events) = mpsc::channel();
        let stdout = proc.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints "test child ... " without a newline, so
                // the first event may follow it on the same line.
                if let Some(at) = line.find(EVENT_MARK) {
                    if tx.send(line[at + EVENT_MARK.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = proc.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match err_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        let stdin = proc.stdin.take();
        Child { proc, pid, label, stdin, events, pending: VecDeque::new(), stderr, status: None }
    }

    /// What the child wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n  unconsumed events: {:?}\n  ---- stderr of {} ----\n{}\n  ----",
            self.label,
            self.pending,
            self.label,
            self.stderr()
        );
    }

    /// Sends one command line.
    pub fn cmd(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            self.fail(&format!("cannot send command {line:?}: {e}"));
        }
    }

    /// Waits up to `timeout` for an event `pred` accepts, keeping others for
    /// later calls. None on timeout.
    pub fn try_take(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(i) = self.pending.iter().position(|e| pred(e)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    if ev.starts_with("PANIC") {
                        self.fail(&format!("the child panicked: {ev}"));
                    }
                    if pred(&ev) {
                        return Some(ev);
                    }
                    self.pending.push_back(ev);
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    // The child's stdout closed: it exited. Give the stderr
                    // reader a moment to collect its last words.
                    std::thread::sleep(Duration::from_millis(100));
                    return None;
                }
            }
        }
    }

    /// Waits for an event `pred` accepts; fails the test after [`WAIT`].
    pub fn take(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        match self.try_take(WAIT, pred) {
            Some(ev) => ev,
            None => self.fail(&format!("no {what} event within {WAIT:?} (or the child exited)")),
        }
    }

    /// Waits for the next event starting with `prefix`; returns the words after it.
    pub fn expect(&mut self, prefix: &str) -> Vec<String> {
        let p = format!("{prefix} ");
        let ev = self.take(prefix, |e| e == prefix || e.starts_with(&p));
        ev[prefix.len()..].split_whitespace().map(str::to_string).collect()
    }

    /// Waits for the next event of connection `conn` that is one of `names`
    /// (e.g. `["GOT", "ERR"]`); returns (name, words after it).
    pub fn expect_conn(&mut self, conn: usize, names: &[&str]) -> (String, Vec<String>) {
        let ev = self.take(&format!("{conn} {names:?}"), |e| {
            let mut w = e.split_whitespace();
            w.next() == Some(&conn.to_string()) && w.next().is_some_and(|n| names.contains(&n))
        });
        let mut w = ev.split_whitespace().skip(1).map(str::to_string);
        let name = w.next().unwrap();
        (name, w.collect())
    }

    /// Runs `recv <timeout>` on a connection and returns Ok(digest) or Err(kind).
    pub fn recv(&mut self, conn: usize, timeout: Duration) -> Result<String, String> {
        self.cmd(&format!("{conn} recv {}", timeout.as_millis()));
        self.result(conn)
    }

    /// Waits for a GOT/SENT/.../ERR answer of a connection; Ok(words) or Err(kind).
    pub fn result(&mut self, conn: usize) -> Result<String, String> {
        let (name, words) = self.expect_conn(conn, &["GOT", "SENT", "SENTN", "ERR", "CLOSED", "RT_OK", "BAD"]);
        match name.as_str() {
            "ERR" => Err(words[0].clone()),
            "BAD" => self.fail(&format!("connection {conn} received a wrong message: {words:?}")),
            _ => Ok(words.join(" ")),
        }
    }

    /// Waits for the END event of a long-running loop on `conn`; returns
    /// (error kind that ended it, count).
    pub fn expect_end(&mut self, conn: usize) -> (String, u64) {
        let (name, words) = self.expect_conn(conn, &["END", "BAD"]);
        if name == "BAD" {
            self.fail(&format!("connection {conn} received a wrong message: {words:?}"));
        }
        (words[0].clone(), words[1].parse().unwrap())
    }

    /// True if the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.proc.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            _ => true,
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.proc.kill();
            self.status = self.proc.wait().ok();
        }
    }

    /// Waits (bounded) for the child to exit on its own.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while self.is_running() {
            if Instant::now() > deadline {
                self.fail("did not exit in time");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.status.unwrap()
    }

    /// Asks the child to quit and checks that it exited cleanly: status 0 and
    /// no panic on any thread.
    pub fn quit(&mut self) {
        self.cmd("quit");
        let status = self.wait_exit();
        self.assert_no_panic();
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
    }

    /// Checks that no thread of the child panicked (so far).
    pub fn assert_no_panic(&mut self) {
        if self.pending.iter().any(|e| e.starts_with("PANIC")) || self.stderr().contains("panicked") {
            self.fail("a thread of the child panicked");
        }
        while let Ok(ev) = self.events.try_recv() {
            if ev.starts_with("PANIC") {
                self.fail(&format!("the child panicked: {ev}"));
            }
            self.pending.push_back(ev);
        }
    }

    /// Every `SEG <name>` event seen so far (named segments the child mapped).
    pub fn segment_names(&mut self) -> Vec<String> {
        while let Ok(ev) = self.events.try_recv() {
            self.pending.push_back(ev);
        }
        self.pending.iter().filter_map(|e| e.strip_prefix("SEG ").map(str::to_string)).collect()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings of a server child.
pub fn server_settings(name: &str, keypair: &Keypair) -> Vec<(&'static str, String)> {
    vec![("NAME", name.to_string()), ("KEY", keypair.to_file_text())]
}

/// Settings of a client child.
pub fn client_settings(name: &str, server: &PublicKey) -> Vec<(&'static str, String)> {
    vec![("NAME", name.to_string()), ("KEY", server.to_text())]
}

/// Starts a server child and waits until it is bound.
pub fn spawn_server(label: &str, name: &str, keypair: &Keypair, extra: Settings<'_>) -> Child {
    let mut settings = server_settings(name, keypair);
    settings.extend(extra.iter().cloned());
    let mut child = Child::spawn(label, "server", &settings);
    let ev = child.take("BOUND", |e| e == "BOUND" || e.starts_with("BIND_ERR"));
    if ev != "BOUND" {
        std::thread::sleep(Duration::from_millis(100));
        child.fail(&format!("could not bind: {ev}"));
    }
    child
}

/// Starts a client child and waits until it is connected; returns it and the
/// words of its CONNECTED event (cipher, backend, ring size, peer max message).
pub fn spawn_client(label: &str, name: &str, server: &PublicKey, extra: Settings<'_>) -> (Child, Vec<String>) {
    let mut settings = client_settings(name, server);
    settings.extend(extra.iter().cloned());
    let mut child = Child::spawn(label, "client", &settings);
    let ev = child.take("CONNECTED", |e| e.starts_with("0 CONNECTED") || e.starts_with("CONNECT_ERR"));
    if ev.starts_with("CONNECT_ERR") {
        child.fail(&format!("could not connect: {ev}"));
    }
    let words = ev.split_whitespace().skip(2).map(str::to_string).collect();
    (child, words)
}

/// Waits (bounded) until `cond` holds, polling.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

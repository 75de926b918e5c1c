//! Helpers of the CLI tests: the real `shmsock` binary in a private runtime
//! directory, children killed on drop, every wait bounded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_shmsock");

/// The limit on any single wait: generous, since the machine may be busy
/// building; a test that reaches it has hung and fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Held while a child is spawned. Between fork and exec a child holds copies
/// of every fd of the test process (they close at exec, which `spawn` waits
/// for); [`close_alone`] takes it so a closed pipe end is closed everywhere.
static SPAWNING: Mutex<()> = Mutex::new(());

/// Drops `value` (a pipe end) while no child is being spawned, so no forked,
/// not yet executed child of another test thread keeps a copy open (a kept
/// read end would hide EPIPE from the writer).
pub fn close_alone<T>(value: T) {
    let _spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
    drop(value);
}

/// A unique endpoint name for this test process.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A private runtime directory (0700) and a working directory.
pub struct Env {
    runtime: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let runtime = tempfile::Builder::new().prefix("shmsock-cli-rt").tempdir().expect("temp dir");
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
        let work = tempfile::Builder::new().prefix("shmsock-cli-work").tempdir().expect("temp dir");
        Env { runtime, work }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn runtime(&self) -> &Path {
        self.runtime.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.work.path())
            .env("SHMSOCK_RUNTIME_DIR", self.runtime.path())
            .env_remove("XDG_RUNTIME_DIR");
        // The command keeps signals ignored on entry ignored (as shells
        // expect); the tests must not depend on how they were started (a
        // script's background job ignores INT, nohup ignores HUP).
        // SAFETY: signal(2) is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            c.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        c
    }

    /// Starts `shmsock args...` with piped stdio.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        Proc::start(self.command(args), true)
    }

    /// Starts `shmsock args...`, leaving stdout to the test (see [`Proc::take_stdout`]).
    pub fn spawn_raw_stdout(&self, args: &[&str]) -> Proc {
        Proc::start(self.command(args), false)
    }

    /// Runs `shmsock args...` with `input` on stdin, to the end.
    pub fn run(&self, args: &[&str], input: &[u8]) -> Finished {
        let mut p = self.spawn(args);
        p.feed_stdin(input.to_vec());
        p.finish()
    }

    /// Writes a key file with `keygen -f name`; returns its public key text.
    pub fn keygen(&self, name: &str) -> String {
        let out = self.run(&["keygen", "-f", name], b"");
        assert_eq!(out.code(), 0, "keygen: {}", out.stderr);
        public_key_line(&out.stdout_text())
    }
}

/// The key of the `public-key: ...` line of keygen's output.
pub fn public_key_line(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("public-key: "))
        .unwrap_or_else(|| panic!("no public-key line in {stdout:?}"))
        .trim()
        .to_string()
}

/// What a finished process left.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the stderr is exactly one error line of the documented shape.
    pub fn assert_one_error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr, got {:?}", self.stderr);
        assert!(lines[0].starts_with("shmsock: "), "{}", lines[0]);
        assert!(lines[0].matches(": ").count() >= 2, "no '<what>: <why>' in {}", lines[0]);
        lines[0]
    }
}

/// A running `shmsock`, killed and reaped on drop.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_raw: Option<ChildStdout>,
    stdout: Option<Receiver<Vec<u8>>>,
    stdout_buf: Vec<u8>,
    stdout_done: bool,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
    args: Vec<String>,
}

impl Proc {
    fn start(mut command: Command, read_stdout: bool) -> Proc {
        let args = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = {
            let _spawning = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
            command.spawn().expect("spawn shmsock")
        };
        let stdin = child.stdin.take();
        let mut stdout_raw = child.stdout.take();
        let stdout = if read_stdout {
            let mut out = stdout_raw.take().expect("stdout");
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match out.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tx.send(buf[..n].to_vec()).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
            Some(rx)
        } else {
            None
        };
        let err = child.stderr.take().expect("stderr");
        let (tx, stderr) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            stdin,
            stdout_raw,
            stdout,
            stdout_buf: Vec::new(),
            stdout_done: false,
            stderr,
            stderr_seen: Vec::new(),
            args,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn write_stdin(&mut self, bytes: &[u8]) {
        if let Some(stdin) = &mut self.stdin {
            // The process may have ended already; the test sees that later.
            let _ = stdin.write_all(bytes).and_then(|_| stdin.flush());
        }
    }

    /// Writes `bytes` to stdin from another thread, then closes stdin: the
    /// process may read stdin only as it sends, so a large input must not
    /// block the test.
    pub fn feed_stdin(&mut self, bytes: Vec<u8>) {
        if let Some(mut stdin) = self.stdin.take() {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn take_stdout(&mut self) -> ChildStdout {
        self.stdout_raw.take().expect("spawned with spawn_raw_stdout")
    }

    /// Waits for a stderr line containing `needle`; returns it.
    pub fn wait_stderr(&mut self, needle: &str) -> String {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?}; stderr so far: {:?}", self.stderr_seen),
            }
        }
    }

    fn pull_stdout(&mut self, deadline: Instant) -> bool {
        let Some(rx) = &self.stdout else { panic!("stdout was taken") };
        if self.stdout_done {
            return false;
        }
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(chunk) => {
                self.stdout_buf.extend_from_slice(&chunk);
                true
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.stdout_done = true;
                false
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("stdout stalled; have {:?}", String::from_utf8_lossy(&self.stdout_buf))
            }
        }
    }

    /// The next stdout line, without its newline.
    pub fn read_line(&mut self) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(i) = self.stdout_buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.stdout_buf.drain(..=i).collect();
                return String::from_utf8_lossy(&line[..i]).into_owned();
            }
            if !self.pull_stdout(deadline) {
                panic!("stdout ended before a full line; have {:?}", String::from_utf8_lossy(&self.stdout_buf));
            }
        }
    }

    /// Waits for the process to end, and collects what it wrote.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    let threads = children_states();
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let rest: Vec<String> = self.stderr.try_iter().collect();
                    panic!(
                        "shmsock {:?} did not end within {LIMIT:?}; threads: {threads}; stderr: {:?} {:?}",
                        self.args, self.stderr_seen, rest
                    );
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if self.stdout.is_some() {
            while self.pull_stdout(deadline) {}
        }
        let mut lines = std::mem::take(&mut self.stderr_seen);
        loop {
            match self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stderr stayed open after exit"),
            }
        }
        let mut stderr = lines.join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        Finished { status, stdout: std::mem::take(&mut self.stdout_buf), stderr }
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child, which is not reaped before drop.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill {pid}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Where each thread of each child of this process waits, for the message of
/// a test that hung.
fn children_states() -> String {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return "?".into();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.get(1) != Some(&me.as_str()) {
            continue;
        }
        let cmd = std::fs::read_to_string(p.path().join("cmdline")).unwrap_or_default().replace('\0', " ");
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else {
            continue;
        };
        let threads: Vec<String> = tasks
            .flatten()
            .map(|t| {
                let read = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap_or_default();
                format!(
                    "{}:{}:{}",
                    read("comm").trim(),
                    read("wchan").trim(),
                    read("syscall").split(' ').next().unwrap_or("")
                )
            })
            .collect();
        out.push(format!("[{cmd}] {}", threads.join(", ")));
    }
    out.join("; ")
}

/// A binary record: 4-byte little-endian length, then the bytes.
pub fn record(message: &[u8]) -> Vec<u8> {
    let mut v = (message.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(message);
    v
}

/// Splits binary records; panics on a truncated one.
pub fn split_records(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 4, "truncated length");
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert!(bytes.len() >= 4 + len, "truncated record");
        out.push(bytes[4..4 + len].to_vec());
        bytes = &bytes[4 + len..];
    }
    out
}

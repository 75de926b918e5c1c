//! The peer process: spawned by re-executing the bench binary with the hidden
//! subcommand [`PEER_SUBCOMMAND`], pinned to its CPU, serving the measuring side.
//!
//! Command protocol, over the transport under test (every command is a 1-byte
//! message; the measured messages are all longer than 1 byte):
//! - `E`: echo every message back until a 1-byte message arrives (ping-pong);
//! - `S`: swallow every message until a 1-byte message arrives, then answer with a
//!   1-byte ack (one-way throughput: the ack proves every byte was delivered);
//! - `Q`: exit.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shmsock::{CipherSuite, Options, PublicKey, Stream};

use crate::affinity;
use crate::error::{last_os_error, BenchError, Result};
use crate::floor;
use crate::measure::{recv_retry, send_retry};
use crate::transport::{ShmTransport, Transport, UnixAead, UnixPlain};

/// The hidden subcommand a host binary must hand to [`peer_main`]:
/// `<exe> __peer <cpu> <kind> <args...>`.
pub const PEER_SUBCOMMAND: &str = "__peer";

/// Largest message the bench sends, plus room.
pub(crate) const PEER_BUFFER: usize = (1 << 20) + 4096;

/// A running peer process. Dropping it kills the process and reaps it, so no
/// child outlives the bench, whatever path the bench takes out.
pub struct PeerProcess {
    child: Option<Child>,
}

impl PeerProcess {
    /// Spawns `exe __peer <cpu> <args...>`, letting the child inherit `fd` (the
    /// others stay close-on-exec). The child also dies with the spawning thread
    /// (PR_SET_PDEATHSIG).
    pub fn spawn(exe: &Path, cpu: usize, args: &[String], fd: Option<RawFd>) -> Result<PeerProcess> {
        let mut cmd = Command::new(exe);
        cmd.arg(PEER_SUBCOMMAND).arg(cpu.to_string()).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::inherit());
        // SAFETY: the closure only makes async-signal-safe system calls (fcntl,
        // prctl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(fd) = fd {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child =
            cmd.spawn().map_err(|e| BenchError::new(format!("starting the peer process {}: {e}", exe.display())))?;
        Ok(PeerProcess { child: Some(child) })
    }

    /// Process id of the peer.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Fails if the peer has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(child) = &mut self.child {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(BenchError::new(format!("the peer process exited early ({status})")));
            }
        }
        Ok(())
    }

    /// Waits briefly for the peer to exit by itself (after `Q`), then kills it.
    pub fn finish(mut self, grace: Duration) {
        if let Some(child) = &mut self.child {
            let end = Instant::now() + grace;
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A socket pair: (ours, the child's), both close-on-exec.
pub(crate) fn socket_pair() -> Result<(UnixStream, OwnedFd)> {
    let (a, b) = UnixStream::pair()?;
    Ok((a, OwnedFd::from(b)))
}

/// Turns the text form of a cipher into the suite.
pub(crate) fn parse_cipher(name: &str) -> Result<CipherSuite> {
    CipherSuite::from_name(name).ok_or_else(|| BenchError::new(format!("unknown cipher '{name}'")))
}

/// The AEAD of a cipher suite.
pub(crate) fn aead_of(suite: CipherSuite) -> shmsock::sodium::Aead {
    match suite {
        CipherSuite::Aegis128L => shmsock::sodium::Aead::Aegis128L,
        CipherSuite::ChaCha20Poly1305 => shmsock::sodium::Aead::ChaCha20Poly1305,
    }
}

/// Takes an inherited fd number from the command line.
fn inherited_fd(arg: &str) -> Result<OwnedFd> {
    let fd: RawFd = arg.parse().map_err(|_| BenchError::new(format!("bad fd '{arg}'")))?;
    // SAFETY: the parent passed us this fd, open and ours alone, by inheritance.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(last_os_error(&format!("inherited fd {fd}")));
    }
    // SAFETY: as above; nothing else in this process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn arg<'a>(args: &'a [String], i: usize, what: &str) -> Result<&'a str> {
    args.get(i).map(|s| s.as_str()).ok_or_else(|| BenchError::new(format!("peer: missing argument <{what}>")))
}

/// The peer's entry point: `args` are the words after [`PEER_SUBCOMMAND`]:
/// `<cpu> shm <endpoint> <server-key> <cipher> <spin-ns> <ring-size> <timeout-ms>`,
/// `<cpu> unix-plain <fd>`, `<cpu> unix-aead <fd> <cipher>` or
/// `<cpu> floor <fd> <cipher> <spin|yield> <line|frame>` or `<cpu> hog`.
pub fn peer_main(args: &[String]) -> Result<()> {
    let cpu: usize = arg(args, 0, "cpu")?.parse().map_err(|_| BenchError::new("peer: bad cpu"))?;
    affinity::pin(&[cpu])?;
    shmsock::sodium::init()?;
    match arg(args, 1, "kind")? {
        "pubsub" => crate::pubsub::peer(&args[2..]),
        "shm" => {
            let endpoint = arg(args, 2, "endpoint")?;
            let key = PublicKey::from_text(arg(args, 3, "server-key")?)?;
            let suite = parse_cipher(arg(args, 4, "cipher")?)?;
            let spin_ns: u64 = arg(args, 5, "spin-ns")?.parse().map_err(|_| BenchError::new("peer: bad spin"))?;
            let ring: u32 = arg(args, 6, "ring-size")?.parse().map_err(|_| BenchError::new("peer: bad ring size"))?;
            let timeout_ms: u64 =
                arg(args, 7, "timeout-ms")?.parse().map_err(|_| BenchError::new("peer: bad timeout"))?;
            let mut options = Options::new()
                .server_key(key)
                .require_chacha(suite == CipherSuite::ChaCha20Poly1305)
                .spin(Duration::from_nanos(spin_ns));
            if ring != 0 {
                options = options.ring_size(ring);
            }
            let stream = Stream::connect(endpoint, &options)?;
            if stream.cipher() != suite {
                return Err(BenchError::new(format!(
                    "peer: negotiated {} instead of {}",
                    stream.cipher().name(),
                    suite.name()
                )));
            }
            serve(&mut ShmTransport::new(stream), Some(Duration::from_millis(timeout_ms)))
        }
        "unix-plain" => {
            let sock = UnixStream::from(inherited_fd(arg(args, 2, "fd")?)?);
            serve(&mut UnixPlain::new(sock), None)
        }
        "unix-aead" => {
            let mut sock = UnixStream::from(inherited_fd(arg(args, 2, "fd")?)?);
            let suite = parse_cipher(arg(args, 3, "cipher")?)?;
            // The parent sends the keys first: parent->peer, then peer->parent.
            let mut keys = [0u8; 64];
            std::io::Read::read_exact(&mut sock, &mut keys)?;
            let rx: [u8; 32] = keys[..32].try_into().unwrap();
            let tx: [u8; 32] = keys[32..].try_into().unwrap();
            shmsock::sodium::memzero(&mut keys);
            serve(&mut UnixAead::new(sock, aead_of(suite), tx, rx), None)
        }
        "floor" => {
            let fd = inherited_fd(arg(args, 2, "fd")?)?;
            let suite = parse_cipher(arg(args, 3, "cipher")?)?;
            let spin = match arg(args, 4, "spin|yield")? {
                "spin" => true,
                "yield" => false,
                other => return Err(BenchError::new(format!("peer: bad floor mode '{other}'"))),
            };
            let kind = match arg(args, 5, "line|frame")? {
                "line" => floor::FloorKind::Line,
                "frame" => floor::FloorKind::Frame,
                other => return Err(BenchError::new(format!("peer: bad floor kind '{other}'"))),
            };
            let result = floor::serve(fd.as_raw_fd(), aead_of(suite), kind, spin);
            drop(fd);
            result
        }
        "hog" => loop {
            // A CPU-bound neighbour; killed by the parent.
            std::hint::black_box(0u64);
        },
        other => Err(BenchError::new(format!("peer: unknown kind '{other}'"))),
    }
}

/// Serves the command protocol until `Q` (or until the parent goes away).
/// `stream_timeout` limits each call while swallowing a stream (`S`), where a
/// lost wake-up could otherwise hang both sides; ping-pong and the wait for the
/// next command use no timeout.
pub(crate) fn serve(t: &mut dyn Transport, stream_timeout: Option<Duration>) -> Result<()> {
    let mut buf = vec![0u8; PEER_BUFFER];
    loop {
        t.set_timeout(None);
        let n = t.recv_into(&mut buf)?;
        if n != 1 {
            return Err(BenchError::new(format!("peer: expected a command, got a message of {n} bytes")));
        }
        match buf[0] {
            b'E' => loop {
                let n = t.recv_into(&mut buf)?;
                if n == 1 {
                    break;
                }
                t.send(&buf[..n])?;
            },
            b'S' => {
                t.set_timeout(stream_timeout);
                while recv_retry(t, &mut buf)? != 1 {}
                send_retry(t, b"A")?;
            }
            b'Q' => return Ok(()),
            c => return Err(BenchError::new(format!("peer: unknown command {c:#x}"))),
        }
    }
}

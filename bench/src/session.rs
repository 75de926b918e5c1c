//! One transport under test in one placement: its peer process started (pinned
//! to the peer CPU) and connected, and our end of it.

use std::path::Path;
use std::time::Duration;

use shmsock::{CipherSuite, Keypair, Listener, Options};

use crate::config::{Config, TransportKind};
use crate::error::{BenchError, Result};
use crate::peer::{self, PeerProcess};
use crate::transport::{ShmTransport, Transport, UnixAead, UnixPlain};

/// A transport under test in one placement: its peer, and our end.
pub(crate) struct Session {
    /// Which transport.
    pub kind: TransportKind,
    /// Our end.
    pub transport: Box<dyn Transport>,
    /// The peer process.
    pub peer: PeerProcess,
}

/// Starts the peer of `kind` on `cpu` and connects to it.
pub(crate) fn start_session(
    kind: TransportKind,
    exe: &Path,
    cpu: usize,
    config: &Config,
    ordinal: usize,
) -> Result<Session> {
    const TIMEOUT: Duration = Duration::from_secs(60);
    match kind {
        TransportKind::Shm(suite) => {
            let endpoint = format!("shmsock-bench-{}-{ordinal}", std::process::id());
            let keypair = Keypair::generate();
            let public = *keypair.public();
            let mut options = Options::new().keypair(keypair).require_chacha(suite == CipherSuite::ChaCha20Poly1305);
            if let Some(spin) = config.shm_spin {
                options = options.spin(spin);
            }
            if let Some(ring) = config.shm_ring_size {
                options = options.ring_size(ring);
            }
            let listener = Listener::bind(&endpoint, &options)?;
            let args = vec![
                "shm".to_string(),
                endpoint.clone(),
                public.to_text(),
                suite.name().to_string(),
                options.spin.as_nanos().to_string(),
                config.shm_ring_size.unwrap_or(0).to_string(),
                config.shm_timeout.as_millis().to_string(),
            ];
            let mut peer = PeerProcess::spawn(exe, cpu, &args, None)?;
            let stream = listener.accept_timeout(Some(Duration::from_secs(15))).map_err(|e| {
                let alive = peer.check_alive().err().map(|e| format!(" ({e})")).unwrap_or_default();
                BenchError::from(e).context(&format!("accepting the peer on '{endpoint}'{alive}"))
            })?;
            if stream.cipher() != suite {
                return Err(BenchError::new(format!(
                    "negotiated {} instead of {}",
                    stream.cipher().name(),
                    suite.name()
                )));
            }
            Ok(Session { kind, transport: Box::new(ShmTransport::new(stream)), peer })
        }
        TransportKind::UnixPlain | TransportKind::UnixAead(_) => {
            let (mut ours, theirs) = peer::socket_pair()?;
            ours.set_read_timeout(Some(TIMEOUT))?;
            ours.set_write_timeout(Some(TIMEOUT))?;
            use std::os::fd::AsRawFd;
            let mut args = match kind {
                TransportKind::UnixPlain => vec!["unix-plain".to_string()],
                _ => vec!["unix-aead".to_string()],
            };
            args.push(theirs.as_raw_fd().to_string());
            if let TransportKind::UnixAead(suite) = kind {
                args.push(suite.name().to_string());
            }
            let peer = PeerProcess::spawn(exe, cpu, &args, Some(theirs.as_raw_fd()))?;
            drop(theirs);
            let transport: Box<dyn Transport> = match kind {
                TransportKind::UnixAead(suite) => {
                    let mut p2c = [0u8; 32];
                    let mut c2p = [0u8; 32];
                    shmsock::sodium::random_bytes(&mut p2c);
                    shmsock::sodium::random_bytes(&mut c2p);
                    let mut keys = [0u8; 64];
                    keys[..32].copy_from_slice(&p2c);
                    keys[32..].copy_from_slice(&c2p);
                    std::io::Write::write_all(&mut ours, &keys)?;
                    Box::new(UnixAead::new(ours, peer::aead_of(suite), p2c, c2p))
                }
                _ => Box::new(UnixPlain::new(ours)),
            };
            Ok(Session { kind, transport, peer })
        }
    }
}

//! `agent client`: connects with `Stream`, sends messages of the --sizes and
//! checks that each comes back unchanged.

use std::time::{Duration, Instant};

use shmsock::{CipherSuite, ErrorKind, Keypair, Options, PublicKey, Stream};

use crate::cli::ClientArgs;
use crate::message::{difference, fill_message};
use crate::{say, Failure, Outcome};

pub(crate) fn client(a: ClientArgs) -> Outcome {
    let cipher = a.cipher.suite();
    let sizes: Vec<usize> = a.sizes.iter().map(|&n| n as usize).collect();
    let server_key = PublicKey::from_text(&a.server_key)?;
    let mut options = Options::new()
        .server_key(server_key)
        .recv_timeout(Some(a.timeout))
        .require_chacha(cipher == CipherSuite::ChaCha20Poly1305);
    if let Some(path) = &a.key {
        options = options.keypair(Keypair::load(path)?);
    }
    if let Some(bytes) = a.ring_size {
        options = options.ring_size(bytes);
    }
    let stream = Stream::connect(&a.name, &options)?;
    if stream.peer_public_key() != server_key {
        return Err(Failure::Verify(format!(
            "mismatch: server key is {}, expected {}",
            stream.peer_public_key().to_text(),
            server_key.to_text()
        )));
    }
    if stream.cipher() != cipher {
        return Err(Failure::Verify(format!("mismatch: cipher is {}, expected {}", stream.cipher(), cipher)));
    }

    let start = Instant::now();
    let mut next_progress = Duration::from_secs(1);
    let (mut i, mut total) = (0u64, 0u64);
    let mut message = Vec::new();
    // One byte more than the largest message, so a longer echo shows as such.
    let mut reply = vec![0u8; sizes.iter().copied().max().unwrap_or(0) + 1];
    loop {
        match a.seconds {
            None if i as usize == sizes.len() => break,
            Some(limit) if start.elapsed() >= limit => break,
            _ => {}
        }
        let n = sizes[(i % sizes.len() as u64) as usize];
        fill_message(&mut message, i, n);
        stream.send(&message)?;
        let len = match stream.recv_into_timeout(&mut reply, Some(a.timeout)) {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::BufferTooSmall => e.needed().unwrap_or(reply.len() + 1),
            Err(e) => return Err(e.into()),
        };
        if len != n || reply[..n] != message[..] {
            let got = &reply[..len.min(reply.len())];
            return Err(Failure::Verify(format!("mismatch: message {i} ({n} B): {}", difference(len, got, &message))));
        }
        i += 1;
        total += n as u64;
        if a.seconds.is_some() && start.elapsed() >= next_progress {
            next_progress += Duration::from_secs(1);
            say(&format!("progress {i} {total} {:.3}", start.elapsed().as_secs_f64()));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    stream.close()?;
    say(&format!(
        "ok cipher={} server={} client={} messages={i} bytes={total} seconds={elapsed:.3}",
        stream.cipher(),
        server_key.fingerprint(),
        stream.local_public_key().fingerprint()
    ));
    Ok(())
}

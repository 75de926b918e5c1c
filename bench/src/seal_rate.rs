//! One core's seal rate: the raw AEAD (libsodium, no transport) sealing whole
//! messages of one size in this process, on the measuring CPU. It is the
//! ceiling of any encrypted stream between two processes, since the sender must
//! seal every byte, and the baseline of the goal "1 MiB throughput on two cores
//! at least 0.9x one core's seal rate". It is measured once per round beside the
//! transports, so it shares their launch and their background load.

use std::time::{Duration, Instant};

use serde::Serialize;
use shmsock::frame::{FrameHeader, HEADER_LEN};
use shmsock::CipherSuite;

use crate::config::serialize_suite;
use crate::stats;

/// The seal rate of one cipher and message size in one placement.
#[derive(Clone, Debug, Serialize)]
pub struct SealRate {
    /// The cipher sealing.
    #[serde(serialize_with = "serialize_suite")]
    pub cipher: CipherSuite,
    /// Plaintext bytes per seal.
    pub size: usize,
    /// Median over runs, in GB/s of plaintext sealed (10^9 bytes per second).
    pub gb_per_s: f64,
    /// The runs, GB/s each.
    pub runs: Vec<f64>,
}

impl SealRate {
    /// No runs yet.
    pub fn new(cipher: CipherSuite, size: usize) -> SealRate {
        SealRate { cipher, size, gb_per_s: f64::NAN, runs: Vec::new() }
    }

    /// Seals messages of [`SealRate::size`] bytes back to back for about
    /// `duration` (after one untimed seal) and records the rate.
    pub fn run(&mut self, duration: Duration) {
        let aead = crate::peer::aead_of(self.cipher);
        let key = [0x42u8; 32];
        let plain = vec![0xa5u8; self.size];
        let mut sealed = vec![0u8; HEADER_LEN + self.size + aead.tag_len()];
        let header = FrameHeader::data(self.size as u32, self.size as u32, 0).encode();
        sealed[..HEADER_LEN].copy_from_slice(&header);
        let (ct, tag) = sealed[HEADER_LEN..].split_at_mut(self.size);
        aead.seal(&key, 0, &header, &plain, ct, tag);
        let start = Instant::now();
        let mut nonce = 1u64;
        while start.elapsed() < duration {
            aead.seal(&key, nonce, &header, std::hint::black_box(&plain), ct, tag);
            nonce += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        self.runs.push((nonce - 1) as f64 * self.size as f64 / elapsed / 1e9);
    }

    /// Takes the median of the runs.
    pub fn finish(&mut self) {
        self.gb_per_s = stats::median(&self.runs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_positive_rate() {
        let mut r = SealRate::new(CipherSuite::ChaCha20Poly1305, 4096);
        r.run(Duration::from_millis(5));
        r.run(Duration::from_millis(5));
        r.finish();
        assert_eq!(r.runs.len(), 2);
        assert!(r.gb_per_s > 0.0 && r.gb_per_s.is_finite());
    }
}

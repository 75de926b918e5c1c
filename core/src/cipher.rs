//! Transport ciphers: which AEAD a connection uses, and the per-direction keys with
//! their 64-bit counter nonces.
//!
//! The choice rule (PROTOCOL.md, "Cipher choice"): AEGIS-128L when both sides offer
//! it (a side offers it only when its CPU has AES instructions and the user did not
//! require ChaCha20-Poly1305), else ChaCha20-Poly1305. AEGIS-128L takes the first 16
//! bytes of the 32-byte key from Noise's Split: a 128-bit key matches the ~128-bit
//! security of X25519, so a longer one would buy nothing.

use crate::error::{Error, ErrorKind, Result};
use crate::sodium::{self, Aead, Secret};

/// A transport cipher, with its stable wire identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CipherSuite {
    /// ChaCha20-Poly1305 (RFC 8439), wire id 1. Fast everywhere, constant-time in software.
    ChaCha20Poly1305 = 1,
    /// AEGIS-128L, wire id 2. Several times faster where the CPU has AES instructions.
    Aegis128L = 2,
}

impl CipherSuite {
    /// The wire identifier.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The suite with this wire identifier.
    pub fn from_id(id: u8) -> Option<CipherSuite> {
        match id {
            1 => Some(CipherSuite::ChaCha20Poly1305),
            2 => Some(CipherSuite::Aegis128L),
            _ => None,
        }
    }

    /// A human name, as in logs and the bench.
    pub fn name(self) -> &'static str {
        match self {
            CipherSuite::ChaCha20Poly1305 => "chacha20-poly1305",
            CipherSuite::Aegis128L => "aegis-128l",
        }
    }

    /// Parses a human name (`chacha20-poly1305` or `aegis-128l`).
    pub fn from_name(name: &str) -> Option<CipherSuite> {
        match name.to_ascii_lowercase().as_str() {
            "chacha20-poly1305" | "chacha20poly1305" | "chacha" => Some(CipherSuite::ChaCha20Poly1305),
            "aegis-128l" | "aegis128l" | "aegis" => Some(CipherSuite::Aegis128L),
            _ => None,
        }
    }

    /// Tag length in bytes: 16 for ChaCha20-Poly1305, 32 for AEGIS-128L.
    #[inline]
    pub fn tag_len(self) -> usize {
        self.aead().tag_len()
    }

    #[inline]
    pub(crate) fn aead(self) -> Aead {
        match self {
            CipherSuite::ChaCha20Poly1305 => Aead::ChaCha20Poly1305,
            CipherSuite::Aegis128L => Aead::Aegis128L,
        }
    }

    /// What this process offers, in order of preference: AEGIS-128L first when the
    /// CPU has AES instructions and ChaCha20-Poly1305 is not required.
    pub fn local_offer(require_chacha: bool) -> Vec<CipherSuite> {
        if !require_chacha && sodium::has_aes_hardware() {
            vec![CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305]
        } else {
            vec![CipherSuite::ChaCha20Poly1305]
        }
    }

    /// The choice rule: AEGIS-128L if both offer it, else ChaCha20-Poly1305 if both
    /// offer it, else none.
    pub fn choose(client: &[CipherSuite], server: &[CipherSuite]) -> Option<CipherSuite> {
        [CipherSuite::Aegis128L, CipherSuite::ChaCha20Poly1305]
            .into_iter()
            .find(|s| client.contains(s) && server.contains(s))
    }
}

impl std::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn nonce_exhausted() -> Error {
    Error::new(ErrorKind::ProtocolViolation, "the connection used all 2^64-1 nonces of its key; open a new connection")
}

/// The sending half of a direction: key and next nonce. Each nonce is used once.
pub struct SendCipher {
    suite: CipherSuite,
    key: Secret<32>,
    nonce: u64,
}

impl SendCipher {
    /// A cipher starting at nonce 0.
    pub fn new(suite: CipherSuite, key: Secret<32>) -> SendCipher {
        SendCipher { suite, key, nonce: 0 }
    }

    /// The suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The nonce the next seal will use.
    pub fn next_nonce(&self) -> u64 {
        self.nonce
    }

    #[inline]
    fn take_nonce(&mut self) -> Result<u64> {
        // Noise reserves 2^64-1; refusing it also makes the increment below exact.
        if self.nonce == u64::MAX {
            return Err(nonce_exhausted());
        }
        let n = self.nonce;
        self.nonce += 1;
        Ok(n)
    }

    /// Seals `plaintext` with `ad` into private buffers.
    #[inline]
    pub fn seal(&mut self, ad: &[u8], plaintext: &[u8], ciphertext_out: &mut [u8], tag_out: &mut [u8]) -> Result<()> {
        let n = self.take_nonce()?;
        self.suite.aead().seal(self.key.expose(), n, ad, plaintext, ciphertext_out, tag_out);
        Ok(())
    }

    /// Seals with AEGIS-128L straight into memory another process may write.
    ///
    /// # Safety
    /// The suite must be AEGIS-128L (which never reads its output back); the
    /// pointers must be valid for `plaintext.len()` and 32 bytes of writes and must
    /// not overlap the inputs.
    pub(crate) unsafe fn seal_aegis_raw(
        &mut self,
        ad: &[u8],
        plaintext: &[u8],
        ciphertext_out: *mut u8,
        tag_out: *mut u8,
    ) -> Result<()> {
        debug_assert_eq!(self.suite, CipherSuite::Aegis128L);
        let n = self.take_nonce()?;
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.suite.aead().seal_raw(self.key.expose(), n, ad, plaintext, ciphertext_out, tag_out) };
        Ok(())
    }
}

/// The receiving half of a direction: key and the nonce the next frame must use.
pub struct RecvCipher {
    suite: CipherSuite,
    key: Secret<32>,
    nonce: u64,
}

impl RecvCipher {
    /// A cipher expecting nonce 0 first.
    pub fn new(suite: CipherSuite, key: Secret<32>) -> RecvCipher {
        RecvCipher { suite, key, nonce: 0 }
    }

    /// The suite in use.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Verifies and decrypts. The nonce advances only on success, so a replayed,
    /// dropped or reordered frame can never verify.
    #[inline]
    pub fn open(&mut self, ad: &[u8], ciphertext: &[u8], tag: &[u8], plaintext_out: &mut [u8]) -> Result<()> {
        self.check_nonce()?;
        let ok = self.suite.aead().open(self.key.expose(), self.nonce, ad, ciphertext, tag, plaintext_out);
        self.verified(ok)
    }

    /// AEGIS-128L only: verifies and decrypts ciphertext that lies in memory
    /// another process may write (see [`sodium::Aead::open_aegis_raw`]).
    ///
    /// # Safety
    /// The suite must be AEGIS-128L; `ciphertext` must be valid for reads of
    /// `plaintext_out.len()` bytes and must not overlap the other arguments.
    #[inline]
    pub(crate) unsafe fn open_aegis_raw(
        &mut self,
        ad: &[u8],
        ciphertext: *const u8,
        tag: &[u8; 32],
        plaintext_out: &mut [u8],
    ) -> Result<()> {
        debug_assert_eq!(self.suite, CipherSuite::Aegis128L);
        self.check_nonce()?;
        let len = plaintext_out.len();
        // SAFETY: forwarded from the caller's contract.
        let ok =
            unsafe { Aead::open_aegis_raw(self.key.expose(), self.nonce, ad, ciphertext, len, tag, plaintext_out) };
        self.verified(ok)
    }

    fn check_nonce(&self) -> Result<()> {
        if self.nonce == u64::MAX {
            return Err(nonce_exhausted());
        }
        Ok(())
    }

    /// Advances the nonce after a frame verified, or says it did not.
    fn verified(&mut self, ok: bool) -> Result<()> {
        if !ok {
            return Err(Error::new(
                ErrorKind::AuthenticationFailed,
                format!(
                    "frame {} failed authentication: the shared memory was tampered with, or a frame \
                     was replayed, dropped or reordered; the connection is closed",
                    self.nonce
                ),
            ));
        }
        self.nonce += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_rule() {
        use CipherSuite::*;
        assert_eq!(
            CipherSuite::choose(&[Aegis128L, ChaCha20Poly1305], &[Aegis128L, ChaCha20Poly1305]),
            Some(Aegis128L)
        );
        assert_eq!(CipherSuite::choose(&[ChaCha20Poly1305], &[Aegis128L, ChaCha20Poly1305]), Some(ChaCha20Poly1305));
        assert_eq!(CipherSuite::choose(&[Aegis128L, ChaCha20Poly1305], &[ChaCha20Poly1305]), Some(ChaCha20Poly1305));
        assert_eq!(CipherSuite::choose(&[Aegis128L], &[ChaCha20Poly1305]), None);
        assert_eq!(CipherSuite::choose(&[], &[ChaCha20Poly1305]), None);
    }

    #[test]
    fn ids_and_names_round_trip() {
        for s in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
            assert_eq!(CipherSuite::from_id(s.id()), Some(s));
            assert_eq!(CipherSuite::from_name(s.name()), Some(s));
        }
        assert_eq!(CipherSuite::from_id(0), None);
        assert_eq!(CipherSuite::from_id(3), None);
        assert!(CipherSuite::local_offer(true) == vec![CipherSuite::ChaCha20Poly1305]);
    }

    #[test]
    fn replay_and_reorder_fail() {
        for suite in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
            let key = Secret::<32>::random();
            let mut tx = SendCipher::new(suite, key.clone());
            let mut rx = RecvCipher::new(suite, key);
            let mut frames = Vec::new();
            for i in 0..3u8 {
                let mut ct = [0u8; 4];
                let mut tag = vec![0u8; suite.tag_len()];
                tx.seal(b"h", &[i; 4], &mut ct, &mut tag).unwrap();
                frames.push((ct, tag));
            }
            let mut out = [0u8; 4];
            rx.open(b"h", &frames[0].0, &frames[0].1, &mut out).unwrap();
            assert_eq!(out, [0; 4]);
            // replay of frame 0
            assert_eq!(
                rx.open(b"h", &frames[0].0, &frames[0].1, &mut out).unwrap_err().kind(),
                ErrorKind::AuthenticationFailed
            );
            // skipping frame 1
            assert!(rx.open(b"h", &frames[2].0, &frames[2].1, &mut out).is_err());
            rx.open(b"h", &frames[1].0, &frames[1].1, &mut out).unwrap();
            assert_eq!(out, [1; 4]);
        }
    }
}

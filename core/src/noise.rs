//! Noise's CipherState and SymmetricState (Noise spec rev. 34, sections 5.1-5.2)
//! for `Noise_IK_25519_ChaChaPoly_BLAKE2b`.
//!
//! The IK message pattern and shmsock's payloads live in `handshake`; this module
//! only owns the chaining key, the handshake hash and the handshake-phase cipher.

use crate::error::{Error, ErrorKind, Result};
use crate::kdf::{self, HASHLEN};
use crate::sodium::{Aead, Secret};

/// The Noise protocol name shmsock speaks.
pub const PROTOCOL_NAME: &[u8] = b"Noise_IK_25519_ChaChaPoly_BLAKE2b";
/// Length of an AEAD tag during the handshake (ChaChaPoly).
pub const TAG_LEN: usize = 16;
/// Noise's maximum message length.
pub const MAX_MESSAGE_LEN: usize = 65535;

/// A handshake-phase CipherState: an optional key and a nonce counter.
struct CipherState {
    key: Option<Secret<32>>,
    nonce: u64,
}

impl CipherState {
    fn initialize_key(&mut self, key: Secret<32>) {
        self.key = Some(key);
        self.nonce = 0;
    }

    fn encrypt_with_ad(&mut self, ad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        match &self.key {
            None => out.extend_from_slice(plaintext),
            Some(key) => {
                let start = out.len();
                out.resize(start + plaintext.len() + TAG_LEN, 0);
                let (ct, tag) = out[start..].split_at_mut(plaintext.len());
                Aead::ChaCha20Poly1305.seal(key.expose(), self.nonce, ad, plaintext, ct, tag);
                // The handshake sends at most three encrypted fields per key.
                self.nonce += 1;
            }
        }
    }

    fn decrypt_with_ad(&mut self, ad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        match &self.key {
            None => Some(ciphertext.to_vec()),
            Some(key) => {
                let body_len = ciphertext.len().checked_sub(TAG_LEN)?;
                let (ct, tag) = ciphertext.split_at(body_len);
                let mut plaintext = vec![0u8; body_len];
                if !Aead::ChaCha20Poly1305.open(key.expose(), self.nonce, ad, ct, tag, &mut plaintext) {
                    return None;
                }
                self.nonce += 1;
                Some(plaintext)
            }
        }
    }
}

/// Noise's SymmetricState: chaining key, handshake hash, and a CipherState.
pub struct SymmetricState {
    chaining_key: Secret<HASHLEN>,
    hash: [u8; HASHLEN],
    cipher: CipherState,
}

impl SymmetricState {
    /// InitializeSymmetric(protocol_name): the name fits in HASHLEN, so it is padded
    /// with zeros to form h, and ck = h.
    pub fn new() -> SymmetricState {
        let mut hash = [0u8; HASHLEN];
        hash[..PROTOCOL_NAME.len()].copy_from_slice(PROTOCOL_NAME);
        let mut chaining_key = Secret::zero();
        chaining_key.0 = hash;
        SymmetricState { chaining_key, hash, cipher: CipherState { key: None, nonce: 0 } }
    }

    /// MixKey(input_key_material).
    pub fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, temp_k) = kdf::hkdf2(self.chaining_key.expose(), ikm);
        self.chaining_key = ck;
        self.cipher.initialize_key(truncate_key(&temp_k));
    }

    /// MixHash(data).
    pub fn mix_hash(&mut self, data: &[u8]) {
        self.hash = kdf::hash(&[&self.hash, data]);
    }

    /// EncryptAndHash(plaintext), appending the result to `out`.
    pub fn encrypt_and_hash(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        self.cipher.encrypt_with_ad(&self.hash, plaintext, out);
        let ciphertext = out[start..].to_vec();
        self.mix_hash(&ciphertext);
    }

    /// DecryptAndHash(ciphertext). Fails when the tag does not verify.
    pub fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let plaintext = self
            .cipher
            .decrypt_with_ad(&self.hash, ciphertext)
            .ok_or_else(|| Error::new(ErrorKind::AuthenticationFailed, "handshake field failed authentication"))?;
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    /// The handshake hash h, which both sides share once the handshake is done.
    pub fn handshake_hash(&self) -> [u8; HASHLEN] {
        self.hash
    }

    /// Split(): the initiator-to-responder and responder-to-initiator keys, each
    /// truncated to 32 bytes as Noise specifies for HASHLEN 64.
    pub fn split(&self) -> (Secret<32>, Secret<32>) {
        let (k1, k2) = kdf::hkdf2(self.chaining_key.expose(), &[]);
        (truncate_key(&k1), truncate_key(&k2))
    }
}

fn truncate_key(k: &Secret<HASHLEN>) -> Secret<32> {
    let mut out = Secret::zero();
    out.0.copy_from_slice(&k.expose()[..32]);
    out
}

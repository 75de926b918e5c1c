//! The group key of a topic: one AEAD key per epoch, under which the publisher
//! seals each message once and every subscriber opens it.
//!
//! Nonces: message `seq` (the topic's message counter, which never goes back)
//! is sealed with nonce counter `seq` under the key of the epoch it belongs to,
//! laid out as for transport frames (PROTOCOL.md "Key schedule"). Each epoch's
//! key is fresh and random, and a key only ever seals the sequence numbers of its
//! own epoch, each once, so no (key, nonce) pair repeats. The associated data
//! binds the sequence number, the epoch and the length (see [`message_ad`]), so a
//! slot replayed, moved or relabelled by the writer of the segment never opens.

use crate::cipher::CipherSuite;
use crate::error::{Error, ErrorKind, Result};
use crate::sodium::Secret;

/// Bytes of a KEY record's plaintext: epoch, first sequence, key.
pub const KEY_PLAINTEXT_LEN: usize = 8 + 8 + 32;
/// Bytes of a message's associated data.
pub const AD_LEN: usize = 24;

/// One epoch's key.
#[derive(Clone, Debug)]
pub struct GroupKey {
    /// The epoch: 1 for the topic's first key, then +1 per rotation.
    pub epoch: u64,
    /// The first message sequence number sealed under this key (for the key a
    /// subscriber receives first: where that subscriber starts reading).
    pub first_seq: u64,
    /// The key (AEGIS-128L uses its first 16 bytes).
    pub key: Secret<32>,
    /// The AEAD.
    pub suite: CipherSuite,
}

impl GroupKey {
    /// A fresh random key for `epoch`, first used for message `first_seq`.
    pub fn generate(suite: CipherSuite, epoch: u64, first_seq: u64) -> GroupKey {
        GroupKey { epoch, first_seq, key: Secret::random(), suite }
    }

    /// The KEY record's plaintext: epoch u64le, first_seq u64le, key (32 bytes).
    pub fn encode(&self) -> Secret<KEY_PLAINTEXT_LEN> {
        let mut out = Secret::<KEY_PLAINTEXT_LEN>::zero();
        out.0[..8].copy_from_slice(&self.epoch.to_le_bytes());
        out.0[8..16].copy_from_slice(&self.first_seq.to_le_bytes());
        out.0[16..].copy_from_slice(self.key.expose());
        out
    }

    /// Parses a KEY record's plaintext.
    pub fn decode(suite: CipherSuite, bytes: &[u8]) -> Result<GroupKey> {
        if bytes.len() != KEY_PLAINTEXT_LEN {
            return Err(Error::new(ErrorKind::ProtocolViolation, "a KEY record has the wrong length"));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut key = Secret::<32>::zero();
        key.0.copy_from_slice(&bytes[16..]);
        let epoch = u64_at(0);
        if epoch == 0 {
            return Err(Error::new(ErrorKind::ProtocolViolation, "a KEY record names epoch 0"));
        }
        Ok(GroupKey { epoch, first_seq: u64_at(8), key, suite })
    }

    /// Opens message `seq` (ciphertext then tag, copied out of the segment)
    /// into `out`.
    pub fn open(&self, seq: u64, sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let aead = self.suite.aead();
        let tag = aead.tag_len();
        let len = sealed.len().checked_sub(tag).filter(|l| *l == out.len()).ok_or_else(|| {
            Error::new(ErrorKind::ProtocolViolation, "a published message has an inconsistent length")
        })?;
        let ad = message_ad(seq, self.epoch, len as u32);
        if !aead.open(self.key.expose(), seq, &ad, &sealed[..len], &sealed[len..], out) {
            return Err(Error::new(
                ErrorKind::AuthenticationFailed,
                format!(
                    "published message {seq} (epoch {}) failed authentication: the broadcast segment was \
                     tampered with; the subscription is closed",
                    self.epoch
                ),
            ));
        }
        Ok(())
    }
}

/// The associated data of message `seq`: seq u64le, epoch u64le, length u32le,
/// four zero bytes (the slot header with the stamp replaced by the sequence).
pub fn message_ad(seq: u64, epoch: u64, len: u32) -> [u8; AD_LEN] {
    let mut ad = [0u8; AD_LEN];
    ad[..8].copy_from_slice(&seq.to_le_bytes());
    ad[8..16].copy_from_slice(&epoch.to_le_bytes());
    ad[16..20].copy_from_slice(&len.to_le_bytes());
    ad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_wrong_key_fails() {
        crate::sodium::init().unwrap();
        for suite in [CipherSuite::ChaCha20Poly1305, CipherSuite::Aegis128L] {
            let k = GroupKey::generate(suite, 3, 99);
            let back = GroupKey::decode(suite, k.encode().expose()).unwrap();
            assert_eq!((back.epoch, back.first_seq, back.key.expose()), (3, 99, k.key.expose()));
            let aead = suite.aead();
            let mut sealed = vec![0u8; 5 + aead.tag_len()];
            let (ct, tag) = sealed.split_at_mut(5);
            aead.seal(k.key.expose(), 7, &message_ad(7, 3, 5), b"hello", ct, tag);
            let mut out = [0u8; 5];
            k.open(7, &sealed, &mut out).unwrap();
            assert_eq!(&out, b"hello");
            assert_eq!(k.open(8, &sealed, &mut out).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
            let other = GroupKey::generate(suite, 3, 99);
            assert_eq!(other.open(7, &sealed, &mut out).unwrap_err().kind(), ErrorKind::AuthenticationFailed);
        }
        assert!(GroupKey::decode(CipherSuite::Aegis128L, &[0u8; 10]).is_err());
        assert!(GroupKey::decode(CipherSuite::Aegis128L, &[0u8; KEY_PLAINTEXT_LEN]).is_err());
    }
}

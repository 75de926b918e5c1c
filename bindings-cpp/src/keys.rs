//! `Keypair` and the helpers of `PublicKey` (a plain 32-byte value in C++).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use shmsock::Keypair;

use crate::errors::{guard, key_from_bytes, key_into, BridgeResult, Guarded};

/// A static keypair (the secret is zeroed when dropped).
pub struct KeypairBox(pub(crate) Guarded<Keypair>);

impl KeypairBox {
    fn boxed(keypair: Keypair) -> Box<KeypairBox> {
        Box::new(KeypairBox(Guarded::new(keypair)))
    }

    /// Writes a new key file with mode 0600 (never overwrites).
    pub fn save(&self, path: &[u8]) -> BridgeResult<()> {
        guard(|| self.0.save(OsStr::from_bytes(path)))
    }

    /// The public half, into a 32-byte buffer.
    pub fn public_key(&self, out: &mut [u8]) -> BridgeResult<()> {
        guard(|| key_into(self.0.public(), out))
    }
}

/// A fresh random keypair.
pub fn keypair_generate() -> BridgeResult<Box<KeypairBox>> {
    guard(|| Ok(KeypairBox::boxed(Keypair::generate())))
}

/// Loads a key file (refusing one that others can read).
pub fn keypair_load(path: &[u8]) -> BridgeResult<Box<KeypairBox>> {
    guard(|| Keypair::load(OsStr::from_bytes(path)).map(KeypairBox::boxed))
}

/// The keypair of a 32-byte secret.
pub fn keypair_from_secret(secret: &[u8]) -> BridgeResult<Box<KeypairBox>> {
    guard(|| {
        let bytes: [u8; 32] = secret.try_into().map_err(|_| {
            shmsock::Error::new(
                shmsock::ErrorKind::InvalidKey,
                format!("a secret key is 32 bytes long, not {}", secret.len()),
            )
        })?;
        Ok(KeypairBox::boxed(Keypair::from_secret_bytes(bytes)))
    })
}

/// A copy of a keypair.
pub fn keypair_clone(keypair: &KeypairBox) -> BridgeResult<Box<KeypairBox>> {
    guard(|| Ok(KeypairBox::boxed((*keypair.0).clone())))
}

/// The text form `shmsock-pk:<base64url>` of a public key.
pub fn public_key_to_text(key: &[u8]) -> BridgeResult<String> {
    guard(|| Ok(key_from_bytes(key)?.to_text()))
}

/// Parses the text form of a public key into a 32-byte buffer.
pub fn public_key_from_text(text: &[u8], out: &mut [u8]) -> BridgeResult<()> {
    guard(|| {
        let text = std::str::from_utf8(text).map_err(|_| {
            shmsock::Error::new(
                shmsock::ErrorKind::InvalidKey,
                "the text form of a public key is ASCII text; this is not UTF-8",
            )
        })?;
        key_into(&shmsock::PublicKey::from_text(text)?, out)
    })
}

/// The short fingerprint of a public key, e.g. `3f2a:9c11:07be:55d0`.
pub fn public_key_fingerprint(key: &[u8]) -> BridgeResult<String> {
    guard(|| Ok(key_from_bytes(key)?.fingerprint()))
}

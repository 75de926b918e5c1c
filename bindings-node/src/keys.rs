//! `Keypair` and the text form and fingerprint of public keys.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use shmsock::{ErrorKind, Keypair, PublicKey};

use crate::errors::{js_error, to_js, Code};

/// Internal (wrapped by the JavaScript `Keypair`): a static X25519 keypair, the identity of a server (which clients pin) or of
/// a client (which a server may allow-list). The secret never leaves native
/// memory and is zeroed when the keypair is garbage-collected.
#[napi(js_name = "NativeKeypair")]
pub struct JsKeypair {
    pub(crate) inner: Keypair,
}

#[napi]
impl JsKeypair {
    /// A fresh random keypair.
    #[napi(factory)]
    pub fn generate() -> JsKeypair {
        JsKeypair { inner: Keypair::generate() }
    }

    /// Loads a key file (as written by `save` or `shmsock keygen`). A file that
    /// its group or others can read is refused (`SHMSOCK_INSECURE_KEY_FILE`), a
    /// malformed one fails with `SHMSOCK_INVALID_KEY`, a missing one with
    /// `SHMSOCK_NOT_FOUND`.
    #[napi(factory)]
    pub fn load(path: String) -> napi::Result<JsKeypair, Code> {
        Keypair::load(path).map(|inner| JsKeypair { inner }).map_err(to_js)
    }

    /// The keypair of a 32-byte secret key.
    #[napi(factory)]
    pub fn from_secret_key(secret: Buffer) -> napi::Result<JsKeypair, Code> {
        let bytes: [u8; 32] = secret.as_ref().try_into().map_err(|_| {
            js_error(ErrorKind::InvalidKey, format!("a secret key is 32 bytes long, not {}", secret.len()))
        })?;
        Ok(JsKeypair { inner: Keypair::from_secret_bytes(bytes) })
    }

    /// Writes the keypair to a new key file with mode 0600. Refuses to
    /// overwrite an existing file (`SHMSOCK_INVALID_ARGUMENT`).
    #[napi]
    pub fn save(&self, path: String) -> napi::Result<(), Code> {
        self.inner.save(path).map_err(to_js)
    }

    /// The public key, 32 bytes.
    #[napi(getter)]
    pub fn public_key(&self) -> Buffer {
        Buffer::from(self.inner.public().as_bytes().to_vec())
    }

    /// The public key in text form, `shmsock-pk:<base64url>`.
    #[napi(getter)]
    pub fn public_key_text(&self) -> String {
        self.inner.public().to_text()
    }

    /// A short fingerprint of the public key for display, e.g. `3f2a:9c11:07be:55d0`.
    #[napi(getter)]
    pub fn fingerprint(&self) -> String {
        self.inner.public().fingerprint()
    }

    /// The text form of the public key (never the secret).
    #[napi(js_name = "toString")]
    pub fn to_string_js(&self) -> String {
        format!("Keypair({})", self.inner.public().to_text())
    }
}

/// Parses a public key given as 32 bytes or as text (`shmsock-pk:...`).
pub(crate) fn public_key_of(bytes: &[u8]) -> napi::Result<PublicKey, Code> {
    PublicKey::from_slice(bytes).map_err(to_js)
}

/// The 32 bytes of a public key in text form (`shmsock-pk:...`).
#[napi]
pub fn parse_public_key(text: String) -> napi::Result<Buffer, Code> {
    let key = PublicKey::from_text(&text).map_err(to_js)?;
    Ok(Buffer::from(key.as_bytes().to_vec()))
}

/// The text form (`shmsock-pk:...`) of a 32-byte public key.
#[napi]
pub fn public_key_text(key: Buffer) -> napi::Result<String, Code> {
    Ok(public_key_of(&key)?.to_text())
}

/// The fingerprint of a 32-byte public key, e.g. `3f2a:9c11:07be:55d0`.
#[napi]
pub fn fingerprint(key: Buffer) -> napi::Result<String, Code> {
    Ok(public_key_of(&key)?.fingerprint())
}

//! Every call into libsodium, and nothing else.
//!
//! All cryptography of shmsock (X25519, BLAKE2b, ChaCha20-Poly1305, AEGIS-128L,
//! randomness, zeroing) goes through this module, so the unsafe FFI lives in one
//! place. Each wrapper checks lengths with types (fixed-size arrays) or asserts that
//! cannot fail for callers inside the crate, and documents its safety argument.

use std::sync::OnceLock;

use libsodium_sys as ffi;

use crate::error::{Error, ErrorKind, Result};

/// Initialises libsodium once per process. Every public entry point that uses
/// cryptography calls this first; it is cheap after the first call.
pub fn init() -> Result<()> {
    static INIT: OnceLock<bool> = OnceLock::new();
    // SAFETY: sodium_init is thread-safe and idempotent; it returns 0 on first
    // success, 1 when already initialised and -1 on failure.
    let ok = *INIT.get_or_init(|| unsafe { ffi::sodium_init() } >= 0);
    if ok {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Io, "libsodium failed to initialise (no usable random source?)"))
    }
}

/// True when this CPU has the AES instructions that make AEGIS-128L fast
/// (AES-NI on x86, the ARMv8 crypto extensions on aarch64).
pub fn has_aes_hardware() -> bool {
    if init().is_err() {
        return false;
    }
    // SAFETY: pure queries of CPU features detected by sodium_init.
    unsafe { ffi::sodium_runtime_has_aesni() == 1 || ffi::sodium_runtime_has_armcrypto() == 1 }
}

/// Fills `buf` with cryptographically secure random bytes.
pub fn random_bytes(buf: &mut [u8]) {
    // A failed init leaves randombytes on its default source, which still works.
    let _ = init();
    // SAFETY: buf is a valid writable region of buf.len() bytes.
    unsafe { ffi::randombytes_buf(buf.as_mut_ptr().cast(), buf.len()) }
}

/// Overwrites `buf` with zeros in a way the compiler cannot elide.
pub fn memzero(buf: &mut [u8]) {
    // SAFETY: buf is a valid writable region of buf.len() bytes.
    unsafe { ffi::sodium_memzero(buf.as_mut_ptr().cast(), buf.len()) }
}

/// Constant-time equality of two equal-length byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // SAFETY: both regions are valid for a.len() bytes.
    unsafe { ffi::sodium_memcmp(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) == 0 }
}

/// A fixed-size secret that is zeroed when dropped.
#[derive(Clone)]
pub struct Secret<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Secret<N> {
    /// A secret of zeros, to be filled.
    pub fn zero() -> Self {
        Secret([0u8; N])
    }

    /// A fresh random secret.
    pub fn random() -> Self {
        let mut s = Secret::zero();
        random_bytes(&mut s.0);
        s
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        memzero(&mut self.0);
    }
}

impl<const N: usize> std::fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret<{N}>(..)")
    }
}

/// X25519 public key of a secret scalar.
pub fn x25519_base(secret: &[u8; 32]) -> [u8; 32] {
    let _ = init();
    let mut out = [0u8; 32];
    // SAFETY: out and secret are 32-byte arrays as the function requires. It only
    // fails for an all-zero result, which the base point cannot produce.
    unsafe { ffi::crypto_scalarmult_curve25519_base(out.as_mut_ptr(), secret.as_ptr()) };
    out
}

/// X25519 Diffie-Hellman. Fails when the peer's point has small order (the shared
/// secret would be all zeros), which Noise allows an implementation to reject.
pub fn x25519(secret: &[u8; 32], public: &[u8; 32]) -> Result<Secret<32>> {
    init()?;
    let mut out = Secret::<32>::zero();
    // SAFETY: all three are 32-byte arrays as the function requires.
    let rc = unsafe { ffi::crypto_scalarmult_curve25519(out.0.as_mut_ptr(), secret.as_ptr(), public.as_ptr()) };
    if rc != 0 {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            "the peer's public key is a low-order point (X25519 gave all zeros); refusing it",
        ));
    }
    Ok(out)
}

/// Incremental BLAKE2b with a fixed output length.
pub struct Blake2b {
    state: ffi::crypto_generichash_blake2b_state,
    outlen: usize,
}

impl Blake2b {
    /// A new unkeyed hash producing `outlen` bytes (1..=64).
    pub fn new(outlen: usize) -> Blake2b {
        assert!((1..=64).contains(&outlen), "BLAKE2b output length out of range");
        let _ = init();
        let mut state = ffi::crypto_generichash_blake2b_state { opaque: [0u8; 384] };
        // SAFETY: state is a valid, suitably sized state; no key; outlen checked.
        unsafe { ffi::crypto_generichash_blake2b_init(&mut state, std::ptr::null(), 0, outlen) };
        Blake2b { state, outlen }
    }

    /// Absorbs `data`.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        // SAFETY: data is valid for data.len() bytes; state was initialised.
        unsafe { ffi::crypto_generichash_blake2b_update(&mut self.state, data.as_ptr(), data.len() as u64) };
        self
    }

    /// Writes the digest into `out`, whose length must be the output length.
    pub fn finish_into(mut self, out: &mut [u8]) {
        assert_eq!(out.len(), self.outlen, "BLAKE2b output buffer of the wrong length");
        // SAFETY: out is valid for outlen bytes; state was initialised.
        unsafe { ffi::crypto_generichash_blake2b_final(&mut self.state, out.as_mut_ptr(), out.len()) };
    }
}

impl Drop for Blake2b {
    fn drop(&mut self) {
        memzero(&mut self.state.opaque);
    }
}

/// The two AEADs shmsock uses. Keys are always passed as 32 bytes; AEGIS-128L uses
/// the first 16 (see PROTOCOL.md, "Key schedule").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    /// ChaCha20-Poly1305 (IETF, 96-bit nonce), 16-byte tag.
    ChaCha20Poly1305,
    /// AEGIS-128L, 128-bit nonce, 32-byte tag.
    Aegis128L,
}

impl Aead {
    /// Tag length in bytes.
    #[inline]
    pub const fn tag_len(self) -> usize {
        match self {
            Aead::ChaCha20Poly1305 => 16,
            Aead::Aegis128L => 32,
        }
    }

    /// The nonce for counter `n`, as Noise and PROTOCOL.md define it: ChaCha20-Poly1305
    /// takes 4 zero bytes then `n` little-endian; AEGIS-128L takes `n` little-endian
    /// then 8 zero bytes.
    #[inline]
    fn nonce(self, n: u64) -> [u8; 16] {
        let mut nonce = [0u8; 16];
        match self {
            Aead::ChaCha20Poly1305 => nonce[4..12].copy_from_slice(&n.to_le_bytes()),
            Aead::Aegis128L => nonce[..8].copy_from_slice(&n.to_le_bytes()),
        }
        nonce
    }

    /// Encrypts `plaintext` to `ciphertext_out` (same length) and writes the tag to
    /// `tag_out` (`tag_len` bytes), authenticating `ad`.
    ///
    /// # Safety
    /// `ciphertext_out` must be valid for writes of `plaintext.len()` bytes and
    /// `tag_out` for `tag_len()` bytes. Neither may overlap `plaintext`, `ad` or
    /// `key`. They may point into memory another process writes: AEGIS-128L only
    /// writes its output (it never reads it back). ChaCha20-Poly1305 in libsodium
    /// reads the ciphertext back to compute the tag, so callers must give it private
    /// memory (see `cipher::SendCipher`).
    #[inline]
    pub unsafe fn seal_raw(
        self,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        plaintext: &[u8],
        ciphertext_out: *mut u8,
        tag_out: *mut u8,
    ) {
        let nonce = self.nonce(n);
        let mut taglen: u64 = 0;
        // SAFETY: the caller guarantees the output regions; inputs are valid slices;
        // key and nonce have the lengths each function requires (32 and 12 for
        // ChaCha20-Poly1305 IETF, 16 and 16 for AEGIS-128L). Both return 0 always.
        unsafe {
            match self {
                Aead::ChaCha20Poly1305 => ffi::crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                    ciphertext_out,
                    tag_out,
                    &mut taglen,
                    plaintext.as_ptr(),
                    plaintext.len() as u64,
                    ad.as_ptr(),
                    ad.len() as u64,
                    std::ptr::null(),
                    nonce.as_ptr(),
                    key.as_ptr(),
                ),
                Aead::Aegis128L => ffi::crypto_aead_aegis128l_encrypt_detached(
                    ciphertext_out,
                    tag_out,
                    &mut taglen,
                    plaintext.as_ptr(),
                    plaintext.len() as u64,
                    ad.as_ptr(),
                    ad.len() as u64,
                    std::ptr::null(),
                    nonce.as_ptr(),
                    key.as_ptr(),
                ),
            };
        }
    }

    /// Seals into private buffers (safe wrapper of [`seal_raw`](Aead::seal_raw)).
    #[inline]
    pub fn seal(
        self,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        plaintext: &[u8],
        ciphertext_out: &mut [u8],
        tag_out: &mut [u8],
    ) {
        assert_eq!(ciphertext_out.len(), plaintext.len());
        assert_eq!(tag_out.len(), self.tag_len());
        // SAFETY: the outputs are exclusive Rust slices of the right lengths, so they
        // are valid and cannot overlap the shared-borrowed inputs.
        unsafe { self.seal_raw(key, n, ad, plaintext, ciphertext_out.as_mut_ptr(), tag_out.as_mut_ptr()) }
    }

    /// Verifies `tag` over `ad` and `ciphertext` and, only if it is valid, writes the
    /// plaintext to `plaintext_out` (same length as `ciphertext`). Returns false, and
    /// writes nothing usable, when authentication fails.
    ///
    /// The inputs are Rust slices: callers copy ciphertext out of shared memory
    /// first, so the bytes verified are exactly the bytes decrypted.
    #[inline]
    pub fn open(
        self,
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        plaintext_out: &mut [u8],
    ) -> bool {
        assert_eq!(ciphertext.len(), plaintext_out.len());
        if tag.len() != self.tag_len() {
            return false;
        }
        if let Aead::Aegis128L = self {
            let Ok(tag) = <&[u8; 32]>::try_from(tag) else { return false };
            // SAFETY: the ciphertext is a slice of the length passed, private to
            // this call, and cannot overlap the exclusive plaintext_out.
            return unsafe {
                Aead::open_aegis_raw(key, n, ad, ciphertext.as_ptr(), ciphertext.len(), tag, plaintext_out)
            };
        }
        let nonce = self.nonce(n);
        // SAFETY: every pointer comes from a slice of the length passed with it; key
        // and nonce have the required lengths. libsodium verifies before it writes
        // the plaintext and returns -1 on failure.
        let rc = unsafe {
            ffi::crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                plaintext_out.as_mut_ptr(),
                std::ptr::null_mut(),
                ciphertext.as_ptr(),
                ciphertext.len() as u64,
                tag.as_ptr(),
                ad.as_ptr(),
                ad.len() as u64,
                nonce.as_ptr(),
                key.as_ptr(),
            )
        };
        rc == 0
    }

    /// AEGIS-128L only: verifies `tag` over `ad` and the `len` ciphertext bytes
    /// at `ciphertext`, which may lie in memory another process writes, and only
    /// if it is valid leaves the plaintext in `plaintext_out` (zeroed otherwise).
    ///
    /// Sound for shared memory because libsodium's AEGIS-128L `decrypt_detached`
    /// reads each ciphertext byte exactly once (PROTOCOL.md §10): every 32-byte
    /// block is loaded once into locals (`aegis128l_dec`), the last partial block
    /// is copied once into a private pad (`aegis128l_declast`), and the plaintext,
    /// the state update and so the tag all derive from that one load. So the tag
    /// checks exactly the bytes that were decrypted, whatever a writer does.
    ///
    /// # Safety
    /// `ciphertext` must be valid for reads of `len` bytes for the duration of the
    /// call (it may change meanwhile) and must not overlap `plaintext_out`, `ad` or
    /// `tag` (private memory); `plaintext_out.len() == len`.
    #[inline]
    pub unsafe fn open_aegis_raw(
        key: &[u8; 32],
        n: u64,
        ad: &[u8],
        ciphertext: *const u8,
        len: usize,
        tag: &[u8; 32],
        plaintext_out: &mut [u8],
    ) -> bool {
        assert_eq!(plaintext_out.len(), len);
        let nonce = Aead::Aegis128L.nonce(n);
        // SAFETY: ciphertext is valid for len bytes (the caller's contract), the
        // other pointers come from slices and arrays of the lengths passed; the key
        // and nonce have the 16 bytes AEGIS-128L reads. libsodium zeroes the
        // output and returns -1 when the tag does not verify.
        let rc = unsafe {
            ffi::crypto_aead_aegis128l_decrypt_detached(
                plaintext_out.as_mut_ptr(),
                std::ptr::null_mut(),
                ciphertext,
                len as u64,
                tag.as_ptr(),
                ad.as_ptr(),
                ad.len() as u64,
                nonce.as_ptr(),
                key.as_ptr(),
            )
        };
        rc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_agrees() {
        let a = Secret::<32>::random();
        let b = Secret::<32>::random();
        let pa = x25519_base(a.expose());
        let pb = x25519_base(b.expose());
        let s1 = x25519(a.expose(), &pb).unwrap();
        let s2 = x25519(b.expose(), &pa).unwrap();
        assert_eq!(s1.expose(), s2.expose());
    }

    #[test]
    fn x25519_rejects_low_order_point() {
        let a = Secret::<32>::random();
        let err = x25519(a.expose(), &[0u8; 32]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey);
    }

    #[test]
    fn blake2b_matches_known_answer() {
        // BLAKE2b-512("abc") from RFC 7693, appendix A.
        let mut h = Blake2b::new(64);
        h.update(b"a").update(b"bc");
        let mut out = [0u8; 64];
        h.finish_into(&mut out);
        assert_eq!(out[..8], [0xBA, 0x80, 0xA5, 0x3F, 0x98, 0x1C, 0x4D, 0x0D]);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        for aead in [Aead::ChaCha20Poly1305, Aead::Aegis128L] {
            let key = [7u8; 32];
            let msg = b"hello shared memory";
            let mut ct = vec![0u8; msg.len()];
            let mut tag = vec![0u8; aead.tag_len()];
            aead.seal(&key, 5, b"ad", msg, &mut ct, &mut tag);
            let mut pt = vec![0u8; msg.len()];
            assert!(aead.open(&key, 5, b"ad", &ct, &tag, &mut pt));
            assert_eq!(&pt, msg);
            assert!(!aead.open(&key, 6, b"ad", &ct, &tag, &mut pt), "wrong nonce");
            assert!(!aead.open(&key, 5, b"aD", &ct, &tag, &mut pt), "wrong ad");
            ct[0] ^= 1;
            assert!(!aead.open(&key, 5, b"ad", &ct, &tag, &mut pt), "tampered");
        }
    }
}

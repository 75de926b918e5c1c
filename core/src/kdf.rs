//! HASH, HMAC and HKDF over BLAKE2b, as the Noise specification (rev. 34, section
//! 4.3) defines them for `Noise_*_BLAKE2b`: HASHLEN = 64, BLOCKLEN = 128.
//!
//! Written once here and used by the handshake for every key derivation.

use crate::sodium::{memzero, Blake2b, Secret};

/// Output length of BLAKE2b as Noise uses it.
pub const HASHLEN: usize = 64;
/// Block length of BLAKE2b, for HMAC.
pub const BLOCKLEN: usize = 128;

/// BLAKE2b-512 of the concatenation of `parts`.
pub fn hash(parts: &[&[u8]]) -> [u8; HASHLEN] {
    let mut h = Blake2b::new(HASHLEN);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; HASHLEN];
    h.finish_into(&mut out);
    out
}

/// HMAC-BLAKE2b (RFC 2104) of the concatenation of `parts` under `key`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> Secret<HASHLEN> {
    let mut block = [0u8; BLOCKLEN];
    if key.len() > BLOCKLEN {
        block[..HASHLEN].copy_from_slice(&hash(&[key]));
    } else {
        block[..key.len()].copy_from_slice(key);
    }

    let mut pad = [0u8; BLOCKLEN];
    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x36;
    }
    let mut inner_hash = Blake2b::new(HASHLEN);
    inner_hash.update(&pad);
    for p in parts {
        inner_hash.update(p);
    }
    let mut inner = [0u8; HASHLEN];
    inner_hash.finish_into(&mut inner);

    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x5c;
    }
    let mut outer = Secret::<HASHLEN>::zero();
    let mut outer_hash = Blake2b::new(HASHLEN);
    outer_hash.update(&pad).update(&inner);
    outer_hash.finish_into(&mut outer.0);

    memzero(&mut block);
    memzero(&mut pad);
    memzero(&mut inner);
    outer
}

/// Noise's HKDF(chaining_key, input_key_material, 2).
pub fn hkdf2(chaining_key: &[u8; HASHLEN], ikm: &[u8]) -> (Secret<HASHLEN>, Secret<HASHLEN>) {
    let temp_key = hmac(chaining_key, &[ikm]);
    let out1 = hmac(temp_key.expose(), &[&[0x01]]);
    let out2 = hmac(temp_key.expose(), &[out1.expose(), &[0x02]]);
    (out1, out2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_blake2b_known_answer() {
        // HMAC-BLAKE2b-512, RFC 4231 test case 2 (key "Jefe"), as computed by
        // Python's hmac.new(b"Jefe", msg, hashlib.blake2b).
        let mac = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(mac.expose()),
            "6ff884f8ddc2a6586b3c98a4cd6ebdf14ec10204b6710073eb5865ade37a2643\
             b8807c1335d107ecdb9ffeaeb6828c4625ba172c66379efcd222c2de11727ab4"
        );
    }

    #[test]
    fn hmac_long_key_is_hashed() {
        let long = [0xaau8; 131];
        let mac1 = hmac(&long, &[b"x"]);
        let mac2 = hmac(&hash(&[&long]), &[b"x"]);
        assert_eq!(mac1.expose(), mac2.expose());
    }

    #[test]
    fn hkdf_outputs_differ_and_are_deterministic() {
        let ck = [1u8; HASHLEN];
        let (a1, a2) = hkdf2(&ck, b"ikm");
        let (b1, b2) = hkdf2(&ck, b"ikm");
        assert_eq!(a1.expose(), b1.expose());
        assert_eq!(a2.expose(), b2.expose());
        assert_ne!(a1.expose(), a2.expose());
    }
}

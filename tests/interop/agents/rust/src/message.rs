//! The messages the agents exchange: the bytes of message `i`, and how a
//! received message differs from it.

/// Message `i` of size `n`: byte `j` is `(i + 31 * j + n) mod 256`.
pub(crate) fn fill_message(buf: &mut Vec<u8>, i: u64, n: usize) {
    buf.clear();
    let mut byte = (i as u8).wrapping_add(n as u8);
    buf.extend((0..n).map(|_| {
        let b = byte;
        byte = byte.wrapping_add(31);
        b
    }));
}

/// What differs between an echo of `len` bytes, starting with `got`, and the
/// message sent.
pub(crate) fn difference(len: usize, got: &[u8], expected: &[u8]) -> String {
    if len != expected.len() {
        return format!("received {len} bytes");
    }
    match got.iter().zip(expected).position(|(a, b)| a != b) {
        Some(j) => format!("byte {j} is {}, expected {}", got[j], expected[j]),
        None => "no difference".into(),
    }
}

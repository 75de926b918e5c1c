//! A hostile publisher against a subscriber, in process (PROTOCOL.md section 14).
//!
//! Input: one configuration byte (bit 0: 1 = AEGIS-128L, else
//! ChaCha20-Poly1305; bit 1: a latest topic, else reliable), then ops, each an
//! opcode byte (mod 4): 0 publish (u16le length), 1 write into the broadcast
//! segment (u16le offset, u8 length, the bytes: slot stamps, lengths, sealed
//! bytes, the header), 2 receive until WouldBlock or an error, 3 rotate the
//! group key. A real `Publisher` and `Subscriber` run the script.
//!
//! Checked: no panic, no hang, no out-of-bounds access (ASan); every message
//! delivered is the one published under its sequence number; nothing is
//! delivered after the subscriber failed.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shmsock_fuzz::replay_topic(data);
});

//! Arbitrary shared-memory contents for a stream's receive path, in process.
//!
//! Input: one configuration byte (bit 0: 0 = ChaCha20-Poly1305, 1 = AEGIS-128L),
//! then writes, each a u16le offset, a u8 length and the bytes, into the
//! client-to-server ring of a real server-side `Stream` (offsets below
//! `fuzzing::CONTROL_LEN` hit its control block: the tail and head counters and
//! the waiting flags; the rest its 4 KiB data area: PAD records, frame headers,
//! ciphertext). After each write the stream receives until it says WouldBlock
//! or fails, as a receiver polling a ring a hostile peer writes would.
//!
//! Checked: no panic, no hang, no out-of-bounds access (ASan), no message over
//! the limit, and nothing delivered once the stream has failed or seen CLOSE.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shmsock_fuzz as fx;

fuzz_target!(|data: &[u8]| {
    fx::replay_receive(data);
});

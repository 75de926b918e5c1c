//! Arbitrary bytes as control records (PROTOCOL.md, "Control channel").
//!
//! The input is parsed directly (`control::parse` of its first four bytes and
//! the rest), and read as a stream of records from a socket pair
//! (`control::receive`), the first one judged as a server judges a client's
//! first record (`control::first_record`).
//!
//! Checked: no panic, no hang; a well-formed HELLO, REPLY or READY encodes back
//! to the bytes it came from; every malformed first record is answered with
//! REJECT 5, and only a record that could not be read goes unanswered.

#![no_main]

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use shmsock::control::{self, FirstRecord, Record};
use shmsock::handshake::RejectReason;
use shmsock::ErrorKind;

fn assert_round_trip(header: &[u8; 4], body: &[u8], record: &Record) {
    let encoded = match record {
        Record::Hello(b) => control::encode(control::HELLO, b),
        Record::Reply(b) => control::encode(control::REPLY, b),
        Record::Ready => control::encode(control::READY, &[]),
        // Unknown reason codes read as ServerError and text is read lossily.
        Record::Reject(..) => return,
    };
    assert_eq!(&encoded[..4], header);
    assert_eq!(&encoded[4..], body);
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let header: [u8; 4] = data[..4].try_into().expect("four bytes");
        let len = control::body_len(&header).min(data.len() - 4);
        let body = &data[4..4 + len];
        if let Ok(record) = control::parse(&header, body.to_vec()) {
            if len == control::body_len(&header) {
                assert_round_trip(&header, body, &record);
            }
        }
    }

    // libFuzzer inputs are small (-max_len), far below a socket buffer, so the
    // whole input is written before the reader starts.
    let (mut writer, reader) = UnixStream::pair().expect("a socket pair");
    if writer.write_all(data).is_err() {
        return;
    }
    drop(writer);
    let mut fds = Vec::new();
    let first = control::receive(reader.as_fd(), &mut fds, None);
    match control::first_record(first, &fds) {
        FirstRecord::Hello(_) => assert!(data[0] == control::HELLO && data[1] == 0),
        FirstRecord::Malformed(e) => assert_eq!(RejectReason::for_error(e.kind()), RejectReason::Malformed, "{e}"),
        FirstRecord::Unanswered(e) => assert_eq!(e.kind(), ErrorKind::PeerGone, "{e}"),
    }
    // The rest, record by record, until the end of the input.
    for _ in 0..data.len() {
        if control::receive(reader.as_fd(), &mut fds, None).is_err_and(|e| e.kind() == ErrorKind::PeerGone) {
            break;
        }
    }
});

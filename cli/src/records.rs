//! How messages map to bytes on stdin and stdout.
//!
//! - Text mode: one message per line. Reading, a line's trailing `\n` is removed
//!   (nothing else: a `\r` stays); a last line without `\n` is a message too.
//!   Writing, each message is followed by `\n`.
//! - Binary mode: each message is a record, a 4-byte little-endian length and
//!   then that many bytes (zero-length messages included), both ways.

use std::io::{self, BufRead, Read, Write};

use crate::error::{code, CliError};

/// The largest message read from stdin: the default largest message a peer accepts.
pub const MAX_MESSAGE: usize = shmsock::options::DEFAULT_MAX_MESSAGE_SIZE as usize;

/// Text lines or length-prefixed binary records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One message per line.
    Text,
    /// 4-byte little-endian length, then the bytes.
    Binary,
}

/// Reads messages from stdin (or any reader).
pub struct RecordReader<R> {
    input: R,
    mode: Mode,
    max: usize,
    count: u64,
}

impl<R: BufRead> RecordReader<R> {
    /// A reader of `mode` records of at most `max` bytes.
    pub fn new(input: R, mode: Mode, max: usize) -> RecordReader<R> {
        RecordReader { input, mode, max, count: 0 }
    }

    /// The next message, or None at the end of the input.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, CliError> {
        let message = match self.mode {
            Mode::Text => self.next_line(),
            Mode::Binary => self.next_record(),
        }?;
        if message.is_some() {
            self.count += 1;
        }
        Ok(message)
    }

    fn too_large(&self, len: u64) -> CliError {
        let unit = if self.mode == Mode::Text { "line" } else { "record" };
        CliError::new(
            code::FAILED,
            format!("reading stdin ({unit} {})", self.count + 1),
            format!("the {unit} holds {len} bytes or more, over the {} bytes a message may hold", self.max),
            "Split the data into smaller messages",
        )
    }

    fn read_error(&self, err: &io::Error) -> CliError {
        CliError::io("reading stdin", err)
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, CliError> {
        let mut line = Vec::new();
        // One byte over the limit, plus the newline, tells a line too long.
        let limit = self.max as u64 + 2;
        let n = (&mut self.input).take(limit).read_until(b'\n', &mut line).map_err(|e| self.read_error(&e))?;
        if n == 0 {
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.len() > self.max {
            return Err(self.too_large(line.len() as u64));
        }
        Ok(Some(line))
    }

    fn next_record(&mut self) -> Result<Option<Vec<u8>>, CliError> {
        let mut header = [0u8; 4];
        let got = read_full(&mut self.input, &mut header).map_err(|e| self.read_error(&e))?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            return Err(self.truncated(got, header.len()));
        }
        let len = u32::from_le_bytes(header) as usize;
        if len > self.max {
            return Err(self.too_large(len as u64));
        }
        let mut message = vec![0u8; len];
        let got = read_full(&mut self.input, &mut message).map_err(|e| self.read_error(&e))?;
        if got < len {
            return Err(self.truncated(4 + got, 4 + len));
        }
        Ok(Some(message))
    }

    fn truncated(&self, got: usize, want: usize) -> CliError {
        CliError::new(
            code::FAILED,
            format!("reading stdin (record {})", self.count + 1),
            format!("the input ended inside a record ({got} of {want} bytes)"),
            "In --binary mode every message is a 4-byte little-endian length followed by that many bytes",
        )
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes messages to stdout (or any writer), flushing after each.
pub struct RecordWriter<W> {
    out: W,
    mode: Mode,
}

impl<W: Write> RecordWriter<W> {
    /// A writer of `mode` records.
    pub fn new(out: W, mode: Mode) -> RecordWriter<W> {
        RecordWriter { out, mode }
    }

    /// Writes one message and flushes.
    pub fn write_message(&mut self, message: &[u8]) -> io::Result<()> {
        match self.mode {
            Mode::Text => {
                self.out.write_all(message)?;
                self.out.write_all(b"\n")?;
            }
            Mode::Binary => {
                let len = u32::try_from(message.len())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a message over 4 GiB has no record"))?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(message)?;
            }
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8], mode: Mode, max: usize) -> Result<Vec<Vec<u8>>, CliError> {
        let mut r = RecordReader::new(input, mode, max);
        let mut v = Vec::new();
        while let Some(m) = r.next_message()? {
            v.push(m);
        }
        Ok(v)
    }

    #[test]
    fn text_lines() {
        assert_eq!(
            read_all(b"a\n\nb\r\nc", Mode::Text, 10).unwrap(),
            vec![b"a".to_vec(), vec![], b"b\r".to_vec(), b"c".to_vec()]
        );
        assert_eq!(read_all(b"", Mode::Text, 10).unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(read_all(b"0123456789\n", Mode::Text, 10).unwrap().len(), 1);
        assert!(read_all(b"01234567890\n", Mode::Text, 10).is_err());
        assert!(read_all(b"01234567890", Mode::Text, 10).is_err());
    }

    #[test]
    fn binary_records_round_trip() {
        let mut out = Vec::new();
        let mut w = RecordWriter::new(&mut out, Mode::Binary);
        w.write_message(b"").unwrap();
        w.write_message(b"hello").unwrap();
        assert_eq!(read_all(&out, Mode::Binary, 10).unwrap(), vec![vec![], b"hello".to_vec()]);
        assert!(read_all(&out[..out.len() - 1], Mode::Binary, 10).is_err());
        assert!(read_all(&out[..2], Mode::Binary, 10).is_err());
        assert!(read_all(&[11, 0, 0, 0], Mode::Binary, 10).is_err());
    }
}

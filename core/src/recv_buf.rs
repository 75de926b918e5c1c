//! [`RecvBuf`]: storage a receive decrypts a message into, made ready once the
//! message's length is known. It lets a caller receive into memory it
//! allocates at exactly the message's size (a `malloc`ed block for C, a Python
//! `bytes`) in one call, with no "measure, allocate, receive again" loop.

use crate::error::{Error, ErrorKind, Result};

/// Where [`Stream::recv_with`](crate::Stream::recv_with) and
/// [`Subscriber::recv_with`](crate::Subscriber::recv_with) put a message.
///
/// The receive calls [`prepare`](RecvBuf::prepare) with the message's length
/// when its first part arrives (before the rest has arrived), then decrypts
/// into the first `len` bytes of [`bytes`](RecvBuf::bytes). When a receive
/// returns early (a timeout, WouldBlock) with a message partly received, the
/// core keeps the part received; the next receive calls `prepare` again with
/// the same length, so an implementation may hand out the same storage again.
///
/// An error from `prepare` (say BufferTooSmall, or ResourceExhausted when
/// memory cannot be had) is returned by the receive, and the message stays
/// queued for the next one: it never ends the connection.
///
/// ```
/// use shmsock::{RecvBuf, Result};
///
/// /// A buffer that grows to the largest message seen and reuses its memory.
/// struct Reused(Vec<u8>, usize);
///
/// impl RecvBuf for Reused {
///     fn prepare(&mut self, len: usize) -> Result<()> {
///         if self.0.len() < len {
///             self.0.resize(len, 0);
///         }
///         self.1 = len;
///         Ok(())
///     }
///     fn bytes(&mut self) -> &mut [u8] {
///         &mut self.0[..self.1]
///     }
/// }
///
/// let mut buf = Reused(Vec::new(), 0);
/// buf.prepare(5)?;
/// assert_eq!(buf.bytes().len(), 5);
/// // With a stream: `let len = stream.recv_with(&mut buf, deadline)?;` and
/// // the message is `&buf.0[..len]`.
/// # Ok::<(), shmsock::Error>(())
/// ```
pub trait RecvBuf {
    /// Makes room for a message of `len` bytes, or says why not (the message
    /// is then kept for the next receive).
    fn prepare(&mut self, len: usize) -> Result<()>;

    /// The storage made ready by the last [`prepare`](RecvBuf::prepare): at
    /// least its `len` bytes (a shorter one fails the receive with
    /// InvalidArgument, keeping the message).
    fn bytes(&mut self) -> &mut [u8];

    /// A receive that returns before the message is whole (WouldBlock, a
    /// timeout) asks for the storage the message is going into: a vector
    /// holding its `len` bytes (as made ready by `prepare`), which the core
    /// keeps, filling it further, until a later receive hands it back through
    /// [`take_back`](RecvBuf::take_back). None (the default): the core copies
    /// the part received into storage of its own.
    ///
    /// Storage that must stay where it is (a caller's slice) says None; one
    /// that allocates per message (a binding's pooled block) gives its
    /// vector, so a message trickled over many calls is neither copied nor
    /// decrypted into fresh memory. A vector of another length is copied from.
    fn detach(&mut self, _len: usize) -> Option<Vec<u8>> {
        None
    }

    /// Takes over `bytes`, the storage of a partly received message (of the
    /// length the next `prepare` would be asked for), from
    /// [`detach`](RecvBuf::detach) or the core; the rest of the message is
    /// decrypted into it. False (the default) leaves `bytes` alone: the core
    /// calls `prepare` and copies the message over once it is whole.
    fn take_back(&mut self, _bytes: &mut Vec<u8>) -> bool {
        false
    }
}

/// A caller's buffer: a message longer than it is BufferTooSmall with the
/// length needed.
impl RecvBuf for [u8] {
    fn prepare(&mut self, len: usize) -> Result<()> {
        if len > self.len() {
            return Err(Error::buffer_too_small(len, self.len()));
        }
        Ok(())
    }

    fn bytes(&mut self) -> &mut [u8] {
        self
    }
}

/// A vector resized to the message's length.
impl RecvBuf for Vec<u8> {
    fn prepare(&mut self, len: usize) -> Result<()> {
        self.clear();
        self.try_reserve_exact(len).map_err(|_| {
            Error::new(ErrorKind::ResourceExhausted, format!("out of memory allocating {len} bytes for a message"))
        })?;
        self.resize(len, 0);
        Ok(())
    }

    fn bytes(&mut self) -> &mut [u8] {
        self
    }
}

/// `buf.bytes()[offset..offset + len]`, or InvalidArgument when `bytes()` is
/// shorter than what `prepare` was asked for (an implementation's bug must not
/// panic inside a receive).
pub(crate) fn part(buf: &mut (impl RecvBuf + ?Sized), offset: usize, len: usize) -> Result<&mut [u8]> {
    let bytes = buf.bytes();
    let have = bytes.len();
    offset.checked_add(len).and_then(|end| bytes.get_mut(offset..end)).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("RecvBuf::bytes gave {have} bytes, fewer than the {} prepared", offset.saturating_add(len)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_too_small_says_how_much_is_needed() {
        let mut buf = [0u8; 4];
        let e = buf[..].prepare(5).unwrap_err();
        assert_eq!((e.kind(), e.needed()), (ErrorKind::BufferTooSmall, Some(5)));
        assert!(buf[..].prepare(4).is_ok());
    }

    #[test]
    fn a_vec_is_resized_to_the_message() {
        let mut v = vec![1u8; 10];
        v.prepare(3).unwrap();
        assert_eq!(v.bytes(), &[0, 0, 0]);
    }

    #[test]
    fn bytes_shorter_than_prepared_is_an_error_not_a_panic() {
        let mut buf = [0u8; 4];
        assert_eq!(part(&mut buf[..], 2, 3).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(part(&mut buf[..], usize::MAX, 3).unwrap_err().kind(), ErrorKind::InvalidArgument);
        assert_eq!(part(&mut buf[..], 1, 3).unwrap().len(), 3);
    }
}

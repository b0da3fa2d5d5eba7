//! A bounds-checked little-endian reader over a byte slice. Every read names what it reads (lazily:
//! the name is only formatted when the read fails) so a truncated file says which field ran out.

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of `bytes[0]` in the whole file, so errors report file offsets.
    base: u64,
    /// Length of the whole file, for error messages.
    file_len: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0, base: 0, file_len: bytes.len() as u64 }
    }

    /// Current position as a file offset.
    pub fn pos(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    /// The bytes from `start` (a file offset previously returned by `pos`) to the current position.
    pub fn slice_from(&self, start: u64) -> &'a [u8] {
        let start = (start - self.base) as usize;
        &self.bytes[start.min(self.pos)..self.pos]
    }

    pub fn take(&mut self, n: u64, field: impl FnOnce() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::Truncated {
                field: field(),
                offset: self.pos(),
                need: n,
                available: self.remaining(),
                file_len: self.file_len,
            });
        }
        // n <= remaining <= usize::MAX, so the cast is exact.
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: impl FnOnce() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub fn u8(&mut self, field: impl FnOnce() -> String) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }
    pub fn u16(&mut self, field: impl FnOnce() -> String) -> Result<u16> {
        self.array(field).map(u16::from_le_bytes)
    }
    pub fn u32(&mut self, field: impl FnOnce() -> String) -> Result<u32> {
        self.array(field).map(u32::from_le_bytes)
    }
    pub fn u64(&mut self, field: impl FnOnce() -> String) -> Result<u64> {
        self.array(field).map(u64::from_le_bytes)
    }

    /// A GGUF string: a u64 byte length, then the bytes. The length is checked against what
    /// remains before anything else happens.
    pub fn string(&mut self, field: impl Fn() -> String) -> Result<&'a [u8]> {
        let len = self.u64(|| format!("the length of {}", field()))?;
        self.take(len, field)
    }

    /// A string that must be valid UTF-8 (keys and tensor names).
    pub fn utf8(&mut self, field: impl Fn() -> String) -> Result<&'a str> {
        let offset = self.pos();
        let bytes = self.string(&field)?;
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 { field: field(), offset })
    }
}

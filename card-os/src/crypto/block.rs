//! Small helpers over 8- and 16-byte blocks shared by the crypto files.

use core::fmt;

/// The largest block size of the card's ciphers (SM4 and AES); DES and 3DES use 8.
pub const MAX_BLOCK_SIZE: usize = 16;

/// One cipher block of 8 or 16 bytes, as returned by operations whose output size depends on the
/// key's algorithm (e.g. [`crate::crypto::challenge_cryptogram`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CipherBlock {
    bytes: [u8; MAX_BLOCK_SIZE],
    len: usize,
}

impl CipherBlock {
    /// A block holding the first `len` bytes of `bytes` (`len` is clamped to 16).
    pub(crate) fn new(bytes: [u8; MAX_BLOCK_SIZE], len: usize) -> Self {
        CipherBlock {
            bytes,
            len: len.min(MAX_BLOCK_SIZE),
        }
    }

    /// The block's bytes (8 or 16 of them).
    pub fn as_slice(&self) -> &[u8] {
        leading(&self.bytes, self.len)
    }

    /// Number of bytes (8 or 16).
    pub fn len(&self) -> usize {
        self.len
    }

    /// False for every block the crypto code returns (they hold 8 or 16 bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for CipherBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CipherBlock(")?;
        for byte in self.as_slice() {
            write!(f, "{byte:02X}")?;
        }
        f.write_str(")")
    }
}

/// The first `len` bytes of a 16-byte buffer (all of it if `len` is larger).
pub(crate) fn leading(buffer: &[u8; MAX_BLOCK_SIZE], len: usize) -> &[u8] {
    buffer.split_at(len.min(MAX_BLOCK_SIZE)).0
}

/// The first `len` bytes of a 16-byte buffer, mutably (all of it if `len` is larger).
pub(crate) fn leading_mut(buffer: &mut [u8; MAX_BLOCK_SIZE], len: usize) -> &mut [u8] {
    buffer.split_at_mut(len.min(MAX_BLOCK_SIZE)).0
}

/// `target ^= source`, byte by byte, over the shorter of the two.
pub(crate) fn xor_into(target: &mut [u8], source: &[u8]) {
    for (t, s) in target.iter_mut().zip(source) {
        *t ^= s;
    }
}

/// A 16-byte buffer holding `source` followed by zeros (`source` longer than 16 is cut).
pub(crate) fn zero_padded(source: &[u8]) -> [u8; MAX_BLOCK_SIZE] {
    let mut block = [0u8; MAX_BLOCK_SIZE];
    for (b, s) in block.iter_mut().zip(source) {
        *b = *s;
    }
    block
}

/// The two 8-byte halves of a 16-byte value.
pub(crate) fn halves(value: &[u8; 16]) -> ([u8; 8], [u8; 8]) {
    let mut left = [0u8; 8];
    let mut right = [0u8; 8];
    for (l, v) in left.iter_mut().zip(value.iter()) {
        *l = *v;
    }
    for (r, v) in right.iter_mut().zip(value.iter().skip(8)) {
        *r = *v;
    }
    (left, right)
}

/// Two 8-byte halves joined into one 16-byte value.
pub(crate) fn join(left: &[u8; 8], right: &[u8; 8]) -> [u8; 16] {
    let mut value = [0u8; 16];
    for (v, b) in value.iter_mut().zip(left.iter().chain(right.iter())) {
        *v = *b;
    }
    value
}

/// The first 8 bytes of a 16-byte buffer as an array.
pub(crate) fn first8(value: &[u8; MAX_BLOCK_SIZE]) -> [u8; 8] {
    halves(value).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_and_join_round_trip() {
        let value: [u8; 16] = core::array::from_fn(|i| i as u8);
        let (l, r) = halves(&value);
        assert_eq!(l, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(r, [8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(join(&l, &r), value);
    }

    #[test]
    fn zero_padding_and_leading() {
        let block = zero_padded(&[1, 2, 3]);
        assert_eq!(leading(&block, 4), &[1, 2, 3, 0]);
        assert_eq!(leading(&block, 99).len(), 16);
        let cut = zero_padded(&[0xAA; 20]);
        assert_eq!(cut, [0xAA; 16]);
    }

    #[test]
    fn cipher_block_shows_its_bytes() {
        let block = CipherBlock::new(zero_padded(&[0xAB, 0xCD]), 8);
        assert_eq!(block.as_slice(), &[0xAB, 0xCD, 0, 0, 0, 0, 0, 0]);
        assert_eq!(format!("{block:?}"), "CipherBlock(ABCD000000000000)");
    }
}

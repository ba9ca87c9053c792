//! [`BlockCipher`]: one type over the card's four block ciphers, chosen by the key.
//!
//! The ciphers themselves are the RustCrypto crates (`des`, `sm4`, `aes`); this file only picks one
//! per [`Key`] and runs it over whole blocks in ECB, the only mode the card's protocols use
//! directly (CBC chaining for MACs lives in [`super::mac`]).

use aes::Aes128;
use cipher::array::Array;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};
use sm4::Sm4;

use super::algorithm::{Algorithm, Key};
use super::CryptoError;

/// A keyed block cipher: DES, 2-key 3DES (EDE), SM4 or AES-128.
#[derive(Clone)]
pub struct BlockCipher(Keyed);

#[derive(Clone)]
enum Keyed {
    Des(Des),
    TripleDes(TdesEde2),
    Sm4(Sm4),
    Aes128(Aes128),
}

impl BlockCipher {
    /// The cipher of `key`'s algorithm, keyed with it.
    pub fn new(key: &Key) -> BlockCipher {
        BlockCipher(match key {
            Key::Des(k) => Keyed::Des(Des::new(k.into())),
            Key::TripleDes(k) => Keyed::TripleDes(TdesEde2::new(k.into())),
            Key::Sm4(k) => Keyed::Sm4(Sm4::new(k.into())),
            Key::Aes128(k) => Keyed::Aes128(Aes128::new(k.into())),
        })
    }

    /// The algorithm this cipher runs.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Keyed::Des(_) => Algorithm::Des,
            Keyed::TripleDes(_) => Algorithm::TripleDes,
            Keyed::Sm4(_) => Algorithm::Sm4,
            Keyed::Aes128(_) => Algorithm::Aes128,
        }
    }

    /// Block size in bytes (8 or 16).
    pub fn block_size(&self) -> usize {
        self.algorithm().block_size()
    }

    /// Encrypts `data` in place in ECB mode. `data` must be a whole number of blocks (zero blocks
    /// is allowed and does nothing), else [`CryptoError::InvalidLength`] and `data` is untouched.
    pub fn encrypt_ecb(&self, data: &mut [u8]) -> Result<(), CryptoError> {
        self.check_whole_blocks(data)?;
        self.encrypt_blocks(data);
        Ok(())
    }

    /// Decrypts `data` in place in ECB mode; same length rule as [`BlockCipher::encrypt_ecb`].
    pub fn decrypt_ecb(&self, data: &mut [u8]) -> Result<(), CryptoError> {
        self.check_whole_blocks(data)?;
        self.decrypt_blocks(data);
        Ok(())
    }

    fn check_whole_blocks(&self, data: &[u8]) -> Result<(), CryptoError> {
        if data.len().is_multiple_of(self.block_size()) {
            Ok(())
        } else {
            Err(CryptoError::InvalidLength)
        }
    }

    /// Encrypts every whole block of `data` in place; a trailing partial block is left alone.
    /// Internal callers pass exact multiples of the block size.
    pub(crate) fn encrypt_blocks(&self, data: &mut [u8]) {
        match &self.0 {
            Keyed::Des(c) => c.encrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::TripleDes(c) => c.encrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::Sm4(c) => c.encrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::Aes128(c) => c.encrypt_blocks(Array::slice_as_chunks_mut(data).0),
        }
    }

    /// Decrypts every whole block of `data` in place; a trailing partial block is left alone.
    pub(crate) fn decrypt_blocks(&self, data: &mut [u8]) {
        match &self.0 {
            Keyed::Des(c) => c.decrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::TripleDes(c) => c.decrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::Sm4(c) => c.decrypt_blocks(Array::slice_as_chunks_mut(data).0),
            Keyed::Aes128(c) => c.decrypt_blocks(Array::slice_as_chunks_mut(data).0),
        }
    }
}

/// Single-DES decryption of one 8-byte block, for the final step of ISO/IEC 9797-1 MAC
/// algorithm 3, which needs raw DES under the right key half next to the CBC cipher.
pub(crate) fn des_decrypt_block(key: &Des, block: &mut [u8; 8]) {
    key.decrypt_block(block.into());
}

/// A single-DES key schedule from 8 key bytes.
pub(crate) fn des_key_schedule(key: &[u8; 8]) -> Des {
    Des::new(key.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex<const N: usize>(text: &str) -> [u8; N] {
        let bytes = hex::decode(text).unwrap();
        bytes.try_into().unwrap()
    }

    #[test]
    fn des_known_answer() {
        // FIPS 81 appendix B, ECB: key 0123456789ABCDEF, "Now is t".
        let cipher = BlockCipher::new(&Key::Des(hex("0123456789ABCDEF")));
        let mut block: [u8; 8] = hex("4E6F772069732074");
        cipher.encrypt_ecb(&mut block).unwrap();
        assert_eq!(block, hex::<8>("3FA40E8A984D4815"));
        cipher.decrypt_ecb(&mut block).unwrap();
        assert_eq!(&block, b"Now is t");
    }

    #[test]
    fn triple_des_with_equal_halves_is_single_des() {
        let single = BlockCipher::new(&Key::Des(hex("0123456789ABCDEF")));
        let triple = BlockCipher::new(&Key::TripleDes(hex("0123456789ABCDEF0123456789ABCDEF")));
        let mut a: [u8; 16] = core::array::from_fn(|i| i as u8 * 7);
        let mut b = a;
        single.encrypt_ecb(&mut a).unwrap();
        triple.encrypt_ecb(&mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn partial_blocks_are_refused_and_left_untouched() {
        for key in [
            Key::Des([1; 8]),
            Key::TripleDes([2; 16]),
            Key::Sm4([3; 16]),
            Key::Aes128([4; 16]),
        ] {
            let cipher = BlockCipher::new(&key);
            assert_eq!(cipher.algorithm(), key.algorithm());
            let mut data = [0x11u8; 20];
            assert_eq!(
                cipher.encrypt_ecb(&mut data),
                Err(CryptoError::InvalidLength)
            );
            assert_eq!(
                cipher.decrypt_ecb(&mut data),
                Err(CryptoError::InvalidLength)
            );
            assert_eq!(data, [0x11; 20]);
            let mut empty = [0u8; 0];
            assert_eq!(cipher.encrypt_ecb(&mut empty), Ok(()));
        }
    }

    #[test]
    fn ecb_round_trips_and_is_blockwise() {
        for key in [
            Key::Des([1; 8]),
            Key::TripleDes([2; 16]),
            Key::Sm4([3; 16]),
            Key::Aes128([4; 16]),
        ] {
            let cipher = BlockCipher::new(&key);
            let bs = cipher.block_size();
            let plain: [u8; 32] = core::array::from_fn(|i| i as u8);
            let mut data = plain;
            cipher.encrypt_ecb(&mut data).unwrap();
            assert_ne!(data, plain);
            // ECB: each block is encrypted on its own.
            let mut first = [0u8; 16];
            first[..bs].copy_from_slice(&plain[..bs]);
            cipher.encrypt_ecb(&mut first[..bs]).unwrap();
            assert_eq!(first[..bs], data[..bs]);
            cipher.decrypt_ecb(&mut data).unwrap();
            assert_eq!(data, plain);
        }
    }
}

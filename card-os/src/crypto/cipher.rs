//! [`BlockCipher`]: one type over the card's four block ciphers, chosen by the key.
//!
//! The ciphers themselves are the RustCrypto crates (`des`, `sm4`, `aes`); this file only picks one
//! per [`Key`] and runs it over whole blocks in ECB, the only mode the card's protocols use
//! directly (CBC chaining for MACs lives in [`super::mac`]).

use aes::Aes128;
use cipher::array::Array;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::Des;
use sm4::Sm4;

use super::algorithm::{Algorithm, Key};
use super::block::halves;
use super::CryptoError;

/// A keyed block cipher: DES, 2-key 3DES (EDE), SM4 or AES-128 — the key schedule, built once by
/// [`BlockCipher::new`] and then borrowed by every operation under that key ([`super::Mac`], line
/// encryption, session keys). Building a schedule is the expensive part of a short operation on
/// the chip (the `des` crate's key schedule is 64-bit arithmetic, emulated on a Cortex-M0), and
/// the schedule is the biggest value the crypto code holds (256 bytes for 3DES), so a command
/// builds each one once and lends it out instead of each layer building and moving its own.
#[derive(Clone)]
pub struct BlockCipher(Keyed);

#[derive(Clone)]
enum Keyed {
    Des(Des),
    /// 2-key 3DES as its two DES schedules, EDE = `E(K_L, D(K_R, E(K_L, x)))` (SP 800-67 keying
    /// option 2, what `des::TdesEde2` computes). Kept as two schedules because ISO/IEC 9797-1 MAC
    /// algorithm 3 chains under `K_L` alone and needs `K_R` apart for its output step: the retail
    /// MAC borrows these instead of building schedules of its own.
    TripleDes {
        left: Des,
        right: Des,
    },
    Sm4(Sm4),
    Aes128(Aes128),
}

/// A key the cipher runs under: a [`Key`] (its schedule is built for the one call) or a
/// [`BlockCipher`] built before (the schedule is borrowed). The crypto functions take either, so a
/// command that uses one key for several operations builds its schedule once.
pub trait CipherKey {
    /// Runs `f` with this key's schedule.
    fn with_cipher<T>(&self, f: impl FnOnce(&BlockCipher) -> T) -> T;

    /// The key's algorithm.
    fn algorithm(&self) -> Algorithm;

    /// Block size of the key's algorithm (8 or 16).
    fn block_size(&self) -> usize {
        self.algorithm().block_size()
    }
}

impl CipherKey for Key {
    // Never inlined: the schedule then lives in this small frame for the one call, not in the
    // caller's frame for all of the caller's life (and its deeper calls).
    #[inline(never)]
    fn with_cipher<T>(&self, f: impl FnOnce(&BlockCipher) -> T) -> T {
        f(&BlockCipher::new(self))
    }

    fn algorithm(&self) -> Algorithm {
        Key::algorithm(self)
    }
}

impl CipherKey for BlockCipher {
    fn with_cipher<T>(&self, f: impl FnOnce(&BlockCipher) -> T) -> T {
        f(self)
    }

    fn algorithm(&self) -> Algorithm {
        BlockCipher::algorithm(self)
    }
}

impl BlockCipher {
    /// The cipher of `key`'s algorithm, keyed with it.
    // Never inlined (nor are the per-cipher builders): the schedule is then written straight into
    // the caller's place for it, not built in a temporary and copied (no copy elision otherwise).
    #[inline(never)]
    pub fn new(key: &Key) -> BlockCipher {
        match key {
            Key::Des(k) => des_cipher(k),
            Key::TripleDes(k) => triple_des_cipher(k),
            Key::Sm4(k) => sm4_cipher(k),
            Key::Aes128(k) => aes_cipher(k),
        }
    }

    /// The algorithm this cipher runs.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Keyed::Des(_) => Algorithm::Des,
            Keyed::TripleDes { .. } => Algorithm::TripleDes,
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
            Keyed::Des(c) => des_encrypt(c, data),
            Keyed::TripleDes { left, right } => {
                des_encrypt(left, data);
                des_decrypt(right, data);
                des_encrypt(left, data);
            }
            Keyed::Sm4(c) => sm4_encrypt(c, data),
            Keyed::Aes128(c) => aes_encrypt(c, data),
        }
    }

    /// Decrypts every whole block of `data` in place; a trailing partial block is left alone.
    pub(crate) fn decrypt_blocks(&self, data: &mut [u8]) {
        match &self.0 {
            Keyed::Des(c) => des_decrypt(c, data),
            Keyed::TripleDes { left, right } => {
                des_decrypt(left, data);
                des_encrypt(right, data);
                des_decrypt(left, data);
            }
            Keyed::Sm4(c) => sm4_decrypt(c, data),
            Keyed::Aes128(c) => aes_decrypt(c, data),
        }
    }

    /// One CBC-MAC chaining step, `block = E(block)`: the whole cipher, except under a 3DES key,
    /// whose ISO/IEC 9797-1 MAC algorithm 3 chain runs under single DES with `K_L`.
    pub(crate) fn mac_chain_step(&self, block: &mut [u8]) {
        match &self.0 {
            Keyed::TripleDes { left, .. } => des_encrypt(left, block),
            _ => self.encrypt_blocks(block),
        }
    }

    /// ISO/IEC 9797-1 MAC algorithm 3 output transformation `E(K_L, D(K_R, H_q))` under a 3DES
    /// key; `None` (the block untouched) under other keys.
    pub(crate) fn retail_output(&self, block: &mut [u8; 8]) -> Option<()> {
        match &self.0 {
            Keyed::TripleDes { left, right } => {
                des_decrypt(right, block);
                des_encrypt(left, block);
                Some(())
            }
            _ => None,
        }
    }

    /// The AES-128 schedule, for AES-CMAC to borrow.
    pub(crate) fn aes128(&self) -> Option<&Aes128> {
        match &self.0 {
            Keyed::Aes128(c) => Some(c),
            _ => None,
        }
    }
}

// One function per cipher and operation, never inlined into `new` or `encrypt_blocks`: a caller's
// stack then holds the working frame of the one cipher it runs, not of all four (AES's bitsliced
// rounds alone need several hundred bytes).

#[inline(never)]
fn des_cipher(key: &[u8; 8]) -> BlockCipher {
    BlockCipher(Keyed::Des(Des::new(key.into())))
}

#[inline(never)]
fn triple_des_cipher(key: &[u8; 16]) -> BlockCipher {
    let (left, right) = halves(key);
    BlockCipher(Keyed::TripleDes {
        left: Des::new((&left).into()),
        right: Des::new((&right).into()),
    })
}

#[inline(never)]
fn sm4_cipher(key: &[u8; 16]) -> BlockCipher {
    BlockCipher(Keyed::Sm4(Sm4::new(key.into())))
}

#[inline(never)]
fn aes_cipher(key: &[u8; 16]) -> BlockCipher {
    BlockCipher(Keyed::Aes128(Aes128::new(key.into())))
}

#[inline(never)]
fn des_encrypt(cipher: &Des, data: &mut [u8]) {
    cipher.encrypt_blocks(Array::slice_as_chunks_mut(data).0);
}

#[inline(never)]
fn des_decrypt(cipher: &Des, data: &mut [u8]) {
    cipher.decrypt_blocks(Array::slice_as_chunks_mut(data).0);
}

#[inline(never)]
fn sm4_encrypt(cipher: &Sm4, data: &mut [u8]) {
    cipher.encrypt_blocks(Array::slice_as_chunks_mut(data).0);
}

#[inline(never)]
fn sm4_decrypt(cipher: &Sm4, data: &mut [u8]) {
    cipher.decrypt_blocks(Array::slice_as_chunks_mut(data).0);
}

// AES one block at a time: the crate's multi-block path first widens the whole schedule to 32-bit
// words on the stack (352 bytes; an 880-byte frame on the chip), the one-block path runs on the
// stored 16-bit schedule (a frame of a few dozen bytes). The card's AES operations are a block or
// a few (session keys, cryptograms, MACs, short line-encrypted data).

#[inline(never)]
fn aes_encrypt(cipher: &Aes128, data: &mut [u8]) {
    for block in Array::slice_as_chunks_mut(data).0 {
        cipher.encrypt_block(block);
    }
}

#[inline(never)]
fn aes_decrypt(cipher: &Aes128, data: &mut [u8]) {
    for block in Array::slice_as_chunks_mut(data).0 {
        cipher.decrypt_block(block);
    }
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
    fn triple_des_from_two_schedules_is_the_crates_ede2() {
        // The 3DES schedule is held as two DES schedules (for the retail MAC to borrow); it must
        // compute exactly what the `des` crate's TdesEde2 computes.
        let key: [u8; 16] = hex("0123456789ABCDEFFEDCBA9876543210");
        let ours = BlockCipher::new(&Key::TripleDes(key));
        let reference = des::TdesEde2::new((&key).into());
        for seed in 0u8..16 {
            let plain: [u8; 8] = core::array::from_fn(|i| seed.wrapping_mul(31) ^ (i as u8 * 17));
            let mut a = plain;
            ours.encrypt_ecb(&mut a).unwrap();
            let mut b = plain;
            reference.encrypt_block((&mut b).into());
            assert_eq!(a, b);
            ours.decrypt_ecb(&mut a).unwrap();
            assert_eq!(a, plain);
        }
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

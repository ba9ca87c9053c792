//! [`Mac`]: the card's 4-byte MACs, computed as a stream so one MAC can cover several separate
//! slices (an APDU header, then its data) without copying them together.
//!
//! The key's algorithm picks the scheme ([`MacScheme`]); every scheme pads with ISO/IEC 9797-1
//! padding method 2 (`80` then `00`s to the block size, a whole extra block when the data is
//! already aligned) and keeps the leftmost 4 bytes:
//!
//! | key | scheme | source |
//! |---|---|---|
//! | DES, 8 bytes | DES CBC-MAC | FMCOS 2.0 §11.3, PBOC purse MAC, LD/T 32 part 4 §8.2.4.1 |
//! | 3DES, 16 bytes | ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") | FMCOS 2.0 §11.3 fig. 9-2 as real cards compute it (card-specs §2.6, TV-7/TV-8) |
//! | SM4, 16 bytes | SM4 CBC-MAC, result folded to 4 bytes by XOR of its four words | LD/T 32 part 4 §8.2.4.2 |
//! | AES-128, 16 bytes | AES-CMAC (RFC 4493) truncated to 4 bytes | **ours** |
//!
//! The IV is explicit ([`MacIv`]): zero for the purse and for LD/T 32 session-key MACs, the card's
//! challenge followed by zeros for FMCOS line protection. CMAC has no IV; for AES keys a non-zero
//! [`MacIv::Bytes`] is instead MAC'ed as a first block in front of the data (our rule, see
//! `apdu-specs/crypto.md`).

use aes::Aes128;
use cmac::digest::InnerInit;
use cmac::Cmac;
use cmac::Mac as _;

use super::algorithm::Algorithm;
use super::block::{first8, leading, leading_mut, xor_into, zero_padded, MAX_BLOCK_SIZE};
use super::cipher::{BlockCipher, CipherKey};
use super::compare::ct_eq;
use super::CryptoError;

/// Length of every MAC the card sends or checks.
pub const MAC_LEN: usize = 4;

/// The initial value of a MAC computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacIv<'a> {
    /// All zeros (purse MACs, LD/T 32 session-key MACs, FMCOS INTERNAL AUTHENTICATE P1=02). For
    /// AES-CMAC: no IV at all, plain CMAC.
    Zero,
    /// These bytes right-padded with `00` to the block size, e.g. a 4-byte challenge for FMCOS line
    /// protection gives `challenge ‖ 00000000` (FMCOS 2.0 §11.3). Longer than a block is an error.
    /// For AES-CMAC the padded block is MAC'ed in front of the data.
    Bytes(&'a [u8]),
}

/// Which MAC construction a key gets (see the table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacScheme {
    /// Single-DES CBC-MAC, leftmost 4 bytes.
    DesCbc,
    /// ISO/IEC 9797-1 MAC algorithm 3: DES CBC under `K_L`, then the last block is decrypted
    /// under `K_R` and encrypted under `K_L`; leftmost 4 bytes.
    Retail,
    /// 16-byte-block CBC-MAC whose last block is folded to 4 bytes by XOR of its four 4-byte words
    /// (LD/T 32 part 4 §8.2.4.2).
    CbcXorFold,
    /// AES-CMAC (RFC 4493), leftmost 4 bytes.
    AesCmac,
}

impl MacScheme {
    /// The scheme the card uses for keys of `algorithm`.
    pub const fn for_algorithm(algorithm: Algorithm) -> MacScheme {
        match algorithm {
            Algorithm::Des => MacScheme::DesCbc,
            Algorithm::TripleDes => MacScheme::Retail,
            Algorithm::Sm4 => MacScheme::CbcXorFold,
            Algorithm::Aes128 => MacScheme::AesCmac,
        }
    }
}

/// A MAC computation in progress under a borrowed key schedule ([`BlockCipher`]):
/// [`Mac::update`] with each piece of data in order, then [`Mac::finalize`] (or [`Mac::verify`]).
///
/// The MAC holds the chaining state only (a few dozen bytes); the schedule stays where the caller
/// built it, once for every MAC and cipher operation of a command under that key.
#[derive(Clone)]
pub struct Mac<'c> {
    engine: Engine<'c>,
}

#[derive(Clone)]
enum Engine<'c> {
    Cbc(CbcMac<'c>),
    Cmac(Cmac<&'c Aes128>),
}

/// CBC-MAC with method-2 padding. Full blocks are chained as soon as they are complete: the
/// padding always adds at least one byte, so a complete block is never the last one.
#[derive(Clone)]
struct CbcMac<'c> {
    cipher: &'c BlockCipher,
    output: CbcOutput,
    chain: [u8; MAX_BLOCK_SIZE],
    pending: [u8; MAX_BLOCK_SIZE],
    pending_len: usize,
}

#[derive(Clone, Copy)]
enum CbcOutput {
    /// Leftmost 4 bytes of the last chain value.
    Leftmost,
    /// ISO/IEC 9797-1 MAC algorithm 3 output transformation under `K_R` (the 3DES schedule's
    /// right half).
    Retail,
    /// XOR of the four 4-byte words of the last chain value.
    XorFold,
}

impl<'c> Mac<'c> {
    /// A MAC under `cipher`'s key starting from `iv`, with the scheme of the key's algorithm.
    ///
    /// Fails with [`CryptoError::InvalidLength`] when `iv` is longer than the block size.
    pub fn new(cipher: &'c BlockCipher, iv: MacIv<'_>) -> Result<Mac<'c>, CryptoError> {
        let iv_block = match iv {
            MacIv::Zero => None,
            MacIv::Bytes(bytes) if bytes.len() <= cipher.block_size() => Some(zero_padded(bytes)),
            MacIv::Bytes(_) => return Err(CryptoError::InvalidLength),
        };
        let cbc = |output| Engine::Cbc(CbcMac::new(cipher, output, iv_block));
        let engine = match cipher.algorithm() {
            // FMCOS 2.0 §11.3 (8-byte key), PBOC purse MAC: DES CBC.
            Algorithm::Des => cbc(CbcOutput::Leftmost),
            // ISO/IEC 9797-1 MAC algorithm 3: the chain runs under K_L only.
            Algorithm::TripleDes => cbc(CbcOutput::Retail),
            // LD/T 32 part 4 §8.2.4.2: 16-byte-block CBC, XOR fold.
            Algorithm::Sm4 => cbc(CbcOutput::XorFold),
            // Ours: RFC 4493 AES-CMAC; an IV block, when given, is MAC'ed first.
            Algorithm::Aes128 => {
                let aes = cipher.aes128().ok_or(CryptoError::WrongKeyType)?;
                let mut cmac = Cmac::<&Aes128>::inner_init(aes);
                if let Some(block) = iv_block {
                    cmac.update(&block);
                }
                Engine::Cmac(cmac)
            }
        };
        Ok(Mac { engine })
    }

    /// The FMCOS line-protection MAC under the key named by the command: IV = the card's last
    /// challenge right-padded with zeros (`challenge4 ‖ 00000000` for DES keys, FMCOS 2.0 §11.3).
    /// The caller feeds `CLA INS P1 P2 Lc` (Lc counting the 4 MAC bytes) and then the data.
    pub fn line_protection(
        cipher: &'c BlockCipher,
        challenge: &[u8],
    ) -> Result<Mac<'c>, CryptoError> {
        Mac::new(cipher, MacIv::Bytes(challenge))
    }

    /// The MAC under a session key with a zero IV: the PBOC purse MAC1/MAC2/TAC (card-specs §3.2)
    /// and the LD/T 32 session-key MAC (part 4 §8.2.4). Session keys are single DES (8-byte-block
    /// algorithms) or SM4/AES, never 2-key 3DES; a 3DES key gives [`CryptoError::WrongKeyType`].
    pub fn session(session_key: &'c BlockCipher) -> Result<Mac<'c>, CryptoError> {
        match session_key.algorithm() {
            Algorithm::TripleDes => Err(CryptoError::WrongKeyType),
            Algorithm::Des | Algorithm::Sm4 | Algorithm::Aes128 => {
                Mac::new(session_key, MacIv::Zero)
            }
        }
    }

    /// One-shot MAC over the concatenation of `parts`, under a [`Key`](super::Key) (its schedule
    /// built for this MAC) or a [`BlockCipher`] built before.
    pub fn compute(
        key: &impl CipherKey,
        iv: MacIv<'_>,
        parts: &[&[u8]],
    ) -> Result<[u8; MAC_LEN], CryptoError> {
        key.with_cipher(|cipher| {
            let mut mac = Mac::new(cipher, iv)?;
            for part in parts {
                mac.update(part);
            }
            Ok(mac.finalize())
        })
    }

    /// The scheme this MAC runs.
    pub fn scheme(&self) -> MacScheme {
        match &self.engine {
            Engine::Cbc(cbc) => match cbc.output {
                CbcOutput::Leftmost => MacScheme::DesCbc,
                CbcOutput::Retail => MacScheme::Retail,
                CbcOutput::XorFold => MacScheme::CbcXorFold,
            },
            Engine::Cmac(_) => MacScheme::AesCmac,
        }
    }

    /// Appends `data` to the MAC'ed message.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.engine {
            Engine::Cbc(cbc) => cbc.update(data),
            Engine::Cmac(cmac) => cmac.update(data),
        }
    }

    /// Pads, finishes and returns the 4-byte MAC.
    pub fn finalize(self) -> [u8; MAC_LEN] {
        match self.engine {
            Engine::Cbc(mut cbc) => cbc.finalize(),
            Engine::Cmac(cmac) => {
                let tag = cmac.finalize().into_bytes();
                let mut mac = [0u8; MAC_LEN];
                for (m, t) in mac.iter_mut().zip(tag.iter()) {
                    *m = *t;
                }
                mac
            }
        }
    }

    /// Finishes and compares with `received` in constant time. A `received` that is not exactly 4
    /// bytes long never matches.
    pub fn verify(self, received: &[u8]) -> bool {
        ct_eq(&self.finalize(), received)
    }
}

impl<'c> CbcMac<'c> {
    fn new(
        cipher: &'c BlockCipher,
        output: CbcOutput,
        iv: Option<[u8; MAX_BLOCK_SIZE]>,
    ) -> CbcMac<'c> {
        CbcMac {
            cipher,
            output,
            chain: iv.unwrap_or([0; MAX_BLOCK_SIZE]),
            pending: [0; MAX_BLOCK_SIZE],
            pending_len: 0,
        }
    }

    fn update(&mut self, data: &[u8]) {
        let block_size = self.cipher.block_size();
        for &byte in data {
            if let Some(slot) = self.pending.get_mut(self.pending_len) {
                *slot = byte;
                self.pending_len += 1;
            }
            if self.pending_len >= block_size {
                self.chain_pending();
            }
        }
    }

    /// `chain = E(chain ⊕ pending)`, then empties `pending`.
    fn chain_pending(&mut self) {
        let block_size = self.cipher.block_size();
        let chain = leading_mut(&mut self.chain, block_size);
        xor_into(chain, leading(&self.pending, block_size));
        self.cipher.mac_chain_step(chain);
        self.pending_len = 0;
    }

    fn finalize(&mut self) -> [u8; MAC_LEN] {
        // ISO/IEC 9797-1 padding method 2: 80, then 00 up to the end of the block.
        let start = self.pending_len;
        for (i, slot) in self.pending.iter_mut().enumerate().skip(start) {
            *slot = if i == start { 0x80 } else { 0x00 };
        }
        self.chain_pending();

        let mut mac = [0u8; MAC_LEN];
        match self.output {
            CbcOutput::Leftmost => xor_into(&mut mac, &self.chain),
            CbcOutput::Retail => {
                // ISO/IEC 9797-1 MAC algorithm 3 output transformation: E(K_L, D(K_R, H_q)).
                let mut last = first8(&self.chain);
                // A Retail MAC is only built over a 3DES schedule (Mac::new).
                let _ = self.cipher.retail_output(&mut last);
                xor_into(&mut mac, &last);
            }
            CbcOutput::XorFold => {
                // LD/T 32 part 4 §8.2.4.2: XOR of the four 4-byte words.
                for word in self.chain.chunks_exact(MAC_LEN) {
                    xor_into(&mut mac, word);
                }
            }
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;

    const KEYS: [Key; 4] = [
        Key::Des([0x11; 8]),
        Key::TripleDes([0x22; 16]),
        Key::Sm4([0x33; 16]),
        Key::Aes128([0x44; 16]),
    ];

    #[test]
    fn scheme_follows_the_key() {
        let schemes: [MacScheme; 4] = KEYS.each_ref().map(|k| {
            Mac::new(&BlockCipher::new(k), MacIv::Zero)
                .unwrap()
                .scheme()
        });
        assert_eq!(
            schemes,
            [
                MacScheme::DesCbc,
                MacScheme::Retail,
                MacScheme::CbcXorFold,
                MacScheme::AesCmac
            ]
        );
        for key in &KEYS {
            assert_eq!(
                MacScheme::for_algorithm(key.algorithm()),
                Mac::new(&BlockCipher::new(key), MacIv::Zero)
                    .unwrap()
                    .scheme()
            );
        }
    }

    #[test]
    fn fmcos_des_mac_tv3() {
        // card-specs TV-3 (FMCOS 2.0 §7.3 example 3): IV 0, data 0102030405060708 -> A82A8CEB.
        let key = Key::Des([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        let mac = Mac::compute(&key, MacIv::Zero, &[&[1, 2, 3, 4, 5, 6, 7, 8]]).unwrap();
        assert_eq!(mac, [0xA8, 0x2A, 0x8C, 0xEB]);
    }

    #[test]
    fn streaming_matches_one_shot_for_every_split() {
        let message: [u8; 37] = core::array::from_fn(|i| (i * 13 + 5) as u8);
        for key in &KEYS {
            let whole = Mac::compute(key, MacIv::Bytes(&[9, 8, 7, 6]), &[&message]).unwrap();
            for split in 0..=message.len() {
                let (a, b) = message.split_at(split);
                let parts = Mac::compute(key, MacIv::Bytes(&[9, 8, 7, 6]), &[a, &[], b]).unwrap();
                assert_eq!(parts, whole, "{key:?} split at {split}");
            }
        }
    }

    #[test]
    fn padding_is_always_added() {
        // An aligned message and the same message with its padding spelled out must differ:
        // method 2 adds a whole block when the data is aligned.
        for key in &KEYS {
            let bs = key.block_size();
            let aligned = [0x5Au8; 16];
            let a = Mac::compute(key, MacIv::Zero, &[&aligned[..bs]]).unwrap();
            let mut spelled = [0u8; 32];
            spelled[..bs].copy_from_slice(&aligned[..bs]);
            spelled[bs] = 0x80;
            let b = Mac::compute(key, MacIv::Zero, &[&spelled[..bs * 2]]).unwrap();
            if key.algorithm() != Algorithm::Aes128 {
                // For the CBC schemes, MAC(m) = CBC(m ‖ 80 00..) truncated, so MAC(m ‖ 80 00..)
                // chains one more padding block and cannot be equal except by chance.
                assert_ne!(a, b, "{key:?}");
            }
            // The empty message still MACs one padding block.
            let empty = Mac::compute(key, MacIv::Zero, &[]).unwrap();
            assert_ne!(empty, [0; 4]);
        }
    }

    #[test]
    fn iv_changes_the_mac_and_is_bounded() {
        for key in &KEYS {
            let zero = Mac::compute(key, MacIv::Zero, &[b"abc"]).unwrap();
            let challenged = Mac::compute(key, MacIv::Bytes(&[1, 2, 3, 4]), &[b"abc"]).unwrap();
            assert_ne!(zero, challenged);
            let too_long = [0u8; 17];
            assert_eq!(
                Mac::new(
                    &BlockCipher::new(key),
                    MacIv::Bytes(&too_long[..key.block_size() + 1])
                )
                .err(),
                Some(CryptoError::InvalidLength)
            );
        }
        // For the CBC schemes an explicit all-zero IV is the zero IV.
        for key in &KEYS[..3] {
            assert_eq!(
                Mac::compute(key, MacIv::Zero, &[b"abc"]).unwrap(),
                Mac::compute(key, MacIv::Bytes(&[0; 8]), &[b"abc"]).unwrap()
            );
        }
    }

    #[test]
    fn session_mac_refuses_3des_keys() {
        assert!(matches!(
            Mac::session(&BlockCipher::new(&KEYS[1])),
            Err(CryptoError::WrongKeyType)
        ));
        assert!(Mac::session(&BlockCipher::new(&KEYS[0])).is_ok());
    }

    #[test]
    fn verify_is_exact() {
        let key = Key::Des([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        let cipher = BlockCipher::new(&key);
        let fresh = || {
            Mac::new(&cipher, MacIv::Zero).map(|mut m| {
                m.update(&[1, 2, 3, 4, 5, 6, 7, 8]);
                m
            })
        };
        assert!(fresh().unwrap().verify(&[0xA8, 0x2A, 0x8C, 0xEB]));
        assert!(!fresh().unwrap().verify(&[0xA8, 0x2A, 0x8C, 0xEA]));
        assert!(!fresh().unwrap().verify(&[0xA8, 0x2A, 0x8C]));
        assert!(!fresh().unwrap().verify(&[0xA8, 0x2A, 0x8C, 0xEB, 0x00]));
    }
}

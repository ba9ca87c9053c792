//! The card's cryptography: block ciphers chosen per key, the MACs of FMCOS/PBOC line protection,
//! the LD/T 32 social-security environment and the PBOC purse, line encryption, session keys, key
//! diversification, constant-time comparison and the random-number source.
//!
//! Everything here is `no_std`, allocation-free and panic-free; the host reuses it so card and
//! terminal cannot drift apart. A key schedule is built once per key and operation group and
//! borrowed, never moved: the functions take a [`Key`] (schedule built for the call) or a
//! [`BlockCipher`] (built before, e.g. a purse session key that makes two MACs), through
//! [`CipherKey`]; a [`Mac`] holds only its chaining state. The formulas, the algorithm ids, and which parts come from public
//! specifications and which are this project's own choices are written down in
//! `apdu-specs/crypto.md`; the known-answer tests live in `test-vectors/crypto/`.
//!
//! | file | what |
//! |---|---|
//! | [`algorithm`] | [`Algorithm`], the algorithm-id byte, [`Key`] |
//! | [`cipher`] | [`BlockCipher`] (a key schedule: DES, 2-key 3DES, SM4, AES-128 in ECB), [`CipherKey`] (a key or a schedule built before) |
//! | [`mac`] | [`Mac`]: streaming DES CBC-MAC, ISO 9797-1 MAC algorithm 3, SM4 CBC-MAC with XOR fold, AES-CMAC, over a borrowed schedule |
//! | [`line`] | line-protection encryption `LD ‖ data ‖ 80 00…` and its inverse |
//! | [`session`] | session keys, LD/T 32 authentication data, challenge cryptograms |
//! | [`purse`] | PBOC ED/EP MAC1/MAC2/TAC and their session keys |
//! | [`diversify`] | key diversification (one or several levels) |
//! | [`compare`] | constant-time comparison |
//! | [`rng`] | the [`Rng`] trait, a seeded generator for the simulator, a replaying one for tests |

pub mod algorithm;
pub mod cipher;
pub mod compare;
pub mod diversify;
pub mod line;
pub mod mac;
pub mod purse;
pub mod rng;
pub mod session;

mod block;

pub use algorithm::{Algorithm, Key};
pub use block::{CipherBlock, MAX_BLOCK_SIZE};
pub use cipher::{BlockCipher, CipherKey};
pub use compare::ct_eq;
pub use diversify::{diversify, diversify_path};
pub use line::{line_decrypt, line_encrypt, line_encrypted_len, Padding};
pub use mac::{Mac, MacIv, MacScheme, MAC_LEN};
pub use rng::{CounterRng, FixedRng, Rng};
pub use session::{authentication_data, challenge_cryptogram, session_key};

/// Why a cryptographic operation was refused. None of these is a panic: the card turns each into a
/// status word (usually `6A80`, `6988` or `9403`) in the command that asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The algorithm id is not one the card implements (e.g. `02` = SSF33, or an unknown value).
    UnsupportedAlgorithm,
    /// The key length does not fit the algorithm (DES family: 8 or 16 bytes; SM4/AES: 16 bytes).
    InvalidKeyLength,
    /// An input has a length the operation does not accept (not whole blocks, an IV or a
    /// session-key input longer than a block, line-encryption data over 255 bytes, …).
    InvalidLength,
    /// The caller's output buffer is too small.
    BufferTooSmall,
    /// Decrypted line-protection data has a wrong `LD` byte or wrong `80 00…` padding.
    BadPadding,
    /// The key's algorithm cannot be used for this operation (e.g. a 16-byte 3DES key passed where
    /// a purse session key is expected, or an L⊕R fold of a key that has no halves).
    WrongKeyType,
}

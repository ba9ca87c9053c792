//! The card's symmetric algorithms, the algorithm-id byte that names them, and [`Key`].
//!
//! The algorithm-id byte is what FMCOS 2.0 WRITE KEY stores as a key's "algId" (§7.12), what the
//! PBOC purse returns in INITIALIZE FOR LOAD/PURCHASE, and what the LD/T 32 social-security
//! environment announces in FCI tag `86` (card-specs §1.2):
//!
//! | id | algorithm | origin |
//! |---|---|---|
//! | `00`, `01` | DES family: single DES with an 8-byte key, 2-key 3DES (EDE) with a 16-byte key | FMCOS/PBOC (the key length decides); LD/T 32 `86 01` |
//! | `02` | SSF33 | LD/T 32; **not implemented** (an unpublished algorithm) |
//! | `03` | SM4 (GB/T 32907), 16-byte key | LD/T 32 `86 03` |
//! | `04` | AES-128 (FIPS 197), 16-byte key | **ours**: public specs define no id for AES |

use core::fmt;

use super::block::halves;
use super::CryptoError;

/// A symmetric algorithm the card implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Single DES (FIPS 46-3), 8-byte key, 8-byte block.
    Des,
    /// 2-key triple DES, encrypt-decrypt-encrypt with K1 = left half, K2 = right half, K3 = K1
    /// (SP 800-67 keying option 2), 16-byte key, 8-byte block.
    TripleDes,
    /// SM4 (GB/T 32907-2016), 16-byte key, 16-byte block.
    Sm4,
    /// AES-128 (FIPS 197), 16-byte key, 16-byte block.
    Aes128,
}

impl Algorithm {
    /// Algorithm id `00`: DES family, as PBOC INIT responses and PSAMs write it for 3DES.
    pub const ID_DES_FAMILY_00: u8 = 0x00;
    /// Algorithm id `01`: DES family, as FMCOS WRITE KEY scripts and LD/T 32 FCI tag `86` write it.
    pub const ID_DES_FAMILY: u8 = 0x01;
    /// Algorithm id `02`: SSF33 (LD/T 32). Not implemented.
    pub const ID_SSF33: u8 = 0x02;
    /// Algorithm id `03`: SM4 (LD/T 32 FCI `86 01 03`).
    pub const ID_SM4: u8 = 0x03;
    /// Algorithm id `04`: AES-128. This project's own value; no public spec assigns one.
    pub const ID_AES128: u8 = 0x04;

    /// The algorithm an algorithm-id byte names for a key of `key_len` bytes.
    ///
    /// In the DES family (`00`/`01`) the key length decides between single DES and 3DES, as FMCOS
    /// does (FMCOS 2.0 §7.12: "8-byte key = DES, 16-byte key = 3DES"). `02` (SSF33) and unknown ids
    /// give [`CryptoError::UnsupportedAlgorithm`]; a length the algorithm does not take gives
    /// [`CryptoError::InvalidKeyLength`].
    pub fn from_id(id: u8, key_len: usize) -> Result<Algorithm, CryptoError> {
        let algorithm = match (id, key_len) {
            (Self::ID_DES_FAMILY_00 | Self::ID_DES_FAMILY, 8) => Algorithm::Des,
            (Self::ID_DES_FAMILY_00 | Self::ID_DES_FAMILY, 16) => Algorithm::TripleDes,
            (Self::ID_SM4, 16) => Algorithm::Sm4,
            (Self::ID_AES128, 16) => Algorithm::Aes128,
            (Self::ID_DES_FAMILY_00 | Self::ID_DES_FAMILY | Self::ID_SM4 | Self::ID_AES128, _) => {
                return Err(CryptoError::InvalidKeyLength)
            }
            _ => return Err(CryptoError::UnsupportedAlgorithm),
        };
        Ok(algorithm)
    }

    /// The id the card announces for this algorithm: `01` for the DES family (LD/T 32 FCI tag
    /// `86`), `03` for SM4, `04` for AES-128. A key record keeps the id it was written with (`00`
    /// or `01`), and the purse echoes that stored byte; this is the value for places that have none.
    pub const fn id(self) -> u8 {
        match self {
            Algorithm::Des | Algorithm::TripleDes => Self::ID_DES_FAMILY,
            Algorithm::Sm4 => Self::ID_SM4,
            Algorithm::Aes128 => Self::ID_AES128,
        }
    }

    /// Block size in bytes: 8 for DES and 3DES, 16 for SM4 and AES.
    pub const fn block_size(self) -> usize {
        match self {
            Algorithm::Des | Algorithm::TripleDes => 8,
            Algorithm::Sm4 | Algorithm::Aes128 => 16,
        }
    }

    /// Key length in bytes: 8 for DES, 16 for the others.
    pub const fn key_len(self) -> usize {
        match self {
            Algorithm::Des => 8,
            Algorithm::TripleDes | Algorithm::Sm4 | Algorithm::Aes128 => 16,
        }
    }
}

/// A secret key together with its algorithm. The variants make invalid pairs (a 16-byte DES key,
/// an 8-byte SM4 key) unrepresentable; [`Key::from_id`] builds one from a stored key record.
///
/// `Debug` prints the algorithm only, never the key bytes. `==` is for tests and is not constant
/// time: never compare secrets with it (use [`crate::crypto::ct_eq`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    /// Single-DES key.
    Des([u8; 8]),
    /// 2-key 3DES key `K_L ‖ K_R`.
    TripleDes([u8; 16]),
    /// SM4 key.
    Sm4([u8; 16]),
    /// AES-128 key.
    Aes128([u8; 16]),
}

impl Key {
    /// A key from an algorithm-id byte (see [`Algorithm::from_id`]) and its bytes.
    pub fn from_id(id: u8, material: &[u8]) -> Result<Key, CryptoError> {
        Key::new(Algorithm::from_id(id, material.len())?, material)
    }

    /// A key of `algorithm` from its bytes, which must be exactly [`Algorithm::key_len`] long.
    pub fn new(algorithm: Algorithm, material: &[u8]) -> Result<Key, CryptoError> {
        match algorithm {
            Algorithm::Des => material.try_into().map(Key::Des),
            Algorithm::TripleDes => material.try_into().map(Key::TripleDes),
            Algorithm::Sm4 => material.try_into().map(Key::Sm4),
            Algorithm::Aes128 => material.try_into().map(Key::Aes128),
        }
        .map_err(|_| CryptoError::InvalidKeyLength)
    }

    /// A 16-byte key of `algorithm`, or a DES key from the first 8 bytes when `algorithm` is DES.
    pub(crate) fn from_block(algorithm: Algorithm, block: &[u8; 16]) -> Key {
        match algorithm {
            Algorithm::Des => Key::Des(halves(block).0),
            Algorithm::TripleDes => Key::TripleDes(*block),
            Algorithm::Sm4 => Key::Sm4(*block),
            Algorithm::Aes128 => Key::Aes128(*block),
        }
    }

    /// The key's algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        match self {
            Key::Des(_) => Algorithm::Des,
            Key::TripleDes(_) => Algorithm::TripleDes,
            Key::Sm4(_) => Algorithm::Sm4,
            Key::Aes128(_) => Algorithm::Aes128,
        }
    }

    /// The key bytes (8 or 16).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Des(k) => k,
            Key::TripleDes(k) | Key::Sm4(k) | Key::Aes128(k) => k,
        }
    }

    /// Block size of the key's algorithm.
    pub const fn block_size(&self) -> usize {
        self.algorithm().block_size()
    }

    /// The single-DES key `K_L ⊕ K_R` of a 2-key 3DES key. PBOC uses it as the TAC key
    /// `DTK' = DTK_L ⊕ DTK_R` (card-specs §3.2) and FMCOS 2.0 RELOAD PIN as its MAC key
    /// (card-specs §2.5). Other algorithms give [`CryptoError::WrongKeyType`].
    pub fn halves_xor(&self) -> Result<Key, CryptoError> {
        match self {
            Key::TripleDes(k) => {
                let (mut left, right) = halves(k);
                for (l, r) in left.iter_mut().zip(right) {
                    *l ^= r;
                }
                Ok(Key::Des(left))
            }
            Key::Des(_) | Key::Sm4(_) | Key::Aes128(_) => Err(CryptoError::WrongKeyType),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?}, ..)", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_pick_algorithms_by_key_length() {
        assert_eq!(Algorithm::from_id(0x00, 8), Ok(Algorithm::Des));
        assert_eq!(Algorithm::from_id(0x01, 8), Ok(Algorithm::Des));
        assert_eq!(Algorithm::from_id(0x00, 16), Ok(Algorithm::TripleDes));
        assert_eq!(Algorithm::from_id(0x01, 16), Ok(Algorithm::TripleDes));
        assert_eq!(Algorithm::from_id(0x03, 16), Ok(Algorithm::Sm4));
        assert_eq!(Algorithm::from_id(0x04, 16), Ok(Algorithm::Aes128));
    }

    #[test]
    fn invalid_combinations_are_refused() {
        assert_eq!(
            Algorithm::from_id(0x01, 24),
            Err(CryptoError::InvalidKeyLength)
        );
        assert_eq!(
            Algorithm::from_id(0x00, 0),
            Err(CryptoError::InvalidKeyLength)
        );
        assert_eq!(
            Algorithm::from_id(0x03, 8),
            Err(CryptoError::InvalidKeyLength)
        );
        assert_eq!(
            Algorithm::from_id(0x04, 32),
            Err(CryptoError::InvalidKeyLength)
        );
        assert_eq!(
            Algorithm::from_id(0x02, 16),
            Err(CryptoError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Algorithm::from_id(0x05, 16),
            Err(CryptoError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Algorithm::from_id(0xFF, 8),
            Err(CryptoError::UnsupportedAlgorithm)
        );
        assert_eq!(
            Key::new(Algorithm::Sm4, &[0; 15]),
            Err(CryptoError::InvalidKeyLength)
        );
        assert_eq!(
            Key::new(Algorithm::Des, &[0; 16]),
            Err(CryptoError::InvalidKeyLength)
        );
    }

    #[test]
    fn keys_report_algorithm_and_sizes() {
        let key = Key::from_id(0x03, &[7; 16]).unwrap();
        assert_eq!(key, Key::Sm4([7; 16]));
        assert_eq!(key.algorithm().id(), 0x03);
        assert_eq!(key.block_size(), 16);
        let des = Key::from_id(0x00, &[1; 8]).unwrap();
        assert_eq!(des.as_bytes(), &[1; 8]);
        assert_eq!(des.algorithm().id(), 0x01);
        assert_eq!(des.block_size(), 8);
        for algorithm in [
            Algorithm::Des,
            Algorithm::TripleDes,
            Algorithm::Sm4,
            Algorithm::Aes128,
        ] {
            let key = Key::new(algorithm, &[0x5A; 16][..algorithm.key_len()]).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(
                Algorithm::from_id(algorithm.id(), algorithm.key_len()),
                Ok(algorithm)
            );
        }
    }

    #[test]
    fn debug_hides_key_material() {
        let shown = format!("{:?}", Key::TripleDes([0xAB; 16]));
        assert_eq!(shown, "Key(TripleDes, ..)");
    }

    #[test]
    fn halves_xor_folds_3des_keys_only() {
        // card-specs TV-4: DTK' = DTK_L xor DTK_R.
        let dtk = Key::TripleDes([
            0xCA, 0xA6, 0x02, 0x52, 0x90, 0x11, 0x4B, 0xFC, 0xC3, 0xC9, 0x04, 0x3F, 0x70, 0xF7,
            0xA0, 0x7A,
        ]);
        assert_eq!(
            dtk.halves_xor(),
            Ok(Key::Des([0x09, 0x6F, 0x06, 0x6D, 0xE0, 0xE6, 0xEB, 0x86]))
        );
        assert_eq!(
            Key::Sm4([0; 16]).halves_xor(),
            Err(CryptoError::WrongKeyType)
        );
        assert_eq!(
            Key::Des([0; 8]).halves_xor(),
            Err(CryptoError::WrongKeyType)
        );
    }
}

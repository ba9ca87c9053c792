//! Key material inside the software key store: wiped when dropped, never printed.

use std::fmt;

use card_os::crypto::{diversify, BlockCipher, Key, MAX_BLOCK_SIZE};
use zeroize::Zeroize;

/// Length of a key check value.
pub const KCV_LEN: usize = 3;

/// A [`Key`] whose bytes are overwritten with zeros when it is dropped.
///
/// `card_os::crypto::Key` is a plain value type (the card has no allocator and no destructor
/// discipline), so the host wraps every key it holds or derives in this type: master keys loaded
/// from a key set, diversified card keys and session keys alike. `Debug` shows the algorithm only.
pub(crate) struct SecretKey(Key);

impl SecretKey {
    pub(crate) fn new(key: Key) -> Self {
        SecretKey(key)
    }

    pub(crate) fn key(&self) -> &Key {
        &self.0
    }

    /// The key derived from this one by `factors`, one diversification level per factor
    /// (`card_os::crypto::diversify`); every intermediate key is wiped too.
    pub(crate) fn diversified(&self, factors: &[[u8; 8]]) -> SecretKey {
        let mut current = SecretKey(self.0.clone());
        for factor in factors {
            current = SecretKey(diversify(current.key(), factor));
        }
        current
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey(self.0.clone())
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?})", self.0.algorithm())
    }
}

/// Overwrites the bytes of `key` with zeros (its algorithm stays).
pub(crate) fn wipe(key: &mut Key) {
    match key {
        Key::Des(bytes) => bytes.zeroize(),
        Key::TripleDes(bytes) | Key::Sm4(bytes) | Key::Aes128(bytes) => bytes.zeroize(),
    }
}

/// The key check value: the first 3 bytes of the key's encryption of an all-zero block
/// (`E(K, 00…00)`), the usual KCV of DES-family keys, applied alike to SM4 and AES keys. It lets
/// people compare keys (a key set against a ceremony record, an HSM's KCV) without showing them.
pub fn check_value(key: &Key) -> [u8; KCV_LEN] {
    let mut block = [0u8; MAX_BLOCK_SIZE];
    let size = key.block_size();
    // `size` is 8 or 16, so the block always holds whole cipher blocks and this cannot fail.
    let _ = BlockCipher::new(key).encrypt_ecb(&mut block[..size]);
    let mut kcv = [0u8; KCV_LEN];
    kcv.copy_from_slice(&block[..KCV_LEN]);
    block.zeroize();
    kcv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_zeroes_every_variant() {
        for mut key in [
            Key::Des([0xA5; 8]),
            Key::TripleDes([0xA5; 16]),
            Key::Sm4([0xA5; 16]),
            Key::Aes128([0xA5; 16]),
        ] {
            let algorithm = key.algorithm();
            wipe(&mut key);
            assert!(key.as_bytes().iter().all(|&b| b == 0));
            assert_eq!(key.algorithm(), algorithm);
        }
    }

    #[test]
    fn debug_shows_no_bytes() {
        let key = SecretKey::new(Key::TripleDes([0xAB; 16]));
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(TripleDes)");
        assert!(!shown.contains("AB") && !shown.contains("ab") && !shown.contains("171"));
    }

    #[test]
    fn check_values() {
        // The well-known KCV of the 2-key 3DES key 0123456789ABCDEF FEDCBA9876543210 is 08D7B4
        // (E(K, 0000000000000000) = 08D7B4FB629D0885).
        let key = Key::TripleDes(
            hex::decode("0123456789ABCDEFFEDCBA9876543210")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(check_value(&key), [0x08, 0xD7, 0xB4]);
        // SM4 (GB/T 32907 example key): the first bytes of SM4(K, 0^16).
        let sm4 = Key::Sm4(
            hex::decode("0123456789ABCDEFFEDCBA9876543210")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let mut block = [0u8; 16];
        BlockCipher::new(&sm4).encrypt_ecb(&mut block).unwrap();
        assert_eq!(check_value(&sm4), block[..3]);
        assert_ne!(check_value(&sm4), check_value(&key));
    }

    #[test]
    fn diversified_chains_levels() {
        let master = SecretKey::new(Key::TripleDes([0x5C; 16]));
        let a = [1; 8];
        let b = [2; 8];
        let two = master.diversified(&[a, b]);
        assert_eq!(two.key(), &diversify(&diversify(master.key(), &a), &b));
        assert_eq!(master.diversified(&[]).key(), master.key());
    }
}

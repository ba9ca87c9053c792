//! Key diversification: a card key derived from a master key and an 8-byte factor (the
//! application serial number, a city code, …), one level or several.
//!
//! | master key | derived key | source |
//! |---|---|---|
//! | 2-key 3DES | `DK_L = 3DES(MK, X)`, `DK_R = 3DES(MK, ~X)` | PBOC/city cards (card-specs §4), LD/T 32 part 9 §7.1.1 |
//! | single DES | `DK = DES(MK, X)` | LD/T 32 part 9 §7.1.1 |
//! | SM4 | `DK = SM4(MK, X ‖ ~X)` | LD/T 32 part 9 gives this for SSF33; applying it to SM4 is an inference (card-specs §1.9) |
//! | AES-128 | `DK = AES(MK, X ‖ ~X)` | ours, by the same rule |
//!
//! `~X` is the bitwise complement. The derived key has the master key's algorithm, so levels chain.

use super::algorithm::Key;
use super::block::join;
use super::cipher::BlockCipher;

/// One diversification level: the key derived from `master` and the 8-byte `factor`.
pub fn diversify(master: &Key, factor: &[u8; 8]) -> Key {
    let cipher = BlockCipher::new(master);
    let complement = factor.map(|b| !b);
    match master {
        Key::Des(_) => {
            let mut derived = *factor;
            cipher.encrypt_blocks(&mut derived);
            Key::Des(derived)
        }
        Key::TripleDes(_) | Key::Sm4(_) | Key::Aes128(_) => {
            // The same 16 bytes X ‖ ~X for every 16-byte key: ECB makes it two blocks, X and ~X,
            // for 3DES (DK_L ‖ DK_R) and one block for SM4 and AES.
            let mut derived = join(factor, &complement);
            cipher.encrypt_blocks(&mut derived);
            Key::from_block(master.algorithm(), &derived)
        }
    }
}

/// Several levels, applied in order: `factors[0]` diversifies `master`, `factors[1]` the result,
/// and so on (e.g. province, city, then the card's serial, card-specs §1.9). No factors returns
/// `master` unchanged.
pub fn diversify_path(master: &Key, factors: &[[u8; 8]]) -> Key {
    factors
        .iter()
        .fold(master.clone(), |key, factor| diversify(&key, factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;

    #[test]
    fn tv11_regression() {
        // card-specs TV-11 (self-computed there, recomputed here).
        let mk = Key::TripleDes(
            hex::decode("0123456789ABCDEFFEDCBA9876543210")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let dk = diversify(&mk, &[0x41, 0, 0, 0, 0x89, 0x99, 0x99, 0x85]);
        assert_eq!(
            dk.as_bytes(),
            hex::decode("C0D3FEB4B15C614C259C7ACE4DAE8EB1").unwrap()
        );
        let dk = diversify(&mk, &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            dk.as_bytes(),
            hex::decode("63FAF36D19571FCE77087448629EBC92").unwrap()
        );
    }

    #[test]
    fn derived_keys_keep_the_algorithm_and_levels_chain() {
        for master in [
            Key::Des([1; 8]),
            Key::TripleDes([2; 16]),
            Key::Sm4([3; 16]),
            Key::Aes128([4; 16]),
        ] {
            let a = [0x11; 8];
            let b = [0x22; 8];
            let two = diversify_path(&master, &[a, b]);
            assert_eq!(two, diversify(&diversify(&master, &a), &b));
            assert_eq!(two.algorithm(), master.algorithm());
            assert_ne!(diversify(&master, &a), diversify(&master, &b));
            assert_eq!(diversify_path(&master, &[]), master);
        }
    }

    #[test]
    fn triple_des_halves_are_x_and_not_x() {
        let mk = Key::TripleDes([0x5C; 16]);
        let x = [1, 2, 3, 4, 5, 6, 7, 8];
        let dk = diversify(&mk, &x);
        let cipher = BlockCipher::new(&mk);
        let mut left = x;
        cipher.encrypt_ecb(&mut left).unwrap();
        let mut right = x.map(|b| !b);
        cipher.encrypt_ecb(&mut right).unwrap();
        assert_eq!(dk, Key::TripleDes(join(&left, &right)));
        assert_eq!(dk.algorithm(), Algorithm::TripleDes);
    }
}

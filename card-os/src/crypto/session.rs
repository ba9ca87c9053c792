//! Session keys ("过程密钥"), LD/T 32 authentication data, and the FMCOS challenge cryptogram of
//! EXTERNAL AUTHENTICATE.

use super::algorithm::{Algorithm, Key};
use super::block::{halves, join, leading_mut, zero_padded, CipherBlock, MAX_BLOCK_SIZE};
use super::cipher::{BlockCipher, CipherKey};
use super::CryptoError;

/// The session key derived from `key` and `input` (a random, or the purse's
/// `random ‖ counter ‖ …` string), which is right-padded with `00` to the block size:
///
/// * DES or 3DES key: `SK = DES(K, in8)` / `SK = 3DES(K, in8)`, always an 8-byte **single-DES** key
///   (LD/T 32 part 4 §8.4.1; PBOC SESLK/SESPK, card-specs §3.2);
/// * SM4 or AES key: `SK = E(K, in16)`, a 16-byte key of the same algorithm (LD/T 32 part 4
///   §8.4.2 for SM4; the same rule for AES is ours).
///
/// An empty input, or one longer than the block, gives [`CryptoError::InvalidLength`].
pub fn session_key(key: &impl CipherKey, input: &[u8]) -> Result<Key, CryptoError> {
    let block_size = key.block_size();
    if input.is_empty() || input.len() > block_size {
        return Err(CryptoError::InvalidLength);
    }
    let mut block = zero_padded(input);
    key.with_cipher(|cipher| cipher.encrypt_blocks(leading_mut(&mut block, block_size)));
    Ok(Key::from_block(session_algorithm(key.algorithm()), &block))
}

/// The algorithm of the session keys derived from keys of `algorithm`: the DES family gives single
/// DES, the 16-byte-block ciphers keep their own algorithm.
pub const fn session_algorithm(algorithm: Algorithm) -> Algorithm {
    match algorithm {
        Algorithm::Des | Algorithm::TripleDes => Algorithm::Des,
        Algorithm::Sm4 => Algorithm::Sm4,
        Algorithm::Aes128 => Algorithm::Aes128,
    }
}

/// LD/T 32 authentication data from a session key and the 8-byte "original information"
/// (part 4 §8.4, part 7 §5.4–6.6):
///
/// * 8-byte block: `E(SK, original)`;
/// * 16-byte block: `E(SK, original ‖ 00×8)`, then left 8 bytes ⊕ right 8 bytes.
///
/// INTERNAL AUTHENTICATE returns it (session input and original from the terminal); EXTERNAL
/// AUTHENTICATE checks it (session input = the card's challenge, original from the terminal).
pub fn authentication_data(session_key: &impl CipherKey, original: &[u8; 8]) -> [u8; 8] {
    session_key.with_cipher(|cipher| authentication_data_under(cipher, original))
}

fn authentication_data_under(cipher: &BlockCipher, original: &[u8; 8]) -> [u8; 8] {
    match cipher.block_size() {
        8 => {
            let mut block = *original;
            cipher.encrypt_blocks(&mut block);
            block
        }
        _ => {
            let mut block = join(original, &[0; 8]);
            cipher.encrypt_blocks(&mut block);
            let (mut left, right) = halves(&block);
            for (l, r) in left.iter_mut().zip(right) {
                *l ^= r;
            }
            left
        }
    }
}

/// The EXTERNAL AUTHENTICATE cryptogram for `challenge`: `E(K, challenge ‖ 00…)` padded to one
/// block (FMCOS 2.0 §7.1: `DES(K, rand4 ‖ 00000000)`; a 16-byte challenge under SM4 is one full
/// block, as in the 3rd-generation PIN cryptogram, card-specs TV-9). The result has the block size
/// of the key. A challenge that is empty or longer than a block gives
/// [`CryptoError::InvalidLength`].
pub fn challenge_cryptogram(
    key: &impl CipherKey,
    challenge: &[u8],
) -> Result<CipherBlock, CryptoError> {
    let block_size = key.block_size();
    if challenge.is_empty() || challenge.len() > block_size {
        return Err(CryptoError::InvalidLength);
    }
    let mut block: [u8; MAX_BLOCK_SIZE] = zero_padded(challenge);
    key.with_cipher(|cipher| cipher.encrypt_blocks(leading_mut(&mut block, block_size)));
    Ok(CipherBlock::new(block, block_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_have_the_right_algorithm() {
        let cases = [
            (Key::Des([1; 8]), Algorithm::Des),
            (Key::TripleDes([2; 16]), Algorithm::Des),
            (Key::Sm4([3; 16]), Algorithm::Sm4),
            (Key::Aes128([4; 16]), Algorithm::Aes128),
        ];
        for (key, expected) in cases {
            let sk = session_key(&key, &[9, 9, 9, 9]).unwrap();
            assert_eq!(sk.algorithm(), expected);
            assert_eq!(session_algorithm(key.algorithm()), expected);
        }
    }

    #[test]
    fn short_inputs_are_right_padded_with_zeros() {
        for key in [Key::TripleDes([2; 16]), Key::Sm4([3; 16])] {
            let four = session_key(&key, &[0xAB, 0xCD, 0xEF, 0x01]).unwrap();
            let padded = session_key(&key, &[0xAB, 0xCD, 0xEF, 0x01, 0, 0, 0, 0]).unwrap();
            assert_eq!(four, padded);
        }
    }

    #[test]
    fn session_key_input_lengths() {
        assert_eq!(
            session_key(&Key::Des([1; 8]), &[]),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            session_key(&Key::Des([1; 8]), &[0; 9]),
            Err(CryptoError::InvalidLength)
        );
        assert!(session_key(&Key::Sm4([1; 16]), &[0; 16]).is_ok());
        assert_eq!(
            session_key(&Key::Sm4([1; 16]), &[0; 17]),
            Err(CryptoError::InvalidLength)
        );
    }

    #[test]
    fn fmcos_external_authenticate_tv1() {
        // card-specs TV-1 (FMCOS 2.0 §7.1): DES(0102030405060708, BB83BFF3 00000000).
        let key = Key::Des([1, 2, 3, 4, 5, 6, 7, 8]);
        let cryptogram = challenge_cryptogram(&key, &[0xBB, 0x83, 0xBF, 0xF3]).unwrap();
        assert_eq!(
            cryptogram.as_slice(),
            &[0x74, 0xB0, 0x04, 0x7D, 0xD6, 0x81, 0xD9, 0x6C]
        );
        assert_eq!(
            challenge_cryptogram(&key, &[]),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            challenge_cryptogram(&key, &[0; 9]),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            challenge_cryptogram(&Key::Aes128([0; 16]), &[1; 4])
                .unwrap()
                .len(),
            16
        );
    }

    #[test]
    fn sixteen_byte_auth_data_folds_halves() {
        let sk = Key::Sm4([0x5A; 16]);
        let original = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut block = join(&original, &[0; 8]);
        BlockCipher::new(&sk).encrypt_ecb(&mut block).unwrap();
        let (l, r) = halves(&block);
        let folded: [u8; 8] = core::array::from_fn(|i| l[i] ^ r[i]);
        assert_eq!(authentication_data(&sk, &original), folded);
    }
}

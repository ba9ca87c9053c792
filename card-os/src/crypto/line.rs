//! Line-protection encryption: `LD ‖ data ‖ 80 00…` encrypted in ECB under the key, where `LD` is
//! the length of the data in one byte (FMCOS 2.0 §11.4, LD/T 32 part 4 §8.3). Used for encrypted
//! WRITE KEY, PIN CHANGE/UNBLOCK and files with encrypted write.
//!
//! The two specs differ on aligned input, so the convention is a parameter ([`Padding`]):
//!
//! * FMCOS/PBOC commands under a static key (personalization: WRITE KEY, UPDATE BINARY/RECORD of
//!   files with the encrypt bit) use [`Padding::WhenUnaligned`]: no padding when `LD ‖ data` is
//!   already a whole number of blocks;
//! * LD/T 32 social-security commands under a session key use [`Padding::Always`]: `80 00…` is
//!   always appended, a whole block when aligned.

use super::cipher::{BlockCipher, CipherKey};
use super::CryptoError;

/// Where `80 00…` padding goes in line-protection encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// FMCOS 2.0 §11.4: pad with `80 00…` only when `LD ‖ data` is not block-aligned.
    WhenUnaligned,
    /// LD/T 32 part 4 §8.3 (ISO/IEC 9797-1 padding method 2): always pad, a whole `80 00…` block
    /// when `LD ‖ data` is already aligned.
    Always,
}

/// Length of the ciphertext for `data_len` data bytes (1 byte of `LD`, the data, the padding), or
/// `None` when `data_len` does not fit the one-byte `LD` (over 255) or `block_size` is 0.
pub fn line_encrypted_len(data_len: usize, block_size: usize, padding: Padding) -> Option<usize> {
    if data_len > usize::from(u8::MAX) || block_size == 0 {
        return None;
    }
    let plain = data_len.checked_add(1)?;
    let unpadded_fits = plain.is_multiple_of(block_size);
    if unpadded_fits && padding == Padding::WhenUnaligned {
        return Some(plain);
    }
    // Room for the 80 byte, then round up to a whole block.
    let with_marker = plain.checked_add(1)?;
    let blocks = with_marker.div_ceil(block_size);
    blocks.checked_mul(block_size)
}

/// Encrypts `LD ‖ data ‖ padding` under `key` into `out` and returns the ciphertext length (see
/// [`line_encrypted_len`]). Data over 255 bytes gives [`CryptoError::InvalidLength`], a short
/// `out` [`CryptoError::BufferTooSmall`].
pub fn line_encrypt(
    key: &impl CipherKey,
    data: &[u8],
    padding: Padding,
    out: &mut [u8],
) -> Result<usize, CryptoError> {
    key.with_cipher(|cipher| line_encrypt_under(cipher, data, padding, out))
}

fn line_encrypt_under(
    key: &BlockCipher,
    data: &[u8],
    padding: Padding,
    out: &mut [u8],
) -> Result<usize, CryptoError> {
    let total = line_encrypted_len(data.len(), key.block_size(), padding)
        .ok_or(CryptoError::InvalidLength)?;
    let buffer = out.get_mut(..total).ok_or(CryptoError::BufferTooSmall)?;
    let (length_byte, rest) = buffer
        .split_first_mut()
        .ok_or(CryptoError::BufferTooSmall)?;
    let (body, pad) = rest
        .split_at_mut_checked(data.len())
        .ok_or(CryptoError::BufferTooSmall)?;
    // `data.len()` fits one byte: line_encrypted_len refused anything longer.
    *length_byte = u8::try_from(data.len()).map_err(|_| CryptoError::InvalidLength)?;
    for (b, d) in body.iter_mut().zip(data) {
        *b = *d;
    }
    if let Some((marker, zeros)) = pad.split_first_mut() {
        *marker = 0x80;
        zeros.fill(0x00);
    }
    key.encrypt_ecb(buffer)?;
    Ok(total)
}

/// Decrypts line-protection `ciphertext` under `key`, checks `LD` and the padding, and leaves the
/// data at the start of `out`; returns its length.
///
/// `out` is scratch space and must hold the whole ciphertext. A ciphertext that is empty or not a
/// whole number of blocks gives [`CryptoError::InvalidLength`]; an `LD` that does not match the
/// ciphertext length, or padding that is not exactly `80 00…` (or present when `Padding` says it
/// must not be), gives [`CryptoError::BadPadding`] and `out` is wiped.
pub fn line_decrypt(
    key: &impl CipherKey,
    ciphertext: &[u8],
    padding: Padding,
    out: &mut [u8],
) -> Result<usize, CryptoError> {
    key.with_cipher(|cipher| line_decrypt_under(cipher, ciphertext, padding, out))
}

fn line_decrypt_under(
    key: &BlockCipher,
    ciphertext: &[u8],
    padding: Padding,
    out: &mut [u8],
) -> Result<usize, CryptoError> {
    let block_size = key.block_size();
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block_size) {
        return Err(CryptoError::InvalidLength);
    }
    let buffer = out
        .get_mut(..ciphertext.len())
        .ok_or(CryptoError::BufferTooSmall)?;
    for (b, c) in buffer.iter_mut().zip(ciphertext) {
        *b = *c;
    }
    key.decrypt_ecb(buffer)?;
    match check_layout(buffer, block_size, padding) {
        Some(data_len) => {
            // Move the data over the LD byte, to the start of the buffer.
            if let Some(region) = buffer.get_mut(..=data_len) {
                region.copy_within(1.., 0);
            }
            Ok(data_len)
        }
        None => {
            buffer.fill(0);
            Err(CryptoError::BadPadding)
        }
    }
}

/// The data length of a decrypted `LD ‖ data ‖ padding` when the layout is exactly what
/// [`line_encrypt`] produces for that `LD`, else `None`.
fn check_layout(plain: &[u8], block_size: usize, padding: Padding) -> Option<usize> {
    let (&length_byte, rest) = plain.split_first()?;
    let data_len = usize::from(length_byte);
    if line_encrypted_len(data_len, block_size, padding)? != plain.len() {
        return None;
    }
    let (_data, pad) = rest.split_at_checked(data_len)?;
    match pad.split_first() {
        None => Some(data_len),
        Some((0x80, zeros)) if zeros.iter().all(|&z| z == 0) => Some(data_len),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;
    use proptest::prelude::*;

    const KEYS: [Key; 4] = [
        Key::Des([0x11; 8]),
        Key::TripleDes([0x22; 16]),
        Key::Sm4([0x33; 16]),
        Key::Aes128([0x44; 16]),
    ];

    #[test]
    fn lengths_follow_each_convention() {
        // 7 data bytes + LD = 8: aligned for DES.
        assert_eq!(line_encrypted_len(7, 8, Padding::WhenUnaligned), Some(8));
        assert_eq!(line_encrypted_len(7, 8, Padding::Always), Some(16));
        assert_eq!(line_encrypted_len(6, 8, Padding::WhenUnaligned), Some(8));
        assert_eq!(line_encrypted_len(6, 8, Padding::Always), Some(8));
        assert_eq!(line_encrypted_len(0, 8, Padding::Always), Some(8));
        assert_eq!(line_encrypted_len(0, 16, Padding::WhenUnaligned), Some(16));
        assert_eq!(line_encrypted_len(15, 16, Padding::WhenUnaligned), Some(16));
        assert_eq!(line_encrypted_len(15, 16, Padding::Always), Some(32));
        assert_eq!(
            line_encrypted_len(255, 8, Padding::WhenUnaligned),
            Some(256)
        );
        assert_eq!(line_encrypted_len(255, 8, Padding::Always), Some(264));
        assert_eq!(line_encrypted_len(256, 8, Padding::Always), None);
        assert_eq!(line_encrypted_len(1, 0, Padding::Always), None);
    }

    #[test]
    fn round_trip_every_length_and_convention() {
        let data: [u8; 40] = core::array::from_fn(|i| i as u8 ^ 0xA5);
        for key in &KEYS {
            for padding in [Padding::WhenUnaligned, Padding::Always] {
                for len in 0..=data.len() {
                    let mut cipher = [0u8; 64];
                    let n = line_encrypt(key, &data[..len], padding, &mut cipher).unwrap();
                    assert_eq!(Some(n), line_encrypted_len(len, key.block_size(), padding));
                    let mut plain = [0u8; 64];
                    let m = line_decrypt(key, &cipher[..n], padding, &mut plain).unwrap();
                    assert_eq!(&plain[..m], &data[..len], "{key:?} {padding:?} {len}");
                }
            }
        }
    }

    #[test]
    fn plaintext_layout_is_ld_data_80_00() {
        let key = Key::Des([0x11; 8]);
        let mut out = [0u8; 16];
        let n = line_encrypt(&key, &[0xAA, 0xBB], Padding::WhenUnaligned, &mut out).unwrap();
        BlockCipher::new(&key).decrypt_ecb(&mut out[..n]).unwrap();
        assert_eq!(&out[..n], &[0x02, 0xAA, 0xBB, 0x80, 0, 0, 0, 0]);
    }

    #[test]
    fn wrong_convention_or_tampering_is_bad_padding() {
        let key = Key::Des([0x11; 8]);
        let mut cipher = [0u8; 16];
        // 7 bytes: aligned, so the two conventions give different lengths.
        let n = line_encrypt(&key, &[1; 7], Padding::Always, &mut cipher).unwrap();
        let mut plain = [0xEEu8; 16];
        assert_eq!(
            line_decrypt(&key, &cipher[..n], Padding::WhenUnaligned, &mut plain),
            Err(CryptoError::BadPadding)
        );
        assert_eq!(plain, [0; 16], "decrypted bytes are wiped on failure");
        let n = line_encrypt(&key, &[1; 7], Padding::WhenUnaligned, &mut cipher).unwrap();
        assert_eq!(
            line_decrypt(&key, &cipher[..n], Padding::Always, &mut plain),
            Err(CryptoError::BadPadding)
        );
        // Flip the last ciphertext byte: the padding block decrypts to garbage.
        let n = line_encrypt(&key, &[1; 3], Padding::Always, &mut cipher).unwrap();
        cipher[n - 1] ^= 1;
        assert_eq!(
            line_decrypt(&key, &cipher[..n], Padding::Always, &mut plain),
            Err(CryptoError::BadPadding)
        );
    }

    #[test]
    fn bad_lengths_and_buffers_are_errors() {
        let key = Key::Sm4([0x33; 16]);
        let mut out = [0u8; 8];
        assert_eq!(
            line_encrypt(&key, &[0; 3], Padding::Always, &mut out),
            Err(CryptoError::BufferTooSmall)
        );
        assert_eq!(
            line_encrypt(&key, &[0; 256], Padding::Always, &mut [0; 300]),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            line_decrypt(&key, &[], Padding::Always, &mut out),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            line_decrypt(&key, &[0; 15], Padding::Always, &mut [0; 16]),
            Err(CryptoError::InvalidLength)
        );
        assert_eq!(
            line_decrypt(&key, &[0; 16], Padding::Always, &mut out),
            Err(CryptoError::BufferTooSmall)
        );
    }

    #[test]
    fn ld_larger_than_the_ciphertext_is_refused() {
        // Forge a block whose LD claims 200 bytes.
        let key = Key::Des([0x11; 8]);
        let mut block = [200u8, 0x80, 0, 0, 0, 0, 0, 0];
        BlockCipher::new(&key).encrypt_ecb(&mut block).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(
            line_decrypt(&key, &block, Padding::Always, &mut out),
            Err(CryptoError::BadPadding)
        );
    }

    proptest! {
        // Line-protection data comes straight from an APDU: any bytes, any length, any buffer
        // must give a result or an error, never a panic, and a success must be consistent.
        #[test]
        fn decrypt_never_panics(
            key_index in 0usize..4,
            ciphertext in proptest::collection::vec(any::<u8>(), 0..80),
            out_len in 0usize..96,
            always in any::<bool>(),
        ) {
            let key = &KEYS[key_index];
            let padding = if always { Padding::Always } else { Padding::WhenUnaligned };
            let mut out = vec![0u8; out_len];
            if let Ok(n) = line_decrypt(key, &ciphertext, padding, &mut out) {
                prop_assert!(n < ciphertext.len());
                // Re-encrypting the recovered data gives the same ciphertext back.
                let mut again = [0u8; 96];
                let m = line_encrypt(key, &out[..n], padding, &mut again).unwrap();
                prop_assert_eq!(&again[..m], &ciphertext[..]);
            }
        }

        #[test]
        fn encrypt_then_decrypt_round_trips(
            key_index in 0usize..4,
            data in proptest::collection::vec(any::<u8>(), 0..=255),
            always in any::<bool>(),
        ) {
            let key = &KEYS[key_index];
            let padding = if always { Padding::Always } else { Padding::WhenUnaligned };
            let mut cipher = [0u8; 272];
            let n = line_encrypt(key, &data, padding, &mut cipher).unwrap();
            let mut plain = [0u8; 272];
            let m = line_decrypt(key, &cipher[..n], padding, &mut plain).unwrap();
            prop_assert_eq!(&plain[..m], &data[..]);
        }
    }
}

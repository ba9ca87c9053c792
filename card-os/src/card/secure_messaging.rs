//! Line protection (secure messaging) of commands with CLA `04`/`84` (FMCOS 2.0 §11.3–11.4):
//! the last 4 data bytes are a MAC under a static key with IV = the card's challenge padded with
//! zeros, over `CLA INS P1 P2 Lc` (Lc counting the MAC) and the rest of the data; encrypted data is
//! `LD ‖ data ‖ 80 00…` in ECB under the same key. Line-protected reads answer the data with a MAC
//! (and encrypted, for EFs with the encrypt bit; FMCOS 2.0 §7.5.4, §7.6.4). See
//! apdu-specs/security.md for which key each command uses and the status word each failure gets.

use super::context::Ctx;
use super::Response;
use crate::apdu::Sw;
use crate::crypto::{line_decrypt, line_encrypt, line_encrypted_len, Key, Mac, Padding};
use crate::nvm::Nvm;

/// Largest protected data field: a short Lc of 255 minus the MAC.
pub(super) const MAX_PROTECTED_DATA: usize = 251;

/// Most plain bytes one line-protected read answers (FMCOS 2.0 §6.1: Le at most 239), so that
/// `E(LD ‖ data ‖ 80 00…) ‖ MAC` always fits one response.
pub(super) const MAX_PROTECTED_READ: usize = 239;

/// Checks the MAC of a protected command whose data (without the MAC) is `data`. `wrong` is the
/// status word a wrong MAC gets; `6984` when no challenge was issued just before.
pub(super) fn check_mac<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &Key,
    data: &[u8],
    mac: &[u8; 4],
    wrong: Sw,
) -> Result<(), Sw> {
    let challenge = ctx.challenge()?;
    let header = ctx.mac_header()?;
    // A challenge longer than the key's block (16 bytes under a DES key) cannot be the IV.
    let mut expected =
        Mac::line_protection(key, challenge.as_slice()).map_err(|_| Sw::REFERENCE_DATA_INVALID)?;
    expected.update(&header);
    expected.update(data);
    if expected.verify(mac) {
        Ok(())
    } else {
        Err(wrong)
    }
}

/// The plain data of a protected command: MAC checked, then decrypted into `buf` when
/// `encrypted` (FMCOS convention: `80 00…` only when unaligned). A wrong MAC or a ciphertext whose
/// layout is wrong both get `wrong`.
pub(super) fn unwrap<'a, N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &Key,
    data: &'a [u8],
    mac: &[u8; 4],
    encrypted: bool,
    buf: &'a mut [u8; MAX_PROTECTED_DATA],
    wrong: Sw,
) -> Result<&'a [u8], Sw> {
    check_mac(ctx, key, data, mac, wrong)?;
    if !encrypted {
        return Ok(data);
    }
    let len = line_decrypt(key, data, Padding::WhenUnaligned, buf).map_err(|_| wrong)?;
    buf.get(..len).ok_or(wrong)
}

/// Turns the plain data of a line-protected read, which the handler put in `response` (and
/// nothing else), into what the card sends (FMCOS 2.0 §7.5.4, §7.6.4): `data ‖ MAC`, or, when
/// `encrypted`, `E(LD ‖ data ‖ 80 00…) ‖ MAC` (padding only when unaligned, §11.4). The MAC is
/// under the same key, IV = the challenge the command's own MAC used, over the data as sent
/// (ours: FMCOS does not spell the response MAC out; apdu-specs/security.md decision 14).
pub(super) fn seal_read<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &Key,
    encrypted: bool,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let challenge = ctx.challenge()?;
    if encrypted {
        let mut plain = [0u8; MAX_PROTECTED_READ];
        let n = response.len();
        let plain_data = plain.get_mut(..n).ok_or(Sw::WRONG_LENGTH)?;
        plain_data.copy_from_slice(response.data());
        response.truncate(0);
        let sealed_len = line_encrypted_len(n, key.block_size(), Padding::WhenUnaligned)
            .ok_or(Sw::NO_PRECISE_DIAGNOSIS)?;
        let out = response.extend(sealed_len)?;
        let done = line_encrypt(key, plain_data, Padding::WhenUnaligned, out);
        // The plain copy is wiped whatever the outcome.
        plain.fill(0);
        done.map_err(|_| Sw::NO_PRECISE_DIAGNOSIS)?;
    }
    let mut mac =
        Mac::line_protection(key, challenge.as_slice()).map_err(|_| Sw::REFERENCE_DATA_INVALID)?;
    mac.update(response.data());
    response.push(&mac.finalize())
}

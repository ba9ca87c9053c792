//! Line protection (secure messaging) of commands with CLA `04`/`84` (FMCOS 2.0 §11.3–11.4):
//! the last 4 data bytes are a MAC under a static key with IV = the card's challenge padded with
//! zeros, over `CLA INS P1 P2 Lc` (Lc counting the MAC) and the rest of the data; encrypted data is
//! `LD ‖ data ‖ 80 00…` in ECB under the same key. See apdu-specs/security.md for which key each
//! command uses and the status word each failure gets.

use super::context::Ctx;
use crate::apdu::Sw;
use crate::crypto::{line_decrypt, Key, Mac, Padding};
use crate::nvm::Nvm;

/// Largest protected data field: a short Lc of 255 minus the MAC.
pub(super) const MAX_PROTECTED_DATA: usize = 251;

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

//! Line protection (secure messaging) of commands with CLA `04`/`84`: the last 4 data bytes are a
//! MAC over `CLA INS P1 P2 Lc` (Lc counting the MAC) and the rest of the data; encrypted data is
//! `LD ‖ data ‖ 80 00…` in ECB. Line-protected reads answer the data with a MAC (and encrypted, for
//! EFs with the encrypt bit; FMCOS 2.0 §7.5.4, §7.6.4).
//!
//! Two conventions, chosen per key ([`LineKey`]):
//!
//! * **FMCOS** (FMCOS 2.0 §11.3–11.4): the static key, IV = the card's challenge padded with
//!   zeros (ISO 9797-1 MAC algorithm 3 for 16-byte DES keys); `80 00…` only when unaligned;
//! * **LD/T 32 maintenance keys (STK)** (LD/T 32 part 4 §8.2–8.4, part 7 §13): the session key
//!   `E(STK, challenge ‖ 00…)`, IV zero, single DES for the DES family (SM4/AES: their own
//!   CBC-MAC); `80 00…` always.
//!
//! See apdu-specs/security.md for which key each command uses and the status word each failure
//! gets.

use super::context::Ctx;
use super::Response;
use crate::apdu::Sw;
use crate::crypto::{
    ct_eq, line_decrypt, line_encrypt, line_encrypted_len, session_key, BlockCipher, CipherKey,
    Key, Mac, Padding,
};
use crate::nvm::Nvm;
use crate::security::keys::KeyEntry;

/// Largest protected data field: a short Lc of 255 minus the MAC.
pub(super) const MAX_PROTECTED_DATA: usize = 251;

/// Most plain bytes one line-protected read answers (FMCOS 2.0 §6.1: Le at most 239), so that
/// `E(LD ‖ data ‖ 80 00…) ‖ MAC` always fits one response.
pub(super) const MAX_PROTECTED_READ: usize = 239;

/// The key a protected command computes with, and its convention.
///
/// It holds the key, not its schedule: each step (MAC check and decryption together, or a read's
/// encryption and MAC together) builds the schedule in its own short-lived frame and lends it to
/// the MAC and the cipher. A schedule carried in this value (264 bytes) would be copied along
/// every return of it and sit under everything the command does after (the chip's RAM goal);
/// building one costs far less than one DES block does on the chip.
pub(super) struct LineKey {
    key: Key,
    /// LD/T 32: `key` is the session key of this command's challenge.
    session: bool,
}

impl LineKey {
    /// An FMCOS static key (WRITE KEY's master key is always one).
    pub(super) fn fixed(key: Key) -> LineKey {
        LineKey {
            key,
            session: false,
        }
    }

    /// The key of a key-file record: an LD/T 32 maintenance key ([`KeyEntry::uses_session_keys`])
    /// becomes the session key of the challenge just issued (`6984` without one).
    pub(super) fn of<N: Nvm>(ctx: &Ctx<'_, N>, entry: &KeyEntry) -> Result<LineKey, Sw> {
        let key = ctx.load_key(entry)?;
        if !entry.uses_session_keys() {
            return Ok(LineKey::fixed(key));
        }
        let challenge = ctx.challenge()?;
        let key =
            session_key(&key, challenge.as_slice()).map_err(|_| Sw::REFERENCE_DATA_INVALID)?;
        Ok(LineKey { key, session: true })
    }

    /// A MAC of this convention for the command's challenge, under this key's schedule `cipher`.
    fn mac<'c, N: Nvm>(&self, ctx: &Ctx<'_, N>, cipher: &'c BlockCipher) -> Result<Mac<'c>, Sw> {
        let challenge = ctx.challenge()?;
        let mac = if self.session {
            Mac::session(cipher)
        } else {
            Mac::line_protection(cipher, challenge.as_slice())
        };
        // A challenge longer than the key's block (16 bytes under a DES key) cannot be the IV.
        mac.map_err(|_| Sw::REFERENCE_DATA_INVALID)
    }

    /// Most plain bytes a read sealed under this key answers: FMCOS's 239, one less under a session
    /// key, whose padding always adds a byte (so a 16-byte-block answer and its MAC still fit).
    pub(super) fn max_read(&self) -> usize {
        MAX_PROTECTED_READ - usize::from(self.session)
    }

    /// Where `80 00…` goes in encrypted data.
    fn padding(&self) -> Padding {
        if self.session {
            Padding::Always
        } else {
            Padding::WhenUnaligned
        }
    }

    /// Decrypts `LD ‖ data ‖ padding` into `out`; the data's length.
    pub(super) fn decrypt(&self, ciphertext: &[u8], out: &mut [u8]) -> Result<usize, Sw> {
        self.key
            .with_cipher(|cipher| self.decrypt_under(cipher, ciphertext, out))
    }

    fn decrypt_under(
        &self,
        cipher: &BlockCipher,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Sw> {
        line_decrypt(cipher, ciphertext, self.padding(), out).map_err(|_| Sw::WRONG_DATA)
    }
}

/// The MAC a protected command whose data (without the MAC) is `data` must carry: `6984` when no
/// challenge was issued just before (or it cannot be this key's IV). Computed apart from the
/// comparison so that commands which count attempts can spend one in between.
pub(super) fn expected_mac<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    data: &[u8],
) -> Result<[u8; 4], Sw> {
    key.key
        .with_cipher(|cipher| expected_mac_under(ctx, key, cipher, data))
}

fn expected_mac_under<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    cipher: &BlockCipher,
    data: &[u8],
) -> Result<[u8; 4], Sw> {
    let header = ctx.mac_header()?;
    let mut mac = key.mac(ctx, cipher)?;
    mac.update(&header);
    mac.update(data);
    Ok(mac.finalize())
}

/// Checks the MAC of a protected command whose data (without the MAC) is `data`, in constant time.
/// `wrong` is the status word a wrong MAC gets.
pub(super) fn check_mac<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    data: &[u8],
    mac: &[u8; 4],
    wrong: Sw,
) -> Result<(), Sw> {
    if ct_eq(&expected_mac(ctx, key, data)?, mac) {
        Ok(())
    } else {
        Err(wrong)
    }
}

/// The plain data of a protected command: MAC checked, then decrypted into `buf` when
/// `encrypted`. A wrong MAC or a ciphertext whose layout is wrong both get `wrong`.
pub(super) fn unwrap<'a, N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    data: &'a [u8],
    mac: &[u8; 4],
    encrypted: bool,
    buf: &'a mut [u8; MAX_PROTECTED_DATA],
    wrong: Sw,
) -> Result<&'a [u8], Sw> {
    if !encrypted {
        check_mac(ctx, key, data, mac, wrong)?;
        return Ok(data);
    }
    // One schedule for the MAC check and the decryption.
    let len = key.key.with_cipher(|cipher| {
        if !ct_eq(&expected_mac_under(ctx, key, cipher, data)?, mac) {
            return Err(wrong);
        }
        key.decrypt_under(cipher, data, buf).map_err(|_| wrong)
    })?;
    buf.get(..len).ok_or(wrong)
}

/// Turns the plain data of a line-protected read, which the handler put in `response` (and
/// nothing else), into what the card sends (FMCOS 2.0 §7.5.4, §7.6.4): `data ‖ MAC`, or, when
/// `encrypted`, `E(LD ‖ data ‖ 80 00…) ‖ MAC`. The MAC is the command's own kind (same key, same
/// IV) over the data as sent (ours: FMCOS does not spell the response MAC out; apdu-specs/security.md
/// decision 14).
pub(super) fn seal_read<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    encrypted: bool,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    // One schedule for the encryption and the MAC.
    key.key
        .with_cipher(|cipher| seal_read_under(ctx, key, cipher, encrypted, response))
}

fn seal_read_under<N: Nvm>(
    ctx: &Ctx<'_, N>,
    key: &LineKey,
    cipher: &BlockCipher,
    encrypted: bool,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    if encrypted {
        let mut plain = [0u8; MAX_PROTECTED_READ];
        let n = response.len();
        let plain_data = plain.get_mut(..n).ok_or(Sw::WRONG_LENGTH)?;
        plain_data.copy_from_slice(response.data());
        response.truncate(0);
        let sealed_len = line_encrypted_len(n, cipher.block_size(), key.padding())
            .ok_or(Sw::NO_PRECISE_DIAGNOSIS)?;
        let out = response.extend(sealed_len)?;
        let done = line_encrypt(cipher, plain_data, key.padding(), out);
        // The plain copy is wiped whatever the outcome.
        plain.fill(0);
        done.map_err(|_| Sw::NO_PRECISE_DIAGNOSIS)?;
    }
    let mut mac = key.mac(ctx, cipher)?;
    mac.update(response.data());
    response.push(&mac.finalize())
}

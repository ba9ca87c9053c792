//! VERIFY, CHANGE PIN, RELOAD PIN and PIN UNBLOCK (FMCOS 2.0 §7.10, §8.4–8.6; LD/T 32 part 5).
//!
//! Every comparison of a secret spends a try first and commits it as a transaction of its own
//! ([`Ctx::spend_try`]); only a match gives it back, in the command's own transaction. A power cut
//! anywhere therefore never leaves more tries than the holder had, nor restores them without a
//! correct PIN or MAC (`card-os/tests/power_cut.rs` checks every cut point).

use super::command::WriteData;
use super::context::Ctx;
use super::secure_messaging::{self, LineKey};
use super::Response;
use crate::apdu::Sw;
use crate::crypto::{ct_eq, Key, Mac, MacIv};
use crate::nvm::Nvm;
use crate::security::keys::{self, KeyEntry, KeyType};

/// The application's PIN-unblock and PIN-reload keys have id 00 (FMCOS 2.0 §7.12: one of each
/// per application).
const APPLICATION_KEY_ID: u8 = 0x00;

/// Compares a presented PIN with the stored one in constant time (trailing `FF` may be left out).
fn pin_matches<N: Nvm>(ctx: &Ctx<'_, N>, entry: &KeyEntry, presented: &[u8]) -> Result<bool, Sw> {
    let stored = keys::load_pin(ctx.storage, entry)?;
    Ok(keys::pad_pin(presented).is_some_and(|p| ct_eq(&p, &stored)))
}

/// A new PIN: 2 to 8 bytes, of any length the old one had or not (FMCOS 2.0 §8.6.1); a longer
/// one needs room in the key file (checked before a try is spent, [`keys::pin_fits`]).
fn check_new_pin<N: Nvm>(ctx: &Ctx<'_, N>, entry: &KeyEntry, pin: &[u8]) -> Result<(), Sw> {
    keys::pin_fits(&ctx.key_file()?, entry, pin.len())
}

/// Queues the new PIN (its record grows when it is longer, [`keys::set_pin`]).
fn store_pin<N: Nvm>(ctx: &mut Ctx<'_, N>, entry: &KeyEntry, pin: &[u8]) -> Result<(), Sw> {
    let key_file = ctx.key_file()?;
    keys::set_pin(ctx.storage, &key_file, entry, pin)
}

/// VERIFY `00 20 00 pinId`. Without data: the tries left (`63Cx`), `6983` when blocked, `9000`
/// when the DF has no such PIN (LD/T 32 part 5: nothing to verify).
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn verify<N: Nvm>(ctx: &mut Ctx<'_, N>, pin_id: u8, pin: &[u8]) -> Result<(), Sw> {
    if pin.is_empty() {
        return match ctx.key(KeyType::Pin, pin_id) {
            Ok(entry) => match entry.counter() {
                Some(c) if c.blocked() => Err(Sw::AUTH_METHOD_BLOCKED),
                Some(c) => Err(Sw::tries_left(c.left())),
                None => Err(Sw::MEMORY_FAILURE),
            },
            Err(Sw::FILE_NOT_FOUND | Sw::REFERENCED_DATA_NOT_FOUND) => Ok(()),
            Err(sw) => Err(sw),
        };
    }
    let entry = ctx.usable_key(KeyType::Pin, pin_id)?;
    let spent = ctx.spend_try(&entry)?;
    if !pin_matches(ctx, &entry, pin)? {
        return Err(Ctx::<N>::failed_try(spent));
    }
    ctx.restore_tries(&entry, spent)?;
    ctx.raise_security(entry.follow_on_state());
    Ok(())
}

/// CHANGE PIN `80 5E 01 pinId`: the old PIN is verified like VERIFY does (a try is spent first),
/// then the new PIN replaces it and the tries come back.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn change_pin<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    pin_id: u8,
    old: &[u8],
    new: &[u8],
) -> Result<(), Sw> {
    let entry = ctx.usable_key(KeyType::Pin, pin_id)?;
    check_new_pin(ctx, &entry, new)?;
    let spent = ctx.spend_try(&entry)?;
    if !pin_matches(ctx, &entry, old)? {
        return Err(Ctx::<N>::failed_try(spent));
    }
    store_pin(ctx, &entry, new)?;
    ctx.restore_tries(&entry, spent)
}

/// The key of RELOAD PIN's MAC (FMCOS 2.0 §8.5): `K_L ⊕ K_R` of a 3DES reload key; a DES, SM4 or
/// AES reload key is used as it is (ours: those have no halves to fold).
fn reload_mac_key(key: Key) -> Key {
    key.halves_xor().unwrap_or(key)
}

/// RELOAD PIN `80 5E 00 pinId`: the new PIN with a MAC over it alone (zero IV) under the reload
/// key `38`; a wrong MAC spends a try of the reload key and answers `9302` (FMCOS 2.0 §8.5.5),
/// `6983` when that was its last try.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn reload_pin<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    pin_id: u8,
    pin: &[u8],
    mac: &[u8; 4],
) -> Result<(), Sw> {
    let pin_entry = ctx.key(KeyType::Pin, pin_id)?;
    check_new_pin(ctx, &pin_entry, pin)?;
    let reload = ctx.usable_key(KeyType::PinReload, APPLICATION_KEY_ID)?;
    let key = reload_mac_key(ctx.load_key(&reload)?);
    let expected = Mac::compute(&key, MacIv::Zero, &[pin]).map_err(|_| Sw::WRONG_DATA)?;
    let spent = ctx.spend_try(&reload)?;
    if !ct_eq(&expected, mac) {
        // FMCOS 2.0 §8.5.5: "93 02 MAC 错误"; the try stays spent, so the MAC still cannot be
        // searched for: the key blocks with its last try ("69 83 认证方式锁定").
        return Err(if spent.left() == 0 {
            Sw::AUTH_METHOD_BLOCKED
        } else {
            Sw::MAC_INVALID
        });
    }
    ctx.restore_tries(&reload, spent)?;
    store_pin(ctx, &pin_entry, pin)?;
    reset_tries(ctx, &pin_entry)
}

/// Gives a PIN all its tries back.
fn reset_tries<N: Nvm>(ctx: &mut Ctx<'_, N>, entry: &KeyEntry) -> Result<(), Sw> {
    let counter = entry.counter().ok_or(Sw::MEMORY_FAILURE)?;
    keys::set_counter(ctx.storage, entry, counter.restored())
}

/// PIN UNBLOCK `84 24 pinId P2`: line protection under the unblock key `37` (MAC, and the new PIN
/// encrypted when there is data besides the MAC). A wrong MAC or cryptogram spends a try of the
/// unblock key. Success gives the PIN its tries back and, with data, replaces it.
// Never inlined into the dispatch: its frame would sit under every command.
#[inline(never)]
pub(super) fn pin_unblock<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    pin_id: u8,
    write: WriteData<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let mac = write.mac.ok_or(Sw::SM_MAC_MISSING)?;
    let pin_entry = ctx.key(KeyType::Pin, pin_id)?;
    let unblock = ctx.usable_key(KeyType::PinUnblock, APPLICATION_KEY_ID)?;
    let key = LineKey::of(ctx, &unblock)?;
    // Computed before the try is spent, compared after: a command refused for want of a
    // challenge costs nothing.
    let expected = secure_messaging::expected_mac(ctx, &key, write.data)?;
    let spent = ctx.spend_try(&unblock)?;
    if !ct_eq(&expected, &mac) {
        return Err(Ctx::<N>::failed_try(spent));
    }
    if !write.data.is_empty() {
        // The decrypted PIN goes to the (empty) response buffer, wiped whatever the outcome.
        let buf = response.scratch()?;
        let result = key
            .decrypt(write.data, buf)
            .map_err(|_| Ctx::<N>::failed_try(spent))
            .and_then(|len| {
                let pin = buf.get(..len).ok_or(Sw::WRONG_DATA)?;
                check_new_pin(ctx, &pin_entry, pin)?;
                store_pin(ctx, &pin_entry, pin)
            });
        response.wipe();
        result?;
    }
    ctx.restore_tries(&unblock, spent)?;
    reset_tries(ctx, &pin_entry)
}

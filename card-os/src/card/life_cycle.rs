//! APPLICATION BLOCK, APPLICATION UNBLOCK and CARD BLOCK (FMCOS 2.0 §8.1–8.3; LD/T 32 part 5):
//! each carries only a MAC, under the current DF's line-protection key `36` with id 00.
//!
//! Application blocks are flags in the DF's header; the card block is the life-cycle byte of the
//! system area, which the engine caches and updates once CARD BLOCK has committed.
//!
//! A temporary block also counts the APPLICATION UNBLOCKs that failed since it was set: the third
//! failure blocks the application for good (FMCOS 2.0 §8.2). Like a PIN try, each attempt is
//! counted and committed before the MAC is compared, so a power cut after the comparison never
//! gives an attempt back (`card-os/tests/power_cut_security.rs`).

use super::context::Ctx;
use super::secure_messaging::{self, LineKey};
use super::system;
use crate::apdu::Sw;
use crate::crypto::ct_eq;
use crate::fs::header::{
    field, DF_FLAGS_BLOCKED_TEMPORARILY, DF_FLAG_BLOCKED_PERMANENTLY, DF_FLAG_BLOCKED_TEMPORARILY,
    DF_TEMPORARY_BLOCK_STATES,
};
use crate::nvm::Nvm;
use crate::security::keys::{KeyEntry, KeyType};

/// The line-protection key of life-cycle commands (FMCOS 2.0 §7.12: one per application).
const LIFE_CYCLE_KEY_ID: u8 = 0x00;

/// Every block flag of a DF header.
const ALL_BLOCK_FLAGS: u8 = DF_FLAG_BLOCKED_PERMANENTLY | DF_FLAGS_BLOCKED_TEMPORARILY;

/// The key that MACs life-cycle commands: found, its use right met, not blocked.
fn life_cycle_key<N: Nvm>(ctx: &Ctx<'_, N>) -> Result<KeyEntry, Sw> {
    ctx.usable_key(KeyType::LineProtection, LIFE_CYCLE_KEY_ID)
}

/// Checks a life-cycle command's MAC over its header (`6988` if wrong).
fn check_mac<N: Nvm>(ctx: &Ctx<'_, N>, entry: &KeyEntry, mac: &[u8; 4]) -> Result<(), Sw> {
    let key = LineKey::of(ctx, entry)?;
    secure_messaging::check_mac(ctx, &key, &[], mac, Sw::SM_DATA_INCORRECT)
}

/// The current DF's block flags.
fn df_flags<N: Nvm>(ctx: &Ctx<'_, N>) -> Result<u8, Sw> {
    Ok(ctx.current_df()?.header.df_flags())
}

/// Sets or clears block flags of the current DF.
fn set_df_flags<N: Nvm>(ctx: &mut Ctx<'_, N>, set: u8, clear: u8) -> Result<(), Sw> {
    let df = ctx.current_df()?;
    let byte = df.header.raw()[field::DF_NAME_AND_FLAGS];
    let new = (byte & !clear) | set;
    if new != byte {
        ctx.storage
            .write_u8(df.addr + field::DF_NAME_AND_FLAGS, new)?;
    }
    Ok(())
}

/// APPLICATION BLOCK `84 1E 00 P2`: P2 00 until APPLICATION UNBLOCK, 01 for good. Blocking a
/// blocked application succeeds (FMCOS 2.0 §8.3.5) and changes nothing: a permanent block stays
/// permanent, and a temporary one keeps its count of failed unblocks.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn application_block<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    permanently: bool,
    mac: &[u8; 4],
) -> Result<(), Sw> {
    let entry = life_cycle_key(ctx)?;
    check_mac(ctx, &entry, mac)?;
    let flags = df_flags(ctx)?;
    if flags & DF_FLAG_BLOCKED_PERMANENTLY != 0 {
        Ok(())
    } else if permanently {
        set_df_flags(
            ctx,
            DF_FLAG_BLOCKED_PERMANENTLY,
            DF_FLAGS_BLOCKED_TEMPORARILY,
        )
    } else if flags & DF_FLAGS_BLOCKED_TEMPORARILY != 0 {
        Ok(())
    } else {
        set_df_flags(ctx, DF_FLAG_BLOCKED_TEMPORARILY, 0)
    }
}

/// APPLICATION UNBLOCK `84 18`: lifts a temporary block (`9303` after a permanent one). On a
/// blocked application the attempt is counted and committed first; the third failure since the
/// block makes it permanent (FMCOS 2.0 §8.2). A wrong MAC answers `6988`; on an application that
/// is not blocked nothing is counted (there is no block to lift) and a right MAC succeeds.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn application_unblock<N: Nvm>(ctx: &mut Ctx<'_, N>, mac: &[u8; 4]) -> Result<(), Sw> {
    let flags = df_flags(ctx)?;
    if flags & DF_FLAG_BLOCKED_PERMANENTLY != 0 {
        return Err(Sw::APP_PERMANENTLY_LOCKED);
    }
    let entry = life_cycle_key(ctx)?;
    if flags & DF_FLAGS_BLOCKED_TEMPORARILY == 0 {
        return check_mac(ctx, &entry, mac);
    }
    // What a command refuses before its MAC is compared (no challenge, no key) costs no attempt.
    let key = LineKey::of(ctx, &entry)?;
    let expected = secure_messaging::expected_mac(ctx, &key, &[])?;
    spend_unblock_attempt(ctx, flags)?;
    if !ct_eq(&expected, mac) {
        return Err(Sw::SM_DATA_INCORRECT);
    }
    set_df_flags(ctx, 0, ALL_BLOCK_FLAGS)
}

/// Counts one more failed APPLICATION UNBLOCK (the third: blocked for good) and commits it, before
/// the MAC is compared: only a right MAC takes it back, in the command's own transaction.
fn spend_unblock_attempt<N: Nvm>(ctx: &mut Ctx<'_, N>, flags: u8) -> Result<(), Sw> {
    let failed = DF_TEMPORARY_BLOCK_STATES
        .iter()
        .position(|&state| state == flags & DF_FLAGS_BLOCKED_TEMPORARILY)
        .ok_or(Sw::MEMORY_FAILURE)?;
    match DF_TEMPORARY_BLOCK_STATES.get(failed + 1) {
        Some(&next) => set_df_flags(ctx, next, DF_FLAGS_BLOCKED_TEMPORARILY)?,
        None => set_df_flags(
            ctx,
            DF_FLAG_BLOCKED_PERMANENTLY,
            DF_FLAGS_BLOCKED_TEMPORARILY,
        )?,
    }
    ctx.storage.commit()?;
    Ok(())
}

/// CARD BLOCK `84 16`: every later command answers `6A81`, for good.
// Never inlined into the dispatch: its buffers and key schedule would sit in the frame of every
// command (the purse commands' deepest path included).
#[inline(never)]
pub(super) fn card_block<N: Nvm>(ctx: &mut Ctx<'_, N>, mac: &[u8; 4]) -> Result<(), Sw> {
    let entry = life_cycle_key(ctx)?;
    check_mac(ctx, &entry, mac)?;
    system::set_life_cycle(ctx.storage, system::LIFE_CYCLE_BLOCKED)?;
    ctx.card_blocked = true;
    Ok(())
}

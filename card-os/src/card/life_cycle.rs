//! APPLICATION BLOCK, APPLICATION UNBLOCK and CARD BLOCK (FMCOS 2.0 §8.1–8.3; LD/T 32 part 5):
//! each carries only a MAC, under the current DF's line-protection key `36` with id 00.
//!
//! Application blocks are flags in the DF's header; the card block is the life-cycle byte of the
//! system area, which the engine caches and updates once CARD BLOCK has committed.

use super::context::Ctx;
use super::secure_messaging;
use super::system;
use crate::apdu::Sw;
use crate::fs::header::{field, DF_FLAG_BLOCKED_PERMANENTLY, DF_FLAG_BLOCKED_TEMPORARILY};
use crate::nvm::Nvm;
use crate::security::keys::KeyType;

/// The line-protection key of life-cycle commands (FMCOS 2.0 §7.12: one per application).
const LIFE_CYCLE_KEY_ID: u8 = 0x00;

/// Checks a life-cycle command's MAC over its header (`6988` if wrong).
fn check_mac<N: Nvm>(ctx: &Ctx<'_, N>, mac: &[u8; 4]) -> Result<(), Sw> {
    let entry = ctx.usable_key(KeyType::LineProtection, LIFE_CYCLE_KEY_ID)?;
    let key = ctx.load_key(&entry)?;
    secure_messaging::check_mac(ctx, &key, &[], mac, Sw::SM_DATA_INCORRECT)
}

/// Sets or clears block flags of the current DF.
fn set_df_flags<N: Nvm>(ctx: &mut Ctx<'_, N>, set: u8, clear: u8) -> Result<(), Sw> {
    let df = ctx.current_df()?;
    let byte = df.header.raw()[field::DF_NAME_AND_FLAGS];
    let new = (byte | set) & !clear;
    if new != byte {
        ctx.storage
            .write_u8(df.addr + field::DF_NAME_AND_FLAGS, new)?;
    }
    Ok(())
}

/// APPLICATION BLOCK `84 1E 00 P2`: P2 00 until APPLICATION UNBLOCK, 01 for good. Blocking a
/// blocked application succeeds (FMCOS 2.0 §8.3.5); a permanent block stays permanent.
pub(super) fn application_block<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    permanently: bool,
    mac: &[u8; 4],
) -> Result<(), Sw> {
    check_mac(ctx, mac)?;
    let flag = if permanently {
        DF_FLAG_BLOCKED_PERMANENTLY
    } else {
        DF_FLAG_BLOCKED_TEMPORARILY
    };
    set_df_flags(ctx, flag, 0)
}

/// APPLICATION UNBLOCK `84 18`: lifts a temporary block (`9303` after a permanent one).
pub(super) fn application_unblock<N: Nvm>(ctx: &mut Ctx<'_, N>, mac: &[u8; 4]) -> Result<(), Sw> {
    if ctx.current_df()?.header.df_flags() & DF_FLAG_BLOCKED_PERMANENTLY != 0 {
        return Err(Sw::APP_PERMANENTLY_LOCKED);
    }
    check_mac(ctx, mac)?;
    set_df_flags(ctx, 0, DF_FLAG_BLOCKED_TEMPORARILY)
}

/// CARD BLOCK `84 16`: every later command answers `6A81`, for good.
pub(super) fn card_block<N: Nvm>(ctx: &mut Ctx<'_, N>, mac: &[u8; 4]) -> Result<(), Sw> {
    check_mac(ctx, mac)?;
    system::set_life_cycle(ctx.storage, system::LIFE_CYCLE_BLOCKED)?;
    ctx.card_blocked = true;
    Ok(())
}

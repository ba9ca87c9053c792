//! WRITE KEY `80/84 D4` (FMCOS 2.0 §7.12): add a key under the key file's add right, or replace
//! one under its change right, plain or with line protection under the DF's master key.

use super::command::{KeyTarget, WriteData};
use super::context::Ctx;
use super::secure_messaging::{self, LineKey, MAX_PROTECTED_DATA};
use super::Response;
use crate::apdu::Sw;
use crate::nvm::Nvm;
use crate::security::keys::{self, KeyEntry, KeyRecord, KeyType};

/// The DF's master key: the external-authentication key with id 00. It protects every `84 D4` in
/// its DF (FMCOS 2.0 §7.12 example 3 encrypts and MACs the new `36` key under the old `39 00`).
const MASTER_KEY_ID: u8 = 0x00;

/// WRITE KEY.
// Never inlined into the dispatch: its frame would sit under every command.
#[inline(never)]
pub(super) fn write_key<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    target: KeyTarget,
    key_id: u8,
    write: WriteData<'_>,
    response: &mut Response<'_>,
) -> Result<(), Sw> {
    let key_file = ctx.key_file()?;
    // A decrypted record holds a key: it goes to the (empty) response buffer, wiped whatever the
    // outcome.
    let result = store(ctx, &key_file, target, key_id, write, response.scratch()?);
    response.wipe();
    result
}

/// Adds or replaces the key once its record is plain (`buf` holds a decrypted one).
fn store<N: Nvm>(
    ctx: &mut Ctx<'_, N>,
    key_file: &crate::fs::FileRef,
    target: KeyTarget,
    key_id: u8,
    write: WriteData<'_>,
    buf: &mut [u8; MAX_PROTECTED_DATA],
) -> Result<(), Sw> {
    match target {
        KeyTarget::Add => {
            ctx.require(key_file.header.add_right())?;
            // A protected add is encrypted when the master key itself must be updated encrypted.
            let data = match write.mac {
                None => write.data,
                Some(mac) => {
                    let master = ctx.key(KeyType::ExternalAuth, MASTER_KEY_ID)?;
                    let encrypted = master.update_needs_encryption();
                    unwrap(ctx, &master, write.data, &mac, encrypted, buf)?
                }
            };
            let record = KeyRecord::parse(key_id, data)?;
            let key_type = record.key_type().ok_or(Sw::WRONG_DATA)?;
            if keys::find(ctx.storage, key_file, key_type, key_id)?.is_some() {
                return Err(Sw::WRONG_P1_P2);
            }
            keys::add(ctx.storage, key_file, &record)
        }
        KeyTarget::Update(key_type) => {
            let entry = ctx.key(key_type, key_id)?;
            ctx.require(entry.change_right())?;
            // The key's own protection bits say how it must be updated (FMCOS 2.0 §7.12: once
            // set, a plain update is refused).
            let data = match write.mac {
                None if entry.update_needs_mac() => return Err(Sw::SM_MAC_MISSING),
                None => write.data,
                Some(mac) => {
                    let master = if key_type == KeyType::ExternalAuth && key_id == MASTER_KEY_ID {
                        entry
                    } else {
                        ctx.key(KeyType::ExternalAuth, MASTER_KEY_ID)?
                    };
                    let encrypted = entry.update_needs_encryption();
                    unwrap(ctx, &master, write.data, &mac, encrypted, buf)?
                }
            };
            let record = KeyRecord::parse(key_id, data)?;
            keys::replace(ctx.storage, &entry, &record)
        }
    }
}

/// The plain record of a protected WRITE KEY: a wrong MAC or cryptogram is `9302` (FMCOS 2.0
/// §7.12.5).
fn unwrap<'a, N: Nvm>(
    ctx: &Ctx<'_, N>,
    master: &KeyEntry,
    data: &'a [u8],
    mac: &[u8; 4],
    encrypted: bool,
    buf: &'a mut [u8; MAX_PROTECTED_DATA],
) -> Result<&'a [u8], Sw> {
    let key = LineKey::fixed(ctx.load_key(master)?);
    secure_messaging::unwrap(ctx, &key, data, mac, encrypted, buf, Sw::MAC_INVALID)
}

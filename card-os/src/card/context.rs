//! [`Ctx`]: what a command handler works with, and the checks every handler shares: access
//! rights, the current DF and its key file, the security-state registers, the application block
//! flags, and the one-time challenge.

use super::Volatile;
use crate::apdu::Sw;
use crate::crypto::{Key, Rng};
use crate::fs::header::{DF_FLAGS_BLOCKED_TEMPORARILY, DF_FLAG_BLOCKED_PERMANENTLY};
use crate::fs::{self, DfPath, FileRef};
use crate::nvm::{Nvm, Storage};
use crate::purse::Session;
use crate::security::keys::{self, KeyEntry, KeyType};
use crate::security::{AccessRight, Challenge};

/// What a command handler works with.
pub(super) struct Ctx<'a, N: Nvm> {
    pub storage: &'a mut Storage<N>,
    pub ram: &'a mut Volatile,
    pub rng: &'a mut dyn Rng,
    /// Ne of the command (None: no Le field).
    pub ne: Option<usize>,
    /// `CLA INS P1 P2` of the command (line-protection MACs cover them).
    pub header: [u8; 4],
    /// Nc: the length of the whole data field, MAC included.
    pub nc: usize,
    /// The challenge of the command just before this one, if that was GET CHALLENGE (FMCOS 2.0
    /// §7.2: valid for the next command only; the engine took it out of the volatile state).
    pub challenge: Option<Challenge>,
    /// Set by CARD BLOCK: once the command commits, the engine's cached life cycle follows.
    pub card_blocked: bool,
    /// The purse transaction the previous command opened (taken out of the volatile state: a
    /// handler that continues it puts it back into `ram.purse`).
    pub purse: Option<Session>,
    /// Set by UPDATE CAPP DATA CACHE: the engine leaves the command's writes pending for the DEBIT
    /// that follows instead of committing them.
    pub keep_open: bool,
    /// Set by a line-protected read: its answer is the data and a MAC (maybe encrypted), longer
    /// than the Le that counted the data, so the engine does not answer `6Cxx` for it.
    pub sealed_read: bool,
}

impl<N: Nvm> Ctx<'_, N> {
    pub(super) fn current_df(&self) -> Result<FileRef, Sw> {
        fs::file_at(self.storage, self.ram.path.current())
    }

    /// Whether everything is allowed in the current DF: it has no key file, or it had none when
    /// it was entered (FMCOS 2.0 §4.3: rights apply after the DF is left and entered again).
    pub(super) fn free_access(&self) -> Result<bool, Sw> {
        if self.ram.entered_without_keys {
            return Ok(true);
        }
        let df = self.current_df()?;
        Ok(!fs::create::has_key_file(self.storage, &df)?)
    }

    /// Checks an access right against the security state (`6982` if not met).
    pub(super) fn require(&self, right: u8) -> Result<(), Sw> {
        if self.free_access()? || AccessRight(right).allows(&self.ram.security) {
            Ok(())
        } else {
            Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    /// Makes `path`'s last DF the current DF: clears the current EF and sets the DF security
    /// register (FMCOS 2.0 §5.1, §7.4: 0 in a DF; entering the MF makes it equal to the MF's).
    pub(super) fn enter(&mut self, path: DfPath) -> Result<(), Sw> {
        let df = fs::file_at(self.storage, path.current())?;
        self.ram.entered_without_keys = !fs::create::has_key_file(self.storage, &df)?;
        self.ram.path = path;
        self.ram.current_ef = None;
        self.ram.record_pointer = None;
        self.ram.security.df = if path.at_mf() {
            self.ram.security.mf
        } else {
            0
        };
        Ok(())
    }

    /// Raises the security state after a successful VERIFY or EXTERNAL AUTHENTICATE to the key's
    /// follow-on state: at the MF both registers, elsewhere the current DF's (FMCOS 2.0 §5.3).
    pub(super) fn raise_security(&mut self, state: u8) {
        self.ram.security.df = state;
        if self.ram.path.at_mf() {
            self.ram.security.mf = state;
        }
    }

    /// The status word for commands in a blocked application, if the current DF or one above it
    /// is blocked: `9303` permanently, `6A81` temporarily (FMCOS 2.0 §8.3, LD/T 32 part 5).
    pub(super) fn application_block(&self) -> Result<Option<Sw>, Sw> {
        let mut flags = 0;
        for &addr in self.ram.path.levels() {
            flags |= fs::file_at(self.storage, usize::from(addr))?
                .header
                .df_flags();
        }
        Ok(if flags & DF_FLAG_BLOCKED_PERMANENTLY != 0 {
            Some(Sw::APP_PERMANENTLY_LOCKED)
        } else if flags & DF_FLAGS_BLOCKED_TEMPORARILY != 0 {
            Some(Sw::FUNCTION_NOT_SUPPORTED)
        } else {
            None
        })
    }

    /// The current DF's key file (`6A82` when it has none, FMCOS 2.0 §7.1.5).
    pub(super) fn key_file(&self) -> Result<FileRef, Sw> {
        let df = self.current_df()?;
        fs::find_key_file(self.storage, &df)?.ok_or(Sw::FILE_NOT_FOUND)
    }

    /// The key of `key_type` with `id` in the current DF (`6A82` no key file, `6A88` no such key).
    pub(super) fn key(&self, key_type: KeyType, id: u8) -> Result<KeyEntry, Sw> {
        let key_file = self.key_file()?;
        keys::find(self.storage, &key_file, key_type, id)?.ok_or(Sw::REFERENCED_DATA_NOT_FOUND)
    }

    /// A key the command uses: found, its use right met (`6982`), not blocked (`6983`).
    pub(super) fn usable_key(&self, key_type: KeyType, id: u8) -> Result<KeyEntry, Sw> {
        let entry = self.key(key_type, id)?;
        self.require(entry.use_right())?;
        if entry.counter().is_some_and(|c| c.blocked()) {
            return Err(Sw::AUTH_METHOD_BLOCKED);
        }
        Ok(entry)
    }

    /// The key value of `entry` for the crypto module.
    pub(super) fn load_key(&self, entry: &KeyEntry) -> Result<Key, Sw> {
        keys::load_key(self.storage, entry)
    }

    /// Spends one try of a key or PIN with an error counter and commits it before the secret is
    /// compared (FMCOS 2.0 §7.10; the pre-decrement of Java Card's `OwnerPINxWithPredecrement`):
    /// a power cut after the comparison can never give the try back. Returns the counter as it
    /// now stands.
    pub(super) fn spend_try(&mut self, entry: &KeyEntry) -> Result<keys::ErrorCounter, Sw> {
        let counter = entry.counter().ok_or(Sw::REFERENCED_DATA_NOT_FOUND)?;
        if counter.blocked() {
            return Err(Sw::AUTH_METHOD_BLOCKED);
        }
        let spent = counter.spent();
        keys::set_counter(self.storage, entry, spent)?;
        self.storage.commit()?;
        Ok(spent)
    }

    /// After a failed comparison: `63Cx` with the tries left.
    pub(super) fn failed_try(spent: keys::ErrorCounter) -> Sw {
        Sw::tries_left(spent.left())
    }

    /// After a successful comparison: queues all tries back, in the command's transaction.
    pub(super) fn restore_tries(
        &mut self,
        entry: &KeyEntry,
        spent: keys::ErrorCounter,
    ) -> Result<(), Sw> {
        keys::set_counter(self.storage, entry, spent.restored())
    }

    /// The challenge this command may use (`6984` when the previous command was no GET
    /// CHALLENGE).
    pub(super) fn challenge(&self) -> Result<Challenge, Sw> {
        self.challenge.ok_or(Sw::REFERENCE_DATA_INVALID)
    }

    /// `CLA INS P1 P2 Lc` as line-protection MACs cover it: Lc counts the MAC bytes (FMCOS 2.0
    /// §11.3). A protected command's data field fits a short Lc (`6700` otherwise).
    pub(super) fn mac_header(&self) -> Result<[u8; 5], Sw> {
        let lc = u8::try_from(self.nc).map_err(|_| Sw::WRONG_LENGTH)?;
        let [cla, ins, p1, p2] = self.header;
        Ok([cla, ins, p1, p2, lc])
    }
}

//! Key records in a key file (FMCOS 2.0 §4.3, §7.12).
//!
//! A key file's body holds its key records one after the other, in the order WRITE KEY added them;
//! the key file header counts the bytes they use ([`field::KEY_FILE_USED`]). Every record costs the
//! length of its value plus 8 bytes, as FMCOS 2.0 §4.3 accounts for it, so key files sized for
//! FM1208 personalization scripts hold the same keys here.
//!
//! | byte | content |
//! |---|---|
//! | 0 | type byte as written, with its protection bits ([`PROTECT_MAC`], [`PROTECT_ENCRYPTED`]) |
//! | 1 | key id (P2 of WRITE KEY) |
//! | 2 | use right |
//! | 3 | change right |
//! | 4 | version (keys of [`KeyType::has_version`]), follow-on state (PIN, external auth), or as written |
//! | 5 | algorithm id as written (keys with a version), or the error counter (the others) |
//! | 6 | the algorithm id the card computes with (`FF` for a PIN) |
//! | 7 | length `n` of the value |
//! | 8.. | the value: key (8 or 16 bytes) or PIN (2 to 8 bytes) |
//!
//! Nothing here ever copies a key value into a response: values leave the key file only as a
//! [`Key`] for the crypto module, or as an FF-padded PIN for a constant-time comparison.

use crate::apdu::Sw;
use crate::crypto::{Algorithm, CryptoError, Key};
use crate::fs::header::field;
use crate::fs::FileRef;
use crate::nvm::{Nvm, Storage};

/// Bytes every key record takes besides its value (FMCOS 2.0 §4.3: "key length + 8").
pub const RECORD_OVERHEAD: usize = 8;
/// Longest key value (3DES, SM4, AES-128).
pub const MAX_KEY_LEN: usize = 16;
/// Shortest and longest PIN (FMCOS 2.0 §7.12 case 3: 2 to 8 bytes).
pub const PIN_LEN: core::ops::RangeInclusive<usize> = 2..=8;

/// Type-byte bit: updating this key needs a line-protection MAC. The same bit as for files
/// (FMCOS 2.0 §7.13 `A8`, §11.2); see apdu-specs/security.md for why.
pub const PROTECT_MAC: u8 = 0x80;
/// Type-byte bit: updating this key needs its new record encrypted (and MAC'd).
pub const PROTECT_ENCRYPTED: u8 = 0x40;
const TYPE_MASK: u8 = 0x3F;
/// Byte 4 of a `36`/`37` key record that makes it an LD/T 32 maintenance key (ours; FMCOS writes
/// `FF` there): see [`KeyEntry::uses_session_keys`].
pub const SESSION_KEY_MARK: u8 = 0x01;
/// The algorithm byte of a PIN record (a PIN is not a key).
const NO_ALGORITHM: u8 = 0xFF;

/// What a key is for (FMCOS 2.0 §7.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// `30`: INTERNAL AUTHENTICATE P1=00 encrypts with it.
    DesEncrypt,
    /// `31`: INTERNAL AUTHENTICATE P1=01 decrypts with it.
    DesDecrypt,
    /// `32`: INTERNAL AUTHENTICATE P1=02 computes a MAC with it.
    DesMac,
    /// `34`: internal key: session keys (LD/T 32 INTERNAL AUTHENTICATE), the purse's TAC key.
    Internal,
    /// `35`: a DES key FMCOS lists with the purse keys; stored, used by no command yet.
    Des35,
    /// `36`: file line protection (secure messaging on writes and life-cycle commands).
    LineProtection,
    /// `37`: PIN UNBLOCK.
    PinUnblock,
    /// `38`: RELOAD PIN.
    PinReload,
    /// `39`: EXTERNAL AUTHENTICATE; id 00 is the DF's master key, which also protects WRITE KEY.
    ExternalAuth,
    /// `3A`: a PIN.
    Pin,
    /// `3C`: purse overdraft-limit update.
    Overdraft,
    /// `3D`: purse unload.
    Unload,
    /// `3E`: purse purchase.
    Purchase,
    /// `3F`: purse load.
    Load,
}

impl KeyType {
    /// The type a type byte names, ignoring its protection bits.
    pub fn from_type_byte(byte: u8) -> Option<KeyType> {
        Some(match byte & TYPE_MASK {
            0x30 => KeyType::DesEncrypt,
            0x31 => KeyType::DesDecrypt,
            0x32 => KeyType::DesMac,
            0x34 => KeyType::Internal,
            0x35 => KeyType::Des35,
            0x36 => KeyType::LineProtection,
            0x37 => KeyType::PinUnblock,
            0x38 => KeyType::PinReload,
            0x39 => KeyType::ExternalAuth,
            0x3A => KeyType::Pin,
            0x3C => KeyType::Overdraft,
            0x3D => KeyType::Unload,
            0x3E => KeyType::Purchase,
            0x3F => KeyType::Load,
            _ => return None,
        })
    }

    /// The type byte without protection bits.
    pub const fn code(self) -> u8 {
        match self {
            KeyType::DesEncrypt => 0x30,
            KeyType::DesDecrypt => 0x31,
            KeyType::DesMac => 0x32,
            KeyType::Internal => 0x34,
            KeyType::Des35 => 0x35,
            KeyType::LineProtection => 0x36,
            KeyType::PinUnblock => 0x37,
            KeyType::PinReload => 0x38,
            KeyType::ExternalAuth => 0x39,
            KeyType::Pin => 0x3A,
            KeyType::Overdraft => 0x3C,
            KeyType::Unload => 0x3D,
            KeyType::Purchase => 0x3E,
            KeyType::Load => 0x3F,
        }
    }

    /// FMCOS 2.0 §7.12 case 1: `type use change version algId key`; the others carry an error
    /// counter instead of version and algorithm.
    pub const fn has_version(self) -> bool {
        matches!(
            self,
            KeyType::DesEncrypt
                | KeyType::DesDecrypt
                | KeyType::DesMac
                | KeyType::Internal
                | KeyType::Des35
                | KeyType::Overdraft
                | KeyType::Unload
                | KeyType::Purchase
                | KeyType::Load
        )
    }
}

/// An error counter byte (FMCOS 2.0 §7.12): high nibble the most consecutive failures allowed,
/// low nibble the tries left. 0 tries left: the key or PIN is blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCounter(pub u8);

impl ErrorCounter {
    /// Tries left.
    pub const fn left(self) -> u8 {
        self.0 & 0x0F
    }

    /// Most consecutive failures allowed.
    pub const fn limit(self) -> u8 {
        self.0 >> 4
    }

    /// Whether no try is left.
    pub const fn blocked(self) -> bool {
        self.left() == 0
    }

    /// One try fewer (never below zero).
    pub const fn spent(self) -> ErrorCounter {
        ErrorCounter((self.0 & 0xF0) | self.left().saturating_sub(1))
    }

    /// All tries back (after a success, an unblock or a reload).
    pub const fn restored(self) -> ErrorCounter {
        ErrorCounter((self.0 & 0xF0) | self.limit())
    }

    /// A counter as WRITE KEY may write it: tries left within the limit.
    const fn is_valid(self) -> bool {
        self.left() <= self.limit()
    }
}

/// A key record's 8-byte head as stored (see the module docs) and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// NVM address of the record.
    pub addr: usize,
    head: [u8; RECORD_OVERHEAD],
}

const AT_TYPE: usize = 0;
const AT_ID: usize = 1;
const AT_USE: usize = 2;
const AT_CHANGE: usize = 3;
const AT_P4: usize = 4;
const AT_P5: usize = 5;
const AT_ALGORITHM: usize = 6;
const AT_LEN: usize = 7;

impl KeyEntry {
    fn byte(&self, at: usize) -> u8 {
        self.head.get(at).copied().unwrap_or(0)
    }

    /// The stored type byte, with its protection bits.
    pub fn type_byte(&self) -> u8 {
        self.byte(AT_TYPE)
    }

    /// What the key is for (`None` for a corrupt record).
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::from_type_byte(self.type_byte())
    }

    /// The key id.
    pub fn id(&self) -> u8 {
        self.byte(AT_ID)
    }

    /// The right needed to use the key (verify, authenticate, compute with it).
    pub fn use_right(&self) -> u8 {
        self.byte(AT_USE)
    }

    /// The right needed to replace the key with WRITE KEY.
    pub fn change_right(&self) -> u8 {
        self.byte(AT_CHANGE)
    }

    /// The key version (keys with a version; purse INIT responses echo it).
    pub fn version(&self) -> u8 {
        self.byte(AT_P4)
    }

    /// The security state a successful VERIFY or EXTERNAL AUTHENTICATE sets (low nibble).
    pub fn follow_on_state(&self) -> u8 {
        self.byte(AT_P4) & 0x0F
    }

    /// The algorithm id as written (keys with a version; purse INIT responses echo it).
    pub fn algorithm_byte(&self) -> u8 {
        self.byte(AT_P5)
    }

    /// The error counter of keys without a version (PIN, 36–39).
    pub fn counter(&self) -> Option<ErrorCounter> {
        match self.key_type() {
            Some(t) if !t.has_version() => Some(ErrorCounter(self.byte(AT_P5))),
            _ => None,
        }
    }

    /// An LD/T 32 maintenance key (STK): a line-protection (`36`) or PIN-unblock (`37`) key whose
    /// byte 4 — `FF` in FMCOS 2.0 §7.12's layout — is [`SESSION_KEY_MARK`]. Its commands are
    /// MAC'd (and encrypted) under the session key of the card's challenge, IV zero (LD/T 32 part 4
    /// §8.2–8.4, part 7 §13), instead of FMCOS's static key with the challenge as IV.
    pub fn uses_session_keys(&self) -> bool {
        matches!(
            self.key_type(),
            Some(KeyType::LineProtection | KeyType::PinUnblock)
        ) && self.byte(AT_P4) == SESSION_KEY_MARK
    }

    /// Updating the key needs line protection (either protection bit).
    pub fn update_needs_mac(&self) -> bool {
        self.type_byte() & (PROTECT_MAC | PROTECT_ENCRYPTED) != 0
    }

    /// Updating the key needs the new record encrypted.
    pub fn update_needs_encryption(&self) -> bool {
        self.type_byte() & PROTECT_ENCRYPTED != 0
    }

    /// Length of the value.
    pub fn value_len(&self) -> usize {
        usize::from(self.byte(AT_LEN))
    }

    /// Bytes the whole record takes.
    pub fn record_len(&self) -> usize {
        RECORD_OVERHEAD + self.value_len()
    }

    fn value_addr(&self) -> usize {
        self.addr + RECORD_OVERHEAD
    }
}

/// The records of a key file, in the order they were added.
fn entries<'s, N: Nvm>(
    storage: &'s Storage<N>,
    key_file: &FileRef,
) -> impl Iterator<Item = Result<KeyEntry, Sw>> + 's {
    let end = key_file.body() + key_file.header.used();
    let mut next = key_file.body();
    let mut failed = false;
    core::iter::from_fn(move || {
        if failed || next >= end {
            return None;
        }
        let entry = storage
            .read_array::<RECORD_OVERHEAD>(next)
            .map_err(Sw::from)
            .and_then(|head| {
                let entry = KeyEntry { addr: next, head };
                match entry.key_type() {
                    Some(_) if entry.value_len() <= MAX_KEY_LEN => Ok(entry),
                    _ => Err(Sw::MEMORY_FAILURE),
                }
            });
        match &entry {
            Ok(e) => next += e.record_len(),
            Err(_) => failed = true,
        }
        Some(entry)
    })
}

/// The key of `key_type` with `id` in `key_file`.
pub fn find<N: Nvm>(
    storage: &Storage<N>,
    key_file: &FileRef,
    key_type: KeyType,
    id: u8,
) -> Result<Option<KeyEntry>, Sw> {
    for entry in entries(storage, key_file) {
        let entry = entry?;
        if entry.key_type() == Some(key_type) && entry.id() == id {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// The key as the crypto module takes it. A PIN is not a key (`6A88`); a record whose algorithm
/// and length disagree is a corrupt memory (`6581`).
pub fn load_key<N: Nvm>(storage: &Storage<N>, entry: &KeyEntry) -> Result<Key, Sw> {
    if entry.key_type() == Some(KeyType::Pin) {
        return Err(Sw::REFERENCED_DATA_NOT_FOUND);
    }
    let mut value = [0u8; MAX_KEY_LEN];
    let value = value
        .get_mut(..entry.value_len())
        .ok_or(Sw::MEMORY_FAILURE)?;
    storage.read(entry.value_addr(), value)?;
    let key = Key::from_id(entry.byte(AT_ALGORITHM), value).map_err(|_| Sw::MEMORY_FAILURE);
    value.fill(0);
    key
}

/// A PIN value right-padded with `FF` to 8 bytes: FMCOS 2.0 §7.10 lets a holder leave out trailing
/// `FF` bytes, so two PINs are equal when their padded forms are.
pub type PaddedPin = [u8; 8];

/// Pads a presented PIN (1 to 8 bytes; longer never matches a stored PIN and gives `None`).
pub fn pad_pin(pin: &[u8]) -> Option<PaddedPin> {
    let mut padded = [0xFF; 8];
    padded.get_mut(..pin.len())?.copy_from_slice(pin);
    Some(padded)
}

/// The stored PIN, padded.
pub fn load_pin<N: Nvm>(storage: &Storage<N>, entry: &KeyEntry) -> Result<PaddedPin, Sw> {
    if entry.key_type() != Some(KeyType::Pin) {
        return Err(Sw::REFERENCED_DATA_NOT_FOUND);
    }
    let mut padded = [0xFF; 8];
    let value = padded
        .get_mut(..entry.value_len())
        .ok_or(Sw::MEMORY_FAILURE)?;
    storage.read(entry.value_addr(), value)?;
    Ok(padded)
}

/// Queues a new error counter for `entry` (in the command's transaction).
pub fn set_counter<N: Nvm>(
    storage: &mut Storage<N>,
    entry: &KeyEntry,
    counter: ErrorCounter,
) -> Result<(), Sw> {
    storage.write_u8(entry.addr + AT_P5, counter.0)?;
    Ok(())
}

/// The most key-file bytes after a PIN that a longer PIN may move: with the PIN, its length
/// byte, the byte count and the tries they fit the command's transaction buffer (600 bytes).
pub const MAX_PIN_TAIL: usize = 448;

/// Bytes moved per write when a PIN grows (a stack buffer).
const PIN_SHIFT_CHUNK: usize = 32;

/// Whether `entry`'s PIN can become `len` bytes long: 2 to 8 bytes; a longer PIN than the record
/// holds moves the records after it (FMCOS 2.0 §8.6.1: "新密钥的长度可以与原口令密钥的长度不同"),
/// so the key file needs the room (`6A84`) and the bytes to move must fit one transaction
/// ([`MAX_PIN_TAIL`], `6A84`). Checked before a command spends a try.
pub fn pin_fits(key_file: &FileRef, entry: &KeyEntry, len: usize) -> Result<(), Sw> {
    if !PIN_LEN.contains(&len) {
        return Err(Sw::WRONG_DATA);
    }
    let Some(growth) = len.checked_sub(entry.value_len()).filter(|&g| g > 0) else {
        return Ok(());
    };
    let used = key_file.header.used();
    let tail = (key_file.body() + used).saturating_sub(entry.value_addr() + entry.value_len());
    if used + growth > key_file.header.size() || tail > MAX_PIN_TAIL {
        return Err(Sw::NOT_ENOUGH_SPACE);
    }
    Ok(())
}

/// Queues `pin` as `entry`'s new PIN. A shorter PIN than the record holds is padded with `FF`; a
/// longer one grows the record: the records after it move up by the difference (copied from the
/// end down, so no byte is overwritten before it is read), and the record's length byte and the
/// key file's byte count follow, all in the command's one transaction.
pub fn set_pin<N: Nvm>(
    storage: &mut Storage<N>,
    key_file: &FileRef,
    entry: &KeyEntry,
    pin: &[u8],
) -> Result<(), Sw> {
    pin_fits(key_file, entry, pin.len())?;
    let old_len = entry.value_len();
    if pin.len() > old_len {
        let growth = pin.len() - old_len;
        let tail_start = entry.value_addr() + old_len;
        let end = key_file.body() + key_file.header.used();
        let mut chunk = [0u8; PIN_SHIFT_CHUNK];
        let mut dst_end = end + growth;
        while dst_end > tail_start + growth {
            let n = (dst_end - (tail_start + growth)).min(PIN_SHIFT_CHUNK);
            let buf = chunk.get_mut(..n).ok_or(Sw::MEMORY_FAILURE)?;
            storage.read(dst_end - n - growth, buf)?;
            storage.write(dst_end - n, buf)?;
            dst_end -= n;
        }
        let new_used =
            u16::try_from(key_file.header.used() + growth).map_err(|_| Sw::NOT_ENOUGH_SPACE)?;
        storage.write_u16(key_file.addr + field::KEY_FILE_USED, new_used)?;
        let len_byte = u8::try_from(pin.len()).map_err(|_| Sw::WRONG_DATA)?;
        storage.write_u8(entry.addr + AT_LEN, len_byte)?;
        storage.write(entry.value_addr(), pin)?;
        return Ok(());
    }
    let mut padded = [0xFF; 8];
    let room = padded.get_mut(..old_len).ok_or(Sw::MEMORY_FAILURE)?;
    room.get_mut(..pin.len())
        .ok_or(Sw::WRONG_DATA)?
        .copy_from_slice(pin);
    storage.write(entry.value_addr(), room)?;
    Ok(())
}

/// A key record as WRITE KEY carries it (FMCOS 2.0 §7.12), checked and ready to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRecord<'a> {
    head: [u8; RECORD_OVERHEAD],
    value: &'a [u8],
}

impl<'a> KeyRecord<'a> {
    /// Parses WRITE KEY data for key id `id`:
    ///
    /// | type | data |
    /// |---|---|
    /// | 30 31 32 34 35 3C 3D 3E 3F | `type use change version algId key(8/16)` |
    /// | 39 | `type use change followOn errCtr key(8/16) [algId]` |
    /// | 36 37 38 | `type use change FF errCtr key(8/16) [algId]` |
    /// | 3A | `type use change followOn errCtr PIN(2..8)` |
    ///
    /// The trailing algorithm id after a 16-byte key is our extension (FMCOS has only the DES
    /// family there): `01` (3DES), `03` (SM4), `04` (AES-128).
    ///
    /// Errors: `6A80` unknown type, unknown algorithm (`02` SSF33 included), an error counter
    /// with more tries left than its limit; `6700` a value length that does not fit.
    pub fn parse(id: u8, data: &'a [u8]) -> Result<KeyRecord<'a>, Sw> {
        let (head5, rest) = match data {
            [t, u, c, p4, p5, rest @ ..] => ([*t, *u, *c, *p4, *p5], rest),
            _ => return Err(Sw::WRONG_LENGTH),
        };
        let [type_byte, use_right, change_right, p4, p5] = head5;
        let key_type = KeyType::from_type_byte(type_byte).ok_or(Sw::WRONG_DATA)?;
        let (value, algorithm) = if key_type == KeyType::Pin {
            if !PIN_LEN.contains(&rest.len()) {
                return Err(Sw::WRONG_LENGTH);
            }
            (rest, NO_ALGORITHM)
        } else if key_type.has_version() {
            (rest, computing_algorithm(p5))
        } else {
            match rest {
                [key @ .., algorithm] if key.len() == MAX_KEY_LEN => (key, *algorithm),
                key => (key, Algorithm::ID_DES_FAMILY),
            }
        };
        if key_type != KeyType::Pin {
            Key::from_id(algorithm, value).map_err(|e| match e {
                CryptoError::InvalidKeyLength => Sw::WRONG_LENGTH,
                _ => Sw::WRONG_DATA,
            })?;
        }
        if !key_type.has_version() && !ErrorCounter(p5).is_valid() {
            return Err(Sw::WRONG_DATA);
        }
        let len = u8::try_from(value.len()).map_err(|_| Sw::WRONG_LENGTH)?;
        Ok(KeyRecord {
            head: [
                type_byte,
                id,
                use_right,
                change_right,
                p4,
                p5,
                algorithm,
                len,
            ],
            value,
        })
    }

    /// What the key is for.
    pub fn key_type(&self) -> Option<KeyType> {
        KeyType::from_type_byte(self.head[AT_TYPE])
    }

    /// Bytes the record takes in the key file.
    pub fn record_len(&self) -> usize {
        RECORD_OVERHEAD + self.value.len()
    }
}

/// The algorithm id a versioned key computes with, from the byte WRITE KEY wrote. On FMCOS that
/// byte is only recorded (the purse echoes it): the key length chooses DES or 3DES (FMCOS 2.0 §5.4),
/// and the manual's own keys carry `98` (FMCOS 2.0 §7.3). So the ids this card knows keep their
/// meaning (`02` SSF33 stays refused: it names a cipher the card does not have) and any other byte
/// means the DES family.
fn computing_algorithm(written: u8) -> u8 {
    match written {
        Algorithm::ID_DES_FAMILY_00
        | Algorithm::ID_DES_FAMILY
        | Algorithm::ID_SSF33
        | Algorithm::ID_SM4
        | Algorithm::ID_AES128 => written,
        _ => Algorithm::ID_DES_FAMILY,
    }
}

/// Appends `record` to `key_file` (WRITE KEY P1=01). `6A84` when the key file is full.
pub fn add<N: Nvm>(
    storage: &mut Storage<N>,
    key_file: &FileRef,
    record: &KeyRecord<'_>,
) -> Result<(), Sw> {
    let used = key_file.header.used();
    let new_used = used
        .checked_add(record.record_len())
        .filter(|&n| n <= key_file.header.size())
        .ok_or(Sw::NOT_ENOUGH_SPACE)?;
    let addr = key_file.body() + used;
    storage.write(addr, &record.head)?;
    storage.write(addr + RECORD_OVERHEAD, record.value)?;
    let new_used = u16::try_from(new_used).map_err(|_| Sw::NOT_ENOUGH_SPACE)?;
    storage.write_u16(key_file.addr + field::KEY_FILE_USED, new_used)?;
    Ok(())
}

/// Replaces `entry` with `record` (WRITE KEY P1=type). FMCOS 2.0 §7.12: the new record has the
/// same type and length as the old one (`6700` otherwise). The id stays.
pub fn replace<N: Nvm>(
    storage: &mut Storage<N>,
    entry: &KeyEntry,
    record: &KeyRecord<'_>,
) -> Result<(), Sw> {
    if record.key_type() != entry.key_type() {
        return Err(Sw::WRONG_DATA);
    }
    if record.value.len() != entry.value_len() {
        return Err(Sw::WRONG_LENGTH);
    }
    storage.write(entry.addr, &record.head)?;
    storage.write(entry.value_addr(), record.value)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn fmcos_manual_records_parse() {
        // FMCOS 2.0 §7.12 example 1: external-auth key 39 and line-protection key 36.
        let data = hex("39 F0 FA AA 88 39FF39FF39FF39FF39FF39FF39013901");
        let r = KeyRecord::parse(0, &data).unwrap();
        assert_eq!(r.key_type(), Some(KeyType::ExternalAuth));
        assert_eq!(r.record_len(), 24);
        assert_eq!(r.head[AT_ALGORITHM], Algorithm::ID_DES_FAMILY);
        let data = hex("36 F0 FA FF 33 36FF36FF36FF3601");
        assert_eq!(KeyRecord::parse(0, &data).unwrap().record_len(), 16);
        // A PIN "12345" padded to 8 bytes (a real script, card-specs §2.4).
        let data = hex("3A F0 EF 01 33 12345FFFFFFFFFFF");
        let r = KeyRecord::parse(0, &data).unwrap();
        assert_eq!(r.head[AT_ALGORITHM], NO_ALGORITHM);
        // Case 1: internal key, version 00, algorithm 01.
        let data = hex("34 F0 02 00 01 00112233445566778899AABBCCDDEEFF");
        assert_eq!(KeyRecord::parse(0, &data).unwrap().head[AT_P5], 0x01);
    }

    #[test]
    fn algorithms_and_lengths_are_checked() {
        // SM4 external-auth key via the trailing algorithm byte; SSF33 and unknown ids refused.
        let sm4 = hex("39 F0 F0 0A 33 00112233445566778899AABBCCDDEEFF 03");
        assert_eq!(KeyRecord::parse(0x0A, &sm4).unwrap().head[AT_ALGORITHM], 3);
        let ssf33 = hex("39 F0 F0 0A 33 00112233445566778899AABBCCDDEEFF 02");
        assert_eq!(KeyRecord::parse(0, &ssf33), Err(Sw::WRONG_DATA));
        // FMCOS 2.0 §7.3: the manual's algorithm byte 98 is recorded; the key computes as DES.
        let case1 = hex("30 F0 F0 05 98 1122334455667788");
        let r = KeyRecord::parse(0, &case1).unwrap();
        assert_eq!(
            (r.head[AT_P5], r.head[AT_ALGORITHM]),
            (0x98, Algorithm::ID_DES_FAMILY)
        );
        let case1_16 = hex("3E F0 F0 05 98 00112233445566778899AABBCCDDEEFF");
        let r = KeyRecord::parse(0, &case1_16).unwrap();
        assert_eq!(
            (r.head[AT_P5], r.head[AT_ALGORITHM]),
            (0x98, Algorithm::ID_DES_FAMILY)
        );
        let ssf33_case1 = hex("30 F0 F0 05 02 1122334455667788");
        assert_eq!(KeyRecord::parse(0, &ssf33_case1), Err(Sw::WRONG_DATA));
        let aes8 = hex("30 F0 F0 05 04 1122334455667788");
        assert_eq!(KeyRecord::parse(0, &aes8), Err(Sw::WRONG_LENGTH));
        let short_pin = hex("3A F0 EF 01 33 12");
        assert_eq!(KeyRecord::parse(0, &short_pin), Err(Sw::WRONG_LENGTH));
        let bad_counter = hex("39 F0 F0 01 35 1122334455667788");
        assert_eq!(KeyRecord::parse(0, &bad_counter), Err(Sw::WRONG_DATA));
        assert_eq!(
            KeyRecord::parse(0, &hex("33 F0 F0 01 33 1122334455667788")),
            Err(Sw::WRONG_DATA)
        );
        assert_eq!(
            KeyRecord::parse(0, &hex("39 F0 F0 01")),
            Err(Sw::WRONG_LENGTH)
        );
    }

    #[test]
    fn error_counters() {
        let c = ErrorCounter(0x33);
        assert_eq!((c.limit(), c.left()), (3, 3));
        assert_eq!(c.spent(), ErrorCounter(0x32));
        assert_eq!(c.spent().spent().spent(), ErrorCounter(0x30));
        assert!(c.spent().spent().spent().blocked());
        assert_eq!(ErrorCounter(0x30).spent(), ErrorCounter(0x30));
        assert_eq!(ErrorCounter(0x31).restored(), ErrorCounter(0x33));
    }

    #[test]
    fn pins_compare_with_trailing_ff_left_out() {
        assert_eq!(pad_pin(&[0x12, 0x34, 0x5F]), pad_pin(&hex("12345FFFFF")));
        assert_ne!(pad_pin(&[0x12, 0x34]), pad_pin(&[0x12, 0x34, 0x5F]));
        assert_eq!(pad_pin(&[0; 9]), None);
    }

    #[test]
    fn protection_bits_are_the_file_bits() {
        let entry = |t: u8| KeyEntry {
            addr: 0,
            head: [t, 0, 0xF0, 0xF0, 0, 0x33, 1, 8],
        };
        assert!(!entry(0x39).update_needs_mac());
        assert!(entry(0xB9).update_needs_mac() && !entry(0xB9).update_needs_encryption());
        assert!(entry(0x79).update_needs_mac() && entry(0x79).update_needs_encryption());
        assert!(entry(0xF9).update_needs_encryption());
        assert_eq!(entry(0xF9).key_type(), Some(KeyType::ExternalAuth));
    }
}

//! The 11-byte file header every file starts with (FMCOS 2.0 §4.2: "each file = 11-byte header +
//! body"), and the file types of CREATE FILE (FMCOS 2.0 §4.1.3, §7.13).
//!
//! Byte layout (ours; FMCOS only fixes the size):
//!
//! | bytes | DF / MF (38) | key file (3F) | binary (28) | record (2A/2C/2E) | purse (2F) |
//! |---|---|---|---|---|---|
//! | 0 | type | type | type incl. MAC/enc bits | type incl. bits | type |
//! | 1–2 | FID | FID (0000) | FID | FID | FID |
//! | 3–4 | space | space | size | nRecords, recordLen | `02 08` as created |
//! | 5 | create right | DF-SFI byte | read right | read right | use right |
//! | 6 | erase right | add right | write right | write right | TAC key id |
//! | 7 | FCI file id | used (hi) | key byte | key byte | `FF` as created |
//! | 8 | name length ‖ block flags | used (lo) | – | records present | log SFI |
//! | 9–10 | bytes used by children | – | – | newest slot (cyclic), – | – |

use crate::apdu::Sw;

/// Length of every file header.
pub const HEADER_LEN: usize = 11;

/// Body of a purse file: FMCOS 2.0 §4.2's 22 bytes ("电子钱包和电子存折文件主体空间=22 字节") and
/// the 2 more this card needs to keep the overdraft limit (§8.12) beside its own maximum balance
/// (NVM layout version 2, apdu-specs/memory.md).
pub const PURSE_BODY_LEN: usize = 24;

/// Longest DF name (FMCOS 2.0 §7.13: 5 to 16 bytes).
pub const MAX_DF_NAME: usize = 16;

/// Longest record (FMCOS 2.0 §4.1.3: "记录长度最大为 248 个字节").
pub const MAX_RECORD_LEN: usize = 248;

/// Type-byte bit: writes need a line-protection MAC (FMCOS 2.0 §7.13, e.g. `A8`).
pub const TYPE_BIT_MAC: u8 = 0x80;
/// Type-byte bit: written data is encrypted (FMCOS 2.0 §7.13, e.g. `68`).
pub const TYPE_BIT_ENCRYPTED: u8 = 0x40;

/// Key-byte bit 8 (FMCOS 2.0 §7.13): set, the EF is read plain; clear, reads need line protection.
pub const KEY_BYTE_PLAIN_READ: u8 = 0x80;

/// DF header flag (in the name-length byte): the application is blocked until unblocked, and no
/// APPLICATION UNBLOCK has failed since (what APPLICATION BLOCK `P2 00` sets).
pub const DF_FLAG_BLOCKED_TEMPORARILY: u8 = 0x40;
/// DF header flags (in the name-length byte), bits 6..5: any value but `00` means blocked until
/// unblocked; the value counts the APPLICATION UNBLOCKs that failed since the block
/// ([`DF_TEMPORARY_BLOCK_STATES`]).
pub const DF_FLAGS_BLOCKED_TEMPORARILY: u8 = 0x60;
/// The temporary-block flags after 0, 1 and 2 failed APPLICATION UNBLOCKs; the third failure
/// blocks the application for good (FMCOS 2.0 §8.2). `40` first, so a block written before the
/// count existed reads as "no failure yet".
pub const DF_TEMPORARY_BLOCK_STATES: [u8; 3] = [0x40, 0x60, 0x20];
/// DF header flag (in the name-length byte): the application is blocked for good.
pub const DF_FLAG_BLOCKED_PERMANENTLY: u8 = 0x80;
const DF_NAME_LEN_MASK: u8 = 0x1F;

/// What a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// MF, DDF or ADF (type `38`).
    Df,
    /// Transparent EF (type `28`).
    Binary,
    /// Linear fixed-length record EF (type `2A`).
    FixedRecord,
    /// Linear variable-length TLV record EF (type `2C`).
    VariableRecord,
    /// Cyclic fixed-length record EF, record 1 = newest (type `2E`).
    CyclicRecord,
    /// PBOC ED/EP purse (type `2F`).
    Purse,
    /// Key file (type `3F`), never readable.
    KeyFile,
}

impl FileKind {
    /// The kind of a CREATE FILE type byte, ignoring the MAC/encryption bits of EF types.
    pub fn from_type_byte(type_byte: u8) -> Option<FileKind> {
        match type_byte {
            0x38 => Some(FileKind::Df),
            0x3F => Some(FileKind::KeyFile),
            0x2F => Some(FileKind::Purse),
            t => match t & 0x3F {
                0x28 => Some(FileKind::Binary),
                0x2A => Some(FileKind::FixedRecord),
                0x2C => Some(FileKind::VariableRecord),
                0x2E => Some(FileKind::CyclicRecord),
                _ => None,
            },
        }
    }

    /// Whether this kind holds records.
    pub fn is_record(self) -> bool {
        matches!(
            self,
            FileKind::FixedRecord | FileKind::VariableRecord | FileKind::CyclicRecord
        )
    }
}

/// A decoded file header, as stored at the file's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    raw: [u8; HEADER_LEN],
    kind: FileKind,
}

impl Header {
    /// Decodes a stored header; a corrupt type byte is a memory failure.
    pub fn decode(raw: [u8; HEADER_LEN]) -> Result<Header, Sw> {
        let kind = FileKind::from_type_byte(raw[0]).ok_or(Sw::MEMORY_FAILURE)?;
        Ok(Header { raw, kind })
    }

    /// A header from its raw bytes and a kind already checked by the caller.
    pub(super) fn new(raw: [u8; HEADER_LEN], kind: FileKind) -> Header {
        Header { raw, kind }
    }

    /// The stored bytes.
    pub fn raw(&self) -> &[u8; HEADER_LEN] {
        &self.raw
    }

    /// What the file is.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The type byte as given to CREATE FILE (with the MAC/encryption bits of EF types).
    pub fn type_byte(&self) -> u8 {
        self.raw[0]
    }

    /// The file identifier.
    pub fn fid(&self) -> u16 {
        u16::from_be_bytes([self.raw[1], self.raw[2]])
    }

    /// The short file identifier: an EF whose FID is `0001`..`001F` has SFI = its FID
    /// (FMCOS 2.0 §4.5). DFs and key files have none.
    pub fn sfi(&self) -> Option<u8> {
        let fid = self.fid();
        let is_data_ef = !matches!(self.kind, FileKind::Df | FileKind::KeyFile);
        (is_data_ef && (1..=0x1F).contains(&fid)).then_some(fid as u8)
    }

    /// Writes need a line-protection MAC: type bit `80`, or bit `40`, since encrypted writes carry
    /// a MAC too (FMCOS 2.0 §7.7 example 3).
    pub fn write_needs_mac(&self) -> bool {
        self.is_data_ef() && self.raw[0] & (TYPE_BIT_MAC | TYPE_BIT_ENCRYPTED) != 0
    }

    /// Written data is encrypted (type bit `40`).
    pub fn write_is_encrypted(&self) -> bool {
        self.is_data_ef() && self.raw[0] & TYPE_BIT_ENCRYPTED != 0
    }

    /// Reads must be line-protected: bit 8 of the key byte is 0 (FMCOS 2.0 §7.13: "0 — the file
    /// must be read with line protection"). `FF`, the usual key byte, reads plain.
    pub fn read_needs_mac(&self) -> bool {
        self.is_data_ef() && self.raw[7] & KEY_BYTE_PLAIN_READ == 0
    }

    fn is_data_ef(&self) -> bool {
        matches!(
            self.kind,
            FileKind::Binary
                | FileKind::FixedRecord
                | FileKind::VariableRecord
                | FileKind::CyclicRecord
        )
    }

    /// Binary EF: its size; key file and DF: their declared space; purse: 24.
    pub fn size(&self) -> usize {
        match self.kind {
            FileKind::Binary | FileKind::KeyFile | FileKind::Df => {
                usize::from(u16::from_be_bytes([self.raw[3], self.raw[4]]))
            }
            FileKind::Purse => PURSE_BODY_LEN,
            _ => self.record_count_max() * (self.record_len() + 1),
        }
    }

    /// Record EF: the number of record slots.
    pub fn record_count_max(&self) -> usize {
        usize::from(self.raw[3])
    }

    /// Record EF: the (maximum) record length.
    pub fn record_len(&self) -> usize {
        usize::from(self.raw[4])
    }

    /// Record EF: the number of records present.
    pub fn records_present(&self) -> usize {
        usize::from(self.raw[8])
    }

    /// Cyclic EF: the slot holding record 1 (the newest).
    pub fn newest_slot(&self) -> usize {
        usize::from(self.raw[9])
    }

    /// Read right of an EF (binary and record files).
    pub fn read_right(&self) -> u8 {
        self.raw[5]
    }

    /// Write right of an EF (binary and record files).
    pub fn write_right(&self) -> u8 {
        self.raw[6]
    }

    /// The key byte of a binary or record EF (FMCOS 2.0 §7.13): which keys protect reads/writes.
    pub fn key_byte(&self) -> u8 {
        self.raw[7]
    }

    /// Purse: the use right.
    pub fn use_right(&self) -> u8 {
        self.raw[5]
    }

    /// DF: the right to create files in it.
    pub fn create_right(&self) -> u8 {
        self.raw[5]
    }

    /// DF: the right to erase it (ERASE DF).
    pub fn erase_right(&self) -> u8 {
        self.raw[6]
    }

    /// Key file: the right to add keys.
    pub fn add_right(&self) -> u8 {
        self.raw[6]
    }

    /// DF: the FCI file byte (`80 | SFI` of the EF whose contents SELECT returns in `9F0C`;
    /// `C0 | SFI`: the EF's contents go into `A5` as they are — our extension).
    pub fn fci_file(&self) -> u8 {
        self.raw[7]
    }

    /// DF: length of its name.
    pub fn name_len(&self) -> usize {
        usize::from(self.raw[8] & DF_NAME_LEN_MASK)
    }

    /// DF: life-cycle flags ([`DF_FLAGS_BLOCKED_TEMPORARILY`], [`DF_FLAG_BLOCKED_PERMANENTLY`]).
    pub fn df_flags(&self) -> u8 {
        self.raw[8] & !DF_NAME_LEN_MASK
    }

    /// DF: bytes used by its children; key file: bytes used by its keys.
    pub fn used(&self) -> usize {
        match self.kind {
            FileKind::KeyFile => usize::from(u16::from_be_bytes([self.raw[7], self.raw[8]])),
            _ => usize::from(u16::from_be_bytes([self.raw[9], self.raw[10]])),
        }
    }

    /// Purse: the SFI of its transaction-detail (log) file.
    pub fn purse_log_sfi(&self) -> u8 {
        self.raw[8]
    }

    /// Purse: the identifier of its TAC key (the byte FMCOS calls reserved).
    pub fn purse_tac_key_id(&self) -> u8 {
        self.raw[6]
    }

    /// Bytes this file takes in its parent DF: header and body, or a DF's declared space
    /// (FMCOS 2.0 §4.2).
    pub fn footprint(&self) -> usize {
        match self.kind {
            FileKind::Df => self.size(),
            _ => HEADER_LEN + self.size(),
        }
    }

    /// DF: where its name starts, relative to the DF's address.
    pub const NAME_OFFSET: usize = HEADER_LEN;

    /// DF: where its children start, relative to the DF's address.
    pub fn children_offset(&self) -> usize {
        HEADER_LEN + self.name_len()
    }

    /// DF: bytes available to its children.
    pub fn children_capacity(&self) -> usize {
        self.size().saturating_sub(self.children_offset())
    }
}

/// Offsets of the header's mutable fields (written through the journal).
pub mod field {
    /// DF: bytes used by children (u16).
    pub const DF_USED: usize = 9;
    /// DF: name length and block flags.
    pub const DF_NAME_AND_FLAGS: usize = 8;
    /// DF: create right.
    pub const DF_CREATE_RIGHT: usize = 5;
    /// Key file: bytes used by keys (u16).
    pub const KEY_FILE_USED: usize = 7;
    /// Record EF: records present.
    pub const RECORDS_PRESENT: usize = 8;
    /// Cyclic EF: newest slot.
    pub const NEWEST_SLOT: usize = 9;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_bytes() {
        assert_eq!(FileKind::from_type_byte(0x28), Some(FileKind::Binary));
        assert_eq!(FileKind::from_type_byte(0xA8), Some(FileKind::Binary));
        assert_eq!(FileKind::from_type_byte(0x68), Some(FileKind::Binary));
        assert_eq!(FileKind::from_type_byte(0xEE), Some(FileKind::CyclicRecord));
        assert_eq!(FileKind::from_type_byte(0x2F), Some(FileKind::Purse));
        assert_eq!(FileKind::from_type_byte(0x38), Some(FileKind::Df));
        assert_eq!(FileKind::from_type_byte(0x3F), Some(FileKind::KeyFile));
        assert_eq!(
            FileKind::from_type_byte(0xB8),
            None,
            "no protection bits on a DF"
        );
        assert_eq!(FileKind::from_type_byte(0x29), None);
    }

    #[test]
    fn record_file_footprint_follows_fmcos() {
        let h = Header::new(
            [0x2E, 0x00, 0x18, 10, 23, 0xF0, 0xEF, 0xFF, 0, 0, 0],
            FileKind::CyclicRecord,
        );
        assert_eq!(h.footprint(), 11 + 10 * 24);
        assert_eq!(h.sfi(), Some(0x18));
    }
}

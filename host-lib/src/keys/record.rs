//! The key record of WRITE KEY: the bytes in front of the key that tell the card what the key is
//! for (FMCOS 2.0 §7.12, card-specs §2.4).
//!
//! | FMCOS case | record |
//! |---|---|
//! | 1: DES/3DES keys `30`..`3F` (internal `34`, purchase `3E`, load `3F`, …) | `type use change keyVersion algorithmId key` |
//! | 2: external authentication `39` | `39 use change followOnState errorCounter key` |
//! | 4, 5: PIN unblock `37`, line protection `36`, PIN reload `38` | `type use change FF errorCounter key` |
//!
//! The layout is data ([`KeyRecordLayout`]), not code, so a card whose COS lays out its records
//! otherwise (the 华大 card of card-specs TV-7 takes `01 00 33 00 key`) needs no change here. The
//! key version and algorithm id can be left to the key set ([`RecordField::KeyVersion`],
//! [`RecordField::AlgorithmId`]) so that they always match the key that is written.

use std::fmt;

use card_os::crypto::Key;
use zeroize::Zeroizing;

/// FMCOS 2.0 key type bytes (card-specs §2.4).
pub mod key_type {
    /// DES encryption key (INTERNAL AUTHENTICATE P1=00).
    pub const ENCRYPT: u8 = 0x30;
    /// DES decryption key (INTERNAL AUTHENTICATE P1=01).
    pub const DECRYPT: u8 = 0x31;
    /// DES MAC key (INTERNAL AUTHENTICATE P1=02).
    pub const MAC: u8 = 0x32;
    /// Internal key: the master of session keys, e.g. the purse's TAC key DTK.
    pub const INTERNAL: u8 = 0x34;
    /// File line-protection key.
    pub const LINE_PROTECTION: u8 = 0x36;
    /// PIN unblock key.
    pub const PIN_UNBLOCK: u8 = 0x37;
    /// PIN reload key.
    pub const PIN_RELOAD: u8 = 0x38;
    /// External authentication key.
    pub const EXTERNAL_AUTH: u8 = 0x39;
    /// PIN.
    pub const PIN: u8 = 0x3A;
    /// Overdraft-limit update key.
    pub const OVERDRAFT: u8 = 0x3C;
    /// Unload key.
    pub const UNLOAD: u8 = 0x3D;
    /// Purchase key (DPK).
    pub const PURCHASE: u8 = 0x3E;
    /// Load key (DLK).
    pub const LOAD: u8 = 0x3F;
}

/// One byte of a key record's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordField {
    /// A fixed byte (a key type, an access right, a follow-on state, an error counter…).
    Byte(u8),
    /// The key's version from the key set.
    KeyVersion,
    /// The algorithm id of the key's algorithm (`01` DES family, `03` SM4, `04` AES-128;
    /// `card_os::crypto::Algorithm::id`).
    AlgorithmId,
}

/// The header bytes a key record has in front of the key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecordLayout {
    header: Vec<RecordField>,
}

/// A key record layout that could not be read from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key record layout {text:?}: {problem}")]
pub struct LayoutError {
    text: String,
    problem: String,
}

impl KeyRecordLayout {
    /// A layout with this header; the key bytes follow it.
    pub fn new(header: Vec<RecordField>) -> Self {
        KeyRecordLayout { header }
    }

    /// FMCOS case 1 (`30`..`3F` other than the cases below): `type use change version algId`.
    pub fn fmcos_key(key_type: u8, use_right: u8, change_right: u8) -> Self {
        Self::new(vec![
            RecordField::Byte(key_type),
            RecordField::Byte(use_right),
            RecordField::Byte(change_right),
            RecordField::KeyVersion,
            RecordField::AlgorithmId,
        ])
    }

    /// FMCOS case 2, an external-authentication key: `39 use change followOnState errorCounter`.
    /// `follow_on_state` is the security state a successful authentication sets (low nibble);
    /// `error_counter` has the maximum tries in its high nibble and the tries left in its low
    /// nibble (`33`: 3 of 3).
    pub fn fmcos_external_auth(
        use_right: u8,
        change_right: u8,
        follow_on_state: u8,
        error_counter: u8,
    ) -> Self {
        Self::new(vec![
            RecordField::Byte(key_type::EXTERNAL_AUTH),
            RecordField::Byte(use_right),
            RecordField::Byte(change_right),
            RecordField::Byte(follow_on_state),
            RecordField::Byte(error_counter),
        ])
    }

    /// FMCOS cases 4 and 5 (`36` line protection, `37` PIN unblock, `38` PIN reload):
    /// `type use change FF errorCounter`.
    pub fn fmcos_counted(key_type: u8, use_right: u8, change_right: u8, error_counter: u8) -> Self {
        Self::new(vec![
            RecordField::Byte(key_type),
            RecordField::Byte(use_right),
            RecordField::Byte(change_right),
            RecordField::Byte(0xFF),
            RecordField::Byte(error_counter),
        ])
    }

    /// A layout from text: hex bytes and the words `version` and `alg`, separated by spaces, e.g.
    /// `"3E F0 02 version alg"` or `"39 F0 F0 AA 33"`. For profiles written by hand.
    pub fn parse(text: &str) -> Result<Self, LayoutError> {
        let error = |problem: String| LayoutError {
            text: text.to_owned(),
            problem,
        };
        let mut header = Vec::new();
        for word in text.split_whitespace() {
            let field = match word {
                "version" => RecordField::KeyVersion,
                "alg" => RecordField::AlgorithmId,
                _ if word.len() == 2 => u8::from_str_radix(word, 16)
                    .map(RecordField::Byte)
                    .map_err(|_| error(format!("{word:?} is not a hex byte")))?,
                _ => {
                    return Err(error(format!(
                        "{word:?} is neither a hex byte nor `version` or `alg`"
                    )))
                }
            };
            header.push(field);
        }
        if header.is_empty() {
            return Err(error("no fields".into()));
        }
        Ok(Self::new(header))
    }

    /// The header fields.
    pub fn header(&self) -> &[RecordField] {
        &self.header
    }

    /// The record for `key` of `version`: the header, then the key bytes.
    pub(crate) fn record(&self, key: &Key, version: u8) -> Zeroizing<Vec<u8>> {
        let mut record = Zeroizing::new(Vec::with_capacity(self.header.len() + 16));
        for field in &self.header {
            record.push(match *field {
                RecordField::Byte(b) => b,
                RecordField::KeyVersion => version,
                RecordField::AlgorithmId => key.algorithm().id(),
            });
        }
        record.extend_from_slice(key.as_bytes());
        record
    }
}

impl fmt::Display for KeyRecordLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.header.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match field {
                RecordField::Byte(b) => write!(f, "{b:02X}")?,
                RecordField::KeyVersion => f.write_str("version")?,
                RecordField::AlgorithmId => f.write_str("alg")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmcos_layouts() {
        let key = Key::TripleDes([0x11; 16]);
        let purchase = KeyRecordLayout::fmcos_key(key_type::PURCHASE, 0xF0, 0x02);
        assert_eq!(
            purchase.record(&key, 1)[..5],
            [0x3E, 0xF0, 0x02, 0x01, 0x01]
        );
        assert_eq!(purchase.record(&key, 1).len(), 21);
        let ext = KeyRecordLayout::fmcos_external_auth(0xF0, 0xF0, 0xAA, 0x33);
        assert_eq!(ext.record(&key, 7)[..5], [0x39, 0xF0, 0xF0, 0xAA, 0x33]);
        let lp = KeyRecordLayout::fmcos_counted(key_type::LINE_PROTECTION, 0xF0, 0xF0, 0x33);
        assert_eq!(lp.record(&key, 0)[..5], [0x36, 0xF0, 0xF0, 0xFF, 0x33]);
        let sm4 = Key::Sm4([0x22; 16]);
        assert_eq!(purchase.record(&sm4, 2)[3..5], [0x02, 0x03]);
    }

    #[test]
    fn layouts_read_from_text() {
        let layout = KeyRecordLayout::parse("3E F0 02 version alg").unwrap();
        assert_eq!(layout, KeyRecordLayout::fmcos_key(0x3E, 0xF0, 0x02));
        assert_eq!(layout.to_string(), "3E F0 02 version alg");
        let tv7 = KeyRecordLayout::parse(" 01 00  33 00 ").unwrap();
        assert_eq!(tv7.header().len(), 4);
        let e = KeyRecordLayout::parse("39 F0 xyz").unwrap_err();
        assert!(e.to_string().contains("\"xyz\""), "{e}");
        assert!(KeyRecordLayout::parse("3G").is_err());
        assert!(KeyRecordLayout::parse("  ").is_err());
    }
}

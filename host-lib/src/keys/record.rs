//! The key record of WRITE KEY: the bytes around the key that tell the card what the key is for
//! (FMCOS 2.0 §7.12, card-specs §2.4; this card: apdu-specs/security.md, "The key file").
//!
//! | FMCOS case | record |
//! |---|---|
//! | 1: keys `30`..`35`, `3C`..`3F` (internal `34`, purchase `3E`, load `3F`, …) | `type use change keyVersion algorithmId key` |
//! | 2: external authentication `39` | `39 use change followOnState errorCounter key [algorithmId]` |
//! | 4, 5: PIN unblock `37`, line protection `36`, PIN reload `38` | `type use change FF errorCounter key [algorithmId]` |
//!
//! FMCOS's `36`..`39` records have no algorithm byte (the DES family, by key length); this card
//! takes one after a 16-byte key to name SM4 or AES (apdu-specs/security.md), which
//! [`RecordField::AlgorithmIdUnlessDes`] writes for SM4/AES keys only, so 3DES records stay
//! byte-for-byte FMCOS's.
//!
//! The layout is data ([`KeyRecordLayout`]), not code: a profile can set the protection bits of the
//! type byte (`F9` = an external-authentication key whose updates must come encrypted and MAC'd),
//! and a card whose COS lays out records otherwise (the 华大 card of card-specs TV-7 takes
//! `01 00 33 00 key`) needs no change here. The key version and algorithm id can be left to the
//! key set ([`RecordField::KeyVersion`], [`RecordField::AlgorithmId`]) so that they always match
//! the key that is written.

use std::fmt;

use card_os::crypto::{Algorithm, Key};
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

/// One field of a key record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordField {
    /// A fixed byte (a key type, an access right, a follow-on state, an error counter…). Text:
    /// two hex digits.
    Byte(u8),
    /// The key's version from the key set. Text: `version`.
    KeyVersion,
    /// The algorithm id of the key's algorithm (`01` DES family, `03` SM4, `04` AES-128;
    /// `card_os::crypto::Algorithm::id`). Text: `alg`.
    AlgorithmId,
    /// The algorithm id for SM4 and AES keys, nothing for DES-family keys. Text: `alg?`.
    AlgorithmIdUnlessDes,
    /// The key bytes (8 or 16). Text: `key`. A layout without it has the key at the end.
    Key,
}

/// The fields of a key record, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecordLayout {
    fields: Vec<RecordField>,
}

/// A key record layout that could not be read from text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key record layout {text:?}: {problem}")]
pub struct LayoutError {
    text: String,
    problem: String,
}

impl KeyRecordLayout {
    /// A layout with these fields; when none is [`RecordField::Key`], the key bytes follow them.
    /// More than one `Key` field writes the key more than once: [`KeyRecordLayout::parse`]
    /// refuses that.
    pub fn new(mut fields: Vec<RecordField>) -> Self {
        if !fields.contains(&RecordField::Key) {
            fields.push(RecordField::Key);
        }
        KeyRecordLayout { fields }
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

    /// FMCOS case 2, an external-authentication key:
    /// `39 use change followOnState errorCounter key alg?`.
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
            RecordField::Key,
            RecordField::AlgorithmIdUnlessDes,
        ])
    }

    /// FMCOS cases 4 and 5 (`36` line protection, `37` PIN unblock, `38` PIN reload):
    /// `type use change FF errorCounter key alg?`.
    pub fn fmcos_counted(key_type: u8, use_right: u8, change_right: u8, error_counter: u8) -> Self {
        Self::new(vec![
            RecordField::Byte(key_type),
            RecordField::Byte(use_right),
            RecordField::Byte(change_right),
            RecordField::Byte(0xFF),
            RecordField::Byte(error_counter),
            RecordField::Key,
            RecordField::AlgorithmIdUnlessDes,
        ])
    }

    /// A layout from text: hex bytes and the words `version`, `alg`, `alg?` and `key`, separated
    /// by spaces, e.g. `"3E F0 02 version alg"` or `"F9 F0 AA 0A 33 key alg?"`. For profiles
    /// written by hand.
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
                "alg?" => RecordField::AlgorithmIdUnlessDes,
                "key" if header.contains(&RecordField::Key) => {
                    return Err(error("`key` appears twice".into()))
                }
                "key" => RecordField::Key,
                _ if word.len() == 2 => u8::from_str_radix(word, 16)
                    .map(RecordField::Byte)
                    .map_err(|_| error(format!("{word:?} is not a hex byte")))?,
                _ => {
                    return Err(error(format!(
                        "{word:?} is not a hex byte, `version`, `alg`, `alg?` or `key`"
                    )))
                }
            };
            header.push(field);
        }
        if header.iter().all(|f| *f == RecordField::Key) {
            return Err(error("no fields besides the key".into()));
        }
        Ok(Self::new(header))
    }

    /// The fields, [`RecordField::Key`] among them.
    pub fn fields(&self) -> &[RecordField] {
        &self.fields
    }

    /// The record for `key` of `version`.
    pub(crate) fn record(&self, key: &Key, version: u8) -> Zeroizing<Vec<u8>> {
        // Room for the key and a MAC after it, so that appending a MAC never moves (and leaves
        // behind an unwiped copy of) the record.
        let mut record = Zeroizing::new(Vec::with_capacity(self.fields.len() + 16 + 4));
        let des_family = matches!(key.algorithm(), Algorithm::Des | Algorithm::TripleDes);
        for field in &self.fields {
            match *field {
                RecordField::Byte(b) => record.push(b),
                RecordField::KeyVersion => record.push(version),
                RecordField::AlgorithmId => record.push(key.algorithm().id()),
                RecordField::AlgorithmIdUnlessDes if des_family => {}
                RecordField::AlgorithmIdUnlessDes => record.push(key.algorithm().id()),
                RecordField::Key => record.extend_from_slice(key.as_bytes()),
            }
        }
        record
    }
}

impl fmt::Display for KeyRecordLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match field {
                RecordField::Byte(b) => write!(f, "{b:02X}")?,
                RecordField::KeyVersion => f.write_str("version")?,
                RecordField::AlgorithmId => f.write_str("alg")?,
                RecordField::AlgorithmIdUnlessDes => f.write_str("alg?")?,
                RecordField::Key => f.write_str("key")?,
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
        // 3DES: FMCOS's record exactly, no algorithm byte.
        assert_eq!(ext.record(&key, 7).len(), 21);
        let lp = KeyRecordLayout::fmcos_counted(key_type::LINE_PROTECTION, 0xF0, 0xF0, 0x33);
        assert_eq!(lp.record(&key, 0)[..5], [0x36, 0xF0, 0xF0, 0xFF, 0x33]);
        assert_eq!(lp.record(&Key::Des([1; 8]), 0).len(), 13);
        // SM4 and AES: the algorithm id after the key (apdu-specs/security.md).
        let sm4 = Key::Sm4([0x22; 16]);
        assert_eq!(purchase.record(&sm4, 2)[3..5], [0x02, 0x03]);
        let r = ext.record(&sm4, 0);
        assert_eq!((r.len(), r[5], r[21]), (22, 0x22, 0x03));
        let r = lp.record(&Key::Aes128([0x33; 16]), 0);
        assert_eq!((r.len(), r[21]), (22, 0x04));
    }

    #[test]
    fn layouts_read_from_text() {
        let layout = KeyRecordLayout::parse("3E F0 02 version alg").unwrap();
        assert_eq!(layout, KeyRecordLayout::fmcos_key(0x3E, 0xF0, 0x02));
        assert_eq!(layout.to_string(), "3E F0 02 version alg key");
        let ext = KeyRecordLayout::parse("39 F0 F0 AA 33 key alg?").unwrap();
        assert_eq!(
            ext,
            KeyRecordLayout::fmcos_external_auth(0xF0, 0xF0, 0xAA, 0x33)
        );
        assert_eq!(KeyRecordLayout::parse(&ext.to_string()).unwrap(), ext);
        let tv7 = KeyRecordLayout::parse(" 01 00  33 00 ").unwrap();
        assert_eq!(tv7.fields().len(), 5);
        let e = KeyRecordLayout::parse("39 F0 xyz").unwrap_err();
        assert!(e.to_string().contains("\"xyz\""), "{e}");
        assert!(KeyRecordLayout::parse("3G").is_err());
        assert!(KeyRecordLayout::parse("  ").is_err());
        assert!(KeyRecordLayout::parse("key").is_err());
        let e = KeyRecordLayout::parse("39 key 00 key").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}

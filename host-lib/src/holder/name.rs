//! Names: UTF-8 in the host, GBK on the card.
//!
//! The card has 30 bytes for the name (EF06 item `09`) and 20 more for its continuation (item
//! `4E`, 姓名扩展), so a name may take at most 50 GBK bytes. The split never cuts a character in
//! two: item `09` takes as many whole characters as fit in 30 bytes, item `4E` the rest. Both are
//! padded with `00` bytes, as real cards are.
//!
//! Applicant names ([`Name::new`]) are stricter than names read back from a card
//! ([`Name::from_card`]): every character must be one that GBK writes with two bytes (Chinese
//! characters, and `·` U+00B7 between the parts of a transliterated name), with no spaces,
//! ASCII letters or digits. With two-byte characters only, the split always falls at byte 30 and
//! readers that simply concatenate `09‖4E` get the name back.
//!
//! Reading strips trailing padding from each part before joining them: `00` (what real cards
//! use), and also `20` (space) and `30` (ASCII `0`, the letter of the spec's "an" padding rule).
//! Stripping is safe because a GBK trail byte is never below `0x40`, so these bytes can only be
//! single-byte characters; the cost is that a name read from a card cannot end in a space or an
//! ASCII `0`, which applicant names cannot contain anyway.

use std::fmt;

use encoding_rs::GBK;
use serde::{Serialize, Serializer};

/// Bytes of item `09`.
pub const NAME_LEN: usize = 30;
/// Bytes of item `4E`.
pub const NAME_EXT_LEN: usize = 20;
/// Padding bytes stripped when reading a name part.
pub const NAME_PADDING: [u8; 3] = [0x00, 0x20, 0x30];

/// A name that fits items `09` and `4E` in GBK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    text: String,
    gbk: Vec<u8>,
    split: usize,
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty.
    #[error("the name is empty")]
    Empty,
    /// A character GBK cannot encode.
    #[error("{ch:?} (U+{code:04X}, character {position} of {name:?}) is not in GBK, the card's encoding: card readers could not show it")]
    NotGbk {
        /// The whole name.
        name: String,
        /// The character.
        ch: char,
        /// Its code point.
        code: u32,
        /// 1-based position in the name.
        position: usize,
    },
    /// A character that is not allowed in an applicant's name.
    #[error("{ch:?} (U+{code:04X}, character {position} of {name:?}) is not allowed in a name: use Chinese characters, with · (U+00B7) between the parts of a transliterated name")]
    Character {
        /// The whole name.
        name: String,
        /// The character.
        ch: char,
        /// Its code point.
        code: u32,
        /// 1-based position in the name.
        position: usize,
    },
    /// `·` at the start or end, or two in a row.
    #[error("{0:?}: the separator · must stand between two parts of the name")]
    Separator(String),
    /// More than 50 GBK bytes, or more than 20 left for item 4E after a character-aligned split.
    #[error("{name:?} takes {bytes} bytes in GBK; the card holds {NAME_LEN} in the name item and {NAME_EXT_LEN} in the name extension, {max} in all")]
    TooLong {
        /// The name.
        name: String,
        /// Its GBK length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes read from a card that are not GBK.
    #[error("the name bytes read from the card are not valid GBK: {hex}")]
    InvalidGbk {
        /// The bytes after padding was stripped, in hex.
        hex: String,
    },
    /// A name part read from a card is longer than its item.
    #[error("the name item holds {len} bytes, more than its {max}")]
    PartTooLong {
        /// Its length.
        len: usize,
        /// The item's size.
        max: usize,
    },
    /// A control character read from a card.
    #[error("the name read from the card contains the control character U+{0:04X}")]
    Control(u32),
}

/// GBK bytes of one character, or `None` if GBK cannot encode it.
///
/// `encoding_rs` implements the WHATWG "GBK" encoder, which is GB 18030 without its four-byte
/// sequences, and so also writes the few two-byte codes that GB 18030 added to GBK: the block
/// `FE50`–`FEA0` (CJK extension A characters such as 䶮 at `FE9F`, and radicals) and `A8BF` (ǹ).
/// Readers with classic GBK (code page 936) tables cannot show those, so they count as not GBK.
pub fn gbk_char(c: char) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4];
    let (bytes, _, unmappable) = GBK.encode(c.encode_utf8(&mut buf));
    let gb18030_only = match *bytes {
        [0xFE, t] => (0x50..=0xA0).contains(&t),
        [0xA8, 0xBF] => true,
        _ => false,
    };
    (!unmappable && !gb18030_only).then(|| bytes.into_owned())
}

impl Name {
    /// Checks an applicant's name (see the module docs). Surrounding whitespace is ignored.
    pub fn new(s: &str) -> Result<Name, NameError> {
        let text = s.trim();
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        let mut gbk = Vec::with_capacity(text.len());
        for (i, ch) in text.chars().enumerate() {
            let position = i + 1;
            let bytes = gbk_char(ch).ok_or_else(|| NameError::NotGbk {
                name: text.to_owned(),
                ch,
                code: ch as u32,
                position,
            })?;
            let allowed = bytes.len() == 2 && (ch.is_alphabetic() || ch == '·');
            if !allowed {
                return Err(NameError::Character {
                    name: text.to_owned(),
                    ch,
                    code: ch as u32,
                    position,
                });
            }
            gbk.extend_from_slice(&bytes);
        }
        if text.starts_with('·') || text.ends_with('·') || text.contains("··") {
            return Err(NameError::Separator(text.to_owned()));
        }
        Name::from_parts(text.to_owned(), gbk)
    }

    /// Splits at a character boundary and checks the lengths.
    fn from_parts(text: String, gbk: Vec<u8>) -> Result<Name, NameError> {
        let too_long = |gbk: &[u8]| NameError::TooLong {
            name: text.clone(),
            bytes: gbk.len(),
            max: NAME_LEN + NAME_EXT_LEN,
        };
        let mut split = 0;
        let mut buf = [0u8; 4];
        for ch in text.chars() {
            let n = GBK.encode(ch.encode_utf8(&mut buf)).0.len();
            if split + n > NAME_LEN {
                break;
            }
            split += n;
        }
        if gbk.len() - split > NAME_EXT_LEN {
            return Err(too_long(&gbk));
        }
        Ok(Name { text, gbk, split })
    }

    /// Decodes the values of items `09` and `4E` (absent: pass an empty slice) read from a card.
    /// Each part loses its trailing padding ([`NAME_PADDING`]) before the two are joined; the
    /// result must be GBK without control characters and fit the items again.
    pub fn from_card(part09: &[u8], part4e: &[u8]) -> Result<Name, NameError> {
        for (part, max) in [(part09, NAME_LEN), (part4e, NAME_EXT_LEN)] {
            if part.len() > max {
                return Err(NameError::PartTooLong {
                    len: part.len(),
                    max,
                });
            }
        }
        let mut gbk = strip_padding(part09).to_vec();
        gbk.extend_from_slice(strip_padding(part4e));
        if gbk.is_empty() {
            return Err(NameError::Empty);
        }
        let text = GBK
            .decode_without_bom_handling_and_without_replacement(&gbk)
            .ok_or_else(|| NameError::InvalidGbk {
                hex: hex::encode_upper(&gbk),
            })?
            .into_owned();
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            return Err(NameError::Control(c as u32));
        }
        // Re-encode: what we hold must be what we would write (the GBK decoder also accepts
        // four-byte GB 18030 sequences, which the GBK encoder cannot produce).
        let (re, _, unmappable) = GBK.encode(&text);
        if unmappable || re.as_ref() != gbk.as_slice() {
            return Err(NameError::InvalidGbk {
                hex: hex::encode_upper(&gbk),
            });
        }
        Name::from_parts(text, gbk)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The whole name in GBK (at most 50 bytes).
    pub fn gbk(&self) -> &[u8] {
        &self.gbk
    }

    /// The part for item `09` (≤ 30 bytes, unpadded) and the part for item `4E` (≤ 20 bytes,
    /// unpadded), `None` when the name fits item `09`.
    pub fn split(&self) -> (&[u8], Option<&[u8]>) {
        let (a, b) = self.gbk.split_at(self.split);
        (a, (!b.is_empty()).then_some(b))
    }

    /// Whether the name needs item `4E`.
    pub fn needs_extension(&self) -> bool {
        self.split < self.gbk.len()
    }

    /// Item `09`'s value: the first part padded with `00` to 30 bytes.
    pub fn item_09(&self) -> [u8; NAME_LEN] {
        let mut out = [0u8; NAME_LEN];
        out[..self.split].copy_from_slice(&self.gbk[..self.split]);
        out
    }

    /// Item `4E`'s value: the rest padded with `00` to 20 bytes (all zero when not needed).
    pub fn item_4e(&self) -> [u8; NAME_EXT_LEN] {
        let mut out = [0u8; NAME_EXT_LEN];
        let rest = &self.gbk[self.split..];
        out[..rest.len()].copy_from_slice(rest);
        out
    }
}

/// A name part without its trailing padding bytes.
pub fn strip_padding(part: &[u8]) -> &[u8] {
    let end = part
        .iter()
        .rposition(|b| !NAME_PADDING.contains(b))
        .map_or(0, |i| i + 1);
    &part[..end]
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_name() {
        let n = Name::new(" 测试张一 ").unwrap();
        assert_eq!(n.as_str(), "测试张一");
        assert_eq!(n.gbk(), &[0xB2, 0xE2, 0xCA, 0xD4, 0xD5, 0xC5, 0xD2, 0xBB]);
        assert!(!n.needs_extension());
        assert_eq!(n.split().1, None);
        let item = n.item_09();
        assert_eq!(&item[..8], n.gbk());
        assert!(item[8..].iter().all(|b| *b == 0));
        assert_eq!(n.item_4e(), [0u8; 20]);
        assert_eq!(Name::from_card(&item, &n.item_4e()).unwrap(), n);
        assert_eq!(Name::from_card(&item, &[]).unwrap(), n);
    }

    #[test]
    fn rare_characters_gbk_still_has() {
        for name in ["测试王堃", "测试李喆", "测试陈玥"] {
            let n = Name::new(name).unwrap();
            assert_eq!(n.gbk().len(), 8, "{name}");
            assert_eq!(Name::from_card(&n.item_09(), &[]).unwrap().as_str(), name);
        }
    }

    #[test]
    fn non_gbk_character_is_named() {
        // 䶮 (U+4DAE, CJK extension A) is not in GBK: GB 18030 put it at FE9F, which classic GBK
        // tables leave undefined (encoding_rs's GBK encoder writes it; we refuse it).
        assert_eq!(GBK.encode("䶮").0.as_ref(), &[0xFE, 0x9F]);
        let err = Name::new("测试刘䶮").unwrap_err();
        assert_eq!(
            err,
            NameError::NotGbk {
                name: "测试刘䶮".into(),
                ch: '䶮',
                code: 0x4DAE,
                position: 4
            }
        );
        let msg = err.to_string();
        assert!(msg.contains('䶮') && msg.contains("U+4DAE"), "{msg}");
        // Extension A outside that block and extension B: four-byte GB 18030 only.
        for (name, ch) in [("测试㐀", '㐀'), ("测试𠮷", '𠮷')] {
            assert!(
                matches!(Name::new(name), Err(NameError::NotGbk { ch: c, .. }) if c == ch),
                "{name}"
            );
        }
        // A character GB 18030 added at A8BF.
        assert!(matches!(Name::new("测试ǹ"), Err(NameError::NotGbk { .. })));
        // The rare characters of the sample data are classic GBK.
        for ch in ['堃', '喆', '玥'] {
            assert!(gbk_char(ch).is_some(), "{ch}");
        }
    }

    #[test]
    fn long_name_uses_extension() {
        let name = "测试·阿卜杜克热木·买买提吐尔逊";
        let n = Name::new(name).unwrap();
        assert_eq!(n.gbk().len(), 32);
        assert!(n.needs_extension());
        let (a, b) = n.split();
        assert_eq!(a.len(), 30);
        assert_eq!(b.unwrap().len(), 2);
        assert_eq!(
            Name::from_card(&n.item_09(), &n.item_4e())
                .unwrap()
                .as_str(),
            name
        );
        // Readers that concatenate 09‖4E raw see the whole name before the padding.
        let mut raw = n.item_09().to_vec();
        raw.extend_from_slice(&n.item_4e());
        assert_eq!(&raw[..32], n.gbk());
    }

    #[test]
    fn limits() {
        let max = "测".repeat(25);
        assert_eq!(Name::new(&max).unwrap().gbk().len(), 50);
        let over = "测".repeat(26);
        assert_eq!(
            Name::new(&over).unwrap_err(),
            NameError::TooLong {
                name: over.clone(),
                bytes: 52,
                max: 50
            }
        );
    }

    #[test]
    fn refused_characters() {
        for (name, bad) in [
            ("测试 张", ' '),
            ("测试A", 'A'),
            ("测试1", '1'),
            ("测试\u{3000}张", '\u{3000}'),
            ("测试、张", '、'),
        ] {
            match Name::new(name) {
                Err(NameError::Character { ch, .. }) => assert_eq!(ch, bad, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(Name::new("  "), Err(NameError::Empty));
        assert!(matches!(Name::new("·测试"), Err(NameError::Separator(_))));
        assert!(matches!(Name::new("测试·"), Err(NameError::Separator(_))));
        assert!(matches!(Name::new("测··试"), Err(NameError::Separator(_))));
    }

    #[test]
    fn card_padding_variants() {
        let n = Name::new("测试张一").unwrap();
        for pad in NAME_PADDING {
            let mut v = n.gbk().to_vec();
            v.resize(30, pad);
            assert_eq!(Name::from_card(&v, &[pad; 20]).unwrap(), n, "pad {pad:02X}");
        }
        // A mid-character split by another writer (odd alignment) still decodes.
        let long = Name::new("测试·阿卜杜克热木·买买提吐尔逊").unwrap();
        let g = long.gbk();
        assert_eq!(Name::from_card(&g[..30], &g[30..]).unwrap(), long);
    }

    #[test]
    fn hostile_card_bytes() {
        assert_eq!(Name::from_card(&[0; 30], &[0; 20]), Err(NameError::Empty));
        assert!(matches!(
            Name::from_card(&[0x81], &[]),
            Err(NameError::InvalidGbk { .. })
        ));
        assert!(matches!(
            Name::from_card(&[0xB2, 0xE2, 0x07], &[]),
            Err(NameError::Control(7))
        ));
        assert!(matches!(
            Name::from_card(&[0x41; 31], &[]),
            Err(NameError::PartTooLong { len: 31, max: 30 })
        ));
        // A four-byte GB 18030 sequence (U+3400) is not GBK.
        let (four, _, _) = encoding_rs::GB18030.encode("㐀");
        assert_eq!(four.len(), 4);
        assert!(matches!(
            Name::from_card(&four, &[]),
            Err(NameError::InvalidGbk { .. })
        ));
    }

    proptest! {
        #[test]
        fn from_card_never_panics(a in proptest::collection::vec(any::<u8>(), 0..40),
                                  b in proptest::collection::vec(any::<u8>(), 0..30)) {
            if let Ok(n) = Name::from_card(&a, &b) {
                // Whatever decodes re-encodes to the same items.
                prop_assert_eq!(Name::from_card(&n.item_09(), &n.item_4e()).unwrap(), n);
            }
        }

        #[test]
        fn applicant_names_round_trip(chars in proptest::collection::vec(0x4E00u32..0x9FA6, 1..=25)) {
            let s: String = chars.into_iter().filter_map(char::from_u32).collect();
            let n = Name::new(&s).unwrap();
            prop_assert_eq!(n.split().0.len(), n.gbk().len().min(30));
            let back = Name::from_card(&n.item_09(), &n.item_4e()).unwrap();
            prop_assert_eq!(back.as_str(), s.as_str());
        }
    }
}

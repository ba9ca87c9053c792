//! The card information EF (apdu-specs/layout.md): 64 bytes in the MF that say whether the card
//! was issued, and as what. Personalization creates it empty (all `00`: not issued) and writes
//! it whole, in one UPDATE BINARY, as its very last command: a card pulled out before that reads
//! as unfinished.
//!
//! | offset | bytes | content |
//! |---|---|---|
//! | 0 | 1 | issuance state: `00` not issued (as created), `01` issued |
//! | 1 | 1 | format of this record: `01` |
//! | 2 | 9 | card number (EF05 item 07), ASCII |
//! | 11 | 4 | issue date, BCD `YYYYMMDD` |
//! | 15 | 1 | `01` when issued with a public development key set, else `00` |
//! | 16 | 24 | profile id, ASCII, `00`-padded |
//! | 40 | 24 | key-set id, ASCII, `00`-padded (cut at 24 characters) |

use serde::Serialize;
use time::Date;

use crate::holder::items::{decode_date, encode_date, CardNumber};
use crate::profile::CARD_INFO_LEN;

/// The issuance state byte of an issued card.
pub const ISSUED: u8 = 0x01;
/// The format byte this code writes.
pub const FORMAT: u8 = 0x01;

/// What the card information EF says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardInfo {
    /// Whether the card was issued (the last personalization step happened).
    pub issued: bool,
    /// The card number.
    pub card_number: Option<CardNumber>,
    /// The issue date.
    #[serde(serialize_with = "ser_date")]
    pub issue_date: Option<Date>,
    /// Issued with a public development key set.
    pub development: bool,
    /// The profile the card was personalized with.
    pub profile: String,
    /// The key set's id.
    pub key_set: String,
}

fn ser_date<S: serde::Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&crate::holder::dates::date_digits(*d)),
        None => s.serialize_none(),
    }
}

fn text_field(out: &mut [u8], text: &str) {
    for (dst, src) in out.iter_mut().zip(text.bytes().filter(u8::is_ascii)) {
        *dst = src;
    }
}

fn read_text(field: &[u8]) -> String {
    field
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

impl CardInfo {
    /// The record of an issued card.
    pub fn issued(
        card_number: &CardNumber,
        issue_date: Date,
        development: bool,
        profile: &str,
        key_set: &str,
    ) -> CardInfo {
        CardInfo {
            issued: true,
            card_number: Some(card_number.clone()),
            issue_date: Some(issue_date),
            development,
            profile: profile.chars().take(24).collect(),
            key_set: key_set.chars().take(24).collect(),
        }
    }

    /// The 64 bytes.
    pub fn encode(&self) -> [u8; CARD_INFO_LEN] {
        let mut b = [0u8; CARD_INFO_LEN];
        b[0] = if self.issued { ISSUED } else { 0 };
        b[1] = FORMAT;
        if let Some(n) = &self.card_number {
            b[2..11].copy_from_slice(&n.encode());
        }
        if let Some(d) = self.issue_date {
            b[11..15].copy_from_slice(&encode_date(d));
        }
        b[15] = u8::from(self.development);
        text_field(&mut b[16..40], &self.profile);
        text_field(&mut b[40..64], &self.key_set);
        b
    }

    /// Decodes what the card holds: all zero is a card not issued; otherwise the format must be
    /// known and the fields valid.
    pub fn decode(bytes: &[u8]) -> Result<CardInfo, String> {
        let b: &[u8; CARD_INFO_LEN] = bytes
            .get(..CARD_INFO_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("{} bytes, expected {CARD_INFO_LEN}", bytes.len()))?;
        if b.iter().all(|x| *x == 0) {
            return Ok(CardInfo {
                issued: false,
                card_number: None,
                issue_date: None,
                development: false,
                profile: String::new(),
                key_set: String::new(),
            });
        }
        if b[1] != FORMAT {
            return Err(format!("unknown card information format {:02X}", b[1]));
        }
        let issued = match b[0] {
            0 => false,
            ISSUED => true,
            other => return Err(format!("unknown issuance state {other:02X}")),
        };
        let card_number = CardNumber::decode(&b[2..11]).map_err(|e| format!("card number {e}"))?;
        let issue_date = decode_date(&b[11..15]).map_err(|e| format!("issue date {e}"))?;
        Ok(CardInfo {
            issued,
            card_number: Some(card_number),
            issue_date: Some(issue_date),
            development: b[15] != 0,
            profile: read_text(&b[16..40]),
            key_set: read_text(&b[40..64]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn round_trip_and_the_empty_file() {
        let n = CardNumber::parse("W00000018").unwrap();
        let info = CardInfo::issued(
            &n,
            date!(2026 - 01 - 10),
            true,
            "wenzhou-default-1",
            "a-key-set-with-a-very-long-identifier",
        );
        let bytes = info.encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[2..11], b"W00000018");
        assert_eq!(bytes[11..15], [0x20, 0x26, 0x01, 0x10]);
        let back = CardInfo::decode(&bytes).unwrap();
        assert_eq!(back.key_set, "a-key-set-with-a-very-lo");
        assert_eq!(back.card_number, Some(n));
        assert!(back.issued && back.development);
        let empty = CardInfo::decode(&[0; 64]).unwrap();
        assert!(!empty.issued && empty.card_number.is_none());
        let mut bad = bytes;
        bad[0] = 7;
        assert!(CardInfo::decode(&bad).unwrap_err().contains("state 07"));
        assert!(CardInfo::decode(&bytes[..10]).is_err());
    }
}

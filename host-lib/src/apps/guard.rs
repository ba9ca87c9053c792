//! The blacklist on the purchase terminal.
//!
//! Before a purchase the terminal finds out **which card** it holds and refuses a card on the
//! blacklist, blocking its purse application for good so that no terminal, online or not, takes
//! money from it again. See host-lib/docs/blacklist-format.md, "On the terminal".
//!
//! **How the card is identified.** The blacklist is keyed on the card number (EF05 item 07), the
//! number printed on the card and the one every social-security system uses. The terminal reads
//! it as a social-security reader does: SELECT of the SSSE by its name, then READ RECORD by tag
//! `07` (2 APDUs, no key needed: EF05 is free to read). A card without the SSSE (a purse-only
//! card) is identified by its purse application serial (EF 0015, which the purse keys are
//! diversified with): the registry maps the card serial inside it to the card number. When the
//! card has both, the two must agree (the application serial's card serial is the card number's
//! sequence number), else the card is refused as inconsistent.

use std::collections::BTreeMap;
use std::path::Path;

use card_os::apdu::Sw;
use serde::Serialize;
use time::OffsetDateTime;

use super::lock::exchange;
use super::AppError;
use crate::holder::items::{CardNumber, Record};
use crate::registry::blacklist::parse_text;
use crate::registry::clock::{format_instant, parse_instant};
use crate::registry::{card_number, BlacklistEntry, Registry};
use crate::transport::Transport;

/// The DF name of the social-security environment, `sx1.sh.社会保障` (GBK).
pub const SSSE_NAME: [u8; 15] = [
    0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF,
];

/// The cards to refuse, from the registry or from an exported list.
#[derive(Debug, Clone, Default)]
pub struct Blacklist {
    entries: BTreeMap<String, BlacklistEntry>,
    /// Where the list came from, for messages.
    pub source: String,
}

impl Blacklist {
    /// The registry's open entries.
    pub fn from_registry(registry: &Registry) -> Result<Blacklist, AppError> {
        let entries = registry.blacklist(false)?;
        Ok(Blacklist {
            entries: entries
                .into_iter()
                .map(|e| (e.card_number.clone(), e))
                .collect(),
            source: match registry.path() {
                Some(p) => format!("the registry {}", p.display()),
                None => "the registry".into(),
            },
        })
    }

    /// An exported `citizencard-blacklist 1` text file; a file that was cut short, or of
    /// another format or version, is refused whole.
    pub fn from_file(path: &Path) -> Result<Blacklist, AppError> {
        let text = std::fs::read_to_string(path).map_err(|e| AppError::BlacklistFile {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        let entries = parse_text(&text).map_err(|e| AppError::BlacklistFile {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        Ok(Blacklist {
            entries: entries
                .into_iter()
                .map(|e| (e.card_number.clone(), e))
                .collect(),
            source: path.display().to_string(),
        })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that refuses `card` at `now`, if any (an entry counts from its instant on).
    pub fn refuses(&self, card: &CardNumber, now: OffsetDateTime) -> Option<&BlacklistEntry> {
        let e = self.entries.get(card.as_str())?;
        match parse_instant(&e.since) {
            Some(since) if since > now => None,
            _ => Some(e),
        }
    }
}

/// Who the card in the reader is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardIdentity {
    /// The card number (from EF05 item 07, or from the registry through the serial).
    pub card_number: Option<CardNumber>,
    /// Where the number came from: `ef05` or `registry`.
    pub source: &'static str,
}

/// Reads the card number from EF05 item 07: SELECT of the SSSE by name, READ RECORD by tag.
/// `Ok(None)` when the card has no SSSE or no item 07.
pub fn read_card_number(transport: &mut dyn Transport) -> Result<Option<CardNumber>, AppError> {
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, SSSE_NAME.len() as u8];
    select.extend_from_slice(&SSSE_NAME);
    select.push(0x00);
    let (_, sw) = exchange(transport, &select)?;
    match sw {
        Sw::SUCCESS => {}
        Sw::FILE_NOT_FOUND => return Ok(None),
        sw => return Err(AppError::card("SELECT of the SSSE", sw)),
    }
    // READ RECORD, P1 = tag 07, P2 = SFI 5 << 3 | 000 (the first record with that identifier).
    let (data, sw) = exchange(transport, &[0x00, 0xB2, 0x07, 0x28, 0x00])?;
    match sw {
        Sw::SUCCESS => {}
        Sw::RECORD_NOT_FOUND | Sw::FILE_NOT_FOUND => return Ok(None),
        sw => return Err(AppError::card("READ RECORD (EF05 item 07)", sw)),
    }
    let record = Record::parse(&data).map_err(|e| AppError::Card {
        command: "READ RECORD (EF05 item 07)",
        sw,
        detail: e.to_string(),
    })?;
    let number = CardNumber::decode(&record.value).map_err(|e| AppError::Card {
        command: "READ RECORD (EF05 item 07)",
        sw,
        detail: e.to_string(),
    })?;
    Ok(Some(number))
}

/// The card serial inside a purse application serial number (its last 10 BCD digits; the
/// default profile writes `0000 <city 4 digits> 00 <card serial, 10 digits>`).
pub fn serial_of_app_serial(app_serial: &[u8; 10]) -> Option<u32> {
    let digits: String = app_serial[5..]
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .map(|d| char::from_digit(u32::from(d), 10))
        .collect::<Option<String>>()?;
    digits.parse().ok()
}

/// What the terminal decided about a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The card, as far as it could be identified.
    pub identity: CardIdentity,
    /// The blacklist entry that refuses it.
    pub listed: Option<BlacklistEntry>,
    /// Why the card is refused although not listed (its data disagree).
    pub inconsistent: Option<String>,
}

impl Verdict {
    /// Whether the purchase must be refused.
    pub fn refused(&self) -> bool {
        self.listed.is_some() || self.inconsistent.is_some()
    }
}

/// Identifies the card (EF05, else the registry by the purse serial) and checks it against the
/// blacklist at `now`. `app_serial` is the purse application serial the terminal read when it
/// selected the purse (`None` if it has not). Sends 2 APDUs (or 1 on a card without the SSSE).
pub fn check(
    transport: &mut dyn Transport,
    blacklist: &Blacklist,
    registry: Option<&Registry>,
    app_serial: Option<&[u8; 10]>,
    now: OffsetDateTime,
) -> Result<Verdict, AppError> {
    let from_ef05 = read_card_number(transport)?;
    let serial = app_serial.and_then(serial_of_app_serial);
    let mut inconsistent = None;
    let identity = match (&from_ef05, serial) {
        (Some(n), Some(s)) => {
            if card_number::verify(n).ok() != Some(s) {
                inconsistent = Some(format!(
                    "its card number {n} (EF05) does not match the card serial {s} of its purse \
                     application serial {}",
                    hex::encode_upper(app_serial.copied().unwrap_or_default())
                ));
            }
            CardIdentity {
                card_number: Some(n.clone()),
                source: "ef05",
            }
        }
        (Some(n), None) => CardIdentity {
            card_number: Some(n.clone()),
            source: "ef05",
        },
        (None, Some(s)) => CardIdentity {
            card_number: match registry {
                Some(r) => r.card_by_serial(s)?,
                None => None,
            },
            source: "registry",
        },
        (None, None) => CardIdentity {
            card_number: None,
            source: "none",
        },
    };
    let listed = identity
        .card_number
        .as_ref()
        .and_then(|n| blacklist.refuses(n, now))
        .cloned();
    Ok(Verdict {
        identity,
        listed,
        inconsistent,
    })
}

/// A line for people about a refused card.
pub fn refusal_text(v: &Verdict) -> String {
    let card = v
        .identity
        .card_number
        .as_ref()
        .map_or("the card".to_owned(), |n| format!("card {n}"));
    match (&v.listed, &v.inconsistent) {
        (Some(e), _) => format!(
            "{card} is blacklisted ({} since {}): purchase refused",
            e.reason, e.since
        ),
        (None, Some(why)) => format!("{card} is refused: {why}"),
        (None, None) => format!("{card} is not refused"),
    }
}

/// `now` as the blacklist's instants are written.
pub fn instant_text(now: OffsetDateTime) -> String {
    format_instant(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::BlacklistReason;
    use time::macros::datetime;

    #[test]
    fn ssse_name_is_gbk_of_the_spec_name() {
        let (gbk, _, bad) = encoding_rs::GBK.encode("sx1.sh.社会保障");
        assert!(!bad);
        assert_eq!(&gbk[..], &SSSE_NAME[..]);
    }

    #[test]
    fn serial_from_app_serial() {
        let s = [0x00, 0x00, 0x33, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18];
        assert_eq!(serial_of_app_serial(&s), Some(18));
        let bad = [0, 0, 0x33, 0x03, 0, 0, 0, 0, 0, 0x1A];
        assert_eq!(serial_of_app_serial(&bad), None);
    }

    #[test]
    fn entries_count_from_their_instant() {
        let card = CardNumber::parse("W00000018").unwrap();
        let mut list = Blacklist::default();
        list.entries.insert(
            card.to_string(),
            BlacklistEntry {
                card_number: card.to_string(),
                reason: BlacklistReason::Lost,
                since: "2026-01-10T01:00:00Z".into(),
                lifted_at: None,
            },
        );
        assert!(list
            .refuses(&card, datetime!(2026-01-10 00:59:59 UTC))
            .is_none());
        assert!(list
            .refuses(&card, datetime!(2026-01-10 01:00 UTC))
            .is_some());
        let other = CardNumber::parse("W00000026").unwrap();
        assert!(list
            .refuses(&other, datetime!(2027-01-01 0:00 UTC))
            .is_none());
    }

    #[test]
    fn a_cut_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(
            &path,
            "# citizencard-blacklist 1\nW00000018 lost 2026-01-10T01:00:00Z\n",
        )
        .unwrap();
        let e = Blacklist::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("list.txt"), "{e}");
        std::fs::write(
            &path,
            "# citizencard-blacklist 1\nW00000018 lost 2026-01-10T01:00:00Z\n# end 1\n",
        )
        .unwrap();
        let list = Blacklist::from_file(&path).unwrap();
        assert_eq!(list.len(), 1);
    }
}

//! The invariants every chaos and service test checks after each run, in one function so that a
//! new check is added in one place.
//!
//! * one card in use (active or lost) per person, and per card number at most one card image
//!   that reads back as that issued card on the chip the registry recorded (images with the number
//!   on another chip are void copies, listed for the caller to check they were reported);
//! * every active card has an image that reads back as issued with the registry's data (the read-back
//!   verification of personalization, on a copy of the image) and answers its purse;
//! * for every active card: the chip's balance == the ledger balance − what is still owed to the
//!   chip of a carried-over balance, and nothing is owed any more;
//! * a carried-over balance is credited at most once (chip credits never exceed what was moved
//!   in), and no carry-over intent is left open;
//! * the purse log of every image holds each (type, counter) once;
//! * no transaction is left pending in the terminal journals given;
//! * `registry verify` is clean: the audit chain links up to its head and its replay is exactly
//!   what the tables hold (every finding is reported, one violation each).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::apps::guard::read_card_number;
use crate::holder::items::CardNumber;
use crate::keys::KeyStore;
use crate::registry::{CardFilter, CardStatus, Registry};
use crate::terminal::{FileJournal, Terminal, TerminalConfig};
use crate::transport::sim::SimTransport;
use crate::transport::Transport;

/// What [`check`] found.
#[derive(Debug, Default, Clone)]
pub struct InvariantReport {
    /// Individual checks made.
    pub checks: u64,
    /// Active cards checked on their images.
    pub cards: u64,
    /// Card numbers with more than one image of the registry's chip.
    pub duplicates: u64,
    /// Images that carry an active card's number on another chip than the registry recorded
    /// (void copies: a station that lost the issuance wrote them; they must have been reported).
    pub void_copies: Vec<PathBuf>,
    /// Every violation, in words.
    pub violations: Vec<String>,
}

impl InvariantReport {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    fn expect(&mut self, holds: bool, violation: impl FnOnce() -> String) {
        self.checks += 1;
        if !holds {
            self.violations.push(violation());
        }
    }
}

/// Every `*.img` file in `dirs` (not recursive).
pub fn images_in(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().and_then(|x| x.to_str()) == Some("img") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn balance_of_image(image: &Path, keys: &dyn KeyStore, aid: &[u8]) -> Result<u32, String> {
    let t = SimTransport::open_image(image).map_err(|e| e.to_string())?;
    let mut terminal = Terminal::new(
        t,
        keys,
        TerminalConfig {
            aid: aid.to_vec(),
            ..TerminalConfig::default()
        },
    );
    terminal.balance().map_err(|e| e.to_string())
}

fn log_of_image(image: &Path, keys: &dyn KeyStore, aid: &[u8]) -> Result<Vec<(u8, u16)>, String> {
    let t = SimTransport::open_image(image).map_err(|e| e.to_string())?;
    let mut terminal = Terminal::new(
        t,
        keys,
        TerminalConfig {
            aid: aid.to_vec(),
            ..TerminalConfig::default()
        },
    );
    Ok(terminal
        .log()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| (r.txn_type, r.counter))
        .collect())
}

/// Reads a copy of `image` back against what the registry says `card` holds (personalization's
/// read-back: the card must be found issued as this card, and every item must match). The copy
/// keeps the check from changing the image, should it find an unfinished card.
fn verify_copy(
    registry: &Registry,
    card: &CardNumber,
    image: &Path,
    keys: &dyn KeyStore,
) -> Result<(), String> {
    let pending = registry.card_as_recorded(card).map_err(|e| e.to_string())?;
    let dir = tempfile_dir()?;
    let copy = dir.join("copy.img");
    std::fs::copy(image, &copy).map_err(|e| e.to_string())?;
    let result = (|| {
        let mut t = SimTransport::open_image(&copy).map_err(|e| e.to_string())?;
        let historical =
            crate::personalize::historical_bytes(t.atr()).map_err(|e| e.to_string())?;
        let data = crate::personalize::CardData::from_pending(&pending, &historical);
        let profile = crate::profile::Profile::wenzhou();
        let report = crate::personalize::issue(&mut t, keys, &profile, &data, &mut |_| {})
            .map_err(|e| e.to_string())?;
        match report.found {
            crate::personalize::Found::Issued(_) => Ok(()),
            other => Err(format!("the card was {other}, not issued")),
        }
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> Result<PathBuf, String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("citizencard-verify-{}-{n}", std::process::id()));
    // A copy of a card image holds personal data: owner-only, like the image.
    crate::private_fs::create_private_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Checks the invariants of the module docs over `registry`, the card images in `image_dirs`
/// and the terminal journals in `journals` (purse application `aid`, keys `keys`).
pub fn check(
    registry: &Registry,
    image_dirs: &[PathBuf],
    journals: &[PathBuf],
    keys: &dyn KeyStore,
    aid: &[u8],
) -> InvariantReport {
    let mut r = InvariantReport::default();
    let cards = match registry.list_cards(&CardFilter::default()) {
        Ok(c) => c,
        Err(e) => {
            r.expect(false, || format!("registry: {e}"));
            return r;
        }
    };
    // One card in use per person.
    let mut in_use: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &cards {
        if matches!(c.status, CardStatus::Active | CardStatus::Lost) {
            in_use.entry(&c.id_number).or_default().push(&c.card_number);
        }
    }
    for (person, numbers) in &in_use {
        r.expect(numbers.len() == 1, || {
            format!(
                "person {person} holds {} cards in use: {numbers:?}",
                numbers.len()
            )
        });
    }
    // Which images read back as which card, on which chip.
    let mut by_number: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    for image in images_in(image_dirs) {
        let Ok(mut t) = SimTransport::open_image(&image) else {
            continue;
        };
        let chip = crate::personalize::historical_bytes(t.atr())
            .map(|h| hex::encode_upper(h.serial))
            .unwrap_or_default();
        if let Ok(Some(n)) = read_card_number(&mut t as &mut dyn Transport) {
            by_number
                .entry(n.to_string())
                .or_default()
                .push((image, chip));
        }
    }
    for c in &cards {
        let number = &c.card_number;
        let all = by_number.get(number).cloned().unwrap_or_default();
        let (images, void): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(_, chip)| c.chip_id.as_ref().is_none_or(|id| id == chip));
        let images: Vec<PathBuf> = images.into_iter().map(|(p, _)| p).collect();
        if c.status == CardStatus::Active {
            r.void_copies.extend(void.into_iter().map(|(p, _)| p));
        }
        if c.status == CardStatus::Active {
            r.cards += 1;
            r.expect(!images.is_empty(), || {
                format!("active card {number}: no image reads back with its number")
            });
            if images.len() > 1 {
                r.duplicates += 1;
            }
            r.expect(images.len() <= 1, || {
                format!(
                    "card {number}: {} images read back as this card: {images:?}",
                    images.len()
                )
            });
            let Ok(card) = CardNumber::parse(number) else {
                r.expect(false, || format!("card number {number} does not parse"));
                continue;
            };
            let ledger = registry.balance(&card).unwrap_or(i64::MIN);
            let owed = registry.owed_to_chip(&card).unwrap_or(i64::MIN);
            r.expect(owed == 0, || {
                format!("card {number}: {owed} cents still owed to its chip")
            });
            r.expect(owed >= 0, || {
                format!("card {number}: carried over more than moved in ({owed})")
            });
            let open = registry.open_carry_over_intent(&card).ok().flatten();
            r.expect(open.is_none(), || {
                format!("card {number}: carry-over intent left open: {open:?}")
            });
            for image in &images {
                let verified = verify_copy(registry, &card, image, keys);
                r.expect(verified.is_ok(), || {
                    format!(
                        "card {number} ({}): does not read back as issued: {}",
                        image.display(),
                        verified.as_ref().err().cloned().unwrap_or_default()
                    )
                });
                match balance_of_image(image, keys, aid) {
                    Ok(chip) => r.expect(i64::from(chip) == ledger - owed, || {
                        format!(
                            "card {number} ({}): chip balance {chip}, ledger {ledger}, owed {owed}",
                            image.display()
                        )
                    }),
                    Err(e) => r.expect(false, || {
                        format!(
                            "card {number} ({}): the purse does not answer: {e}",
                            image.display()
                        )
                    }),
                }
            }
        }
    }
    // Each (type, counter) once in every purse log.
    for images in by_number.values() {
        for (image, _) in images {
            if let Ok(log) = log_of_image(image, keys, aid) {
                let unique: BTreeSet<_> = log.iter().collect();
                r.expect(unique.len() == log.len(), || {
                    format!(
                        "{}: a counter appears twice in the purse log: {log:?}",
                        image.display()
                    )
                });
            }
        }
    }
    // Nothing left pending.
    for dir in journals {
        let pending = FileJournal::new(dir).all().unwrap_or_default();
        r.expect(pending.is_empty(), || {
            format!(
                "{}: {} transaction(s) left pending",
                dir.display(),
                pending.len()
            )
        });
    }
    // `registry verify`: the tables are what the audit chain says, the chain is whole.
    match registry.verify() {
        Ok(report) => {
            r.expect(report.is_clean(), || {
                format!(
                    "registry verify: {} finding(s) over {} audit records",
                    report.findings.len(),
                    report.audit_records
                )
            });
            for f in &report.findings {
                r.violations.push(format!("registry verify: {f}"));
            }
        }
        Err(e) => r.expect(false, || format!("registry verify could not run: {e}")),
    }
    r
}

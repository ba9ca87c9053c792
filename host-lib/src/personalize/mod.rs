//! # Personalization: a blank card becomes an issued one
//!
//! [`issue`] takes a transport (simulated card or PC/SC reader), the issuer's keys, a checked
//! [`Profile`] and the card's data ([`CardData`]), and:
//!
//! 1. reads the ATR (the third diversification factor) and builds the [`Plan`]: every command,
//!    in order, from the profile and the data. Everything that can be wrong without a card —
//!    an unknown key, a missing factor, a photo that does not fit — fails here, **before any
//!    APDU**;
//! 2. resets the card and finds out what it is: blank, unfinished (a card pulled out, or cut off,
//!    mid-way: it is erased under MF authority and done again) or issued (left alone; if it is
//!    this very card, only verified);
//! 3. runs the steps. Keys reach the card encrypted and MAC'd under the transport key
//!    (`84 D4`, apdu-specs/keys.md §6); only the public transport key itself is written plain,
//!    as each DF's first master;
//! 4. writes the card information with the **issued state last**;
//! 5. resets the card and reads back everything it wrote through the card's own access rules
//!    (EF06 and the photo after RKSSSE authentication), comparing byte for byte.
//!
//! A cut at any APDU — the card pulled out, power lost inside a command, a reader error — leaves
//! a card that the next [`issue`] on it finishes. The [`IssueReport`] gives the APDU counts and
//! the time. [`register`] adds the registry: a card number reserved before, the card recorded as
//! issued only after verification.

mod card_info;
mod channel;
mod plan;
pub mod register;
mod run;

use std::fmt;
use std::time::{Duration, Instant};

use card_os::card::HistoricalBytes;
use serde::Serialize;

pub use card_info::CardInfo;
pub(crate) use channel::{Channel, Reply};
pub use plan::{Plan, Step};

use crate::holder::items::{bcd_encode, CardNumber, CardholderItems, IssuerItems};
use crate::holder::{Photo, RegionCode};
use crate::keys::{CardFactors, FactorError, KeyError, KeyStore, SocialSecurityFactors};
use crate::profile::{Profile, ProfileError};
use crate::registry::PendingCard;
use crate::transport::Transport;

/// What personalization writes onto one card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardData {
    /// EF05.
    pub issuer: IssuerItems,
    /// EF06.
    pub holder: CardholderItems,
    /// EF08, if the applicant gave a photo.
    pub photo: Option<Photo>,
    /// The purse's application serial number (EF0015; its rightmost 8 bytes diversify the
    /// purse keys).
    pub app_serial: [u8; 10],
}

/// The purse application serial number of a card: BCD `0000` ‖ the first 4 digits of the city
/// code ‖ `00` ‖ the card serial in 10 digits (apdu-specs/layout.md).
pub fn app_serial(city: RegionCode, serial: u32) -> [u8; 10] {
    let digits = format!("0000{}00{serial:010}", &city.digits()[..4]);
    let mut out = [0u8; 10];
    out.copy_from_slice(&bcd_encode(&digits));
    out
}

impl CardData {
    /// The data of a card number the registry reserved, for the chip whose ATR historical
    /// bytes are `historical`: the card authentication code of EF05 item 01 is the chip's serial
    /// (ATR bytes TA..TD, apdu-specs/layout.md).
    pub fn from_pending(pending: &PendingCard, historical: &HistoricalBytes) -> CardData {
        let issuer = pending.issuer_items(historical.serial);
        CardData {
            app_serial: app_serial(issuer.card_id.city, pending.serial),
            holder: pending.cardholder_items(),
            photo: pending.holder.photo().cloned(),
            issuer,
        }
    }

    /// The diversification factors of this card in a chip with these ATR historical bytes.
    pub fn factors(&self, historical: &HistoricalBytes) -> Result<CardFactors, FactorError> {
        let ss = SocialSecurityFactors::for_card(
            &self.issuer.card_id.city.digits(),
            &self.issuer.card_id.encode(),
            historical,
        )?;
        CardFactors::NONE
            .with_application_serial(&self.app_serial)
            .map(|f| f.with_social_security(ss))
    }
}

/// The ATR historical bytes T1..TD (LD/T 32 part 2 table 16) of an ATR, found through its
/// interface bytes (ISO/IEC 7816-3 §8.2).
pub fn historical_bytes(atr: &[u8]) -> Result<HistoricalBytes, String> {
    let t0 = *atr.get(1).ok_or("shorter than TS T0")?;
    let k = usize::from(t0 & 0x0F);
    let mut i = 2;
    let mut y = t0 >> 4;
    loop {
        let present = y.count_ones() as usize;
        let td = if y & 0x8 != 0 {
            atr.get(i + present - 1).copied()
        } else {
            None
        };
        i += present;
        match td {
            Some(td) => y = td >> 4,
            None => break,
        }
    }
    let hist = atr
        .get(i..i + k)
        .ok_or_else(|| format!("{k} historical bytes announced, fewer present"))?;
    let t1_td: [u8; 13] = hist
        .get(..13)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| {
            format!(
                "{k} historical bytes; the social-security key diversification needs 13 \
             (T6..TD: card maker, region, serial)"
            )
        })?;
    Ok(HistoricalBytes::from_bytes(t1_td))
}

/// What [`issue`] found on the card before it started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Found {
    /// A blank card (MF only).
    Blank,
    /// A card left unfinished: erased and personalized again.
    Unfinished,
    /// This very card, already issued: only verified.
    Issued(CardInfo),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Blank => f.write_str("blank"),
            Found::Unfinished => f.write_str("unfinished (erased and done again)"),
            Found::Issued(_) => f.write_str("already issued (verified only)"),
        }
    }
}

/// Where personalization is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Finding out what the card is.
    Probing,
    /// Erasing an unfinished card.
    Recovering,
    /// Writing.
    Personalizing,
    /// Reading back.
    Verifying,
}

/// A progress report, before each APDU.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// APDUs sent so far.
    pub done: usize,
    /// APDUs expected in all (grows if the card needs recovery).
    pub total: usize,
    /// The phase.
    pub phase: Phase,
    /// What the next APDU does.
    pub step: &'a str,
}

/// APDUs sent, by phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApduCounts {
    /// Finding out what the card is, and erasing it if it was unfinished.
    pub probe: usize,
    /// Personalization proper.
    pub personalization: usize,
    /// Read-back verification.
    pub verification: usize,
}

impl ApduCounts {
    /// All of them.
    pub fn total(&self) -> usize {
        self.probe + self.personalization + self.verification
    }
}

/// What [`issue`] did.
#[derive(Clone, Debug, Serialize)]
pub struct IssueReport {
    /// The card number.
    pub card_number: CardNumber,
    /// What the card was.
    pub found: Found,
    /// APDUs sent.
    pub apdus: ApduCounts,
    /// Photo bytes written.
    pub photo_bytes: usize,
    /// Wall time, from the first APDU to the last answer.
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    /// The profile.
    pub profile: String,
    /// The key set.
    pub key_set: String,
    /// Issued with a public development key set.
    pub development: bool,
    /// The ATR serial (TA..TD) of the chip.
    pub chip_serial: String,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Why personalization failed. [`PersonalizeError::before_any_apdu`] tells whether the card was
/// touched at all; after a card was touched, running [`issue`] on it again finishes it.
#[derive(Debug, thiserror::Error)]
pub enum PersonalizeError {
    /// The profile cannot work (with these keys).
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// A key could not be used (unknown, missing card data…).
    #[error("keys: {0}")]
    Keys(KeyError),
    /// The card data cannot give the diversification factors.
    #[error("card data: {0}")]
    Factors(#[from] FactorError),
    /// The data does not fit the profile.
    #[error("{0}")]
    Data(String),
    /// The ATR is not one the social-security keys can be diversified for.
    #[error("the card's ATR {atr}: {why}")]
    Atr {
        /// The ATR in hex.
        atr: String,
        /// What is wrong.
        why: String,
    },
    /// The card or reader failed (removed, power lost, reader error).
    #[error("after {sent} APDUs: {source}")]
    Transport {
        /// APDUs sent before.
        sent: usize,
        /// The failure.
        source: crate::transport::Error,
    },
    /// The card refused a command.
    #[error("{step}: the card answered {sw:04X} ({meaning}) to {command} …")]
    Refused {
        /// The step.
        step: String,
        /// The command's header.
        command: String,
        /// The status word.
        sw: u16,
        /// Its meaning.
        meaning: String,
    },
    /// The card answered something unusable.
    #[error("{step}: {detail}")]
    Card {
        /// The step.
        step: String,
        /// What was wrong.
        detail: String,
    },
    /// The card is an issued card (of another card number): it is left alone.
    #[error(
        "this card is already issued, as card {card_number} (profile {profile}, key set \
         {key_set}): it is left as it is; use a blank card"
    )]
    AlreadyIssued {
        /// Its card number.
        card_number: String,
        /// The profile it was issued with.
        profile: String,
        /// The key set it was issued with.
        key_set: String,
    },
    /// The card is not ours to erase.
    #[error("this card cannot be personalized: {0}")]
    ForeignCard(String),
    /// Read-back verification found other bytes than those written.
    #[error("read-back verification failed: {what}: wrote {expected}, read {found}")]
    Verification {
        /// What was compared.
        what: String,
        /// What was written.
        expected: String,
        /// What was read.
        found: String,
    },
}

impl PersonalizeError {
    /// Whether the error happened before any APDU was sent.
    pub fn before_any_apdu(&self) -> bool {
        matches!(
            self,
            PersonalizeError::Profile(_)
                | PersonalizeError::Keys(_)
                | PersonalizeError::Factors(_)
                | PersonalizeError::Data(_)
                | PersonalizeError::Atr { .. }
        ) || matches!(self, PersonalizeError::Transport { sent: 0, .. })
    }
}

/// Personalizes the card behind `transport` (see the module docs). `progress` is called before
/// every APDU.
pub fn issue(
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    profile: &Profile,
    data: &CardData,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<IssueReport, PersonalizeError> {
    // Everything that needs no card.
    let atr = transport.atr().to_vec();
    let historical = historical_bytes(&atr).map_err(|why| PersonalizeError::Atr {
        atr: hex::encode_upper(&atr),
        why,
    })?;
    let factors = data.factors(&historical)?;
    let identity = keys.identity().clone();
    let plan = Plan::build(
        profile,
        data,
        keys,
        &factors,
        identity.development,
        &identity.id,
    )?;

    let started = Instant::now();
    let total = plan.personalization_apdus() + plan.verification_apdus();
    let mut run = run::Run {
        ch: Channel::new(transport),
        keys,
        factors: &factors,
        plan: &plan,
        progress,
        total,
        phase: Phase::Probing,
        started,
    };
    run.reset()?;
    let found = run.prepare()?;
    let after_prepare = run.ch.sent();
    // On a blank card the probe is the first step; an unfinished card's recovery ends with it.
    let probe = match found {
        Found::Blank => 0,
        Found::Unfinished => after_prepare - 1,
        Found::Issued(_) => after_prepare,
    };
    let mut counts = ApduCounts {
        probe,
        ..ApduCounts::default()
    };
    match &found {
        Found::Issued(info) => {
            if info.card_number.as_ref() != Some(&data.issuer.card_number) {
                return Err(PersonalizeError::AlreadyIssued {
                    card_number: info
                        .card_number
                        .as_ref()
                        .map_or_else(|| "?".into(), ToString::to_string),
                    profile: info.profile.clone(),
                    key_set: info.key_set.clone(),
                });
            }
        }
        Found::Blank | Found::Unfinished => {
            run.total = probe + total;
            run.phase = Phase::Personalizing;
            for step in &plan.steps[1..] {
                run.step(step)?;
            }
            counts.personalization = run.ch.sent() - probe;
        }
    }
    run.reset()?;
    let before = run.ch.sent();
    run.verify()?;
    counts.verification = run.ch.sent() - before;
    let elapsed = run.started.elapsed();
    (run.progress)(&Progress {
        done: run.ch.sent(),
        total: run.ch.sent(),
        phase: Phase::Verifying,
        step: "verified",
    });
    Ok(IssueReport {
        card_number: data.issuer.card_number.clone(),
        found,
        apdus: counts,
        photo_bytes: plan.photo_bytes,
        elapsed,
        profile: profile.id.clone(),
        key_set: identity.id,
        development: identity.development,
        chip_serial: hex::encode_upper(historical.serial),
    })
}

/// The plan [`issue`] would run for this card in a chip with this ATR (to count or show it).
pub fn plan(
    atr: &[u8],
    keys: &dyn KeyStore,
    profile: &Profile,
    data: &CardData,
) -> Result<Plan, PersonalizeError> {
    let historical = historical_bytes(atr).map_err(|why| PersonalizeError::Atr {
        atr: hex::encode_upper(atr),
        why,
    })?;
    let factors = data.factors(&historical)?;
    let identity = keys.identity();
    Plan::build(
        profile,
        data,
        keys,
        &factors,
        identity.development,
        &identity.id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn historical_bytes_of_the_simulated_card() {
        let h = HistoricalBytes::wenzhou([0, 0, 0, 7]);
        let atr = card_os::card::system::atr(&h);
        assert_eq!(historical_bytes(&atr).unwrap(), h);
        // An ATR with fewer historical bytes cannot give the L3 factor.
        let e = historical_bytes(&[0x3B, 0x02, 0x14, 0x50]).unwrap_err();
        assert!(e.contains("2 historical bytes"), "{e}");
        assert!(historical_bytes(&[0x3B]).is_err());
        assert!(historical_bytes(&[0x3B, 0x8D, 0x80]).is_err());
    }

    #[test]
    fn application_serial_follows_keys_md() {
        let city = RegionCode::parse("330300").unwrap();
        assert_eq!(
            hex::encode_upper(app_serial(city, 1)),
            "00003303000000000001"
        );
        assert_eq!(
            hex::encode_upper(app_serial(city, 12_345_678)),
            "00003303000012345678"
        );
    }
}

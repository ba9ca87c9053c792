//! Issuance by a station: a card number reserved with its lease, the card personalized and read
//! back, and only then — if this station still holds the lease — recorded as issued.
//!
//! A second station that meets an applicant whose card another live station is personalizing is
//! refused ([`IssueFailure::Leased`]) before it touches any card. A card this station personalized
//! but the registry no longer gives to it (another station took the lease over after this one's
//! expired, or the issuance was completed or aborted elsewhere) is reported as
//! [`IssueFailure::Void`], with what to do with it.

use std::ops::AddAssign;
use std::time::{Duration, Instant};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::holder::items::CardNumber;
use crate::holder::Applicant;
use crate::keys::KeyStore;
use crate::personalize::{
    self, historical_bytes, CardData, IssueReport, PersonalizeError, Progress,
};
use crate::profile::Profile;
use crate::registry::{
    ChipInfo, IssuedCard, LeaseRequest, PendingCard, Registry, RegistryError, Station,
};
use crate::transport::Transport;

/// The station that issues, and how long its leases last.
#[derive(Debug, Clone)]
pub struct IssueDesk<'a> {
    /// Who is at the counter (audit log).
    pub operator: &'a str,
    /// This station.
    pub station: &'a Station,
    /// How long a lease lasts.
    pub lease: Duration,
}

impl IssueDesk<'_> {
    fn lease(&self) -> LeaseRequest<'_> {
        LeaseRequest {
            station: self.station,
            ttl: self.lease,
        }
    }
}

/// Where the wall-clock time of an issuance went: waiting for the registry, or for the card.
///
/// A station's throughput is bounded by the card (its APDUs, its NVM writes); the registry's
/// share says what a shared registry costs each station (the load benchmark,
/// `scripts/registry-load.sh`, reports both). Time in neither (building the plan's data, the
/// caller's own work) is left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// In registry calls: reservation, lease renewal, completion.
    pub registry: Duration,
    /// With the card: opening it (a simulated card: its image) and personalization with its
    /// read-back.
    pub card: Duration,
}

impl Timings {
    /// Runs `f`, adding its time to the registry's share.
    fn registry<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.registry += started.elapsed();
        out
    }

    /// Runs `f`, adding its time to the card's share.
    fn card<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.card += started.elapsed();
        out
    }
}

impl AddAssign for Timings {
    fn add_assign(&mut self, other: Timings) {
        self.registry += other.registry;
        self.card += other.card;
    }
}

/// As `{"registry_ms": 1.25, "card_ms": 80.5}`.
impl Serialize for Timings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Timings", 2)?;
        st.serialize_field("registry_ms", &(self.registry.as_secs_f64() * 1e3))?;
        st.serialize_field("card_ms", &(self.card.as_secs_f64() * 1e3))?;
        st.end()
    }
}

/// A card number reserved by this station: new, or an unfinished issuance taken over.
#[derive(Debug, Clone, Serialize)]
pub struct Reservation {
    /// What personalization needs.
    pub pending: PendingCard,
    /// `true` when an unfinished issuance was resumed.
    pub resumed: bool,
    /// The registry's time for the reservation.
    pub timings: Timings,
}

/// A reserved card personalized, verified and recorded as issued.
#[derive(Debug, Clone, Serialize)]
pub struct Completed {
    /// What personalization did.
    pub report: IssueReport,
    /// What the registry recorded.
    pub issued: IssuedCard,
    /// The card's time (personalization) and the registry's (lease renewal, completion).
    pub timings: Timings,
}

/// A card issued.
#[derive(Debug, Clone, Serialize)]
pub struct IssueOutcome {
    /// The reservation.
    pub reservation: Reservation,
    /// What personalization did.
    pub report: IssueReport,
    /// What the registry recorded.
    pub issued: IssuedCard,
    /// The whole workflow's time: reservation, opening the card, personalization, completion.
    pub timings: Timings,
}

/// Why a card was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueFailure {
    /// The registry refused (not eligible, a card in use…) or failed before any card was touched.
    #[error("{0}")]
    Refused(RegistryError),
    /// Another live station is personalizing this applicant's card: nothing was touched.
    #[error("{0}")]
    Leased(RegistryError),
    /// This station lost the issuance before writing the card (another station took it over,
    /// or it was completed or aborted elsewhere): nothing was written.
    #[error("{0}; nothing was written on this card")]
    LostBeforeWriting(RegistryError),
    /// The card could not be opened.
    #[error("card {card_number}: {message}")]
    NoCard {
        /// The reserved number.
        card_number: CardNumber,
        /// What failed.
        message: String,
    },
    /// Personalization failed; the number stays reserved for this station's re-run.
    #[error("card {card_number}: {source}")]
    Personalize {
        /// The reserved number.
        card_number: CardNumber,
        /// What failed.
        source: PersonalizeError,
    },
    /// The card was personalized and verified, but the registry could not record it (it failed):
    /// running the same issuance again with the same card records it.
    #[error(
        "card {card_number} was personalized and verified, but the registry could not record it \
         ({source}); run the issuance again with the same card to record it"
    )]
    NotRecorded {
        /// The number.
        card_number: CardNumber,
        /// What failed.
        source: RegistryError,
    },
    /// The card this station personalized is not the registry's card: it must not be handed out.
    #[error(
        "VOID CARD: {card_number} was personalized at this station, but {source}. The registry \
         has no issuance of this card for this station: do not hand it out; erase it (a \
         simulated card: delete its image; a chip: personalize it again for another applicant) \
         and check `citizencard registry show {card_number}` for the card that counts"
    )]
    Void {
        /// The number written on the void card.
        card_number: CardNumber,
        /// What the registry says.
        source: RegistryError,
    },
}

impl IssueFailure {
    /// Whether any card was touched (a re-run with the same card finishes it).
    pub fn card_touched(&self) -> bool {
        match self {
            IssueFailure::Personalize { source, .. } => !source.before_any_apdu(),
            IssueFailure::NotRecorded { .. } | IssueFailure::Void { .. } => true,
            _ => false,
        }
    }

    /// Whether the registry's database server could not be reached (down, or the connection
    /// lost mid-way): every next card would fail the same way, so a batch stops here, and the
    /// same command run again once the server is back finishes the card under way.
    pub fn registry_unreachable(&self) -> bool {
        let registry = match self {
            IssueFailure::Refused(e)
            | IssueFailure::Leased(e)
            | IssueFailure::LostBeforeWriting(e)
            | IssueFailure::NotRecorded { source: e, .. }
            | IssueFailure::Void { source: e, .. } => e,
            IssueFailure::NoCard { .. } | IssueFailure::Personalize { .. } => return false,
        };
        matches!(
            registry,
            RegistryError::Database(crate::registry::db::DbError::Unreachable { .. })
        )
    }
}

/// The active card of the applicant when [`reserve`] refused because they hold one
/// ([`RegistryError::AlreadyHasCard`], status active): a re-run after the issuance completed
/// (e.g. the station was killed just after) meets it.
pub fn active_card_of(failure: &IssueFailure) -> Option<CardNumber> {
    match failure {
        IssueFailure::Refused(RegistryError::AlreadyHasCard {
            card_number,
            status: crate::registry::CardStatus::Active,
            ..
        }) => CardNumber::parse(card_number).ok(),
        _ => None,
    }
}

/// What the card at hand is, against the registry's active card `card`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AtHand {
    /// The registry's card: same card number (EF05 item 07) and same chip.
    ThisCard,
    /// A card that carries the number but is another chip than the one the registry recorded:
    /// written by a station that lost the issuance (void).
    VoidCopy {
        /// The chip serial at hand (ATR).
        chip: String,
        /// The chip the registry recorded.
        recorded: String,
    },
    /// Not this card (another number, or none).
    Other,
}

/// Whether the card behind `transport` is the registry's active card `card` (see [`AtHand`]).
pub fn card_at_hand(
    registry: &Registry,
    transport: &mut dyn Transport,
    card: &CardNumber,
) -> AtHand {
    if !matches!(crate::apps::guard::read_card_number(transport), Ok(Some(n)) if &n == card) {
        return AtHand::Other;
    }
    let chip = historical_bytes(transport.atr())
        .map(|h| hex::encode_upper(h.serial))
        .unwrap_or_default();
    match registry
        .card_details(card)
        .ok()
        .and_then(|d| d.card.chip_id)
    {
        Some(recorded) if recorded != chip => AtHand::VoidCopy { chip, recorded },
        _ => AtHand::ThisCard,
    }
}

/// Reserves a card number for `applicant` with this station's lease (`begin_issue_leased`), or
/// takes over an unfinished issuance no live station holds (`resume_issue_leased`).
pub fn reserve(
    registry: &mut Registry,
    desk: &IssueDesk<'_>,
    applicant: &Applicant,
    keys: &dyn KeyStore,
) -> Result<Reservation, IssueFailure> {
    let chip = ChipInfo {
        chip_id: None,
        key_set: Some(keys.identity().id.clone()),
    };
    let lease = desk.lease();
    let refused = |e: RegistryError| match e {
        RegistryError::Leased { .. } => IssueFailure::Leased(e),
        e => IssueFailure::Refused(e),
    };
    let mut timings = Timings::default();
    match timings.registry(|| registry.begin_issue_leased(desk.operator, applicant, &chip, &lease))
    {
        Ok(pending) => Ok(Reservation {
            pending,
            resumed: false,
            timings,
        }),
        Err(RegistryError::UnfinishedIssue { card_number, .. }) => {
            let number = CardNumber::parse(&card_number)
                .map_err(|e| IssueFailure::Refused(RegistryError::Corrupt(e.to_string())))?;
            let pending = timings
                .registry(|| registry.resume_issue_leased(desk.operator, &number, &chip, &lease))
                .map_err(refused)?;
            Ok(Reservation {
                pending,
                resumed: true,
                timings,
            })
        }
        Err(e) => Err(refused(e)),
    }
}

/// Personalizes the card behind `transport` as the reserved `pending` and, once it is verified,
/// records it as issued for this station (`complete_issue_leased`).
pub fn personalize_and_complete(
    registry: &mut Registry,
    desk: &IssueDesk<'_>,
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    profile: &Profile,
    pending: &PendingCard,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<Completed, IssueFailure> {
    let card_number = pending.card_number.clone();
    let failed = |source: PersonalizeError| IssueFailure::Personalize {
        card_number: card_number.clone(),
        source,
    };
    let mut timings = Timings::default();
    // The card may have taken a while to arrive (a reader, --wait): the lease is renewed before
    // the first APDU, and a station that lost it learns so before writing anything.
    timings
        .registry(|| registry.renew_lease(&card_number, &desk.lease()))
        .map_err(|e| match e {
            RegistryError::LeaseLost { .. } => IssueFailure::LostBeforeWriting(e),
            e => IssueFailure::Refused(e),
        })?;
    let atr = transport.atr().to_vec();
    let historical = historical_bytes(&atr).map_err(|why| {
        failed(PersonalizeError::Atr {
            atr: hex::encode_upper(&atr),
            why,
        })
    })?;
    let data = CardData::from_pending(pending, &historical);
    let report = timings
        .card(|| personalize::issue(transport, keys, profile, &data, progress))
        .map_err(failed)?;
    let chip = ChipInfo {
        chip_id: Some(report.chip_serial.clone()),
        key_set: Some(report.key_set.clone()),
    };
    match timings.registry(|| {
        registry.complete_issue_leased(desk.operator, &card_number, &chip, desk.station)
    }) {
        Ok(issued) => Ok(Completed {
            report,
            issued,
            timings,
        }),
        Err(source @ RegistryError::LeaseLost { .. }) => Err(IssueFailure::Void {
            card_number,
            source,
        }),
        Err(source) => Err(IssueFailure::NotRecorded {
            card_number,
            source,
        }),
    }
}

/// Issues one card: [`reserve`], `open_card` for the reserved number, then
/// [`personalize_and_complete`].
pub fn issue_one(
    registry: &mut Registry,
    desk: &IssueDesk<'_>,
    applicant: &Applicant,
    keys: &dyn KeyStore,
    profile: &Profile,
    open_card: &mut super::OpenPending<'_>,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<IssueOutcome, IssueFailure> {
    let reservation = reserve(registry, desk, applicant, keys)?;
    let mut timings = reservation.timings;
    let mut transport = timings
        .card(|| open_card(&reservation.pending))
        .map_err(|message| IssueFailure::NoCard {
            card_number: reservation.pending.card_number.clone(),
            message,
        })?;
    let completed = personalize_and_complete(
        registry,
        desk,
        transport.as_mut(),
        keys,
        profile,
        &reservation.pending,
        progress,
    )?;
    timings += completed.timings;
    Ok(IssueOutcome {
        reservation,
        report: completed.report,
        issued: completed.issued,
        timings,
    })
}

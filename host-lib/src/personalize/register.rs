//! Personalization with the issuance registry: a card number is reserved before any APDU
//! ([`reserve`]), and the card is recorded as issued only after [`super::issue`] verified it
//! ([`issue_pending`]). A card that fails stays `personalizing` in the registry; the next
//! [`reserve`] for the same applicant hands the same number back (`resume_issue`), and the next
//! [`issue_pending`] on the same card finishes it.
//!
//! Replacements (`begin_replace`) give a [`PendingCard`] too, so [`issue_pending`] serves them
//! unchanged.
//!
//! These take no issuance lease: stations (the CLI, anything that may run beside another
//! station) use [`crate::service::issue`], which does.

use super::{historical_bytes, issue, CardData, IssueReport, PersonalizeError, Progress};
use crate::holder::items::CardNumber;
use crate::holder::Applicant;
use crate::keys::KeyStore;
use crate::profile::Profile;
use crate::registry::{ChipInfo, IssuedCard, PendingCard, Registry, RegistryError};
use crate::transport::Transport;

/// A reserved card number: new, or handed back for a re-run.
#[derive(Debug, Clone)]
pub struct Reserved {
    /// What personalization needs.
    pub pending: PendingCard,
    /// `true` when the applicant's earlier issuance was unfinished and is resumed.
    pub resumed: bool,
}

/// Why issuing with the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The registry refused or failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// Personalization failed; the card number stays reserved (`personalizing`).
    #[error("card {card_number}: {source}")]
    Personalize {
        /// The reserved card number.
        card_number: CardNumber,
        /// What failed.
        source: PersonalizeError,
    },
    /// The card was personalized and verified, but the registry could not record it: the
    /// card is issued on the chip and `personalizing` in the registry; run the issuance again
    /// with the same card to record it.
    #[error(
        "card {card_number} was personalized and verified, but the registry could not record \
         it ({source}); run the issuance again with the same card to record it"
    )]
    NotRecorded {
        /// The card number.
        card_number: CardNumber,
        /// The report of the personalization.
        report: Box<IssueReport>,
        /// What failed.
        source: RegistryError,
    },
}

/// Reserves a card number for `applicant` (`begin_issue`), or hands back the one of an
/// unfinished issuance (`resume_issue`).
pub fn reserve(
    registry: &mut Registry,
    operator: &str,
    applicant: &Applicant,
    keys: &dyn KeyStore,
) -> Result<Reserved, RegistryError> {
    let chip = ChipInfo {
        chip_id: None,
        key_set: Some(keys.identity().id.clone()),
    };
    match registry.begin_issue(operator, applicant, &chip) {
        Ok(pending) => Ok(Reserved {
            pending,
            resumed: false,
        }),
        Err(RegistryError::UnfinishedIssue { card_number, .. }) => {
            let number = CardNumber::parse(&card_number)
                .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
            Ok(Reserved {
                pending: registry.resume_issue(operator, &number, &chip)?,
                resumed: true,
            })
        }
        Err(e) => Err(e),
    }
}

/// Personalizes the card behind `transport` as `pending` and, once it is verified, records it
/// as issued (`complete_issue`, with the chip's serial).
pub fn issue_pending(
    registry: &mut Registry,
    operator: &str,
    transport: &mut dyn Transport,
    keys: &dyn KeyStore,
    profile: &Profile,
    pending: &PendingCard,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<(IssueReport, IssuedCard), IssueError> {
    let card_number = pending.card_number.clone();
    let failed = |source: PersonalizeError| IssueError::Personalize {
        card_number: card_number.clone(),
        source,
    };
    let atr = transport.atr().to_vec();
    let historical = historical_bytes(&atr).map_err(|why| {
        failed(PersonalizeError::Atr {
            atr: hex::encode_upper(&atr),
            why,
        })
    })?;
    let data = CardData::from_pending(pending, &historical);
    let report = issue(transport, keys, profile, &data, progress).map_err(failed)?;
    let chip = ChipInfo {
        chip_id: Some(report.chip_serial.clone()),
        key_set: Some(report.key_set.clone()),
    };
    match registry.complete_issue(operator, &card_number, &chip) {
        Ok(issued) => Ok((report, issued)),
        Err(source) => Err(IssueError::NotRecorded {
            card_number,
            report: Box::new(report),
            source,
        }),
    }
}

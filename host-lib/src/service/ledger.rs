//! The exactly-once recorder of card transactions.
//!
//! [`record`] takes a transaction the terminal proved (MAC2 and TAC verified) and records it in
//! the registry once: a load in the purse ledger, a load that was a carried-over balance (the
//! registry wrote its intent before CREDIT) as a chip credit, a purchase in the purse ledger. The
//! card is found by its application serial (the card serial inside it, 1:1 with the card
//! number); the ledger's unique keys (card, counter, type) make a second recording of the same
//! transaction a no-op ([`Recorded::Already`]).

use serde::Serialize;

use crate::apps::guard::serial_of_app_serial;
use crate::holder::items::CardNumber;
use crate::registry::{ChipCredit, Registry, RegistryError};
use crate::terminal::{TransactionKind, TransactionRecord};

/// What [`record`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "recorded", rename_all = "snake_case")]
pub enum Recorded {
    /// A new ledger entry (or chip credit).
    New {
        /// The card.
        card_number: CardNumber,
        /// `load`, `purchase` or `carry_over`.
        kind: &'static str,
    },
    /// The registry held it already (a transaction settled again after a crash).
    Already {
        /// The card.
        card_number: CardNumber,
        /// `load`, `purchase` or `carry_over`.
        kind: &'static str,
    },
    /// Not a card of this registry (a purse-only card, another issuer's card).
    UnknownCard,
}

/// The registry's card behind an application serial, if it issued one.
pub fn card_of(
    registry: &Registry,
    app_serial: &[u8; 10],
) -> Result<Option<CardNumber>, RegistryError> {
    match serial_of_app_serial(app_serial) {
        Some(serial) => registry.card_by_serial(serial),
        None => Ok(None),
    }
}

/// Records a proven transaction once (see the module docs). An unverified record is refused
/// (the registry records only what the card proved).
pub fn record(
    registry: &mut Registry,
    operator: &str,
    r: &TransactionRecord,
) -> Result<Recorded, RegistryError> {
    let Some(card) = card_of(registry, &r.card_serial)? else {
        return Ok(Recorded::UnknownCard);
    };
    let (kind, result) = match r.kind {
        TransactionKind::Load if registry.is_carry_over(&card, r.card_counter)? => (
            "carry_over",
            registry
                .record_chip_credit(
                    operator,
                    &card,
                    &ChipCredit {
                        amount_cents: r.amount,
                        txn_counter: r.card_counter,
                        tac: r.tac,
                    },
                )
                .map(drop),
        ),
        TransactionKind::Load => {
            let load = r.load_record().ok_or_else(|| unverified(&card))?;
            (
                "load",
                registry.record_load(operator, &card, &load).map(drop),
            )
        }
        TransactionKind::Purchase | TransactionKind::CappPurchase => {
            let p = r.verified_purchase().ok_or_else(|| unverified(&card))?;
            (
                "purchase",
                registry.record_purchase(operator, &card, &p).map(drop),
            )
        }
    };
    match result {
        Ok(()) => Ok(Recorded::New {
            card_number: card,
            kind,
        }),
        Err(RegistryError::AlreadyRecorded { .. }) => Ok(Recorded::Already {
            card_number: card,
            kind,
        }),
        Err(e) => Err(e),
    }
}

fn unverified(card: &CardNumber) -> RegistryError {
    RegistryError::Corrupt(format!(
        "card {card}: a transaction whose proof did not verify is not recorded"
    ))
}

//! Carry-over intents: a carried-over balance is loaded onto a replacement chip exactly once.
//!
//! The load host writes its pending transaction (the INITIALIZE FOR LOAD answer, the amount,
//! date and time, MAC2) here **before** it sends CREDIT FOR LOAD
//! ([`Registry::record_carry_over_intent`]). [`Registry::record_chip_credit`] settles the intent
//! as done; a run that meets an open intent asks the card whether that CREDIT happened (GET
//! TRANSACTION PROOF, else the purse log) and records the credit, or settles the intent as not
//! done ([`Registry::settle_carry_over_not_done`]) before loading again. A failure of the registry
//! between CREDIT and recording it can therefore never load the balance twice.

use super::db::{params, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::apps::owed;
use super::lifecycle::{audit, check_operator, load_card};
use super::{CardStatus, Registry, RegistryError, Result};
use crate::holder::items::CardNumber;

/// An intent to credit a carried-over balance, not settled yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarryOverIntent {
    /// The replacement card.
    pub card_number: String,
    /// Amount in cents.
    pub amount_cents: u32,
    /// The card's online counter of the CREDIT (from INITIALIZE FOR LOAD).
    pub txn_counter: u16,
    /// The load host's pending transaction (JSON, `terminal::Pending`).
    pub pending: String,
    /// When it was written.
    pub at: String,
}

impl Registry {
    /// Writes down, before CREDIT FOR LOAD is sent, that `amount_cents` of the carried-over
    /// balance of `card` is about to be credited with online counter `txn_counter`. Refused for a
    /// card that is not active, for more than is owed, and while another intent of the card is
    /// open (settle it first).
    pub fn record_carry_over_intent(
        &mut self,
        operator: &str,
        card: &CardNumber,
        amount_cents: u32,
        txn_counter: u16,
        pending: &str,
    ) -> Result<()> {
        let op = check_operator(operator)?.to_owned();
        if amount_cents == 0 {
            return Err(RegistryError::ZeroAmount);
        }
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        let refuse = |hint: String| RegistryError::Transition {
            card_number: card.to_string(),
            status: row.status,
            action: "credit a carried-over balance to",
            hint,
        };
        if row.status != CardStatus::Active {
            return Err(refuse("only an active card can be loaded".into()));
        }
        if let Some(open) = open_intent(&tx, card.as_str())? {
            return Err(refuse(format!(
                "a credit of {} cents with counter {} may have happened already: settle it \
                 with the card first",
                open.amount_cents, open.txn_counter
            )));
        }
        let due = owed(&tx, card.as_str())?;
        if i64::from(amount_cents) > due {
            return Err(refuse(format!(
                "{amount_cents} cents were asked for, but only {due} cents are owed to its chip"
            )));
        }
        tx.execute(
            "INSERT INTO carry_over_intents (card_number, amount_cents, txn_counter, pending, at, \
             operator) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![card.as_str(), amount_cents, txn_counter, pending, at, op],
        )?;
        audit(
            &tx,
            &at,
            &op,
            "purse.carry_over_intent",
            Some(card.as_str()),
            None,
            json!({ "amount_cents": amount_cents, "txn_counter": txn_counter }),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The open (unsettled) carry-over intent of a card, if any.
    pub fn open_carry_over_intent(&self, card: &CardNumber) -> Result<Option<CarryOverIntent>> {
        open_intent(&self.conn()?, card.as_str())
    }

    /// Whether a carry-over intent (open or done) was written for this card and counter: a load
    /// with that counter is a carried-over credit, not a new load. (An intent settled as not done
    /// leaves its counter to the next load.)
    pub fn is_carry_over(&self, card: &CardNumber, txn_counter: u16) -> Result<bool> {
        let n: i64 = self.conn()?.query_row(
            "SELECT count(*) FROM carry_over_intents WHERE card_number = ?1 AND txn_counter = ?2 \
             AND (outcome IS NULL OR outcome = 'done')",
            params![card.as_str(), txn_counter],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Settles the open intent of `card` with counter `txn_counter` as **not done**: the card
    /// proved that CREDIT did not happen, so nothing of it is on the chip.
    pub fn settle_carry_over_not_done(
        &mut self,
        operator: &str,
        card: &CardNumber,
        txn_counter: u16,
        cause: &str,
    ) -> Result<()> {
        let op = check_operator(operator)?.to_owned();
        let (tx, at) = self.begin()?;
        let n = tx.execute(
            "UPDATE carry_over_intents SET outcome = 'not_done', settled_at = ?1 \
             WHERE card_number = ?2 AND txn_counter = ?3 AND outcome IS NULL",
            params![at, card.as_str(), txn_counter],
        )?;
        if n != 1 {
            return Err(RegistryError::Corrupt(format!(
                "card {card}: no open carry-over intent with counter {txn_counter}"
            )));
        }
        audit(
            &tx,
            &at,
            &op,
            "purse.carry_over_not_done",
            Some(card.as_str()),
            None,
            json!({ "txn_counter": txn_counter, "cause": cause }),
        )?;
        tx.commit()?;
        Ok(())
    }
}

fn open_intent(conn: &super::db::Conn<'_>, card: &str) -> Result<Option<CarryOverIntent>> {
    Ok(conn
        .query_row(
            "SELECT card_number, amount_cents, txn_counter, pending, at FROM carry_over_intents \
             WHERE card_number = ?1 AND outcome IS NULL",
            [card],
            |r| {
                Ok(CarryOverIntent {
                    card_number: r.get(0)?,
                    amount_cents: r.get(1)?,
                    txn_counter: r.get(2)?,
                    pending: r.get(3)?,
                    at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

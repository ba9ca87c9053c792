//! The purse ledger: what the registry knows of each card's electronic purse.
//!
//! The registry does not see the card's balance; it sees loads made at service points, purchases
//! that terminals upload (only those whose TAC the terminal module verified), and the refunds and
//! transfers it makes itself. The sum of a card's entries is its *ledger balance*. It can be
//! higher than the chip's balance while offline purchases have not been uploaded yet; a
//! purchase uploaded after the balance moved (replacement) or was refunded (cancellation) drives
//! the old card's ledger balance below zero, and [`Registry::loss_statement`] tells whose loss
//! it is.

use super::db::{params, OptionalExtension};
use serde::Serialize;
use serde_json::json;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::clock::format_instant;
use super::lifecycle::{audit, balance_of, check_operator, load_card};
use super::{keyword_enum, CardStatus, Registry, RegistryError, Result};
use crate::holder::items::CardNumber;
use crate::holder::CHINA_TIME;

keyword_enum! {
    /// The kind of a ledger entry.
    LedgerKind {
        /// Money loaded into the purse (positive).
        Load = "load",
        /// A purchase whose TAC was verified (negative).
        Purchase = "purchase",
        /// The balance paid out on cancellation (negative or zero).
        Refund = "refund",
        /// The balance moved to the replacement card (negative).
        TransferOut = "transfer_out",
        /// The balance received from the replaced card (positive).
        TransferIn = "transfer_in",
    }
}

/// A purchase a terminal reported and whose TAC it verified. Only record purchases whose TAC was
/// checked against the issuer's keys: the TAC covers the amount, terminal, date and time, so those
/// are the card's own word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPurchase {
    /// Amount in cents (> 0).
    pub amount_cents: u32,
    /// When it happened: the transaction date and time, as covered by the TAC.
    pub at: OffsetDateTime,
    /// The terminal number (6 bytes, 12 hex digits).
    pub terminal_id: String,
    /// The card's offline transaction counter for this purchase (identifies it: recording the
    /// same counter twice is refused).
    pub txn_counter: u16,
    /// The verified TAC.
    pub tac: [u8; 4],
}

impl VerifiedPurchase {
    /// The instant of a terminal's local date and time (terminals run on China time).
    pub fn terminal_time(local: PrimitiveDateTime) -> OffsetDateTime {
        local.assume_offset(CHINA_TIME)
    }
}

/// A load at a service point.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadRecord {
    /// Amount in cents (> 0).
    pub amount_cents: u32,
    /// The card's online transaction counter, if known (recording it twice is refused).
    pub txn_counter: Option<u16>,
    /// The loading terminal, if known.
    pub terminal_id: Option<String>,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// Entry id (increasing).
    pub id: i64,
    /// The card.
    pub card_number: String,
    /// Kind.
    pub kind: LedgerKind,
    /// Signed amount in cents.
    pub amount_cents: i64,
    /// When it happened.
    pub at: String,
    /// When it was recorded.
    pub recorded_at: String,
    /// The other card of a transfer.
    pub counterpart: Option<String>,
    /// Terminal.
    pub terminal_id: Option<String>,
    /// Card transaction counter.
    pub txn_counter: Option<u32>,
    /// TAC (hex).
    pub tac: Option<String>,
    /// Who recorded it.
    pub operator: String,
}

/// Who bears a purchase on a card reported lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liability {
    /// Made before the loss report (or outside any report): the holder's.
    Holder,
    /// Made while the card was reported lost: the registry's / issuer's concern.
    Issuer,
}

/// A period during which a card stood reported lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossWindow {
    /// The instant of the report.
    pub reported_at: String,
    /// When the report was taken back (card found), if it was.
    pub revoked_at: Option<String>,
}

/// A purchase in a loss statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurchaseEntry {
    /// When it happened.
    pub at: String,
    /// Amount in cents (positive).
    pub amount_cents: i64,
    /// Terminal.
    pub terminal_id: Option<String>,
    /// Card counter.
    pub txn_counter: Option<u32>,
    /// Whose it is.
    pub liability: Liability,
}

/// The purchases of a card that was reported lost, split by liability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LossStatement {
    /// The card.
    pub card_number: String,
    /// Loss reports, oldest first.
    pub windows: Vec<LossWindow>,
    /// Purchases that are the holder's (made before the report, or after it was revoked).
    pub holder: Vec<PurchaseEntry>,
    /// Purchases made while the card stood reported lost.
    pub issuer: Vec<PurchaseEntry>,
    /// Sum of `holder`, in cents.
    pub holder_total_cents: i64,
    /// Sum of `issuer`, in cents.
    pub issuer_total_cents: i64,
}

fn liability(windows: &[LossWindow], at: &str) -> Liability {
    let inside = windows
        .iter()
        .any(|w| w.reported_at.as_str() <= at && w.revoked_at.as_deref().is_none_or(|r| at < r));
    if inside {
        Liability::Issuer
    } else {
        Liability::Holder
    }
}

fn check_terminal(id: &str) -> Result<String> {
    let t = id.trim().to_ascii_uppercase();
    if t.len() == 12 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t)
    } else {
        Err(RegistryError::TerminalId(id.to_owned()))
    }
}

impl Registry {
    /// Records a load at a service point on an active card; returns the new ledger balance.
    pub fn record_load(
        &mut self,
        operator: &str,
        card: &CardNumber,
        load: &LoadRecord,
    ) -> Result<i64> {
        let op = check_operator(operator)?.to_owned();
        if load.amount_cents == 0 {
            return Err(RegistryError::ZeroAmount);
        }
        let terminal = load
            .terminal_id
            .as_deref()
            .map(check_terminal)
            .transpose()?;
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Active {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "load",
                hint: "only an active card can be loaded".into(),
            });
        }
        if let Some(c) = load.txn_counter {
            let dup: Option<i64> = tx
                .query_row(
                    "SELECT id FROM purse_ledger WHERE card_number = ?1 AND kind = 'load' \
                     AND txn_counter = ?2",
                    params![card.as_str(), c],
                    |r| r.get(0),
                )
                .optional()?;
            if dup.is_some() {
                return Err(RegistryError::AlreadyRecorded {
                    card_number: card.to_string(),
                    kind: "load",
                    counter: u32::from(c),
                });
            }
        }
        tx.execute(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, \
             terminal_id, txn_counter, operator) VALUES (?1, 'load', ?2, ?3, ?3, ?4, ?5, ?6)",
            params![
                card.as_str(),
                i64::from(load.amount_cents),
                at,
                terminal,
                load.txn_counter,
                op
            ],
        )?;
        let balance = balance_of(&tx, card.as_str())?;
        audit(
            &tx,
            &at,
            &op,
            "purse.load",
            Some(card.as_str()),
            None,
            json!({ "amount_cents": load.amount_cents, "txn_counter": load.txn_counter,
                    "terminal_id": terminal, "balance_cents": balance }),
        )?;
        tx.commit()?;
        Ok(balance)
    }

    /// Records a purchase whose TAC was verified. Accepted for cards that were issued (active,
    /// lost or already closed: terminals upload late); refused for cards never issued. Returns
    /// whose loss the purchase is if the card was reported lost at its time.
    pub fn record_purchase(
        &mut self,
        operator: &str,
        card: &CardNumber,
        p: &VerifiedPurchase,
    ) -> Result<Liability> {
        let op = check_operator(operator)?.to_owned();
        if p.amount_cents == 0 {
            return Err(RegistryError::ZeroAmount);
        }
        let terminal = check_terminal(&p.terminal_id)?;
        let (tx, now) = self.begin()?;
        let row = load_card(&tx, card)?;
        if matches!(row.status, CardStatus::Personalizing | CardStatus::Aborted) {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "record a purchase on",
                hint: "it was never issued".into(),
            });
        }
        let at = format_instant(p.at);
        let liab = liability(&loss_windows(&tx, card.as_str())?, &at);
        let dup: Option<i64> = tx
            .query_row(
                "SELECT id FROM purse_ledger WHERE card_number = ?1 AND kind = 'purchase' \
                 AND txn_counter = ?2",
                params![card.as_str(), p.txn_counter],
                |r| r.get(0),
            )
            .optional()?;
        if dup.is_some() {
            return Err(RegistryError::AlreadyRecorded {
                card_number: card.to_string(),
                kind: "purchase",
                counter: u32::from(p.txn_counter),
            });
        }
        let tac = hex::encode_upper(p.tac);
        tx.execute(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, \
             terminal_id, txn_counter, tac, operator) \
             VALUES (?1, 'purchase', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                card.as_str(),
                -i64::from(p.amount_cents),
                at,
                now,
                terminal,
                p.txn_counter,
                tac,
                op
            ],
        )?;
        audit(
            &tx,
            &now,
            &op,
            "purse.purchase",
            Some(card.as_str()),
            None,
            json!({ "amount_cents": p.amount_cents, "at": at, "terminal_id": terminal,
                    "txn_counter": p.txn_counter, "tac": tac, "liability": liab,
                    "card_status": row.status }),
        )?;
        tx.commit()?;
        Ok(liab)
    }

    /// The ledger balance of a card, in cents.
    pub fn balance(&self, card: &CardNumber) -> Result<i64> {
        self.require_card(card)?;
        balance_of(&self.conn()?, card.as_str())
    }

    /// A card's ledger entries, oldest first.
    pub fn ledger(&self, card: &CardNumber) -> Result<Vec<LedgerEntry>> {
        self.require_card(card)?;
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, card_number, kind, amount_cents, at, recorded_at, counterpart, \
             terminal_id, txn_counter, tac, operator FROM purse_ledger WHERE card_number = ?1 \
             ORDER BY id",
        )?;
        let rows = st.query_map([card.as_str()], |r| {
            let kind: String = r.get(2)?;
            Ok(LedgerEntry {
                id: r.get(0)?,
                card_number: r.get(1)?,
                kind: LedgerKind::parse(&kind).unwrap_or(LedgerKind::Load),
                amount_cents: r.get(3)?,
                at: r.get(4)?,
                recorded_at: r.get(5)?,
                counterpart: r.get(6)?,
                terminal_id: r.get(7)?,
                txn_counter: r.get(8)?,
                tac: r.get(9)?,
                operator: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<super::db::DbResult<_>>()?)
    }

    /// The purchases of a card reported lost (now or before), split into the holder's (made
    /// before the report) and the issuer's concern (made while it stood). Purchases are placed
    /// by their transaction time; one at the very second of the report counts as after it.
    pub fn loss_statement(&self, card: &CardNumber) -> Result<LossStatement> {
        self.require_card(card)?;
        let windows = loss_windows(&self.conn()?, card.as_str())?;
        if windows.is_empty() {
            return Err(RegistryError::NeverReportedLost(card.to_string()));
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT at, amount_cents, terminal_id, txn_counter FROM purse_ledger \
             WHERE card_number = ?1 AND kind = 'purchase' ORDER BY at, id",
        )?;
        let rows = st.query_map([card.as_str()], |r| {
            let at: String = r.get(0)?;
            let amount: i64 = r.get(1)?;
            Ok(PurchaseEntry {
                liability: liability(&windows, &at),
                at,
                amount_cents: -amount,
                terminal_id: r.get(2)?,
                txn_counter: r.get(3)?,
            })
        })?;
        let (issuer, holder): (Vec<_>, Vec<_>) = rows
            .collect::<super::db::DbResult<Vec<_>>>()?
            .into_iter()
            .partition(|p| p.liability == Liability::Issuer);
        Ok(LossStatement {
            card_number: card.to_string(),
            holder_total_cents: holder.iter().map(|p| p.amount_cents).sum(),
            issuer_total_cents: issuer.iter().map(|p| p.amount_cents).sum(),
            windows,
            holder,
            issuer,
        })
    }
}

fn loss_windows(conn: &super::db::Conn<'_>, card: &str) -> Result<Vec<LossWindow>> {
    let mut st = conn.prepare(
        "SELECT from_at, lifted_at FROM blacklist WHERE card_number = ?1 AND reason = 'lost' \
         ORDER BY from_at",
    )?;
    let rows = st.query_map([card], |r| {
        Ok(LossWindow {
            reported_at: r.get(0)?,
            revoked_at: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<super::db::DbResult<_>>()?)
}

//! Read-only queries for the CLI: cards, people, history, audit log.

use super::db::{params_from_iter, OptionalExtension};
use serde::Serialize;

use super::blacklist::BlacklistEntry;
use super::ledger::LedgerEntry;
use super::lifecycle::{load_card, load_person, CardRow};
use super::{CardStatus, Registry, RegistryError, Result};
use crate::holder::items::CardNumber;
use crate::holder::{Applicant, CitizenId};

/// Which cards to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardFilter {
    /// Only cards in this status.
    pub status: Option<CardStatus>,
    /// Only this person's cards.
    pub id_number: Option<CitizenId>,
}

/// A card in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardSummary {
    /// Card number.
    pub card_number: String,
    /// Status.
    pub status: CardStatus,
    /// Holder's ID number.
    pub id_number: String,
    /// Holder's name.
    pub name: String,
    /// Card class digit.
    pub card_class: String,
    /// Issue date (YYYY-MM-DD, China time).
    pub issue_date: String,
    /// Expiry date.
    pub expiry_date: String,
    /// The card this one replaced.
    pub replaces: Option<String>,
    /// The card that replaced this one.
    pub replaced_by: Option<String>,
    /// Why it was closed or aborted.
    pub closed_reason: Option<String>,
    /// Chip identifier, if known.
    pub chip_id: Option<String>,
    /// Key set, if known.
    pub key_set: Option<String>,
    /// Card serial.
    pub serial: u32,
    /// When the record was created.
    pub created_at: String,
}

/// A status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusChange {
    /// When.
    pub at: String,
    /// From (none when the card was created).
    pub from: Option<String>,
    /// To.
    pub to: String,
    /// Why.
    pub reason: Option<String>,
    /// Who.
    pub operator: String,
}

/// A recorded fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeeEntry {
    /// `first_issue`, `reissue` or `replacement`.
    pub kind: String,
    /// The replacement reason.
    pub reason: Option<String>,
    /// Amount in cents.
    pub amount_cents: i64,
    /// When.
    pub at: String,
    /// Who.
    pub operator: String,
}

/// Everything about one card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardDetails {
    /// The card.
    pub card: CardSummary,
    /// Status history, oldest first.
    pub history: Vec<StatusChange>,
    /// Fees.
    pub fees: Vec<FeeEntry>,
    /// Purse ledger, oldest first.
    pub ledger: Vec<LedgerEntry>,
    /// Ledger balance in cents.
    pub balance_cents: i64,
    /// Blacklist entries (open and lifted).
    pub blacklist: Vec<BlacklistEntry>,
}

/// A person as shown by queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonSummary {
    /// The person's data (the photo as a summary).
    #[serde(flatten)]
    pub data: Applicant,
    /// When first recorded.
    pub created_at: String,
    /// When last changed.
    pub updated_at: String,
}

/// A person and their cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonDetails {
    /// The person.
    pub person: PersonSummary,
    /// Their cards, oldest first.
    pub cards: Vec<CardSummary>,
}

/// Which audit records to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records about this card.
    pub card: Option<CardNumber>,
    /// Only records about this person.
    pub id_number: Option<CitizenId>,
    /// At most this many, the newest (all when `None`), still returned oldest first.
    pub limit: Option<u32>,
}

/// An audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When.
    pub at: String,
    /// Who.
    pub operator: String,
    /// What (e.g. `issue.complete`).
    pub action: String,
    /// The card concerned.
    pub card_number: Option<String>,
    /// The person concerned.
    pub id_number: Option<String>,
    /// Details (JSON).
    pub details: serde_json::Value,
    /// The station that made the change (`None` for records made before stations were
    /// recorded, and for schema migrations).
    pub station: Option<String>,
}

const SUMMARY_SQL: &str = "SELECT c.card_number, c.status, p.id_number, p.name, c.card_class, \
    c.issue_date, c.expiry_date, c.replaces, c.replaced_by, c.closed_reason, c.chip_id, \
    c.key_set, c.serial, c.created_at FROM cards c JOIN people p ON p.id = c.person_id";

fn summary(r: &super::db::Row) -> super::db::DbResult<CardSummary> {
    let status: String = r.get(1)?;
    Ok(CardSummary {
        card_number: r.get(0)?,
        status: CardStatus::parse(&status).unwrap_or(CardStatus::Aborted),
        id_number: r.get(2)?,
        name: r.get(3)?,
        card_class: r.get(4)?,
        issue_date: r.get(5)?,
        expiry_date: r.get(6)?,
        replaces: r.get(7)?,
        replaced_by: r.get(8)?,
        closed_reason: r.get(9)?,
        chip_id: r.get(10)?,
        key_set: r.get(11)?,
        serial: r.get(12)?,
        created_at: r.get(13)?,
    })
}

impl Registry {
    /// Cards matching the filter, by card number.
    pub fn list_cards(&self, filter: &CardFilter) -> Result<Vec<CardSummary>> {
        let mut conds = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(s) = filter.status {
            args.push(s.as_str().to_owned());
            conds.push(format!("c.status = ?{}", args.len()));
        }
        if let Some(id) = &filter.id_number {
            args.push(id.to_string());
            conds.push(format!("p.id_number = ?{}", args.len()));
        }
        let mut sql = SUMMARY_SQL.to_owned();
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(" ORDER BY c.card_number");
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args.iter()), summary)?;
        Ok(rows.collect::<super::db::DbResult<_>>()?)
    }

    /// One card with its history, fees, ledger and blacklist entries.
    pub fn card_details(&self, card: &CardNumber) -> Result<CardDetails> {
        load_card(&self.conn()?, card)?;
        let summary = self.conn()?.query_row(
            &format!("{SUMMARY_SQL} WHERE c.card_number = ?1"),
            [card.as_str()],
            summary,
        )?;
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT at, from_status, to_status, reason, operator FROM card_status_history \
             WHERE card_number = ?1 ORDER BY id",
        )?;
        let history = st
            .query_map([card.as_str()], |r| {
                Ok(StatusChange {
                    at: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    reason: r.get(3)?,
                    operator: r.get(4)?,
                })
            })?
            .collect::<super::db::DbResult<_>>()?;
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT kind, reason, amount_cents, at, operator FROM fees WHERE card_number = ?1 \
             ORDER BY id",
        )?;
        let fees = st
            .query_map([card.as_str()], |r| {
                Ok(FeeEntry {
                    kind: r.get(0)?,
                    reason: r.get(1)?,
                    amount_cents: r.get(2)?,
                    at: r.get(3)?,
                    operator: r.get(4)?,
                })
            })?
            .collect::<super::db::DbResult<_>>()?;
        let ledger = self.ledger(card)?;
        let blacklist = self
            .blacklist(true)?
            .into_iter()
            .filter(|e| e.card_number == card.as_str())
            .collect();
        Ok(CardDetails {
            card: summary,
            history,
            fees,
            balance_cents: ledger.iter().map(|e| e.amount_cents).sum(),
            ledger,
            blacklist,
        })
    }

    /// A person and all their cards.
    pub fn person_details(&self, id_number: &CitizenId) -> Result<PersonDetails> {
        let found: Option<(i64, String, String)> = self
            .conn()?
            .query_row(
                "SELECT id, created_at, updated_at FROM people WHERE id_number = ?1",
                [id_number.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (pid, created_at, updated_at) =
            found.ok_or_else(|| RegistryError::NoSuchPerson(id_number.to_string()))?;
        let data = load_person(&self.conn()?, pid)?;
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "{SUMMARY_SQL} WHERE c.person_id = ?1 ORDER BY c.serial"
        ))?;
        let cards = st
            .query_map([pid], summary)?
            .collect::<super::db::DbResult<_>>()?;
        Ok(PersonDetails {
            person: PersonSummary {
                data,
                created_at,
                updated_at,
            },
            cards,
        })
    }

    /// The person holding a card.
    pub fn holder_of(&self, card: &CardNumber) -> Result<Applicant> {
        let row: CardRow = load_card(&self.conn()?, card)?;
        load_person(&self.conn()?, row.person_id)
    }

    /// Audit records matching the filter, oldest first.
    pub fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut conds = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(c) = &filter.card {
            args.push(c.to_string());
            conds.push(format!("card_number = ?{}", args.len()));
        }
        if let Some(id) = &filter.id_number {
            args.push(id.to_string());
            let n = args.len();
            conds.push(format!(
                "(id_number = ?{n} OR card_number IN (SELECT c.card_number FROM cards c \
                 JOIN people p ON p.id = c.person_id WHERE p.id_number = ?{n}))"
            ));
        }
        let mut sql = String::from(
            "SELECT id, at, operator, action, card_number, id_number, details, station \
             FROM audit_log",
        );
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(l) = filter.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args.iter()), |r| {
            let details: String = r.get(6)?;
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                action: r.get(3)?,
                card_number: r.get(4)?,
                id_number: r.get(5)?,
                details: serde_json::from_str(&details)
                    .unwrap_or(serde_json::Value::String(details)),
                station: r.get(7)?,
            })
        })?;
        let mut out: Vec<AuditEntry> = rows.collect::<super::db::DbResult<_>>()?;
        out.reverse();
        Ok(out)
    }
}

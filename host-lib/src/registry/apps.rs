//! What the registry knows of the applications on a card and of money it owes a chip.
//!
//! * **Applications** (Art. 11–12, applications on demand): every time an application is added
//!   to an issued card, switched off or on again, or blocked for good (by a terminal that met a
//!   blacklisted card, or when the card is cancelled with the card at hand), one row is appended
//!   to `card_applications` with its audit record. The newest row of a (card, application) pair
//!   is its state. The registry records what was done to the chip; the CLI does it first.
//! * **Chip credits**: when a replacement completes, the registry moves the old card's ledger
//!   balance to the new card (`transfer_in`). That money is then on the books but not yet in the
//!   new chip's purse: the load host puts it there, and [`Registry::record_chip_credit`] records
//!   each such credit with the card's counter and TAC. [`Registry::owed_to_chip`] is what is left.

use super::db::{params, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::lifecycle::{audit, check_operator, load_card};
use super::{keyword_enum, CardStatus, Registry, RegistryError, Result};
use crate::holder::items::CardNumber;

keyword_enum! {
    /// The state of an application on a card.
    AppState {
        /// In use.
        Enabled = "enabled",
        /// Switched off at the holder's request; can be switched on again (APPLICATION BLOCK,
        /// temporary).
        Disabled = "disabled",
        /// Blocked for good (APPLICATION BLOCK, permanent): a blacklisted card met a terminal,
        /// or the card was cancelled.
        Blocked = "blocked",
    }
}

/// An application's state on a card, or one change of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplicationEntry {
    /// The application's name (e.g. `public`, `purse`).
    pub name: String,
    /// Its state.
    pub state: AppState,
    /// Since when (RFC 3339 UTC).
    pub since: String,
    /// Who changed it.
    pub operator: String,
    /// What was recorded with the change (JSON).
    pub details: serde_json::Value,
}

/// A credit of a carried-over balance onto a replacement card's purse, as the load host did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipCredit {
    /// Amount in cents (> 0).
    pub amount_cents: u32,
    /// The card's online (load) counter of the credit.
    pub txn_counter: u16,
    /// The TAC the card returned (verified by the load host).
    pub tac: [u8; 4],
}

impl Registry {
    /// The current state of every application recorded for a card, by name.
    pub fn applications(&self, card: &CardNumber) -> Result<Vec<ApplicationEntry>> {
        self.require_card(card)?;
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT name, state, at, operator, details FROM card_applications a \
             WHERE card_number = ?1 AND id = (SELECT MAX(id) FROM card_applications b \
             WHERE b.card_number = a.card_number AND b.name = a.name) ORDER BY name",
        )?;
        let rows = st.query_map([card.as_str()], entry)?;
        Ok(rows.collect::<super::db::DbResult<_>>()?)
    }

    /// Every recorded change of a card's applications, oldest first.
    pub fn application_history(&self, card: &CardNumber) -> Result<Vec<ApplicationEntry>> {
        self.require_card(card)?;
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT name, state, at, operator, details FROM card_applications \
             WHERE card_number = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([card.as_str()], entry)?;
        Ok(rows.collect::<super::db::DbResult<_>>()?)
    }

    /// The recorded state of one application, if any.
    pub fn application_state(&self, card: &CardNumber, name: &str) -> Result<Option<AppState>> {
        Ok(self
            .applications(card)?
            .into_iter()
            .find(|a| a.name == name)
            .map(|a| a.state))
    }

    /// Records that application `name` of `card` was put in `state` on the chip, with its audit
    /// record (`app.enable`, `app.disable`, `app.block`). Returns the previous state; when the
    /// state does not change, nothing is recorded.
    ///
    /// Enabling and disabling need an **active** card (a lost card is not at the counter; a
    /// closed one is not in use). A permanent block is recorded for any issued card, since a
    /// terminal may meet a lost or closed card; nothing follows a permanent block.
    pub fn record_application(
        &mut self,
        operator: &str,
        card: &CardNumber,
        name: &str,
        state: AppState,
        details: serde_json::Value,
    ) -> Result<Option<AppState>> {
        let op = check_operator(operator)?.to_owned();
        let name = name.trim();
        if name.is_empty() {
            return Err(RegistryError::ApplicationName);
        }
        let previous = self.application_state(card, name)?;
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        let refuse = |hint: String| RegistryError::Transition {
            card_number: card.to_string(),
            status: row.status,
            action: match state {
                AppState::Enabled => "enable an application on",
                AppState::Disabled => "disable an application on",
                AppState::Blocked => "block an application on",
            },
            hint,
        };
        match (state, row.status) {
            (_, CardStatus::Personalizing | CardStatus::Aborted) => {
                return Err(refuse("it was never issued".into()))
            }
            (AppState::Enabled | AppState::Disabled, CardStatus::Lost) => {
                return Err(refuse(
                    "a card reported lost is not in use; revoke the loss report if it was found"
                        .into(),
                ))
            }
            (AppState::Enabled | AppState::Disabled, CardStatus::Cancelled) => {
                return Err(refuse("a closed card is not in use".into()))
            }
            _ => {}
        }
        if previous == Some(AppState::Blocked) && state != AppState::Blocked {
            return Err(refuse(format!(
                "its application {name} is blocked for good; only a new card can carry it again"
            )));
        }
        if previous == Some(state) {
            return Ok(previous);
        }
        tx.execute(
            "INSERT INTO card_applications (card_number, name, state, at, operator, details) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                card.as_str(),
                name,
                state.as_str(),
                at,
                op,
                details.to_string()
            ],
        )?;
        let action = match state {
            AppState::Enabled => "app.enable",
            AppState::Disabled => "app.disable",
            AppState::Blocked => "app.block",
        };
        let mut audit_details = json!({ "application": name, "card_status": row.status });
        if let (Some(m), serde_json::Value::Object(extra)) =
            (audit_details.as_object_mut(), details)
        {
            m.extend(extra);
        }
        audit(
            &tx,
            &at,
            &op,
            action,
            Some(card.as_str()),
            None,
            audit_details,
        )?;
        tx.commit()?;
        Ok(previous)
    }

    /// Records (audits, `app.update`) that the data of an enabled application changed on an
    /// active card, e.g. its records rewritten; its state stays as it is.
    pub fn record_application_update(
        &mut self,
        operator: &str,
        card: &CardNumber,
        name: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let op = check_operator(operator)?.to_owned();
        let state = self.application_state(card, name)?;
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Active || state != Some(AppState::Enabled) {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "update an application on",
                hint: format!(
                    "application {name} must be enabled on an active card (it is {})",
                    state.map_or("not recorded", |s| s.as_str())
                ),
            });
        }
        let mut d = json!({ "application": name });
        if let (Some(m), serde_json::Value::Object(extra)) = (d.as_object_mut(), details) {
            m.extend(extra);
        }
        audit(&tx, &at, &op, "app.update", Some(card.as_str()), None, d)?;
        tx.commit()?;
        Ok(())
    }

    /// The card with this card serial (the number inside EF05's card identification code and
    /// the purse application serial), if the registry issued one.
    pub fn card_by_serial(&self, serial: u32) -> Result<Option<CardNumber>> {
        let n: Option<String> = self
            .conn()?
            .query_row(
                "SELECT card_number FROM cards WHERE serial = ?1",
                [serial],
                |r| r.get(0),
            )
            .optional()?;
        n.map(|n| CardNumber::parse(&n).map_err(|e| RegistryError::Corrupt(e.to_string())))
            .transpose()
    }

    /// The part of a card's carried-over balance (its `transfer_in` entries) that the load host
    /// has not yet credited to the chip, in cents.
    pub fn owed_to_chip(&self, card: &CardNumber) -> Result<i64> {
        self.require_card(card)?;
        owed(&self.conn()?, card.as_str())
    }

    /// Records that the load host credited `credit` of the carried-over balance to the card's
    /// purse. Refused for more than is owed, for a counter recorded before, and for a card that
    /// is not active. Returns what is still owed.
    pub fn record_chip_credit(
        &mut self,
        operator: &str,
        card: &CardNumber,
        credit: &ChipCredit,
    ) -> Result<i64> {
        let op = check_operator(operator)?.to_owned();
        if credit.amount_cents == 0 {
            return Err(RegistryError::ZeroAmount);
        }
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Active {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "credit a carried-over balance to",
                hint: "only an active card can be loaded".into(),
            });
        }
        let done: i64 = tx.query_row(
            "SELECT count(*) FROM chip_credits WHERE card_number = ?1 AND txn_counter = ?2",
            params![card.as_str(), credit.txn_counter],
            |r| r.get(0),
        )?;
        if done > 0 {
            return Err(RegistryError::AlreadyRecorded {
                card_number: card.to_string(),
                kind: "credit of a carried-over balance",
                counter: u32::from(credit.txn_counter),
            });
        }
        let before = owed(&tx, card.as_str())?;
        if i64::from(credit.amount_cents) > before {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "credit a carried-over balance to",
                hint: format!(
                    "{} cents were asked for, but only {before} cents of carried-over balance are \
                     owed to its chip",
                    credit.amount_cents
                ),
            });
        }
        let tac = hex::encode_upper(credit.tac);
        tx.execute(
            "INSERT INTO chip_credits (card_number, amount_cents, txn_counter, tac, at, operator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                card.as_str(),
                credit.amount_cents,
                credit.txn_counter,
                tac,
                at,
                op
            ],
        )?;
        // The intent written before this CREDIT (if any) is settled by it.
        tx.execute(
            "UPDATE carry_over_intents SET outcome = 'done', settled_at = ?1 \
             WHERE card_number = ?2 AND txn_counter = ?3 AND outcome IS NULL",
            params![at, card.as_str(), credit.txn_counter],
        )?;
        let after = before - i64::from(credit.amount_cents);
        audit(
            &tx,
            &at,
            &op,
            "purse.carry_over",
            Some(card.as_str()),
            None,
            json!({ "amount_cents": credit.amount_cents, "txn_counter": credit.txn_counter,
                    "tac": tac, "still_owed_cents": after }),
        )?;
        tx.commit()?;
        Ok(after)
    }
}

pub(crate) fn owed(conn: &super::db::Conn<'_>, card: &str) -> Result<i64> {
    let moved_in: i64 = conn.query_row(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM purse_ledger \
         WHERE card_number = ?1 AND kind = 'transfer_in'",
        [card],
        |r| r.get(0),
    )?;
    let credited: i64 = conn.query_row(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM chip_credits WHERE card_number = ?1",
        [card],
        |r| r.get(0),
    )?;
    Ok(moved_in - credited)
}

fn entry(r: &super::db::Row) -> super::db::DbResult<ApplicationEntry> {
    let state: String = r.get(1)?;
    let details: String = r.get(4)?;
    Ok(ApplicationEntry {
        name: r.get(0)?,
        state: AppState::parse(&state).ok_or_else(|| super::db::DbError::Column {
            column: "state".into(),
            message: format!("unknown application state {state:?}"),
        })?,
        since: r.get(2)?,
        operator: r.get(3)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::macros::datetime;

    use super::*;
    use crate::holder::{ApplicantRecord, Validator};
    use crate::registry::{
        AuditFilter, ChipInfo, LoadRecord, ManualClock, RegistryConfig, ReplaceReason,
    };

    const OP: &str = "op-apps";

    fn registry() -> Registry {
        let clock = Arc::new(ManualClock::new(datetime!(2026-02-01 02:00 UTC)));
        Registry::open_in_memory(RegistryConfig::default(), clock).unwrap()
    }

    fn issue(reg: &mut Registry) -> CardNumber {
        let record = ApplicantRecord {
            id_number: Some("11010519491231002X".into()),
            name: Some("测试李二".into()),
            sex: Some("2".into()),
            ethnicity: Some("01".into()),
            birthplace: Some("110105".into()),
            birth_date: Some("1949-12-31".into()),
            eligibility: Some("insured".into()),
            ..Default::default()
        };
        let a = Validator::today_in_china()
            .validate_with_photo(&record, None)
            .unwrap();
        let p = reg.begin_issue(OP, &a, &ChipInfo::default()).unwrap();
        reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap();
        p.card_number
    }

    fn actions(reg: &Registry, card: &CardNumber) -> Vec<String> {
        reg.audit_log(&AuditFilter {
            card: Some(card.clone()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect()
    }

    #[test]
    fn enable_disable_block() {
        let mut reg = registry();
        let card = issue(&mut reg);
        assert!(reg.applications(&card).unwrap().is_empty());
        let prev = reg
            .record_application(
                OP,
                &card,
                "public",
                AppState::Enabled,
                json!({"df": "PUBLIC"}),
            )
            .unwrap();
        assert_eq!(prev, None);
        // The same state again records nothing.
        let n = actions(&reg, &card).len();
        assert_eq!(
            reg.record_application(OP, &card, "public", AppState::Enabled, json!({}))
                .unwrap(),
            Some(AppState::Enabled)
        );
        assert_eq!(actions(&reg, &card).len(), n);
        reg.record_application(OP, &card, "public", AppState::Disabled, json!({}))
            .unwrap();
        reg.record_application(OP, &card, "purse", AppState::Blocked, json!({"by": "t"}))
            .unwrap();
        let apps = reg.applications(&card).unwrap();
        let states: Vec<(&str, AppState)> =
            apps.iter().map(|a| (a.name.as_str(), a.state)).collect();
        assert_eq!(
            states,
            [("public", AppState::Disabled), ("purse", AppState::Blocked)]
        );
        assert_eq!(reg.application_history(&card).unwrap().len(), 3);
        let a = actions(&reg, &card);
        assert_eq!(
            &a[a.len() - 3..],
            ["app.enable", "app.disable", "app.block"]
        );
        let last = reg
            .audit_log(&AuditFilter {
                card: Some(card.clone()),
                limit: Some(1),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(last[0].details["by"], "t");
        assert_eq!(last[0].details["application"], "purse");
        let e = reg
            .record_application_update(OP, &card, "public", json!({}))
            .unwrap_err();
        assert!(e.to_string().contains("must be enabled"), "{e}");
        // Blocked is for good.
        let e = reg
            .record_application(OP, &card, "purse", AppState::Enabled, json!({}))
            .unwrap_err();
        assert!(e.to_string().contains("blocked for good"), "{e}");
    }

    #[test]
    fn only_cards_in_use_change_applications() {
        let mut reg = registry();
        let card = issue(&mut reg);
        reg.report_loss(OP, &card).unwrap();
        let e = reg
            .record_application(OP, &card, "public", AppState::Enabled, json!({}))
            .unwrap_err();
        assert!(e.to_string().contains("revoke the loss report"), "{e}");
        // A terminal may still block a lost card's purse.
        reg.record_application(OP, &card, "purse", AppState::Blocked, json!({}))
            .unwrap();
        let unknown = crate::registry::card_number::make('W', 99).unwrap();
        assert!(matches!(
            reg.record_application(OP, &unknown, "purse", AppState::Blocked, json!({})),
            Err(RegistryError::NoSuchCard(_))
        ));
    }

    #[test]
    fn carried_over_balance_is_owed_until_credited() {
        let mut reg = registry();
        let old = issue(&mut reg);
        reg.record_load(
            OP,
            &old,
            &LoadRecord {
                amount_cents: 5000,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(reg.owed_to_chip(&old).unwrap(), 0);
        let p = reg
            .begin_replace(OP, &old, ReplaceReason::Damaged, &ChipInfo::default())
            .unwrap();
        reg.complete_issue(OP, &p.card_number, &ChipInfo::default())
            .unwrap();
        let new = p.card_number;
        assert_eq!(reg.owed_to_chip(&new).unwrap(), 5000);
        let too_much = ChipCredit {
            amount_cents: 5001,
            txn_counter: 0,
            tac: [1, 2, 3, 4],
        };
        let e = reg.record_chip_credit(OP, &new, &too_much).unwrap_err();
        assert!(e.to_string().contains("only 5000 cents"), "{e}");
        let part = ChipCredit {
            amount_cents: 3000,
            txn_counter: 0,
            tac: [1, 2, 3, 4],
        };
        assert_eq!(reg.record_chip_credit(OP, &new, &part).unwrap(), 2000);
        assert!(matches!(
            reg.record_chip_credit(OP, &new, &part),
            Err(RegistryError::AlreadyRecorded { .. })
        ));
        let rest = ChipCredit {
            amount_cents: 2000,
            txn_counter: 1,
            tac: [5, 6, 7, 8],
        };
        assert_eq!(reg.record_chip_credit(OP, &new, &rest).unwrap(), 0);
        assert_eq!(reg.owed_to_chip(&new).unwrap(), 0);
        // The ledger balance is unchanged by credits: they move no money, only record where it is.
        assert_eq!(reg.balance(&new).unwrap(), 5000);
        assert!(actions(&reg, &new).contains(&"purse.carry_over".to_string()));
    }
}

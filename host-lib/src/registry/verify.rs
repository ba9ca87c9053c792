//! `registry verify`: the audit chain checked link by link, replayed, and compared with the
//! tables.
//!
//! Replaying the chain means taking, for every row of every audited table, the newest image an
//! audit record (or a migration's anchor record) gave of it. What the tables hold must be exactly
//! that: a row the chain never saw was written around the registry (e.g. a load inserted with the
//! `sqlite3` shell), a row that differs was changed around it (a cancelled card set back to
//! `active`, a blacklist entry lifted), a row the chain has and the table lacks was deleted. From
//! the same replay come the card statuses, the open blacklist and each card's ledger balance as
//! the chain knows them.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::chain::{self, ChainRecord, AUDITED, GENESIS};
use super::db::{Begin, Tx};
use super::{Registry, Result};

/// What kind of disagreement a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An audit record whose hash does not match its contents (edited), or has none.
    RecordHash,
    /// An audit record that does not follow the one before it (a record deleted or inserted).
    ChainLink,
    /// The chain does not end where `audit_head` says (its tail cut off), or no head.
    ChainHead,
    /// A head noted earlier (outside the registry) is no longer in the chain as it was.
    KnownHead,
    /// An audit record whose row images cannot be read.
    RecordEffects,
    /// A table row the chain never recorded.
    UnauditedRow,
    /// A row the chain recorded that the table no longer has.
    MissingRow,
    /// A row whose columns differ from the chain's image of it.
    ChangedRow,
    /// A card's ledger balance differs from the chain's.
    LedgerBalance,
}

/// One row that disagrees, with what the chain says and what the table says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The table (`audit_log`, `audit_head`, `cards`, …).
    pub table: String,
    /// The row's key (a card number, an id).
    pub row: String,
    /// The card the row belongs to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    /// The column that differs, for [`FindingKind::ChangedRow`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What the chain says (`null`: it has no such row).
    pub chain: Value,
    /// What the table says (`null`: it has no such row).
    #[serde(rename = "in_table")]
    pub table_value: Value,
    /// The finding in words.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The newest record of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Its id.
    pub id: i64,
    /// Its hash.
    pub hash: String,
}

/// What [`Registry::verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Audit records read.
    pub audit_records: usize,
    /// The chain's newest record (the value to keep elsewhere and compare later).
    pub head: Option<ChainHead>,
    /// Table rows compared with the chain.
    pub rows_checked: usize,
    /// Cards per status, as the chain knows them.
    pub cards_by_status: BTreeMap<String, usize>,
    /// Open blacklist entries, as the chain knows them.
    pub open_blacklist: usize,
    /// Sum of every card's ledger balance, in cents, as the chain knows them.
    pub ledger_total_cents: i64,
    /// Every disagreement (empty: the registry is what its audit chain says).
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// No disagreement.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The chain replayed: the newest image of every row, and what was wrong with the chain itself.
pub(crate) struct Replay {
    /// table → key → newest image (`None`: deleted).
    pub images: BTreeMap<String, BTreeMap<String, Option<Map<String, Value>>>>,
    /// Findings about the records themselves.
    pub findings: Vec<Finding>,
}

fn chain_finding(
    kind: FindingKind,
    r: &ChainRecord,
    chain: Value,
    table: Value,
    msg: String,
) -> Finding {
    Finding {
        kind,
        table: "audit_log".into(),
        row: r.id.to_string(),
        card_number: r.card_number.clone(),
        field: None,
        chain,
        table_value: table,
        message: format!("audit_log {} ({}): {msg}", r.id, r.action),
    }
}

/// Checks each record's hash and link and collects the newest image of every row.
pub(crate) fn replay(records: &[ChainRecord]) -> Replay {
    let mut images: BTreeMap<String, BTreeMap<String, Option<Map<String, Value>>>> =
        BTreeMap::new();
    let mut findings = Vec::new();
    let mut prev: Option<&ChainRecord> = None;
    for r in records {
        let computed = chain::record_hash(r);
        match &r.hash {
            None => findings.push(chain_finding(
                FindingKind::RecordHash,
                r,
                Value::Null,
                Value::Null,
                "has no hash: it was not written by the registry".into(),
            )),
            Some(h) if *h != computed => findings.push(chain_finding(
                FindingKind::RecordHash,
                r,
                Value::String(computed),
                Value::String(h.clone()),
                "its contents do not match its hash: the record was changed".into(),
            )),
            Some(_) => {}
        }
        let expected_prev = prev.map_or(GENESIS.to_owned(), |p| p.hash.clone().unwrap_or_default());
        if r.prev_hash.as_deref() != Some(expected_prev.as_str()) {
            let before = prev.map_or("the start of the chain".to_owned(), |p| {
                format!("record {}", p.id)
            });
            findings.push(chain_finding(
                FindingKind::ChainLink,
                r,
                Value::String(expected_prev),
                r.prev_hash.clone().map_or(Value::Null, Value::String),
                format!(
                    "does not follow {before}: a record between them was deleted, or this one \
                     inserted"
                ),
            ));
        }
        if let Some(effects) = &r.effects {
            match serde_json::from_str::<Vec<Value>>(effects) {
                Ok(list) => {
                    for e in list {
                        let (Some(t), Some(k)) = (e["table"].as_str(), e["key"].as_str()) else {
                            continue;
                        };
                        let row = e["row"].as_object().cloned();
                        images
                            .entry(t.to_owned())
                            .or_default()
                            .insert(k.to_owned(), row);
                    }
                }
                Err(err) => findings.push(chain_finding(
                    FindingKind::RecordEffects,
                    r,
                    Value::Null,
                    Value::String(effects.clone()),
                    format!("its row images cannot be read: {err}"),
                )),
            }
        }
        prev = Some(r);
    }
    Replay { images, findings }
}

fn card_of(table: &str, key: &str, row: Option<&Map<String, Value>>) -> Option<String> {
    if table == "cards" {
        return Some(key.to_owned());
    }
    row.and_then(|m| m.get("card_number"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn label(table: &str, key: &str, card: Option<&str>, row: Option<&Map<String, Value>>) -> String {
    match (table, card) {
        ("cards", _) => format!("cards {key}"),
        ("people", _) => match row.and_then(|m| m.get("id_number")).and_then(Value::as_str) {
            Some(id) => format!("people {key} (ID number {id})"),
            None => format!("people {key}"),
        },
        (_, Some(c)) => format!("{table} {key} (card {c})"),
        _ => format!("{table} {key}"),
    }
}

fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        cents.unsigned_abs() / 100,
        cents.unsigned_abs() % 100
    )
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with("sha256:") && s.len() > 19 => {
            format!("{}…", &s[..19])
        }
        other => other.to_string(),
    }
}

fn balances<'a>(rows: impl Iterator<Item = &'a Map<String, Value>>) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for m in rows {
        if let (Some(c), Some(a)) = (
            m.get("card_number").and_then(Value::as_str),
            m.get("amount_cents").and_then(Value::as_i64),
        ) {
            *out.entry(c.to_owned()).or_insert(0) += a;
        }
    }
    out
}

impl Registry {
    /// Checks the audit chain and the tables against each other: every record's hash and link,
    /// the head, and every row of every audited table against the newest image the chain holds
    /// of it; then each card's ledger balance. Read-only. See `host-lib/docs/registry.md`,
    /// "The audit chain", for what this detects and what it cannot.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_from(None)
    }

    /// [`verify`](Self::verify), and also that the chain still holds `known` — a head printed
    /// by an earlier verification and kept outside the registry — with the same hash. This
    /// catches a chain rewritten consistently (hashes recomputed) before that record, which the
    /// chain alone cannot show.
    pub fn verify_from(&self, known: Option<&ChainHead>) -> Result<VerifyReport> {
        // One read transaction: the chain and the tables from the same snapshot, while other
        // processes go on writing (WAL).
        let tx = Tx::begin(self.conn()?, Begin::Read, None)?;
        self.verify_on(&tx, known)
    }

    /// [`verify_from`](Self::verify_from) on a given connection (inside a transaction: what it
    /// sees, uncommitted changes included).
    pub(crate) fn verify_on(
        &self,
        conn: &super::db::Conn<'_>,
        known: Option<&ChainHead>,
    ) -> Result<VerifyReport> {
        let records = chain::read_chain(conn)?;
        let Replay {
            images,
            mut findings,
        } = replay(&records);
        if let Some(k) = known {
            let now = records.iter().find(|r| r.id == k.id);
            let now_hash = now.and_then(|r| r.hash.clone());
            if now_hash.as_deref() != Some(k.hash.as_str()) {
                findings.push(Finding {
                    kind: FindingKind::KnownHead,
                    table: "audit_log".into(),
                    row: k.id.to_string(),
                    card_number: now.and_then(|r| r.card_number.clone()),
                    field: Some("hash".into()),
                    chain: Value::String(k.hash.clone()),
                    table_value: now_hash.clone().map_or(Value::Null, Value::String),
                    message: match now_hash {
                        None => format!(
                            "audit_log {}: the head noted earlier is no longer in the chain",
                            k.id
                        ),
                        Some(h) => format!(
                            "audit_log {}: its hash is now {h}, not the {} noted earlier: the \
                             chain was rewritten up to there",
                            k.id, k.hash
                        ),
                    },
                });
            }
        }
        let last = records.last();
        let head = chain::head(conn)?;
        match (&head, last) {
            (None, _) => findings.push(Finding {
                kind: FindingKind::ChainHead,
                table: "audit_head".into(),
                row: "1".into(),
                card_number: None,
                field: None,
                chain: last.map_or(Value::Null, |l| Value::from(l.id)),
                table_value: Value::Null,
                message: "audit_head: the chain's head record is missing (deleted)".into(),
            }),
            (Some((id, hash)), l) => {
                let (lid, lhash) = l.map_or((0, GENESIS.to_owned()), |l| {
                    (l.id, l.hash.clone().unwrap_or_default())
                });
                if *id != lid || *hash != lhash {
                    let message = if *id > lid {
                        format!(
                            "audit_head: the head is record {id} but the chain ends at record \
                             {lid}: its tail was cut off"
                        )
                    } else if *id < lid {
                        format!(
                            "audit_head: the head is record {id} but the chain goes on to record \
                             {lid}: records were appended around the registry"
                        )
                    } else {
                        format!("audit_head: record {id}'s hash differs from the head's")
                    };
                    findings.push(Finding {
                        kind: FindingKind::ChainHead,
                        table: "audit_head".into(),
                        row: "1".into(),
                        card_number: None,
                        field: None,
                        chain: serde_json::json!({ "id": lid, "hash": lhash }),
                        table_value: serde_json::json!({ "id": id, "hash": hash }),
                        message,
                    });
                }
            }
        }
        let mut rows_checked = 0;
        let empty = BTreeMap::new();
        let mut chain_ledger = BTreeMap::new();
        let mut table_ledger = BTreeMap::new();
        let mut cards_by_status = BTreeMap::new();
        let mut open_blacklist = 0;
        for t in AUDITED {
            let expected = images.get(t.name).unwrap_or(&empty);
            let actual = chain::table_images(conn, t)?;
            rows_checked += actual.len();
            for (key, row) in &actual {
                let card = card_of(t.name, key, Some(row));
                let what = label(t.name, key, card.as_deref(), Some(row));
                match expected.get(key) {
                    None | Some(None) => findings.push(Finding {
                        kind: FindingKind::UnauditedRow,
                        table: t.name.into(),
                        row: key.clone(),
                        card_number: card.clone(),
                        field: None,
                        chain: Value::Null,
                        table_value: Value::Object(row.clone()),
                        message: if expected.contains_key(key) {
                            format!("{what}: the chain recorded this row deleted, the table has it")
                        } else {
                            format!("{what}: no audit record ever wrote this row")
                        },
                    }),
                    Some(Some(want)) => {
                        let fields: std::collections::BTreeSet<&String> =
                            want.keys().chain(row.keys()).collect();
                        for f in fields {
                            let (c, a) = (
                                want.get(f).unwrap_or(&Value::Null),
                                row.get(f).unwrap_or(&Value::Null),
                            );
                            if c != a {
                                findings.push(Finding {
                                    kind: FindingKind::ChangedRow,
                                    table: t.name.into(),
                                    row: key.clone(),
                                    card_number: card.clone(),
                                    field: Some(f.clone()),
                                    chain: c.clone(),
                                    table_value: a.clone(),
                                    message: format!(
                                        "{what}: {f}: the chain says {}, the table says {}",
                                        short(c),
                                        short(a)
                                    ),
                                });
                            }
                        }
                    }
                }
            }
            for (key, want) in expected {
                if let (Some(want), false) = (want, actual.contains_key(key)) {
                    let card = card_of(t.name, key, Some(want));
                    let what = label(t.name, key, card.as_deref(), Some(want));
                    findings.push(Finding {
                        kind: FindingKind::MissingRow,
                        table: t.name.into(),
                        row: key.clone(),
                        card_number: card,
                        field: None,
                        chain: Value::Object(want.clone()),
                        table_value: Value::Null,
                        message: format!("{what}: the chain has this row, the table lacks it"),
                    });
                }
            }
            let chain_rows = expected.values().flatten();
            match t.name {
                "purse_ledger" => {
                    chain_ledger = balances(chain_rows);
                    table_ledger = balances(actual.values());
                }
                "cards" => {
                    for m in chain_rows {
                        if let Some(s) = m.get("status").and_then(Value::as_str) {
                            *cards_by_status.entry(s.to_owned()).or_insert(0) += 1;
                        }
                    }
                }
                "blacklist" => {
                    open_blacklist = chain_rows
                        .filter(|m| m.get("lifted_at").is_none_or(Value::is_null))
                        .count();
                }
                _ => {}
            }
        }
        let cards: std::collections::BTreeSet<&String> =
            chain_ledger.keys().chain(table_ledger.keys()).collect();
        for c in cards {
            let (want, got) = (
                chain_ledger.get(c).copied().unwrap_or(0),
                table_ledger.get(c).copied().unwrap_or(0),
            );
            if want != got {
                findings.push(Finding {
                    kind: FindingKind::LedgerBalance,
                    table: "purse_ledger".into(),
                    row: c.clone(),
                    card_number: Some(c.clone()),
                    field: Some("balance".into()),
                    chain: Value::from(want),
                    table_value: Value::from(got),
                    message: format!(
                        "ledger balance of card {c}: the chain says {} yuan, the table says {} yuan",
                        yuan(want),
                        yuan(got)
                    ),
                });
            }
        }
        Ok(VerifyReport {
            audit_records: records.len(),
            head: last.map(|l| ChainHead {
                id: l.id,
                hash: l.hash.clone().unwrap_or_default(),
            }),
            rows_checked,
            cards_by_status,
            open_blacklist,
            ledger_total_cents: chain_ledger.values().sum(),
            findings,
        })
    }
}

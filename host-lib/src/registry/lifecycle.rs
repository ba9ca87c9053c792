//! The life-cycle operations: issue, replace, report loss, revoke a loss report, cancel.

use super::db::{params, Begin, Conn, Dialect, OptionalExtension, Tx};
use serde::Serialize;
use serde_json::json;
use time::{Date, Month};

use super::blacklist::BlacklistReason;
use super::clock::format_instant;
use super::lease::{self, LeaseRequest, Station};
use super::{
    card_number, card_status, CancelReason, CardStatus, RegistryError, ReplaceReason, Result,
};
use super::{Registry, Validator};
use crate::holder::items::{
    CardIdCode, CardNumber, CardholderItems, InitOrgNumber, IssuerItems, SpecVersion,
};
use crate::holder::{Applicant, ApplicantRecord, CardClass, RegionCode};

/// What the chip and the keys are, as far as the caller knows them (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChipInfo {
    /// A chip identifier, e.g. the serial number in the ATR's historical bytes.
    pub chip_id: Option<String>,
    /// The issuer key set the card is personalized with.
    pub key_set: Option<String>,
}

/// A card number reserved for personalization: everything personalization needs to write the
/// card, and the registry's promise that nobody else gets this number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingCard {
    /// The card number (EF05 item 07).
    pub card_number: CardNumber,
    /// The card serial (in EF05 item 01).
    pub serial: u32,
    /// The holder, as the registry knows them now.
    pub holder: Applicant,
    /// The card class (EF05 item 02).
    pub card_class: CardClass,
    /// Issue date (EF05 item 05), in China time.
    #[serde(with = "crate::holder::iso_date")]
    pub issue_date: Date,
    /// Expiry date (EF05 item 06).
    #[serde(with = "crate::holder::iso_date")]
    pub expiry_date: Date,
    /// The card this one replaces.
    pub replaces: Option<CardNumber>,
    /// Why.
    pub replace_reason: Option<ReplaceReason>,
    /// The issuing city.
    pub city: RegionCode,
    /// The initialising-org number (EF05 item 04).
    pub init_org: InitOrgNumber,
    /// Chip and key set recorded so far.
    pub chip: ChipInfo,
}

impl PendingCard {
    /// The EF06 items to write.
    pub fn cardholder_items(&self) -> CardholderItems {
        CardholderItems::from_applicant(&self.holder)
    }

    /// The EF05 items to write. The card authentication code inside item 01 is the caller's
    /// (its derivation belongs to personalization, not to the registry).
    pub fn issuer_items(&self, auth_code: [u8; 4]) -> IssuerItems {
        IssuerItems {
            card_id: CardIdCode::new(self.city, self.serial, auth_code).unwrap_or(CardIdCode {
                city: self.city,
                rid: crate::holder::items::SSSE_RID,
                serial: CardIdCode::MAX_SERIAL,
                auth_code,
            }),
            card_class: self.card_class,
            spec_version: SpecVersion::v3(),
            init_org: self.init_org,
            issue_date: self.issue_date,
            expiry_date: self.expiry_date,
            card_number: self.card_number.clone(),
        }
    }
}

/// The outcome of [`Registry::complete_issue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCard {
    /// The card now active.
    pub card_number: CardNumber,
    /// The fee recorded, in cents.
    pub fee_cents: u32,
    /// `first_issue`, `reissue` or `replacement`.
    pub fee_kind: &'static str,
    /// The card it replaced (now cancelled).
    pub replaced: Option<CardNumber>,
    /// The balance moved from the replaced card, in cents.
    pub transferred_cents: i64,
}

/// The outcome of [`Registry::cancel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancellation {
    /// The card.
    pub card_number: CardNumber,
    /// The balance refunded, in cents.
    pub refund_cents: i64,
}

/// What a new card row needs.
struct NewCard<'a> {
    person_id: i64,
    class: CardClass,
    chip: &'a ChipInfo,
    replaces: Option<(&'a str, ReplaceReason)>,
}

/// One row of `cards`.
#[derive(Debug, Clone)]
pub(crate) struct CardRow {
    pub card_number: String,
    pub serial: u32,
    pub person_id: i64,
    pub status: CardStatus,
    pub card_class: String,
    pub chip_id: Option<String>,
    pub key_set: Option<String>,
    pub issue_date: String,
    pub expiry_date: String,
    pub replaces: Option<String>,
    pub replace_reason: Option<String>,
}

const CARD_COLUMNS: &str = "card_number, serial, person_id, status, card_class, \
    chip_id, key_set, issue_date, expiry_date, replaces, replace_reason";

impl CardRow {
    pub(crate) fn from_row(r: &super::db::Row) -> super::db::DbResult<CardRow> {
        let status: String = r.get(3)?;
        Ok(CardRow {
            card_number: r.get(0)?,
            serial: r.get(1)?,
            person_id: r.get(2)?,
            status: CardStatus::parse(&status).ok_or_else(|| super::db::DbError::Column {
                column: "status".into(),
                message: format!("unknown card status {status:?}"),
            })?,
            card_class: r.get(4)?,
            chip_id: r.get(5)?,
            key_set: r.get(6)?,
            issue_date: r.get(7)?,
            expiry_date: r.get(8)?,
            replaces: r.get(9)?,
            replace_reason: r.get(10)?,
        })
    }
}

/// Loads a card; an unknown number that fails the check digit is reported as mistyped.
pub(crate) fn load_card(conn: &Conn<'_>, card: &CardNumber) -> Result<CardRow> {
    let row = conn
        .query_row(
            &format!("SELECT {CARD_COLUMNS} FROM cards WHERE card_number = ?1"),
            [card.as_str()],
            CardRow::from_row,
        )
        .optional()?;
    match row {
        Some(r) => Ok(r),
        None => {
            card_number::verify(card)?;
            Err(RegistryError::NoSuchCard(card.to_string()))
        }
    }
}

/// The person's data as an applicant (validated again, so hand-edited rows are caught).
pub(crate) fn load_person(conn: &Conn<'_>, person_id: i64) -> Result<Applicant> {
    let (record, photo): (ApplicantRecord, Option<Vec<u8>>) = conn.query_row(
        "SELECT id_number, name, sex, ethnicity, birthplace, birth_date, card_class, eligibility, \
         phone, address, photo FROM people WHERE id = ?1",
        [person_id],
        |r| {
            Ok((
                ApplicantRecord {
                    id_number: r.get(0)?,
                    name: r.get(1)?,
                    sex: r.get(2)?,
                    ethnicity: r.get(3)?,
                    birthplace: r.get(4)?,
                    birth_date: r.get(5)?,
                    card_class: r.get(6)?,
                    eligibility: r.get(7)?,
                    photo: None,
                    phone: r.get(8)?,
                    address: r.get(9)?,
                },
                r.get(10)?,
            ))
        },
    )?;
    // Stored data was checked on the way in; "today" is irrelevant here (the registry clock may
    // be set back in tests), so no birth date counts as in the future.
    Validator::new(Date::MAX)
        .validate_with_photo(&record, photo)
        .map_err(|e| RegistryError::Corrupt(format!("person {person_id}: {e}")))
}

pub(crate) fn check_operator(op: &str) -> Result<&str> {
    let t = op.trim();
    if t.is_empty() {
        Err(RegistryError::NoOperator)
    } else {
        Ok(t)
    }
}

/// Appends an audit record (inside the caller's transaction): the one way into `audit_log`.
/// The record carries the images of every row of an audited table the transaction touched since
/// its previous audit record, and is chained to the record before it ([`super::chain`]). A
/// transaction that changes an audited table and commits without an audit record after the
/// change is refused by the connection.
pub(crate) fn audit(
    tx: &Tx<'_>,
    at: &str,
    operator: &str,
    action: &str,
    card: Option<&str>,
    id_number: Option<&str>,
    details: serde_json::Value,
) -> Result<()> {
    super::chain::append_audit(
        tx,
        at,
        operator,
        action,
        card,
        id_number,
        &details.to_string(),
        tx.station(),
    )
}

/// Changes a card's status and appends the history row.
fn set_status(
    tx: &Tx<'_>,
    card: &str,
    from: CardStatus,
    to: CardStatus,
    reason: Option<&str>,
    operator: &str,
    at: &str,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE cards SET status = ?1, updated_at = ?2 WHERE card_number = ?3 AND status = ?4",
        params![to.as_str(), at, card, from.as_str()],
    )?;
    if n != 1 {
        return Err(RegistryError::Corrupt(format!(
            "card {card} was not {from} when changing it to {to}"
        )));
    }
    history(tx, card, Some(from), to, reason, operator, at)
}

fn history(
    tx: &Tx<'_>,
    card: &str,
    from: Option<CardStatus>,
    to: CardStatus,
    reason: Option<&str>,
    operator: &str,
    at: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO card_status_history (card_number, at, from_status, to_status, reason, operator) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![card, at, from.map(CardStatus::as_str), to.as_str(), reason, operator],
    )?;
    Ok(())
}

/// Blacklists a card from `at`, unless it already has an open entry (a lost card keeps the
/// earlier instant of its loss report). Returns whether an entry was added.
pub(crate) fn blacklist_add(
    tx: &Tx<'_>,
    card: &str,
    reason: BlacklistReason,
    at: &str,
    operator: &str,
) -> Result<bool> {
    let open: Option<i64> = tx
        .query_row(
            "SELECT id FROM blacklist WHERE card_number = ?1 AND lifted_at IS NULL",
            [card],
            |r| r.get(0),
        )
        .optional()?;
    if open.is_some() {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO blacklist (card_number, reason, from_at, operator) VALUES (?1, ?2, ?3, ?4)",
        params![card, reason.as_str(), at, operator],
    )?;
    Ok(true)
}

/// The ledger balance of a card, in cents.
pub(crate) fn balance_of(conn: &Conn<'_>, card: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM purse_ledger WHERE card_number = ?1",
        [card],
        |r| r.get(0),
    )?)
}

/// The replacement of `card` being personalized, if any.
fn pending_replacement(conn: &Conn<'_>, card: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT card_number FROM cards WHERE replaces = ?1 AND status = 'personalizing'",
            [card],
            |r| r.get(0),
        )
        .optional()?)
}

pub(crate) fn iso_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub(crate) fn parse_stored_date(s: &str) -> Result<Date> {
    crate::holder::dates::parse_date(s).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

/// `d` plus `years`; 29 February becomes 28 February in a common year.
pub(crate) fn add_years(d: Date, years: u8) -> Date {
    let y = d.year() + i32::from(years);
    Date::from_calendar_date(y, d.month(), d.day())
        .or_else(|_| Date::from_calendar_date(y, Month::February, 28))
        .unwrap_or(d)
}

fn hint_for(status: CardStatus) -> &'static str {
    match status {
        CardStatus::Active => "replace it (card replace) if it is damaged, unreadable or its data changed, or cancel it",
        CardStatus::Lost => "replace it with reason lost, or revoke the loss report if it was found",
        _ => "",
    }
}

impl Registry {
    fn pending(&self, conn: &Conn<'_>, row: &CardRow) -> Result<PendingCard> {
        let holder = load_person(conn, row.person_id)?;
        let card_class = row
            .card_class
            .as_bytes()
            .first()
            .and_then(|c| CardClass::from_code(*c))
            .ok_or_else(|| RegistryError::Corrupt(format!("card class {:?}", row.card_class)))?;
        let card_number = CardNumber::parse(&row.card_number)
            .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        let replaces = row
            .replaces
            .as_deref()
            .map(CardNumber::parse)
            .transpose()
            .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
        let c = &self.config.card;
        Ok(PendingCard {
            card_number,
            serial: row.serial,
            holder,
            card_class,
            issue_date: parse_stored_date(&row.issue_date)?,
            expiry_date: parse_stored_date(&row.expiry_date)?,
            replaces,
            replace_reason: row.replace_reason.as_deref().and_then(ReplaceReason::parse),
            city: self.config.city(),
            init_org: InitOrgNumber::new(
                self.config.city(),
                self.config.init_org_region(),
                c.init_org_sequence,
            )
            .ok_or_else(|| RegistryError::Corrupt("init_org_sequence".into()))?,
            chip: ChipInfo {
                chip_id: row.chip_id.clone(),
                key_set: row.key_set.clone(),
            },
        })
    }

    /// Reserves the next card number and inserts the card as `personalizing`.
    fn insert_card(
        &self,
        tx: &Tx<'_>,
        new: NewCard<'_>,
        operator: &str,
        at: &str,
    ) -> Result<String> {
        let NewCard {
            person_id,
            class,
            chip,
            replaces,
        } = new;
        let series = self.config.card.series;
        // SQLite: the write transaction holds the database's write lock, so the next serial
        // read here is still free at commit. PostgreSQL: a sequence, never handed out twice
        // whatever the concurrent transactions do (a serial drawn by a transaction that rolls
        // back is not reused: the number stays unissued, like an aborted card's).
        let next: i64 = match tx.dialect() {
            Dialect::Sqlite => tx.query_row(
                "SELECT COALESCE(MAX(serial), 0) + 1 FROM cards \
                 WHERE substr(card_number, 1, 1) = ?1",
                [series.to_string()],
                |r| r.get(0),
            )?,
            Dialect::Postgres => tx.query_row("SELECT nextval('card_serial')", [], |r| r.get(0))?,
        };
        let serial = u32::try_from(next).map_err(|_| RegistryError::SeriesExhausted(series))?;
        let number =
            card_number::make(series, serial).ok_or(RegistryError::SeriesExhausted(series))?;
        let today = self.today();
        let expiry = add_years(today, self.config.card.validity_years);
        tx.execute(
            "INSERT INTO cards (card_number, serial, person_id, status, card_class, chip_id, \
             key_set, issue_date, expiry_date, replaces, replace_reason, created_at, updated_at) \
             VALUES (?1, ?2, ?3, 'personalizing', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
            params![
                number.as_str(),
                serial,
                person_id,
                (class.code() as char).to_string(),
                chip.chip_id,
                chip.key_set,
                iso_date(today),
                iso_date(expiry),
                replaces.map(|r| r.0),
                replaces.map(|r| r.1.as_str()),
                at,
            ],
        )?;
        history(
            tx,
            number.as_str(),
            None,
            CardStatus::Personalizing,
            replaces.map(|r| r.1.as_str()),
            operator,
            at,
        )?;
        Ok(number.as_str().to_owned())
    }

    /// Refuses when the person holds a card in use or has an issuance in progress.
    fn check_no_card(&self, tx: &Tx<'_>, person_id: i64, id_number: &str) -> Result<()> {
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT card_number, status FROM cards WHERE person_id = ?1 \
                 AND status IN ('personalizing', 'active', 'lost') ORDER BY serial LIMIT 1",
                [person_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match found {
            None => Ok(()),
            Some((card_number, s)) if s == "personalizing" => Err(RegistryError::UnfinishedIssue {
                id_number: id_number.to_owned(),
                card_number,
            }),
            Some((card_number, s)) => {
                let status = CardStatus::parse(&s).unwrap_or(CardStatus::Active);
                Err(RegistryError::AlreadyHasCard {
                    id_number: id_number.to_owned(),
                    card_number,
                    status,
                    hint: hint_for(status),
                })
            }
        }
    }

    /// Inserts or updates a person; returns (id, created, changed fields).
    fn upsert_person(
        &self,
        tx: &Tx<'_>,
        a: &Applicant,
        at: &str,
    ) -> Result<(i64, bool, Vec<&'static str>)> {
        let r = a.to_record();
        let photo = a.photo().map(|p| p.bytes().to_vec());
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM people WHERE id_number = ?1",
                [a.id_number().as_str()],
                |row| row.get(0),
            )
            .optional()?;
        let birth = iso_date(a.birth_date());
        match existing {
            None => {
                let id: i64 = tx.query_row(
                    "INSERT INTO people (id_number, name, sex, ethnicity, birthplace, birth_date, \
                     card_class, eligibility, phone, address, photo, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12) RETURNING id",
                    params![
                        r.id_number,
                        r.name,
                        r.sex,
                        r.ethnicity,
                        r.birthplace,
                        birth,
                        r.card_class,
                        r.eligibility,
                        r.phone,
                        r.address,
                        photo,
                        at
                    ],
                    |r| r.get(0),
                )?;
                Ok((id, true, vec![]))
            }
            Some(id) => {
                let old = load_person(tx, id)?;
                let differs = [
                    ("name", old.name() != a.name()),
                    ("sex", old.sex() != a.sex()),
                    ("ethnicity", old.ethnicity() != a.ethnicity()),
                    ("birthplace", old.birthplace() != a.birthplace()),
                    ("birth_date", old.birth_date() != a.birth_date()),
                    ("card_class", old.card_class() != a.card_class()),
                    ("eligibility", old.eligibility() != a.eligibility()),
                    ("phone", old.phone() != a.phone()),
                    ("address", old.address() != a.address()),
                    ("photo", photo.is_some() && old.photo() != a.photo()),
                ];
                let changed: Vec<&str> = differs
                    .iter()
                    .filter(|(_, d)| *d)
                    .map(|(field, _)| *field)
                    .collect();
                if !changed.is_empty() {
                    tx.execute(
                        "UPDATE people SET name = ?1, sex = ?2, ethnicity = ?3, birthplace = ?4, \
                         birth_date = ?5, card_class = ?6, eligibility = ?7, phone = ?8, \
                         address = ?9, photo = COALESCE(?10, photo), updated_at = ?11 \
                         WHERE id = ?12",
                        params![
                            r.name,
                            r.sex,
                            r.ethnicity,
                            r.birthplace,
                            birth,
                            r.card_class,
                            r.eligibility,
                            r.phone,
                            r.address,
                            photo,
                            at,
                            id
                        ],
                    )?;
                }
                Ok((id, false, changed))
            }
        }
    }

    /// Starts an IMMEDIATE transaction (the write lock is taken at once, so two processes
    /// cannot both read "next serial" and collide) and stamps it with the clock. Public operations
    /// take `&mut self`, so transactions never nest.
    pub(crate) fn begin(&self) -> Result<(Tx<'_>, String)> {
        if let Some(why) = &self.read_only {
            return Err(RegistryError::ReadOnly {
                path: self.path.clone().unwrap_or_default(),
                why: why.clone(),
            });
        }
        let n = self.writes.get() + 1;
        self.writes.set(n);
        if self.fail_write.get() == Some(n) {
            return Err(RegistryError::InjectedFault(n));
        }
        let at = format_instant(self.clock.now());
        let mut tx = Tx::begin(self.conn()?, Begin::Write, Some(&self.in_tx))?;
        if tx.dialect() == Dialect::Postgres {
            // Every write appends to the audit chain: writers take the chain head first and
            // so run one after the other, as SQLite's BEGIN IMMEDIATE makes them (each later
            // statement of this READ COMMITTED transaction sees every earlier writer's commit).
            tx.query_row(
                "SELECT last_id FROM audit_head WHERE one = 1 FOR UPDATE",
                [],
                |_| Ok(()),
            )?;
        }
        tx.set_station(&self.station.id);
        Ok((tx, at))
    }

    /// Starts issuing a first (or, after earlier cards were cancelled, a new) card to an
    /// applicant: records or updates the person and reserves a card number in status
    /// `personalizing`. Refused for an ineligible applicant, for a person who holds a card
    /// (active or lost: replace it instead) and for one whose issuance is in progress (resume or
    /// abort it).
    pub fn begin_issue(
        &mut self,
        operator: &str,
        applicant: &Applicant,
        chip: &ChipInfo,
    ) -> Result<PendingCard> {
        self.begin_issue_inner(operator, applicant, chip, None)
    }

    /// [`begin_issue`](Self::begin_issue) for a station, which takes the new card's lease in the
    /// same transaction ([`super::lease`]).
    pub fn begin_issue_leased(
        &mut self,
        operator: &str,
        applicant: &Applicant,
        chip: &ChipInfo,
        lease: &LeaseRequest<'_>,
    ) -> Result<PendingCard> {
        self.begin_issue_inner(operator, applicant, chip, Some(lease))
    }

    fn begin_issue_inner(
        &mut self,
        operator: &str,
        applicant: &Applicant,
        chip: &ChipInfo,
        lease: Option<&LeaseRequest<'_>>,
    ) -> Result<PendingCard> {
        let op = check_operator(operator)?.to_owned();
        let id_number = applicant.id_number().to_string();
        applicant
            .check_issuable()
            .map_err(|error| RegistryError::NotEligible {
                id_number: id_number.clone(),
                error,
            })?;
        let (mut tx, at) = self.begin()?;
        // The station that holds the lease is the one making the change.
        if let Some(l) = lease {
            tx.set_station(&l.station.id);
        }
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM people WHERE id_number = ?1",
                [&id_number],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(pid) = existing {
            self.check_no_card(&tx, pid, &id_number)?;
        }
        let (person_id, created, changed) = self.upsert_person(&tx, applicant, &at)?;
        if !created && !changed.is_empty() {
            audit(
                &tx,
                &at,
                &op,
                "person.update",
                None,
                Some(&id_number),
                json!({ "changed": changed, "via": "issue" }),
            )?;
        }
        let card = self.insert_card(
            &tx,
            NewCard {
                person_id,
                class: applicant.card_class(),
                chip,
                replaces: None,
            },
            &op,
            &at,
        )?;
        if let Some(req) = lease {
            lease::take(&tx, &card, req, self.now())?;
        }
        audit(
            &tx,
            &at,
            &op,
            "issue.begin",
            Some(&card),
            Some(&id_number),
            json!({
                "person": if created { "new" } else { "known" },
                "card_class": applicant.card_class().as_str(),
                "chip": chip,
                "station": lease.map(|l| &l.station.id),
            }),
        )?;
        let row = load_card(
            &tx,
            &CardNumber::parse(&card).map_err(|e| RegistryError::Corrupt(e.to_string()))?,
        )?;
        let pending = self.pending(&tx, &row)?;
        tx.commit()?;
        Ok(pending)
    }

    /// Starts replacing `old` (Art. 15; after a loss report, Art. 16–17). A card in status `lost`
    /// is replaced with [`ReplaceReason::Lost`]; an active card with any other reason (a lost
    /// card is reported first). The old card stays as it is until
    /// [`complete_issue`](Self::complete_issue) of the new one.
    pub fn begin_replace(
        &mut self,
        operator: &str,
        old: &CardNumber,
        reason: ReplaceReason,
        chip: &ChipInfo,
    ) -> Result<PendingCard> {
        self.begin_replace_inner(operator, old, reason, chip, None)
    }

    /// [`begin_replace`](Self::begin_replace) for a station, which takes the new card's lease.
    pub fn begin_replace_leased(
        &mut self,
        operator: &str,
        old: &CardNumber,
        reason: ReplaceReason,
        chip: &ChipInfo,
        lease: &LeaseRequest<'_>,
    ) -> Result<PendingCard> {
        self.begin_replace_inner(operator, old, reason, chip, Some(lease))
    }

    fn begin_replace_inner(
        &mut self,
        operator: &str,
        old: &CardNumber,
        reason: ReplaceReason,
        chip: &ChipInfo,
        lease: Option<&LeaseRequest<'_>>,
    ) -> Result<PendingCard> {
        let op = check_operator(operator)?.to_owned();
        let (mut tx, at) = self.begin()?;
        // The station that holds the lease is the one making the change.
        if let Some(l) = lease {
            tx.set_station(&l.station.id);
        }
        let row = load_card(&tx, old)?;
        let refuse = |hint: &str| RegistryError::Transition {
            card_number: old.to_string(),
            status: row.status,
            action: "replace",
            hint: hint.to_owned(),
        };
        match (row.status, reason) {
            (CardStatus::Active, ReplaceReason::Lost) => {
                return Err(refuse(
                    "report the loss first, so the card is blacklisted from that instant, then replace it with reason lost",
                ))
            }
            (CardStatus::Active, _) | (CardStatus::Lost, ReplaceReason::Lost) => {}
            (CardStatus::Lost, _) => {
                return Err(refuse(
                    "a card reported lost is replaced with reason lost (or, if it was found, revoke the loss report first)",
                ))
            }
            (CardStatus::Personalizing, _) => {
                return Err(refuse("it was never issued: resume or abort its personalization"))
            }
            (CardStatus::Cancelled, _) => {
                let by: Option<String> = tx
                    .query_row(
                        "SELECT replaced_by FROM cards WHERE card_number = ?1",
                        [old.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                return Err(refuse(&match by {
                    Some(new) => format!(
                        "it was replaced by {new} and nothing is owed to that card's chip: the \
                         replacement is complete"
                    ),
                    None => "a closed card cannot be replaced; issue a new card to the person".into(),
                }));
            }
            (CardStatus::Aborted, _) => return Err(refuse("it was never issued")),
        }
        if let Some(p) = pending_replacement(&tx, old.as_str())? {
            let id_number: String = tx.query_row(
                "SELECT id_number FROM people WHERE id = ?1",
                [row.person_id],
                |r| r.get(0),
            )?;
            return Err(RegistryError::UnfinishedIssue {
                id_number,
                card_number: p,
            });
        }
        let holder = load_person(&tx, row.person_id)?;
        let id_number = holder.id_number().to_string();
        holder
            .check_issuable()
            .map_err(|error| RegistryError::NotEligible {
                id_number: id_number.clone(),
                error,
            })?;
        let other: Option<String> = tx
            .query_row(
                "SELECT card_number FROM cards WHERE person_id = ?1 AND status = 'personalizing'",
                [row.person_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(card_number) = other {
            return Err(RegistryError::UnfinishedIssue {
                id_number,
                card_number,
            });
        }
        let card = self.insert_card(
            &tx,
            NewCard {
                person_id: row.person_id,
                class: holder.card_class(),
                chip,
                replaces: Some((old.as_str(), reason)),
            },
            &op,
            &at,
        )?;
        if let Some(req) = lease {
            lease::take(&tx, &card, req, self.now())?;
        }
        audit(
            &tx,
            &at,
            &op,
            "replace.begin",
            Some(&card),
            Some(&id_number),
            json!({ "replaces": old.as_str(), "reason": reason.as_str(), "chip": chip,
                    "station": lease.map(|l| &l.station.id) }),
        )?;
        let new_row = load_card(
            &tx,
            &CardNumber::parse(&card).map_err(|e| RegistryError::Corrupt(e.to_string()))?,
        )?;
        let pending = self.pending(&tx, &new_row)?;
        tx.commit()?;
        Ok(pending)
    }

    /// Hands back a card still being personalized, to run personalization again (e.g. after the
    /// card was pulled). The issue and expiry dates stay those reserved when personalization
    /// began, so a card finished on an earlier day still matches on read-back; chip and key-set
    /// information given here replaces what was recorded.
    pub fn resume_issue(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
    ) -> Result<PendingCard> {
        self.resume_issue_inner(operator, card, chip, None)
    }

    /// [`resume_issue`](Self::resume_issue) for a station: refused while another live station
    /// holds the card's lease ([`RegistryError::Leased`]); otherwise the lease becomes this
    /// station's.
    pub fn resume_issue_leased(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
        lease: &LeaseRequest<'_>,
    ) -> Result<PendingCard> {
        self.resume_issue_inner(operator, card, chip, Some(lease))
    }

    fn resume_issue_inner(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
        lease: Option<&LeaseRequest<'_>>,
    ) -> Result<PendingCard> {
        let op = check_operator(operator)?.to_owned();
        let (mut tx, at) = self.begin()?;
        // The station that holds the lease is the one making the change.
        if let Some(l) = lease {
            tx.set_station(&l.station.id);
        }
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Personalizing {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "resume the personalization of",
                hint: "only a card being personalized can be resumed".into(),
            });
        }
        let taken_over = match lease {
            Some(req) => lease::take(&tx, card.as_str(), req, self.now())?,
            None => match lease::lease_of(&tx, card.as_str())? {
                Some(l) if l.is_live(&at) => {
                    return Err(RegistryError::Leased {
                        card_number: card.to_string(),
                        station: l.station,
                        expires_at: l.expires_at,
                    })
                }
                _ => None,
            },
        };
        // The card keeps the dates reserved when its personalization began: a card that was
        // finished on an earlier day (only the registry step failed) carries those dates, and
        // its read-back must still match.
        tx.execute(
            "UPDATE cards SET chip_id = COALESCE(?1, chip_id), key_set = COALESCE(?2, key_set), \
             updated_at = ?3 WHERE card_number = ?4",
            params![chip.chip_id, chip.key_set, at, card.as_str()],
        )?;
        audit(
            &tx,
            &at,
            &op,
            "issue.resume",
            Some(card.as_str()),
            None,
            json!({ "chip": chip, "issue_date": row.issue_date,
                    "station": lease.map(|l| &l.station.id),
                    "taken_over_from": taken_over.map(|l| l.station) }),
        )?;
        let row = load_card(&tx, card)?;
        let pending = self.pending(&tx, &row)?;
        tx.commit()?;
        Ok(pending)
    }

    /// Marks a personalized and verified card `active`: records the fee (0 for a person's first
    /// card, Art. 19; the configured reissue fee for a new card after cancelled ones; the
    /// configured replacement fee for the reason) and, for a replacement, cancels and blacklists
    /// the old card and moves its ledger balance to the new one.
    pub fn complete_issue(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
    ) -> Result<IssuedCard> {
        self.complete_issue_inner(operator, card, chip, None)
    }

    /// [`complete_issue`](Self::complete_issue) for the station that personalized the card: refused
    /// with [`RegistryError::LeaseLost`] when another station holds the card's lease now, or
    /// the issuance is no longer in progress (completed or aborted elsewhere): the card this
    /// station wrote is then void.
    pub fn complete_issue_leased(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
        station: &Station,
    ) -> Result<IssuedCard> {
        self.complete_issue_inner(operator, card, chip, Some(station))
    }

    fn complete_issue_inner(
        &mut self,
        operator: &str,
        card: &CardNumber,
        chip: &ChipInfo,
        station: Option<&Station>,
    ) -> Result<IssuedCard> {
        let op = check_operator(operator)?.to_owned();
        let (mut tx, at) = self.begin()?;
        if let Some(s) = station {
            tx.set_station(&s.id);
        }
        let row = load_card(&tx, card)?;
        if let Some(st) = station {
            if row.status != CardStatus::Personalizing {
                return Err(RegistryError::LeaseLost {
                    card_number: card.to_string(),
                    why: format!("the registry has it {} now", row.status),
                });
            }
            lease::check_held(&tx, card.as_str(), st)?;
        }
        lease::release(&tx, card.as_str())?;
        if row.status != CardStatus::Personalizing {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "complete the issuance of",
                hint: "only a card being personalized can be completed".into(),
            });
        }
        let old = match &row.replaces {
            Some(o) => Some(load_card(
                &tx,
                &CardNumber::parse(o).map_err(|e| RegistryError::Corrupt(e.to_string()))?,
            )?),
            None => None,
        };
        if let Some(o) = &old {
            if !matches!(o.status, CardStatus::Active | CardStatus::Lost) {
                return Err(RegistryError::Transition {
                    card_number: card.to_string(),
                    status: row.status,
                    action: "complete the issuance of",
                    hint: format!(
                        "the card it replaces, {}, is now {}; abort this replacement",
                        o.card_number, o.status
                    ),
                });
            }
        }
        let id_number: String = tx.query_row(
            "SELECT id_number FROM people WHERE id = ?1",
            [row.person_id],
            |r| r.get(0),
        )?;
        if chip.chip_id.is_some() || chip.key_set.is_some() {
            tx.execute(
                "UPDATE cards SET chip_id = COALESCE(?1, chip_id), key_set = COALESCE(?2, key_set) \
                 WHERE card_number = ?3",
                params![chip.chip_id, chip.key_set, card.as_str()],
            )?;
        }
        let reason = row.replace_reason.as_deref().and_then(ReplaceReason::parse);
        let (fee_kind, fee) = match (&old, reason) {
            (Some(_), Some(r)) => ("replacement", self.config.fees.replacement.for_reason(r)),
            (Some(_), None) => {
                return Err(RegistryError::Corrupt(format!(
                    "card {card} replaces a card without a reason"
                )))
            }
            (None, _) => {
                let earlier: i64 = tx.query_row(
                    "SELECT count(*) FROM cards WHERE person_id = ?1 AND card_number <> ?2 \
                     AND status NOT IN ('aborted', 'personalizing')",
                    params![row.person_id, card.as_str()],
                    |r| r.get(0),
                )?;
                if earlier == 0 {
                    ("first_issue", 0)
                } else {
                    ("reissue", self.config.fees.reissue)
                }
            }
        };
        let mut transferred = 0i64;
        if let Some(o) = &old {
            let balance = balance_of(&tx, &o.card_number)?;
            transferred = balance.max(0);
            if transferred > 0 {
                for (c, kind, amount, other) in [
                    (
                        o.card_number.as_str(),
                        "transfer_out",
                        -transferred,
                        card.as_str(),
                    ),
                    (
                        card.as_str(),
                        "transfer_in",
                        transferred,
                        o.card_number.as_str(),
                    ),
                ] {
                    tx.execute(
                        "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, \
                         counterpart, operator) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                        params![c, kind, amount, at, other, op],
                    )?;
                }
            }
            let closed = format!("replaced by {card} ({})", reason.map_or("", |r| r.as_str()));
            set_status(
                &tx,
                &o.card_number,
                o.status,
                CardStatus::Cancelled,
                Some(&closed),
                &op,
                &at,
            )?;
            tx.execute(
                "UPDATE cards SET replaced_by = ?1, closed_reason = ?2 WHERE card_number = ?3",
                params![card.as_str(), closed, o.card_number],
            )?;
            blacklist_add(&tx, &o.card_number, BlacklistReason::Replaced, &at, &op)?;
            audit(
                &tx,
                &at,
                &op,
                "card.cancel",
                Some(&o.card_number),
                Some(&id_number),
                json!({
                    "reason": "replaced",
                    "replaced_by": card.as_str(),
                    "balance_cents": balance,
                    "transferred_cents": transferred,
                }),
            )?;
        }
        tx.execute(
            "INSERT INTO fees (card_number, kind, reason, amount_cents, at, operator) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                card.as_str(),
                fee_kind,
                reason.map(|r| r.as_str()),
                fee,
                at,
                op
            ],
        )?;
        set_status(
            &tx,
            card.as_str(),
            CardStatus::Personalizing,
            CardStatus::Active,
            None,
            &op,
            &at,
        )?;
        audit(
            &tx,
            &at,
            &op,
            "issue.complete",
            Some(card.as_str()),
            Some(&id_number),
            json!({
                "fee_kind": fee_kind,
                "fee_cents": fee,
                "replaces": row.replaces,
                "transferred_cents": transferred,
                "chip": chip,
                "station": station.map(|s| &s.id),
            }),
        )?;
        tx.commit()?;
        Ok(IssuedCard {
            card_number: card.clone(),
            fee_cents: fee,
            fee_kind,
            replaced: row
                .replaces
                .as_deref()
                .and_then(|s| CardNumber::parse(s).ok()),
            transferred_cents: transferred,
        })
    }

    /// Gives up a personalization: the card becomes `aborted` and its number is never used again.
    /// The physical card may hold part of the data; `reason` says what became of it.
    pub fn abort_issue(&mut self, operator: &str, card: &CardNumber, reason: &str) -> Result<()> {
        let op = check_operator(operator)?.to_owned();
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Personalizing {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "abort the personalization of",
                hint: match row.status {
                    CardStatus::Active | CardStatus::Lost => {
                        "it was issued: cancel or replace it instead".into()
                    }
                    _ => "only a card being personalized can be aborted".into(),
                },
            });
        }
        let why = if reason.trim().is_empty() {
            "aborted"
        } else {
            reason.trim()
        };
        set_status(
            &tx,
            card.as_str(),
            CardStatus::Personalizing,
            CardStatus::Aborted,
            Some(why),
            &op,
            &at,
        )?;
        tx.execute(
            "UPDATE cards SET closed_reason = ?1 WHERE card_number = ?2",
            params![why, card.as_str()],
        )?;
        lease::release(&tx, card.as_str())?;
        audit(
            &tx,
            &at,
            &op,
            "issue.abort",
            Some(card.as_str()),
            None,
            json!({ "reason": why, "replaces": row.replaces }),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Reports an active card lost (Art. 16–17): it becomes `lost` and is blacklisted from now,
    /// the instant returned. Purchases made before that instant are the holder's loss; purchases
    /// after it are the issuer's concern ([`loss_statement`](Self::loss_statement)). The instant
    /// is always the registry clock's: a report cannot be back-dated.
    pub fn report_loss(&mut self, operator: &str, card: &CardNumber) -> Result<String> {
        let op = check_operator(operator)?.to_owned();
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Active {
            let hint = match row.status {
                CardStatus::Lost => {
                    let since: Option<String> = tx
                        .query_row(
                            "SELECT from_at FROM blacklist WHERE card_number = ?1 AND lifted_at IS NULL",
                            [card.as_str()],
                            |r| r.get(0),
                        )
                        .optional()?;
                    format!("it was reported lost at {}", since.unwrap_or_default())
                }
                CardStatus::Cancelled => "a closed card needs no loss report".into(),
                _ => "it was never issued".into(),
            };
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "report the loss of",
                hint,
            });
        }
        set_status(
            &tx,
            card.as_str(),
            CardStatus::Active,
            CardStatus::Lost,
            Some("reported lost"),
            &op,
            &at,
        )?;
        blacklist_add(&tx, card.as_str(), BlacklistReason::Lost, &at, &op)?;
        let balance = balance_of(&tx, card.as_str())?;
        audit(
            &tx,
            &at,
            &op,
            "card.report_loss",
            Some(card.as_str()),
            None,
            json!({ "blacklisted_from": at, "ledger_balance_cents": balance }),
        )?;
        tx.commit()?;
        Ok(at)
    }

    /// Takes back a loss report for a card that was found again (解挂): the card becomes active
    /// and its blacklist entry is lifted from now.
    ///
    /// Reading of the regulation: Art. 16–17 as we know them speak of reporting and replacing;
    /// they do not forbid withdrawing a report, and service points commonly offer it, so it is
    /// allowed while the card has not been replaced (a replacement in progress must be aborted
    /// first). Purchases made while the report stood stay classified as after the loss in
    /// [`loss_statement`](Self::loss_statement).
    pub fn revoke_loss(&mut self, operator: &str, card: &CardNumber) -> Result<()> {
        let op = check_operator(operator)?.to_owned();
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if row.status != CardStatus::Lost {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "revoke the loss report of",
                hint: "only a card reported lost (and not yet replaced) can be taken back into use"
                    .into(),
            });
        }
        if let Some(p) = pending_replacement(&tx, card.as_str())? {
            return Err(RegistryError::ReplacementPending {
                card_number: card.to_string(),
                pending: p,
                action: "revoke the loss report of",
            });
        }
        set_status(
            &tx,
            card.as_str(),
            CardStatus::Lost,
            CardStatus::Active,
            Some("found again"),
            &op,
            &at,
        )?;
        let n = tx.execute(
            "UPDATE blacklist SET lifted_at = ?1 WHERE card_number = ?2 AND lifted_at IS NULL \
             AND reason = 'lost'",
            params![at, card.as_str()],
        )?;
        if n != 1 {
            return Err(RegistryError::Corrupt(format!(
                "lost card {card} had no open blacklist entry"
            )));
        }
        audit(
            &tx,
            &at,
            &op,
            "card.revoke_loss",
            Some(card.as_str()),
            None,
            json!({ "blacklist_lifted_at": at }),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Cancels an active or lost card (Art. 18): the ledger balance is refunded (recorded as a
    /// `refund` entry), the card is closed and blacklisted. A card whose replacement is being
    /// personalized must wait for that to finish or be aborted.
    pub fn cancel(
        &mut self,
        operator: &str,
        card: &CardNumber,
        reason: CancelReason,
    ) -> Result<Cancellation> {
        let op = check_operator(operator)?.to_owned();
        let (tx, at) = self.begin()?;
        let row = load_card(&tx, card)?;
        if !matches!(row.status, CardStatus::Active | CardStatus::Lost) {
            return Err(RegistryError::Transition {
                card_number: card.to_string(),
                status: row.status,
                action: "cancel",
                hint: match row.status {
                    CardStatus::Personalizing => {
                        "it was never issued: abort its personalization instead".into()
                    }
                    _ => "it is not in use".into(),
                },
            });
        }
        if let Some(p) = pending_replacement(&tx, card.as_str())? {
            return Err(RegistryError::ReplacementPending {
                card_number: card.to_string(),
                pending: p,
                action: "cancel",
            });
        }
        let balance = balance_of(&tx, card.as_str())?;
        let refund = balance.max(0);
        tx.execute(
            "INSERT INTO purse_ledger (card_number, kind, amount_cents, at, recorded_at, operator) \
             VALUES (?1, 'refund', ?2, ?3, ?3, ?4)",
            params![card.as_str(), -refund, at, op],
        )?;
        set_status(
            &tx,
            card.as_str(),
            row.status,
            CardStatus::Cancelled,
            Some(reason.as_str()),
            &op,
            &at,
        )?;
        tx.execute(
            "UPDATE cards SET closed_reason = ?1 WHERE card_number = ?2",
            params![reason.as_str(), card.as_str()],
        )?;
        blacklist_add(&tx, card.as_str(), BlacklistReason::Cancelled, &at, &op)?;
        audit(
            &tx,
            &at,
            &op,
            "card.cancel",
            Some(card.as_str()),
            None,
            json!({ "reason": reason.as_str(), "balance_cents": balance, "refund_cents": refund }),
        )?;
        tx.commit()?;
        Ok(Cancellation {
            card_number: card.clone(),
            refund_cents: refund,
        })
    }

    /// Records changed data of a known person (e.g. before an Art. 15 "data changed"
    /// replacement). The ID number identifies the person and cannot change. A photo is replaced
    /// only when the applicant carries one. Returns the fields that changed.
    pub fn update_person(
        &mut self,
        operator: &str,
        applicant: &Applicant,
    ) -> Result<Vec<&'static str>> {
        let op = check_operator(operator)?.to_owned();
        let id_number = applicant.id_number().to_string();
        let (tx, at) = self.begin()?;
        let known: Option<i64> = tx
            .query_row(
                "SELECT id FROM people WHERE id_number = ?1",
                [&id_number],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_none() {
            return Err(RegistryError::NoSuchPerson(id_number));
        }
        let (_, _, changed) = self.upsert_person(&tx, applicant, &at)?;
        if !changed.is_empty() {
            audit(
                &tx,
                &at,
                &op,
                "person.update",
                None,
                Some(&id_number),
                json!({ "changed": changed }),
            )?;
        }
        tx.commit()?;
        Ok(changed)
    }

    /// What personalization writes for `card` (any status), from the registry's data as it is
    /// now: for checking an issued card by reading it back (a person whose data changed since
    /// no longer matches their old card).
    pub fn card_as_recorded(&self, card: &CardNumber) -> Result<PendingCard> {
        let row = load_card(&self.conn()?, card)?;
        self.pending(&self.conn()?, &row)
    }

    /// The status after checking that `card` exists (used by queries).
    pub(crate) fn require_card(&self, card: &CardNumber) -> Result<CardStatus> {
        card_status(&self.conn()?, card).or_else(|e| match e {
            RegistryError::NoSuchCard(_) => {
                card_number::verify(card)?;
                Err(e)
            }
            other => Err(other),
        })
    }
}

//! The console's one seam with host-lib: every registry read and every workflow the pages use
//! is a function here, each a call or two into `host_lib::service` / `host_lib::registry`.
//! Handlers never touch a card or the registry themselves, so when the service layer's API moves
//! this file is the one to follow it.
//!
//! Each request opens its own registry connection (SQLite in WAL mode serializes writers), and
//! each operator's session is its own issuance station, so two operators meeting one applicant
//! get the service layer's lease refusal. On top, [`Desk::hold`] refuses at once a second
//! operator acting on a card (or applicant) another operator's request is working on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context};
use host_lib::holder::items::CardNumber;
use host_lib::holder::{Applicant, ApplicantRecord, CitizenId, FieldErrors, Validator, CHINA_TIME};
use host_lib::keys::{HostTime, KeySet};
use host_lib::personalize::Progress;
use host_lib::profile::Profile;
use host_lib::registry::operators::{OperatorRecord, Role};
use host_lib::registry::{
    AuditEntry, AuditFilter, BlacklistFormat, CancelReason, CardDetails, LossStatement,
    PersonDetails, Registry, RegistryConfig, ReplaceReason, Station,
};
use host_lib::service::cancel::{self, AtHand, CancelOutcome};
use host_lib::service::issue::{self, IssueDesk, IssueFailure, IssueOutcome};
use host_lib::service::purse::PurseDesk;
use host_lib::service::replace::{self, ReplaceOutcome};
use host_lib::service::state::TerminalState;
use host_lib::terminal::TerminalConfig;

use crate::cards::Cards;

/// The station: registry, keys, profile, reader.
pub struct Desk {
    /// The registry file.
    pub registry: PathBuf,
    /// Its configuration.
    pub config: RegistryConfig,
    /// The issuer's keys.
    pub keys: KeySet,
    /// The card profile.
    pub profile: Profile,
    /// The reader.
    pub cards: Cards,
    /// The load host's state directory (carry-over of a replaced card's balance).
    pub terminal_state: PathBuf,
    /// The load host's terminal id.
    pub terminal_id: [u8; 6],
    /// This console's station: recorded with every change it makes in the registry.
    pub station: host_lib::registry::Station,
    held: Mutex<HashMap<String, String>>,
}

/// Another operator is working on this card or applicant.
#[derive(Debug, thiserror::Error)]
#[error("{what} — {by}")]
pub struct Busy {
    /// The card number or ID number.
    pub what: String,
    /// The operator working on it.
    pub by: String,
}

/// A card or applicant held by one request (released when dropped).
pub struct Hold<'d> {
    desk: &'d Desk,
    key: String,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.desk
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// What a replacement will cost and carry over, shown before it is done.
#[derive(Debug, Clone)]
pub struct ReplaceQuote {
    /// The fee for each reason, in cents.
    pub fees: Vec<(ReplaceReason, u32)>,
    /// The ledger balance that moves to the new card, in cents.
    pub carry_over_cents: i64,
}

fn china_host_time() -> HostTime {
    let t = time::OffsetDateTime::now_utc().to_offset(CHINA_TIME);
    host_lib::terminal::record::host_time(time::PrimitiveDateTime::new(t.date(), t.time()))
}

impl Desk {
    /// A station over this registry, keys, profile and reader.
    pub fn new(
        registry: PathBuf,
        config: RegistryConfig,
        keys: KeySet,
        profile: Profile,
        cards: Cards,
        terminal_state: PathBuf,
    ) -> Desk {
        Desk {
            registry,
            config,
            keys,
            profile,
            cards,
            terminal_state,
            terminal_id: [0, 0, 0, 0, 0x01, 0x01],
            station: host_lib::registry::Station::this_process(),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A registry connection for one request.
    pub fn open(&self) -> anyhow::Result<Registry> {
        let location = self.location();
        let clock = std::sync::Arc::new(host_lib::registry::SystemClock);
        let opened = match &location {
            // One pool for all the console's requests.
            host_lib::registry::Location::Postgres(url) => {
                Registry::open_postgres_shared(url, self.config.clone(), clock)
            }
            host_lib::registry::Location::Sqlite(_) => {
                Registry::open_location(&location, self.config.clone(), clock)
            }
        };
        let mut reg = opened.with_context(|| format!("registry {location}"))?;
        reg.set_station(self.station.clone());
        Ok(reg)
    }

    /// The registry: an SQLite file, or a `postgres://` database.
    pub fn location(&self) -> host_lib::registry::Location {
        host_lib::registry::Location::parse(&self.registry.to_string_lossy())
    }

    /// Holds `what` (a card number, an ID number) for `operator`, or refuses at once when another
    /// operator's request holds it.
    pub fn hold(&self, what: &str, operator: &str) -> Result<Hold<'_>, Busy> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(by) = held.get(what) {
            return Err(Busy {
                what: what.to_owned(),
                by: by.clone(),
            });
        }
        held.insert(what.to_owned(), operator.to_owned());
        Ok(Hold {
            desk: self,
            key: what.to_owned(),
        })
    }

    // --- operators -----------------------------------------------------------------------

    /// The operator with this login.
    pub fn operator(&self, login: &str) -> anyhow::Result<Option<OperatorRecord>> {
        Ok(self.open()?.operator(login)?)
    }

    /// Adds an operator with an argon2-hashed password.
    pub fn add_operator(
        &self,
        by: &str,
        login: &str,
        display_name: &str,
        role: Role,
        password: &str,
    ) -> anyhow::Result<()> {
        let hash = crate::auth::hash_password(password)?;
        Ok(self
            .open()?
            .add_operator(by, login, display_name, role, &hash)?)
    }

    /// Audits a sign-in or sign-out.
    pub fn console_event(&self, login: &str, action: &str) -> anyhow::Result<()> {
        Ok(self.open()?.record_console_event(login, action)?)
    }

    // --- applicants and issuance ----------------------------------------------------------

    /// Checks an applicant as typed at the counter, field by field.
    pub fn validate(
        record: &ApplicantRecord,
        photo: Option<Vec<u8>>,
    ) -> Result<Applicant, FieldErrors> {
        Validator::today_in_china().validate_with_photo(record, photo)
    }

    /// Issues a card to `applicant` on the card in the reader (resuming this station's unfinished
    /// issuance), reporting progress.
    pub fn issue(
        &self,
        operator: &str,
        station: &Station,
        applicant: &Applicant,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<IssueOutcome, anyhow::Error> {
        let mut reg = self.open()?;
        let desk = IssueDesk {
            operator,
            station,
            lease: host_lib::registry::DEFAULT_LEASE,
        };
        let mut open = |p: &host_lib::registry::PendingCard| {
            self.cards
                .open(&p.card_number, p.serial)
                .map_err(|e| format!("{e:#}"))
        };
        issue::issue_one(
            &mut reg,
            &desk,
            applicant,
            &self.keys,
            &self.profile,
            &mut open,
            progress,
        )
        .map_err(|e: IssueFailure| anyhow!(e))
    }

    // --- lookup ------------------------------------------------------------------------------

    /// A card, with its history, fees, ledger, blacklist entries and holder.
    pub fn card(&self, card: &CardNumber) -> anyhow::Result<(CardDetails, Applicant)> {
        let reg = self.open()?;
        Ok((reg.card_details(card)?, reg.holder_of(card)?))
    }

    /// A person and their cards.
    pub fn person(&self, id: &CitizenId) -> anyhow::Result<PersonDetails> {
        Ok(self.open()?.person_details(id)?)
    }

    /// The loss statement of a card.
    pub fn loss_statement(&self, card: &CardNumber) -> anyhow::Result<LossStatement> {
        Ok(self.open()?.loss_statement(card)?)
    }

    /// The newest `limit` audit records.
    pub fn audit_log(&self, limit: u32) -> anyhow::Result<Vec<AuditEntry>> {
        let filter = AuditFilter {
            limit: Some(limit),
            ..AuditFilter::default()
        };
        Ok(self.open()?.audit_log(&filter)?)
    }

    /// The audit hash chain check (`Registry::verify`), as JSON.
    pub fn verify(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::to_value(self.open()?.verify()?)?)
    }

    /// The blacklist for terminals, as text.
    pub fn blacklist_text(&self) -> anyhow::Result<String> {
        let mut out = Vec::new();
        self.open()?
            .export_blacklist(&mut out, BlacklistFormat::Text)?;
        String::from_utf8(out).map_err(|e| anyhow!("blacklist export: {e}"))
    }

    /// Fees and carry-over of a replacement of `card`.
    pub fn replace_quote(&self, card: &CardNumber) -> anyhow::Result<ReplaceQuote> {
        let reg = self.open()?;
        Ok(ReplaceQuote {
            fees: ReplaceReason::ALL
                .iter()
                .map(|r| (*r, reg.config().fees.replacement.for_reason(*r)))
                .collect(),
            carry_over_cents: reg.balance(card)?,
        })
    }

    // --- the card's life ----------------------------------------------------------------

    /// Reports `card` lost: returns the instant and the ledger balance.
    pub fn report_loss(&self, operator: &str, card: &CardNumber) -> anyhow::Result<(String, i64)> {
        Ok(cancel::report_loss(&mut self.open()?, operator, card)?)
    }

    /// The purse on the card at hand: its balance (cents) and its log, newest first (a
    /// transaction left pending on it is settled and recorded first).
    pub fn read_purse(
        &self,
        operator: &str,
        card: &CardNumber,
    ) -> anyhow::Result<(u32, Vec<host_lib::terminal::LogRecord>)> {
        let mut reg = self.open()?;
        let state = TerminalState::open(
            &self.terminal_state,
            "reading a purse at the counter console",
            host_lib::lock::DEFAULT_WAIT,
        )?;
        let config = self.purse_config()?;
        let open = || -> anyhow::Result<Box<dyn host_lib::transport::Transport>> {
            let mut t = self
                .cards
                .at_hand(card)?
                .ok_or_else(|| anyhow!("card {card}: no card in the reader"))?;
            cancel::check_card_at_hand(t.as_mut(), card)?;
            Ok(t)
        };
        let balance = PurseDesk {
            keys: &self.keys,
            config: config.clone(),
            state: &state,
            registry: Some(&mut reg),
            operator,
            clock: None,
        }
        .balance(open()?, &mut |_| {})?;
        let log = PurseDesk {
            keys: &self.keys,
            config,
            state: &state,
            registry: Some(&mut reg),
            operator,
            clock: None,
        }
        .log(open()?, &mut |_| {})?;
        Ok((balance.cents, log))
    }

    fn purse_config(&self) -> anyhow::Result<TerminalConfig> {
        let purse = host_lib::apps::targets(&self.profile)
            .into_iter()
            .find(|t| t.name == "purse")
            .ok_or_else(|| anyhow!("the profile has no purse"))?;
        Ok(TerminalConfig {
            aid: purse.df_name.clone(),
            terminal_id: self.terminal_id,
            ..TerminalConfig::default()
        })
    }

    /// Loads `cents` onto the purse of `card` (the card at hand), recorded in its ledger.
    pub fn load(&self, operator: &str, card: &CardNumber, cents: u32) -> anyhow::Result<i64> {
        let mut reg = self.open()?;
        let mut transport = self
            .cards
            .at_hand(card)?
            .ok_or_else(|| anyhow!("card {card}: no card in the reader"))?;
        cancel::check_card_at_hand(transport.as_mut(), card)?;
        let config = self.purse_config()?;
        let state = TerminalState::open(
            &self.terminal_state,
            "a load at the counter console",
            host_lib::lock::DEFAULT_WAIT,
        )?;
        let purse_desk = PurseDesk {
            keys: &self.keys,
            config,
            state: &state,
            registry: Some(&mut reg),
            operator,
            clock: None,
        };
        let out = purse_desk.load(transport, cents, &mut |_| {})?;
        if let Some(why) = out.not_recorded {
            return Err(anyhow!(
                "{cents} cents were loaded onto the card, but the registry could not record it \
                 ({why}); it is recorded when the card is next seen"
            ));
        }
        Ok(out.ledger_balance_cents.unwrap_or_default())
    }

    /// Takes a loss report back (the card was found).
    pub fn revoke_loss(&self, operator: &str, card: &CardNumber) -> anyhow::Result<()> {
        Ok(self.open()?.revoke_loss(operator, card)?)
    }

    /// Replaces `card` with the card in the reader, carrying the balance over.
    pub fn replace(
        &self,
        operator: &str,
        station: &Station,
        card: &CardNumber,
        reason: ReplaceReason,
    ) -> anyhow::Result<ReplaceOutcome> {
        let mut reg = self.open()?;
        let desk = IssueDesk {
            operator,
            station,
            lease: host_lib::registry::DEFAULT_LEASE,
        };
        let mut open =
            |n: &CardNumber, serial: u32| self.cards.open(n, serial).map_err(|e| format!("{e:#}"));
        Ok(replace::replace(
            &mut reg,
            &desk,
            &self.keys,
            &self.profile,
            card,
            reason,
            None,
            &mut open,
            &self.terminal_state,
            self.terminal_id,
            china_host_time,
            &mut |_| {},
        )?)
    }

    /// Cancels `card`; with `at_hand`, the card in the reader is checked and its purse blocked.
    pub fn cancel(
        &self,
        operator: &str,
        card: &CardNumber,
        reason: CancelReason,
        at_hand: bool,
    ) -> anyhow::Result<CancelOutcome> {
        let mut reg = self.open()?;
        let mut transport = if at_hand {
            Some(
                self.cards
                    .at_hand(card)?
                    .ok_or_else(|| anyhow!("card {card}: no card in the reader"))?,
            )
        } else {
            None
        };
        // The load host's state: a transaction left pending on the card at hand is settled and
        // recorded first, so the refund is what the card holds.
        let state = match transport {
            Some(_) => Some(TerminalState::open(
                &self.terminal_state,
                "cancelling a card at the counter console",
                host_lib::lock::DEFAULT_WAIT,
            )?),
            None => None,
        };
        let hand = transport.as_mut().map(|t| AtHand {
            transport: t.as_mut(),
            keys: &self.keys,
            profile: &self.profile,
            state: state.as_ref(),
        });
        Ok(cancel::cancel(&mut reg, operator, card, reason, hand)?)
    }
}

/// An error with its causes, each cause once (host-lib's messages often include their source).
pub fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Where a registry's terminal state lives: `terminal/` beside it.
pub fn terminal_state_beside(registry: &Path) -> PathBuf {
    if let host_lib::registry::Location::Postgres(_) =
        host_lib::registry::Location::parse(&registry.to_string_lossy())
    {
        // A database server has no directory: the station's default data directory.
        if let Ok(default) = host_lib::registry::default_path() {
            return terminal_state_beside(&default);
        }
    }
    registry
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("terminal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::Reader;

    #[test]
    fn a_second_operator_is_refused_while_the_first_holds_a_card() {
        let dir = tempfile::tempdir().unwrap();
        let desk = Desk::new(
            dir.path().join("registry.db"),
            RegistryConfig::default(),
            KeySet::from_toml(crate::DEVELOPMENT_KEYS).unwrap(),
            Profile::wenzhou(),
            Cards::new(Reader::SimDir(dir.path().to_owned())),
            dir.path().join("terminal"),
        );
        let first = desk.hold("A00000001", "li").unwrap();
        let refused = desk.hold("A00000001", "wang").err().unwrap();
        assert_eq!(refused.by, "li");
        assert!(
            desk.hold("A00000002", "wang").is_ok(),
            "other cards are free"
        );
        drop(first);
        assert!(
            desk.hold("A00000001", "wang").is_ok(),
            "released with the request"
        );
    }
}

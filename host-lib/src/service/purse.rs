//! The e-purse workflows with the registry: load (only an active card of the registry, recorded
//! in its ledger) and screen + purchase (the blacklist first; a listed card's purse blocked for
//! good and the block audited; the purchase recorded), balance and log (which settle, and
//! record, what an earlier run left pending).

use std::cell::RefCell;

use serde::Serialize;
use time::OffsetDateTime;

use super::ledger::{self, Recorded};
use super::state::TerminalState;
use super::ServiceError;
use crate::apps::guard::{self, Blacklist};
use crate::apps::{lock_current_df, Lock};
use crate::holder::items::CardNumber;
use crate::keys::{HostTime, KeyRef, KeyStore};
use crate::registry::{AppState, CardStatus, Registry, RegistryError};
use crate::terminal::{
    CappUpdate, LogRecord, Terminal, TerminalConfig, TerminalEvent, TransactionRecord,
};
use crate::transport::Transport;

/// The name, in the key set, of the purse's line-protection key `36 00` that APPLICATION BLOCK
/// is MAC'd with (apdu-specs/keys.md §2: the purse maintenance key).
pub const PURSE_BLOCK_KEY: &str = "DAMK";

/// What a load or purchase did.
#[derive(Debug, Clone, Serialize)]
pub struct PurseOutcome {
    /// The transaction, proven by the card.
    pub record: TransactionRecord,
    /// How the registry recorded it (`None` without a registry).
    pub recorded: Option<Recorded>,
    /// Why the registry could not record it (it stays in the terminal's journal and is recorded
    /// when the card is next seen).
    pub not_recorded: Option<String>,
    /// The card's ledger balance afterwards, for a card of the registry.
    pub ledger_balance_cents: Option<i64>,
    /// Notes for the operator (e.g. no blacklist to check against).
    pub notes: Vec<String>,
}

/// A purse's balance.
#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    /// In cents.
    pub cents: u32,
    /// The application serial, in hex.
    pub card_serial: String,
    /// Command APDUs sent.
    pub apdus: u32,
}

/// Where the purchase terminal takes its blacklist from.
pub enum BlacklistSource {
    /// The registry's open entries.
    Registry,
    /// An exported list (`registry blacklist --export`).
    List(Blacklist),
}

/// A purse terminal at a desk: keys (with the PSAM counter attached for purchases), its locked
/// state directory, the registry if there is one, the operator.
pub struct PurseDesk<'a> {
    /// The issuer's keys.
    pub keys: &'a dyn KeyStore,
    /// The terminal's configuration.
    pub config: TerminalConfig,
    /// The state directory (journal, PSAM counter), held by this process.
    pub state: &'a TerminalState,
    /// The registry whose ledger records the transactions.
    pub registry: Option<&'a mut Registry>,
    /// Who is at the desk.
    pub operator: &'a str,
    /// The date and time sent to the card (default: China time now).
    pub clock: Option<Box<dyn FnMut() -> HostTime + 'a>>,
}

struct Run<'r> {
    registry: RefCell<Option<&'r mut Registry>>,
    recorded: RefCell<Vec<Recorded>>,
    not_recorded: RefCell<Option<String>>,
}

impl<'a> PurseDesk<'a> {
    fn run(&mut self) -> Run<'_> {
        Run {
            registry: RefCell::new(self.registry.as_deref_mut()),
            recorded: RefCell::new(Vec::new()),
            not_recorded: RefCell::new(None),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn terminal<'t, T: Transport>(
    transport: T,
    keys: &'t dyn KeyStore,
    config: TerminalConfig,
    state: &TerminalState,
    clock: Option<Box<dyn FnMut() -> HostTime + 't>>,
    run: &'t Run<'_>,
    operator: &'t str,
    events: &'t mut dyn FnMut(&TerminalEvent<'_>),
) -> Terminal<'t, T> {
    let mut t = Terminal::new(transport, keys, config)
        .with_journal(state.journal())
        .with_recorder(move |r| {
            let mut reg = run.registry.borrow_mut();
            let Some(reg) = reg.as_deref_mut() else {
                return Ok(());
            };
            match ledger::record(reg, operator, r) {
                Ok(done) => {
                    run.recorded.borrow_mut().push(done);
                    Ok(())
                }
                Err(e) => {
                    *run.not_recorded.borrow_mut() = Some(e.to_string());
                    Err(e.to_string())
                }
            }
        })
        .on_event(move |e| events(e));
    if let Some(c) = clock {
        t = t.with_clock(c);
    }
    t
}

impl Run<'_> {
    fn outcome(&self, record: TransactionRecord, notes: Vec<String>) -> PurseOutcome {
        let recorded = self
            .recorded
            .borrow()
            .iter()
            .rev()
            .find(|r| match r {
                Recorded::New { .. } | Recorded::Already { .. } => true,
                Recorded::UnknownCard => false,
            })
            .cloned()
            .or_else(|| self.recorded.borrow().last().cloned());
        let ledger_balance_cents = match (&recorded, self.registry.borrow().as_deref()) {
            (
                Some(Recorded::New { card_number, .. } | Recorded::Already { card_number, .. }),
                Some(reg),
            ) => reg.balance(card_number).ok(),
            _ => None,
        };
        PurseOutcome {
            record,
            recorded,
            not_recorded: self.not_recorded.borrow().clone(),
            ledger_balance_cents,
            notes,
        }
    }
}

impl<'a> PurseDesk<'a> {
    /// The purse's balance, in cents (a transaction left pending on this card is settled and
    /// recorded first).
    pub fn balance<T: Transport>(
        mut self,
        transport: T,
        events: &mut dyn FnMut(&TerminalEvent<'_>),
    ) -> Result<Balance, ServiceError> {
        let (keys, config, state, op, clock) = (
            self.keys,
            self.config.clone(),
            self.state,
            self.operator,
            self.clock.take(),
        );
        let run = self.run();
        let mut t = terminal(transport, keys, config, state, clock, &run, op, events);
        let cents = t.balance()?;
        Ok(Balance {
            cents,
            card_serial: t.application().map(|a| a.serial_hex()).unwrap_or_default(),
            apdus: t.apdus(),
        })
    }

    /// The purse's log, newest first (after settling a pending transaction).
    pub fn log<T: Transport>(
        mut self,
        transport: T,
        events: &mut dyn FnMut(&TerminalEvent<'_>),
    ) -> Result<Vec<LogRecord>, ServiceError> {
        let (keys, config, state, op, clock) = (
            self.keys,
            self.config.clone(),
            self.state,
            self.operator,
            self.clock.take(),
        );
        let run = self.run();
        let mut t = terminal(transport, keys, config, state, clock, &run, op, events);
        Ok(t.log()?)
    }

    /// Loads `amount` cents. With a registry, the card is identified by EF05 item 07 first; a card
    /// of the registry must be active (a lost, replaced or cancelled card's balance belongs
    /// elsewhere), and the load is recorded in its ledger.
    pub fn load<T: Transport>(
        mut self,
        mut transport: T,
        amount: u32,
        events: &mut dyn FnMut(&TerminalEvent<'_>),
    ) -> Result<PurseOutcome, ServiceError> {
        if let Some(reg) = self.registry.as_deref() {
            if let Some(card) = guard::read_card_number(&mut transport)? {
                match reg.status(&card) {
                    Ok(CardStatus::Active) | Err(RegistryError::NoSuchCard(_)) => {}
                    Ok(status) => {
                        return Err(ServiceError::Refused(format!(
                            "card {card} is {status} in the registry: it cannot be loaded \
                             (nothing was loaded)"
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let (keys, config, state, op, clock) = (
            self.keys,
            self.config.clone(),
            self.state,
            self.operator,
            self.clock.take(),
        );
        let run = self.run();
        let mut t = terminal(transport, keys, config, state, clock, &run, op, events);
        let r = t.load(amount)?;
        drop(t);
        Ok(run.outcome(r, Vec::new()))
    }

    /// Screens the card against the blacklist, then purchases `amount` cents (with `capp`, a
    /// composite purchase). A listed card is refused and its purse application blocked for good
    /// (APPLICATION BLOCK, MAC'd with the purse's DAMK), the block recorded in the registry; the
    /// error then says so. Without a registry and a list, the check cannot be made: a note says
    /// so and the purchase goes on.
    pub fn purchase<T: Transport>(
        mut self,
        transport: T,
        amount: u32,
        capp: Option<&CappUpdate>,
        blacklist: BlacklistSource,
        now: OffsetDateTime,
        events: &mut dyn FnMut(&TerminalEvent<'_>),
    ) -> Result<PurseOutcome, ServiceError> {
        let (keys, config, state, op, clock) = (
            self.keys,
            self.config.clone(),
            self.state,
            self.operator,
            self.clock.take(),
        );
        let run = self.run();
        let mut t = terminal(transport, keys, config, state, clock, &run, op, events);
        let mut notes = Vec::new();
        let list = match blacklist {
            BlacklistSource::List(l) => Some(l),
            BlacklistSource::Registry => match run.registry.borrow().as_deref() {
                Some(reg) => Some(Blacklist::from_registry(reg)?),
                None => None,
            },
        };
        match list {
            Some(list) => {
                let mut reg = run.registry.borrow_mut();
                screen(reg.as_deref_mut(), &list, &mut t, keys, op, now)?;
            }
            None => notes.push(
                "no registry and no blacklist: the card is not checked against the blacklist"
                    .into(),
            ),
        }
        let r = t.purchase(amount, capp)?;
        drop(t);
        Ok(run.outcome(r, notes))
    }
}

/// Identifies the card at the terminal and, when `blacklist` refuses it at `now`, blocks its
/// purse for good, records the block in `registry` and returns the refusal as the error.
/// Otherwise returns the card number EF05 gave, if any.
pub fn screen<T: Transport>(
    mut registry: Option<&mut Registry>,
    blacklist: &Blacklist,
    terminal: &mut Terminal<'_, T>,
    keys: &dyn KeyStore,
    operator: &str,
    now: OffsetDateTime,
) -> Result<Option<CardNumber>, ServiceError> {
    let app = terminal.select()?;
    let verdict = guard::check(
        terminal.transport_mut(),
        blacklist,
        registry.as_deref(),
        Some(&app.serial),
        now,
    )?;
    if !verdict.refused() {
        return Ok(
            match (&verdict.identity.card_number, verdict.identity.source) {
                (Some(n), "ef05") => Some(n.clone()),
                _ => None,
            },
        );
    }
    // Block the purse for good: back into the purse application, then the MAC'd command.
    let app = terminal.select()?;
    let factors = app.factors();
    let blocked = lock_current_df(
        terminal.transport_mut(),
        keys,
        KeyRef::new(PURSE_BLOCK_KEY, &factors),
        Lock::Permanent,
    );
    let refusal = guard::refusal_text(&verdict);
    if let Err(e) = &blocked {
        return Err(ServiceError::Refused(format!(
            "{refusal}; blocking its purse application failed: {e}"
        )));
    }
    let mut recorded = String::from("not recorded: no registry");
    if let (Some(reg), Some(card)) = (registry.as_mut(), &verdict.identity.card_number) {
        let details = serde_json::json!({
            "by": "terminal",
            "terminal_id": hex::encode_upper(terminal.config().terminal_id),
            "app_serial": app.serial_hex(),
            "blacklist": verdict.listed,
            "inconsistent": verdict.inconsistent,
            "blacklist_source": blacklist.source,
        });
        recorded = match reg.record_application(operator, card, "purse", AppState::Blocked, details)
        {
            Ok(_) => "recorded in the registry's audit log".into(),
            Err(e) => format!("not recorded: {e}"),
        };
    }
    Err(ServiceError::Refused(format!(
        "{refusal}; its purse application is now blocked for good ({recorded})"
    )))
}

//! Replacement (Art. 15; after a loss report Art. 16–17) and the carried-over balance.
//!
//! [`replace`] reserves the new card with this station's lease (or resumes the replacement under
//! way), personalizes and verifies it; the registry then cancels and blacklists the old card,
//! records the fee and moves the ledger balance ([`crate::registry::Registry::complete_issue`]).
//! [`carry_over`] then loads that balance onto the new chip **exactly once**: before CREDIT FOR
//! LOAD the registry records the intent with the load host's pending transaction; a re-run that
//! finds an open intent asks the card (GET TRANSACTION PROOF, else the purse log) whether that
//! CREDIT happened, records it as credited or as not done, and only then loads what is still
//! owed.

use std::cell::RefCell;

use serde::Serialize;

use super::issue::{self, IssueDesk, IssueFailure};
use super::ledger;
use super::state::TerminalState;
use super::ServiceError;
use crate::holder::items::CardNumber;
use crate::holder::Applicant;
use crate::keys::{HostTime, KeyStore};
use crate::profile::Profile;
use crate::registry::{
    CardStatus, ChipCredit, ChipInfo, LeaseRequest, Registry, RegistryError, ReplaceReason,
};
use crate::terminal::{
    Journal, Pending, Terminal, TerminalConfig, TerminalError, TerminalEvent, TransactionKind,
};
use crate::transport::Transport;

/// What [`carry_over`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CarryOver {
    /// Credited onto the chip by this run (cents), including an earlier run's CREDIT the card
    /// proved.
    pub credited_cents: i64,
    /// An earlier run's CREDIT that the card proved had happened (cents), recorded now.
    pub earlier_credit_cents: i64,
    /// An earlier run's CREDIT the card proved had NOT happened.
    pub earlier_not_done: bool,
    /// Still owed to the chip.
    pub still_owed_cents: i64,
}

/// The journal of the carry-over: the registry's intent first, then the terminal's own journal.
struct IntentJournal<'r, 'g> {
    registry: &'r RefCell<&'g mut Registry>,
    card: CardNumber,
    operator: String,
    inner: crate::terminal::FileJournal,
}

impl Journal for IntentJournal<'_, '_> {
    fn begin(&mut self, pending: &Pending) -> Result<(), String> {
        if pending.kind == TransactionKind::Load {
            let json = serde_json::to_string(pending).map_err(|e| e.to_string())?;
            self.registry
                .borrow_mut()
                .record_carry_over_intent(
                    &self.operator,
                    &self.card,
                    pending.amount,
                    pending.card_counter,
                    &json,
                )
                .map_err(|e| format!("registry: {e}"))?;
        }
        self.inner.begin(pending)
    }
    fn end(&mut self, pending: &Pending) -> Result<(), String> {
        self.inner.end(pending)
    }
    fn pending_for(&self, card_serial: &[u8; 10]) -> Result<Option<Pending>, String> {
        self.inner.pending_for(card_serial)
    }
}

/// Whether the terminal journal in `dir` holds a pending transaction of `card`.
fn pending_in_journal(
    registry: &Registry,
    dir: &std::path::Path,
    card: &CardNumber,
) -> Result<bool, ServiceError> {
    let serial = registry.card_details(card)?.card.serial;
    let app_serial = crate::personalize::app_serial(registry.config().city(), serial);
    Ok(crate::terminal::FileJournal::new(dir)
        .pending_for(&app_serial)
        .map_err(|e| ServiceError::State {
            path: dir.to_owned(),
            source: std::io::Error::other(e),
        })?
        .is_some())
}

/// Loads what the registry owes `card`'s chip of a carried-over balance onto its purse, exactly
/// once (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn carry_over<T: Transport>(
    registry: &mut Registry,
    keys: &dyn KeyStore,
    profile: &Profile,
    transport: T,
    card: &CardNumber,
    terminal_id: [u8; 6],
    operator: &str,
    state: &TerminalState,
    clock: impl FnMut() -> HostTime,
) -> Result<CarryOver, ServiceError> {
    let mut out = CarryOver::default();
    let owed = registry.owed_to_chip(card)?;
    let open = registry.open_carry_over_intent(card)?;
    let in_journal = pending_in_journal(registry, state.dir(), card)?;
    if owed <= 0 && open.is_none() && !in_journal {
        out.still_owed_cents = owed.max(0);
        return Ok(out);
    }
    let purse = crate::apps::targets(profile)
        .into_iter()
        .find(|t| t.name == "purse")
        .ok_or_else(|| ServiceError::Refused("the profile has no purse application".into()))?;
    let reg = RefCell::new(registry);
    let recorded: RefCell<Vec<ledger::Recorded>> = RefCell::new(Vec::new());
    let config = TerminalConfig {
        aid: purse.df_name.clone(),
        terminal_id,
        ..TerminalConfig::default()
    };
    let journal = IntentJournal {
        registry: &reg,
        card: card.clone(),
        operator: operator.to_owned(),
        inner: state.journal(),
    };
    let not_recorded: RefCell<Option<String>> = RefCell::new(None);
    let mut terminal = Terminal::new(transport, keys, config)
        .with_journal(journal)
        .with_clock(clock)
        .with_recorder(|r| {
            let mut g = reg.borrow_mut();
            match ledger::record(&mut g, operator, r) {
                Ok(x) => {
                    recorded.borrow_mut().push(x);
                    Ok(())
                }
                Err(e) => {
                    *not_recorded.borrow_mut() = Some(e.to_string());
                    Err(e.to_string())
                }
            }
        })
        .on_event(|_: &TerminalEvent<'_>| {});
    let credited_by_recorder = |recorded: &RefCell<Vec<ledger::Recorded>>| -> bool {
        recorded.borrow().iter().any(|r| {
            matches!(
                r,
                ledger::Recorded::New {
                    kind: "carry_over",
                    ..
                } | ledger::Recorded::Already {
                    kind: "carry_over",
                    ..
                }
            )
        })
    };
    // 1. A transaction this terminal's journal holds for the card is settled first (and
    //    recorded: a carry-over as a chip credit).
    terminal.balance()?;
    // 2. An intent still open: ask the card whether its CREDIT happened.
    let open = reg.borrow().open_carry_over_intent(card)?;
    if let Some(intent) = open {
        let pending: Pending = serde_json::from_str(&intent.pending).map_err(|e| {
            ServiceError::Registry(RegistryError::Corrupt(format!(
                "card {card}: carry-over intent {}: {e}",
                intent.txn_counter
            )))
        })?;
        recorded.borrow_mut().clear();
        match terminal.settle(&pending) {
            Ok(_) if credited_by_recorder(&recorded) => {
                out.earlier_credit_cents = i64::from(intent.amount_cents);
            }
            Ok(_) => {
                return Err(ServiceError::Registry(RegistryError::Corrupt(format!(
                    "card {card}: the card proved the earlier carry-over credit, but the registry \
                     did not record it ({})",
                    not_recorded.borrow().clone().unwrap_or_default()
                ))))
            }
            Err(TerminalError::NotDone { cause, .. }) => {
                reg.borrow_mut().settle_carry_over_not_done(
                    operator,
                    card,
                    intent.txn_counter,
                    &cause,
                )?;
                out.earlier_not_done = true;
            }
            // The card's log shows the CREDIT (its proof is gone): it happened.
            Err(TerminalError::Unverified { record, .. })
                if record.kind == TransactionKind::Load =>
            {
                reg.borrow_mut().record_chip_credit(
                    operator,
                    card,
                    &ChipCredit {
                        amount_cents: record.amount,
                        txn_counter: record.card_counter,
                        tac: record.tac,
                    },
                )?;
                out.earlier_credit_cents = i64::from(intent.amount_cents);
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.credited_cents += out.earlier_credit_cents;
    // 3. What is still owed is loaded, under a new intent.
    let rest = reg.borrow().owed_to_chip(card)?;
    if rest > 0 {
        let amount = u32::try_from(rest)
            .map_err(|_| ServiceError::Refused(format!("{rest} cents cannot be loaded at once")))?;
        recorded.borrow_mut().clear();
        let r = terminal.load(amount)?;
        if !credited_by_recorder(&recorded) {
            return Err(ServiceError::Registry(RegistryError::Corrupt(format!(
                "card {card}: {} cents were loaded onto the chip (counter {}), but the registry \
                 could not record it ({}); it stays pending: run the same command again with \
                 this card",
                r.amount,
                r.card_counter,
                not_recorded.borrow().clone().unwrap_or_default()
            ))));
        }
        out.credited_cents += i64::from(r.amount);
    }
    drop(terminal);
    out.still_owed_cents = reg.borrow().owed_to_chip(card)?.max(0);
    Ok(out)
}

/// What [`replace`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaceOutcome {
    /// The old card.
    pub old_card: CardNumber,
    /// The new card.
    pub new_card: CardNumber,
    /// Whether a replacement under way was resumed.
    pub resumed: bool,
    /// Whether the new card had been issued already (this run only carried the balance over).
    pub already_issued: bool,
    /// The holder's fields that changed (data changed).
    pub person_changed: Vec<&'static str>,
    /// The personalization (absent when the new card was issued already).
    pub report: Option<crate::personalize::IssueReport>,
    /// The fee recorded, in cents.
    pub fee_cents: Option<u32>,
    /// The balance moved to the new card in the ledger, in cents.
    pub transferred_cents: Option<i64>,
    /// The carried-over balance onto the chip.
    pub carry_over: CarryOver,
}

/// Steps of [`replace`], for a progress display.
#[derive(Debug)]
pub enum ReplaceStep<'e> {
    /// The new card number is reserved (or the replacement under way resumed).
    Reserved {
        /// The new card.
        card: &'e CardNumber,
        /// Resumed.
        resumed: bool,
    },
    /// The new card is issued already; the balance is carried over now.
    AlreadyIssued(&'e CardNumber),
}

/// The replacement of `old`, as described in the module docs. `open_card` gives the new card
/// (number, card serial); `new_data` is the holder's changed data (data changed); `state_dir` is
/// the load host's state directory (locked for the carry-over).
#[allow(clippy::too_many_arguments)]
pub fn replace(
    registry: &mut Registry,
    desk: &IssueDesk<'_>,
    keys: &dyn KeyStore,
    profile: &Profile,
    old: &CardNumber,
    reason: ReplaceReason,
    new_data: Option<&Applicant>,
    open_card: &mut super::OpenNumbered<'_>,
    state_dir: &std::path::Path,
    terminal_id: [u8; 6],
    clock: impl FnMut() -> HostTime,
    step: &mut dyn FnMut(ReplaceStep<'_>),
) -> Result<ReplaceOutcome, ServiceError> {
    let details = registry.card_details(old)?;
    let chip = ChipInfo {
        chip_id: None,
        key_set: Some(keys.identity().id.clone()),
    };
    // Replaced already, with a balance still owed to the new chip (or a credit to settle): only
    // the carry-over is left. Replaced and settled: begin_replace refuses below, with its reason.
    let already_new = match (&details.card.status, &details.card.replaced_by) {
        (CardStatus::Cancelled, Some(new)) => {
            let new = CardNumber::parse(new).map_err(|e| RegistryError::Corrupt(e.to_string()))?;
            // A credit the load host made but could not forget (stopped just after recording it)
            // is settled too, so the journal is left clean.
            let in_journal = pending_in_journal(registry, state_dir, &new)?;
            (registry.owed_to_chip(&new)? > 0
                || registry.open_carry_over_intent(&new)?.is_some()
                || in_journal)
                .then_some(new)
        }
        _ => None,
    };
    let mut out = ReplaceOutcome {
        old_card: old.clone(),
        new_card: old.clone(),
        resumed: false,
        already_issued: false,
        person_changed: Vec::new(),
        report: None,
        fee_cents: None,
        transferred_cents: None,
        carry_over: CarryOver::default(),
    };
    let transport = match already_new {
        Some(new) => {
            step(ReplaceStep::AlreadyIssued(&new));
            let serial = registry.card_details(&new)?.card.serial;
            out.already_issued = true;
            out.new_card = new.clone();
            open_card(&new, serial).map_err(ServiceError::Refused)?
        }
        None => {
            if let Some(a) = new_data {
                out.person_changed = registry.update_person(desk.operator, a)?;
            }
            let lease = LeaseRequest {
                station: desk.station,
                ttl: desk.lease,
            };
            let pending =
                match registry.begin_replace_leased(desk.operator, old, reason, &chip, &lease) {
                    Ok(p) => p,
                    Err(RegistryError::UnfinishedIssue { card_number, .. }) => {
                        let n = CardNumber::parse(&card_number)
                            .map_err(|e| RegistryError::Corrupt(e.to_string()))?;
                        let p = registry.resume_issue_leased(desk.operator, &n, &chip, &lease)?;
                        if p.replaces.as_ref() != Some(old) {
                            return Err(ServiceError::Refused(format!(
                            "{} is being personalized for the holder and is not a replacement of \
                             {old}: finish it with `citizencard issue`, or abort it",
                            p.card_number
                        )));
                        }
                        out.resumed = true;
                        p
                    }
                    Err(e) => return Err(e.into()),
                };
            step(ReplaceStep::Reserved {
                card: &pending.card_number,
                resumed: out.resumed,
            });
            out.new_card = pending.card_number.clone();
            let mut transport =
                open_card(&pending.card_number, pending.serial).map_err(ServiceError::Refused)?;
            let issue::Completed { report, issued, .. } = issue::personalize_and_complete(
                registry,
                desk,
                transport.as_mut(),
                keys,
                profile,
                &pending,
                &mut |_| {},
            )
            .map_err(|e| match e {
                IssueFailure::Refused(r) | IssueFailure::Leased(r) => ServiceError::Registry(r),
                other => ServiceError::Refused(format!(
                    "{other} — the old card {old} is unchanged; run the same command again with \
                     this card to finish"
                )),
            })?;
            out.fee_cents = Some(issued.fee_cents);
            out.transferred_cents = Some(issued.transferred_cents);
            out.report = Some(report);
            transport
        }
    };
    // The load host's state is taken only now: the card is issued whatever happens next, and
    // a carried-over balance not yet on the chip stays owed to it (the same call finishes it).
    let state = TerminalState::open(
        state_dir,
        "carry-over of a replaced card",
        crate::lock::DEFAULT_WAIT,
    )?;
    out.carry_over = carry_over(
        registry,
        keys,
        profile,
        transport,
        &out.new_card,
        terminal_id,
        desk.operator,
        &state,
        clock,
    )?;
    Ok(out)
}
